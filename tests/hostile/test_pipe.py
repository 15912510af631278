"""process.pipe against real processes: the side that failed first is the one named,
with its own stderr; a producer out of space is reported as such, not as the consumer's
truncated stream."""

from __future__ import annotations

import sys

import pytest

from rpbuild import process
from rpbuild.errors import CommandError

# A consumer that, like `docker load`, fails on a stream shorter than it expects.
STRICT_READER = [
    sys.executable,
    "-c",
    "import sys; n = len(sys.stdin.buffer.read()); "
    "sys.exit(f'unexpected EOF after {n} bytes' if n < 4 * 2**20 else 0)",
]


def test_a_producer_out_of_space_is_named_with_its_reason() -> None:
    # /dev/full: every write fails with ENOSPC, as in a full TMPDIR.
    producer = [
        sys.executable,
        "-c",
        "import sys; sys.stdout.buffer.write(bytes(100000)); sys.stdout.flush(); "
        "open('/dev/full', 'wb', buffering=0).write(b'layer')",
    ]
    with pytest.raises(CommandError) as info:
        process.pipe(producer, STRICT_READER, what="load", producer_what="the stream script")
    err = info.value
    assert err.message.startswith("the stream script failed (exit"), err.message
    assert "No space left on device" in err.message
    assert err.argv == producer


def test_a_killed_producer_is_named() -> None:
    producer = ["sh", "-c", "head -c 100000 /dev/zero; kill -9 $$"]
    with pytest.raises(CommandError) as info:
        process.pipe(producer, STRICT_READER, what="load", producer_what="the stream script")
    assert info.value.message.startswith("the stream script failed (exit -9)"), info.value


def test_a_consumer_that_gives_up_first_is_named_not_the_broken_pipe() -> None:
    consumer = ["sh", "-c", "head -c 10 > /dev/null; echo 'refused: bad magic' >&2; exit 3"]
    producer = [
        sys.executable,
        "-c",
        "import sys\nwhile True: sys.stdout.buffer.write(b'x' * 65536)",
    ]
    with pytest.raises(CommandError) as info:
        process.pipe(producer, consumer, what="load", producer_what="the stream script")
    assert info.value.message == "load failed (exit 3): refused: bad magic"
    assert info.value.argv == consumer


def test_both_succeed() -> None:
    producer = ["head", "-c", str(4 * 2**20), "/dev/zero"]
    result = process.pipe(producer, STRICT_READER, what="load")
    assert result.returncode == 0
