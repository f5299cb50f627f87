# util/fault/lib.sh - what util/fault/run and util/fuzz/http share (sourced):
# the module to load, the lock on the ports, the PostgreSQL cluster
# shellcheck shell=bash

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

export SAVEITEM_PG_PORT=${SAVEITEM_FAULT_PG_PORT:-15535}
export SAVEITEM_PG_DIR=${SAVEITEM_FAULT_PG_DIR:-/tmp/saveitem-fault-pg}
export SAVEITEM_PG_FSYNC=off
unset SAVEITEM_PG_KEEP

FAULT_ASAN_OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined"
fault_pg_started=


# the .so to load: SAVEITEM_FAULT_MODULE, or one built into build/fault/
# (build/fault-asan/ with SAVEITEM_FAULT_ASAN=1: clang, ASan + UBSan; the
# runners then preload the sanitizer runtime into nginx)
fault_module()
{
    if [ -n "${SAVEITEM_FAULT_MODULE:-}" ]; then
        [ -f "$SAVEITEM_FAULT_MODULE" ] \
            || die "no module at $SAVEITEM_FAULT_MODULE"
        printf '%s\n' "$SAVEITEM_FAULT_MODULE"
        return
    fi

    if [ -n "${SAVEITEM_FAULT_ASAN:-}" ]; then
        SAVEITEM_CC=clang bash "$SAVEITEM_UTIL/deps.sh" build
        env -u SAVEITEM_LD_OPT SAVEITEM_CC=clang \
        SAVEITEM_CC_OPT="$FAULT_ASAN_OPT -Werror" \
        SAVEITEM_BUILD_DIR=$SAVEITEM_ROOT/build/fault-asan/nginx-src \
        SAVEITEM_OUT= bash "$SAVEITEM_UTIL/build.sh"
        return
    fi

    SAVEITEM_CC= SAVEITEM_CC_OPT="-O2 -g -Werror" SAVEITEM_LD_OPT= \
    SAVEITEM_BUILD_DIR=$SAVEITEM_ROOT/build/fault/nginx-src \
    SAVEITEM_OUT= bash "$SAVEITEM_UTIL/build.sh"
}


# the sanitizer runtime a module needs preloaded into nginx, or nothing
fault_preload()
{
    local so=$1 rt

    case $(nm -D --undefined-only "$so" 2>/dev/null) in
    *__asan_*) ;;
    *) return 0 ;;
    esac

    rt=$(ldd "$so" | awk '/libasan|libclang_rt\.asan/ { print $3; exit }')

    if [ -z "$rt" ]; then
        rt=$(clang -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null) \
            || true
        [ -f "$rt" ] || rt=$(cc -print-file-name=libasan.so)
    fi

    [ -f "$rt" ] || die "cannot find the ASan runtime for $so"
    printf '%s\n' "$rt"
}


# one run at a time on these ports: fd 9 holds the lock
fault_lock()
{
    local lock=/tmp/saveitem-fault-$SAVEITEM_PG_PORT.lock

    exec 9>"$lock"

    if ! flock -n 9; then
        say "another run holds $lock; waiting for it"
        flock 9
    fi
}


# stop_pid PIDFILE NAME: stop the process whose pid the file holds, if its
# command line names NAME (a runner killed before its own cleanup)
stop_pid()
{
    local pid

    pid=$(head -n 1 "$1" 2>/dev/null) || return 0
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    grep -qa "$2" "/proc/$pid/cmdline" 2>/dev/null || return 0

    kill -QUIT "$pid" 2>/dev/null || return 0

    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done

    kill -KILL "$pid" 2>/dev/null || true
}


fault_cleanup()
{
    local f pid

    for f in "${SAVEITEM_FAULT_DIR:-/tmp/saveitem-fault}"/*/logs/nginx.pid \
             /tmp/saveitem-fuzz-http/logs/nginx.pid
    do
        stop_pid "$f" nginx
    done

    if [ -n "$fault_pg_started" ]; then
        # a run stopped during the "freeze" scenario leaves it stopped
        pid=$(head -n 1 "$SAVEITEM_PG_DIR/data/postmaster.pid" 2>/dev/null) \
            || pid=
        if [[ $pid =~ ^[0-9]+$ ]]; then
            kill -CONT "$pid" 2>/dev/null || true
            pkill -CONT -P "$pid" 2>/dev/null || true
        fi

        bash "$SAVEITEM_UTIL/pg.sh" stop 9>&- || true
    fi
}


fault_pg_start()
{
    trap fault_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    fault_pg_started=1
    bash "$SAVEITEM_UTIL/pg.sh" start 9>&-
}


fault_python()
{
    if [ -x /usr/bin/python3 ]; then
        echo /usr/bin/python3
    else
        command -v python3 || die "python3 is needed"
    fi
}
