#!/usr/bin/env bash
# util/deps.sh - install the Debian packages a task needs, when missing
#
#   util/deps.sh GROUP...
#
# groups:
#   build   compile the module against Debian's nginx-dev tree
#   pg      a throwaway PostgreSQL 15 cluster (util/pg.sh)
#   run     build + pg (util/run.sh)
#   test    build + pg + prove and the Perl libraries of the test runner
#   ci      test + what the rest of `make test` needs (valgrind, clang and
#           its sanitizer and libFuzzer runtimes, python3)
#   bench   the benchmark tools (see bench_pkgs below)
#
# Nothing is done when every package is installed already. Otherwise it runs
# apt-get update and apt-get install --no-install-recommends, with a
# policy-rc.d that keeps the packages' services (nginx on port 80, the default
# PostgreSQL cluster on 5432) from starting: the project never uses them.
#
# knobs: SAVEITEM_CC (a compiler not on PATH is installed as the package of
# that name, e.g. clang), TEST_NGINX_USE_VALGRIND (test adds valgrind).

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POLICY_RC=/usr/sbin/policy-rc.d
policy_rc_ours=


build_pkgs()
{
    local cc=${SAVEITEM_CC:-}

    echo gcc make libc6-dev nginx nginx-dev libpq-dev libjansson-dev

    cc=${cc%% *}
    if [ -n "$cc" ] && [[ $cc != */* ]] \
       && ! command -v "$cc" >/dev/null 2>&1
    then
        echo "$cc"
    fi
}


pg_pkgs()
{
    echo postgresql-15
}


test_pkgs()
{
    build_pkgs
    pg_pkgs
    echo perl libtest-base-perl libtest-longstring-perl libtext-diff-perl \
         liblist-moreutils-perl liburi-perl libhttp-message-perl curl procps

    if [ -n "${TEST_NGINX_USE_VALGRIND:-}" ]; then
        echo valgrind
    fi
}


# what the whole of `make test` needs beyond the suite: valgrind, clang
# with its sanitizer and libFuzzer runtimes, Python for the fault and HTTP
# fuzz clients
ci_pkgs()
{
    echo valgrind clang libclang-rt-14-dev python3
}


# the Python peers' packages: bench/run skips a peer whose packages are
# missing, so one that Debian's archive lacks is left out here, not fatal
BENCH_PEER_PKGS="python3-flask python3-psycopg2 gunicorn python3-aiohttp
    python3-asyncpg python3-uvloop python3-tornado python3-aiopg"


# in the archive, as far as apt's lists tell; with no lists yet (a fresh
# machine), assume so: apt-get update runs before the install
in_archive()
{
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        return 0
    fi

    [ -n "$(apt-cache policy "$1" 2>/dev/null \
            | sed -n 's/^ *Candidate: //p' | grep -v '(none)')" ]
}


bench_pkgs()
{
    local pkg

    build_pkgs
    pg_pkgs
    echo wrk gnuplot-nox postgresql-client-15 python3 procps

    for pkg in $BENCH_PEER_PKGS; do
        if installed "$pkg" || in_archive "$pkg"; then
            echo "$pkg"
        else
            say "$pkg is not in Debian's archive: its peer is skipped"
        fi
    done
}


group_pkgs()
{
    case $1 in
    build) build_pkgs ;;
    pg)    pg_pkgs ;;
    run)   build_pkgs; pg_pkgs ;;
    test)  test_pkgs ;;
    bench) bench_pkgs ;;
    ci)    test_pkgs; ci_pkgs ;;
    *)     die "unknown group '$1' (build, pg, run, test, ci, bench)" ;;
    esac
}


installed()
{
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" \
      = "install ok installed" ]
}


deny_services()
{
    if [ -e "$POLICY_RC" ]; then
        return
    fi

    printf '#!/bin/sh\n# written by util/deps.sh\nexit 101\n' >"$POLICY_RC"
    chmod 0755 "$POLICY_RC"
    policy_rc_ours=1
}


allow_services()
{
    if [ -n "$policy_rc_ours" ]; then
        rm -f "$POLICY_RC"
    fi
}


install_pkgs()
{
    if [ "$(id -u)" != 0 ]; then
        die "missing packages: $*; run as root or install them:" \
            "apt-get install $*"
    fi

    say "installing: $*"

    trap allow_services EXIT
    deny_services

    apt-get update -qq >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" >&2 \
        || die "apt-get install failed"

    allow_services
    trap - EXIT
}


main()
{
    local group pkgs pkg
    local -a missing=()

    [ $# -gt 0 ] || die "usage: $0 build|pg|run|test|bench..."

    for group in "$@"; do
        pkgs=$(group_pkgs "$group") || exit 1

        for pkg in $pkgs; do
            if ! installed "$pkg" && [[ " ${missing[*]} " != *" $pkg "* ]]
            then
                missing+=("$pkg")
            fi
        done
    done

    if [ ${#missing[@]} -eq 0 ]; then
        return
    fi

    install_pkgs "${missing[@]}"
}


main "$@"
