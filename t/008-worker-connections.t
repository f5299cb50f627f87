# A worker that has no connection left for PostgreSQL says so: it is not
# the database that is unreachable.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t8 CASCADE;
CREATE SCHEMA t8;
CREATE TABLE t8.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
_SQL_

# the listening socket and the client take both
worker_connections(2);
run_tests();

is(psql(q{SELECT count(*) FROM t8.items}), 0, 'nothing was stored');

__DATA__

=== TEST 1: out of worker_connections: 503, and the reason logged
--- http_config
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t8.items;
    }
--- request
POST /items
{"no": "slot"}
--- error_code: 503
--- response_headers_like
Retry-After: \d+
--- response_body
{"error": "database_unavailable", "message": "the server could not open a connection to the database"}
--- error_log
worker_connections are not enough
saveitem: could not connect to PostgreSQL
no free connection in the worker (worker_connections)
--- no_error_log
the database is not reachable
