#!@runtime@/bin/sh
# rp of the rpbuild test stand-in for rosenpass (written for the tests).
#
# Keeps the real rp's command line and key layout:
#   rp genkey SKDIR          -> SKDIR/{pqsk,pqpk,wgsk}, SKDIR mode 0700
#   rp pubkey SKDIR PKDIR    -> PKDIR/{pqpk,wgpk}   (only PKDIR may go to a peer)
#   rp exchange SKDIR [dev DEV] [listen IP:PORT]
#      [peer PKDIR [endpoint IP:PORT] [persistent-keepalive N] [allowed-ips CIDR[,CIDR]...]]...
# but NOT the post-quantum key exchange: exchange sets up plain WireGuard and sets NO
# pre-shared key. DEV is made by userspace wireguard-go (the test kernel has no
# WireGuard), which needs /dev/net/tun and NET_ADMIN. The WireGuard listen port is
# PORT+1, a peer's WireGuard endpoint is its rosenpass port + 1, as with the real rp.
# Nothing listens on PORT itself. IPv6 addresses are written [ADDR]:PORT.
# pqsk is 64 random bytes, pqpk the SHA-256 (hex) of a fixed prefix and pqsk.
PATH=@runtime@/bin
export PATH

verbose=0

usage() {
    cat <<'EOF'
Usage: rp [verbose] COMMAND [ARGS]...
  rp genkey PRIVATE_KEYS_DIR
  rp pubkey PRIVATE_KEYS_DIR PUBLIC_KEYS_DIR
  rp exchange PRIVATE_KEYS_DIR [dev <device>] [listen <ip>:<port>]
      [peer PUBLIC_KEYS_DIR [endpoint <ip>:<port>] [persistent-keepalive <seconds>]
       [allowed-ips <ip1>/<cidr1>[,<ip2>/<cidr2>]...]]...
  rp help | --help | --version

rpbuild test stand-in: exchange runs WireGuard (wireguard-go) without any
post-quantum key exchange and without a pre-shared key.
EOF
}

die() {
    echo "rp: $*" >&2
    exit 1
}

usage_error() {
    echo "rp: $*" >&2
    usage >&2
    exit 2
}

run() {
    if [ "$verbose" = 1 ]; then echo "+ $*" >&2; fi
    "$@"
}

derive_pqpk() {
    { printf 'rosenpass-standin-pqpk\n'; cat "$1"; } | sha256sum | cut -d ' ' -f 1
}

# split_port ADDR:PORT -> sets host and port; [v6]:port keeps the brackets in host.
split_port() {
    case "$1" in
        *:*) ;;
        *) die "$2: expected <ip>:<port>, got '$1'" ;;
    esac
    host=${1%:*}
    port=${1##*:}
    case "$port" in
        ''|*[!0-9]*) die "$2: bad port in '$1'" ;;
    esac
    if [ "$port" -lt 1 ] || [ "$port" -gt 65534 ]; then
        die "$2: port $port out of range 1..65534 (WireGuard uses port+1)"
    fi
}

