# Group commit: the requests that wait when a connection becomes free go as
# one INSERT and one commit; each still gets its own row's key, and one bad
# document fails alone.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t4 CASCADE;
CREATE SCHEMA t4;
CREATE TABLE t4.items (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                       CHECK (NOT data ? 'guilty'));
CREATE TABLE t4.checked (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                         CHECK (NOT data ? 'guilty'));
CREATE TABLE t4.keyed (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                       idem text UNIQUE, CHECK (NOT data ? 'guilty'));
CREATE TABLE t4.keyed2 (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                        idem text UNIQUE, CHECK (NOT data ? 'guilty'));
CREATE TABLE t4.uuids (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                       data jsonb NOT NULL);
CREATE FUNCTION t4.act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'sleep' THEN
        PERFORM pg_sleep((NEW.data->>'sleep')::float);
    END IF;
    IF NEW.data ? 'suicide' THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    IF NEW.data ? 'skip' THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER act BEFORE INSERT ON t4.items
    FOR EACH ROW EXECUTE FUNCTION t4.act();
CREATE TRIGGER act BEFORE INSERT ON t4.keyed
    FOR EACH ROW EXECUTE FUNCTION t4.act();
CREATE TABLE t4.xids (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                      xid bigint NOT NULL DEFAULT txid_current());
CREATE TRIGGER act BEFORE INSERT ON t4.xids
    FOR EACH ROW EXECUTE FUNCTION t4.act();
CREATE FUNCTION t4.late() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'late' THEN
        RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER late AFTER INSERT ON t4.items
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION t4.late();
_SQL_

our @Bursts = map { "/tmp/saveitem-t-burst$_-$$" } 0 .. 21;

sub docs {
    my ($name, $n, %odd) = @_;
    return [map { $odd{$_} // qq({"burst": "$name", "n": $_}) } 1 .. $n];
}

# /items, and /ping to send the block's request while bursts wait
our $ping_config = <<'_EOC_';
    location = /items {
        saveitem t4.items;
    }
    location = /ping {
        return 204;
    }
_EOC_

# guilty documents one by one, so that the share refused lately is high
sub guilty_first {
    my ($n) = @_;

    SaveItem::Test::wait_nginx();
    SaveItem::Test::post('/items', qq({"guilty": $_})) for 1 .. $n;
}

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB" pool=1;
    saveitem_batch on;
_EOC_

no_shuffle();
run_tests();

# each answer: the status, and for a key, the row holding that document

sub check_burst {
    my ($out, $table, $want) = @_;

    my (%got, %keys);

    for my $r (burst_results($out)) {
        my ($doc, $status, $body) = @$r;
        my $expect = $want->($doc);

        is($status, $expect, "burst $out: $doc answered $expect")
            or diag $body;
        $got{$status}++;

        next unless $status eq '200';

        my ($pk) = $body =~ /^\{"pk": "?([^"}]+)"?\}$/ or next;
        ok(!$keys{$pk}++, "key $pk given once");

        my $tag = '$d' . int(rand(1e9)) . '$';
        is(psql("SELECT data = ${tag}${doc}${tag}::jsonb FROM $table"
                . " WHERE id = '$pk'"),
           't', "row $pk holds $doc");
    }

    return \%got;
}

my $got = check_burst($Bursts[0], 't4.items', sub { 200 });
is($got->{200}, 40, '40 concurrent requests stored');

$got = check_burst($Bursts[1], 't4.uuids', sub { 200 });
is($got->{200}, 30, 'uuid keys map back too');

$got = check_burst($Bursts[2], 't4.items',
                   sub { $_[0] =~ /"guilty": 1/ ? 422 : 200 });
is($got->{422}, 1, 'only the guilty document failed');

$got = check_burst($Bursts[3], 't4.items',
                   sub { $_[0] =~ /"skip": 1/ ? 422 : 200 });
is($got->{422}, 1, 'only the skipped document was not stored');

$got = check_burst($Bursts[4], 't4.items',
                   sub { $_[0] =~ /sleep/ ? 504 : 200 });
is($got->{504}, 1, 'only the slow document timed out');

