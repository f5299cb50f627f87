# Every mistake a client can make gets a JSON error with the right status
# and a line in the error log; what PostgreSQL refuses is mapped by SQLSTATE;
# and none of it leaves a row behind.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t1 CASCADE;
CREATE SCHEMA t1;
CREATE TABLE t1.items (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                       CHECK (NOT data ? 'forbidden'));
CREATE UNIQUE INDEX ON t1.items ((data->>'unique'));
CREATE FUNCTION t1.guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'secret' THEN
        RAISE EXCEPTION 'internal detail %', NEW.data->>'secret';
    END IF;
    IF NEW.data ? 'skip' THEN
        RETURN NULL;
    END IF;
    IF NEW.data ? 'nullify' THEN
        NEW.data = NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER guard BEFORE INSERT ON t1.items
    FOR EACH ROW EXECUTE FUNCTION t1.guard();
CREATE TABLE t1.gone (id serial PRIMARY KEY, data jsonb);
_SQL_

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    location = /items {
        saveitem t1.items;
        add_header X-SQLSTATE "[$saveitem_sqlstate]" always;
    }
_EOC_

# a block with several requests checks its log after each of them: against
# all that its nginx logged so far, not just the lines since the last check
check_accum_error_log();
no_shuffle();
run_tests();

is(psql(q{SELECT count(*) FROM t1.items WHERE data ? 'bad'}), 0,
   'no refused document left a row');
is(psql(q{SELECT count(*) FROM t1.items WHERE data ? 'unique'}), 1,
   'the first of two conflicting documents was stored');

__DATA__

=== TEST 1: GET is not allowed
--- http_config eval: $::http_config
--- config eval: $::config
--- request
GET /items
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
--- response_body
{"error": "method_not_allowed", "message": "only POST is allowed"}
--- error_log
saveitem: method GET is not allowed
--- no_error_log
[error]



=== TEST 2: PUT with a body is not allowed, and its body is read away; each is logged
--- http_config eval: $::http_config
--- config eval: $::config
--- pipelined_requests eval
["PUT /items\n{\"bad\": 1}", "DELETE /items"]
--- error_code eval
[405, 405]
--- response_body eval
["{\"error\": \"method_not_allowed\", \"message\": \"only POST is allowed\"}\n",
 "{\"error\": \"method_not_allowed\", \"message\": \"only POST is allowed\"}\n"]
--- error_log
saveitem: method PUT is not allowed
saveitem: method DELETE is not allowed
--- no_error_log
[error]



=== TEST 3: HEAD gets the status and no body
--- http_config eval: $::http_config
--- config eval: $::config
--- request
HEAD /items
--- error_code: 405
--- response_headers
Allow: POST
--- response_body eval
""



=== TEST 4: a content type that is not JSON
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"bad": "type"}
--- more_headers
Content-Type: text/plain
--- error_code: 415
--- response_body
{"error": "unsupported_media_type", "message": "the content type must be application/json"}
--- error_log
saveitem: content type "text/plain" is not JSON
--- no_error_log
[error]



=== TEST 5: a form is not JSON either
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
bad=form
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 415
--- response_body_like: "unsupported_media_type"



=== TEST 5b: a media type with two slashes is not JSON
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"bad": "type"}
--- more_headers
Content-Type: /a/b+json
--- error_code: 415
--- response_body_like: "unsupported_media_type"



