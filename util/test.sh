#!/usr/bin/env bash
# util/test.sh - the test command (`make test`): install what is missing,
# build the module, start a throwaway PostgreSQL, run the suite with prove,
# then stop PostgreSQL and the suite's nginx whatever happened
#
#   util/test.sh [PROVE_OPTIONS] [FILES_OR_DIRS]    (default: t/)
#
# prove runs with -v -r. The real Test::Nginx is used when installed
# (perl -MTest::Nginx::Socket -e1), else the project's runner in
# util/test-nginx/lib. Exits with prove's status.
#
# knobs:
#   SAVEITEM_TEST_BATCH      on, off, or "on off" (the default: the suite
#                            runs twice); each run exports
#                            TEST_NGINX_SAVEITEM_BATCH for saveitem_batch
#   SAVEITEM_PG_PORT         the test cluster's port (default 15433, apart
#                            from util/run.sh's 15432; ports: util/ports)
#   SAVEITEM_PG_FSYNC        default off here
#   TEST_NGINX_PORT          nginx's port (default 19847)
#   TEST_NGINX_DEAD_PORT     a closed loopback port (default: the first
#                            closed one from 15439)
#   TEST_NGINX_BINARY        default /usr/sbin/nginx (a wrapper that
#                            preloads the ASan runtime for a sanitizer build)
#   TEST_NGINX_USE_VALGRIND  passed through (util/deps.sh adds valgrind)
#   SAVEITEM_CC, SAVEITEM_CC_OPT, SAVEITEM_LD_OPT, SAVEITEM_BUILD_DIR:
#                            see util/build.sh; with -fsanitize=address in
#                            SAVEITEM_CC_OPT, sanitizer reports are collected
#                            in build/sanitizer/ and fail the run

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NGINX=/usr/sbin/nginx
PG_BIN=/usr/lib/postgresql/15/bin
SAN_DIR=$SAVEITEM_ROOT/build/sanitizer-$$
SANITIZER=

export SAVEITEM_PG_PORT=${SAVEITEM_PG_PORT:-$(port test-pg)}
export SAVEITEM_PG_FSYNC=${SAVEITEM_PG_FSYNC:-off}
export SAVEITEM_PG_SH=$SAVEITEM_UTIL/pg.sh

BATCH_MODES=${SAVEITEM_TEST_BATCH:-on off}

prove_pid=
PROVE=()


# nginx left running from the suite's server roots (t/servroot, or
# t/servroot_PORT with TEST_NGINX_RANDOMIZE), by this run or a killed one
stop_suite_nginx()
{
    local f

    for f in "${TEST_NGINX_SERVROOT:-$SAVEITEM_ROOT/t/servroot}" \
             "$SAVEITEM_ROOT"/t/servroot_*
    do
        stop_pidfile "$f/logs/nginx.pid" nginx TERM 5
    done
}


cleanup()
{
    if [ -n "$prove_pid" ] && kill -0 "$prove_pid" 2>/dev/null; then
        say "stopping prove"
        kill -TERM -- "-$prove_pid" 2>/dev/null || true
        wait "$prove_pid" 2>/dev/null || true
    fi

    stop_suite_nginx

    if [ -n "${TEST_NGINX_PORT:-}" ]; then
        stop_nginx_on "$TEST_NGINX_PORT"
    fi

    bash "$SAVEITEM_PG_SH" stop || true
}


pick_dead_port()
{
    local port=${TEST_NGINX_DEAD_PORT:-} first last

    if [ -n "$port" ]; then
        ! port_open 127.0.0.1 "$port" \
            || die "TEST_NGINX_DEAD_PORT $port is open"
        echo "$port"
        return
    fi

    first=$(port test-dead-first)
    last=$(port test-dead-last)

    for port in $(seq "$first" "$last"); do
        if ! port_open 127.0.0.1 "$port"; then
            echo "$port"
            return
        fi
    done

    die "no closed loopback port in $first-$last"
}


# a wrapper that preloads the sanitizer runtime into Debian's nginx, and
# options that write reports to files
setup_sanitizer()
{
    local so=$1 rt wrapper=$SAVEITEM_ROOT/build/nginx-asan

    case " ${SAVEITEM_CC_OPT:-} " in
    *" -fsanitize="*address*) ;;
    *) return 0 ;;
    esac

    rt=$(asan_runtime "$so" "${SAVEITEM_CC:-cc}")
    [ -n "$rt" ] || die "$so is not built with ASan"

    printf '#!/bin/sh\nLD_PRELOAD=%s exec %s "$@"\n' "$rt" "$NGINX" >"$wrapper"
    chmod 0755 "$wrapper"

    mkdir -p "$SAN_DIR"

    export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-$wrapper}
    : "${ASAN_OPTIONS:=detect_leaks=0:log_path=$SAN_DIR/asan}"
    : "${UBSAN_OPTIONS:=print_stacktrace=1:log_path=$SAN_DIR/ubsan}"
    export ASAN_OPTIONS UBSAN_OPTIONS

    SANITIZER=1
    say "sanitizer build: nginx runs as $TEST_NGINX_BINARY"
}


