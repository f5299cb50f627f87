# Bulk bodies: a JSON array or NDJSON of up to bulk= documents, stored in
# one transaction, answered {"pks": [...]} in order; a bad document is
# named by its index and nothing is stored.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t17 CASCADE;
CREATE SCHEMA t17;
CREATE TABLE t17.items (id bigserial PRIMARY KEY, data jsonb NOT NULL
                        CHECK (NOT data ? 'bad'),
                        k text UNIQUE GENERATED ALWAYS AS (data->>'k') STORED);
_SQL_

our $Big = "/tmp/saveitem-t17-big-$$";

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    client_body_buffer_size 16m;
    location = /bulk {
        saveitem t17.items bulk=100000;
    }
    location = /small {
        saveitem t17.items bulk=3;
    }
    location = /single {
        saveitem t17.items;
    }
_EOC_

# 70,000 documents in one body: more than PostgreSQL's 65,535 parameters
sub big {
    my $body = '[' . join(',', map { qq({"big": $_}) } 0 .. 69_999) . ']';

    # under valgrind --- init runs before nginx listens
    SaveItem::Test::wait_nginx();

    my ($status, $answer) = SaveItem::Test::post('/bulk', $body);

    open my $fh, '>', $Big or die "$Big: $!";
    print $fh "$status\n$answer\n";
    close $fh;
}

no_shuffle();
run_tests();

open my $fh, '<', $Big or die "no answer to the big body in $Big";
my ($status, $answer) = map { chomp; $_ } <$fh>;
close $fh;
unlink $Big;

is($status, 200, '70,000 documents in one body: 200');
my @pks = $answer =~ /(\d+)/g;
is(scalar @pks, 70_000, '... 70,000 keys');
is(psql(q{SELECT count(*) FROM t17.items WHERE data ? 'big'}), 70_000,
   '... 70,000 rows');
is(psql("SELECT count(*) FROM t17.items WHERE data ? 'big' AND id = ANY('{"
        . join(',', @pks) . "}'::bigint[]) AND (data->>'big')::int = "
        . "array_position('{" . join(',', @pks) . "}'::bigint[], id) - 1"),
   70_000, '... each key names the row of its document, in order');
is(psql(q{SELECT count(*) FROM t17.items WHERE data ? 'refused'}), 0,
   'nothing of a refused body was stored');
is(psql(q{SELECT string_agg(data->>'nd', ',' ORDER BY id)
          FROM t17.items WHERE data ? 'nd'}), '1,2,3',
   'NDJSON documents stored in order');

__DATA__

=== TEST 1: an array of documents: their keys, in order
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /bulk
[{"a": 1}, 2, "three", [4], {"k": "x1"}]
--- response_body_like chomp
^\{"pks": \[(\d+), (\d+), (\d+), (\d+), (\d+)\]\}\n$
--- no_error_log
[error]



=== TEST 2: NDJSON: one document per line, blank lines skipped
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Content-Type: application/x-ndjson
--- request eval
"POST /bulk\n{\"nd\": 1}\r\n\n{\"nd\": 2}\n  \n{\"nd\": 3}\n"
--- response_body_like chomp
^\{"pks": \[\d+, \d+, \d+\]\}\n$



=== TEST 3: more documents than bulk=: 413, as JSON
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /small
[{"refused": 1}, {"refused": 2}, {"refused": 3}, {"refused": 4}]
--- error_code: 413
--- response_body
{"error": "too_many_documents", "message": "the body holds more documents than this location takes at once"}



=== TEST 4: a document that is not JSON: 400 with its index and position
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /bulk
[{"refused": 1}, {"refused": 2,}, {"refused": 3}]
--- error_code: 400
--- response_body_like chomp
^\{"error": "invalid_json", "message": "[^"]+", "index": 1, "line": 1, "column": \d+, "position": \d+\}\n$



