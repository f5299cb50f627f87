# Time: no request is answered later than queue_timeout + the query timeout
# after the module took it, whatever happens to its statement; the start-up
# check gives up on a locked table instead of holding the master; a query
# timeout of 0 is refused.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use POSIX ();
use Time::HiRes ();
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t5 CASCADE;
CREATE SCHEMA t5;
CREATE TABLE t5.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
CREATE TABLE t5.locked (id bigserial PRIMARY KEY, data jsonb NOT NULL);
CREATE FUNCTION t5.act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'sleep' THEN
        PERFORM pg_sleep((NEW.data->>'sleep')::float);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER act BEFORE INSERT ON t5.items
    FOR EACH ROW EXECUTE FUNCTION t5.act();
_SQL_

# holds a table in ACCESS EXCLUSIVE mode for $seconds, from a process of its
# own; returns once the lock is taken

sub hold_lock {
    my ($table, $seconds) = @_;

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        Test::More->builder->no_ending(1);
        psql("BEGIN; LOCK TABLE $table IN ACCESS EXCLUSIVE MODE;"
             . " SELECT pg_sleep($seconds); COMMIT");
        POSIX::_exit(0);
    }

    for (1 .. 50) {
        last if psql(qq{SELECT count(*) FROM pg_locks
                        WHERE relation = '$table'::regclass
                        AND mode = 'AccessExclusiveLock' AND granted}) > 0;
        Time::HiRes::sleep(0.1);
    }

    return $pid;
}

# statements of 1 to $max rows prepared on the pool's one connection, so
# that a lock later holds the INSERTs themselves, not their PREPARE: while
# a slow document holds the connection, $n documents wait and then go as
# one statement of $n rows

sub warm_up {
    my ($uri, $max) = @_;

    my ($slow, $wait) = ("/tmp/saveitem-t5-slow-$$", "/tmp/saveitem-t5-wait-$$");

    for my $n (1 .. $max) {
        SaveItem::Test::burst($uri, [qq({"sleep": 0.3, "warm": "$n"})], $slow);
        SaveItem::Test::burst($uri, [map { qq({"warm": "$n-$_"}) } 1 .. $n],
                              $wait, 0.1);
        burst_results($slow);
        burst_results($wait);
    }
}

# the start-up check of the first block meets this lock
our $Holder = hold_lock('t5.locked', 6);

our @Bursts = map { "/tmp/saveitem-t5-burst$_-$$" } 0 .. 1;

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

no_shuffle();
run_tests();

waitpid($Holder, 0);

# every answer within queue_timeout (1 s) + the query timeout (1 s), with
# half a second for the machine; a key names its own row, and nothing
# answered "not stored" left one

sub check_deadlines {
    my ($out, $table, $what) = @_;

    my $n = 0;

    for my $r (burst_results($out)) {
        my ($doc, $status, $body, $retry, $took) = @$r;
        $n++;

        like($status, qr/^(200|503|504)$/, "$what: $doc answered $status");
        cmp_ok($took, '<=', 2.5, "$what: $doc answered within 2.5 s")
            or diag "$status $body after $took s";

        if ($status eq '200') {
            my ($pk) = $body =~ /^\{"pk": (\d+)\}$/;
            is(psql("SELECT data = '$doc'::jsonb FROM $table"
                    . " WHERE id = " . ($pk // 0)), 't', "row $pk holds $doc");

        } elsif ($body !~ /"outcome": "unknown"/) {
            is(psql("SELECT count(*) FROM $table WHERE data = '$doc'"),
               0, "$what: $doc answered $status, not stored, has no row");
        }
    }

    is($n, 6, "$what: six answers");
}

check_deadlines($Bursts[0], 't5.items', 'slow statements');

# once the lock is gone, what was answered "not stored" must have no row
waitpid($main::Held, 0) if $main::Held;
check_deadlines($Bursts[1], 't5.items', 'a locked table');

burst_results("/tmp/saveitem-t5-occupy-$$");

__DATA__

=== TEST 1: the start-up check gives up on a locked table within its bound
--- http_config eval: $::http_config
--- config
    location = /locked {
        saveitem t5.locked;
    }
    location = /items {
        saveitem t5.items;
    }
--- request
POST /items
{"startup": "locked"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- error_log eval
qr/\[warn\] .*saveitem: could not check "t5"\."locked"\."data" on .* now: canceling statement due to lock timeout \(as role "[^"]+"\)/



=== TEST 2: saveitem_query_timeout 0 is refused, naming the directive
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t5.items;
        saveitem_query_timeout 0;
    }
--- must_die
--- error_log
"saveitem_query_timeout" directive must be more than 0



=== TEST 3: slow statements on one connection: each answered in time
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1 queue_timeout=1s;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t5.items;
        saveitem_query_timeout 1s;
    }
--- init
SaveItem::Test::burst('/items', [map { qq({"sleep": 0.9, "slow": $_}) } 1 .. 6],
                      $main::Bursts[0]);
--- request
POST /items
{"slow": 0}
--- error_code_like: ^(200|503|504)$
--- wait: 2.5
--- timeout: 5



=== TEST 4: group commit on a locked table: retries keep the request's deadline
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1 queue_timeout=1s;
--- config
    location = /items {
        saveitem t5.items;
        saveitem_batch on;
        saveitem_query_timeout 1s;
    }
--- init
main::warm_up('/items', 7);
$main::Held = main::hold_lock('t5.items', 5);
SaveItem::Test::burst('/items', [map { qq({"locked": $_}) } 1 .. 6],
                      $main::Bursts[1]);
--- request
POST /items
{"locked": 0}
--- error_code_like: ^(503|504)$
--- wait: 2.5
--- timeout: 5



=== TEST 5: a client that leaves while its request waits: nothing was sent
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t5.items;
    }
--- init
SaveItem::Test::burst('/items', ['{"sleep": 1, "occupies": 1}'],
                      "/tmp/saveitem-t5-occupy-$$");
Time::HiRes::sleep(0.2);
--- request
POST /items
{"left": "queued"}
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 1.5
--- error_log
saveitem: request ends while waiting for a connection: nothing was sent, nothing is stored
--- no_error_log
the statement completes without it
