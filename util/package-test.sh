#!/usr/bin/env bash
# util/package-test.sh - the Debian package end to end, in seconds: build it
# with dpkg-buildpackage, install it into Debian's stock nginx with apt-get,
# serve the example site it ships, POST once, purge it
#
#   util/package-test.sh
#
# Installs what it lacks first (util/deps.sh package: dpkg-dev, then the
# Build-Depends of debian/control). The working tree is copied under
# SAVEITEM_PKG_DIR and built there, so that no .deb, .buildinfo, .changes or
# debian/ build directory lands in the repository or beside it; the copy is
# removed at the end. apt-get runs with a policy-rc.d (apt_get in
# util/lib.sh): the stock nginx service does not start. nginx runs from this
# script with a conf of its own that includes the package's
# /etc/nginx/modules-enabled/ snippet and its example site, the example's
# port and database replaced by a loopback port and a throwaway PostgreSQL
# (util/pg.sh, on its own port). Checks: the first POST answers {"pk": 1}
# and the row holds the document; purge removes the package and its
# modules-enabled link; the stock nginx service runs only if it ran before.
# One run at a time (a lock); a machine where the package is installed
# already is refused, not changed.
#
# knobs:
#   SAVEITEM_PKG_PORT     nginx's port (default 18320)
#   SAVEITEM_PKG_PG_PORT  PostgreSQL's port (default 15538)
#   SAVEITEM_PKG_DIR      where the tree is built and nginx runs (default
#                         /tmp/saveitem-package)

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PKG=libnginx-mod-http-saveitem
SO=/usr/lib/nginx/modules/ngx_http_saveitem_module.so
NGINX=/usr/sbin/nginx
EXAMPLE=/usr/share/doc/$PKG/examples/saveitem.conf
ENABLED=/etc/nginx/modules-enabled/50-mod-http-saveitem.conf
PORT=${SAVEITEM_PKG_PORT:-$(port package-nginx)}
DIR=${SAVEITEM_PKG_DIR:-/tmp/saveitem-package}

export SAVEITEM_PG_PORT=${SAVEITEM_PKG_PG_PORT:-$(port package-pg)}
export SAVEITEM_PG_FSYNC=off

pkg_ours=
nginx_pid=


installed()
{
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" \
      = "install ok installed" ]
}


stock_nginx_runs()
{
    local pid

    pid=$(cat /run/nginx.pid 2>/dev/null) || return 1
    grep -qa nginx "/proc/$pid/cmdline" 2>/dev/null
}


# the working tree as it is, uncommitted changes included, without what
# builds and runs leave in it
build()
{
    local start=$SECONDS

    rm -rf "$DIR"
    mkdir -p "$DIR/src" "$DIR/nginx"

    tar -C "$SAVEITEM_ROOT" --exclude=./.git --exclude=./build \
        --exclude='./t/servroot*' --exclude=./bench/out --exclude='./obj-*' \
        -cf - . | tar -C "$DIR/src" -xf -

    say "dpkg-buildpackage in $DIR/src (log: $DIR/build.log)"

    if ! (cd "$DIR/src" \
          && DEB_BUILD_OPTIONS="noautodbgsym nocheck parallel=$(nproc)" \
             dpkg-buildpackage -us -uc -b) >"$DIR/build.log" 2>&1
    then
        tail -n 30 "$DIR/build.log" >&2
        die "dpkg-buildpackage failed (log: $DIR/build.log)"
    fi

    compgen -G "$DIR/${PKG}_*.deb" >/dev/null || die "no .deb in $DIR"
    say "built $(basename "$DIR/${PKG}"_*.deb) in $((SECONDS - start)) s"

    # the libraries of compressed bodies come with it, from its shlibs
    local dep

    for dep in zlib1g libzstd1; do
        dpkg-deb -f "$DIR/${PKG}"_*.deb Depends | grep -qw "$dep" \
            || die "the package does not depend on $dep"
    done
}


install_pkg()
{
    pkg_ours=1
    apt_get install --no-install-recommends "$DIR/${PKG}"_*.deb \
        || die "apt-get install failed"

    if [ -L "$ENABLED" ] && [ -f "$SO" ]; then
        check_ok "installed: $SO, $ENABLED"
    else
        check_failed "installed, but no $SO or no $ENABLED"
    fi
}