=== TEST 5c: the message quoting the input stays valid UTF-8
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /items\n\"\\\xc3\xa9\""
--- error_code: 400
--- response_body_like eval
qr/^\{"error": "invalid_json", "message": "invalid escape near '\\"\\\\\?'", "line": 1, "column": \d+, "position": \d+\}\n$/



=== TEST 6: truncated JSON: the position of the error
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"bad":
--- error_code: 400
--- response_body
{"error": "invalid_json", "message": "unexpected end of input", "line": 1, "column": 7, "position": 7}
--- error_log
saveitem: invalid JSON at line 1, column 7: unexpected end of input
--- no_error_log
[error]



=== TEST 7: a syntax error on the second line
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /items\n{\"bad\": 1,\n \"x\" 2}"
--- error_code: 400
--- response_body_like chomp
^\{"error": "invalid_json", "message": "[^"]+", "line": 2, "column": \d+, "position": \d+\}\n$



=== TEST 8: data after the document
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"bad": 1} {"bad": 2}
--- error_code: 400
--- response_body_like: "message": "unexpected data after the JSON value"



=== TEST 9: an empty body
--- http_config eval: $::http_config
--- config eval: $::config
--- raw_request eval
"POST /items HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- response_body
{"error": "invalid_json", "message": "empty body", "line": 1, "column": 1, "position": 0}
--- error_log
saveitem: invalid JSON at line 1, column 1: empty body



=== TEST 10: no body at all
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
--- error_code: 400
--- response_body_like: "message": "empty body"



=== TEST 11: only white space
--- http_config eval: $::http_config
--- config eval: $::config
--- raw_request eval
"POST /items HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\n \n "
--- error_code: 400
--- response_body_like: "error": "invalid_json"



=== TEST 12: invalid UTF-8
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /items\n{\"bad\": \"\xc3\x28\"}"
--- error_code: 400
--- response_body_like: "message": "invalid UTF-8"



=== TEST 13: \u0000 cannot be stored in jsonb
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"bad": "a\u0000b"}
--- error_code: 400
--- response_body_like: "message": "\\"\\\\u0000\\" cannot be stored in PostgreSQL"



=== TEST 14: a NUL byte cannot travel as a text parameter
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /items\n{\"bad\": \"a\x00b\"}"
--- error_code: 400
--- response_body
{"error": "invalid_json", "message": "NUL byte in the body", "line": 1, "column": 11, "position": 10}



=== TEST 15: a lone surrogate
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"bad": "\ud800"}
--- error_code: 400
--- response_body_like: "error": "invalid_json"



=== TEST 16: nesting deeper than the parser takes
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /items\n" . ("[" x 5000) . ("]" x 5000)
--- error_code: 400
--- response_body_like: "message": "too deeply nested"



=== TEST 17: a body over client_max_body_size is nginx's 413
--- http_config eval: $::http_config
--- config
    location = /items {
        client_max_body_size 100;
        saveitem t1.items;
    }
--- request eval
"POST /items\n{\"bad\": \"" . ("x" x 200) . "\"}"
--- error_code: 413
--- error_log
client intended to send too large body



=== TEST 18: a number jansson cannot hold does not switch the check off
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"bad": 1e400, }
--- error_code: 400
--- response_headers
X-SQLSTATE: []
--- response_body
{"error": "invalid_json", "message": "syntax error", "line": 1, "column": 16, "position": 15}
--- error_log
saveitem: invalid JSON at line 1, column 16: syntax error
--- no_error_log
PostgreSQL error
[error]



=== TEST 19: a unique key, stored once
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"unique": "u1"}
--- response_headers
X-SQLSTATE: []
--- response_body_like chomp
^\{"pk": \d+\}\n$



=== TEST 19b: the same key again is a unique violation: 409
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"unique": "u1", "bad": 1}
--- error_code: 409
--- response_headers
X-SQLSTATE: [23505]
--- response_body
{"error": "conflict", "message": "duplicate key value violates unique constraint \"items_expr_idx\"", "sqlstate": "23505"}
--- error_log
saveitem: PostgreSQL error 23505: duplicate key value violates unique constraint
--- no_error_log
[error]



=== TEST 20: other integrity violations are 422
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n{\"forbidden\": 1, \"bad\": 1}", "POST /items\n{\"nullify\": 1, \"bad\": 1}"]
--- error_code eval
[422, 422]
--- response_body_like eval
[qr/"error": "constraint_violation".*"sqlstate": "23514"/,
 qr/"error": "constraint_violation".*"sqlstate": "23502"/]
--- no_error_log
[error]



=== TEST 21: any other database error is 500, without the server's words
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"secret": "s3cr3t", "bad": 1}
--- error_code: 500
--- response_body
{"error": "database_error", "message": "the database could not store the item", "sqlstate": "P0001"}
--- error_log
saveitem: PostgreSQL error P0001: internal detail s3cr3t



=== TEST 22: a trigger that skips the row: not stored, and said so
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"skip": 1, "bad": 1}
--- error_code: 422
--- response_body
{"error": "not_stored", "message": "the database did not store the item"}
--- error_log
saveitem: INSERT returned PGRES_TUPLES_OK with 0 rows



=== TEST 23: a table dropped while nginx runs: 500 and the reason in the log
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t1.gone;
    }
--- init
# nginx checked the table at start; drop it once that nginx answers
SaveItem::Test::wait_nginx();
SaveItem::Test::psql('DROP TABLE t1.gone');
--- request eval
["POST /items\n{\"bad\": 1}", "POST /items\n{\"bad\": 2}"]
--- error_code eval
[500, 500]
--- response_body eval
["{\"error\": \"database_error\", \"message\": \"the database could not store the item\", \"sqlstate\": \"42P01\"}\n",
 "{\"error\": \"database_error\", \"message\": \"the database could not store the item\", \"sqlstate\": \"42P01\"}\n"]
--- error_log
saveitem: PostgreSQL error 42P01: relation "t1.gone" does not exist



=== TEST 24: only white space is an empty body, and said so
--- http_config eval: $::http_config
--- config eval: $::config
--- raw_request eval
"POST /items HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nConnection: close\r\n\r\n \n\t "
--- error_code: 400
--- response_body
{"error": "invalid_json", "message": "empty body", "line": 1, "column": 1, "position": 0}
--- error_log
saveitem: invalid JSON at line 1, column 1: empty body
