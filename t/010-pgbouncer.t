# Behind PgBouncer in transaction mode (util/pgbouncer.sh: Debian's 1.18,
# 4 server connections for up to 64 of the module's): with prepare=off,
# a burst from 4 workers is stored with every key naming its own client's
# document and no "prepared statement" error; saveitem_query_timeout is
# still enforced by the server, and no setting leaks to the pooler's other
# clients.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use JSON::PP ();
use SaveItem::Test;

our $Bouncer = "$FindBin::Bin/../util/pgbouncer.sh";
our $Parent = $$;
our $Burst = "/tmp/saveitem-t-bouncer-$$";
our $N = 300;
our (@Answers, %Pools);

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t10 CASCADE;
CREATE SCHEMA t10;
CREATE TABLE t10.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
CREATE FUNCTION t10.act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'sleep' THEN
        PERFORM pg_sleep((NEW.data->>'sleep')::float);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER act BEFORE INSERT ON t10.items
    FOR EACH ROW EXECUTE FUNCTION t10.act();
CREATE TABLE t10.typed (id bigserial PRIMARY KEY, n int NOT NULL,
                        ext text UNIQUE, v int CHECK (v < 100), ip inet,
                        at timestamptz NOT NULL DEFAULT now());
_SQL_

our $Typed = "/tmp/saveitem-t-bouncer-typed-$$";

# in front of the suite's cluster; stopped at the end whatever happens
system('bash', $Bouncer, 'start') == 0
    or die "util/pgbouncer.sh start failed\n";

END {
    system('bash', $Bouncer, 'stop') if defined $Parent && $$ == $Parent;
}

our %Env = map { chomp; split /=/, $_, 2 } `bash $Bouncer env`;
$ENV{TEST_NGINX_PGBOUNCER_PORT} = $Env{SAVEITEM_PGBOUNCER_PORT};

