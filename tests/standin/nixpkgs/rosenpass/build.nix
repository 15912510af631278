# How the rosenpass stand-in's programs are built, for both places that package them:
#   - the rosenpass flake stand-in (tests/standin/rosenpass/flake.nix, nixpkgs = null): one
#     package `rosenpass` holding bin/rp and bin/rosenpass, rp's runtime carrying its own copy
#     of Debian's glibc, as the real flake brings its own nixpkgs and so its own glibc;
#   - the stand-in nixpkgs (tests/standin/nixpkgs/packages.nix, nixpkgs = { ... }): nixpkgs'
#     split, `rosenpass` (bin/rosenpass) and `rosenpass-tools` (bin/rp, its PATH prefixed with
#     that set's busybox applets for coreutils/findutils/gawk, rosenpass and wireguard-tools'
#     wg), rp's bash using that set's one host libc.
# The stand-in nixpkgs holds a byte-for-byte copy of this file, rp.sh and rosenpass-standin.c
# in tests/standin/nixpkgs/rosenpass/ (flakes cannot read outside their directory);
# tests/standin/test_standins.py checks the copies. Edit here, then copy.
#
# Every derivation builds on buildSystem with `builder` (a static busybox: `sh -e -c`), the
# host's gcc/aarch64-linux-gnu-gcc (cc), readelf, patchelf and python3 (sandbox = false).
{ buildSystem # where every derivation builds: "x86_64-linux"
, targetSystem # what the binaries are for: "x86_64-linux" or "aarch64-linux"
, version
, payloadSize # bytes of share/rosenpass/payload
, builder # a static busybox that runs the build scripts
, cc # a C compiler that links static binaries for targetSystem
, root # where the target's Debian files are: "" (this host) or the arm64 sysroot
, loader # the ELF interpreter under root, e.g. "lib64/ld-linux-x86-64.so.2"
, libdir # the target's libraries under root, e.g. "lib/x86_64-linux-gnu"
, preamble ? "" # shell run first in every build (the stand-in nixpkgs' sysroot check)
, nixpkgs ? null
  # null: the flake's package. Else nixpkgs' split, against that set:
  #   { libc        store path whose lib/ holds the loader and bash's libraries (host-libc)
  #   , busybox     the set's busybox file (rp-path's coreutils, findutils, awk applets)
  #   , wg          wireguard-tools' bin/wg
  #   , references  store paths each package records (share/<pname>/standin-runtime-deps) }
}:
let
  split = nixpkgs != null;

  # deterministic incompressible payload: SHA-256("rosenpass:" i), i = 0, 1, ...
  payloadPy = builtins.concatStringsSep "\n" [
    "import hashlib, sys"
    "size, out = int(sys.argv[1]), sys.stdout.buffer"
    "i = n = 0"
    "while n < size:"
    "    block = hashlib.sha256(b'rosenpass:' + str(i).encode()).digest()[: size - n]"
    "    out.write(block); n += len(block); i += 1"
  ];

  references = if split then nixpkgs.references else [ ];

  mk = { pname, script, env ? { } }: builtins.derivation ({
    name = "${pname}-${version}";
    inherit pname version targetSystem;
    system = buildSystem;
    builder = builder;
    references = toString references;
    args = [
      "sh"
      "-e"
      "-c"
      (preamble + ''
        export PATH=/usr/bin:/bin
        mkdir -p "$out"
      '' + script + ''
        if [ -n "$references" ]; then
          mkdir -p "$out/share/$pname"
          for ref in $references; do echo "$ref"; done > "$out/share/$pname/standin-runtime-deps"
        fi
      '')
    ];
  } // env);

  applets = [
    "awk" "basename" "cat" "chmod" "cp" "cut" "dirname" "echo" "env" "find" "head" "ls" "mkdir"
    "mktemp" "mv" "printf" "readlink" "rm" "sort" "tail" "test" "tr" "uname" "wc" "xargs"
  ];

  # bin/rosenpass: a static C program, and the size tests' payload.
  rosenpassScript = ''
    mkdir -p "$out/bin" "$out/share/rosenpass"
    cp "$source" rosenpass-standin.c
    "$cc" -O2 -static -s -Wall -o "$out/bin/rosenpass" rosenpass-standin.c -lm 2> cc.log ||
      { cat cc.log >&2; exit 1; }
    chmod 0555 "$out/bin/rosenpass"
    /usr/bin/python3 -c "$payloadPy" "$payloadSize" > "$out/share/rosenpass/payload"
  '';
  rosenpassEnv = {
    inherit cc payloadSize payloadPy;
    source = ./rosenpass-standin.c;
  };

  # What rp runs: Debian's bash (patched to a glibc in the store) and rp-path/, what upstream's
  # wrapper puts before PATH. The flake's runtime also holds busybox, wg and wireguard-go and
  # its own glibc; nixpkgs' links rp-path to that set's packages and uses its libc.
  runtime = mk {
    pname = "rosenpass-standin-runtime";
    env = {
      inherit root loader libdir;
      applets = toString applets;
      libc = if split then nixpkgs.libc else "";
      bb = if split then nixpkgs.busybox else "";
      wg = if split then nixpkgs.wg else "";
      rosenpass = if split then "${rosenpassPackage}/bin/rosenpass" else "";
    };
    script = ''
      mkdir -p "$out/bin" "$out/rp-path"
      cp "$root/bin/bash" "$out/bin/bash"
      programs=bash
      if [ -z "$libc" ]; then
        cp "$root/bin/busybox" "$out/bin/busybox"
        ln -s busybox "$out/bin/sh"
        cp "$root/usr/bin/wg" "$root/usr/bin/wireguard-go" "$out/bin/"
        programs="bash wg wireguard-go"
        bb=../bin/busybox
        wg=../bin/wg
        # the libraries they need, from the same Debian glibc, found by name
        mkdir -p "$out/lib"
        cp -L "$root/$loader" "$out/lib/"
        todo="$out/bin/bash $out/bin/wg $out/bin/wireguard-go"
        while [ -n "$todo" ]; do
          next=
          for file in $todo; do
            for lib in $(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
              [ -e "$out/lib/$lib" ] && continue
              cp -L "$root/$libdir/$lib" "$out/lib/$lib"
              next="$next $out/lib/$lib"
            done
          done
          todo=$next
        done
        lib="$out/lib"
      else
        lib="$libc/lib"
        for needed in $(readelf -d "$out/bin/bash" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
          [ -e "$lib/$needed" ] || { echo "rosenpass runtime: $lib has no $needed (for bash)" >&2; exit 1; }
        done
      fi
      for prog in $programs; do
        chmod u+w "$out/bin/$prog"
        patchelf --set-interpreter "$lib/''${loader##*/}" --set-rpath "$lib" "$out/bin/$prog"
      done
      for applet in $applets; do
        ln -s "$bb" "$out/rp-path/$applet"
      done
      ln -s "$wg" "$out/rp-path/wg"
      # nixpkgs' rosenpass-tools wraps rp with rosenpass too; the flake's rp takes it from PATH
      if [ -n "$rosenpass" ]; then ln -s "$rosenpass" "$out/rp-path/rosenpass"; fi
      chmod 0555 "$out"/bin/*
      if [ -z "$libc" ]; then chmod 0555 "$out"/lib/*; fi
    '';
  };

  rpEnv = {
    rpText = builtins.replaceStrings [ "@runtime@" ] [ "${runtime}" ] (builtins.readFile ./rp.sh);
    passAsFile = [ "rpText" ];
  };
  rpScript = ''
    mkdir -p "$out/bin"
    cp "$rpTextPath" "$out/bin/rp"
    chmod 0555 "$out/bin/rp"
  '';

  rosenpassPackage = mk {
    pname = "rosenpass";
    env = rosenpassEnv // (if split then { } else rpEnv);
    script = rosenpassScript + (if split then "" else rpScript);
  };
in
{
  inherit runtime;
  rosenpass = rosenpassPackage;
  # nixpkgs' rosenpass-tools (bin/rp only); null for the flake, whose rosenpass holds rp
  rosenpass-tools = if split then mk { pname = "rosenpass-tools"; env = rpEnv; script = rpScript; } else null;
}
