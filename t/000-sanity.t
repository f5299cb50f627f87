# The contract's happy path: POST JSON, get {"pk": N}, and row N holds the
# document.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

our $PkLog = "/tmp/saveitem-t-sanity-$$.log";

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t0 CASCADE;
CREATE SCHEMA t0;
CREATE TABLE t0.items (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                       created_at timestamptz DEFAULT now());
CREATE TABLE t0.uuids (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                       data jsonb NOT NULL);
CREATE TABLE t0."Mixed Case" (key int GENERATED ALWAYS AS IDENTITY
                              PRIMARY KEY, doc json NOT NULL);
CREATE TABLE t0.texts (id text PRIMARY KEY DEFAULT 'k"' || md5(random()::text),
                       data jsonb NOT NULL);
_SQL_

our $http_config = <<"_EOC_";
    saveitem_database "\$TEST_NGINX_DB";
    saveitem_batch \$TEST_NGINX_SAVEITEM_BATCH;
@{[ pk_log_config($PkLog) ]}
_EOC_

repeat_each(2);
no_shuffle();
run_tests();

check_pk_log($PkLog, {
    '/items' => ['t0.items', 'id', 'data'],
    '/uuids' => ['t0.uuids', 'id', 'data'],
    '/texts' => ['t0.texts', 'id', 'data'],
    '/mixed' => ['t0."Mixed Case"', 'key', 'doc'],
}, 30);

is(psql(q{SELECT count(*) FROM t0.items WHERE data ? 'sanity'}), 28,
   'every acknowledged request stored exactly one row');

__DATA__

=== TEST 1: a POST stores the document and answers its key
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t0.items;
    }
--- request
POST /items
{"sanity": 1, "hello": "world"}
--- more_headers
Content-Type: application/json
--- response_headers
Content-Type: application/json
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]
[warn]



=== TEST 2: no Content-Type is taken as JSON
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t0.items;
    }
--- request
POST /items
{"sanity": 2}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 3: JSON media types with parameters
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t0.items;
    }
--- request
POST /items
{"sanity": 3}
--- more_headers
Content-Type: Application/JSON ; charset=utf-8
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 3b: +json media types
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t0.items;
    }
--- request
POST /items
{"sanity": 4}
--- more_headers
Content-Type: application/vnd.api+json
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 4: any JSON value jsonb takes: scalars, huge numbers, unicode
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t0.items;
    }
--- request eval
["POST /items\n{\"sanity\": 6, \"n\": 123456789012345678901234567890}",
 "POST /items\n{\"sanity\": 7, \"x\": 1e400, \"y\": -1E-400}",
 "POST /items\n{\"sanity\": 8, \"s\": \"\\u00e9\\ud83d\\ude00 \xc3\xa9\"}",
 "POST /items\n{\"sanity\": 9, \"nested\": [[[{\"a\": null}]]], \"b\": true}"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
[qr/^\{"pk": \d+\}\n$/, qr/^\{"pk": \d+\}\n$/, qr/^\{"pk": \d+\}\n$/,
 qr/^\{"pk": \d+\}\n$/]
--- no_error_log
[error]



=== TEST 5: a body larger than client_body_buffer_size goes through a file
--- http_config eval: $::http_config
--- config
    client_body_buffer_size 1k;
    location = /items {
        saveitem t0.items;
    }
--- request eval
"POST /items\n{\"sanity\": 10, \"pad\": \"" . ("x" x 20000) . "\"}"
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]



=== TEST 6: a chunked body
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t0.items;
    }
--- more_headers
Transfer-Encoding: chunked
--- request eval
"POST /items\n" . "7\r\n{\"sanit\r\n" . "f\r\ny\": 11, \"c\": 1}\r\n" . "0\r\n\r\n"
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 7: a uuid key is a JSON string
--- http_config eval: $::http_config
--- config
    location = /uuids {
        saveitem t0.uuids;
    }
--- request
POST /uuids
{"sanity": "uuid"}
--- response_body_like chomp
^\{"pk": "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"\}\n$
--- no_error_log
[error]



=== TEST 8: a text key is escaped as a JSON string
--- http_config eval: $::http_config
--- config
    location = /texts {
        saveitem t0.texts;
    }
--- request
POST /texts
{"sanity": "text"}
--- response_body_like chomp
^\{"pk": "k\\"[0-9a-f]{32}"\}\n$
--- no_error_log
[error]



=== TEST 9: quoted identifiers, a json column, another key column
--- http_config eval: $::http_config
--- config
    location = /mixed {
        saveitem 't0."Mixed Case"' column=doc returning=key;
    }
--- request
POST /mixed
  {"sanity": "mixed",   "spaces": "kept in json"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 10: keep-alive: several requests on one connection
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t0.items;
    }
--- pipelined_requests eval
["POST /items\n{\"sanity\": 12}", "POST /items\n{\"sanity\": 13}",
 "POST /items\n{\"sanity\": 14}"]
--- response_body_like eval
[qr/^\{"pk": \d+\}\n$/, qr/^\{"pk": \d+\}\n$/, qr/^\{"pk": \d+\}\n$/]
--- no_error_log
[error]



=== TEST 11: $saveitem_pk for logs and headers
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t0.items;
        add_header X-PK $saveitem_pk always;
        add_header X-SQLSTATE "[$saveitem_sqlstate]" always;
    }
--- request
POST /items
{"sanity": 15}
--- response_headers_like
X-PK: \d+
X-SQLSTATE: \[\]
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]
