# How connections live: prepare=off (no session state, for poolers in
# transaction mode), lifetime= (an older connection is closed when idle).

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;
use IO::Socket::INET;

# a first host that accepts TCP connections and never says a word
our $Hung = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
    or die "cannot listen: $!";
$ENV{TEST_NGINX_HUNG_PORT} = $Hung->sockport;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t14 CASCADE;
CREATE SCHEMA t14;
CREATE TABLE t14.items (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                        pid int NOT NULL DEFAULT pg_backend_pid(),
                        prepared int, timeout text);
CREATE FUNCTION t14.act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.prepared := (SELECT count(*) FROM pg_prepared_statements);
    NEW.timeout := current_setting('statement_timeout');
    IF NEW.data ? 'sleep' THEN
        PERFORM pg_sleep((NEW.data->>'sleep')::float);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER act BEFORE INSERT ON t14.items
    FOR EACH ROW EXECUTE FUNCTION t14.act();
_SQL_

no_shuffle();
run_tests();

is(psql(q{SELECT count(*) FROM t14.items WHERE data ? 'unprepared'
          AND prepared = 0 AND timeout = '900ms'}), 2,
   'prepare=off: no named statement on the connection, the statement '
   . 'timeout set for the transaction');
is(psql(q{SELECT count(*) FROM t14.items WHERE data ? 'slow'}), 0,
   'prepare=off: the statement past the query timeout was not stored');
is(psql(q{SELECT count(DISTINCT pid) FROM t14.items WHERE data ? 'life'}), 2,
   'a connection past its lifetime was replaced when idle');

__DATA__

=== TEST 1: prepare=off: unnamed statements, no session state
--- http_config
    saveitem_database "$TEST_NGINX_DB" prepare=off pool=1;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t14.items;
        saveitem_query_timeout 1s;
    }
--- request eval
["POST /items\n{\"unprepared\": 1}", "POST /items\n{\"unprepared\": 2}"]
--- response_body_like eval
['^\{"pk": \d+\}$', '^\{"pk": \d+\}$']
--- no_error_log
[error]
prepared statement



=== TEST 2: prepare=off still enforces saveitem_query_timeout
--- http_config
    saveitem_database "$TEST_NGINX_DB" prepare=off;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t14.items;
        saveitem_query_timeout 1s;
    }
--- request
POST /items
{"slow": 1, "sleep": 1.5}
--- error_code: 504
--- response_body
{"error": "query_timeout", "message": "the statement took longer than the query timeout and was cancelled", "sqlstate": "57014"}
--- timeout: 3



=== TEST 3: a connection older than lifetime= is closed when idle and replaced
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1 lifetime=1s;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t14.items;
    }
--- init
SaveItem::Test::wait_nginx();
my ($status) = SaveItem::Test::post('/items', '{"life": 1}');
die "the first request got $status" unless $status eq '200';
select(undef, undef, undef, 1.5);
--- request
POST /items
{"life": 2}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- error_log
saveitem: closing an idle PostgreSQL connection older than 1000 ms (saveitem_database lifetime=)



=== TEST 4: prepare= takes on or off
--- http_config
    saveitem_database "$TEST_NGINX_DB" prepare=maybe;
--- config
    location = /items {
        saveitem t14.items;
    }
--- must_die
--- error_log
invalid parameter "prepare=maybe"



=== TEST 5: lifetime= takes a time
--- http_config
    saveitem_database "$TEST_NGINX_DB" lifetime=soon;
--- config
    location = /items {
        saveitem t14.items;
    }
--- must_die
--- error_log
invalid parameter "lifetime=soon"



=== TEST 6: a service without host= is refused: its host would block a worker
--- http_config
    saveitem_database "service=ingest dbname=saveitem";
--- config
    location = /items {
        saveitem t14.items;
    }
--- must_die
--- error_log
"saveitem_database" uses the service "ingest" without host= or hostaddr=: the host it names would be resolved blockingly in every worker



=== TEST 7: a first host that hangs: after connect_timeout, the next one
--- http_config
    saveitem_database "host=127.0.0.1,$TEST_NGINX_PG_SOCKET port=$TEST_NGINX_HUNG_PORT,$TEST_NGINX_PG_PORT dbname=saveitem user=postgres connect_timeout=2";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t14.items;
    }
--- request
POST /items
{"hung": "first"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- error_log eval
qr/\[warn\] .*saveitem: PostgreSQL at 127\.0\.0\.1 port \d+ did not answer within 2000 ms, trying the next host/
--- timeout: 6

