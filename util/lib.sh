# util/lib.sh - helpers shared by the util/*.sh scripts (sourced, not run)
# shellcheck shell=bash disable=SC2034

SAVEITEM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SAVEITEM_UTIL=$SAVEITEM_ROOT/util
SAVEITEM_PROG=$(basename "$0")


say()
{
    printf '%s: %s\n' "$SAVEITEM_PROG" "$*" >&2
}


die()
{
    say "error: $*"
    exit 1
}


# port_open HOST PORT: true when something accepts TCP connections there
port_open()
{
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}