cmd_genkey() {
    [ $# -eq 1 ] || usage_error "genkey takes exactly one argument: PRIVATE_KEYS_DIR"
    skdir=$1
    if [ -e "$skdir" ] || [ -L "$skdir" ]; then
        [ -d "$skdir" ] || die "genkey: $skdir exists and is not a directory"
        if [ -n "$(ls -A "$skdir")" ]; then
            die "genkey: $skdir exists and is not empty; refusing to overwrite keys"
        fi
    fi
    umask 077
    run mkdir -p "$skdir" || die "genkey: cannot create $skdir"
    run chmod 0700 "$skdir" || die "genkey: cannot chmod $skdir"
    head -c 64 /dev/urandom > "$skdir/pqsk" || die "genkey: cannot write $skdir/pqsk"
    derive_pqpk "$skdir/pqsk" > "$skdir/pqpk" || die "genkey: cannot write $skdir/pqpk"
    wg genkey > "$skdir/wgsk" || die "genkey: wg genkey failed"
}

cmd_pubkey() {
    [ $# -eq 2 ] || usage_error "pubkey takes two arguments: PRIVATE_KEYS_DIR PUBLIC_KEYS_DIR"
    skdir=$1
    pkdir=$2
    for file in pqsk pqpk wgsk; do
        [ -f "$skdir/$file" ] || die "pubkey: $skdir/$file is missing (run rp genkey $skdir first)"
    done
    run mkdir -p "$pkdir" || die "pubkey: cannot create $pkdir"
    cp "$skdir/pqpk" "$pkdir/pqpk" || die "pubkey: cannot write $pkdir/pqpk"
    wg pubkey < "$skdir/wgsk" > "$pkdir/wgpk" || die "pubkey: wg pubkey failed"
    chmod 0644 "$pkdir/pqpk" "$pkdir/wgpk"
}

cmd_exchange() {
    [ $# -ge 1 ] || usage_error "exchange needs PRIVATE_KEYS_DIR"
    skdir=$1
    shift
    dev=rosenpass0
    listen=
    npeers=0
    while [ $# -gt 0 ]; do
        keyword=$1
        [ $# -ge 2 ] || usage_error "exchange: '$keyword' needs a value"
        case "$keyword" in
            dev) dev=$2 ;;
            listen) listen=$2 ;;
            peer)
                npeers=$((npeers + 1))
                eval "peer_${npeers}_dir=\$2"
                eval "peer_${npeers}_endpoint="
                eval "peer_${npeers}_keepalive="
                eval "peer_${npeers}_allowed="
                ;;
            endpoint|persistent-keepalive|allowed-ips)
                [ "$npeers" -gt 0 ] || usage_error "exchange: '$keyword' must follow a 'peer PUBLIC_KEYS_DIR'"
                case "$keyword" in
                    endpoint) eval "peer_${npeers}_endpoint=\$2" ;;
                    persistent-keepalive) eval "peer_${npeers}_keepalive=\$2" ;;
                    allowed-ips)
                        eval "old=\$peer_${npeers}_allowed"
                        if [ -n "$old" ]; then
                            eval "peer_${npeers}_allowed=\$old,\$2"
                        else
                            eval "peer_${npeers}_allowed=\$2"
                        fi
                        ;;
                esac
                ;;
            *) usage_error "exchange: unknown argument '$keyword'" ;;
        esac
        shift 2
    done

    [ -f "$skdir/wgsk" ] || die "exchange: $skdir/wgsk is missing (run rp genkey $skdir first)"
    [ -f "$skdir/pqsk" ] || die "exchange: $skdir/pqsk is missing (run rp genkey $skdir first)"
    wgport=
    if [ -n "$listen" ]; then
        split_port "$listen" listen
        wgport=$((port + 1))
    fi
    i=1
    while [ "$i" -le "$npeers" ]; do
        eval "pkdir=\$peer_${i}_dir"
        [ -f "$pkdir/wgpk" ] || die "exchange: $pkdir/wgpk is missing (copy the peer's rp pubkey directory)"
        [ -f "$pkdir/pqpk" ] || die "exchange: $pkdir/pqpk is missing (copy the peer's rp pubkey directory)"
        eval "endpoint=\$peer_${i}_endpoint"
        if [ -n "$endpoint" ]; then split_port "$endpoint" endpoint; fi
        i=$((i + 1))
    done
    [ -c /dev/net/tun ] || die "exchange: /dev/net/tun is missing (run the container with --device /dev/net/tun and --cap-add NET_ADMIN)"
    if ip link show "$dev" >/dev/null 2>&1; then
        die "exchange: device $dev exists already"
    fi

    wgpid=
    cleanup() {
        trap - EXIT TERM INT
        if [ -n "$wgpid" ]; then
            kill -TERM "$wgpid" 2>/dev/null
            wait "$wgpid" 2>/dev/null
        fi
        ip link del "$dev" 2>/dev/null
        return 0
    }
    trap cleanup EXIT
    trap 'exit 0' TERM INT

    if [ "$verbose" = 1 ]; then echo "+ wireguard-go -f $dev &" >&2; fi
    WG_PROCESS_FOREGROUND=1 wireguard-go -f "$dev" &
    wgpid=$!
    tries=0
    until wg show "$dev" >/dev/null 2>&1; do
        kill -0 "$wgpid" 2>/dev/null || { wgpid=; die "exchange: wireguard-go could not create $dev"; }
        tries=$((tries + 1))
        [ "$tries" -le 100 ] || die "exchange: $dev did not come up within 10 s"
        sleep 0.1
    done

    if [ -n "$wgport" ]; then
        run wg set "$dev" private-key "$skdir/wgsk" listen-port "$wgport" || die "exchange: wg set failed"
    else
        run wg set "$dev" private-key "$skdir/wgsk" || die "exchange: wg set failed"
    fi
    i=1
    while [ "$i" -le "$npeers" ]; do
        eval "pkdir=\$peer_${i}_dir; endpoint=\$peer_${i}_endpoint; keepalive=\$peer_${i}_keepalive; allowed=\$peer_${i}_allowed"
        set -- peer "$(cat "$pkdir/wgpk")"
        if [ -n "$endpoint" ]; then
            split_port "$endpoint" endpoint
            set -- "$@" endpoint "$host:$((port + 1))"
        fi
        if [ -n "$keepalive" ]; then set -- "$@" persistent-keepalive "$keepalive"; fi
        if [ -n "$allowed" ]; then set -- "$@" allowed-ips "$allowed"; fi
        run wg set "$dev" "$@" || die "exchange: wg set $dev $* failed"
        i=$((i + 1))
    done
    run ip link set "$dev" up || die "exchange: ip link set $dev up failed"
    echo "rp (stand-in): $dev is up${wgport:+, WireGuard port $wgport}, $npeers peer(s); no post-quantum key exchange, no pre-shared key" >&2

    while :; do
        wait "$wgpid"
        status=$?
        if ! kill -0 "$wgpid" 2>/dev/null; then
            wgpid=
            die "exchange: wireguard-go exited with status $status"
        fi
    done
}

while [ $# -gt 0 ]; do
    case "$1" in
        verbose) verbose=1; shift ;;
        explain) die "'explain' is not supported by the stand-in" ;;
        *) break ;;
    esac
done

[ $# -gt 0 ] || usage_error "no command given"
command=$1
shift
case "$command" in
    genkey) cmd_genkey "$@" ;;
    pubkey) cmd_pubkey "$@" ;;
    exchange) cmd_exchange "$@" ;;
    help|--help|-h) usage ;;
    --version|version) echo "rp (rosenpass @version@, rpbuild stand-in)" ;;
    *) usage_error "unknown command '$command'" ;;
esac
