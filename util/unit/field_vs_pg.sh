#!/usr/bin/env bash
# util/unit/field_vs_pg.sh - the judging vectors of util/unit/field_test.c
# against a real PostgreSQL: each value goes through the server as the
# module will send it, (doc #>> '{v}')::type for a JSON value, $1::type for
# a value from nginx, into a column of the type; the server's verdict must
# be the test's ("strict": the module refuses what the server takes, on
# purpose, see src/ngx_http_saveitem_field.h; "loose": the module lets it
# through, the server judges).  json and jsonb go with #>, not #>>.  Not
# part of make test: it needs the throwaway cluster (util/pg.sh start,
# SAVEITEM_PG_PORT).
#
#   util/unit/field_vs_pg.sh
#
# knobs: SAVEITEM_CC (default clang), SAVEITEM_PG_PORT

set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

CC=${SAVEITEM_CC:-clang}
OUT=$SAVEITEM_ROOT/build/unit
BIN=$OUT/field_vectors


main()
{
    local sql rows src typ want hex got bad=0 n=0

    mkdir -p "$OUT"

    "$CC" -std=c99 -O1 -Wall -Wextra -Werror -I "$SAVEITEM_ROOT/src" \
        -o "$BIN" "$SAVEITEM_UTIL/unit/field_test.c" \
        "$SAVEITEM_ROOT/src/ngx_http_saveitem_field.c" -lm

    rows=$("$BIN" --vectors | awk -F '\t' '
        { printf "%s(%s, %s, %s, %s)", (NR > 1 ? ",\n" : ""),
                 q($1), q($2), q($3), q($4) }
        function q(s) { return "'\''" s "'\''" }')

    sql=$(cat <<'_SQL_'
SET client_min_messages = warning;
SET timezone = 'UTC';
CREATE FUNCTION pg_temp.verdict(src text, typ text, hex text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    tab  text := 'v_' || md5(typ);
    base text := regexp_replace(typ, '\(.*', '');
    val  text;
BEGIN
    EXECUTE format('CREATE TEMP TABLE IF NOT EXISTS %I (c %s)', tab, typ);
    val := convert_from(decode(hex, 'hex'), 'UTF8');
    IF src = 'json' THEN
        -- json, jsonb: #> keeps the JSON (#>> would unquote a string)
        EXECUTE format('INSERT INTO %I VALUES ((($1 || $2 || $3)::jsonb'
                       ' %s ''{v}'')::%s)', tab,
                       CASE WHEN base IN ('json', 'jsonb') THEN '#>'
                            ELSE '#>>' END, base)
            USING '{"v": ', val, '}';
    ELSE
        EXECUTE format('INSERT INTO %I VALUES (NULLIF($1, '''')::%s)',
                       tab, base) USING val;
    END IF;
    RETURN 'taken';
EXCEPTION WHEN others THEN
    RETURN 'refused ' || SQLSTATE || ' ' || SQLERRM;
END $$;
_SQL_
)

    while IFS='|' read -r src typ want hex got; do
        n=$((n + 1))

        case "$want/$got" in
        taken/taken|refused/refused*|strict/taken|loose/refused*)
            ;;
        *)
            bad=$((bad + 1))
            say "DIFFERS: $src $typ '$(printf '%s' "$hex" | xxd -r -p)':" \
                "the test says $want, the server: $got"
            ;;
        esac
    done < <(bash "$SAVEITEM_UTIL/pg.sh" psql -At -c "$sql" \
                 -c "SELECT src, typ, want, hex, pg_temp.verdict(src, typ, hex)
                     FROM (VALUES $rows) AS v (src, typ, want, hex)")

    say "$n vectors, $bad differ"

    [ "$bad" -eq 0 ]
}


main "$@"
