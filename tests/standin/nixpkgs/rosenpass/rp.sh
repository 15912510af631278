#!@runtime@/bin/bash
# rp of the rpbuild test stand-in for rosenpass (written for the tests; see CONTRACT.md).
#
# Keeps the contract of upstream's rp (a bash script at rosenpass 62aa9b4) row by row: the same
# command line, refusals and FATAL messages, the same commands in the same order under
# `set -e`, the EXIT trap, and rosenpass run as a child of bash. It runs under a real Debian
# bash, so set -e, the trap on SIGTERM and the exit statuses are bash's own.
#
#   rp [explain] [verbose] genkey PRIVATE_KEYS_DIR
#   rp [explain] [verbose] pubkey PRIVATE_KEYS_DIR PUBLIC_KEYS_DIR
#   rp [explain] [verbose] exchange PRIVATE_KEYS_DIR [dev <device>] [listen <ip>:<port>]
#      [peer PUBLIC_KEYS_DIR [endpoint <ip>:<port>] [persistent-keepalive <interval>]
#       [allowed-ips <ip1>/<cidr1>[,<ip2>/<cidr2>]...]]...
#
# Like upstream, exchange does NOT create a userspace WireGuard device: without the kernel
# module, DEV must exist already (e.g. made by `wireguard-go DEV`), or rp exits 1.
# `ip` and `rosenpass` come from the caller's PATH; the wrapper only prefixes coreutils,
# findutils, awk and wg (upstream: coreutils, findutils, gawk, wireguard-tools). nixpkgs'
# rosenpass-tools (the stand-in nixpkgs builds this file too) also prefixes rosenpass.
#
# Not reproduced: `explain` prints the commands rp runs, not upstream's generated script.
set -e
PATH="@runtime@/rp-path${PATH:+:$PATH}"
export PATH

script=$0
explain=0
verbose=0
usage_words=("$script" "[explain]" "[verbose]" "genkey|pubkey|exchange" "[ARGS]...")
plan=()       # commands to run, built while parsing: nothing runs before parsing is done
on_exit=()    # commands of the EXIT trap

show_usage() { echo "Usage: ${usage_words[*]}" >&2; }

fatal() {
    echo "FATAL: $*" >&2
    show_usage
    exit 1
}

# plan WORD... : one command (a string evaluated later, like upstream's transaction)
plan() { plan+=("$1"); }

q() { printf '%q' "$1"; }

run_exit_actions() {
    local action
    for action in "${on_exit[@]}"; do
        eval "$action"
    done
}
trap run_exit_actions EXIT

do_genkey() {
    usage_words+=("PRIVATE_KEYS_DIR")
    local skdir
    skdir=${1%/}
    shift || fatal "Required positional argument: PRIVATE_KEYS_DIR"
    while [ $# -gt 0 ]; do
        case $1 in
            -h | -help | --help | help) show_usage; return 0 ;;
            *) fatal "Unknown option $1" ;;
        esac
    done
    if [ -e "$skdir" ]; then
        fatal "PRIVATE_KEYS_DIR \"$skdir\" already exists"
    fi
    plan "umask 077"
    plan "mkdir -p $(q "$skdir")"
    plan "wg genkey > $(q "$skdir/wgsk")"
    plan "rosenpass gen-keys -s $(q "$skdir/pqsk") -p $(q "$skdir/pqpk")"
}

do_pubkey() {
    usage_words+=("PRIVATE_KEYS_DIR" "PUBLIC_KEYS_DIR")
    local skdir pkdir
    skdir=${1%/}
    shift || fatal "Required positional argument: PRIVATE_KEYS_DIR"
    pkdir=${1%/}
    shift || fatal "Required positional argument: PUBLIC_KEYS_DIR"
    while [ $# -gt 0 ]; do
        case $1 in
            -h | -help | --help | help) show_usage; exit 0 ;;
            *) fatal "Unknown option $1" ;;
        esac
    done
    if [ -e "$pkdir" ]; then
        fatal "PUBLIC_KEYS_DIR \"$pkdir\" already exists"
    fi
    plan "mkdir -p $(q "$pkdir")"
    plan "wg pubkey < $(q "$skdir/wgsk") > $(q "$pkdir/wgpk")"
    plan "cp $(q "$skdir/pqpk") $(q "$pkdir/pqpk")"
}

