# Where a request waits, on saveitem_status: the histograms of its stages
# (queued, held, in flight, answering) and of its total count every request
# answered after its statement's result, once; their buckets add up, the
# stages' sums make the total's; a request held behind a locked table
# lands above a bucket that the held time exceeds; the bytes of each
# statement are counted.  No upper bound on any time: the machine may be
# slow, never faster than a lock held.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;
use HTTP::Tiny;
use Time::HiRes ();

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t20 CASCADE;
CREATE SCHEMA t20;
CREATE TABLE t20.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
CREATE TABLE t20.uniq (id bigserial PRIMARY KEY, data jsonb NOT NULL UNIQUE);
_SQL_

our @Stages = qw(queued held in_flight answering);

our @Out = map { "/tmp/saveitem-t20-burst$_-$$" } 0 .. 2;

sub metrics {
    my $res = HTTP::Tiny->new(timeout => 5)
        ->get('http://127.0.0.1:' . SaveItem::Test::server_port()
              . '/metrics');
    return $res->{success} ? $res->{content} : '';
}

# locks t20.items, has $first in flight behind the lock on the only
# connection and the documents of $docs queued behind it, then commits:
# returns the answers' statuses, the first's first
sub behind_lock {
    my ($first, $docs) = @_;

    open my $lock, '|-', 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
        '-h', $ENV{TEST_NGINX_PG_SOCKET}, '-p', $ENV{TEST_NGINX_PG_PORT},
        '-U', $ENV{TEST_NGINX_PG_USER} || 'postgres',
        '-d', $ENV{TEST_NGINX_PG_DB} || 'saveitem'
        or die "psql: $!";
    $lock->autoflush(1);
    print $lock "BEGIN;\nLOCK TABLE t20.items IN ACCESS EXCLUSIVE MODE;\n";

    wait_for(10, sub {
        SaveItem::Test::psql("SELECT count(*) FROM pg_locks WHERE granted AND "
                             . "mode = 'AccessExclusiveLock' AND relation = "
                             . "'t20.items'::regclass") == 1
    }) or die "no lock";

    SaveItem::Test::burst('/items', [$first], $Out[0]);
    wait_for(10, sub {
        SaveItem::Test::psql("SELECT count(*) FROM pg_stat_activity WHERE "
                             . "wait_event_type = 'Lock' AND "
                             . "query LIKE 'INSERT INTO %t20%items%'") == 1
    }) or die "no INSERT waiting for the lock";

    SaveItem::Test::burst('/items', $docs, $Out[1]);
    my $n = @$docs;
    wait_for(10, sub {
        metrics() =~ /^saveitem_waiting\{database="[^"]+"\} $n$/m
    }) or die "the $n are not waiting";

    Time::HiRes::sleep(0.3);
    print $lock "COMMIT;\n";
    close $lock or die "psql: $?";

    return map { $_->[1] } map { SaveItem::Test::burst_results($_) } @Out[0, 1];
}

