# Hostile documents: what jsonb cannot store is refused by the module itself
# (400 invalid_json with the position of the offending token), before it can
# join a statement; no trip to the database, no row, never a 500.  The
# boundaries jsonb does accept are stored as they are.  The limits were
# measured against PostgreSQL 15 with psql (src/ngx_http_saveitem_check.c).

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t11 CASCADE;
CREATE SCHEMA t11;
CREATE TABLE t11.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
_SQL_

# the largest and smallest numbers numeric holds, written every way
our $Edges = '{"max": 1e131071, "max9": -9.9999e131071, "lead": 0.0001e131075,'
    . ' "tiny": 1e-16383, "tiny3": 123e-16380, "zero": 0e-16383,'
    . ' "zbig": 0e1073741822, "exp0": 1e00000000000000000000001,'
    . ' "int": 123456789012345678901234567890, "j": 1e400}';

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    location = /items {
        saveitem t11.items;
    }
_EOC_

sub invalid {
    my ($msg, $line, $col, $pos) = @_;

    return sprintf('{"error": "invalid_json", "message": "%s", "line": %d, '
                   . '"column": %d, "position": %d}' . "\n",
                   $msg, $line, $col, $pos);
}

our $Big = 'number too large for PostgreSQL: more than 131072 digits before '
           . 'the decimal point';
our $Scale = 'number with more than 16383 digits after the decimal point: '
             . 'PostgreSQL cannot store it';
our $Exp = "exponent out of PostgreSQL's range";

no_shuffle();
run_tests();

is(psql(q{SELECT count(*) FROM t11.items}), 1,
   'only the document at the edges was stored');
is(psql(qq{SELECT count(*) FROM t11.items WHERE data = '$Edges'::jsonb}), 1,
   'the row equals the document as jsonb');

__DATA__

=== TEST 1: numbers beyond numeric's range: 400 at the number, no trip to PostgreSQL
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n{\"n\": 1e200000}",
 "POST /items\n[1e131072]",
 "POST /items\n[10e131071]",
 "POST /items\n{\"a\": 1e-16384}",
 "POST /items\n[1.0e-16383]",
 "POST /items\n0e-16384",
 "POST /items\n[0e1073741823]",
 "POST /items\n{\"x\": [1, -1e99999999999999999999]}"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[main::invalid($::Big, 1, 7, 6),
 main::invalid($::Big, 1, 2, 1),
 main::invalid($::Big, 1, 2, 1),
 main::invalid($::Scale, 1, 7, 6),
 main::invalid($::Scale, 1, 2, 1),
 main::invalid($::Scale, 1, 1, 0),
 main::invalid($::Exp, 1, 2, 1),
 main::invalid($::Exp, 1, 11, 10)]
--- error_log
saveitem: invalid JSON at line 1, column
--- no_error_log
PostgreSQL error
[error]



=== TEST 2: the edges numeric does hold are stored
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /items\n$::Edges"
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 3: a big number, then 10,000 levels: too deep, at the 2049th level
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /items\n[1e400," . ("[" x 10000) . ("]" x 10001)
--- error_code: 400
--- response_body eval
main::invalid("too deeply nested", 1, 2055, 2054)
--- no_error_log
PostgreSQL error
[error]



=== TEST 4: 200,000 levels, with or without a big number first: 400, not 500
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n[1e400," . ("[" x 200000) . ("]" x 200001),
 "POST /items\n" . ("[" x 200000) . ("]" x 200000),
 "POST /items\n" . ("{\"a\":" x 200000) . "1" . ("}" x 200000)]
--- error_code eval
[400, 400, 400]
--- response_body eval
[main::invalid("too deeply nested", 1, 2055, 2054),
 qr/^\{"error": "invalid_json", "message": "too deeply nested", "line": 1, "column": \d+, "position": \d+\}\n$/,
 qr/^\{"error": "invalid_json", "message": "too deeply nested", "line": 1, "column": \d+, "position": \d+\}\n$/]
--- no_error_log
PostgreSQL error
[error]



=== TEST 5: a syntax error after a big number: 400 with its position
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n{\"bad\": 1e400, }",
 "POST /items\n[12345678901234567890123,\n 1e400,\n tru]",
 "POST /items\n[1e400, \"\\u0000\"]",
 "POST /items\n[1e400] x",
 "POST /items\n[1e400,"]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body eval
[main::invalid("syntax error", 1, 16, 15),
 main::invalid("syntax error", 3, 2, 35),
 main::invalid("\\\"\\\\u0000\\\" cannot be stored in PostgreSQL", 1, 10, 9),
 main::invalid("unexpected data after the JSON value", 1, 9, 8),
 main::invalid("unexpected end of input", 1, 8, 7)]
--- no_error_log
PostgreSQL error
[error]
