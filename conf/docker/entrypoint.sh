#!/usr/bin/env bash
# entrypoint.sh - the image's ENTRYPOINT (/usr/local/bin/saveitem-entrypoint)
#
# Without /etc/nginx/nginx.conf (the image has none), renders
# /etc/nginx/saveitem/nginx.conf.template with the SAVEITEM_* settings below
# into /tmp/nginx/nginx.conf; with one (mounted by you), uses that as it is.
# Then runs nginx in the foreground as PID 1, or the command given instead
# (e.g. "cat /tmp/nginx/nginx.conf" shows the rendered conf).
#
# settings (defaults in the Dockerfile):
#   SAVEITEM_PORT           port to listen on (8080)
#   SAVEITEM_TABLE          table to insert into, [schema.]name (items)
#   SAVEITEM_POOL           connections per worker (8)
#   SAVEITEM_QUEUE          requests waiting for a connection, per worker (256)
#   SAVEITEM_QUEUE_TIMEOUT  longest wait for a connection (5s)
#   SAVEITEM_QUERY_TIMEOUT  longest wait for the INSERT (30s)
#   SAVEITEM_WORKERS        worker_processes (auto)
#   SAVEITEM_MAX_BODY       client_max_body_size (1m)
# The database: libpq's PG* variables, passed on by the conf's "env" lines.

set -euo pipefail

TEMPLATE=/etc/nginx/saveitem/nginx.conf.template
MOUNTED=/etc/nginx/nginx.conf
RUN_DIR=/tmp/nginx
CONF=$RUN_DIR/nginx.conf


die()
{
    printf 'saveitem-entrypoint: %s\n' "$*" >&2
    exit 64
}


# check NAME REGEX WHAT: the variable NAME (set) matches REGEX
check()
{
    local name=$1 re=$2 what=$3

    [[ ${!name-} =~ ^($re)$ ]] || die "$name='${!name-}' is not $what"
}


render()
{
    local time='[0-9]+(ms|s|m|h)?'
    local ident='[A-Za-z_][A-Za-z0-9_]*'

    check SAVEITEM_PORT '[1-9][0-9]{0,4}' 'a port number'
    check SAVEITEM_TABLE "$ident(\\.$ident)?" 'a table name ([schema.]name)'
    check SAVEITEM_POOL '[1-9][0-9]*' 'a number of connections (1 or more)'
    check SAVEITEM_QUEUE '[0-9]+' 'a number of requests'
    check SAVEITEM_QUEUE_TIMEOUT "$time" 'a time (e.g. 5s, 500ms)'
    check SAVEITEM_QUERY_TIMEOUT "$time" 'a time (e.g. 30s)'
    check SAVEITEM_WORKERS 'auto|[1-9][0-9]*' '"auto" or a number'
    check SAVEITEM_MAX_BODY '[0-9]+[kKmMgG]?' 'a size (e.g. 1m, 64k)'

    sed -e "s|@SAVEITEM_PORT@|$SAVEITEM_PORT|g" \
        -e "s|@SAVEITEM_TABLE@|$SAVEITEM_TABLE|g" \
        -e "s|@SAVEITEM_POOL@|$SAVEITEM_POOL|g" \
        -e "s|@SAVEITEM_QUEUE@|$SAVEITEM_QUEUE|g" \
        -e "s|@SAVEITEM_QUEUE_TIMEOUT@|$SAVEITEM_QUEUE_TIMEOUT|g" \
        -e "s|@SAVEITEM_QUERY_TIMEOUT@|$SAVEITEM_QUERY_TIMEOUT|g" \
        -e "s|@SAVEITEM_WORKERS@|$SAVEITEM_WORKERS|g" \
        -e "s|@SAVEITEM_MAX_BODY@|$SAVEITEM_MAX_BODY|g" \
        "$TEMPLATE" >"$CONF.tmp"

    mv -f "$CONF.tmp" "$CONF"
}


# the -g directives a mounted conf leaves to us: the foreground, a pid file
# where this user can write
globals()
{
    local g=

    grep -Eq '^[[:space:]]*daemon[[:space:]]' "$CONF" || g="daemon off;"
    grep -Eq '^[[:space:]]*pid[[:space:]]' "$CONF" \
        || g="$g pid $RUN_DIR/nginx.pid;"

    echo "$g"
}


main()
{
    local -a args=()

    umask 0077
    mkdir -p "$RUN_DIR"

    if [ -e "$MOUNTED" ]; then
        CONF=$MOUNTED
    else
        render
    fi

    if [ $# -gt 0 ]; then
        exec "$@"
    fi

    if [ -n "$(globals)" ]; then
        args=(-g "$(globals)")
    fi

    exec /usr/sbin/nginx -c "$CONF" "${args[@]}"
}


main "$@"
