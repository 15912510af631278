"""rpbuild.units: sizes printed as `nix path-info -Sh` prints them, store path names."""

from __future__ import annotations

import pytest

from rpbuild.units import human, store_name
from tests.unit.sizes_samples import sp


# Left: narSize from `nix path-info --json` of files added with `nix-store --add` on this
# machine (Nix 2.8.0); middle: what `nix path-info -Sh` printed for them; right: ours.
@pytest.mark.parametrize(
    ("n", "nix_printed", "expected"),
    [
        (112, "112.0", "112 B"),
        (120, "120.0", "120 B"),
        (616, "616.0", "616 B"),
        (1024, "1024.0", "1024 B"),  # nix only steps up above 1024
        (1136, "1.1K", "1.1 KiB"),
        (1152, "1.1K", "1.1 KiB"),
        (1280, "1.2K", "1.2 KiB"),  # 1.25: ties round to even
        (1648, "1.6K", "1.6 KiB"),
        (1792, "1.8K", "1.8 KiB"),  # 1.75: ties round to even
        (2160, "2.1K", "2.1 KiB"),
        (10112, "9.9K", "9.9 KiB"),
        (123568, "120.7K", "120.7 KiB"),
        (1048576, "1024.0K", "1024.0 KiB"),
        (1048584, "1.0M", "1.0 MiB"),
        (1048688, "1.0M", "1.0 MiB"),
        (100000112, "95.4M", "95.4 MiB"),
        (1073741824, "1024.0M", "1024.0 MiB"),
    ],
)
def test_human_matches_nix_path_info(n: int, nix_printed: str, expected: str) -> None:
    assert human(n) == expected
    assert float(expected.split()[0]) == float(nix_printed.rstrip("KM"))


def test_human_large() -> None:
    assert human(0) == "0 B"
    assert human(5 * 1024**4) == "5.0 TiB"
    assert human(-1536) == "-1.5 KiB"


def test_store_name() -> None:
    assert store_name(sp("rosenpass-0.2.1")) == "rosenpass-0.2.1"
    assert store_name("/nix/store/short-name") == "short-name"
