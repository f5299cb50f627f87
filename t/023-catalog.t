# Mapped columns and the catalog: a configuration that cannot fit its table
# is refused at start when the database answers; when it does not, the
# first connection reads the table, and a table that does not match is
# answered 503 (and logged) until it does.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use IO::Select;
use IO::Socket::INET;
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t23 CASCADE;
CREATE SCHEMA t23;
CREATE TABLE t23.items (
    id bigserial PRIMARY KEY,
    email text,
    n int,
    twice int GENERATED ALWAYS AS (n * 2) STORED,
    loose text
);
CREATE TABLE t23.late (id bigserial PRIMARY KEY, email text NOT NULL);
CREATE TABLE t23.later (id bigserial PRIMARY KEY, email text NOT NULL);
_SQL_


# A gate before PostgreSQL: while $Gate does not exist, each connection is
# closed at once (the database does not answer); then it relays.

our $Gate = "/tmp/saveitem-t23-gate-$$";
our @Later = map { "/tmp/saveitem-t23-later$_-$$" } 0 .. 1;
our $GatePid;

sub relay {
    my ($client) = @_;

    my $server = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                       PeerPort => $ENV{TEST_NGINX_PG_PORT})
        or return;

    my $sel = IO::Select->new($client, $server);

    for (;;) {
        for my $from ($sel->can_read(60)) {
            my $n = sysread($from, my $buf, 65536);
            return if !$n;
            syswrite($from == $client ? $server : $client, $buf) // return;
        }
    }
}

sub start_gate {
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => 0, Listen => 64,
                                       ReuseAddr => 1)
        or die "gate: $!";

    $ENV{TEST_NGINX_GATE_PORT} = $listen->sockport;

    my $parent = $$;
    my $pid = fork() // die "fork: $!";

    if ($pid) {
        close $listen;
        $GatePid = $pid;
        return;
    }

    Test::More->builder->no_ending(1);
    $SIG{$_} = 'DEFAULT' for qw(TERM INT HUP);
    $SIG{CHLD} = 'IGNORE';
    open STDOUT, '>', '/dev/null';

    my $sel = IO::Select->new($listen);

    while (getppid() == $parent) {
        next if !$sel->can_read(0.5);

        my $client = $listen->accept or next;

        if (!-e $Gate) {
            close $client;
            next;
        }

        my $kid = fork();

        if (defined $kid && $kid == 0) {
            close $listen;
            relay($client);
            POSIX::_exit(0);
        }

        close $client;
    }

    POSIX::_exit(0);
}

# In a block's --- init: once its nginx answers (with $marker at /t), open
# the gate, then POST each [uri, doc, sql, pause] in turn (sql run first,
# then the pause), the answers into $out for the end of the file; then
# close the gate.  The gate is closed when each block's nginx starts.

sub later {
    my ($out, $marker, @steps) = @_;

    unlink $out;

    my $pid = fork() // die "fork: $!";
    return if $pid;

    Test::More->builder->no_ending(1);

    # the block's own nginx, not the one of the block before, still up
    my $deadline = Time::HiRes::time() + 30;

    while (Time::HiRes::time() < $deadline) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                         PeerPort => SaveItem::Test::server_port(),
                                         Timeout => 1);
        if ($sock) {
            print $sock "GET /t HTTP/1.0\r\nHost: localhost\r\n\r\n";
            my $res = do { local $/; <$sock> } // '';
            close $sock;
            last if $res =~ /\r\n\r\n\Q$marker\E$/;
        }

        Time::HiRes::sleep(0.1);
    }

    open my $fh, '>', $Gate or die "$Gate: $!";
    close $fh;

    for my $step (@steps) {
        my ($uri, $doc, $sql, $pause) = @$step;

        SaveItem::Test::psql($sql) if $sql;
        Time::HiRes::sleep($pause) if $pause;

        my ($status, $body) = SaveItem::Test::post($uri, $doc);

        open my $fh, '>>', $out or die "$out: $!";
        print $fh "$status\t$body\n";
        close $fh;
    }

    # closed again for the next block's start (init runs after it)
    unlink $Gate;

    POSIX::_exit(0);
}

sub later_results {
    my ($out) = @_;

    my $deadline = Time::HiRes::time() + 30;
    my @res;

    while (Time::HiRes::time() < $deadline) {
        if (open my $fh, '<', $out) {
            @res = map { chomp; [split /\t/, $_, 2] } <$fh>;
            close $fh;
        }

        last if @res >= $_[1];
        Time::HiRes::sleep(0.2);
    }

    unlink $out;

    return @res;
}

start_gate();

END {
    local $?;

    if ($GatePid) {
        kill 'TERM', $GatePid;
        waitpid($GatePid, 0);
        unlink $Gate;
    }
}

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB";
_EOC_

our $gate_config = <<'_EOC_';
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_GATE_PORT dbname=$TEST_NGINX_PG_DB user=$TEST_NGINX_PG_USER connect_timeout=2";
_EOC_

no_shuffle();
run_tests();

