"""The floor of `rpbuild sizes` with everything built: the least program doing its job
with the parts rpbuild must use. Python starts, imports typer, makes the one
`nix path-info -rS --json` call over every profile's roots, and parses the answer into
a closure size. Usage: floor_sizes.py NIX-ARGS... (the path-info command line after
`nix`). Run by bench/sizes_vs_pathinfo.py in the same interleaved loop as rpbuild.
"""

import json
import subprocess
import sys

import typer  # noqa: F401  (its import is part of the floor)

out = subprocess.run(["nix", *sys.argv[1:]], capture_output=True, check=True)
data = json.loads(out.stdout)
if isinstance(data, dict) and isinstance(data.get("info"), dict):  # --json-format 2
    data = data["info"]
infos = data if isinstance(data, list) else [{"path": k, **v} for k, v in data.items()]
print(sum(int(i["narSize"]) for i in infos))
