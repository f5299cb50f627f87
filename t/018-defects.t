# Defects of the pool and the connection (issue 17), each as it was seen:
# a keyed isolation larger than rows=, a SET that fails, a client that
# leaves before its keyed row is stored, integer and skipped keys, a bulk
# probe that fails for another reason, a key logged for a row not stored.
# The memory errors among them show under the ASan build of the suite.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t18 CASCADE;
CREATE SCHEMA t18;
CREATE TABLE t18.gate (until timestamptz NOT NULL);
INSERT INTO t18.gate VALUES ('-infinity');
CREATE FUNCTION t18.act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'sleep' THEN
        PERFORM pg_sleep((NEW.data->>'sleep')::float8);
    END IF;
    -- a statement of two rows or more waits for the gate
    IF NEW.data ? 'gate' AND current_query() LIKE '%$4%' THEN
        PERFORM pg_sleep_until((SELECT until FROM t18.gate));
    END IF;
    -- a bulk body's probe (see sql_probe) loses its backend
    IF NEW.data ? 'die' AND current_query() LIKE '%(c - c)%' THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    IF NEW.data ? 'skip' THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE FUNCTION t18.atcommit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'atcommit' THEN
        RAISE EXCEPTION 'refused at commit';
    END IF;
    RETURN NULL;
END
$$;
CREATE TABLE t18.iso (id bigserial PRIMARY KEY,
                      data jsonb NOT NULL CHECK (NOT data ? 'bad'),
                      idem text UNIQUE);
CREATE TABLE t18.keyed (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                        idem text UNIQUE);
CREATE TABLE t18.nums (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                       idem bigint UNIQUE);
CREATE TABLE t18.bulk (id bigserial PRIMARY KEY,
                       data jsonb NOT NULL CHECK (NOT data ? 'bad'));
CREATE TABLE t18.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
CREATE SEQUENCE t18.long_seq;
CREATE TABLE t18.long (k text PRIMARY KEY
                           DEFAULT repeat('k', 80) || nextval('t18.long_seq'),
                       data jsonb NOT NULL);
CREATE TRIGGER act BEFORE INSERT ON t18.iso
    FOR EACH ROW EXECUTE FUNCTION t18.act();
CREATE TRIGGER act BEFORE INSERT ON t18.keyed
    FOR EACH ROW EXECUTE FUNCTION t18.act();
CREATE TRIGGER act BEFORE INSERT ON t18.nums
    FOR EACH ROW EXECUTE FUNCTION t18.act();
CREATE TRIGGER act BEFORE INSERT ON t18.bulk
    FOR EACH ROW EXECUTE FUNCTION t18.act();
CREATE TRIGGER act BEFORE INSERT ON t18.items
    FOR EACH ROW EXECUTE FUNCTION t18.act();
CREATE CONSTRAINT TRIGGER atcommit AFTER INSERT ON t18.items
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION t18.atcommit();
CREATE TRIGGER act BEFORE INSERT ON t18.long
    FOR EACH ROW EXECUTE FUNCTION t18.act();
CREATE CONSTRAINT TRIGGER atcommit AFTER INSERT ON t18.long
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION t18.atcommit();
_SQL_


# A PostgreSQL proxy that ends the session where the module sets its
# statement_timeout, as a backend terminated there does: a FATAL error
# (57P01), then the end of the connection.  $SetFail holds how many
# sessions to end so; the others are relayed untouched.  $Slow holds "T D":
# connections accepted after the time T wait D seconds first (a slow
# connect).

our $SetFail = "/tmp/saveitem-t18-setfail-$$";
our $Slow = "/tmp/saveitem-t18-slow-$$";

sub slow_connects {
    my ($after, $delay) = @_;

    open my $fh, '>', $Slow or die "$Slow: $!";
    print $fh Time::HiRes::time() + $after, " $delay\n";
    close $fh;
}