# the example site on our port, with our database; a main conf like
# Debian's own: the enabled modules, then the site
write_conf()
{
    local conninfo="host=$SAVEITEM_PG_SOCKET port=$SAVEITEM_PG_PORT"
    local site=$DIR/nginx/saveitem.conf example=$EXAMPLE

    conninfo="$conninfo dbname=saveitem user=postgres"
    [ -f "$example" ] || example=$EXAMPLE.gz

    zcat -f "$example" \
        | sed -e "s|^\( *\)listen *8080;|\1listen 127.0.0.1:$PORT;|" \
              -e '/listen *\[::\]:8080;/d' \
              -e "s|\(saveitem_database *\)\"[^\"]*\"|\1\"$conninfo\"|" \
        >"$site" || die "cannot read $example"

    grep -q "listen 127.0.0.1:$PORT;" "$site" && grep -qF "$conninfo" "$site" \
        || die "$EXAMPLE has no 'listen 8080;' or saveitem_database to" \
               "replace (now $site)"

    cat >"$DIR/nginx/nginx.conf" <<EOF
# written by util/package-test.sh
user www-data;
worker_processes 1;
daemon off;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log info;
include /etc/nginx/modules-enabled/*.conf;

events {
    worker_connections 64;
}

http {
    access_log $DIR/nginx/access.log;
    include $site;
}
EOF
}


serve()
{
    local i

    bash "$SAVEITEM_UTIL/pg.sh" psql -c "TRUNCATE items RESTART IDENTITY"
    write_conf

    if port_open 127.0.0.1 "$PORT"; then
        die "port $PORT is taken; set SAVEITEM_PKG_PORT"
    fi

    # Debian's prefix, which the package's load_module line is relative to
    "$NGINX" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log" 9>&- &
    nginx_pid=$!

    for i in $(seq 100); do
        port_open 127.0.0.1 "$PORT" && return
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.1
    done

    cat "$DIR/nginx/error.log" >&2 || true
    die "nginx does not listen on $PORT"
}


stop_nginx()
{
    [ -n "$nginx_pid" ] || return 0

    stop_process "$nginx_pid" QUIT 10
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=
}


purge()
{
    apt_get purge "$PKG" || die "apt-get purge failed"
    pkg_ours=

    if installed "$PKG" || [ -e "$ENABLED" ] || [ -L "$ENABLED" ] \
       || [ -L "$ENABLED.removed" ]
    then
        check_failed "purge left the package or $ENABLED"
    else
        check_ok "purged: no $PKG, no $ENABLED"
    fi
}


cleanup()
{
    stop_nginx

    if [ -n "$pkg_ours" ] && installed "$PKG"; then
        apt_get purge "$PKG" || true
    fi

    pg_down
    rm -rf "$DIR"
}


main()
{
    local pk stock

    bash "$SAVEITEM_UTIL/deps.sh" package
    take_lock /tmp/saveitem-package.lock

    if installed "$PKG"; then
        die "$PKG is installed; this test would replace it (apt-get purge" \
            "$PKG first)"
    fi

    stock=$(stock_nginx_runs && echo yes || echo no)

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    build
    install_pkg
    pg_up
    serve

    pk=$(post_check "http://127.0.0.1:$PORT/items" util/package-test.sh row) \
        || checks_failed=1
    if [ "${pk:-}" = 1 ]; then
        check_ok "the first key is 1"
    else
        check_failed "the first key is '${pk:-}', not 1"
    fi

    stop_nginx

    if grep -E '\[(alert|emerg|crit)\]' "$DIR/nginx/error.log" >&2; then
        check_failed "[alert], [emerg] or [crit] in nginx's log (above)"
    fi

    purge

    if [ "$stock" = no ] && stock_nginx_runs; then
        check_failed "the stock nginx service runs now"
        stop_pidfile /run/nginx.pid nginx QUIT 10
    fi

    [ -z "$checks_failed" ] || die "some checks failed"
    say "all checks passed"
}


main "$@"
