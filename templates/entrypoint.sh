# rpbuild-entrypoint: run one rosenpass peer in a container.
#
# Written for rpbuild (templates/entrypoint.sh); flake.nix prepends the #! line of
# the image's runtimeShell. POSIX sh only: real images run it with bash, the test
# stand-ins with dash. Tools it may use are those of every profile:
# coreutils, grep, ip and rp; wg, ping and wireguard-go only where present.
#
#   MODE=standalone  make keys (if absent), publish the public ones, then exit or exec "$@"
#   MODE=server      keys, wait for the client's public keys, rp exchange ... listen
#   MODE=client      keys, wait for the server's public keys, rp exchange ... endpoint
#   rpbuild-entrypoint healthcheck   the container's healthcheck (see health below)
#
# Configuration is environment variables (README "Two-peer topology"). Everything is
# validated before anything is done: bad configuration prints one line and exits 2;
# a failure at run time (no WireGuard, peer keys never came, rp died) exits 1.
# Key material is never printed: only file names.
#
# WireGuard: upstream rp runs `ip link add dev DEV type wireguard || true`, then
# `ip link set dev DEV up` under set -e: it needs the kernel's WireGuard or a device that
# exists already, and never starts wireguard-go. So with WIREGUARD=userspace, or (auto)
# when the kernel cannot make a wireguard link, this script starts `wireguard-go DEV`
# first; rp then brings that TUN device up and `wg` drives it through its UAPI socket.
#
# Stopping: SIGTERM goes to rp, which (bash, an EXIT trap) deletes DEV and exits 143;
# rosenpass, rp's child, is left running by rp. This script then stops what rp left
# (rosenpass, wireguard-go, a device rp could not delete) and exits with rp's status.

# "A && B || die" is meant: die when either step fails.
# shellcheck disable=SC2015
set -u
umask 077

PROG=rpbuild-entrypoint
DEV=rosenpass0
RP_PID=
RP_KIDS=
WG_PID=
STOPPING=
NO_MODULE="no WireGuard kernel module"

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }

# --- processes ----------------------------------------------------------------

# Sets _found to the PIDs whose parent is $1 (from /proc: no ps in minimal images).
children_of() {
    _found=
    for _stat in /proc/[0-9]*/stat; do
        _line=
        read -r _line 2>/dev/null <"$_stat" || continue
        _tail=${_line##*) } # after "PID (comm) ": state ppid ...
        _ppid=${_tail#* }
        [ "${_ppid%% *}" = "$1" ] && _found="$_found ${_line%% *}"
    done
}

# Is PID $1 running (a zombie is not)?
alive() {
    _line=
    read -r _line 2>/dev/null <"/proc/$1/stat" || return 1
    _tail=${_line##*) }
    [ "${_tail%% *}" != Z ]
}

# Stop the processes $@ (not our children, so not waited for): TERM, then KILL after 3 s.
stop_pids() {
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null
    _tries=0
    for _pid in "$@"; do
        while alive "$_pid" && [ "$_tries" -lt 30 ]; do
            sleep 0.1
            _tries=$((_tries + 1))
        done
    done
    kill -KILL "$@" 2>/dev/null
    return 0
}

stop_wireguard_go() {
    if [ -n "$WG_PID" ]; then
        kill -TERM "$WG_PID" 2>/dev/null
        wait "$WG_PID" 2>/dev/null
        WG_PID=
    fi
}

# After rp has exited (or to stop it): what rp leaves behind goes too. Upstream rp runs
# rosenpass as a plain child of bash, so on SIGTERM rosenpass outlives rp; as PID 1 we
# also inherit it. A device rp could not delete (rp killed outright) is deleted here.
cleanup() {
    if [ -n "$RP_PID" ] && kill -0 "$RP_PID" 2>/dev/null; then
        children_of "$RP_PID"
        RP_KIDS="$RP_KIDS $_found"
        kill -TERM "$RP_PID" 2>/dev/null
        wait "$RP_PID" 2>/dev/null
    fi
    RP_PID=
    children_of $$
    _left=
    _names=
    for _pid in $RP_KIDS $_found; do
        [ "$_pid" != "$WG_PID" ] && alive "$_pid" || continue
        case " $_left " in *" $_pid "*) continue ;; esac
        _left="$_left $_pid"
        _comm='?'
        read -r _comm 2>/dev/null <"/proc/$_pid/comm"
        _names="${_names:+$_names, }$_comm ($_pid)"
    done
    if [ -n "$_left" ]; then
        say "stopping what rp left running: $_names"
        # shellcheck disable=SC2086
        stop_pids $_left
    fi
    RP_KIDS=
    if ip link show dev "$DEV" >/dev/null 2>&1; then
        ip link del dev "$DEV" 2>/dev/null && say "deleted $DEV, which rp left behind"
    fi
    stop_wireguard_go
}

# A signal while rp runs goes to rp (its EXIT trap deletes the device); the main loop
# then cleans up and exits with rp's status. Before rp, clean up and exit at once.
on_signal() {
    STOPPING=$1
    if [ -n "$RP_PID" ] && kill -0 "$RP_PID" 2>/dev/null; then
        children_of "$RP_PID"
        RP_KIDS="$RP_KIDS $_found"
        kill -"$1" "$RP_PID" 2>/dev/null
        return
    fi
    cleanup
    exit "$2"
}

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    cleanup
    exit 1
}

bad() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 2
}

