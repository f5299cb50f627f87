# The database side: down, slow, frozen, restarted, terminated, busy; a
# client that leaves.  Each answer says what happened to the row.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use SaveItem::Test;

# a port that accepts TCP connections and never says a word
our $Blackhole = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                       LocalPort => 0, ReuseAddr => 1)
    or die "cannot listen: $!";
$ENV{TEST_NGINX_BLACKHOLE_PORT} = $Blackhole->sockport;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t2 CASCADE;
CREATE SCHEMA t2;
CREATE TABLE t2.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
CREATE FUNCTION t2.act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'sleep' THEN
        PERFORM pg_sleep((NEW.data->>'sleep')::float);
    END IF;
    IF NEW.data ? 'suicide' THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    IF NEW.data ? 'kill' THEN
        PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE application_name = NEW.data->>'kill';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER act BEFORE INSERT ON t2.items
    FOR EACH ROW EXECUTE FUNCTION t2.act();
_SQL_

sub frozen_backend {
    my ($signal) = @_;

    my $pids = psql(q{SELECT string_agg(pid::text, ' ') FROM pg_stat_activity
                      WHERE application_name = 'frozen'});
    die "no backend to $signal" if $pids eq '';
    system("kill -$signal $pids") == 0 or die "kill -$signal $pids failed";
}

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $QueueOut = "/tmp/saveitem-t-queue-$$";
our $FullOut = "/tmp/saveitem-t-full-$$";

# a block with several requests checks its log after each of them: against
# all that its nginx logged so far, not just the lines since the last check
check_accum_error_log();
no_shuffle();
run_tests();

my ($waited) = burst_results($QueueOut);
is($waited->[1], 503, 'a request that waited too long got 503');
like($waited->[2], qr/^\{"error": "queue_timeout", "message": "[^"]+"\}$/,
     '... saying so');
like($waited->[3], qr/^\d+$/, '... with Retry-After');

my ($full) = burst_results($FullOut);
is($full->[1], 503, 'a request beyond pool and queue got 503 at once');
like($full->[2], qr/^\{"error": "queue_full", "message": "[^"]+"\}$/,
     '... saying so');
like($full->[3], qr/^\d+$/, '... with Retry-After');

is(psql(q{SELECT count(*) FROM t2.items WHERE data ? 'bad'}), 0,
   'no request that got an error "not stored" left a row');
is(psql(q{SELECT count(*) FROM t2.items WHERE data ? 'left'}), 1,
   'the statement of a client that left completed');
is(psql(q{SELECT count(*) FROM t2.items WHERE data ? 'queued'}), 1,
   'of the burst, only what had a connection was stored');

__DATA__

=== TEST 1: the database is down: 503 with Retry-After, and the reason logged
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_DEAD_PORT dbname=x user=u password=sekret";
--- config
    location = /items {
        saveitem t2.items;
    }
--- request
POST /items
{"bad": 1}
--- error_code: 503
--- response_headers_like
Retry-After: \d+
--- response_body
{"error": "database_unavailable", "message": "the database is not reachable"}
--- error_log eval
qr/\[error\] .*saveitem: could not connect to PostgreSQL \(user=u dbname=x hostaddr=127\.0\.0\.1 port=\d+\): .*Connection refused/
--- no_error_log
sekret



=== TEST 2: while it stays down, requests fail fast: one connect for both
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_DEAD_PORT dbname=x user=u";
--- config
    location = /items {
        saveitem t2.items;
    }
--- pipelined_requests eval
["POST /items\n{\"bad\": 2}", "POST /items\n{\"bad\": 3}"]
--- error_code eval
[503, 503]
--- response_body eval
["{\"error\": \"database_unavailable\", \"message\": \"the database is not reachable\"}\n",
 "{\"error\": \"database_unavailable\", \"message\": \"the database is not reachable\"}\n"]
--- grep_error_log eval: qr/could not connect to PostgreSQL \([^)]*\):/
--- grep_error_log_out
could not connect to PostgreSQL (user=u dbname=x hostaddr=127.0.0.1 port=$TEST_NGINX_DEAD_PORT):



=== TEST 3: a server that never answers: connect_timeout bounds the wait
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_BLACKHOLE_PORT connect_timeout=2 dbname=x user=u";
--- config
    location = /items {
        saveitem t2.items;
    }
--- request
POST /items
{"bad": 4}
--- error_code: 503
--- response_body_like: "error": "database_unavailable"
--- error_log
could not connect to PostgreSQL (user=u dbname=x hostaddr=127.0.0.1
: timed out
--- timeout: 5



=== TEST 4: TCP with sslmode=prefer to a server without SSL
--- http_config
    saveitem_database "$TEST_NGINX_DB_TCP sslmode=prefer application_name=tcp";
--- config
    location = /items {
        saveitem t2.items;
    }
--- request
POST /items
{"tcp": 1}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]
--- timeout: 2



=== TEST 5: a statement slower than saveitem_query_timeout: 504, not stored
--- http_config eval: $::http_config
--- config
    saveitem_query_timeout 1s;
    location = /items {
        saveitem t2.items;
        add_header X-SQLSTATE "[$saveitem_sqlstate]" always;
    }
