#!@runtime@/bin/sh
# rosenpass of the rpbuild test stand-in (written for the tests): answers --version and
# help, and refuses everything else. It has no post-quantum key exchange; `rp exchange`
# of the stand-in sets up plain WireGuard without a pre-shared key instead.
version=@version@

usage() {
    cat <<'EOF'
Usage: rosenpass [--version] [help]

rpbuild test stand-in for rosenpass: no post-quantum key exchange is implemented.
Use `rp exchange` (WireGuard through wireguard-go, no pre-shared key) instead.
EOF
}

case "${1-}" in
    --version|-V|version) echo "rosenpass $version" ;;
    help|--help|-h) usage ;;
    "") usage >&2; exit 2 ;;
    *)
        echo "rosenpass (rpbuild stand-in): '$1' is not implemented: the stand-in has no post-quantum key exchange; use 'rp exchange' (WireGuard without a pre-shared key)" >&2
        exit 2
        ;;
esac
