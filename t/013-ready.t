# saveitem_ready: 200 when the location's database can take a write now
# (an open connection, or one opened within connect_timeout), 503 with
# Retry-After and the reason otherwise; no statement per probe; it follows
# the database down and up within seconds.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;
use HTTP::Tiny;
use IO::Socket::INET;
use Time::HiRes ();

# a port that accepts TCP connections and never says a word
our $Blackhole = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                       LocalPort => 0, ReuseAddr => 1)
    or die "cannot listen: $!";
$ENV{TEST_NGINX_BLACKHOLE_PORT} = $Blackhole->sockport;

our $PgStopped;

# the status of GET /ready now
sub ready_status {
    my $res = HTTP::Tiny->new(timeout => 10)
        ->get('http://127.0.0.1:' . server_port() . '/ready');
    return $res->{status};
}

# seconds until GET /ready answers $status, polled every 0.1 s; undef if
# not within $secs
sub time_to {
    my ($status, $secs) = @_;
    my $start = Time::HiRes::time();

    while (Time::HiRes::time() - $start < $secs) {
        return Time::HiRes::time() - $start if ready_status() == $status;
        Time::HiRes::sleep(0.1);
    }

    return undef;
}

sub pg {
    my ($cmd) = @_;
    local $ENV{SAVEITEM_PG_KEEP} = 1;
    system("$ENV{SAVEITEM_PG_SH} $cmd >&2") == 0
        or die "util/pg.sh $cmd failed";
    $PgStopped = ($cmd eq 'stop');
}

# the cluster is up again for the files that follow, whatever happened
END {
    pg('start') if $PgStopped;
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a database that takes writes: 200, the connection opened for it
--- http_config
    saveitem_database "$TEST_NGINX_DB application_name=ready13";
--- config
    location = /ready {
        saveitem_ready;
    }
--- request eval
["GET /ready", "GET /ready", "HEAD /ready"]
--- error_code eval
[200, 200, 200]
--- response_body eval
["{\"ready\": true}\n", "{\"ready\": true}\n", ""]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json",
 "Content-Type: application/json"]
--- no_error_log
[error]



=== TEST 2: ... probed again and again: one connection, no statement ever, as PostgreSQL sees it
--- http_config
    saveitem_database "$TEST_NGINX_DB application_name=ready13b";
--- config
    location = /ready {
        saveitem_ready;
    }
--- init
SaveItem::Test::wait_nginx();
main::ready_status() for 1 .. 20;
Test::More::is(SaveItem::Test::psql(q{SELECT count(*) || ':' || max(query)
                                             || ':'
                                      FROM pg_stat_activity
                                      WHERE application_name = 'ready13b'}),
               '1::', 'one backend for 20 probes, and it never ran a query');
--- request
GET /ready
--- response_body
{"ready": true}
--- no_error_log
[error]



=== TEST 3: the database is down: 503, Retry-After, the reason
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_DEAD_PORT dbname=x user=u";
--- config
    location = /ready {
        saveitem_ready;
    }
--- request eval
["GET /ready", "GET /ready"]
--- error_code eval
[503, 503]
--- response_headers_like eval
["Retry-After: \\d+", "Retry-After: \\d+"]
--- response_body eval
["{\"ready\": false, \"reason\": \"the database is not reachable\"}\n",
 "{\"ready\": false, \"reason\": \"the database is not reachable\"}\n"]
--- error_log
saveitem: could not connect to PostgreSQL
saveitem: not ready: the database is not reachable



=== TEST 4: a server that never answers: 503 once connect_timeout has passed
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_BLACKHOLE_PORT connect_timeout=2 dbname=x user=u";
--- config
    location = /ready {
        saveitem_ready;
    }
--- request
GET /ready
--- error_code: 503
--- response_body
{"ready": false, "reason": "the database is not reachable"}
--- error_log
: timed out
--- timeout: 5



=== TEST 5: a client that leaves while the probe waits: nothing breaks
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_BLACKHOLE_PORT connect_timeout=2 dbname=x user=u";
--- config
    location = /ready {
        saveitem_ready;
    }
--- request
GET /ready
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 2.5
--- error_log
client prematurely closed connection
--- no_error_log
[alert]
[crit]



=== TEST 6: only GET and HEAD
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /ready {
        saveitem_ready;
    }
--- request
POST /ready
{}
--- error_code: 405



=== TEST 7: the database in effect at the location: one is needed
--- config
    location = /ready {
        saveitem_ready;
    }
--- must_die
--- error_log eval
qr/"saveitem_ready" in .*nginx\.conf:\d+ needs a "saveitem_database"/



=== TEST 8: it follows the database down and up within seconds
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /ready {
        saveitem_ready;
    }
--- init
SaveItem::Test::wait_nginx();
Test::More::is(main::ready_status(), 200, 'ready while the database is up');
main::pg('stop');
my $down = main::time_to(503, 5);
Test::More::ok(defined $down, 'not ready within 5 s of the database '
               . 'stopping (' . ($down // 'never') . ' s)');
main::pg('start');
my $up = main::time_to(200, 5);
Test::More::ok(defined $up, 'ready again within 5 s of its start ('
               . ($up // 'never') . ' s)');
--- request
GET /ready
--- response_body
{"ready": true}



=== TEST 9: a method other than GET and HEAD: a JSON 405 with Allow
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /ready {
        saveitem_ready;
    }
--- request
DELETE /ready
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json
--- response_body
{"error": "method_not_allowed", "message": "only GET and HEAD are allowed"}
--- error_log
saveitem: method DELETE is not allowed
