# rpbuild test stand-in for the rosenpass flake. Its contract with upstream (rosenpass/rosenpass
# at 62aa9b4, what it reproduces and what not, and which test proves each row): CONTRACT.md.
#
# WHAT IT STANDS FOR
#   rosenpass's flake package: packages.<system>.{rosenpass,rosenpass-static,default} for
#   x86_64-linux and aarch64-linux, holding bin/rosenpass and bin/rp with pname "rosenpass" and
#   version "0.2.1-standin". Tests use it with
#     --override-input rosenpass path:tests/standin/rosenpass
#   - bin/rp: a bash script (rp.sh) keeping upstream rp's command line, refusals, device set-up
#     order, EXIT trap and child process, run by a real Debian bash from the runtime below.
#   - bin/rosenpass: a static C program (rosenpass-standin.c, compiled here with the host's gcc,
#     or aarch64-linux-gnu-gcc for aarch64-linux) that runs a small UDP handshake, hands the
#     derived key to WireGuard with `wg set DEV peer WGPK preshared-key /dev/stdin ...` after the
#     first exchange and renews it, like upstream (ROSENPASS_STANDIN_REKEY_SECONDS shortens it).
#
# WHAT IT DOES NOT PROVE
#   - Nothing about post-quantum security: no McEliece, no Kyber; the key is a SHA-256 over
#     public values and nonces (CONTRACT.md, rows N1-N6). pqsk/pqpk only have upstream's sizes.
#   - Nothing about the real package's size or closure: a 256 KiB payload stands in
#     (share/rosenpass/payload). rosenpass-static is the same derivation as rosenpass.
#
# BUILD: build.nix (the recipe, called here with nixpkgs = null). The stand-in nixpkgs builds its
#   rosenpass and rosenpass-tools from byte-identical copies of build.nix, rp.sh and
#   rosenpass-standin.c (tests/standin/nixpkgs/rosenpass/): edit here, then copy.
#
# RUNTIME: one store path, rosenpass-standin-runtime, per system: Debian's bash, busybox (static),
#   wg and wireguard-go, patched with the host's patchelf to use a copy of Debian's glibc (loader,
#   libc, libtinfo) in the same store path; rp-path/ holds what upstream's wrapper puts before PATH
#   (coreutils, findutils, awk as busybox applets, and wg), and no ip, no rosenpass: those come
#   from the image, as upstream. x86_64-linux takes them from the host (/), aarch64-linux from the
#   Debian arm64 sysroot /opt/rpbuild-standin/aarch64-linux (.ci/standin-sysroot; every ELF file
#   in the aarch64 runtime and package is arm64; they run here under qemu-user binfmt).
#
# INPUTS: none. It builds from host files (sandbox = false), as the stand-in nixpkgs does: Nix
#   2.8 refuses a relative `path:../nixpkgs` input. Every derivation has system = x86_64-linux
#   (the build platform); targetSystem says what it is for. A consumer's
#   `inputs.rosenpass.inputs.nixpkgs.follows` is accepted silently.
#
# PAYLOAD: share/rosenpass/payload, 262144 bytes (256 KiB) of deterministic incompressible
#   bytes (SHA-256 counter stream seeded with "rosenpass"), for size tests.
{
  description = "rpbuild test stand-in for rosenpass (rp under real bash; a UDP key exchange feeding WireGuard's PSK; no post-quantum cryptography)";

  outputs = { self }:
    let
      version = "0.2.1-standin";
      payloadSize = 262144;
      buildSystem = "x86_64-linux";

      hosts = {
        x86_64-linux = {
          root = "";
          loader = "lib64/ld-linux-x86-64.so.2";
          libdir = "lib/x86_64-linux-gnu";
          cc = "/usr/bin/gcc";
        };
        aarch64-linux = {
          root = "/opt/rpbuild-standin/aarch64-linux";
          loader = "lib/ld-linux-aarch64.so.1";
          libdir = "lib/aarch64-linux-gnu";
          cc = "/usr/bin/aarch64-linux-gnu-gcc";
        };
      };

      forSystem = system:
        let
          host = hosts.${system};
          built = import ./build.nix {
            inherit buildSystem version payloadSize;
            targetSystem = system;
            builder = "/bin/busybox";
            inherit (host) root loader libdir cc;
          };
          rosenpass = built.rosenpass // {
            meta = {
              description = "rosenpass stand-in: bin/rp (upstream's contract, real bash) and bin/rosenpass (UDP key exchange into WireGuard's PSK, no post-quantum cryptography)";
              mainProgram = "rosenpass";
              platforms = [ "x86_64-linux" "aarch64-linux" ];
              standin = true;
            };
          };
        in
        {
          inherit rosenpass;
          rosenpass-static = rosenpass;
          default = rosenpass;
        };
    in
    {
      packages.x86_64-linux = forSystem "x86_64-linux";
      packages.aarch64-linux = forSystem "aarch64-linux";
    };
}