sub slow_connect {
    open my $fh, '<', $Slow or return;
    my ($t, $d) = split ' ', <$fh> // '';
    close $fh;

    Time::HiRes::sleep($d) if $t && Time::HiRes::time() > $t;
}
our ($ProxyPid, $ProxyPort);

sub set_fail {
    my ($n) = @_;

    open my $fh, '>', $SetFail or die "$SetFail: $!";
    print $fh "$n\n";
    close $fh;
}

sub take_fail {
    open my $fh, '+<', $SetFail or return 0;
    flock($fh, 2);
    my $n = <$fh> // 0;
    chomp $n;

    return 0 if $n <= 0;

    seek $fh, 0, 0;
    truncate $fh, 0;
    print $fh $n - 1, "\n";
    close $fh;

    return 1;
}

sub relay {
    my ($client) = @_;

    my $server = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                       PeerPort => $ENV{TEST_NGINX_PG_PORT})
        or return;

    my $sel = IO::Select->new($client, $server);
    my $seen = '';

    for (;;) {
        for my $from ($sel->can_read(60)) {
            my $n = sysread($from, my $buf, 65536);
            return if !$n;

            if ($from == $client) {
                $seen = substr($seen . $buf, -4096);

                if ($seen =~ /SET statement_timeout = |set_config\('statement_timeout'/
                    && take_fail())
                {
                    my $fields = "SFATAL\0VFATAL\0C57P01\0Mterminating "
                                 . "connection due to administrator "
                                 . "command\0\0";
                    syswrite($client, 'E' . pack('N', 4 + length $fields)
                                      . $fields);
                    return;
                }

                $seen = substr($seen, -64);
                syswrite($server, $buf) // return;

            } else {
                syswrite($client, $buf) // return;
            }
        }
    }
}

sub start_proxy {
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Listen => 64,
                                       ReuseAddr => 1)
        or die "proxy: $!";

    $ProxyPort = $listen->sockport;
    set_fail(0);

    my $parent = $$;
    my $pid = fork() // die "fork: $!";

    if ($pid) {
        close $listen;
        $ProxyPid = $pid;
        return;
    }

    # not the test's handlers, nor its output: the END below stops it
    Test::More->builder->no_ending(1);
    $SIG{$_} = 'DEFAULT' for qw(TERM INT HUP);
    $SIG{CHLD} = 'IGNORE';
    open STDOUT, '>', '/dev/null';

    my $sel = IO::Select->new($listen);

    while (getppid() == $parent) {
        next if !$sel->can_read(0.5);

        my $client = $listen->accept or next;
        my $kid = fork();

        if (defined $kid && $kid == 0) {
            close $listen;
            slow_connect();
            relay($client);
            POSIX::_exit(0);
        }

        close $client;
    }

    POSIX::_exit(0);
}

start_proxy();

END {
    # the test's exit status, not the proxy's
    local $?;

    if ($ProxyPid) {
        kill 'TERM', $ProxyPid;
        waitpid($ProxyPid, 0);
        unlink $SetFail, $Slow;
    }
}

our $Proxy = "host=127.0.0.1 port=$ProxyPort dbname="
             . ($ENV{TEST_NGINX_PG_DB} || 'saveitem') . " user="
             . ($ENV{TEST_NGINX_PG_USER} || 'postgres') . " sslmode=disable";

our @Bursts = map { "/tmp/saveitem-t18-burst$_-$$" } 0 .. 2;
our $Docs = 28;

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    location = /keyed {
        saveitem t18.keyed idempotency=idem;
    }
    location = /nums {
        saveitem t18.nums idempotency=idem;
    }
    location = /bulk {
        saveitem t18.bulk bulk=10;
    }
    location = /items {
        saveitem t18.items;
    }
_EOC_

# clients that POST at once, each its document with its own key; each
# appends "document <TAB> status <TAB> body" to $out (see burst() in
# SaveItem::Test, which gives all the same headers)
our %Launchers;

