# rpbuild test stand-in for nixpkgs.
#
# WHAT IT STANDS FOR
#   The parts of nixpkgs that rpbuild's generated flake uses, as `legacyPackages.<system>`:
#   the packages of the image profiles (busybox, coreutils-full, gnugrep, iproute2, procps,
#   iputils, bash, iptables, tcpdump, iana-etc, wireguard-tools, wireguard-go, glibc, and
#   rosenpass + rosenpass-tools for rpbuild.toml's rosenpass_source = "nixpkgs"), runtimeShell,
#   writeTextFile / writeText / writeScript / writeScriptBin / writeShellScript(Bin), and
#   dockerTools.streamLayeredImage / dockerTools.buildLayeredImage.
#   Packages carry pname, version and meta (description; meta.license for iproute2 and
#   wireguard-tools, an attribute set shaped like nixpkgs' lib.licenses entries, see
#   packages.nix), which `rpbuild sbom` reads.
#   Integration tests use it through
#     nix build --override-input nixpkgs path:tests/standin/nixpkgs \
#               --override-input rosenpass path:tests/standin/rosenpass ...
#   so that they run offline, in seconds, on the Debian 12 test machine.
#
# WHAT IT DOES NOT PROVE
#   - Nothing about the real packages: their contents, versions, closures and sizes are
#     made up. Most tools are applets of a static Debian busybox;
#     iptables, tcpdump and pkill are shell stand-ins (busybox has none of them: iptables
#     and tcpdump print a note and exit 0). `bash` is dash behind a wrapper, so
#     bash-only syntax fails. dash (runtimeShell's bin/sh), wg, wireguard-go and ping
#     (iputils) are Debian's binaries, patched with the host's patchelf to use a copy of
#     Debian's glibc in the store (package host-libc). ping is the real iputils
#     ping (ICMP datagram sockets, so no NET_RAW), but iputils' other tools (arping,
#     tracepath, clockdiff) are absent.
#   - Nothing about real dockerTools: the layering here (one layer per store path, most
#     referenced first, the rest merged into the last store layer, plus one customisation
#     layer) is a simplified version of the documented behaviour, not nixpkgs' heuristics.
#     fakeRootCommands, fromImage, enableFakechroot, etc. are not supported (they throw).
#   - rosenpass and rosenpass-tools are the rosenpass flake stand-in's programs, built by its
#     own recipe from its own sources (copied byte for byte into ./rosenpass/: build.nix,
#     rp.sh, rosenpass-standin.c; ../test_standins.py checks the copies), so they keep the
#     contract in tests/standin/rosenpass/CONTRACT.md (real bash rp, static C rosenpass doing
#     a UDP exchange into WireGuard's PSK; no post-quantum cryptography) with nixpkgs' split:
#     rosenpass holds bin/rosenpass (and the 256 KiB payload), rosenpass-tools bin/rp, whose
#     PATH prefix is this set's busybox applets (for coreutils, findutils, gawk), rosenpass
#     and wireguard-tools' wg. rp's bash is Debian's, patched to use host-libc, so an image
#     holds one libc.so.6 (the flake stand-in's runtime carries a second). Nothing about the
#     real packages' Rust build or closure.
#   - aarch64 only as far as Debian's arm64 binaries go: every derivation has system =
#     "x86_64-linux" (the build platform: the host's busybox builds everything), but the
#     aarch64-linux set packages Debian's arm64 busybox, dash, wg, wireguard-go, ping and
#     glibc from the sysroot /opt/rpbuild-standin/aarch64-linux (made by
#     .ci/standin-sysroot: `apt-get download PKG:arm64`, `dpkg-deb -x`, never installed).
#     Its images run on this x86_64 machine under qemu-user emulation (binfmt_misc);
#     that proves the image layout and the programs' architecture, not real arm64 speed.
#   - runtimeShell is dash, not bash (no bash-only syntax). It is not busybox sh on purpose:
#     Debian's static busybox runs its own applets before searching PATH, so scripts would
#     find tools the image does not hold (and busybox's ping, which needs NET_RAW).
#
# HOW IT WORKS (and what it needs from the host)
#   Builders are /bin/busybox (`sh -e -c ...`; later the store copy of it) and the host's
#   /usr/bin/python3. That works only with `sandbox = false` (the tests set it for their
#   own nix calls): the builds read host paths (/bin/busybox, /bin/bash,
#   /usr/bin/{dash,wg,wireguard-go,ping}, /usr/bin/patchelf, /usr/bin/readelf, the host glibc,
#   /usr/bin/python3, /usr/bin/gcc (rosenpass, static) or /usr/bin/aarch64-linux-gnu-gcc;
#   Debian packages busybox-static, bash, dash, wireguard-tools, wireguard-go, iputils-ping,
#   patchelf, gcc, libc6-dev, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) and, for aarch64-linux,
#   the same programs and glibc under /opt/rpbuild-standin/aarch64-linux. The stream script of
#   streamLayeredImage is a Python script with the shebang /usr/bin/python3 (host
#   python), so it runs only on a host that has one. Outputs are deterministic: fixed payloads, no timestamps, tar entries
#   sorted with uid/gid 0 and mtime 1; the same inputs give the same image ID.
#
# PAYLOADS (for size tests)
#   Every package except busybox, dash, host-libc and rosenpass-tools carries one file of a fixed
#   size made of deterministic, incompressible bytes (a SHA-256 counter stream seeded with
#   the pname, see payload.py): share/<pname>/payload, or lib/glibc-standin-payload for
#   glibc. The table below is the one the packages are built from (bytes).
#   The glibc stand-in is referenced by every package with binaries (all but iana-etc),
#   busybox by all of those, host-libc by dash, wireguard-tools, wireguard-go, iputils and
#   rosenpass-tools (through rp's runtime, rosenpass-standin-runtime): a diamond-shaped
#   dependency graph. bigPayload is one file of exactly 100 MiB of zeros (share/big-payload/payload),
#   built only when asked for.
#
#   package            payload
#   coreutils-full     204800  (200 KiB)
#   bash               153600  (150 KiB)
#   iproute2           122880  (120 KiB)
#   tcpdump            112640  (110 KiB)
#   iptables            92160   (90 KiB)
#   wireguard-tools     81920   (80 KiB)
#   wireguard-go        71680   (70 KiB)
#   procps              61440   (60 KiB)
#   gnugrep             40960   (40 KiB)
#   iputils             30720   (30 KiB)
#   iana-etc            20480   (20 KiB)
#   rosenpass          262144  (256 KiB, the rosenpass flake stand-in's payload, same bytes;
#                              rosenpass-tools has none: bin/rp only)
#   glibc             1048576    (1 MiB)
#   bigPayload      104857600  (100 MiB, zeros)
#
#   The same table is exported as legacyPackages.<system>.standinPayloadSizes.
#
# TEST-ONLY PACKAGES (no nixpkgs counterpart)
#   rpbuildTestFailing  prints 30 numbered lines and fails with exit code 3 (error reporting)
#   rpbuildTestSlow     runs for ten minutes (Ctrl-C handling; tests always interrupt it)
{
  description = "rpbuild test stand-in for nixpkgs (legacyPackages + dockerTools), offline, busybox based";

  outputs = { self }:
    let
      payloadSizes = {
        "coreutils-full" = 204800;
        "bash" = 153600;
        "iproute2" = 122880;
        "tcpdump" = 112640;
        "iptables" = 92160;
        "wireguard-tools" = 81920;
        "wireguard-go" = 71680;
        "procps" = 61440;
        "gnugrep" = 40960;
        "iputils" = 30720;
        "iana-etc" = 20480;
        "rosenpass" = 262144;
        "glibc" = 1048576;
        "bigPayload" = 104857600;
      };
      forSystem = system: import ./packages.nix { inherit system payloadSizes; };
    in
    {
      legacyPackages.x86_64-linux = forSystem "x86_64-linux";
      legacyPackages.aarch64-linux = forSystem "aarch64-linux";
    };
}
