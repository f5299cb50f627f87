#!/bin/sh
# Self-test of the lite Test::Nginx::Socket in util/test-nginx/lib.
#
#   util/test-nginx/selftest/run.sh [--hup] [--valgrind] [--all]
#
# Runs t/ (passing blocks of every kind, plus t/900-failures.t, which runs
# the files in fail/ and checks that each fails the way it should and
# leaves no nginx behind).  --hup reruns part of t/ with TEST_NGINX_USE_HUP,
# --valgrind checks TEST_NGINX_USE_VALGRIND (slow).  Port 19860
# (TEST_NGINX_PORT), a temporary server root.

set -eu

hup=
valgrind=

for arg in "$@"; do
    case "$arg" in
    --hup)      hup=1 ;;
    --valgrind) valgrind=1 ;;
    --all)      hup=1; valgrind=1 ;;
    *)          echo "usage: $0 [--hup] [--valgrind] [--all]" >&2; exit 2 ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
lib=$(cd "$here/../lib" && pwd)

# a known mode, whatever the caller's environment says
unset TEST_NGINX_USE_HUP TEST_NGINX_USE_VALGRIND TEST_NGINX_NO_SHUFFLE \
      TEST_NGINX_CHECK_LEAK TEST_NGINX_BENCHMARK TEST_NGINX_USE_HTTP2 \
      TEST_NGINX_USE_HTTP3 TEST_NGINX_USE_STAP TEST_NGINX_USE_RR \
      TEST_NGINX_NO_NGINX_MANAGER TEST_NGINX_IGNORE_MISSING_DIRECTIVES \
      TEST_NGINX_RANDOMIZE TEST_NGINX_NO_CLEAN TEST_NGINX_ERROR_LOG \
      TEST_NGINX_LOAD_MODULES TEST_NGINX_LOG_LEVEL TEST_NGINX_MASTER_PROCESS \
      TEST_NGINX_SERVER_PORT TEST_NGINX_CLIENT_PORT

TEST_NGINX_PORT=${TEST_NGINX_PORT:-19860}
export TEST_NGINX_PORT

work=$(mktemp -d "${TMPDIR:-/tmp}/test-nginx-selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

TEST_NGINX_SERVROOT="$work/servroot"
export TEST_NGINX_SERVROOT

cd "$here"

prove -I "$lib" t/

if [ -n "$hup" ]; then
    TEST_NGINX_USE_HUP=1 prove -I "$lib" \
        t/001-basic.t t/002-logs.t t/003-plan.t t/006-preprocessor.t
fi

if [ -n "$valgrind" ]; then
    prove valgrind.t
fi