sub burst_keyed {
    my ($uri, $docs, $keys, $out, $delay) = @_;

    unlink $out;
    SaveItem::Test::wait_nginx();

    my $start = Time::HiRes::time() + $delay;
    my $pid = fork() // die "fork: $!";

    if ($pid) {
        $Launchers{$out} = $pid;
        return;
    }

    Test::More->builder->no_ending(1);

    my @kids;

    for my $i (0 .. $#$docs) {
        my $kid = fork() // die "fork: $!";

        if ($kid == 0) {
            my $left = $start - Time::HiRes::time();
            Time::HiRes::sleep($left) if $left > 0;

            my ($status, $body) = SaveItem::Test::post($uri, $docs->[$i],
                                       ["Idempotency-Key: $keys->[$i]"]);
            open my $fh, '>>', $out or die "cannot write $out: $!";
            flock($fh, 2);
            print $fh "$docs->[$i]\t$status\t$body\n";
            close $fh;
            POSIX::_exit(0);
        }

        push @kids, $kid;
    }

    waitpid($_, 0) for @kids;
    POSIX::_exit(0);
}

sub burst_keyed_results {
    my ($out) = @_;

    my $pid = delete $Launchers{$out};
    waitpid($pid, 0) if $pid;

    open my $fh, '<', $out or die "no answers in $out: $!";
    my @res = map { chomp; [split /\t/, $_, 3] } <$fh>;
    close $fh;
    unlink $out;

    return @res;
}

# keyed requests, a key each
sub keyed {
    my ($uri, $key, $doc) = @_;

    return "POST $uri HTTP/1.1\r\nHost: localhost\r\nIdempotency-Key: $key\r\n"
           . "Content-Type: application/json\r\nContent-Length: "
           . length($doc) . "\r\nConnection: close\r\n\r\n$doc";
}

no_shuffle();
run_tests();

# TEST 1: the burst whose failed batches were isolated together
my (%status, $stored);