my @late = later_results($Later[0], 1);
is($late[0][0], 200, 'down at start: the first connection read the table');
like($late[0][1], qr/^\{"pk": \d+\}$/, '... and the row was stored');

my @later = later_results($Later[1], 2);
is($later[0][0], 503, 'a table that does not match: 503');
like($later[0][1], qr/^\{"error": "database_unavailable", "message": "the table does not match this location's configuration"\}$/,
     '... saying so');
is($later[1][0], 200, '... until it matches');

is(psql(q{SELECT count(*) FROM t23.late WHERE email = 'late@x'}), 1,
   'the late row is there');
is(psql(q{SELECT extra FROM t23.later WHERE email = 'later@x'}), 'e',
   'the row stored once the table matched, its new column filled');

__DATA__

=== TEST 1: a mapped column that does not exist is refused at start
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off;
        saveitem_field email;
        saveitem_field nope;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"saveitem" in \S+:\d+: table "t23"\."items" on PostgreSQL \(.*\) does not match the configuration: column "nope" does not exist/



=== TEST 2: a generated column is refused at start
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off;
        saveitem_field twice;
    }
--- must_die
--- error_log
column "twice" is generated: nothing can be stored in it



=== TEST 3: saveitem_conflict without a unique index on its columns
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off;
        saveitem_field email;
        saveitem_conflict email update;
    }
--- must_die
--- error_log
no unique index on exactly (email) for saveitem_conflict



=== TEST 4: a key column without a unique index, mapped
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off idempotency=loose;
        saveitem_field email;
        saveitem_field loose;
    }
--- must_die
--- error_log
no unique index on exactly (loose) for idempotency=



=== TEST 5: a mapped table that does not exist
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.nope column=off;
        saveitem_field email;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"saveitem" in \S+:\d+: PostgreSQL \(.*\) has no table "t23"\."nope": relation "t23\.nope" does not exist/



=== TEST 6: saveitem_conflict names a column nothing fills
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off;
        saveitem_field n;
        saveitem_conflict email update;
    }
--- must_die
--- error_log eval
qr/"saveitem_conflict" in \S+:\d+ names "email", which no "saveitem_field" or "saveitem_value" of its location fills/



=== TEST 7: column=off and nothing mapped
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off;
    }
--- must_die
--- error_log
has column=off and no "saveitem_field" or "saveitem_value": nothing to store



=== TEST 8: a column mapped twice
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off;
        saveitem_field email;
        saveitem_value email $remote_addr;
    }
--- must_die
--- error_log
column "email" is mapped twice



=== TEST 9: the document's column mapped again
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=loose;
        saveitem_field loose;
    }
--- must_die
--- error_log
column "loose" of "saveitem" in



=== TEST 10: bulk= with a key taken from a field
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off idempotency=email bulk=10;
        saveitem_field email;
    }
--- must_die
--- error_log
bulk= cannot be used with a key taken from a mapped column (idempotency=email)



=== TEST 11: saveitem_conflict with idempotency=
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off idempotency=email;
        saveitem_field email;
        saveitem_conflict email update;
    }
--- must_die
--- error_log
cannot be used with idempotency=



=== TEST 12: saveitem_field without saveitem
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem_field email;
    }
--- must_die
--- error_log
need a "saveitem" in the same location



=== TEST 13: a key path with an empty key
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off;
        saveitem_field email sender..email;
    }
--- must_die
--- error_log
invalid key path "sender..email": an empty key



=== TEST 14: saveitem_conflict with an unknown action
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t23.items column=off;
        saveitem_field email;
        saveitem_conflict email replace;
    }
--- must_die
--- error_log
invalid value "replace": "update" or "nothing"



=== TEST 15: the database down at start: the first connection reads the table
--- http_config eval: $::gate_config
--- config
    location = /late {
        saveitem t23.late column=off;
        saveitem_field email;
    }
    location = /t {
        return 200 "t15\n";
    }
--- init
main::later($main::Later[0], 't15', ['/late', '{"email": "late@x"}', undef, 0.5]);
--- request
GET /t
--- response_body
t15
--- wait: 3
--- error_log eval
[qr/\[warn\] .*could not connect to PostgreSQL \(.*\) to check its tables now/,
 qr/\[notice\] .*saveitem: read the columns of "t23"\."late" from PostgreSQL/]



=== TEST 16: a table that does not match: 503 until it does
--- http_config eval: $::gate_config
--- config
    location = /later {
        saveitem t23.later column=off;
        saveitem_field email;
        saveitem_field extra;
    }
    location = /t {
        return 200 "t16\n";
    }
--- init
main::later($main::Later[1], 't16',
            ['/later', '{"email": "early@x", "extra": "e"}', undef, 0.5],
            ['/later', '{"email": "later@x", "extra": "e"}',
             'ALTER TABLE t23.later ADD COLUMN extra text', 1.2]);
--- request
GET /t
--- response_body
t16
--- wait: 4
--- error_log eval
qr/\[error\] .*saveitem: table "t23"\."later" on PostgreSQL \(.*\) does not match the configuration: column "extra" does not exist; its requests are answered 503 until it does/