# PgBouncer's admin console: the pool's counters, summed over its rows
sub pools {
    my @cmd = ('bash', $Bouncer, 'psql', '-A', '-F', "\t", '-c', 'SHOW POOLS');
    open my $fh, '-|', @cmd or die "cannot run psql: $!";
    my @head = split /\t/, scalar <$fh>;
    chomp @head;
    my %sum;

    while (my $line = <$fh>) {
        chomp $line;
        my %row;
        @row{@head} = split /\t/, $line;
        next unless ($row{database} // '') eq 'saveitem';
        $sum{$_} += $row{$_} for grep { /^(cl|sv)_/ } @head;
    }

    close $fh;
    return %sum;
}

# the concurrent clients, all at once, while the block's nginx runs
sub run_burst {
    SaveItem::Test::burst('/items',
                          [map { qq({"burst": "bouncer", "n": $_}) } 1 .. $N],
                          $Burst, 0);
    @Answers = SaveItem::Test::burst_results($Burst);
    %Pools = pools();
}

# setting made by one client must not reach another through the pooler:
# one transaction on each server connection at once
sub leaked_settings {
    my @kids;

    for (1 .. 4) {
        open my $fh, '-|', 'psql', '-X', '-q', '-A', '-t', '-h', '127.0.0.1',
             '-p', $ENV{TEST_NGINX_PGBOUNCER_PORT}, '-U', 'postgres',
             '-d', 'saveitem', '-c',
             'BEGIN; SELECT current_setting(\'statement_timeout\'),'
             . ' pg_sleep(0.3); COMMIT;'
            or die "cannot run psql: $!";
        push @kids, $fh;
    }

    my @got;

    for my $fh (@kids) {
        my $out = do { local $/; <$fh> } // '';
        close $fh;
        push @got, $out =~ /^([^|\n]*)\|/m ? $1 : "psql failed: $out";
    }

    return @got;
}

workers(4);
master_on();
worker_connections(1024);
no_shuffle();
# the block of two requests checks, after each, the log they made
check_accum_error_log();
run_tests();

my (%status, %keys, %want);
my $json = JSON::PP->new->canonical;

for my $a (@Answers) {
    my ($doc, $status, $body) = @$a;
    $status{$status}++;
    next unless $status eq '200' && $body =~ /^\{"pk": (\d+)\}$/;
    ok(!$keys{$1}, "key $1 given once") if $keys{$1};
    $keys{$1} = $json->encode($json->decode($doc));
}

is(scalar @Answers, $N, "$N clients answered");
is_deeply(\%status, {200 => $N}, 'every client of the burst got 200')
    or diag join ' ', map { "$_: $status{$_}" } sort keys %status;

my %rows = map { my ($id, $d) = split /\|/, $_, 2;
                 ($id => $json->encode($json->decode($d))) }
           split /\n/, psql(q{SELECT id, data FROM t10.items
                              WHERE data->>'burst' = 'bouncer'});

my @wrong = grep { ($rows{$_} // '') ne $keys{$_} } keys %keys;
is(scalar @wrong, 0, 'every key names the row of its own client\'s document')
    or diag "e.g. key $wrong[0]: got " . ($rows{$wrong[0]} // 'no row')
            . ", sent $keys{$wrong[0]}";
is(scalar keys %rows, $N, "$N rows, one per client");

my $servers = 0;
$servers += $Pools{$_} // 0 for qw(sv_active sv_idle sv_used sv_tested
                                   sv_login);
cmp_ok($servers, '<=', 4, "PgBouncer used at most 4 server connections");
cmp_ok($Pools{cl_active} // 0, '>', $servers,
       "... for more client connections from nginx ($Pools{cl_active})");

is(psql(q{SELECT count(*) FROM t10.items WHERE data ? 'bad'}), 0,
   'the statement cancelled by the query timeout left no row');

# mapped columns behind the pooler: keys from the document, a CHECK
my (%typed, %pk_of);

for my $r (SaveItem::Test::burst_results($Typed)) {
    my ($doc, $status, $body) = @$r;
    my ($n) = $doc =~ /"n": (\d+)/;
    $typed{$status}++;
    push @{ $pk_of{$n} }, $1 if $body =~ /^\{"pk": (\d+)\}$/;
}

is_deeply(\%typed, { 200 => 36, 422 => 4 },
          'mapped columns through PgBouncer: 36 stored or replayed, the 4 '
          . 'a CHECK refuses 422');
is(scalar(grep { @{ $pk_of{$_} } == 2 && $pk_of{$_}[0] == $pk_of{$_}[1] }
          keys %pk_of), 18, '... each key sent twice answered one row');
is(psql(q{SELECT count(*) FROM t10.typed WHERE ip = '127.0.0.1'
          AND ext IS NOT NULL}), 18,
   '... eighteen rows, with the client address');

is_deeply([leaked_settings()], [('0') x 4],
          'no server connection kept a statement_timeout for other clients');

__DATA__

=== TEST 1: a burst from 4 workers through 4 server connections: all stored, no prepared statement errors
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_PGBOUNCER_PORT dbname=saveitem user=postgres application_name=bouncer" pool=16 prepare=off;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem t10.items;
    }
--- init
main::run_burst();
--- request
POST /items
{"after": "burst"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
prepared statement
[error]
--- timeout: 10



=== TEST 2: saveitem_query_timeout through PgBouncer: 504, cancelled by the server, then the next one stored
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_PGBOUNCER_PORT dbname=saveitem user=postgres application_name=bouncer" pool=16 prepare=off;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    saveitem_query_timeout 1s;
    location = /items {
        saveitem t10.items;
    }
--- request eval
["POST /items\n{\"bad\": 1, \"sleep\": 3}", "POST /items\n{\"after\": \"timeout\"}"]
--- error_code eval
[504, 200]
--- response_body_like eval
[qr/^\{"error": "query_timeout", "message": "the statement took longer than the query timeout and was cancelled", "sqlstate": "57014"\}\n$/,
 qr/^\{"pk": \d+\}\n$/]
--- error_log
saveitem: PostgreSQL error 57014: canceling statement due to statement timeout
--- wait: 2.5
--- timeout: 4



=== TEST 3: mapped columns and keys from the document through PgBouncer
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_PGBOUNCER_PORT dbname=saveitem user=postgres application_name=bouncer" pool=16 prepare=off;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /typed {
        saveitem t10.typed column=off idempotency=ext;
        saveitem_field n;
        saveitem_field ext;
        saveitem_field v;
        saveitem_value ip $remote_addr;
    }
--- init
SaveItem::Test::burst('/typed',
                      [map { my $k = $_ % 20;
                             qq({"n": $k, "ext": "e$k", "v": )
                             . ($k == 3 || $k == 7 ? 500 : $k) . '}' } 1 .. 40],
                      $main::Typed, 0);
--- request
POST /typed
{"n": 0}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- wait: 2
--- no_error_log
prepared statement
