#!/bin/sh
# Re-record the real nix samples in this directory (run as root on a machine with nix,
# offline is fine). Hand-written samples (see README.md) are left alone.
#
# Under nix 2.8 the samples go into this directory (their names are the 2.8 ones); under any
# other nix into a directory named after its version (for example 2.26/, recorded in the
# Debian 13 root of .ci/fresh-root), where path-info-219.json is the real 2.19+ shape.
set -u
here=$(cd "$(dirname "$0")" && pwd)
lockfile="$here/../../../flake.lock"
version=$(nix --version | sed -n 's/^nix (Nix) \([0-9]*\.[0-9]*\).*/\1/p')
if [ "$version" != 2.8 ]; then
  here="$here/$version"
  mkdir -p "$here"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nix="nix --extra-experimental-features nix-command --extra-experimental-features flakes --option substituters ''"
salt=$(date +%s%N)   # a fresh derivation each time, so nix really builds

mkdir -p "$work/demo" "$work/fetch" "$work/lockmm"
cat > "$work/demo/flake.nix" <<NIX
{
  outputs = { self }: let
    mk = name: script: builtins.derivation {
      inherit name; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" script ]; salt = "$salt";
    };
  in {
    packages.x86_64-linux.hello = mk "rpbuild-hello" "echo line one; echo line two >&2; echo line three; echo hi > \$out";
    packages.x86_64-linux.app = mk "rpbuild-app" "echo linking; echo \${self.packages.x86_64-linux.hello} > \$out";
    packages.x86_64-linux.fail = mk "rpbuild-fail" "echo starting; i=1; while [ \$i -le 30 ]; do echo log line \$i; i=\$((i+1)); done; echo boom >&2; exit 3";
    bad = throw ("rpbuild-error:" + builtins.toJSON { kind = "missing-attribute"; profile = "minimal"; package = "gnugrepp"; source = "nixpkgs"; attr = "gnugrepp"; });
  };
}
NIX
cd "$work/demo"
eval "$nix --log-format internal-json build --no-link --json path:.#app" 2>"$here/internal-json-build-ok.log" >"$work/app.json"
eval "$nix --log-format internal-json build --no-link --json path:.#fail" 2>"$here/internal-json-build-fail.log"
eval "$nix build --no-link --json path:.#fail" 2>"$here/stderr-build-fail-plain.txt"
eval "$nix eval --json --no-update-lock-file path:.#bad" 2>"$here/stderr-eval-profile-error.txt"
app=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["outputs"]["out"])' "$work/app.json")
if [ "$version" = 2.8 ]; then pathinfo=path-info-pre219.json; else pathinfo=path-info-219.json; fi
eval "$nix path-info --json --recursive --closure-size $app" >"$here/$pathinfo"

cat > "$work/fetch/flake.nix" <<'NIX'
{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.rosenpass.url = "github:rosenpass/rosenpass";
  outputs = { self, nixpkgs, rosenpass }: { n = builtins.length (builtins.attrNames rosenpass.packages); };
}
NIX
cd "$work/fetch"
eval "$nix eval --json --no-update-lock-file path:.#n" 2>"$here/stderr-fetch-unlocked.txt"
cp "$lockfile" flake.lock
eval "$nix eval --json --no-update-lock-file path:.#n" 2>"$here/stderr-fetch-locked.txt"
eval "$nix eval --json --no-update-lock-file --override-input rosenpass path:/nonexistent/rosenpass path:.#n" 2>"$here/stderr-fetch-path.txt"
eval "$nix flake metadata --json --no-update-lock-file path:." >"$here/flake-metadata.json"
sed -i "s#outputs = #inputs.extra.url = \"path:$work/demo\";\n  outputs = #" flake.nix
eval "$nix eval --json --no-update-lock-file path:.#n" 2>"$here/stderr-lock-mismatch.txt"
mkdir -p "$work/syntax"
printf '{\n  outputs = { self }: {\n    x = 1 +;\n  };\n}\n' > "$work/syntax/flake.nix"
eval "$nix eval path:$work/syntax#x" 2>"$here/stderr-syntax-error.txt"
# Temporary directories differ between runs; keep the samples stable.
sed -i "s#$work#/tmp/rpbuild-record#g" "$here"/*.log "$here"/*.txt "$here"/flake-metadata.json
# The 2.19 and 2.33 (--json-format 2) path-info shapes cannot be recorded with nix 2.8:
# derive them from the recorded 2.8 sample, so all three describe the same paths.
[ "$version" = 2.8 ] || exit 0
python3 - "$here" <<'PY'
import json, sys
here = sys.argv[1]
pre = json.load(open(f"{here}/path-info-pre219.json"))
base = lambda p: p.rsplit("/", 1)[1]
d219 = {}
for e in pre:
    d219[e["path"]] = {"ca": None, "closureSize": e["closureSize"], "deriver": e["deriver"],
                       "narHash": e["narHash"], "narSize": e["narSize"], "references": e["references"],
                       "registrationTime": e["registrationTime"], "signatures": [], "ultimate": True}
v2 = {"version": 2, "storeDir": "/nix/store", "info": {
    base(p): {**e, "deriver": base(e["deriver"]), "references": [base(r) for r in e["references"]],
              "storeDir": "/nix/store", "version": 2}
    for p, e in d219.items()}}
for name, data in (("path-info-219.json", d219), ("path-info-v2.json", v2)):
    with open(f"{here}/{name}", "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
PY
