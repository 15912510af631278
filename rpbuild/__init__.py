"""rpbuild: minimal, reproducible rosenpass container images built with Nix."""

__version__ = "0.1.0"

# Bumped whenever the flake template changes what an image contains; part of
# every build fingerprint so that a new rpbuild never reuses a stale image.
TEMPLATE_VERSION = 2