$got = check_burst($Bursts[5], 't4.items', sub { 503 });
is(psql(q{SELECT count(*) FROM t4.items WHERE data->>'burst' = 'dropped'}),
   0, 'a batch whose connection dropped stored nothing');

$got = check_burst($Bursts[6], 't4.items', sub { 200 });
is($got->{200}, 20, 'a batch cap of 4 rows: all stored');

$got = check_burst($Bursts[7], 't4.items', sub { 200 });
is($got->{200}, 10, 'a batch cap of 1 byte: all stored');

$got = check_burst($Bursts[8], 't4.items',
                   sub { $_[0] =~ /"guilty"/ ? 422 : 200 });
is($got->{422}, 3, 'three guilty documents in one batch: each failed');
is($got->{200}, 27, 'the others were stored');

$got = check_burst($Bursts[9], 't4.items',
                   sub { $_[0] =~ /"(?:guilty|late)"/ ? 422 : 200 });
is($got->{422}, 2, 'a guilty document and one refused at commit: both failed');
is($got->{200}, 18, 'the others were stored');

$got = check_burst($Bursts[10], 't4.items',
                   sub { $_[0] =~ /"late"/ ? 422 : 200 });
is($got->{422}, 1, 'a document refused at commit failed alone');
is($got->{200}, 19, 'the others were stored');

for my $i (11, 12) {
    my @r = burst_results($Bursts[$i]);
    is($r[0][1], '200', "held request $i stored") or diag $r[0][2];
}

is(psql(q{SELECT count(DISTINCT xid) FROM t4.xids WHERE data ? 'held'}), 1,
   'two requests 20 ms apart, the only connection in use busy: held for'
   . ' one statement, not sent alone');

$got = check_burst($Bursts[13], 't4.items',
                   sub { $_[0] =~ /"guilty"/ ? 422 : 200 });
is($got->{422}, 12, 'twelve guilty documents in twenty: each failed');

$got = check_burst($Bursts[14], 't4.items', sub { 200 });

$got = check_burst($Bursts[15], 't4.checked',
                   sub { $_[0] =~ /"guilty"/ ? 422 : 200 });
is($got->{422}, 1, 'straight into one transaction: the guilty one failed');
is($got->{200}, 19, 'the others were stored');
is(psql(q{SELECT count(*) FROM t4.checked WHERE data ? 'guilty'}), 0,
   'no row for it');

# keyed documents: each answer names the row holding its document and key

$got = check_burst($Bursts[17], 't4.keyed', sub { 200 });
$got = check_burst("$Bursts[17]-2", 't4.keyed', sub { 200 });

for my $t (['keyed', 'k', 12], ['keyed2', 'l', 1]) {
    my ($table, $prefix, $guilty) = @$t;
    my %got;

    for my $n (1 .. 20) {
        for my $r (burst_results("$Bursts[16]-$prefix$n")) {
            my ($doc, $status, $body) = @$r;
            my $want = $doc =~ /"guilty"/ ? 422 : 200;

            is($status, $want, "$table: $doc answered $want") or diag $body;
            $got{$status}++;

            my ($pk) = $body =~ /^\{"pk": (\d+)\}$/ or next;
            is(psql("SELECT idem || ' ' || (data->>'n') FROM t4.$table"
                    . " WHERE id = $pk"), "$prefix$n $n",
               "$table: row $pk holds document $n under its key");
        }
    }

    is($got{422}, $guilty, "$table: $guilty guilty keyed documents failed");
    is($got{200}, 20 - $guilty, "$table: the others were stored");
    is(psql("SELECT count(*) FROM t4.$table WHERE data ? 'n'"), 20 - $guilty,
       "$table: one row each, none for the guilty");
}

for my $r (burst_results($Bursts[19])) {
    like($r->[1], qr/^50[34]$/, 'the request whose backend died: answered');
}

$got = check_burst($Bursts[18], 't4.items',
                   sub { $_[0] =~ /"guilty"/ ? 422 : 200 });
is($got->{200}, 39, 'a new connection, thirty-two rows a savepoint each first:'
   . ' every innocent document stored under its own key');
is($got->{422}, 1, '... and the guilty one refused');

