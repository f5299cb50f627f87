#!/usr/bin/env bash
# util/build.sh - build ngx_http_saveitem_module.so the way users do: as a
# dynamic module against Debian's nginx-dev tree, configured with the flags
# Debian's nginx was built with (so the .so loads into /usr/sbin/nginx)
#
#   util/build.sh
#
# Prints the path of the .so on stdout; all else goes to stderr.
# The copied nginx tree is reused while the module's `config`, the flags and
# the nginx-dev version stay the same; otherwise it is copied and configured
# afresh.
#
# knobs:
#   SAVEITEM_CC         compiler, passed as --with-cc (e.g. clang)
#   SAVEITEM_CC_OPT     --with-cc-opt (default "-O2 -g -Werror")
#   SAVEITEM_LD_OPT     --with-ld-opt (default: the -fsanitize= options of
#                       SAVEITEM_CC_OPT, so a sanitizer build links its
#                       runtime)
#   SAVEITEM_BUILD_DIR  where the nginx tree is copied and built
#                       (default build/nginx-src)
#   SAVEITEM_OUT        the .so to write
#                       (default: beside SAVEITEM_BUILD_DIR, in its parent)
#   SAVEITEM_SRC_DIR    the module's directory, holding `config`
#                       (default: this repository)
#   SAVEITEM_NGX_SRC    the nginx-dev tree (default /usr/share/nginx/src)

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODULE=ngx_http_saveitem_module

NGX_SRC=${SAVEITEM_NGX_SRC:-/usr/share/nginx/src}
SRC_DIR=${SAVEITEM_SRC_DIR:-$SAVEITEM_ROOT}
BUILD_DIR=${SAVEITEM_BUILD_DIR:-$SAVEITEM_ROOT/build/nginx-src}
CC=${SAVEITEM_CC:-}
CC_OPT=${SAVEITEM_CC_OPT--O2 -g -Werror}
STAMP=.saveitem-stamp


# the -fsanitize= words of SAVEITEM_CC_OPT
sanitize_opts()
{
    local opt
    local -a found=()

    for opt in $CC_OPT; do
        case $opt in
        -fsanitize=*) found+=("$opt") ;;
        esac
    done

    echo "${found[*]}"
}


LD_OPT=${SAVEITEM_LD_OPT-$(sanitize_opts)}


check_inputs()
{
    if [ ! -f "$NGX_SRC/conf_flags" ] || [ ! -x "$NGX_SRC/configure" ]; then
        die "no nginx source tree in $NGX_SRC; run util/deps.sh build"
    fi

    [ -f "$SRC_DIR/config" ] || die "no module config in $SRC_DIR"

    if [ -n "$CC" ] && ! command -v "${CC%% *}" >/dev/null 2>&1; then
        die "compiler '$CC' not found; run util/deps.sh build"
    fi

    command -v make >/dev/null 2>&1 || die "make not found"

    SRC_DIR=$(cd "$SRC_DIR" && pwd -P)
    mkdir -p "$(dirname "$BUILD_DIR")"
    BUILD_DIR=$(cd "$(dirname "$BUILD_DIR")" && pwd -P)/$(basename "$BUILD_DIR")
    OUT=${SAVEITEM_OUT:-$(dirname "$BUILD_DIR")/$MODULE.so}
}


# what the configured tree depends on, one item a line
stamp()
{
    printf 'src %s\ncc %s\ncc-opt %s\nld-opt %s\n' \
        "$SRC_DIR" "$CC" "$CC_OPT" "$LD_OPT"
    dpkg-query -W -f='nginx-dev ${Version}\n' nginx-dev 2>/dev/null || true
    (cd "$NGX_SRC" && sha256sum conf_flags configure)
    (cd "$SRC_DIR" && sha256sum config)
}


fresh_tree()
{
    if [ -e "$BUILD_DIR" ]; then
        [ -e "$BUILD_DIR/$STAMP" ] || [ -e "$BUILD_DIR/conf_flags" ] \
            || die "$BUILD_DIR exists and is not an nginx tree of ours;" \
                   "refusing to replace it"
        rm -rf "$BUILD_DIR"
    fi

    cp -a "$NGX_SRC" "$BUILD_DIR"
}


configure()
{
    local log=$BUILD_DIR/configure.log
    local -a opts=(--add-dynamic-module="$SRC_DIR")

    [ -z "$CC" ]     || opts+=(--with-cc="$CC")
    [ -z "$CC_OPT" ] || opts+=(--with-cc-opt="$CC_OPT")
    [ -z "$LD_OPT" ] || opts+=(--with-ld-opt="$LD_OPT")

    say "configuring nginx-dev tree in $BUILD_DIR"

    if ! (cd "$BUILD_DIR" && . ./conf_flags \
          && ./configure "${NGX_CONF_FLAGS[@]}" "${opts[@]}") >"$log" 2>&1
    then
        tail -n 25 "$log" >&2
        if [ -f "$BUILD_DIR/objs/autoconf.err" ]; then
            say "last lines of $BUILD_DIR/objs/autoconf.err:"
            tail -n 25 "$BUILD_DIR/objs/autoconf.err" >&2
        fi
        die "configure failed (full log: $log)"
    fi
}


compile()
{
    say "compiling $MODULE"

    (cd "$BUILD_DIR" \
     && make -f objs/Makefile -j"$(nproc)" modules) >&2 \
        || die "build failed"
}


install_so()
{
    # copy, then rename: an nginx that has the old .so mapped keeps it intact
    mkdir -p "$(dirname "$OUT")"
    cp "$BUILD_DIR/objs/$MODULE.so" "$OUT.tmp"
    mv -f "$OUT.tmp" "$OUT"
}


main()
{
    local want

    check_inputs

    want=$(stamp)

    if [ "$want" != "$(cat "$BUILD_DIR/$STAMP" 2>/dev/null)" ] \
       || [ ! -f "$BUILD_DIR/objs/Makefile" ]
    then
        fresh_tree
        configure
        printf '%s\n' "$want" >"$BUILD_DIR/$STAMP"
    fi

    compile
    install_so

    say "built $OUT"
    printf '%s\n' "$OUT"
}


main "$@"
