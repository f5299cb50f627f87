# What the server says decides the answer: a read-only server is the wrong
# server (503, the connection retired), a serialization failure is retried
# once; a body that will be refused is not invited; a client's bytes are
# escaped in the log.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t6 CASCADE;
CREATE SCHEMA t6;
CREATE TABLE t6.items (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                       pid int NOT NULL DEFAULT pg_backend_pid());
-- sequences are not transactional: they remember what failed
CREATE SEQUENCE t6.read_only_pid;
CREATE SEQUENCE t6.tries;
CREATE FUNCTION t6.act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'read_only' THEN
        PERFORM setval('t6.read_only_pid', pg_backend_pid());
        RAISE EXCEPTION 'cannot execute INSERT in a read-only transaction'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    IF NEW.data ? 'conflict' THEN
        PERFORM nextval('t6.tries');
    END IF;
    IF NEW.data->>'conflict' = 'always'
       OR (NEW.data->>'conflict' = 'once'
           AND (SELECT last_value FROM t6.tries) = 1)
    THEN
        RAISE EXCEPTION 'could not serialize access due to concurrent update'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER act BEFORE INSERT ON t6.items
    FOR EACH ROW EXECUTE FUNCTION t6.act();
_SQL_

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB" pool=1;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

# a block of two requests checks the log it made for both
check_accum_error_log();
no_shuffle();
run_tests();

isnt(psql(q{SELECT pid FROM t6.items WHERE data ? 'after_read_only'}),
     psql(q{SELECT last_value FROM t6.read_only_pid}),
     'after a read-only answer, the next statement went on a new connection');
is(psql(q{SELECT count(*) FROM t6.items
          WHERE data ? 'read_only' OR data->>'conflict' = 'always'}), 0,
   'nothing answered "not stored" left a row');
is(psql(q{SELECT count(*) FROM t6.items WHERE data->>'conflict' = 'once'}), 1,
   'the document retried after a serialization failure was stored once');

__DATA__

=== TEST 1: a read-only server: 503 with Retry-After, the connection retired
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t6.items;
    }
--- request eval
["POST /items\n{\"read_only\": 1}", "POST /items\n{\"after_read_only\": 1}"]
--- error_code eval
[503, 200]
--- response_headers_like eval
["Retry-After: \\d+", "Retry-After: "]
--- response_body_like eval
['^\{"error": "database_unavailable", "message": "the database server is read-only", "sqlstate": "25006"\}$',
 '^\{"pk": \d+\}$']
--- error_log eval
[qr/\[warn\] .*saveitem: PostgreSQL \(.*\) is read-only, retiring the connection/,
 qr/\[warn\] .*saveitem: PostgreSQL error 25006: cannot execute INSERT in a read-only transaction/]
--- no_error_log
[error]



=== TEST 2: a serialization failure is retried once, and then stored
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t6.items;
    }
--- request
POST /items
{"conflict": "once"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 3: a serialization failure that persists: 503, not stored
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t6.items;
    }
--- request
POST /items
{"conflict": "always"}
--- error_code: 503
--- response_headers_like
Retry-After: \d+
--- response_body
{"error": "database_unavailable", "message": "the statement conflicted with another one, even when retried", "sqlstate": "40001"}
--- error_log
saveitem: PostgreSQL error 40001: could not serialize access due to concurrent update



=== TEST 4: a body that will be refused is not invited with 100 Continue
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t6.items;
    }
--- raw_request eval
"POST /items HTTP/1.1\r
Host: localhost\r
Content-Type: text/plain\r
Expect: 100-continue\r
Content-Length: 12\r
Connection: close\r
\r
{\"never\": 1}"
--- error_code: 415
--- raw_response_headers_unlike: 100 Continue
--- response_body
{"error": "unsupported_media_type", "message": "the content type must be application/json"}



=== TEST 5: nor is a body sent with the wrong method
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t6.items;
    }
--- raw_request eval
"PUT /items HTTP/1.1\r
Host: localhost\r
Content-Type: application/json\r
Expect: 100-continue\r
Content-Length: 12\r
Connection: close\r
\r
{\"never\": 2}"
--- error_code: 405
--- raw_response_headers_unlike: 100 Continue



=== TEST 6: a content type with control and non-ASCII bytes is escaped in the log
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t6.items;
    }
--- raw_request eval
"POST /items HTTP/1.1\r
Host: localhost\r
Content-Type: text/\x1b[31m\xffplain\\\r
Content-Length: 12\r
Connection: close\r
\r
{\"never\": 3}"
--- error_code: 415
--- error_log
saveitem: content type "text/\x1B[31m\xFFplain\x5C" is not JSON
