# saveitem_conflict: an upsert on a natural key, update or nothing; the
# answer is the row's key either way and Saveitem-Action says what became
# of it.  Many at once on one key, and group commit with documents that
# a column refuses among the others.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t22 CASCADE;
CREATE SCHEMA t22;
CREATE TABLE t22.accounts (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text,
    visits int NOT NULL DEFAULT 0
);
CREATE TABLE t22.pairs (
    id bigserial PRIMARY KEY,
    a int NOT NULL,
    b int NOT NULL,
    v text,
    UNIQUE (a, b)
);
CREATE TABLE t22.payments (
    id bigserial PRIMARY KEY,
    ext text UNIQUE,
    amount int NOT NULL CHECK (amount >= 0),
    via inet,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE t22.readings (
    id bigserial PRIMARY KEY,
    sensor int NOT NULL,
    value numeric NOT NULL CHECK (value < 1000),
    at timestamptz NOT NULL DEFAULT now()
);
_SQL_

our @Bursts = map { "/tmp/saveitem-t22-burst$_-$$" } 0 .. 2;

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB" pool=2;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    location = /accounts {
        saveitem t22.accounts column=off;
        saveitem_field email;
        saveitem_field name;
        saveitem_field visits;
        saveitem_conflict email update;
    }
    location = /accounts/keep {
        saveitem t22.accounts column=off;
        saveitem_field email;
        saveitem_field name;
        saveitem_conflict email nothing;
    }
    location = /pairs {
        saveitem t22.pairs column=off;
        saveitem_field a;
        saveitem_field b;
        saveitem_field v;
        saveitem_conflict a,b update;
    }
    location = /accounts/bulk {
        saveitem t22.accounts column=off bulk=10;
        saveitem_field email;
        saveitem_field name;
        saveitem_conflict email update;
    }
    location = /payments {
        saveitem t22.payments column=off idempotency=ext;
        saveitem_batch on rows=8;
        saveitem_field ext;
        saveitem_field amount;
        saveitem_field at;
        saveitem_value via $remote_addr;
    }
    location = /readings {
        saveitem t22.readings column=off;
        saveitem_field sensor;
        saveitem_field value;
    }
_EOC_

no_shuffle();
run_tests();

# twenty upserts of one email at once: one row, one key, all answered
my (%pks, %status, %actions);

for my $r (burst_results($Bursts[0])) {
    my ($doc, $status, $body) = @$r;
    $status{$status}++;
    $pks{$1}++ if $body =~ /^\{"pk": (\d+)\}$/;
}

is_deeply(\%status, { 200 => 20 }, 'twenty upserts of one key at once: 200');
is(scalar keys %pks, 1, '... all with the same key');
is(psql(q{SELECT count(*) FROM t22.accounts WHERE email = 'same@x'}), 1,
   '... and one row');

# forty readings at once, one in four refused by a type or a CHECK
my (%good, %bad);

for my $r (burst_results($Bursts[1])) {
    my ($doc, $status, $body) = @$r;
    my ($n) = $doc =~ /"sensor": (\d+)/;

    if ($doc =~ /"bad"/) {
        $bad{$status}++;
    } else {
        $good{$status}++;
        like($body, qr/^\{"pk": \d+\}$/, "reading $n: its key");
    }
}

is_deeply(\%good, { 200 => 30 }, 'group commit: the thirty good readings '
          . 'stored');
is_deeply(\%bad, { 400 => 5, 422 => 5 }, '... the five the module refuses '
          . '400, the five the CHECK refuses 422');
is(psql(q{SELECT count(*) FROM t22.readings WHERE sensor > 0}), 30,
   '... thirty rows');

# keyed rows with a CHECK among them, each key sent twice at once: group
# commit, isolation of the refused ones with savepoints, replays
my (%pay, %pk_of);

for my $r (burst_results($Bursts[2])) {
    my ($doc, $status, $body) = @$r;
    my ($k) = $doc =~ /"ext": "p(\d+)"/;
    $pay{$status}++;
    push @{ $pk_of{$k} }, $1 if $body =~ /^\{"pk": (\d+)\}$/;
}

is_deeply(\%pay, { 200 => 40, 422 => 8 },
          'keyed typed rows, two copies of each at once: 40 stored or '
          . 'replayed, the 8 a CHECK refuses 422');
is(scalar(grep { @{ $pk_of{$_} } == 2 && $pk_of{$_}[0] == $pk_of{$_}[1] }
          keys %pk_of), 20, '... both copies of a key answered its one row');
is(psql(q{SELECT count(*) FROM t22.payments WHERE ext LIKE 'p%'}), 20,
   '... twenty rows');
is(psql(q{SELECT count(*) FROM t22.payments WHERE amount < 0}), 0,
   '... none refused stored');

is(psql(q{SELECT name, visits FROM t22.accounts WHERE email = 'ann@x'}),
   'Ann B|2', 'update: the new values');