# a histogram of the text: [[le, cumulative count], ...], sum, count; $labels
# is what follows database="..." in its samples (a stage, or nothing)
sub histogram {
    my ($text, $name, $labels) = @_;
    my (@buckets, $sum, $count);

    my $re = qr/^${name}_bucket\{database="[^"]+"\Q$labels\E,le="([^"]+)"\}/m;

    while ($text =~ /$re (\d+)$/mg) {
        push @buckets, [$1, $2];
    }

    ($sum) = $text =~ /^${name}_sum\{database="[^"]+"\Q$labels\E\} ([\d.]+)$/m;
    ($count) = $text =~ /^${name}_count\{database="[^"]+"\Q$labels\E\} (\d+)$/m;

    return (\@buckets, $sum, $count);
}

# the cumulative count of the bucket $le
sub bucket {
    my ($buckets, $le) = @_;
    my ($b) = grep { $_->[0] eq $le } @$buckets;
    return $b ? $b->[1] : undef;
}

# buckets that never go down, the last +Inf, which is the count, $count
sub check_histogram {
    my ($text, $name, $labels, $count, $nbuckets) = @_;
    my ($buckets, $sum, $got) = histogram($text, $name, $labels);
    my $what = "$name$labels";

    my $last = @$buckets ? $buckets->[-1] : ['', -1];

    Test::More::is(scalar @$buckets, $nbuckets, "$what: $nbuckets buckets");
    Test::More::is($last->[0], '+Inf', "$what: the last is +Inf");
    Test::More::ok(!grep({ $buckets->[$_][1] < $buckets->[$_ - 1][1] }
                         1 .. $#$buckets), "$what: cumulative");
    Test::More::is($last->[1], $got, "$what: +Inf is the count");
    Test::More::is($got, $count, "$what: count $count");
    Test::More::like($sum // '', qr/^\d+(\.\d+)?$/, "$what: a sum");

    return ($buckets, $sum, $got);
}

# the waits of $count requests: the stages and the total agree
sub check_waits {
    my ($text, $count) = @_;
    my $stages = 0;

    for my $stage (@Stages) {
        my (undef, $sum) = check_histogram($text,
                                           'saveitem_request_wait_seconds',
                                           qq(,stage="$stage"), $count, 19);
        $stages += main::us($sum);
    }

    my (undef, $sum) = check_histogram($text, 'saveitem_request_seconds', '',
                                       $count, 19);

    # in microseconds, each stage a difference of the same moments
    Test::More::is($stages, us($sum),
                   'the stages add up to the total, to the microsecond');
    Test::More::cmp_ok(us($sum), '>', 0, 'the total is not 0');
}

# seconds with 6 decimals, as a whole number of microseconds
sub us {
    my ($s) = @_;
    return 0 + (($s // '0') =~ s/\.//r);
}

# what has waited more than 0.25 s
sub above {
    my ($text, $name, $labels) = @_;
    my ($buckets, undef, $count) = histogram($text, $name, $labels);
    return ($count // 0) - (bucket($buckets, '0.25') // $count // 0);
}

# the answers of TEST 1, from an --- init: 200, 200, 400, 200, 409
sub answers {
    my ($tag) = @_;

    my @got = map { (SaveItem::Test::post(@$_))[0] }
        ['/items', '{"w": 1}'], ['/items', '{"w": 22}'],
        ['/items', '{"w": '], ['/uniq', qq({"u": "$tag"})],
        ['/uniq', qq({"u": "$tag"})];

    die "answers: @got" unless "@got" eq '200 200 400 200 409';
}

# waits up to $secs for $cond to hold
sub wait_for {
    my ($secs, $cond) = @_;
    my $until = Time::HiRes::time() + $secs;

    while (Time::HiRes::time() < $until) {
        return 1 if $cond->();
        Time::HiRes::sleep(0.05);
    }

    return 0;
}

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB" pool=1;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    location = /items {
        saveitem t20.items;
    }

    location = /uniq {
        saveitem t20.uniq;
    }

    location = /metrics {
        saveitem_status;
    }
_EOC_

no_shuffle();
run_tests();

__DATA__

=== TEST 1: each request answered after a result counted once, in every stage
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::wait_nginx();
main::answers('one');
--- request
GET /metrics
--- after_response eval
[sub {
    my $m = $_[1];

    # 200, 200, 200, 409: four results; the 400 never reached the database
    main::check_waits($m, 4);

    # a statement each, and the bytes of its document
    my ($b, $sum) = main::check_histogram($m, 'saveitem_statement_bytes', '',
                                          4, 10);
    Test::More::is($sum, length('{"w": 1}{"w": 22}{"u": "one"}{"u": "one"}'),
                   'saveitem_statement_bytes_sum: the documents sent');
    Test::More::is(main::bucket($b, '256'), 4, 'all of them in le="256"');
}]
--- response_body_like eval
qr/^saveitem_requests_total\{database="[^"]+",code="409"\} 1$/m
--- no_error_log
[error]



=== TEST 2: behind a locked table: in flight, then queued, for longer than the lock's 0.3 s
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::store_ok('/items', '{"w": "first"}', 'the connection open');

my @got = main::behind_lock('{"w": "a"}', ['{"w": "b"}', '{"w": "c"}']);
Test::More::is("@got", '200 200 200', 'TEST 2 - init: the three stored');
--- request
GET /metrics
--- after_response eval
[sub {
    my $m = $_[1];

    main::check_waits($m, 4);

    Test::More::cmp_ok(main::above($m, 'saveitem_request_wait_seconds',
                                   ',stage="in_flight"'), '>=', 1,
                       'in flight for more than 0.25 s: the one blocked');
    Test::More::cmp_ok(main::above($m, 'saveitem_request_wait_seconds',
                                   ',stage="queued"'), '>=', 2,
                       'queued for more than 0.25 s: the two behind it');
    Test::More::cmp_ok(main::above($m, 'saveitem_request_seconds', ''),
                       '>=', 3, 'in all, more than 0.25 s: the three');
}]
--- response_body_like eval
qr/^saveitem_rows_total\{database="[^"]+"\} 4$/m
--- no_error_log
[error]



=== TEST 3: promtool check metrics accepts the histograms
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::wait_nginx();
main::answers('promtool');
open my $p, '|-', 'promtool check metrics >/tmp/saveitem-t20-promtool.out 2>&1'
    or die "promtool: $!";
print $p main::metrics();
close $p;
Test::More::is($? >> 8, 0, 'promtool check metrics: '
               . `cat /tmp/saveitem-t20-promtool.out`);
unlink '/tmp/saveitem-t20-promtool.out';
--- request
GET /metrics
--- response_body_like eval
qr/^saveitem_request_wait_seconds_bucket\{database="[^"]+",stage="queued",le="\+Inf"\} 4$/m



=== TEST 4: a connection is given what waits before the answers of its last statement are written
While the only connection's statement waits for a lock, five documents
queue; when its result comes, they are sent (as one statement, or with
saveitem_batch off as a pipeline) before the first document's answer is
written: the server works on them meanwhile.
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::store_ok('/items', '{"w": "first"}', 'the connection open');
my @got = main::behind_lock('{"w": "a"}', [map { qq({"w": $_}) } 1 .. 5]);
Test::More::is("@got", '200 200 200 200 200 200', 'TEST 4 - init: all stored');
--- request
GET /metrics
--- grep_error_log eval: qr/saveitem send: \d+ rows|saveitem stored/
--- grep_error_log_out
saveitem send: 1 rows
saveitem stored
saveitem send: 1 rows
saveitem send: 5 rows
saveitem stored
saveitem stored
saveitem stored
saveitem stored
saveitem stored
saveitem stored
--- no_error_log
[error]
