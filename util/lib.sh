# util/lib.sh - helpers shared by the util/*.sh scripts and bench/run
# (sourced, not run): messages, the port table, stopping a process, the
# ASan runtime, a lock, apt-get, the verdicts of checks, the throwaway
# PostgreSQL, a checked POST
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


# port NAME: the default port NAME of util/ports, the table of them
port()
{
    local p

    p=$(awk -v n="$1" '$1 == n && $2 ~ /^[0-9]+$/ { print $2; exit }' \
        "$SAVEITEM_UTIL/ports")
    [ -n "$p" ] || die "no port '$1' in util/ports"
    printf '%s\n' "$p"
}


# port_open HOST PORT: true when something accepts TCP connections there
port_open()
{
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}


# stop_process PID SIGNAL SECONDS: send SIGNAL, give the process SECONDS to
# go, then SIGKILL it
stop_process()
{
    local pid=$1 i

    kill "-$2" "$pid" 2>/dev/null || return 0

    for ((i = 0; i < $3 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done

    kill -KILL "$pid" 2>/dev/null || true
}


# stop_pidfile FILE NAME SIGNAL SECONDS: stop_process the pid FILE holds,
# if its command line names NAME (a server left by a run killed before its
# own cleanup; a pid since reused by another program is spared)
stop_pidfile()
{
    local pid

    pid=$(head -n 1 "$1" 2>/dev/null) || return 0
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    grep -qa "$2" "/proc/$pid/cmdline" 2>/dev/null || return 0

    say "stopping $2 (pid $pid of $1)"
    stop_process "$pid" "$3" "$4"
}


# stop_nginx_on PORT: stop the nginx processes still listening on the
# loopback PORT: the workers of a master that died (a test killed it, or
# a run that bailed out) keep its listening socket and hold the port
stop_nginx_on()
{
    local hex inode pid fd

    hex=$(printf '%04X' "$1")

    for inode in $(awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { print $10 }' \
                       /proc/net/tcp /proc/net/tcp6 2>/dev/null)
    do
        for fd in /proc/[0-9]*/fd/*; do
            [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$inode]" ] || continue
            pid=${fd#/proc/}
            pid=${pid%%/*}

            case $(cat "/proc/$pid/comm" 2>/dev/null) in
            nginx*)
                say "stopping nginx process $pid left listening on port $1"
                stop_process "$pid" QUIT 3
                ;;
            esac
        done
    done
}


# asan_runtime SO [CC]: the sanitizer runtime SO needs preloaded into
# Debian's nginx when it is built with -fsanitize=address; nothing when it
# is not
asan_runtime()
{
    local so=$1 cc rt

    case $(nm -D --undefined-only "$so" 2>/dev/null) in
    *__asan_*) ;;
    *) return 0 ;;
    esac

    rt=$(ldd "$so" | awk '/libasan|libclang_rt\.asan/ { print $3; exit }')

    # shellcheck disable=SC2086  # CC may carry options
    for cc in ${2:-} clang cc; do
        [ ! -f "$rt" ] || break
        rt=$($cc -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null) \
            || rt=
        [ -f "$rt" ] || rt=$($cc -print-file-name=libasan.so 2>/dev/null) \
            || rt=
    done

    [ -f "$rt" ] || die "cannot find the ASan runtime for $so"
    printf '%s\n' "$rt"
}


# take_lock FILE: one run at a time: fd 9 holds an flock on FILE, taken
# after waiting (and saying so) while another run holds it; give the
# servers started meanwhile 9>&-, so that they do not keep the lock
take_lock()
{
    exec 9>"$1"

    if ! flock -n 9; then
        say "another run holds $1; waiting for it"
        flock 9
    fi
}


# apt_get ARGS: apt-get -y, without questions, waiting for dpkg's lock, with
# a policy-rc.d that keeps the packages' services (nginx on port 80, the
# default PostgreSQL cluster on 5432) from starting: the project never uses
# them. Output goes to stderr.
apt_get()
{
    (
        policy=/usr/sbin/policy-rc.d

        if [ ! -e "$policy" ]; then
            trap 'rm -f "$policy"' EXIT
            trap 'exit 130' INT
            trap 'exit 143' TERM
            printf '#!/bin/sh\n# written by util/lib.sh\nexit 101\n' \
                >"$policy"
            chmod 0755 "$policy"
        fi

        DEBIAN_FRONTEND=noninteractive \
            apt-get -y -q -o DPkg::Lock::Timeout=600 "$@" >&2
    )
}


checks_failed=


# check_ok WHAT, check_failed WHAT: the verdict of one check of an end to end
# test, said; check_failed marks the run failed (checks_failed)
check_ok()
{
    say "ok: $*"
}


check_failed()
{
    say "FAILED: $*"
    checks_failed=1
}


pg_started=


# pg_up [HOST]: the throwaway cluster of util/pg.sh (SAVEITEM_PG_PORT,
# ...), started unless it runs, its SAVEITEM_PG_* exported (util/pg.sh env)
# and libpq's PGHOST (HOST, default its unix socket), PGPORT, PGDATABASE,
# PGUSER; pg_down stops it if pg_up started it
pg_up()
{
    if bash "$SAVEITEM_UTIL/pg.sh" status 2>/dev/null; then
        say "using the running throwaway cluster; it stays up afterwards"
    else
        pg_started=1
    fi

    bash "$SAVEITEM_UTIL/pg.sh" start
    eval "$(bash "$SAVEITEM_UTIL/pg.sh" env)"

    export PGHOST=${1:-$SAVEITEM_PG_SOCKET}
    export PGPORT=$SAVEITEM_PG_PORT
    export PGDATABASE=saveitem
    export PGUSER=postgres
}


pg_down()
{
    if [ -n "$pg_started" ]; then
        bash "$SAVEITEM_UTIL/pg.sh" stop || true
    fi
}


# post_check URL FROM [row]: POST {"from": "FROM"} to URL; the answer must
# be {"pk": N}, and with `row`, row N of the table items of util/pg.sh's
# cluster must hold the document. Says check_ok or check_failed for each,
# prints N, and fails when a check did (run it in a $(...) subshell: the
# caller sees its status, not checks_failed).
post_check()
{
    local url=$1 doc="{\"from\": \"$2\"}" body pk row

    body=$(curl -sS -m 10 -X POST -H 'Content-Type: application/json' \
           --data "$doc" "$url") || true

    if [[ $body =~ ^\{\"pk\":\ ([0-9]+)\}$ ]]; then
        pk=${BASH_REMATCH[1]}
        check_ok "POST $url -> $body"
    else
        check_failed "POST $url -> '$body'"
        return 1
    fi

    printf '%s\n' "$pk"
    [ "${3:-}" = row ] || return 0

    row=$(bash "$SAVEITEM_UTIL/pg.sh" psql -tAc \
          "SELECT data FROM items WHERE id = $pk" 2>/dev/null || true)

    if [ "$row" = "$doc" ]; then
        check_ok "row $pk: $row"
    else
        check_failed "row $pk: '$row'"
        return 1
    fi
}
