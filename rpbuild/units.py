"""Names and sizes as nix shows them; shared by the progress view, errors and reports."""

from __future__ import annotations

import re

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human(n: int) -> str:
    """Format a byte count the way `nix path-info -Sh` rounds it, with readable unit names.

    Nix 2.8.0 divides by 1024 while the value is *strictly greater* than 1024 and prints
    `%.1f` plus a one-letter unit ("  94.0M", "1024.0K", " 112.0 "). We keep its numbers
    (same float divisions, same round-half-even `.1f`) but print "94.0 MiB", "1024.0 KiB",
    and plain bytes without a decimal ("112 B"), as newer nix versions do. Negative
    numbers get a leading "-" so that deltas can share the function.
    """
    if n < 0:
        return "-" + human(-n)
    value = float(n)
    power = 0
    while value > 1024 and power < len(_UNITS) - 1:
        value /= 1024
        power += 1
    if power == 0:
        return f"{n} B"
    return f"{value:.1f} {_UNITS[power]}"


_HASH_PREFIX = re.compile(r"[0-9a-z]{32}-")


def store_name(path: str) -> str:
    """`/nix/store/<hash>-rosenpass-0.2.1.drv^out` -> `rosenpass-0.2.1`: what users recognise.

    Any store directory; a derivation's `.drv` and an output selector are dropped.
    """
    base = path.split("^", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    match = _HASH_PREFIX.match(base)
    name = base[match.end() :] if match else base
    return name.removesuffix(".drv")