# docker stop signals PID 1, which ignores signals it has no handler for.
trap 'on_signal TERM 143' TERM
trap 'on_signal INT 130' INT

now() { date +%s; }

# --- validation -------------------------------------------------------------

is_uint() {
    case $1 in '' | *[!0-9]*) return 1 ;; esac
    [ ${#1} -le 18 ]
}

is_ipv4() {
    case $1 in '' | *[!0-9.]* | .* | *. | *..*) return 1 ;; esac
    _rest=$1
    _n=0
    while [ -n "$_rest" ]; do
        _octet=${_rest%%.*}
        case $_rest in *.*) _rest=${_rest#*.} ;; *) _rest= ;; esac
        _n=$((_n + 1))
        case $_octet in 0?*) return 1 ;; esac
        [ ${#_octet} -le 3 ] && [ "$_octet" -le 255 ] || return 1
    done
    [ "$_n" -eq 4 ]
}

# Plain hex groups with at most one "::" (no embedded IPv4, no zone index).
is_ipv6() {
    case $1 in '' | : | *[!0-9A-Fa-f:]* | *:::* | :[!:]* | *[!:]:) return 1 ;; esac
    _double=0
    case $1 in *::*)
        _double=1
        case ${1#*::} in *::*) return 1 ;; esac
        ;;
    esac
    _rest=$1
    _n=0
    while [ -n "$_rest" ]; do
        _group=${_rest%%:*}
        case $_rest in *:*) _rest=${_rest#*:} ;; *) _rest= ;; esac
        [ -z "$_group" ] && continue
        [ ${#_group} -le 4 ] || return 1
        _n=$((_n + 1))
    done
    if [ "$_double" = 1 ]; then [ "$_n" -le 7 ]; else [ "$_n" -eq 8 ]; fi
}

# parse_cidr NAME VALUE: sets _fam (4 or 6), _addr and _len (host length if none given).
parse_cidr() {
    case $2 in */) bad "$1: missing prefix length in '$2'" ;; esac
    _addr=${2%/*}
    _len=
    [ "$_addr" = "$2" ] || _len=${2##*/}
    if is_ipv4 "$_addr"; then
        _fam=4
        _max=32
    elif is_ipv6 "$_addr"; then
        _fam=6
        _max=128
    else
        bad "$1: '$2' is not an IPv4 or IPv6 address"
    fi
    if [ -z "$_len" ]; then
        _len=$_max
    elif ! is_uint "$_len" || [ "$_len" -gt "$_max" ]; then
        bad "$1: bad prefix length in '$2' (0 to $_max)"
    fi
}

# A list: comma separated, blanks ignored.
strip_blanks() { printf '%s' "$1" | tr -d ' \t'; }

# parse_vpn NAME VALUE PREFIX: at most one IPv4 and one IPv6 address, each with an
# optional prefix length; sets PREFIX_v4 and PREFIX_v6 (ADDR/LEN or empty).
parse_vpn() {
    _list=$(strip_blanks "$2")
    [ -n "$_list" ] || bad "$1 is empty"
    _v4=
    _v6=
    case $_list in *,) bad "$1: empty entry in '$_list'" ;; esac
    _items=$_list
    while [ -n "$_items" ]; do
        _item=${_items%%,*}
        case $_items in *,*) _items=${_items#*,} ;; *) _items= ;; esac
        parse_cidr "$1" "$_item"
        if [ "$_fam" = 4 ]; then
            [ -z "$_v4" ] || bad "$1: more than one IPv4 address in '$_list'"
            _v4=$_addr/$_len
        else
            case $_addr in [Ff][Ee][89AaBb][0-9A-Fa-f]:*)
                bad "$1: '$_addr' is link-local (fe80::/10); use a ULA address (fd00::/8)"
                ;;
            esac
            [ -z "$_v6" ] || bad "$1: more than one IPv6 address in '$_list'"
            _v6=$_addr/$_len
        fi
    done
    eval "${3}_v4=\$_v4; ${3}_v6=\$_v6"
}