do_exchange() {
    usage_words+=("PRIVATE_KEYS_DIR" "[dev <device>]" "[listen <ip>:<port>]"
        "[peer PUBLIC_KEYS_DIR [endpoint <ip>:<port>] [persistent-keepalive <interval>] [allowed-ips <ip1>/<cidr1>[,<ip2>/<cidr2>]...]]...")
    local skdir dev=rosenpass0 listen_ip= listen_port=
    skdir=${1%/}
    shift || fatal "Required positional argument: PRIVATE_KEYS_DIR"
    while [ $# -gt 0 ]; do
        case $1 in
            dev) dev=$2; shift 2 || fatal "dev option requires parameter" ;;
            peer) break ;;
            listen)
                listen_ip=${2%:*}
                listen_port=${2##*:}
                [ "$listen_ip" != "$listen_port" ] || listen_ip="[::]"
                shift 2 || shift
                ;;
            -h | -help | --help | help) show_usage; return 0 ;;
            *) fatal "Unknown option $1" ;;
        esac
    done
    [ $# -gt 0 ] || fatal "Needs at least one peer specified"

    # The device: created (kernel WireGuard) or already there (wireguard-go), then up.
    plan "ip link add dev $(q "$dev") type wireguard || true"
    on_exit+=("ip link del dev $(q "$dev") || true")
    plan "ip link set dev $(q "$dev") up"
    local wgset
    wgset="wg set $(q "$dev") private-key $(q "$skdir/wgsk")"
    [ -z "$listen_port" ] || wgset+=" listen-port $((listen_port + 1))"
    plan "$wgset"

    local cmd
    cmd="rosenpass exchange"
    [ "$verbose" != 1 ] || cmd+=" verbose"
    cmd+=" secret-key $(q "$skdir/pqsk") public-key $(q "$skdir/pqpk")"
    [ -z "$listen_port" ] || cmd+=" listen $(q "$listen_ip:$listen_port")"

    # Peers. As upstream, endpoint/keepalive/allowed-ips are not reset between peers.
    local peerdir ep_ip ep_port keepalive allowedips
    while [ $# -gt 0 ]; do
        shift # "peer"
        peerdir=${1%/}
        shift || fatal "Required peer argument: PUBLIC_KEYS_DIR"
        while [ $# -gt 0 ]; do
            case $1 in
                peer) break ;;
                endpoint) ep_ip=${2%:*}; ep_port=${2##*:}; shift 2 || shift ;;
                persistent-keepalive) keepalive=$2; shift 2 || shift ;;
                allowed-ips) allowedips=$2; shift 2 || shift ;;
                -h | -help | --help | help) show_usage; return 0 ;;
                *) fatal "Unknown option $1" ;;
            esac
        done
        cmd+=" peer public-key $(q "$peerdir/pqpk")"
        [ ! -f "$peerdir/psk" ] || cmd+=" preshared-key $(q "$peerdir/psk")"
        [ -z "$ep_ip" ] || cmd+=" endpoint $(q "$ep_ip:$ep_port")"
        cmd+=" wireguard $(q "$dev") $(q "$(cat "$peerdir/wgpk")")"
        [ -z "$ep_ip" ] || cmd+=" endpoint $(q "$ep_ip:$((ep_port + 1))")"
        [ -z "$keepalive" ] || cmd+=" persistent-keepalive $(q "$keepalive")"
        [ -z "$allowedips" ] || cmd+=" allowed-ips $(q "$allowedips")"
    done
    plan "$cmd"
}

command=
while [ $# -gt 0 ]; do
    arg=$1
    shift
    case $arg in
        genkey | pubkey | exchange) command=$arg; break ;;
        explain) explain=1 ;;
        verbose) verbose=1 ;;
        -h | -help | --help | help) show_usage; exit 0 ;;
        *) fatal "Unknown command $arg" ;;
    esac
done
[ -n "$command" ] || fatal "No command supplied"
usage_words=("$script" "$command")
"do_$command" "$@"

for step in "${plan[@]}"; do
    [ "$explain" != 1 ] || echo "$step" >&2
    eval "$step"
done