for my $r (burst_keyed_results($Bursts[0])) {
    my ($doc, $status, $body) = @$r;
    my ($n) = $doc =~ /"n": (\d+)/;

    if ($doc =~ /bad/) {
        like("$status $body", qr/^422 \{"error": "constraint_violation"/,
             "isolated keyed rows: document $n refused");

    } else {
        like("$status $body", qr/^200 \{"pk": \d+\}\n?$/,
             "isolated keyed rows: document $n stored");
        $stored++;
    }
}

is(scalar(grep { $_->[1] == 200 } burst_results($Bursts[1])), 7,
   'the seven slow requests before them: stored');
is(psql(q{SELECT count(*) FROM t18.iso WHERE data ? 'gate'}), $stored,
   'isolated keyed rows: a row for each document stored');
is(psql(q{SELECT count(*) FROM t18.iso WHERE data ? 'gate'
              AND idem = 'iso-' || (data->>'n')}), $stored,
   '... each under its own key');

is(psql(q{SELECT count(*) FROM t18.items WHERE data ? 'setfail'}), 2,
   'a SET that failed: the requests retried on a new connection are stored');
is(psql(q{SELECT count(*) FROM t18.items WHERE data ? 'setrefused'}), 0,
   '... and one refused on every connection is not');

is(psql(q{SELECT count(*) FROM t18.keyed WHERE idem = 'left-1'}), 1,
   'a keyed request whose client left: one row');

is(psql(q{SELECT count(*) FROM t18.nums}), 1,
   'an integer key in three spellings: one row');
is(psql(q{SELECT idem FROM t18.nums}), 7, '... its key 7');
is(psql(q{SELECT count(*) FROM t18.keyed WHERE data ? 'skip'}), 0,
   'a keyed row a trigger skipped is not stored');

is(psql(q{SELECT count(*) FROM t18.bulk}), 0,
   'a bulk body refused while probing: nothing stored');
is(psql(q{SELECT count(*) FROM t18.items WHERE data ? 'atcommit'}), 0,
   'a row refused at commit is not stored');

# TEST 12: rows sent again after their commit failed
my %long = map { $_->[0] => "$_->[1] $_->[2]" } burst_results($Bursts[2]);

for my $n (1, 3) {
    like($long{qq({"long": $n})}, qr/^200 \{"pk": "k{80}\d+"\}$/,
         "a batch refused at commit: document $n stored when sent again");
}

like($long{'{"long": 2, "atcommit": 1}'}, qr/^500 |^4\d\d /,
     '... the one refused at commit is not');
is(psql(q{SELECT string_agg(data->>'long', ',' ORDER BY data->>'long')
          FROM t18.long WHERE data ? 'long'}), '1,3',
   '... and their rows');

__DATA__

=== TEST 1: keyed rows of failed batches, isolated together beyond rows=
Group commit (set here, in both modes) of 4 rows at most, in every
location (a statement's parameters were as many as its rows, 16 at
least).  Seven slow requests keep the pool's seven connections busy while
the keyed documents queue; then each connection takes four of them, in a
statement that fails (the gate holds it until the connection is older
than lifetime=1s), and their rows wait together for a new connection
(made slow by the proxy): their isolation takes up to 32 rows, with a key
each.
--- http_config eval
qq{
    saveitem_database "$::Proxy" pool=7 lifetime=1s;
    saveitem_batch on rows=4;
}
--- config
    location = /iso {
        saveitem t18.iso idempotency=idem;
    }
    location = /block {
        saveitem t18.items;
        saveitem_batch off;
    }
    location = /items {
        saveitem t18.items;
    }
--- init
SaveItem::Test::wait_nginx();
SaveItem::Test::psql(q{UPDATE t18.gate
                       SET until = clock_timestamp() + interval '1.8 s'});
main::slow_connects(1.2, 0.5);
SaveItem::Test::burst('/block',
    [map { qq({"block": $_, "sleep": 0.8}) } 1 .. 7], $main::Bursts[1], 0);
main::burst_keyed('/iso',
    [map { $_ % 4 ? qq({"gate": 1, "n": $_, "bad": 1})
                  : qq({"gate": 1, "n": $_}) } 1 .. $main::Docs],
    [map { "iso-$_" } 1 .. $main::Docs], $main::Bursts[0], 0.3);
--- request
POST /items
{"warm": 1}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- wait: 3.5
--- error_log eval
qr/saveitem send: (1[7-9]|2[0-9]|3[0-2]) rows, \d+ bytes, a savepoint each/
--- no_error_log
[alert]
[crit]



=== TEST 2: a SET that fails on a new connection: retried on another
The proxy ends the first session at its SET as a terminated backend does.
--- http_config eval
qq{
    saveitem_database "$::Proxy" pool=1;
    saveitem_batch \$TEST_NGINX_SAVEITEM_BATCH;
}
--- config eval: $::config
--- init
main::slow_connects(0, 0);
main::set_fail(1);
--- request
POST /items
{"setfail": 1}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- error_log
saveitem: PostgreSQL refused SET statement_timeout: terminating connection due to administrator command (SQLSTATE 57P01), closing the connection
--- no_error_log
[alert]
[crit]



=== TEST 3: a SET that fails on every connection: 503, not stored
--- http_config eval
qq{
    saveitem_database "$::Proxy" pool=1;
    saveitem_batch \$TEST_NGINX_SAVEITEM_BATCH;
}
--- config eval: $::config
--- init
main::slow_connects(0, 0);
main::set_fail(10);
--- request
POST /items
{"setrefused": 1}
--- error_code: 503
--- response_body_like chomp
^\{"error": "database_unavailable", "message": "[^"]+"\}\n$
--- error_log
saveitem: PostgreSQL refused SET statement_timeout
--- no_error_log
[alert]
[crit]



=== TEST 4: a SET that fails with prepare=off: retried on another
--- http_config eval
qq{
    saveitem_database "$::Proxy" pool=1 prepare=off;
    saveitem_batch \$TEST_NGINX_SAVEITEM_BATCH;
}
--- config eval: $::config
--- init
main::slow_connects(0, 0);
main::set_fail(1);
--- request
POST /items
{"setfail": 2}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- error_log
saveitem: PostgreSQL refused SET statement_timeout
--- no_error_log
[alert]
[crit]



=== TEST 5: a keyed request whose client leaves before its row is stored
The key is read at the statement's result, after the request has gone.
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: left-1
--- request
POST /keyed
{"left": 1, "sleep": 1}
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 1.5
--- error_log
saveitem: request ends before PostgreSQL answered, the statement completes without it
saveitem: client closed the request before the answer: stored, key
--- no_error_log
[alert]
[crit]



=== TEST 6: ... and its replay finds that row
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: left-1
--- request
POST /keyed
{"left": 1, "sleep": 1}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- response_headers
Idempotent-Replayed: true
--- no_error_log
[error]



=== TEST 7: an integer key column: 007 is stored, and replayed
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: 007
--- request eval
["POST /nums\n{\"num\": 7}", "POST /nums\n{\"num\": 7}"]
--- response_body_like eval
['^\{"pk": 1\}$', '^\{"pk": 1\}$']
--- response_headers eval
["Idempotent-Replayed: ", "Idempotent-Replayed: true"]
--- no_error_log
[error]



=== TEST 8: ... as 7 it is the same key; with another document, 422
--- http_config eval: $::http_config
--- config eval: $::config
--- raw_request eval
[main::keyed('/nums', '7', '{"num": 7}'),
 main::keyed('/nums', '0007', '{"num": 8}')]
--- error_code eval
[200, 422]
--- response_body_like eval
['^\{"pk": 1\}$',
 '^\{"error": "idempotency_key_reused", "message": "[^"]+"\}$']
--- response_headers eval
["Idempotent-Replayed: true", "Idempotent-Replayed: "]
--- no_error_log
[error]



=== TEST 9: a keyed row a trigger skipped: not stored, not "reused"
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: skipped-1
--- request
POST /keyed
{"skip": 1}
--- error_code: 422
--- response_body_like chomp
^\{"error": "not_stored", "message": "the database did not store the item"\}\n$
--- error_log
saveitem: INSERT with the key "skipped-1" returned no row (a trigger skipped it)



=== TEST 10: a bulk probe that loses its backend blames no document
The body fails for its third document; the probe of the second one loses
its backend, which says nothing of that document.
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /bulk
[{"a": 1}, {"die": 1}, {"bad": 1}]
--- error_code: 422
--- response_body_like chomp
^\{"error": "constraint_violation", "message": ".+", "sqlstate": "23514"\}\n?$
--- error_log
probing a bulk body of 3 documents for the one at fault failed
--- no_error_log
[alert]
[crit]



=== TEST 11: a row refused at commit after its client left: no key logged
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /items
{"atcommit": 1, "sleep": 1}
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 1.5
--- error_log
saveitem: client closed the request before the answer: not stored, SQLSTATE P0001
--- no_error_log
not stored, key
[alert]



=== TEST 12: rows sent again after their commit failed: keys of each try
The first try's keys (longer than a job keeps inline) are freed when the
rows are sent again: a leak shows under valgrind.  Group commit, set here
in both modes: a batch of three refused at commit is sent again in halves.
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1;
    saveitem_batch on rows=4;
--- config
    location = /long {
        saveitem t18.long returning=k;
    }
--- init
SaveItem::Test::burst('/long',
    ['{"long": 1}', '{"long": 2, "atcommit": 1}', '{"long": 3}'],
    $main::Bursts[2], 0.2);
--- request
POST /long
{"first": 1, "sleep": 0.5}
--- response_body_like chomp
^\{"pk": "k{80}\d+"\}\n$
--- wait: 1
--- error_log
saveitem: PostgreSQL failed at commit: refused at commit (SQLSTATE P0001)
--- no_error_log
[alert]
[crit]