# parse_allowed NAME VALUE: any number of CIDRs; sets ALLOWED (normalised, comma separated).
parse_allowed() {
    _list=$(strip_blanks "$2")
    [ -n "$_list" ] || bad "$1 is empty"
    case $_list in *,) bad "$1: empty entry in '$_list'" ;; esac
    ALLOWED=
    _items=$_list
    while [ -n "$_items" ]; do
        _item=${_items%%,*}
        case $_items in *,*) _items=${_items#*,} ;; *) _items= ;; esac
        parse_cidr "$1" "$_item"
        ALLOWED=${ALLOWED:+$ALLOWED,}$_addr/$_len
    done
}

host_of() { printf '%s' "${1%/*}"; }

# ADDR:PORT, with IPv6 addresses in brackets.
endpoint() {
    case $1 in *:*) printf '[%s]:%s' "$1" "$2" ;; *) printf '%s:%s' "$1" "$2" ;; esac
}

check_dir() {
    case $2 in /*) ;; *) bad "$1 must be an absolute path (got '$2')" ;; esac
}

# One directory inside another (or the same)?
nested() {
    case "${1%/}/" in "${2%/}/"*) return 0 ;; esac
    case "${2%/}/" in "${1%/}/"*) return 0 ;; esac
    return 1
}

# Read and check the configuration of server or client mode.
load_peer_config() {
    PRIVATE_KEY_DIR=${PRIVATE_KEY_DIR:-/keys/private}
    SERVER_PUBKEY_DIR=${SERVER_PUBKEY_DIR:-/keys/public/server}
    CLIENT_PUBKEY_DIR=${CLIENT_PUBKEY_DIR:-/keys/public/client}
    SERVER_PORT=${SERVER_PORT:-9999}
    PEER_TIMEOUT=${PEER_TIMEOUT:-120}
    DEVICE_TIMEOUT=${DEVICE_TIMEOUT:-30}
    WIREGUARD=${WIREGUARD:-auto}
    case $WIREGUARD in
        auto | kernel | userspace) ;;
        *) bad "WIREGUARD: unknown value '$WIREGUARD' (auto, kernel or userspace)" ;;
    esac
    check_dir PRIVATE_KEY_DIR "$PRIVATE_KEY_DIR"
    check_dir SERVER_PUBKEY_DIR "$SERVER_PUBKEY_DIR"
    check_dir CLIENT_PUBKEY_DIR "$CLIENT_PUBKEY_DIR"
    if nested "$SERVER_PUBKEY_DIR" "$CLIENT_PUBKEY_DIR"; then
        bad "SERVER_PUBKEY_DIR and CLIENT_PUBKEY_DIR must be separate directories"
    fi
    for _pub in "$SERVER_PUBKEY_DIR" "$CLIENT_PUBKEY_DIR"; do
        if nested "$PRIVATE_KEY_DIR" "$_pub"; then
            bad "PRIVATE_KEY_DIR must not overlap a public key directory ($_pub)"
        fi
    done
    if ! is_uint "$SERVER_PORT" || [ "$SERVER_PORT" -lt 1 ] || [ "$SERVER_PORT" -gt 65534 ]; then
        bad "SERVER_PORT: '$SERVER_PORT' is not a port from 1 to 65534 (WireGuard uses port+1)"
    fi
    _val=
    for _var in PEER_TIMEOUT DEVICE_TIMEOUT; do
        eval "_val=\$$_var"
        if ! is_uint "$_val" || [ "$_val" -lt 1 ]; then
            bad "$_var: '$_val' is not a number of seconds"
        fi
    done

    if [ "$MODE" = server ]; then
        OWN_VAR=SERVER_VPN_IP PEER_VAR=CLIENT_VPN_IP PEER=client
        OWN_PUB=$SERVER_PUBKEY_DIR PEER_PUB=$CLIENT_PUBKEY_DIR
    else
        OWN_VAR=CLIENT_VPN_IP PEER_VAR=SERVER_VPN_IP PEER=server
        OWN_PUB=$CLIENT_PUBKEY_DIR PEER_PUB=$SERVER_PUBKEY_DIR
    fi
    eval "_own=\${$OWN_VAR-}; _peer=\${$PEER_VAR-}"
    [ -n "$_own" ] || bad "$OWN_VAR is not set (the $MODE's address on the tunnel)"
    parse_vpn "$OWN_VAR" "$_own" OWN
    PEER_v4=
    PEER_v6=
    if [ -n "$_peer" ]; then
        parse_vpn "$PEER_VAR" "$_peer" PEER
        if [ "${OWN_v4:+y}" != "${PEER_v4:+y}" ]; then
            bad "$OWN_VAR and $PEER_VAR must both have an IPv4 address or neither"
        fi
        if [ "${OWN_v6:+y}" != "${PEER_v6:+y}" ]; then
            bad "$OWN_VAR and $PEER_VAR must both have an IPv6 address or neither"
        fi
    fi
    if [ -n "${ALLOWED_IPS-}" ]; then
        parse_allowed ALLOWED_IPS "$ALLOWED_IPS"
    elif [ -n "$_peer" ]; then
        ALLOWED=
        [ -z "$PEER_v4" ] || ALLOWED=$(host_of "$PEER_v4")/32
        [ -z "$PEER_v6" ] || ALLOWED=${ALLOWED:+$ALLOWED,}$(host_of "$PEER_v6")/128
    else
        bad "$PEER_VAR or ALLOWED_IPS must be set (what the $MODE sends through the tunnel)"
    fi

    PUBLIC_IP=
    if [ -n "${SERVER_PUBLIC_IP-}" ]; then
        PUBLIC_IP=$(strip_blanks "$SERVER_PUBLIC_IP")
        if ! is_ipv4 "$PUBLIC_IP" && ! is_ipv6 "$PUBLIC_IP"; then
            bad "SERVER_PUBLIC_IP: '$SERVER_PUBLIC_IP' is not one IPv4 or IPv6 address"
        fi
    elif [ "$MODE" = client ]; then
        bad "SERVER_PUBLIC_IP is not set (the server's address the client connects to)"
    fi
    SK=$PRIVATE_KEY_DIR/rosenpass
}

# --- keys -------------------------------------------------------------------

# The secret keys live in PRIVATE_KEY_DIR/rosenpass (mode 0700), made once and kept.
# rp genkey refuses an existing directory: generate beside it, then rename.
ensure_keys() {
    mkdir -p "$PRIVATE_KEY_DIR" && chmod 0700 "$PRIVATE_KEY_DIR" ||
        die "cannot create the private key directory $PRIVATE_KEY_DIR"
    if [ -f "$SK/pqsk" ] && [ -f "$SK/pqpk" ] && [ -f "$SK/wgsk" ]; then
        chmod 0700 "$SK" || die "cannot chmod $SK"
        say "using the existing secret keys in $SK"
        return
    fi
    if [ -e "$SK" ]; then
        die "$SK lacks pqsk, pqpk or wgsk; remove it (or its volume) to make new keys"
    fi
    _new=$PRIVATE_KEY_DIR/.new.$$
    rm -rf "$_new"
    rp genkey "$_new" >/dev/null || die "rp genkey $_new failed"
    mv "$_new" "$SK" && chmod 0700 "$SK" || die "cannot move the new keys to $SK"
    say "generated new secret keys in $SK"
}

# Publish pqpk and wgpk into $1, each file complete when it appears (rename).
publish() {
    _tmp=$PRIVATE_KEY_DIR/.pub.$$
    rm -rf "$_tmp"
    rp pubkey "$SK" "$_tmp" >/dev/null || die "rp pubkey $SK failed"
    mkdir -p "$1" && chmod 0755 "$1" || die "cannot create the public key directory $1"
    for _file in pqpk wgpk; do
        cp "$_tmp/$_file" "$1/.$_file.new" && chmod 0644 "$1/.$_file.new" &&
            mv -f "$1/.$_file.new" "$1/$_file" || die "cannot write $1/$_file"
    done
    rm -rf "$_tmp"
    say "published the public keys in $1"
}

# Poll for the peer's public keys until a deadline: the peer may start later.
wait_for_peer_keys() {
    _deadline=$(($(now) + PEER_TIMEOUT))
    _said=0
    until [ -s "$PEER_PUB/pqpk" ] && [ -s "$PEER_PUB/wgpk" ]; do
        if [ "$_said" = 0 ]; then
            say "waiting up to $PEER_TIMEOUT s for the $PEER's public keys in $PEER_PUB"
            _said=1
        fi
        [ "$(now)" -lt "$_deadline" ] ||
            die "no public keys from the $PEER in $PEER_PUB after $PEER_TIMEOUT s"
        sleep 0.25
    done
    say "found the $PEER's public keys in $PEER_PUB"
}

# --- WireGuard ----------------------------------------------------------------

# Can the kernel make a wireguard link here? Tried on a scratch device, so that rp
# makes (and on exit deletes) DEV itself, as upstream intends. Sets _why on failure.
kernel_wireguard() {
    _probe=rpbuild-wgprobe
    if _why=$(ip link add dev "$_probe" type wireguard 2>&1); then
        ip link del dev "$_probe" >/dev/null 2>&1
        return 0
    fi
    case $_why in
        *"not permitted"*)
            die "cannot create network devices (ip link add: $_why); run the container with NET_ADMIN (--cap-add NET_ADMIN)"
            ;;
    esac
    return 1
}

# Decide how DEV is made: WG_MODE=kernel (rp's own ip link add) or userspace
# (wireguard-go, started before rp). Fails early, before any key is made.
choose_wireguard() {
    _how="load it on the host (modprobe wireguard), or run wireguard-go: WIREGUARD=userspace and /dev/net/tun (rpbuild: --userspace-wireguard)"
    if [ "$WIREGUARD" != userspace ]; then
        if kernel_wireguard; then
            WG_MODE=kernel
            return
        fi
        [ "$WIREGUARD" = auto ] || die "$NO_MODULE on this host (WIREGUARD=kernel); $_how"
        [ -c /dev/net/tun ] || die "$NO_MODULE on this host, and no /dev/net/tun for wireguard-go; $_how"
        command -v wireguard-go >/dev/null 2>&1 ||
            die "$NO_MODULE on this host, and the image has no wireguard-go; use a profile with wireguard-go (with-wireguard)"
        say "$NO_MODULE on this host: using wireguard-go"
    else
        [ -c /dev/net/tun ] || die "WIREGUARD=userspace needs /dev/net/tun (--device /dev/net/tun)"
        command -v wireguard-go >/dev/null 2>&1 ||
            die "WIREGUARD=userspace: the image has no wireguard-go; use a profile with wireguard-go (with-wireguard)"
    fi
    WG_MODE=userspace
}

# wireguard-go makes DEV (a TUN device, down) and its UAPI socket, which wg uses.
start_wireguard_go() {
    # WG_PROCESS_FOREGROUND: stay in the foreground (ours to stop) and skip the banner.
    WG_PROCESS_FOREGROUND=1 wireguard-go "$DEV" &
    WG_PID=$!
    _deadline=$(($(now) + DEVICE_TIMEOUT))
    until [ -S "/var/run/wireguard/$DEV.sock" ] && ip link show dev "$DEV" >/dev/null 2>&1; do
        if ! kill -0 "$WG_PID" 2>/dev/null; then
            wait "$WG_PID"
            _status=$?
            WG_PID=
            die "wireguard-go $DEV exited (status $_status)"
        fi
        [ "$(now)" -lt "$_deadline" ] || die "wireguard-go did not make $DEV within $DEVICE_TIMEOUT s"
        sleep 0.1
    done
    say "wireguard-go runs $DEV"
}

# --- modes ------------------------------------------------------------------

run_standalone() {
    PRIVATE_KEY_DIR=${PRIVATE_KEY_DIR:-/keys/private}
    PUBLIC_KEY_DIR=${PUBLIC_KEY_DIR:-/keys/public}
    check_dir PRIVATE_KEY_DIR "$PRIVATE_KEY_DIR"
    check_dir PUBLIC_KEY_DIR "$PUBLIC_KEY_DIR"
    if nested "$PRIVATE_KEY_DIR" "$PUBLIC_KEY_DIR"; then
        bad "PRIVATE_KEY_DIR and PUBLIC_KEY_DIR must not overlap"
    fi
    command -v rp >/dev/null 2>&1 || die "rp is not in the image"
    SK=$PRIVATE_KEY_DIR/rosenpass
    ensure_keys
    publish "$PUBLIC_KEY_DIR"
    if [ $# -gt 0 ]; then
        exec "$@"
    fi
    exit 0
}

run_peer() {
    [ $# -eq 0 ] || bad "MODE=$MODE takes no arguments (got $#)"
    load_peer_config
    for _tool in rp ip grep; do
        command -v "$_tool" >/dev/null 2>&1 || die "$_tool is not in the image"
    done
    choose_wireguard
    ensure_keys
    publish "$OWN_PUB"
    wait_for_peer_keys
    [ "$WG_MODE" = kernel ] || start_wireguard_go

    set -- exchange "$SK" dev "$DEV"
    if [ "$MODE" = server ]; then
        if [ -n "$PUBLIC_IP" ]; then
            _listen=$(endpoint "$PUBLIC_IP" "$SERVER_PORT")
        elif [ "$(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null)" = 0 ]; then
            _listen="[::]:$SERVER_PORT"
        else
            _listen="0.0.0.0:$SERVER_PORT"
        fi
        set -- "$@" listen "$_listen" peer "$PEER_PUB" allowed-ips "$ALLOWED"
        say "starting rp exchange: listen $_listen, peer $PEER_PUB, allowed-ips $ALLOWED"
    else
        _endpoint=$(endpoint "$PUBLIC_IP" "$SERVER_PORT")
        set -- "$@" peer "$PEER_PUB" endpoint "$_endpoint" allowed-ips "$ALLOWED"
        say "starting rp exchange: peer $PEER_PUB, endpoint $_endpoint, allowed-ips $ALLOWED"
    fi
    rp "$@" &
    RP_PID=$!

    # rp brings the device up (making it first unless wireguard-go did); wait for
    # that, not for a fixed time.
    _deadline=$(($(now) + DEVICE_TIMEOUT))
    until ip link show dev "$DEV" 2>/dev/null | grep -q '[<,]UP[,>]'; do
        if ! kill -0 "$RP_PID" 2>/dev/null; then
            wait "$RP_PID"
            _status=$?
            RP_PID=
            if [ -n "$STOPPING" ]; then
                say "stopped by SIG$STOPPING: rp exchange exited with status $_status"
                cleanup
                exit "$_status"
            fi
            die "rp exchange exited (status $_status) before $DEV came up"
        fi
        [ "$(now)" -lt "$_deadline" ] || die "$DEV did not come up within $DEVICE_TIMEOUT s"
        sleep 0.2
    done

    if [ -n "$OWN_v6" ] &&
        [ "$(cat "/proc/sys/net/ipv6/conf/$DEV/disable_ipv6" 2>/dev/null)" != 0 ]; then
        die "IPv6 is disabled on $DEV; run the container with the sysctl net.ipv6.conf.all.disable_ipv6=0"
    fi
    for _addr in $OWN_v4 $OWN_v6; do
        ip addr add "$_addr" dev "$DEV" || die "ip addr add $_addr dev $DEV failed"
    done
    _saved_ifs=$IFS
    IFS=,
    for _cidr in $ALLOWED; do
        IFS=$_saved_ifs
        ip route replace "$_cidr" dev "$DEV" || die "ip route replace $_cidr dev $DEV failed"
    done
    IFS=$_saved_ifs
    say "$MODE ready: $DEV has $OWN_v4${OWN_v4:+${OWN_v6:+ }}$OWN_v6, routes $ALLOWED;" \
        "rosenpass sets the WireGuard peer after its first key exchange"

    # rp stays the process the container lives for; signals are passed on to it.
    while :; do
        wait "$RP_PID"
        _status=$?
        kill -0 "$RP_PID" 2>/dev/null || break
    done
    RP_PID=
    say "${STOPPING:+stopped by SIG$STOPPING: }rp exchange exited with status $_status"
    cleanup
    exit "$_status"
}

# --- healthcheck --------------------------------------------------------------

# Healthy means the tunnel works: a WireGuard handshake happened and the peer's
# tunnel addresses answer a ping. A server whose client has not published its
# keys yet is healthy when its own public keys are published: ready for a client
# (so that a client can wait for a healthy server without a deadlock).
health() {
    load_peer_config
    if [ "$MODE" = server ] && ! [ -s "$PEER_PUB/wgpk" ]; then
        if [ -s "$OWN_PUB/pqpk" ] && [ -s "$OWN_PUB/wgpk" ]; then
            echo "ready: public keys published, waiting for a client"
            exit 0
        fi
        echo "starting: public keys not published yet"
        exit 1
    fi
    ip link show dev "$DEV" >/dev/null 2>&1 || {
        echo "no tunnel: $DEV does not exist"
        exit 1
    }
    _checked=
    # rosenpass sets the WireGuard peer only after its first key exchange.
    if command -v wg >/dev/null 2>&1; then
        _peers=$(wg show "$DEV" peers 2>/dev/null) || {
            echo "no tunnel: wg show $DEV failed"
            exit 1
        }
        [ -n "$_peers" ] || {
            echo "no tunnel yet: no WireGuard peer on $DEV (rosenpass sets it after its first key exchange)"
            exit 1
        }
    fi
    # Ping first: WireGuard makes a handshake only when there is traffic to send.
    if command -v ping >/dev/null 2>&1; then
        for _addr in $PEER_v4 $PEER_v6; do
            _host=$(host_of "$_addr")
            ping -c 1 -W 1 "$_host" >/dev/null 2>&1 || {
                echo "no tunnel: $_host does not answer a ping"
                exit 1
            }
            _checked="${_checked:+$_checked, }ping $_host ok"
        done
    fi
    if command -v wg >/dev/null 2>&1; then
        _out=$(wg show "$DEV" latest-handshakes 2>/dev/null) || {
            echo "no tunnel: wg show $DEV failed"
            exit 1
        }
        _newest=0
        while read -r _key _time; do
            is_uint "${_time:-x}" && [ "$_time" -gt "$_newest" ] && _newest=$_time
        done <<EOF
$_out
EOF
        [ "$_newest" -gt 0 ] || {
            echo "no tunnel: no WireGuard handshake yet"
            exit 1
        }
        _checked="${_checked:+$_checked, }handshake $(($(now) - _newest)) s ago"
    fi
    [ -n "$_checked" ] || {
        echo "cannot check the tunnel: the image has neither wg nor ping"
        exit 1
    }
    echo "tunnel: $_checked"
    exit 0
}

# --- main -------------------------------------------------------------------

MODE=${MODE-}
if [ "${1-}" = healthcheck ]; then
    case $MODE in server | client) health ;; esac
    echo "healthcheck: MODE is '$MODE', not server or client"
    exit 1
fi
case $MODE in
    server | client) run_peer "$@" ;;
    standalone) run_standalone "$@" ;;
    '')
        # No mode: the image is a toolbox (docker run IMAGE rosenpass --version).
        [ $# -gt 0 ] || bad "MODE is not set (server, client or standalone)"
        exec "$@"
        ;;
    *) bad "MODE: unknown mode '$MODE' (server, client or standalone)" ;;
esac
