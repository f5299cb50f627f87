#!/usr/bin/env bash
# util/container-test.sh - build the Dockerfile and try the image end to end,
# with docker or podman
#
#   util/container-test.sh
#
# Builds the image (timed), starts a throwaway PostgreSQL with util/pg.sh
# (unless PGHOST is set), runs the container with host networking and the
# database in PG* variables, then checks: the HEALTHCHECK says healthy, a
# POST to /items answers {"pk": N} and the row is in the table, nginx runs
# as a user other than root, the image has no compiler, and a stop (the
# image's STOPSIGNAL, SIGQUIT) is graceful: exit status 0 well before the
# stop timeout, no [alert] or [emerg] in the log. The container is removed
# at the end; the image is kept.
#
# Host networking (--network=host) needs a Linux host: the container reaches
# the database and the test reaches the container on 127.0.0.1.
#
# knobs:
#   SAVEITEM_ENGINE     docker or podman (default: docker when found, else
#                       podman)
#   SAVEITEM_IMAGE      image tag (default localhost/saveitem:test)
#   SAVEITEM_NO_BUILD   set: use SAVEITEM_IMAGE as it is
#   SAVEITEM_CT_PORT    port the container listens on, on the host's network
#                       (default 18088; SAVEITEM_PORT inside)
#   PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE: an existing
#                       database whose table "items" the test writes to,
#                       instead of the throwaway cluster
#   SAVEITEM_PG_PORT, SAVEITEM_PG_DIR, SAVEITEM_PG_KEEP: see util/pg.sh

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=${SAVEITEM_IMAGE:-localhost/saveitem:test}
PORT=${SAVEITEM_CT_PORT:-$(port container)}
STOP_TIMEOUT=30

engine=
cid=
pg_ours=


pick_engine()
{
    engine=${SAVEITEM_ENGINE:-}

    if [ -z "$engine" ]; then
        if command -v docker >/dev/null 2>&1; then
            engine=docker
        elif command -v podman >/dev/null 2>&1; then
            engine=podman
        else
            die "neither docker nor podman found; set SAVEITEM_ENGINE"
        fi
    fi

    command -v "$engine" >/dev/null 2>&1 || die "$engine not found"
    command -v curl >/dev/null 2>&1 || die "curl not found"
}


build()
{
    local -a opts=(--network=host -t "$IMAGE")
    local start=$SECONDS

    if [ -n "${SAVEITEM_NO_BUILD:-}" ]; then
        say "using $IMAGE as it is"
        return
    fi

    # podman's default OCI format drops HEALTHCHECK
    [ "$engine" != podman ] || opts+=(--format docker)

    say "$engine build ${opts[*]} $SAVEITEM_ROOT"
    "$engine" build "${opts[@]}" "$SAVEITEM_ROOT" >&2 || die "build failed"

    say "built $IMAGE in $((SECONDS - start)) s," \
        "$("$engine" image inspect --format '{{.Size}}' "$IMAGE") bytes"
}


start_pg()
{
    if [ -n "${PGHOST:-}" ]; then
        say "using the database at PGHOST=$PGHOST"
        return
    fi

    # the container reaches it over TCP
    pg_up 127.0.0.1
    pg_ours=1
}


run()
{
    local -a opts=(--network=host -e SAVEITEM_PORT="$PORT")
    local var

    if port_open 127.0.0.1 "$PORT"; then
        die "port $PORT is taken; set SAVEITEM_CT_PORT"
    fi

    for var in PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD PGSSLMODE; do
        [ -z "${!var:-}" ] || opts+=(-e "$var")
    done

    # docker runs the HEALTHCHECK on its own: ask it often
    [ "$engine" != docker ] || opts+=(--health-interval=1s)

    cid=$("$engine" run -d "${opts[@]}" "$IMAGE") || die "$engine run failed"
    say "container ${cid:0:12} listens on 127.0.0.1:$PORT"
}


health()
{
    local i status=

    for i in $(seq 30); do
        if [ "$engine" = podman ]; then
            # podman's timers need systemd: run the check by hand
            podman healthcheck run "$cid" >/dev/null 2>&1 || true
        fi

        status=$("$engine" inspect --format '{{.State.Health.Status}}' \
                 "$cid" 2>/dev/null || true)

        [ "$status" != healthy ] || break
        sleep 1
    done

    if [ "$status" = healthy ]; then
        check_ok "health status: $status"
    else
        check_failed "health status: ${status:-none}"
    fi
}


# the row is looked up in the throwaway cluster only
post()
{
    post_check "http://127.0.0.1:$PORT/items" util/container-test.sh \
        ${pg_ours:+row} >/dev/null || checks_failed=1
}


inside()
{
    local uid

    uid=$("$engine" exec "$cid" bash -c \
          'while read -r k v _; do [ "$k" != Uid: ] || echo "$v"; done \
           </proc/1/status' || true)

    if [ -n "$uid" ] && [ "$uid" != 0 ]; then
        check_ok "nginx (pid 1) runs as uid $uid"
    else
        check_failed "nginx (pid 1) runs as uid '${uid}'"
    fi

    if "$engine" run --rm --entrypoint /bin/sh "$IMAGE" -c \
           'for c in cc gcc make curl; do command -v $c && exit 0; done
            exit 1' >&2
    then
        check_failed "the image has build tools or curl (above)"
    else
        check_ok "no cc, gcc, make or curl in the image"
    fi
}


stop()
{
    local start=$SECONDS elapsed code logs

    "$engine" stop -t "$STOP_TIMEOUT" "$cid" >/dev/null
    elapsed=$((SECONDS - start))

    code=$("$engine" inspect --format '{{.State.ExitCode}}' "$cid")
    logs=$("$engine" logs "$cid" 2>&1)

    if [ "$code" = 0 ] && [ "$elapsed" -lt "$STOP_TIMEOUT" ]; then
        check_ok "stopped (SIGQUIT) in ${elapsed} s, exit status $code"
    else
        check_failed "stop took ${elapsed} s, exit status $code"
    fi

    if grep -Eq 'signal 3 \(SIGQUIT\) received' <<<"$logs"; then
        check_ok "nginx got SIGQUIT: a graceful shutdown"
    else
        check_failed "no SIGQUIT in the log"
    fi

    if grep -E '\[(alert|emerg)\]' <<<"$logs" >&2; then
        check_failed "[alert] or [emerg] in the log (above)"
    fi
}


cleanup()
{
    if [ -n "$cid" ]; then
        "$engine" rm -f "$cid" >/dev/null 2>&1 || true
    fi

    pg_down
}


main()
{
    pick_engine
    build

    trap cleanup EXIT

    start_pg
    run
    health
    post
    inside
    stop

    if [ -n "$checks_failed" ]; then
        die "some checks failed"
    fi

    say "all checks passed ($engine, $IMAGE)"
}


main "$@"
