# util/fault/lib.sh - what util/fault/run and util/fuzz/http share (sourced):
# the module to load, the lock on the ports, the PostgreSQL cluster
# shellcheck shell=bash

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

export SAVEITEM_PG_PORT=${SAVEITEM_FAULT_PG_PORT:-$(port fault-pg)}
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


# one run at a time on these ports: fd 9 holds the lock
fault_lock()
{
    take_lock "/tmp/saveitem-fault-$SAVEITEM_PG_PORT.lock"
}


fault_cleanup()
{
    local f

    for f in "${SAVEITEM_FAULT_DIR:-/tmp/saveitem-fault}"/*/logs/nginx.pid \
             /tmp/saveitem-fuzz-http/logs/nginx.pid
    do
        stop_pidfile "$f" nginx QUIT 5
    done

    fault_pg_stop

    # the failover pair, if fault.py could not stop it (killed)
    for f in "${SAVEITEM_FAULT_HA_DIR:-/tmp/saveitem-fault-ha}"/*/data/postmaster.pid
    do
        stop_pidfile "$f" postgres QUIT 5
    done
}


# the cluster fault_pg_start started, thawed first: a run stopped during a
# freeze leaves it stopped
fault_pg_stop()
{
    local pid

    [ -n "$fault_pg_started" ] || return 0

    pid=$(head -n 1 "$SAVEITEM_PG_DIR/data/postmaster.pid" 2>/dev/null) \
        || pid=
    if [[ $pid =~ ^[0-9]+$ ]]; then
        kill -CONT "$pid" 2>/dev/null || true
        pkill -CONT -P "$pid" 2>/dev/null || true
    fi

    bash "$SAVEITEM_UTIL/pg.sh" stop 9>&- || true
    fault_pg_started=
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
