#!/usr/bin/env bash
# healthcheck.sh - the image's HEALTHCHECK (/usr/local/bin/saveitem-healthcheck)
#
# GET /ready (saveitem_ready) on 127.0.0.1:$SAVEITEM_PORT over bash's
# /dev/tcp (no curl in the image); healthy when nginx answers 200: the worker
# that answered has a connection to the database, or opened one within
# connect_timeout. No statement is run.

port=${SAVEITEM_PORT:-8080}

exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1

printf 'GET /ready HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3

IFS= read -r -t 5 status <&3 || exit 1

case $status in
"HTTP/1."[01]" 200 "*)
    exit 0
    ;;
esac

printf 'unhealthy: %s\n' "${status%$'\r'}"
exit 1