is(psql(q{SELECT name FROM t22.accounts WHERE email = 'bob@x'}), 'Bob',
   'nothing: the first values kept');
is(psql(q{SELECT v FROM t22.pairs WHERE a = 1 AND b = 2}), 'second',
   'a key of two columns');
is(psql(q{SELECT name FROM t22.accounts WHERE email = 'dan@x'}), 'Dan B',
   'a bulk body of upserts updates');
is(psql(q{SELECT count(*) FROM t22.accounts WHERE email IN ('gus@x', 'hal@x')}),
   0, 'a bulk body with one key twice: none of it stored');

__DATA__

=== TEST 1: insert, then update the same email: the same key
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /accounts\n{\"email\": \"ann\@x\", \"name\": \"Ann\", \"visits\": 1}",
 "POST /accounts\n{\"email\": \"ann\@x\", \"name\": \"Ann B\", \"visits\": 2}"]
--- response_body_like eval
['^\{"pk": (\d+)\}$', '^\{"pk": (\d+)\}$']
--- response_headers eval
["Saveitem-Action: inserted", "Saveitem-Action: updated"]
--- no_error_log
[error]



=== TEST 2: the same key answered for an update
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /accounts\n{\"email\": \"cat\@x\"}",
 "POST /accounts\n{\"email\": \"cat\@x\"}"]
--- response_body_like eval
['^\{"pk": (\d+)\}$', '^\{"pk": (\d+)\}$']
--- no_error_log
[error]



=== TEST 3: nothing: the row is left as it is, its key answered
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /accounts/keep\n{\"email\": \"bob\@x\", \"name\": \"Bob\"}",
 "POST /accounts/keep\n{\"email\": \"bob\@x\", \"name\": \"Robert\"}"]
--- response_body_like eval
['^\{"pk": (\d+)\}$', '^\{"pk": (\d+)\}$']
--- response_headers eval
["Saveitem-Action: inserted", "Saveitem-Action: left"]
--- no_error_log
[error]



=== TEST 4: a key of two columns
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /pairs\n{\"a\": 1, \"b\": 2, \"v\": \"first\"}",
 "POST /pairs\n{\"a\": 1, \"b\": 2, \"v\": \"second\"}",
 "POST /pairs\n{\"a\": 2, \"b\": 1, \"v\": \"other\"}"]
--- response_headers eval
["Saveitem-Action: inserted", "Saveitem-Action: updated",
 "Saveitem-Action: inserted"]
--- no_error_log
[error]



=== TEST 5: a wrong type in an upsert: 400, nothing changed
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /accounts
{"email": "ann@x", "name": "Ann C", "visits": "many"}
--- error_code: 400
--- response_body_like: ^\{"error": "invalid_value", "message": "\\"visits\\" is not an integer
--- no_error_log
[error]



=== TEST 6: twenty upserts of one email at once
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::burst('/accounts',
                      [map { qq({"email": "same\@x", "visits": $_}) } 1 .. 20],
                      $main::Bursts[0], 0);
--- request
POST /accounts
{"email": "warm@x"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- wait: 1
--- no_error_log
[error]



=== TEST 7: group commit with documents refused by a type or a CHECK
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::burst('/readings',
                      [map { $_ % 8 == 1 ? qq({"sensor": $_, "value": "x", "bad": 1})
                             : $_ % 8 == 5 ? qq({"sensor": $_, "value": 5000, "bad": 1})
                             : qq({"sensor": $_, "value": $_}) } 1 .. 40],
                      $main::Bursts[1], 0);
--- request
POST /readings
{"sensor": 0, "value": 0}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- wait: 2



=== TEST 8: keyed typed rows, a CHECK refusing some, each key twice at once
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::burst('/payments',
                      [map { my $k = $_ % 24;
                             qq({"ext": "p$k", "amount": )
                             . ($k % 6 == 5 ? -1 : $k) . '}' } 0 .. 47],
                      $main::Bursts[2], 0);
--- request
POST /payments
{"amount": 0}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- wait: 2



=== TEST 9: a bulk body of upserts: pks in order, one key twice is 409 naming it
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /accounts/bulk\n[{\"email\": \"dan\@x\", \"name\": \"Dan\"}, {\"email\": \"eve\@x\"}]",
 "POST /accounts/bulk\n[{\"email\": \"dan\@x\", \"name\": \"Dan B\"}, {\"email\": \"fay\@x\"}]",
 "POST /accounts/bulk\n[{\"email\": \"gus\@x\"}, {\"email\": \"hal\@x\"}, {\"email\": \"gus\@x\", \"name\": \"twice\"}]"]
--- error_code eval
[200, 200, 409]
--- response_body_like eval
['^\{"pks": \[\d+, \d+\]\}$', '^\{"pks": \[\d+, \d+\]\}$',
 '^\{"error": "conflict", .*"sqlstate": "21000", "index": 2\}$']
