#!/usr/bin/env bash
# util/pgbouncer.sh - Debian's PgBouncer in transaction mode on a loopback
# port of its own, in front of util/pg.sh's cluster, for t/010-pgbouncer.t
#
#   util/pgbouncer.sh start   write pgbouncer.ini and userlist.txt, start it
#                             (as `postgres`: it refuses root) and wait
#                             until it accepts connections
#   util/pgbouncer.sh stop    stop it (SIGTERM) and remove its directory
#   util/pgbouncer.sh psql [ARGS]
#                             psql into its admin console (SHOW POOLS, ...)
#   util/pgbouncer.sh env     NAME=VALUE lines: SAVEITEM_PGBOUNCER_PORT, _DIR
#
# The pool: database `saveitem` as user `postgres` (auth_type trust: loopback
# only), pool_mode transaction, default_pool_size 4 (fewer server
# connections than nginx opens to it). Debian's package also installs a
# service on port 6432; this never uses or starts it.
#
# knobs:
#   SAVEITEM_PGBOUNCER_PORT   its port (default 15461, test-pgbouncer in
#                             util/ports)
#   SAVEITEM_PGBOUNCER_DIR    its directory (default
#                             /tmp/saveitem-pgbouncer-$PORT): ini, log, pid
#   SAVEITEM_PGBOUNCER_POOL   default_pool_size (default 4)
#   SAVEITEM_PGBOUNCER_USER   the role of its server connections (default
#                             postgres)
#   SAVEITEM_PG_PORT, SAVEITEM_PG_DIR: the cluster behind it (util/pg.sh)

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${SAVEITEM_PGBOUNCER_PORT:-$(port test-pgbouncer)}
DIR=${SAVEITEM_PGBOUNCER_DIR:-/tmp/saveitem-pgbouncer-$PORT}
POOL=${SAVEITEM_PGBOUNCER_POOL:-4}
ROLE=${SAVEITEM_PGBOUNCER_USER:-postgres}
PGBOUNCER=/usr/sbin/pgbouncer
OWNER=postgres
MARK=$DIR/.saveitem-pgbouncer

[ "$(id -u)" = 0 ] || OWNER=$(id -un)


as_owner()
{
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u "$OWNER" -- "$@")
    else
        (cd / && "$@")
    fi
}


write_conf()
{
    local pg_sock pg_port

    eval "$(bash "$SAVEITEM_UTIL/pg.sh" env)"
    pg_sock=$SAVEITEM_PG_SOCKET
    pg_port=$SAVEITEM_PG_PORT

    cat >"$DIR/pgbouncer.ini" <<EOF
; written by util/pgbouncer.sh
[databases]
saveitem = host=$pg_sock port=$pg_port dbname=saveitem user=$ROLE

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = $POOL
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 1000
max_db_connections = $POOL
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF

    printf '"postgres" ""\n' >"$DIR/userlist.txt"
}


cmd_start()
{
    local i

    [ -x "$PGBOUNCER" ] || die "no $PGBOUNCER; run util/deps.sh test"

    if [ -f "$DIR/pgbouncer.pid" ] \
       && grep -qa pgbouncer "/proc/$(head -n 1 "$DIR/pgbouncer.pid")/cmdline" \
          2>/dev/null
    then
        say "already running on port $PORT ($DIR)"
        return
    fi

    if port_open 127.0.0.1 "$PORT"; then
        die "port $PORT is taken; set SAVEITEM_PGBOUNCER_PORT"
    fi

    if [ -d "$DIR" ] && [ ! -e "$MARK" ]; then
        die "$DIR exists and is not a directory of ours"
    fi

    rm -rf "$DIR"
    mkdir -p "$DIR"
    touch "$MARK"
    write_conf
    chown -R "$OWNER:" "$DIR"

    as_owner "$PGBOUNCER" -d -q "$DIR/pgbouncer.ini" \
        || { cat "$DIR/pgbouncer.log" >&2 2>/dev/null; die "did not start"; }

    for ((i = 0; i < 100; i++)); do
        ! port_open 127.0.0.1 "$PORT" || break
        sleep 0.1
    done

    port_open 127.0.0.1 "$PORT" \
        || { tail -n 20 "$DIR/pgbouncer.log" >&2; die "not listening"; }

    say "PgBouncer $(pgbouncer_version) on port $PORT, transaction mode," \
        "$POOL server connections"
}


pgbouncer_version()
{
    "$PGBOUNCER" --version | awk '{ print $2; exit }'
}


cmd_stop()
{
    stop_pidfile "$DIR/pgbouncer.pid" pgbouncer TERM 5

    if [ -e "$MARK" ]; then
        rm -rf "$DIR"
    fi
}


case ${1:-} in
start)  cmd_start ;;
stop)   cmd_stop ;;
psql)   shift
        /usr/lib/postgresql/15/bin/psql -X -q -h 127.0.0.1 -p "$PORT" \
            -U postgres -d pgbouncer "$@" ;;
env)    printf 'SAVEITEM_PGBOUNCER_PORT=%s\nSAVEITEM_PGBOUNCER_DIR=%s\n' \
            "$PORT" "$DIR" ;;
*)      die "usage: $0 start|stop|psql [ARGS]|env" ;;
esac
