"""`rpbuild image`'s result as plain lines.

On the up-to-date path (`memo.cached_image`) this is all that is shown, so it imports
no rich: bench/image_uptodate.py counts every millisecond of that run.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from rpbuild.units import human

if TYPE_CHECKING:
    from rpbuild.memo import ImageResult


def image_result(stream: IO[str], result: ImageResult) -> None:
    """Plain aligned lines: readable, greppable, and no rich import on the hot path."""
    status = "up to date" if result.up_to_date else "built and loaded"
    rows = [
        ("image id", result.image_id),
        ("size", human(result.size)),
        ("system", result.system),
        ("engine", result.engine),
        ("time", f"{result.seconds:.2f} s"),
    ]
    if result.out_path:
        rows.append(("store path", result.out_path))
    stream.write(f"{result.reference}: {status}\n")
    stream.writelines(f"  {key:<11}{value}\n" for key, value in rows)
