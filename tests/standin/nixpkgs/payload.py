"""Write SIZE deterministic, incompressible bytes to stdout (stand-in nixpkgs payloads).

Usage: python3 payload.py SIZE SEED

The bytes are SHA-256(SEED ":" i) for i = 0, 1, 2, ... concatenated and cut at SIZE,
so the same SIZE and SEED always give the same file, and gzip cannot shrink it.
"""

import hashlib
import sys


def main() -> int:
    size = int(sys.argv[1])
    seed = sys.argv[2].encode()
    out = sys.stdout.buffer
    written = 0
    counter = 0
    while written < size:
        block = hashlib.sha256(seed + b":" + str(counter).encode()).digest()
        block = block[: size - written]
        out.write(block)
        written += len(block)
        counter += 1
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