--- request
POST /items
{"bad": 5, "sleep": 3}
--- error_code: 504
--- response_headers
X-SQLSTATE: [57014]
--- response_body
{"error": "query_timeout", "message": "the statement took longer than the query timeout and was cancelled", "sqlstate": "57014"}
--- error_log
saveitem: PostgreSQL error 57014: canceling statement due to statement timeout
--- timeout: 4



=== TEST 6: the connection is reused after a timeout
--- http_config eval: $::http_config
--- config
    saveitem_query_timeout 1s;
    location = /items {
        saveitem t2.items;
    }
--- request eval
["POST /items\n{\"bad\": 6, \"sleep\": 2}", "POST /items\n{\"fast\": 1}"]
--- error_code eval
[504, 200]
--- timeout: 4



=== TEST 7: the backend is terminated during the statement: 503, not stored
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t2.items;
        add_header X-SQLSTATE "[$saveitem_sqlstate]" always;
    }
--- request eval
["POST /items\n{\"bad\": 7, \"suicide\": 1}", "POST /items\n{\"after\": \"suicide\"}"]
--- error_code eval
[503, 200]
--- response_headers eval
["X-SQLSTATE: [57P01]", "X-SQLSTATE: []"]
--- response_body_like eval
[qr/^\{"error": "database_unavailable", "message": "the database is not available", "sqlstate": "57P01"\}\n$/,
 qr/^\{"pk": \d+\}\n$/]



=== TEST 8: an idle connection closed by the server is replaced
--- http_config
    saveitem_database "$TEST_NGINX_DB application_name=victim";
--- config
    location = /items {
        saveitem t2.items;
    }
    location = /killer {
        saveitem t2.items;
        saveitem_database "$TEST_NGINX_DB application_name=killer";
    }
--- request eval
["POST /items\n{\"victim\": 1}", "POST /killer\n{\"kill\": \"victim\"}",
 "POST /items\n{\"victim\": 2}"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/^\{"pk": \d+\}\n$/, qr/^\{"pk": \d+\}\n$/, qr/^\{"pk": \d+\}\n$/]
--- no_error_log
[error]



=== TEST 9: PostgreSQL restarted between requests: the pool recovers
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t2.items;
    }
--- init
SaveItem::Test::store_ok('/items', '{"restart": "before"}',
                         'a first request leaves a connection in the pool');
SaveItem::Test::pg_restart();
--- request
POST /items
{"restart": "after"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- error_log
saveitem: PostgreSQL closed an idle connection



=== TEST 10: a frozen database: the module's own timer answers 504, outcome unknown; after it thaws, a new connection
--- http_config
    saveitem_database "$TEST_NGINX_DB application_name=frozen";
--- config
    saveitem_query_timeout 1s;
    location = /items {
        saveitem t2.items;
    }
--- init
SaveItem::Test::store_ok('/items', '{"frozen": "before"}',
                         'a first request leaves a connection in the pool');
main::frozen_backend('STOP');
--- request eval
["POST /items\n{\"frozen\": \"during\"}", "POST /items\n{\"frozen\": \"after\"}"]
--- after_response eval
[sub { main::frozen_backend('CONT') }]
--- error_code eval
[504, 200]
--- response_body_like eval
[qr/^\{"error": "query_timeout", "message": "no answer from the database in time", "outcome": "unknown"\}\n\z/,
 qr/^\{"pk": \d+\}\n\z/]
--- error_log
saveitem: no answer from PostgreSQL within 1000 ms (saveitem_query_timeout), closing the connection
--- timeout: 4



=== TEST 11: a client that leaves while its statement runs
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t2.items;
    }
--- request
POST /items
{"left": 1, "sleep": 1}
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 1.5
--- error_log
client prematurely closed connection
saveitem: request ends before PostgreSQL answered, the statement completes without it
saveitem: client closed the request before the answer: stored, key



=== TEST 12: a burst beyond pool and queue: 503 for the excess
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1 queue=0;
--- config
    location = /burst {
        mirror /items;
        mirror /items;
        mirror /items;
        saveitem t2.items;
    }
    location = /items {
        saveitem t2.items;
    }
--- request
POST /burst
{"queued": 1, "sleep": 0.5}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- wait: 0.5
--- grep_error_log eval: qr/pool and queue are full/
--- grep_error_log_out
pool and queue are full
pool and queue are full
pool and queue are full



=== TEST 13: waiting longer than queue_timeout: 503
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1 queue=10 queue_timeout=300ms;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t2.items;
    }
--- init
SaveItem::Test::burst('/items', ['{"bad": 16, "waits": 1}'], $main::QueueOut, 0.5);
--- request
POST /items
{"sleep": 1.5, "timeout": "queue"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- error_log
saveitem: no PostgreSQL connection became free within 300 ms (saveitem_database queue_timeout)
--- timeout: 3



=== TEST 14: a client beyond pool and queue gets 503 queue_full at once
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1 queue=0;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t2.items;
    }
--- init
SaveItem::Test::burst('/items', ['{"bad": 17, "full": 1}'], $main::FullOut, 0.5);
--- request
POST /items
{"sleep": 1.2, "busy": "full"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- error_log
saveitem: pool and queue are full: 1 connections, 0 requests waiting (saveitem_database pool= queue=)
--- timeout: 3
