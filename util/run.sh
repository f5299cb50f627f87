#!/usr/bin/env bash
# util/run.sh - the run command (`make run`): build the module and run
# Debian's nginx in the foreground with conf/nginx.conf; Ctrl-C stops it
#
#   util/run.sh
#
# nginx runs with the prefix build/run/ (modules/ holds a link to the built
# .so, so the conf says `load_module modules/ngx_http_saveitem_module.so;`).
# Unless a database is configured (SAVEITEM_DATABASE or PGHOST set), a
# throwaway cluster is started with util/pg.sh and PGHOST, PGPORT,
# PGDATABASE and PGUSER point at it; it is stopped (and its data removed,
# unless SAVEITEM_PG_KEEP is set) when nginx stops.
#
# knobs:
#   SAVEITEM_RUN_CONF    the nginx conf (default conf/nginx.conf)
#   SAVEITEM_RUN_PREFIX  nginx's prefix (default build/run)
#   SAVEITEM_DATABASE, PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD:
#                        an existing database, passed to nginx as they are
#   SAVEITEM_PG_PORT, SAVEITEM_PG_DIR, SAVEITEM_PG_FSYNC, SAVEITEM_PG_KEEP:
#                        see util/pg.sh
#   SAVEITEM_CC, SAVEITEM_CC_OPT, ...: see util/build.sh

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NGINX=/usr/sbin/nginx
MODULE=ngx_http_saveitem_module
CONF=${SAVEITEM_RUN_CONF:-$SAVEITEM_ROOT/conf/nginx.conf}
PREFIX=${SAVEITEM_RUN_PREFIX:-$SAVEITEM_ROOT/build/run}

nginx_pid=


want_pg()
{
    [ -z "${SAVEITEM_DATABASE:-}" ] && [ -z "${PGHOST:-}" ]
}


prepare_prefix()
{
    local so=$1

    mkdir -p "$PREFIX/logs" "$PREFIX/modules"
    ln -sfn "$so" "$PREFIX/modules/$MODULE.so"
}


# conf_has NAME: the conf sets the main-level directive NAME itself
conf_has()
{
    grep -Eq "^[[:space:]]*$1[[:space:]]" "$CONF"
}


# the -g directives the conf leaves to us: foreground, a pid file in the
# prefix (Debian's default is /run/nginx.pid), and as root, workers that can
# reach a prefix in a directory `nobody` cannot enter (/root)
globals()
{
    local g=

    if conf_has daemon; then
        grep -Eq '^[[:space:]]*daemon[[:space:]]+off[[:space:]]*;' "$CONF" \
            || die "$CONF sets 'daemon on'; run.sh runs nginx in the" \
                   "foreground"
    else
        g="daemon off;"
    fi

    conf_has pid || g="$g pid logs/nginx.pid;"

    if [ "$(id -u)" = 0 ] && ! conf_has user \
       && ! runuser -u nobody -- test -x "$PREFIX" 2>/dev/null
    then
        say "user nobody cannot enter $PREFIX: workers run as root"
        g="$g user root;"
    fi

    echo "$g"
}


stop_nginx()
{
    [ -n "$nginx_pid" ] || return 0
    kill -0 "$nginx_pid" 2>/dev/null || return 0

    say "stopping nginx"
    stop_process "$nginx_pid" TERM 10
    wait "$nginx_pid" 2>/dev/null || true
}


cleanup()
{
    stop_nginx
    pg_down
}


main()
{
    local so g status=0

    [ -f "$CONF" ] || die "no nginx conf at $CONF"
    CONF=$(cd "$(dirname "$CONF")" && pwd -P)/$(basename "$CONF")

    if want_pg; then
        bash "$SAVEITEM_UTIL/deps.sh" run
    else
        bash "$SAVEITEM_UTIL/deps.sh" build
    fi

    so=$(bash "$SAVEITEM_UTIL/build.sh")

    mkdir -p "$PREFIX"
    PREFIX=$(cd "$PREFIX" && pwd -P)
    prepare_prefix "$so"
    g=$(globals)

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    if want_pg; then
        pg_up
    fi

    "$NGINX" -t -q -p "$PREFIX/" -c "$CONF" -g "$g" \
        || die "nginx rejects $CONF"

    say "nginx -p $PREFIX/ -c $CONF -g '$g' (Ctrl-C stops it)"
    "$NGINX" -p "$PREFIX/" -c "$CONF" -g "$g" &
    nginx_pid=$!
    wait "$nginx_pid" || status=$?
    nginx_pid=

    say "nginx exited with status $status"
    exit "$status"
}


main "$@"
