"""The floor of an up-to-date `rpbuild image`: the least program doing its job with the
parts rpbuild must use. Python starts, imports typer (the CLI framework rpbuild is
written with), asks the engine through its CLI about the image once, and parses the
answer. Usage: floor_image.py REFERENCE [ENGINE]. Run by bench/image_uptodate.py in the
same interleaved loop as rpbuild; nothing else imported, nothing else done.
"""

import json
import subprocess
import sys

import typer  # noqa: F401  (its import is part of the floor)

engine = sys.argv[2] if len(sys.argv) > 2 else "docker"
out = subprocess.run([engine, "image", "inspect", sys.argv[1]], capture_output=True, check=True)
image = json.loads(out.stdout)[0]
print(image["Id"], image["Config"]["Labels"].get("dev.rpbuild.fingerprint"))
