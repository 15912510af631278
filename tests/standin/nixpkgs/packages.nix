# legacyPackages.<system> of the rpbuild test stand-in for nixpkgs. See flake.nix for
# what it stands for and what it does not prove. Only builtins are used (no lib).
{ system, payloadSizes }:
let
  # Every derivation is built on the build platform, x86_64-linux, by the host's busybox,
  # also in the aarch64-linux set. What goes into the images is the target's: for
  # aarch64-linux the binaries come from Debian's arm64 packages, unpacked (never
  # installed) into sysroot by .ci/standin-sysroot, and run only under qemu-user.
  buildSystem = "x86_64-linux";

  goArchs = { "x86_64-linux" = "amd64"; "aarch64-linux" = "arm64"; };
  goArch = goArchs.${system} or (throw "stand-in nixpkgs: unsupported system ${system}");

  sysroot = "/opt/rpbuild-standin/aarch64-linux";

  # Where the target's Debian binaries and libraries are: the host itself for
  # x86_64-linux, the arm64 sysroot for aarch64-linux.
  targets = {
    "x86_64-linux" = {
      busybox = "/bin/busybox";
      programs = {
        bash = "/bin/bash";
        dash = "/usr/bin/dash";
        wg = "/usr/bin/wg";
        wireguard-go = "/usr/bin/wireguard-go";
        ping = "/usr/bin/ping";
      };
      loader = "/lib64/ld-linux-x86-64.so.2";
      libDirs = [ "/lib/x86_64-linux-gnu" "/usr/lib/x86_64-linux-gnu" ];
      origin = "the host's Debian";
      # for rosenpass/build.nix: the same places, relative to root, and a static C compiler
      root = "";
      rootLoader = "lib64/ld-linux-x86-64.so.2";
      rootLibdir = "lib/x86_64-linux-gnu";
      cc = "/usr/bin/gcc";
    };
    "aarch64-linux" = {
      busybox = "${sysroot}/bin/busybox";
      programs = {
        bash = "${sysroot}/bin/bash";
        dash = "${sysroot}/bin/dash";
        wg = "${sysroot}/usr/bin/wg";
        wireguard-go = "${sysroot}/usr/bin/wireguard-go";
        ping = "${sysroot}/bin/ping";
      };
      loader = "${sysroot}/lib/ld-linux-aarch64.so.1";
      libDirs = [ "${sysroot}/lib/aarch64-linux-gnu" "${sysroot}/usr/lib/aarch64-linux-gnu" ];
      origin = "Debian's arm64";
      root = sysroot;
      rootLoader = "lib/ld-linux-aarch64.so.1";
      rootLibdir = "lib/aarch64-linux-gnu";
      cc = "/usr/bin/aarch64-linux-gnu-gcc";
    };
  };
  target = targets.${system};
  loaderName = baseNameOf target.loader;

  python = "/usr/bin/python3";
  payloadScript = ./payload.py;

  # Attributes every nixpkgs package has and rpbuild reads (pname, version, meta).
  withMeta = description: drv: drv // {
    meta = {
      inherit description;
      platforms = [ "x86_64-linux" "aarch64-linux" ];
      standin = true;
    } // (if licenses ? ${drv.pname or ""} then { license = licenses.${drv.pname}; } else { });
  };

  # meta.license as nixpkgs writes it: an element of lib.licenses, an attribute set with
  # spdxId, shortName, fullName and free (lib/licenses.nix: gpl2Only is GPL-2.0-only).
  # iproute2 and wireguard-tools are GPL-2.0 in nixpkgs (pkgs/os-specific/linux/iproute,
  # pkgs/tools/networking/wireguard-tools); other packages have no licence here, as a
  # package may have none there.
  gpl2Only = { spdxId = "GPL-2.0-only"; shortName = "gpl2Only"; fullName = "GNU General Public License v2.0 only"; free = true; };
  licenses = { iproute2 = gpl2Only; wireguard-tools = gpl2Only; };

  # For a foreign system: fail in one line when .ci/standin-sysroot has not run.
  missingSysroot = targetSystem: if targetSystem == buildSystem then "" else ''
    if [ ! -f ${sysroot}/.rpbuild-sysroot ]; then
      echo "stand-in nixpkgs: no arm64 sysroot in ${sysroot}: run .ci/standin-sysroot (as root)" >&2
      exit 1
    fi
  '';

  # A copy of a static Debian busybox, built by the host busybox.
  mkBusybox = targetSystem: source: withMeta "busybox multi-call binary (copy of ${targets.${targetSystem}.origin} static busybox)"
    (builtins.derivation {
      name = "busybox-1.35.0-standin";
      pname = "busybox";
      version = "1.35.0-standin";
      system = buildSystem;
      inherit targetSystem;
      builder = "/bin/busybox";
      args = [
        "sh"
        "-e"
        "-c"
        (missingSysroot targetSystem + ''
          mkdir -p "$out/bin"
          cp ${source} "$out/bin/busybox"
          chmod 0555 "$out/bin/busybox"
        '')
      ];
    });

  # The busybox that builds (the host's) and the one that goes into images (the target's).
  buildBusybox = mkBusybox buildSystem targets.${buildSystem}.busybox;
  busybox = if system == buildSystem then buildBusybox else mkBusybox system target.busybox;

  buildBb = "${buildBusybox}/bin/busybox";
  bb = "${busybox}/bin/busybox";

  # Every other derivation runs `busybox sh -e -c SCRIPT` from the store copy of the host's.
  # Common environment of the build script:
  #   buildBb   the busybox that runs the build (x86_64)
  #   bb        the target's busybox (what applet links point to)
  #   shell     a POSIX sh in the store, for #! lines (dash; absent in dash and host-libc)
  #   glibc     the glibc stand-in (recorded in share/<pname>/standin-runtime-deps)
  #   payload*  size and place of the payload file
  mkPackage =
    { pname
    , version
    , description
    , script
    , useGlibc ? true
    , payloadPath ? "share/${pname}/payload"
    , withShell ? true
    , env ? { }
    }:
    let
      payloadSize = payloadSizes.${pname} or null;
      preamble = ''
        mkdir -p "$out"
        applets() {
          mkdir -p "$out/bin"
          for applet in "$@"; do ln -s "$bb" "$out/bin/$applet"; done
        }
        if [ -n "$payloadSize" ]; then
          mkdir -p "$(dirname "$out/$payloadPath")"
          ${python} "$payloadScript" "$payloadSize" "$pname" > "$out/$payloadPath"
        fi
        if [ -n "$glibc" ]; then
          mkdir -p "$out/share/$pname"
          echo "$glibc" > "$out/share/$pname/standin-runtime-deps"
        fi
      '';
    in
    withMeta description (builtins.derivation ({
      name = "${pname}-${version}";
      inherit pname version bb buildBb;
      system = buildSystem;
      targetSystem = system;
      builder = buildBb;
      args = [ "sh" "-e" "-c" (preamble + script) ];
      payloadSize = if payloadSize == null then "" else toString payloadSize;
      payloadScript = if payloadSize == null then "" else payloadScript;
      inherit payloadPath;
      glibc = if useGlibc then glibc else "";
      shell = if withShell then "${dash}/bin/sh" else "";
    } // env));

  # Debian's dash (the host's, or arm64) as bin/sh: the stand-in's runtimeShell. Not busybox sh: Debian's
  # static busybox runs its own applets before searching PATH, so a script would get
  # busybox's ping (raw sockets only) instead of the image's iputils, and would find
  # tools the image does not hold. dash, like nixpkgs' bash, runs what PATH finds.
  dash = hostBinaries {
    pname = "dash";
    version = "0.5.12-debian-standin";
    description = "dash (${target.origin} binary, patched to run from the store) as bin/sh";
    programs = [ "dash" ];
    withShell = false;
    extraScript = ''ln -s dash "$out/bin/sh"'';
  };

  runtimeShell = "${dash}/bin/sh";

  # The glibc stand-in: no code, only a fixed 1 MiB payload that other packages reference.
  glibc = mkPackage {
    pname = "glibc";
    version = "2.38-standin";
    description = "glibc stand-in: a 1 MiB payload that the binary packages reference (no code)";
    useGlibc = false;
    withShell = false;
    payloadPath = "lib/glibc-standin-payload";
    script = "";
  };

  # Debian programs (the target's) the stand-in runs from the store, through host-libc.
  hostPrograms = builtins.attrValues target.programs;

  # Debian's real glibc loader and the libraries of hostPrograms, found by their ELF
  # NEEDED entries (patchelf reads foreign ELF too), recursively, in the target's lib dirs.
  host-libc = mkPackage {
    pname = "host-libc";
    version = "2.36-debian-standin";
    description = "${target.origin} glibc loader and the libraries of bash, dash, wg, wireguard-go and ping (copied from Debian)";
    useGlibc = false;
    withShell = false;
    script = ''
      mkdir -p "$out/lib"
      find_lib() {
        for dir in ${toString target.libDirs}; do
          if [ -e "$dir/$1" ]; then echo "$dir/$1"; return 0; fi
        done
        echo "host-libc: $1 not found in ${toString target.libDirs}" >&2
        return 1
      }
      todo="${toString hostPrograms}"
      while [ -n "$todo" ]; do
        next=
        for file in $todo; do
          for soname in $(/usr/bin/patchelf --print-needed "$file"); do
            [ -e "$out/lib/$soname" ] && continue
            path=$(find_lib "$soname")
            cp -L "$path" "$out/lib/$soname"
            next="$next $path"
          done
        done
        todo=$next
      done
      cp -L ${target.loader} "$out/lib/${loaderName}"
      chmod 0555 "$out"/lib/*
    '';
  };

  # A package whose bin/ holds copies of Debian binaries (each one of hostPrograms), their
  # ELF interpreter and RUNPATH pointed at host-libc with the host's patchelf, the way
  # nixpkgs' own builds point theirs at its glibc: they run in an image without /lib.
  hostBinaries = { pname, version, description, programs, withShell ? true, extraScript ? "" }:
    mkPackage {
      inherit pname version description withShell;
      env = { hostLibc = host-libc; };
      script = ''
        mkdir -p "$out/bin"
        ${builtins.concatStringsSep "\n" (map (program: ''
          cp -L "${target.programs.${program}}" "$out/bin/${program}"
          chmod 0755 "$out/bin/${program}"
          # DT_RPATH (--force-rpath), not RUNPATH: it also finds the libraries' own
          # dependencies (ping: libidn2 -> libunistring).
          /usr/bin/patchelf --set-interpreter "$hostLibc/lib/${loaderName}" \
            --force-rpath --set-rpath "$hostLibc/lib" "$out/bin/${program}"
          chmod 0555 "$out/bin/${program}"
        '') programs)}
      '' + extraScript;
    };

  # A program busybox lacks: prints a note, changes nothing, exits 0.
  noopScripts = names: ''
    mkdir -p "$out/bin"
    for prog in ${toString names}; do
      cat > "$out/bin/$prog" <<EOF
    #!$shell
    # $prog of the rpbuild stand-in nixpkgs: busybox has none, so this does nothing.
    case "\$1" in
        --version|-V) echo "$prog v$version (rpbuild stand-in, does nothing)"; exit 0 ;;
    esac
    echo "$prog (rpbuild stand-in): not implemented, nothing done: \$*" >&2
    exit 0
    EOF
      chmod 0555 "$out/bin/$prog"
    done
  '';

  coreutilsApplets = [
    "ls" "cat" "cp" "mv" "rm" "mkdir" "chmod" "chown" "ln" "echo" "env" "head" "tail" "sort"
    "uniq" "wc" "tr" "cut" "id" "sleep" "date" "mktemp" "basename" "dirname" "printf" "test"
    "true" "false" "touch" "stat" "seq" "tee" "yes" "base64" "od" "dd" "readlink" "realpath"
    # more coreutils that Debian's busybox has
    "[" "chgrp" "df" "du" "expand" "expr" "factor" "fold" "groups" "link" "logname" "md5sum"
    "mkfifo" "mknod" "nl" "nproc" "paste" "pwd" "rmdir" "sha1sum" "sha256sum" "sha512sum"
    "shred" "shuf" "sync" "tac" "timeout" "truncate" "tty" "uname" "unexpand" "unlink" "whoami"
  ];

  # Only applets this busybox really has (the list above is checked at build time).
  appletScript = names: ''
    for applet in ${toString names}; do
      # The same Debian busybox version on both architectures: the build one's list holds.
      "$buildBb" --list | grep -qxF -- "$applet" || { echo "busybox has no applet $applet" >&2; exit 1; }
    done
    applets ${toString names}
  '';

  # nixpkgs' rosenpass (bin/rosenpass) and rosenpass-tools (bin/rp): built by the rosenpass
  # flake stand-in's own recipe and sources (byte-identical copies in ./rosenpass/, checked by
  # ../test_standins.py), so both rosenpass sources keep the same contract, but against this
  # set: rp's bash runs on this set's host-libc, its PATH prefix is this set's busybox applets
  # (coreutils, findutils, gawk), rosenpass and wireguard-tools' wg, as nixpkgs wraps rp.
  # So the image holds one libc, as nixpkgs' packages share one glibc; the flake stand-in
  # carries a libc of its own, as the real flake brings its own nixpkgs.
  rosenpassBuilt = import ./rosenpass/build.nix {
    inherit buildSystem;
    targetSystem = system;
    version = "0.2.1-standin";
    payloadSize = payloadSizes.rosenpass;
    builder = buildBb;
    inherit (target) root cc;
    loader = target.rootLoader;
    libdir = target.rootLibdir;
    preamble = missingSysroot system;
    nixpkgs = {
      libc = host-libc;
      busybox = bb;
      wg = "${packages.wireguard-tools}/bin/wg";
      references = [ glibc ];
    };
  };

  packages = {
    inherit busybox dash glibc host-libc;

    coreutils-full = mkPackage {
      pname = "coreutils-full";
      version = "9.4-standin";
      description = "GNU core utilities stand-in: busybox applets";
      script = appletScript coreutilsApplets;
    };

    gnugrep = mkPackage {
      pname = "gnugrep";
      version = "3.11-standin";
      description = "GNU grep stand-in: busybox grep, egrep, fgrep";
      script = appletScript [ "grep" "egrep" "fgrep" ];
    };

    iproute2 = mkPackage {
      pname = "iproute2";
      version = "6.6.0-standin";
      description = "iproute2 stand-in: busybox ip";
      script = appletScript [ "ip" ];
    };

    procps = mkPackage {
      pname = "procps";
      version = "3.3.17-standin";
      description = "procps stand-in: busybox ps, sysctl, kill, free, top and a shell pkill";
      env = {
        pkillText = builtins.replaceStrings [ "@shell@" "@bb@" ] [ runtimeShell bb ] (builtins.readFile ./pkill.sh);
        passAsFile = [ "pkillText" ];
      };
      script = appletScript [ "ps" "sysctl" "kill" "free" "top" ] + ''
        cp "$pkillTextPath" "$out/bin/pkill"
        chmod 0555 "$out/bin/pkill"
      '';
    };

    # The host's iputils ping, not busybox's: like the real one it pings through an ICMP
    # datagram socket, so containers need no NET_RAW (busybox ping needs a raw socket).
    iputils = hostBinaries {
      pname = "iputils";
      version = "20221126-standin";
      description = "iputils stand-in: ${target.origin} ping (iputils-ping) with its glibc in the store";
      programs = [ "ping" ];
    };

    bash = mkPackage {
      pname = "bash";
      version = "5.2p21-standin";
      description = "bash stand-in: dash behind bin/bash and bin/sh (no bash-only syntax)";
      script = ''
        mkdir -p "$out/bin"
        ln -s "$shell" "$out/bin/sh"
        cat > "$out/bin/bash" <<EOF
        #!$shell
        # bash of the rpbuild stand-in nixpkgs: dash (no bash-only syntax).
        if [ "\$1" = "--version" ]; then
            echo "GNU bash, version $version (rpbuild stand-in: dash)"
            exit 0
        fi
        exec $shell "\$@"
        EOF
        chmod 0555 "$out/bin/bash"
      '';
    };

    iptables = mkPackage {
      pname = "iptables";
      version = "1.8.10-standin";
      description = "iptables stand-in: scripts that print a note and exit 0 (busybox has no iptables)";
      script = noopScripts [ "iptables" "ip6tables" "iptables-save" "iptables-restore" ];
    };

    tcpdump = mkPackage {
      pname = "tcpdump";
      version = "4.99.4-standin";
      description = "tcpdump stand-in: a script that prints a note and exits 0 (busybox has no tcpdump)";
      script = noopScripts [ "tcpdump" ];
    };

    iana-etc = mkPackage {
      pname = "iana-etc";
      version = "20231227-standin";
      description = "iana-etc stand-in: a few lines of /etc/protocols and /etc/services";
      useGlibc = false;
      withShell = false;
      env = { protocols = ./iana-etc/protocols; services = ./iana-etc/services; };
      script = ''
        mkdir -p "$out/etc"
        cp "$protocols" "$out/etc/protocols"
        cp "$services" "$out/etc/services"
        chmod 0444 "$out/etc/protocols" "$out/etc/services"
      '';
    };

    wireguard-tools = hostBinaries {
      pname = "wireguard-tools";
      version = "1.0.20210914-standin";
      description = "wireguard-tools stand-in: ${target.origin} wg with its glibc in the store";
      programs = [ "wg" ];
    };

    wireguard-go = hostBinaries {
      pname = "wireguard-go";
      version = "0.0.20220316-standin";
      description = "wireguard-go stand-in: ${target.origin} userspace WireGuard with its glibc in the store";
      programs = [ "wireguard-go" ];
    };

    # nixpkgs fetches rosenpass with fetchFromGitHub at rev = "v${version}"; rpbuild
    # reads src.rev for the image's revision label.
    rosenpass = withMeta "rosenpass stand-in: bin/rosenpass (same contract and sources as tests/standin/rosenpass), built against this nixpkgs"
      rosenpassBuilt.rosenpass // {
      src = { owner = "rosenpass"; repo = "rosenpass"; rev = "v${rosenpassBuilt.rosenpass.version}"; };
    };

    rosenpass-tools = withMeta "rosenpass-tools stand-in: bin/rp (same contract and sources as tests/standin/rosenpass), wrapped with this nixpkgs' tools and rosenpass"
      rosenpassBuilt.rosenpass-tools;

    # Test-only packages (no nixpkgs counterpart): a build that fails with a known
    # log, and one that takes ten minutes, for rpbuild's error and Ctrl-C tests.
    rpbuildTestFailing = mkPackage {
      pname = "rpbuild-test-failing";
      version = "1";
      description = "A build that prints 30 numbered lines and fails with exit code 3";
      useGlibc = false;
      withShell = false;
      script = ''
        i=1
        while [ "$i" -le 30 ]; do echo "failing build line $i"; i=$((i + 1)); done
        echo "boom: this stand-in package always fails" >&2
        exit 3
      '';
    };

    rpbuildTestSlow = mkPackage {
      pname = "rpbuild-test-slow";
      version = "1";
      description = "A build that runs for ten minutes (tests interrupt it)";
      useGlibc = false;
      withShell = false;
      script = ''
        echo "slow build started"
        i=0
        while [ "$i" -lt 600 ]; do "$buildBb" sleep 1; i=$((i + 1)); done
        mkdir -p "$out"
      '';
    };

    bigPayload = mkPackage {
      pname = "big-payload";
      version = "1";
      description = "One file of exactly 100 MiB of zeros (share/big-payload/payload), for benchmarks";
      useGlibc = false;
      withShell = false;
      script = ''
        mkdir -p "$out/share/big-payload"
        dd if=/dev/zero of="$out/share/big-payload/payload" bs=1048576 count=${toString (payloadSizes.bigPayload / 1048576)} 2>/dev/null
        test "$(wc -c < "$out/share/big-payload/payload")" -eq ${toString payloadSizes.bigPayload}
      '';
    };
  };

  # Both run busybox at build time: the host's.
  trivial = import ./trivial-builders.nix { inherit system buildSystem runtimeShell; bb = buildBb; };

  dockerTools = import ./docker-tools.nix { inherit system buildSystem goArch python; bb = buildBb; };
in
packages // trivial // {
  inherit runtimeShell dockerTools;
  standinPayloadSizes = payloadSizes;
}
