#!/usr/bin/env bash
# util/pg.sh - a throwaway PostgreSQL 15 cluster of our own, for the tests
# and `make run`; never Debian's default cluster
#
#   util/pg.sh start          initdb when needed, start, create the database
#                             `saveitem` and its table `items` when missing
#   util/pg.sh stop           stop (-m fast); remove the cluster directory
#                             unless SAVEITEM_PG_KEEP is set
#   util/pg.sh restart        pg_ctl restart -m fast
#   util/pg.sh status         exit 0 when running, 3 when not
#   util/pg.sh psql [ARGS]    psql into the `saveitem` database
#   util/pg.sh env            export lines for the shell:
#                             eval "$(util/pg.sh env)"
#
# The cluster runs as the `postgres` user (initdb refuses root), listens on
# 127.0.0.1 and on a unix socket in its own directory, and trusts every local
# connection as user `postgres`. The directory lives outside the repository:
# the repository may be under /root, where `postgres` cannot read.
#
# knobs:
#   SAVEITEM_PG_PORT   TCP port and socket name (default 15432, run-pg in
#                      util/ports)
#   SAVEITEM_PG_DIR    cluster directory (default /tmp/saveitem-pg-$PORT):
#                      data/, sock/, postgresql.log
#   SAVEITEM_PG_FSYNC  on|off: fsync, synchronous_commit, full_page_writes
#                      (default on; the tests use off)
#   SAVEITEM_PG_KEEP   set: `stop` keeps the directory
#   SAVEITEM_PG_BIN    PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   SAVEITEM_PG_LISTEN TCP address to listen on (default 127.0.0.1; any
#                      127.x.y.z works on Linux's loopback)

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_BIN=${SAVEITEM_PG_BIN:-/usr/lib/postgresql/15/bin}
PORT=${SAVEITEM_PG_PORT:-$(port run-pg)}
DIR=${SAVEITEM_PG_DIR:-/tmp/saveitem-pg-$PORT}
FSYNC=${SAVEITEM_PG_FSYNC:-on}
OWNER=postgres
DB=saveitem