# non-zero when a sanitizer wrote a report
sanitizer_reports()
{
    local f found=0

    for f in "$SAN_DIR"/*; do
        [ -f "$f" ] || continue
        say "sanitizer report $f:"
        cat "$f" >&2
        found=1
    done

    return $found
}


export_suite_env()
{
    local so=$1 pg

    eval "$(bash "$SAVEITEM_PG_SH" env)"
    pg="port=$SAVEITEM_PG_PORT dbname=saveitem user=postgres"

    export PATH=$PG_BIN:$PATH
    export TEST_NGINX_SAVEITEM_MODULE=$so
    export TEST_NGINX_PG_HOST=127.0.0.1
    export TEST_NGINX_PG_PORT=$SAVEITEM_PG_PORT
    export TEST_NGINX_PG_SOCKET=$SAVEITEM_PG_SOCKET
    export TEST_NGINX_PG_DB=saveitem
    export TEST_NGINX_PG_USER=postgres
    export TEST_NGINX_DB="host=$SAVEITEM_PG_SOCKET $pg"
    export TEST_NGINX_DB_TCP="hostaddr=127.0.0.1 $pg"
    export TEST_NGINX_DEAD_PORT
    TEST_NGINX_DEAD_PORT=$(pick_dead_port)
    export TEST_NGINX_PORT=${TEST_NGINX_PORT:-$(port test-nginx)}
    export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-$NGINX}

    stop_nginx_on "$TEST_NGINX_PORT"

    if port_open 127.0.0.1 "$TEST_NGINX_PORT"; then
        die "TEST_NGINX_PORT $TEST_NGINX_PORT is in use; set another"
    fi
}


# prove's command line, in PROVE: -I for the project's runner when
# Test::Nginx is not installed; file arguments made relative to the
# repository, where prove runs
prove_cmd()
{
    local cwd=$1 arg
    local -a files=()

    shift
    PROVE=(prove -v -r)

    if perl -MTest::Nginx::Socket -e1 2>/dev/null; then
        say "using the installed Test::Nginx"
    else
        [ -d "$SAVEITEM_ROOT/util/test-nginx/lib" ] \
            || die "no Test::Nginx and no util/test-nginx/lib"
        PROVE+=(-I "$SAVEITEM_ROOT/util/test-nginx/lib")
    fi

    for arg in "$@"; do
        case $arg in
        -*) PROVE+=("$arg") ;;
        *)  files+=("$(cd "$cwd" \
                       && realpath -m --relative-base="$SAVEITEM_ROOT" "$arg")")
            ;;
        esac
    done

    [ ${#files[@]} -gt 0 ] || files=(t/)
    PROVE+=("${files[@]}")
}


main()
{
    local cwd=$PWD so status=0 mode

    for mode in $BATCH_MODES; do
        case $mode in
        on|off) ;;
        *) die "SAVEITEM_TEST_BATCH must be on, off or \"on off\"" ;;
        esac
    done

    cd "$SAVEITEM_ROOT"

    bash util/deps.sh test
    so=$(bash util/build.sh)
    prove_cmd "$cwd" "$@"
    # one run at a time per PostgreSQL port: runs share the ports, the
    # cluster and t/servroot
    take_lock "/tmp/saveitem-test-$SAVEITEM_PG_PORT.lock"

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    stop_suite_nginx
    rm -rf "$SAN_DIR"
    bash util/pg.sh start 9>&-
    setup_sanitizer "$so"
    export_suite_env "$so"

    # the suite runs once per group commit mode: the module must behave
    # the same with saveitem_batch on and off
    for TEST_NGINX_SAVEITEM_BATCH in $BATCH_MODES; do
        export TEST_NGINX_SAVEITEM_BATCH
        say "saveitem_batch $TEST_NGINX_SAVEITEM_BATCH: ${PROVE[*]}"

        # in its own process group, waited for in the background: a signal
        # to this script runs the traps at once and stops prove with its
        # tests
        setsid "${PROVE[@]}" 9>&- &
        prove_pid=$!
        wait "$prove_pid" || status=$?
        prove_pid=
    done

    if [ -n "$SANITIZER" ] && ! sanitizer_reports && [ "$status" -eq 0 ]
    then
        status=1
    fi

    exit "$status"
}


main "$@"
