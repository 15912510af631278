"""`rpbuild release`, `rpbuild verify` and `rpbuild verify-release`: pinned, reproducible
images, pushed, signed, with a report, and checked again against the registry.

A release is built only from committed pins (flake.lock committed and unchanged, flake.nix
what the profiles render to, a clean tree unless it is a snapshot); every refusal is
decided before anything is built or pushed (`preflight`). Each image is verified by
rebuilding its derivation (`nix build --rebuild`) and streaming it again: the image ID
(the digest of its config, which covers every layer) must not change (`reproduce`).
Pushing goes from the nix build output through a temporary archive into skopeo; several
systems become one manifest list (`push`, `signing`). The report directory, with the
SBOMs and the provenance (`provenance`), appears whole or not at all (`report`). `run`
puts it together; `verify_published` checks a published release against its registry.

Only a docstring here: the CLI imports the submodule a command needs, so that
`rpbuild --help` loads none of this.
"""
