#!/usr/bin/env bash
# util/deps.sh - install the Debian packages a task needs, when missing
#
#   util/deps.sh GROUP...
#
# groups:
#   build   compile the module against Debian's nginx-dev tree
#   pg      a throwaway PostgreSQL 15 cluster (util/pg.sh)
#   run     build + pg (util/run.sh)
#   test    build + pg + prove and the Perl libraries of the test runner,
#           openssl and pgbouncer (t/009-tls.t, t/010-pgbouncer.t),
#           dnsmasq-base (t/015-dns.t), prometheus (prometheus and promtool:
#           t/012-metrics.t scrapes saveitem_status and checks
#           conf/prometheus/; the package's service is not started, see
#           apt_get in util/lib.sh)
#   ci      test + what the rest of `make test` needs (valgrind, clang and
#           its sanitizer and libFuzzer runtimes, python3)
#   bench   the benchmark tools (see bench_pkgs below)
#   package build + pg + dpkg-dev and curl, then the Build-Depends of
#           debian/control (apt-get build-dep) while dpkg-checkbuilddeps
#           finds any unmet (util/package-test.sh)
#
# Nothing is done when every package is installed already. Otherwise it runs
# apt-get update and apt-get install --no-install-recommends, with a
# policy-rc.d that keeps the packages' services (nginx on port 80, the default
# PostgreSQL cluster on 5432) from starting: the project never uses them
# (apt_get in util/lib.sh).
#
# knobs: SAVEITEM_CC (a compiler not on PATH is installed as the package of
# that name, e.g. clang), TEST_NGINX_USE_VALGRIND (test adds valgrind).

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_pkgs()
{
    local cc=${SAVEITEM_CC:-}

    # zlib and libzstd: compressed request bodies (gzip, deflate, zstd)
    echo gcc make libc6-dev nginx nginx-dev libpq-dev libjansson-dev \
         zlib1g-dev libzstd-dev

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
    # t/009-tls.t makes its certificates; t/010-pgbouncer.t runs PgBouncer
    # (its service stays stopped: apt_get's policy-rc.d); t/015-dns.t
    # serves a name with dnsmasq
    # t/012-metrics.t runs Prometheus; t/019-compressed.t compresses with
    # the gzip and zstd programs (and Python's zlib)
    echo openssl pgbouncer dnsmasq-base prometheus gzip zstd python3

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
    package) build_pkgs; pg_pkgs; echo dpkg-dev curl ;;
    *)     die "unknown group '$1' (build, pg, run, test, ci, bench," \
               "package)" ;;
    esac
}


installed()
{
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" \
      = "install ok installed" ]
}


install_pkgs()
{
    if [ "$(id -u)" != 0 ]; then
        die "missing packages: $*; run as root or install them:" \
            "apt-get install $*"
    fi

    say "installing: $*"

    apt_get update -q || die "apt-get update failed"
    apt_get install --no-install-recommends "$@" \
        || die "apt-get install failed"
}


# the Build-Depends of debian/control, when dpkg-checkbuilddeps finds some
# missing (it knows the virtual ones: dh-sequence-nginx, debhelper-compat)
install_build_deps()
{
    if (cd "$SAVEITEM_ROOT" && dpkg-checkbuilddeps) >/dev/null 2>&1; then
        return
    fi

    [ "$(id -u)" = 0 ] \
        || die "missing Build-Depends; run as root or: apt-get build-dep ./"

    say "installing the Build-Depends of debian/control"
    apt_get update -q || die "apt-get update failed"
    apt_get build-dep --no-install-recommends "$SAVEITEM_ROOT" \
        || die "apt-get build-dep failed"
}


main()
{
    local group pkgs pkg
    local -a missing=()

    [ $# -gt 0 ] || die "usage: $0 build|pg|run|test|ci|bench|package..."

    for group in "$@"; do
        pkgs=$(group_pkgs "$group") || exit 1

        for pkg in $pkgs; do
            if ! installed "$pkg" && [[ " ${missing[*]} " != *" $pkg "* ]]
            then
                missing+=("$pkg")
            fi
        done
    done

    if [ ${#missing[@]} -gt 0 ]; then
        install_pkgs "${missing[@]}"
    fi

    if [[ " $* " = *" package "* ]]; then
        install_build_deps
    fi
}


main "$@"