$got = check_burst($Bursts[21], 't4.items', sub { 200 });
$got = check_burst($Bursts[20], 't4.items', sub { 200 });
is($got->{200}, 20, 'behind a pooler, guilty documents frequent: smaller'
   . ' statements, all stored');

is(psql(q{SELECT count(*) FROM t4.items WHERE data->>'burst' = 'rare'}), 201,
   'the innocent documents among rare guilty ones were stored');

is(psql(q{SELECT count(*) FROM t4.items WHERE data ? 'guilty'
                                            OR data ? 'late'
                                            OR data ? 'skip'
                                            OR data ? 'suicide'}),
   0, 'no refused document left a row');

is(psql(q{SELECT count(*) FROM t4.items WHERE data->>'burst' IN
              ('guilty3', 'mixed', 'atcommit')}),
   64, 'every stored document of those batches has one row');

__DATA__

=== TEST 1: concurrent clients each find their own document under their key
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items', main::docs('many', 40), $main::Bursts[0], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- wait: 1
--- error_log eval
qr/saveitem send: (?:[2-9]|\d\d) rows/
--- no_error_log
[error]



=== TEST 2: uuid keys, which cannot be sorted, map back as well
--- http_config eval: $::http_config
--- config
    location = /uuids {
        saveitem t4.uuids;
    }
    location = /slow {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/uuids', main::docs('uuid', 30), $main::Bursts[1], 0.2);
--- request
POST /slow
{"sleep": 0.6}
--- wait: 1
--- error_log eval
qr/saveitem send: (?:[2-9]|\d\d) rows/
--- no_error_log
[error]



=== TEST 3: a failing document in the middle of a batch fails alone
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items',
    main::docs('guilty', 20, 10 => '{"burst": "guilty", "guilty": 1}'),
    $main::Bursts[2], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- wait: 1
--- error_log
failed (new row for relation "items" violates check constraint "items_data_check"), retrying them in one transaction, a savepoint each
saveitem: PostgreSQL error 23514



=== TEST 4: a document a trigger skips: the batch cannot be mapped, so it is retried
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items',
    main::docs('skip', 20, 5 => '{"burst": "skip", "skip": 1}'),
    $main::Bursts[3], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- wait: 1
--- error_log
failed (division by zero), retrying them in one transaction, a savepoint each
saveitem: INSERT returned PGRES_TUPLES_OK with 0 rows



=== TEST 5: a timeout in the middle of a batch: only the slow document times out
--- http_config eval: $::http_config
--- config
    saveitem_query_timeout 1s;
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items',
    main::docs('timeout', 20, 7 => '{"burst": "timeout", "sleep": 3}'),
    $main::Bursts[4], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- wait: 3
--- timeout: 5
--- error_log
failed (canceling statement due to statement timeout), retrying them one by one



=== TEST 6: the connection drops in the middle of a batch: every request answered
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items',
    main::docs('dropped', 10, 4 => '{"burst": "dropped", "suicide": 1}'),
    $main::Bursts[5], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- wait: 1
--- error_log
saveitem: PostgreSQL error 57P01



=== TEST 7: rows= caps a batch
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1;
    saveitem_batch on rows=4;
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items', main::docs('rows', 20), $main::Bursts[6], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- wait: 1
--- error_log
saveitem send: 4 rows
--- no_error_log eval
[qr/saveitem send: (?:[5-9]|\d\d) rows/, "[error]"]



=== TEST 8: bytes= caps a batch: here every document is a batch of its own
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1;
    saveitem_batch on bytes=1;
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items', main::docs('bytes', 10), $main::Bursts[7], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- wait: 1
--- error_log
saveitem send: 1 rows
--- no_error_log eval
[qr/saveitem send: (?:[2-9]|\d\d) rows/, "[error]"]



=== TEST 9: three guilty documents in one batch: one transaction finds them all
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items',
    main::docs('guilty3', 30, 3 => '{"burst": "guilty3", "guilty": 3}',
                              17 => '{"burst": "guilty3", "guilty": 17}',
                              30 => '{"burst": "guilty3", "guilty": 30}'),
    $main::Bursts[8], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- wait: 1
--- error_log eval
[qr/a statement of (?:[3-9]|\d\d) rows failed \(new row for relation "items" violates check constraint "items_data_check"\), retrying them in one transaction, a savepoint each/,
 qr/saveitem send: (?:[3-9]|\d\d) rows, \d+ bytes, a savepoint each/]
--- no_error_log
retrying them in halves



=== TEST 10: a guilty document and one refused at commit in one batch
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items',
    main::docs('mixed', 20, 4 => '{"burst": "mixed", "guilty": 4}',
                            12 => '{"burst": "mixed", "late": 12}'),
    $main::Bursts[9], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- wait: 1
--- error_log
retrying them in one transaction, a savepoint each
PostgreSQL failed at commit: refused at commit (SQLSTATE 23514)



=== TEST 11: a document refused at commit: the others are retried in halves
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
SaveItem::Test::burst('/items',
    main::docs('atcommit', 20, 9 => '{"burst": "atcommit", "late": 9}'),
    $main::Bursts[10], 0.2);
--- request
POST /items
{"sleep": 0.6}
--- wait: 1
--- error_log
PostgreSQL failed at commit: refused at commit (SQLSTATE 23514)
--- no_error_log
a savepoint each



=== TEST 12: requests wait for the busy connection before another is used
Three statements of 0.3 s make half the usual time longer than the 50 ms a
request is held at most; while the only connection in use runs a longer one, two
requests 20 ms apart are held, then sent together on a second connection once
the first has waited 50 ms.
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=4;
    saveitem_batch on;
--- config
    location = /xids {
        saveitem t4.xids;
    }
--- init
SaveItem::Test::wait_nginx();
SaveItem::Test::post('/xids', '{"warm": 1, "sleep": 0.3}') for 1 .. 3;
SaveItem::Test::burst('/xids', ['{"held": 1}'], $main::Bursts[11], 0.2);
SaveItem::Test::burst('/xids', ['{"held": 2}'], $main::Bursts[12], 0.22);
--- request
POST /xids
{"sleep": 0.6}
--- wait: 1
--- error_log eval
qr/saveitem: a request waited \d+ ms, 2 connections in use/
--- no_error_log
[error]



=== TEST 13: while guilty documents are frequent, rows go straight into one transaction
Twelve guilty documents in twenty: their statement fails, and they are sent
again a savepoint each.  The next batch (on another table of the same
database) holds one guilty document in twenty: it goes into one transaction,
a savepoint each, with no statement failing first.
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t4.items;
    }
    location = /checked {
        saveitem t4.checked;
    }
