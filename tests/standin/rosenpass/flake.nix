# rpbuild test stand-in for the rosenpass flake.
#
# WHAT IT STANDS FOR
#   rosenpass's flake package: packages.<system>.{rosenpass,rosenpass-static,default} for
#   x86_64-linux and aarch64-linux, holding bin/rosenpass and bin/rp with pname
#   "rosenpass" and version "0.2.1-standin". Tests use it with
#     --override-input rosenpass path:tests/standin/rosenpass
#   rp keeps the real command line and key layout (genkey, pubkey, exchange; pqsk, pqpk,
#   wgsk / pqpk, wgpk), so images built with it can bring up a WireGuard tunnel between
#   two containers (run with --cap-add NET_ADMIN --device /dev/net/tun).
#
# WHAT IT DOES NOT PROVE
#   - Nothing about the post-quantum key exchange or the PSK hand-over: `rosenpass` only
#     answers --version / help, and `rp exchange` configures plain WireGuard through
#     userspace wireguard-go (not `ip link add ... type wireguard`) and sets NO pre-shared
#     key. pqsk / pqpk are made-up (64 random bytes / a SHA-256 of them).
#   - Timing: if one side's first WireGuard handshake goes out before the peer is up,
#     WireGuard retries after 5 s, so tests should wait for the tunnel (ping -w), not sleep.
#   - Nothing about the real package's size or closure. rosenpass-static is the same
#     derivation as rosenpass (not a static build).
#   - Nothing about aarch64: as in the stand-in nixpkgs every derivation is built for
#     x86_64-linux (system = "x86_64-linux", the build platform); the aarch64-linux
#     packages hold x86_64 binaries and differ only by the attribute targetSystem.
#
# INPUTS: none. Nix 2.8 refuses a relative `path:../nixpkgs` input ("points outside of its
#   parent's store path") unless it is overridden or followed, so this flake builds from
#   the host instead (sandbox = false): its own copy of /bin/busybox, of /usr/bin/wg and
#   /usr/bin/wireguard-go, and of the host glibc (loader + libc) they need, all in one
#   store path, rosenpass-standin-runtime. A consumer's `inputs.rosenpass.inputs.nixpkgs.follows`
#   is accepted silently (nix ignores follows for an input that does not exist).
#
# PAYLOAD: share/rosenpass/payload, 262144 bytes (256 KiB) of deterministic incompressible
#   bytes (SHA-256 counter stream seeded with "rosenpass"), for size tests.
{
  description = "rpbuild test stand-in for rosenpass (bin/rosenpass, bin/rp over wireguard-go; no PQ exchange)";

  outputs = { self }:
    let
      version = "0.2.1-standin";
      payloadSize = 262144;
      buildSystem = "x86_64-linux";

      forSystem = system:
        let
          runtime = builtins.derivation {
            name = "rosenpass-standin-runtime-${version}";
            pname = "rosenpass-standin-runtime";
            inherit version;
            system = buildSystem;
            targetSystem = system;
            builder = "/bin/busybox";
            args = [
              "sh"
              "-e"
              "-c"
              ''
                mkdir -p "$out/bin" "$out/lib" "$out/libexec"
                cp /bin/busybox "$out/bin/busybox"
                chmod 0555 "$out/bin/busybox"
                for applet in sh cat chmod cp cut head ip kill ls mkdir printf rm sha256sum sleep test; do
                  ln -s "$out/bin/busybox" "$out/bin/$applet"
                done
                for prog in wg wireguard-go; do
                  /lib64/ld-linux-x86-64.so.2 --list "/usr/bin/$prog" > deps
                  while read -r soname arrow path rest; do
                    if [ "$arrow" = "=>" ] && [ -f "$path" ]; then cp -L "$path" "$out/lib/$soname"; fi
                  done < deps
                  cp -L "/usr/bin/$prog" "$out/libexec/$prog"
                  printf '%s\n' \
                    "#!$out/bin/sh" \
                    "# $prog of the rosenpass stand-in: the host's Debian binary with its glibc in the store" \
                    "exec $out/lib/ld-linux-x86-64.so.2 --inhibit-cache --library-path $out/lib --argv0 $prog $out/libexec/$prog \"\$@\"" \
                    > "$out/bin/$prog"
                done
                cp -L /lib64/ld-linux-x86-64.so.2 "$out/lib/ld-linux-x86-64.so.2"
                chmod 0555 "$out"/lib/* "$out"/libexec/* "$out/bin/wg" "$out/bin/wireguard-go"
              ''
            ];
          };

          substitute = file: builtins.replaceStrings [ "@runtime@" "@version@" ] [ "${runtime}" version ]
            (builtins.readFile file);

          rosenpass = builtins.derivation {
            name = "rosenpass-${version}";
            pname = "rosenpass";
            inherit version payloadSize;
            system = buildSystem;
            targetSystem = system;
            builder = "${runtime}/bin/busybox";
            rpText = substitute ./rp.sh;
            rosenpassText = substitute ./rosenpass.sh;
            passAsFile = [ "rpText" "rosenpassText" ];
            # deterministic incompressible payload: SHA-256("rosenpass:" i), i = 0, 1, ...
            payloadPy = builtins.concatStringsSep "\n" [
              "import hashlib, sys"
              "size, out = int(sys.argv[1]), sys.stdout.buffer"
              "i = n = 0"
              "while n < size:"
              "    block = hashlib.sha256(b'rosenpass:' + str(i).encode()).digest()[: size - n]"
              "    out.write(block); n += len(block); i += 1"
            ];
            args = [
              "sh"
              "-e"
              "-c"
              ''
                mkdir -p "$out/bin" "$out/share/rosenpass"
                cp "$rpTextPath" "$out/bin/rp"
                cp "$rosenpassTextPath" "$out/bin/rosenpass"
                chmod 0555 "$out/bin/rp" "$out/bin/rosenpass"
                /usr/bin/python3 -c "$payloadPy" "$payloadSize" > "$out/share/rosenpass/payload"
              ''
            ];
          } // {
            meta = {
              description = "rosenpass stand-in: bin/rosenpass (version/help only) and bin/rp (WireGuard via wireguard-go, no PQ key exchange, no PSK)";
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
