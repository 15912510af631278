#!@shell@
# pkill stand-in of the rpbuild test nixpkgs (busybox has no pkill).
# Usage: pkill [-SIGNAL] [-f] [-x] PATTERN
#   PATTERN is an extended regular expression matched against the process name
#   (/proc/PID/comm), or against the whole command line with -f; -x: match exactly.
# Exit status: 0 if a process was signalled, 1 if none matched, 2 on a usage error.
# Its tools are busybox applets by absolute path: it needs nothing else in the image.
bb=@bb@
sig=TERM
full=0
exact=0
while [ $# -gt 0 ]; do
    case "$1" in
        -f) full=1 ;;
        -x) exact=1 ;;
        --) shift; break ;;
        -[0-9]*|-[A-Z]*) sig=${1#-}; sig=${sig#SIG} ;;
        -*) echo "pkill (stand-in): unsupported option $1" >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
if [ $# -ne 1 ]; then
    echo "usage: pkill [-SIGNAL] [-f] [-x] PATTERN" >&2
    exit 2
fi
pattern=$1
if [ $exact = 1 ]; then
    pattern="^($pattern)\$"
fi
status=1
for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$pid" = "$$" ] && continue
    if [ $full = 1 ]; then
        text=$("$bb" tr '\000' ' ' < "$dir/cmdline" 2>/dev/null)
    else
        text=$("$bb" cat "$dir/comm" 2>/dev/null)
    fi
    [ -n "$text" ] || continue
    if printf '%s\n' "$text" | "$bb" grep -Eq -- "$pattern"; then
        kill -s "$sig" "$pid" 2>/dev/null && status=0
    fi
done
exit $status