[[ $DIR = /* ]] || DIR=$PWD/$DIR

DATA=$DIR/data
SOCK=$DIR/sock
LOG=$DIR/postgresql.log
MARK=$DIR/.saveitem-pg


# run a PostgreSQL program as the cluster's owner, from a directory it can
# read
as_owner()
{
    local prog=$PG_BIN/$1

    shift

    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u "$OWNER" -- "$prog" "$@")
    else
        (cd / && "$prog" "$@")
    fi
}


pg_psql()
{
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" \
        -U postgres "$@"
}


running()
{
    [ -f "$DATA/PG_VERSION" ] && as_owner pg_ctl status -D "$DATA" >/dev/null
}


check_install()
{
    [ -x "$PG_BIN/initdb" ] \
        || die "PostgreSQL 15 is not installed; run util/deps.sh pg"

    if [ "$(id -u)" = 0 ]; then
        id -u "$OWNER" >/dev/null 2>&1 \
            || die "no user '$OWNER'; run util/deps.sh pg"
    else
        OWNER=$(id -un)
    fi

    case $FSYNC in
    on|off) ;;
    *) die "SAVEITEM_PG_FSYNC must be on or off, not '$FSYNC'" ;;
    esac
}


prepare_dir()
{
    if [ -d "$DIR" ] && [ ! -e "$MARK" ] \
       && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]
    then
        die "$DIR exists and is not a cluster directory of ours"
    fi

    mkdir -p "$DIR" "$SOCK"
    touch "$MARK"
    chmod 0755 "$DIR" "$SOCK"

    if [ "$(id -u)" = 0 ]; then
        chown "$OWNER:" "$DIR" "$SOCK"
        runuser -u "$OWNER" -- test -w "$DIR" \
            || die "user $OWNER cannot write $DIR (are its parents" \
                   "searchable?); set SAVEITEM_PG_DIR"
    fi
}


init_cluster()
{
    say "initdb in $DATA"

    as_owner initdb -D "$DATA" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C --no-sync >"$DIR/initdb.log" 2>&1 \
        || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }

    echo "include_if_exists = 'saveitem.conf'" >>"$DATA/postgresql.conf"
}


# written at every start, so changed knobs take effect on an old cluster
write_conf()
{
    cat >"$DATA/saveitem.conf" <<EOF
# written by util/pg.sh
listen_addresses = '${SAVEITEM_PG_LISTEN:-127.0.0.1}'
port = $PORT
unix_socket_directories = '$SOCK'
max_connections = 300
fsync = $FSYNC
synchronous_commit = $FSYNC
full_page_writes = $FSYNC
logging_collector = off
EOF

    if [ "$(id -u)" = 0 ]; then
        chown "$OWNER:" "$DATA/saveitem.conf"
    fi
}


ensure_schema()
{
    if [ -z "$(pg_psql -d postgres -tAc \
               "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]
    then
        pg_psql -d postgres -c "CREATE DATABASE $DB"
    fi

    pg_psql -d "$DB" -c "SET client_min_messages = warning;
        CREATE TABLE IF NOT EXISTS items (
        id bigserial PRIMARY KEY,
        data jsonb NOT NULL,
        created_at timestamptz DEFAULT now())"
}


start_server()
{
    as_owner pg_ctl start -D "$DATA" -l "$LOG" -w -t 60 -s \
        || { tail -n 20 "$LOG" >&2; die "PostgreSQL did not start"; }
}


cmd_start()
{
    check_install

    if running; then
        say "already running on port $PORT ($DIR)"
    else
        if port_open 127.0.0.1 "$PORT"; then
            die "port $PORT is taken by another server; set SAVEITEM_PG_PORT"
        fi

        prepare_dir
        [ -f "$DATA/PG_VERSION" ] || init_cluster
        write_conf
        start_server
        say "started on port $PORT, socket $SOCK, fsync $FSYNC"
    fi

    ensure_schema
}


cmd_stop()
{
    check_install

    if running; then
        as_owner pg_ctl stop -D "$DATA" -m fast -w -t 60 -s
        say "stopped ($DIR)"
    else
        say "not running ($DIR)"
    fi

    if [ -z "${SAVEITEM_PG_KEEP:-}" ] && [ -e "$MARK" ]; then
        rm -rf "$DIR"
    fi
}


cmd_restart()
{
    check_install

    [ -f "$DATA/PG_VERSION" ] || die "no cluster in $DIR; run $0 start"

    write_conf
    as_owner pg_ctl restart -D "$DATA" -l "$LOG" -m fast -w -t 60 -s \
        || { tail -n 20 "$LOG" >&2; die "PostgreSQL did not restart"; }
    say "restarted on port $PORT"
}


cmd_status()
{
    if running; then
        say "running on port $PORT ($DIR)"
        return 0
    fi

    say "not running ($DIR)"
    return 3
}


cmd_env()
{
    printf 'export SAVEITEM_PG_DIR=%q\n' "$DIR"
    printf 'export SAVEITEM_PG_PORT=%q\n' "$PORT"
    printf 'export SAVEITEM_PG_SOCKET=%q\n' "$SOCK"
    printf 'export SAVEITEM_DATABASE=%q\n' \
        "host=$SOCK port=$PORT dbname=$DB user=postgres"
}


main()
{
    local cmd=${1:-}

    [ $# -eq 0 ] || shift

    case $cmd in
    start)   cmd_start ;;
    stop)    cmd_stop ;;
    restart) cmd_restart ;;
    status)  cmd_status ;;
    psql)    pg_psql -d "$DB" "$@" ;;
    env)     cmd_env ;;
    *)       die "usage: $0 start|stop|restart|status|psql [ARGS]|env" ;;
    esac
}


main "$@"