=== TEST 5: a body that is not an array of documents: 400 with a position
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /bulk
[{"refused": 1}, {"refused": 2}
--- error_code: 400
--- response_body_like chomp
^\{"error": "invalid_json", "message": "a bulk body must be a JSON array of documents", "line": 1, "column": 32, "position": 31\}\n$



=== TEST 6: a document a constraint refuses: 400 with its index, nothing stored
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /bulk\n[" . join(',', map { $_ == 37 ? '{"refused": 1, "bad": 1}' : qq({"refused": $_}) } 0 .. 99) . "]"
--- error_code: 422
--- response_body_like chomp
^\{"error": "constraint_violation", "message": ".+", "sqlstate": "23514", "index": 37\}\n$
--- error_log
probing for the one at fault



=== TEST 7: a key stored before: 409 with the index of the document
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /bulk\n[{\"k\": \"dup\"}]", "POST /bulk\n[{\"refused\": 1}, {\"refused\": 2}, {\"refused\": 3, \"k\": \"dup\"}]"]
--- error_code eval
[200, 409]
--- response_body_like eval
['^\{"pks": \[\d+\]\}$', '^\{"error": "conflict", "message": ".+", "sqlstate": "23505", "index": 2\}$']



=== TEST 8: an empty array stores nothing
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /bulk
[ ]
--- response_body
{"pks": []}



=== TEST 9: without bulk=, an array is one document
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /single
[{"one": 1}, {"one": 2}]
--- response_body_like chomp
^\{"pk": \d+\}\n$



=== TEST 10: NDJSON where bulk= is not set: 415
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Content-Type: application/x-ndjson
--- request
POST /single
{"refused": 1}
--- error_code: 415



=== TEST 11: 70,000 documents in one body, and single documents beside it
--- http_config eval: $::http_config
--- config eval: $::config
--- init
main::big();
--- request
POST /single
{"beside": "big"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- timeout: 20



=== TEST 12: a bulk body is one statement of its documents in the metrics
--- http_config eval: $::http_config
--- config
    location = /bulk {
        saveitem t17.items bulk=10;
    }
    location = /metrics {
        saveitem_status;
    }
--- request eval
["POST /bulk\n[{\"m\": 1}, {\"m\": 2}, {\"m\": 3}, {\"m\": 4}, {\"m\": 5}]",
 "GET /metrics"]
--- response_body_like eval
[qr/^\{"pks": \[\d+, \d+, \d+, \d+, \d+\]\}$/,
 qr/^saveitem_rows_total\{database="[^"]+"\} 5\n(?:.*\n)*saveitem_statements_total\{database="[^"]+"\} 1\n(?:.*\n)*saveitem_statement_rows_bucket\{database="[^"]+",le="4"\} 0\nsaveitem_statement_rows_bucket\{database="[^"]+",le="8"\} 1\n(?:.*\n)*saveitem_statement_rows_sum\{database="[^"]+"\} 5\n/m]
--- no_error_log
[error]



=== TEST 13: an array broken inside or before a document: 400 with that document's index
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /bulk\n[{\"refused\": 1},{\"refused\": 2},{\"refused\":]",
 "POST /bulk\n[{\"refused\": 1},]",
 "POST /bulk\n[{\"refused\": 1}, {\"refused\": 2}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
["{\"error\": \"invalid_json\", \"message\": \"unexpected token near ']'\", \"index\": 2, \"line\": 1, \"column\": 12, \"position\": 12}\n",
 "{\"error\": \"invalid_json\", \"message\": \"a document is missing\", \"index\": 1, \"line\": 1, \"column\": 1, \"position\": 0}\n",
 "{\"error\": \"invalid_json\", \"message\": \"a bulk body must be a JSON array of documents\", \"line\": 1, \"column\": 32, \"position\": 31}\n"]



=== TEST 14: a body of one document that PostgreSQL refuses: its index, 0
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /bulk
[{"refused": 1, "bad": 1}]
--- error_code: 422
--- response_body_like chomp
^\{"error": "constraint_violation", "message": ".+", "sqlstate": "23514", "index": 0\}\n$



=== TEST 15: an Idempotency-Key with a bulk body where no key column is named: 400, not stored
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: bulk-1
--- request
POST /bulk
[{"refused": 1}, {"refused": 2}]
--- error_code: 400
--- response_body
{"error": "invalid_idempotency_key", "message": "an Idempotency-Key is not taken with a bulk body"}
--- error_log
saveitem: an Idempotency-Key with a bulk body
