#!/usr/bin/env bash
# util/tls.sh - a throwaway PostgreSQL cluster that speaks TLS only, with
# certificates made now by openssl, for t/009-tls.t
#
#   util/tls.sh start    a test CA, a server certificate it signs for
#                        localhost and 127.0.0.1, and another CA that
#                        signed nothing; a cluster of util/pg.sh with
#                        ssl=on, refusing TCP connections without TLS
#                        (pg_hba.conf: hostnossl ... reject)
#   util/tls.sh stop     stop the cluster and remove its directory, the
#                        certificates and keys with it
#   util/tls.sh env      NAME=VALUE lines: SAVEITEM_TLS_PORT, _DIR,
#                        _SOCKET, _CA (the CA that signed the server's
#                        certificate), _OTHER_CA
#
# Nothing is written into the repository: the keys live in the cluster's
# directory, removed at stop.
#
# knobs:
#   SAVEITEM_TLS_PORT   the cluster's port (default 15460, test-tls-pg in
#                       util/ports)
#   SAVEITEM_TLS_DIR    its directory (default /tmp/saveitem-tls-$PORT)

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${SAVEITEM_TLS_PORT:-$(port test-tls-pg)}
DIR=${SAVEITEM_TLS_DIR:-/tmp/saveitem-tls-$PORT}
CERTS=$DIR/certs
OWNER=postgres

[ "$(id -u)" = 0 ] || OWNER=$(id -un)


pg_sh()
{
    SAVEITEM_PG_PORT=$PORT SAVEITEM_PG_DIR=$DIR SAVEITEM_PG_FSYNC=off \
        bash "$SAVEITEM_UTIL/pg.sh" "$@"
}


# ca NAME: a self-signed CA, NAME.crt and NAME.key
ca()
{
    openssl req -x509 -new -nodes -days 2 -sha256 \
        -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -subj "/CN=saveitem test $1" -keyout "$CERTS/$1.key" \
        -out "$CERTS/$1.crt" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null \
        || die "openssl could not make the CA $1"
}


make_certs()
{
    rm -rf "$CERTS"
    mkdir -p "$CERTS"

    ca ca
    ca other-ca

    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -subj "/CN=localhost" -keyout "$CERTS/server.key" \
        -out "$CERTS/server.csr" 2>/dev/null \
        || die "openssl could not make the server's key"

    printf '%s\n' 'subjectAltName = DNS:localhost, IP:127.0.0.1' \
        'basicConstraints = CA:FALSE' \
        'keyUsage = critical, digitalSignature, keyEncipherment' \
        'extendedKeyUsage = serverAuth' >"$CERTS/server.ext"

    openssl x509 -req -days 2 -sha256 -in "$CERTS/server.csr" \
        -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" -CAcreateserial \
        -extfile "$CERTS/server.ext" -out "$CERTS/server.crt" 2>/dev/null \
        || die "openssl could not sign the server's certificate"

    openssl verify -CAfile "$CERTS/ca.crt" "$CERTS/server.crt" >/dev/null \
        || die "the server's certificate does not verify against its CA"

    # PostgreSQL refuses a key that others can read
    chmod 0755 "$CERTS"
    chmod 0644 "$CERTS"/*.crt
    chmod 0600 "$CERTS"/*.key
    chown "$OWNER:" "$CERTS/server.key" "$CERTS/server.crt"
}


cmd_start()
{
    local data hba

    if pg_sh status 2>/dev/null; then
        say "already running on port $PORT ($DIR)"
        return
    fi

    pg_sh start
    make_certs

    data=$DIR/data
    hba=$data/pg_hba.conf

    # TCP without TLS is refused: a 200 over TCP proves TLS was used
    if ! grep -q '^hostnossl' "$hba"; then
        { echo "hostnossl all all all reject"; cat "$hba"; } >"$hba.new"
        chown "$OWNER:" "$hba.new"
        mv "$hba.new" "$hba"
    fi

    pg_sh psql -d postgres -c "ALTER SYSTEM SET ssl = on" \
        -c "ALTER SYSTEM SET ssl_cert_file = '$CERTS/server.crt'" \
        -c "ALTER SYSTEM SET ssl_key_file = '$CERTS/server.key'" \
        -c "SELECT pg_reload_conf()" >/dev/null

    # the reload is asynchronous: wait until new sessions see it
    for _ in $(seq 50); do
        [ "$(pg_sh psql -d postgres -tAc 'SHOW ssl')" != on ] || break
        sleep 0.1
    done

    [ "$(pg_sh psql -d postgres -tAc 'SHOW ssl')" = on ] \
        || die "ssl is not on after the reload; see $DIR/postgresql.log"

    say "TLS on port $PORT; CA $CERTS/ca.crt"
}


cmd_env()
{
    printf 'SAVEITEM_TLS_PORT=%s\n' "$PORT"
    printf 'SAVEITEM_TLS_DIR=%s\n' "$DIR"
    printf 'SAVEITEM_TLS_SOCKET=%s\n' "$DIR/sock"
    printf 'SAVEITEM_TLS_CA=%s\n' "$CERTS/ca.crt"
    printf 'SAVEITEM_TLS_OTHER_CA=%s\n' "$CERTS/other-ca.crt"
}


case ${1:-} in
start)  cmd_start ;;
stop)   pg_sh stop ;;
env)    cmd_env ;;
*)      die "usage: $0 start|stop|env" ;;
esac
