# A worker that stops does not outlive worker_shutdown_timeout for a
# statement in flight: the statement is left "unknown" and the worker goes.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use POSIX ();
use Time::HiRes ();
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t7 CASCADE;
CREATE SCHEMA t7;
CREATE TABLE t7.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
CREATE FUNCTION t7.act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep((NEW.data->>'sleep')::float);
    RETURN NEW;
END
$$;
CREATE TRIGGER act BEFORE INSERT ON t7.items
    FOR EACH ROW EXECUTE FUNCTION t7.act();
_SQL_

our $Took = "/tmp/saveitem-t7-took-$$";

# Under valgrind nginx runs some 20-50 times slower: it takes seconds to
# start and to exit (its leak check), so the statement is longer there, and
# so is the margin the worker gets after worker_shutdown_timeout; the test
# still tells a worker that waits for the statement from one that does not.
our $Valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
our $Sleep = $Valgrind ? 20 : 4;
our $Margin = $Valgrind ? 12 : 2.5;

# once the block's statement runs in PostgreSQL, nginx -s quit (SIGQUIT to
# the master); writes how long its worker took to exit to $Took.  It waits
# for the statement, not for a fixed delay: nginx under valgrind has not
# even started when a fixed delay is over.
sub quit_when_busy {
    unlink $Took;

    # a statement of an earlier run may still sleep in its backend
    my $since = psql('SELECT clock_timestamp()');

    my $pid = fork() // die "fork: $!";
    return if $pid;

    Test::More->builder->no_ending(1);

    my $deadline = Time::HiRes::time() + 60;
    my $busy = sub {
        psql(qq{SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database()
                AND wait_event = 'PgSleep' AND query_start > '$since'}) > 0
    };

    until ($busy->()) {
        POSIX::_exit(1) if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.1);
    }

    my $pidfile = server_root() . '/logs/nginx.pid';
    open my $fh, '<', $pidfile or POSIX::_exit(1);
    chomp(my $master = <$fh> // '');
    my @workers = split ' ', `pgrep -P $master`;

    my $start = Time::HiRes::time();
    kill 'QUIT', $master;

    while (grep { kill 0, $_ } @workers) {
        last if Time::HiRes::time() - $start > $Sleep + 10;
        Time::HiRes::sleep(0.05);
    }

    open my $out, '>', $Took or POSIX::_exit(1);
    printf $out "%.3f %d\n", Time::HiRes::time() - $start, scalar @workers;
    close $out;
    POSIX::_exit(0);
}

master_on();
workers(1);
no_shuffle();
run_tests();

for (1 .. 10 * ($Sleep + 20)) {
    last if -s $Took;
    Time::HiRes::sleep(0.1);
}

open my $fh, '<', $Took or die "no $Took: the worker was not watched";
my ($took, $workers) = split ' ', <$fh>;
close $fh;
unlink $Took;

is($workers, 1, 'one worker was watched');
cmp_ok($took, '<=', $Margin, "the worker exited ${took} s after nginx -s quit, "
       . "within worker_shutdown_timeout 1s (and a margin), not after the "
       . "$Sleep s statement");

__DATA__

=== TEST 1: nginx -s quit with a statement in flight, worker_shutdown_timeout 1s
--- main_config
    load_module $TEST_NGINX_SAVEITEM_MODULE;
    worker_shutdown_timeout 1s;
--- http_config
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t7.items;
    }
--- init
main::quit_when_busy();
--- request eval
"POST /items\n{\"sleep\": $::Sleep, \"shutdown\": 1}"
--- timeout eval: $::Sleep + 2
--- ignore_response
--- wait: 2
--- error_log
saveitem: closing a busy PostgreSQL connection: the worker is exiting (worker_shutdown_timeout)