--- init
SaveItem::Test::burst('/items',
    main::docs('often', 20,
               map { ($_ => qq({"burst": "often", "guilty": $_})) } 1 .. 12),
    $main::Bursts[13], 0.2);
SaveItem::Test::burst('/items', ['{"burst": "nap", "sleep": 0.6}'],
                      $main::Bursts[14], 1.2);
SaveItem::Test::burst('/checked',
    main::docs('straight', 20, 7 => '{"burst": "straight", "guilty": 7}'),
    $main::Bursts[15], 1.4);
--- request
POST /items
{"sleep": 0.6}
--- wait: 2
--- error_log eval
[qr/a statement of \d+ rows failed \(new row for relation "items" violates check constraint/,
 qr/saveitem: \d+% of documents refused lately, group-commit rows go in one transaction, a savepoint each/,
 qr/saveitem send: (?:1\d|20) rows, \d+ bytes, a savepoint each/]
--- no_error_log eval
[qr/a statement of \d+ rows failed \(new row for relation "checked"/,
 qr/retrying them in halves/]



=== TEST 14: once guilty documents are rare again, rows go in one statement again
Five guilty documents, then 200 innocent ones: the share refused lately falls
below half of what sends rows straight into an isolation.
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t4.items;
    }
--- init
main::guilty_first(5);
SaveItem::Test::post('/items', qq({"burst": "rare", "n": $_})) for 1 .. 200;
--- request
POST /items
{"burst": "rare", "n": 201}
--- response_body_like: ^\{"pk": \d+\}$
--- error_log eval
[qr/saveitem: \d+% of documents refused lately, group-commit rows go in one transaction, a savepoint each/,
 qr/saveitem: few documents refused lately, group-commit rows go in one statement again/]



=== TEST 15: keyed documents, after a failed statement and straight into one transaction
Idempotency-Key: behind a nap, twenty keyed documents, twelve guilty, fail as
one statement and are sent again a savepoint each (two parameters a row);
behind another nap, twenty more on another table, one guilty, go straight into
one transaction.  Each answer names the row holding its own document under its
own key.
--- http_config eval: $::http_config
--- config
    location = /keyed {
        saveitem t4.keyed idempotency=idem;
    }
    location = /keyed2 {
        saveitem t4.keyed2 idempotency=idem;
    }
--- init
SaveItem::Test::wait_nginx();
my $t0 = Time::HiRes::time();
my $at = sub { $t0 + $_[0] - Time::HiRes::time() };
SaveItem::Test::burst('/keyed', ['{"nap": 1, "sleep": 1}'],
                      $main::Bursts[17], 0);
for my $n (1 .. 20) {
    SaveItem::Test::burst('/keyed',
        [$n <= 12 ? qq({"n": $n, "guilty": 1}) : qq({"n": $n})],
        "$main::Bursts[16]-k$n", $at->(0.4), ["Idempotency-Key: k$n"]);
}
SaveItem::Test::burst('/keyed', ['{"nap": 2, "sleep": 0.8}'],
                      "$main::Bursts[17]-2", $at->(1.8));
for my $n (1 .. 20) {
    SaveItem::Test::burst('/keyed2',
        [$n == 7 ? qq({"n": $n, "guilty": 1}) : qq({"n": $n})],
        "$main::Bursts[16]-l$n", $at->(2.1), ["Idempotency-Key: l$n"]);
}
--- request
POST /keyed2
{"main": 1}
--- wait: 3
--- error_log eval
[qr/a statement of 20 rows failed \(new row for relation "keyed" violates check constraint/,
 qr/saveitem: \d+% of documents refused lately, group-commit rows go in one transaction, a savepoint each/,
 qr/saveitem send: 20 rows, \d+ bytes, a savepoint each/]
--- no_error_log eval
[qr/a statement of \d+ rows failed \(new row for relation "keyed2"/,
 qr/retrying them in halves/]



=== TEST 16: a new connection's first statements: setup, then thirty-two rows a savepoint each
While guilty documents are frequent, the only connection dies under a nap
with forty requests waiting: on the new connection one send sets the statement
timeout, prepares the INSERT and the savepoint statements, and sends the first
thirty-two rows a savepoint each, 137 results to match to what they answer.
--- http_config eval: $::http_config
--- config eval: $::ping_config
--- init
main::guilty_first(5);
SaveItem::Test::burst('/items', ['{"burst": "drop", "sleep": 0.6, "suicide": 1}'],
                      $main::Bursts[19], 0);
SaveItem::Test::burst('/items',
    main::docs('fresh', 40, 20 => '{"burst": "fresh", "guilty": 20}'),
    $main::Bursts[18], 0.2);
--- request
GET /ping
--- error_code: 204
--- wait: 1.5
--- error_log eval
[qr/saveitem: PostgreSQL error 57P01/,
 qr/saveitem send: 32 rows, \d+ bytes, a savepoint each/]
--- no_error_log
[alert]



=== TEST 17: behind a pooler (prepare=off), while guilty documents are frequent, smaller statements
No savepoints there: a failed statement is halved.  After five guilty
documents, twenty requests that wait go in statements of a few rows (fewer
than ten), each likely without a guilty one, not in one of twenty.
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=1 prepare=off;
    saveitem_batch on;
--- config eval: $::ping_config
--- init
main::guilty_first(5);
SaveItem::Test::burst('/items', ['{"burst": "pooled-nap", "sleep": 0.6}'],
                      $main::Bursts[21], 0);
SaveItem::Test::burst('/items', main::docs('pooled', 20), $main::Bursts[20],
                      0.2);
--- request
GET /ping
--- error_code: 204
--- wait: 1.5
--- error_log eval
[qr/saveitem: \d+% of documents refused lately, group-commit rows go in statements of fewer rows \(prepare=off\)/,
 qr/saveitem send: [2-9] rows/]
--- no_error_log eval
[qr/saveitem send: (?:1\d|20) rows/]
