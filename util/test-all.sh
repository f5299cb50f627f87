#!/usr/bin/env bash
# util/test-all.sh - the whole test suite (`make test`, what CI runs): each
# part in turn, on ports and PostgreSQL clusters of its own, each stopping
# what it started; a line per part, then "N passed, M failed"
#
#   util/test-all.sh [PART...]
#
# parts (default: all, in this order):
#   unit      the unit tests of the adaptive rules, pure functions built
#             with ASan and UBSan; seconds (util/unit/run)
#   suite     t/ with the module as users build it, saveitem_batch on and
#             off (util/test.sh)
#   asan      t/ with the module built by clang with ASan and UBSan: any
#             report fails (util/memcheck asan)
#   valgrind  t/ under valgrind memcheck: any report fails (util/memcheck
#             valgrind)
#   faults    PostgreSQL restarted, stopped, frozen, backends terminated,
#             nginx reloaded, clients aborting and trickling, EAGAIN and
#             short reads injected on the libpq socket, all under load
#             (util/fault/run --quick)
#   campaign  the randomized fault campaign: rounds of a configuration,
#             client behaviours and database faults drawn from a seed,
#             against the module built with ASan and UBSan, a fixed master
#             seed, 2.5 to 3.5 minutes (util/fault/campaign --quick)
#   fuzz      libFuzzer on the checks of bytes, 60 s, then on the
#             decoder of compressed bodies, 20 s, fixed seed (util/fuzz/run)
#   http-fuzz 20,000 random and mutated requests to a running module
#             (util/fuzz/http)
#   package   the Debian package: built with dpkg-buildpackage, installed
#             into Debian's stock nginx, the example site served, one POST,
#             the package purged; seconds (util/package-test.sh)
#
# Each part's output goes to build/test-all/<part>.log and is shown when the
# part fails.  `make check` runs the suite alone, for development.

set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOGS=$SAVEITEM_ROOT/build/test-all
ALL="unit suite asan valgrind faults campaign fuzz http-fuzz package"


part_cmd()
{
    case $1 in
    suite)     echo "bash $SAVEITEM_UTIL/test.sh" ;;
    asan)      echo "bash $SAVEITEM_UTIL/memcheck asan" ;;
    valgrind)  echo "bash $SAVEITEM_UTIL/memcheck valgrind" ;;
    faults)    echo "bash $SAVEITEM_UTIL/fault/run --quick" ;;
    unit)      echo "bash $SAVEITEM_UTIL/unit/run" ;;
    campaign)  echo "bash $SAVEITEM_UTIL/fault/campaign --quick" ;;
    fuzz)      echo "bash $SAVEITEM_UTIL/fuzz/run 60" ;;
    http-fuzz) echo "bash $SAVEITEM_UTIL/fuzz/http" ;;
    package)   echo "bash $SAVEITEM_UTIL/package-test.sh" ;;
    *)         die "unknown part '$1' ($ALL)" ;;
    esac
}


main()
{
    local part cmd start status passed=0 failed=0
    local -a parts=("$@") summary=()

    [ ${#parts[@]} -gt 0 ] || read -r -a parts <<<"$ALL"

    for part in "${parts[@]}"; do
        part_cmd "$part" >/dev/null
    done

    bash "$SAVEITEM_UTIL/deps.sh" ci || die "could not install the packages"
    mkdir -p "$LOGS"

    for part in "${parts[@]}"; do
        cmd=$(part_cmd "$part")
        start=$SECONDS
        say "$part: $cmd (log: build/test-all/$part.log)"

        $cmd >"$LOGS/$part.log" 2>&1
        status=$?

        if [ "$status" -eq 0 ]; then
            passed=$((passed + 1))
            summary+=("$(printf 'ok      %-10s %4ss' "$part" \
                                $((SECONDS - start)))")
        else
            failed=$((failed + 1))
            summary+=("$(printf 'FAILED  %-10s %4ss (exit %s)' "$part" \
                                $((SECONDS - start)) "$status")")
            say "$part failed; the end of its log:"
            tail -n 60 "$LOGS/$part.log" >&2
        fi

        # the suite's own verdicts, for the reader of CI's output
        grep -a -E '^(Files=|Result:|not ok )' "$LOGS/$part.log" \
            | head -n 40 >&2 || true
    done

    printf '%s\n' "${summary[@]}"
    echo "$passed passed, $failed failed"

    [ "$failed" -eq 0 ]
}


main "$@"
