"""The two-peer topology (a rosenpass server and client in containers): `compose`, `up`,
`test` and `down`.

`compose` is the compose document (what runs, and its security decisions), `composetool`
drives Compose v1/v2 and podman compose through their CLIs, `lifecycle` brings a topology
up and always down again, and `checks` proves from outside that its tunnel works. Import
the submodule you need: nothing is re-exported here, so `rpbuild --help` loads none of it.
"""
