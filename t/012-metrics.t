# saveitem_status: Prometheus' text format, counters summed exactly over
# two workers, kept over a reload, the slot of a worker that exits or dies
# given back; promtool accepts the output and the rules of conf/prometheus/,
# and a real Prometheus scrapes it.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;
use HTTP::Tiny;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t12 CASCADE;
CREATE SCHEMA t12;
CREATE TABLE t12.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
CREATE TABLE t12.uniq (id bigserial PRIMARY KEY, data jsonb NOT NULL UNIQUE);
_SQL_

my $Root = "$FindBin::Bin/..";

# a loopback port of its own for Prometheus: SAVEITEM_PROMETHEUS_PORT, or
# a free one from the kernel (util/ports)
if ($ENV{SAVEITEM_PROMETHEUS_PORT}) {
    $ENV{TEST_NGINX_PROM_PORT} = $ENV{SAVEITEM_PROMETHEUS_PORT};

} else {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "cannot listen: $!";
    $ENV{TEST_NGINX_PROM_PORT} = $s->sockport;
    close $s;
}

our $PromDir = "/tmp/saveitem-t-prometheus-$$";
our $PromPid;

# the module's own metrics, as nginx serves them now
sub metrics {
    my $res = HTTP::Tiny->new(timeout => 5)
        ->get('http://127.0.0.1:' . server_port() . '/metrics');
    return $res->{success} ? $res->{content} : '';
}

# the answers of TEST 1, from an --- init: 200, 200, 400, 405, 200, 409
sub answers {
    my ($tag) = @_;

    SaveItem::Test::wait_nginx();

    my $http = HTTP::Tiny->new(timeout => 5);
    my $url = 'http://127.0.0.1:' . server_port();
    my $json = { headers => { 'Content-Type' => 'application/json' } };

    my @got = map { $_->{status} }
        $http->post("$url/items", { %$json, content => '{"m": 1}' }),
        $http->post("$url/items", { %$json, content => '{"m": 2}' }),
        $http->post("$url/items", { %$json, content => '{"m": ' }),
        $http->get("$url/items"),
        $http->post("$url/uniq", { %$json, content => qq({"u": "$tag"}) }),
        $http->post("$url/uniq", { %$json, content => qq({"u": "$tag"}) });

    die "answers: @got" unless "@got" eq '200 200 400 405 200 409';
}

# the value of one sample of metrics(), undef when absent
sub sample {
    my ($text, $re) = @_;
    return $text =~ /^$re (\d+(?:\.\d+)?)$/m ? $1 : undef;
}

# waits up to $secs for $cond to hold
sub wait_for {
    my ($secs, $cond) = @_;
    my $until = Time::HiRes::time() + $secs;

    while (Time::HiRes::time() < $until) {
        return 1 if $cond->();
        Time::HiRes::sleep(0.1);
    }

    return 0;
}

sub nginx_master {
    open my $fh, '<', server_root() . '/logs/nginx.pid' or die "no pid: $!";
    my $pid = <$fh>;
    chomp $pid;
    return $pid;
}

sub nginx_workers {
    my $master = nginx_master();
    my @pids = grep { /^\d+$/ } map { s/\s+//gr } `ps -o pid= --ppid $master`;
    return @pids;
}

sub start_prometheus {
    mkdir $PromDir or die "cannot mkdir $PromDir: $!";

    open my $fh, '>', "$PromDir/prometheus.yml" or die $!;
    print $fh <<"_YML_";
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $Root/conf/prometheus/saveitem-alerts.yml
scrape_configs:
  - job_name: saveitem
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:@{[server_port()]}']
_YML_
    close $fh;

    $PromPid = fork() // die "fork: $!";

    if ($PromPid == 0) {
        open STDOUT, '>', "$PromDir/prometheus.log";
        open STDERR, '>&', \*STDOUT;
        exec 'prometheus', "--config.file=$PromDir/prometheus.yml",
             "--storage.tsdb.path=$PromDir/data",
             "--web.listen-address=127.0.0.1:$ENV{TEST_NGINX_PROM_PORT}";
        POSIX::_exit(127);
    }
}

sub prom_get {
    my ($path) = @_;
    my $res = HTTP::Tiny->new(timeout => 2)
        ->get("http://127.0.0.1:$ENV{TEST_NGINX_PROM_PORT}$path");
    return $res->{success} ? $res->{content} : '';
}

# the value of an instant query, from Prometheus' HTTP API
sub prom_query {
    my ($query) = @_;
    my $q = HTTP::Tiny->new->www_form_urlencode({query => $query});
    return prom_get("/api/v1/query?$q") =~ /"value":\[[\d.]+,"([^"]+)"\]/
           ? $1 : undef;
}

END {
    if ($PromPid) {
        kill 'TERM', $PromPid;
        waitpid($PromPid, 0);
        system('cat', "$PromDir/prometheus.log") if $? != 0;
    }

    system('rm', '-rf', $PromDir) if -d $PromDir;
}

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    location = /items {
        saveitem t12.items;
    }

    location = /uniq {
        saveitem t12.uniq;
    }

    location = /metrics {
        saveitem_status;
    }
_EOC_

# Debian's nginx, uninstrumented, with the ASan runtime preloaded reports
# a global-buffer-overflow in its own ngx_cycle_modules() when a master
# reloads, and this file needs a master (util/memcheck asan): the metrics
# code runs under ASan through every other file, and under valgrind here
if (($ENV{TEST_NGINX_BINARY} // '') =~ /asan/) {
    Test::More::pass('skipped: a master process under ASan');
    exit 0;
}

master_on();
workers(2);
no_shuffle();

# the example configuration and the alert rules
for my $cmd (['promtool', 'check', 'rules',
              "$Root/conf/prometheus/saveitem-alerts.yml"],
             ['promtool', 'check', 'config',
              "$Root/conf/prometheus/prometheus.yml"])
{
    is(system("@$cmd >/dev/null 2>&1") >> 8, 0, "@$cmd");
}

run_tests();

__DATA__

=== TEST 1: answers of every kind, counted
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n{\"m\": 1}", "POST /items\n{\"m\": 2}", "POST /items\n{\"m\": ",
 "GET /items", "POST /uniq\n{\"u\": 1}", "POST /uniq\n{\"u\": 1}"]
--- error_code eval
[200, 200, 400, 405, 200, 409]
--- no_error_log
[error]



=== TEST 2: the text format, summed over the workers
--- http_config eval: $::http_config
--- config eval: $::config
--- init
main::answers('text');
--- request
GET /metrics
--- response_headers
Content-Type: text/plain; version=0.0.4; charset=utf-8
--- response_body_like eval
[
qr/^# HELP saveitem_requests_total .+\n# TYPE saveitem_requests_total counter\n/s,
qr/^saveitem_requests_total\{database="user=postgres dbname=saveitem host=[^"]+ port=\d+",code="200"\} 3$/m,
qr/^saveitem_requests_total\{database="[^"]+",code="400"\} 1$/m,
qr/^saveitem_requests_total\{database="[^"]+",code="405"\} 1$/m,
qr/^saveitem_requests_total\{database="[^"]+",code="409"\} 1$/m,
qr/^saveitem_rows_total\{database="[^"]+"\} 3$/m,
qr/^saveitem_statements_total\{database="[^"]+"\} 4$/m,
qr/^saveitem_statement_rows_bucket\{database="[^"]+",le="1"\} 4$/m,
qr/^saveitem_statement_rows_bucket\{database="[^"]+",le="\+Inf"\} 4$/m,
qr/^saveitem_statement_rows_sum\{database="[^"]+"\} 4$/m,
qr/^saveitem_statement_rows_count\{database="[^"]+"\} 4$/m,
qr/^saveitem_statement_seconds_bucket\{database="[^"]+",le="\+Inf"\} 4$/m,
qr/^saveitem_statement_seconds_sum\{database="[^"]+"\} \d+\.\d{3}$/m,
qr/^saveitem_statement_seconds_count\{database="[^"]+"\} 4$/m,
qr/^saveitem_errors_total\{database="[^"]+",sqlstate_class="23"\} 1$/m,
qr/^saveitem_connect_failures_total\{database="[^"]+"\} 0$/m,
qr/^saveitem_waiting\{database="[^"]+"\} 0$/m,
qr/^saveitem_queue_size\{database="[^"]+"\} 512$/m,
qr/^saveitem_pool_size\{database="[^"]+"\} 16$/m,
qr/^saveitem_connections\{database="[^"]+",state="busy"\} 0$/m,
qr/^saveitem_connections\{database="[^"]+",state="connecting"\} 0$/m,
qr/^saveitem_connections\{database="[^"]+",state="idle"\} [12]$/m,
]
--- no_error_log
[error]



=== TEST 3: promtool check metrics accepts it
--- http_config eval: $::http_config
--- config eval: $::config
--- init
main::answers('promtool');
open my $p, '|-', 'promtool check metrics >/tmp/saveitem-t-promtool.out 2>&1'
    or die "promtool: $!";
print $p main::metrics();
close $p;
Test::More::is($? >> 8, 0, 'promtool check metrics: '
               . `cat /tmp/saveitem-t-promtool.out`);
unlink '/tmp/saveitem-t-promtool.out';
--- request
GET /metrics
--- response_body_like: ^# HELP



=== TEST 4: a reload keeps the counters; the old workers' slots are freed
--- http_config eval: $::http_config
--- config eval: $::config
--- init
main::answers('reload');
main::wait_for(10, sub { main::nginx_workers() == 2 });
kill 'HUP', main::nginx_master() or die "HUP: $!";
# the gauges of the old workers are gone once they have exited
main::wait_for(10, sub {
    my $m = main::metrics();
    my $q = main::sample($m, qr/saveitem_queue_size\{database="[^"]+"\}/);
    return defined $q && $q == 512
           && `grep -c 'gracefully shutting down' @{[server_root()]}/logs/error.log` >= 2;
});
--- request
GET /metrics
--- response_body_like eval
[
qr/^saveitem_requests_total\{database="[^"]+",code="200"\} 3$/m,
qr/^saveitem_rows_total\{database="[^"]+"\} 3$/m,
qr/^saveitem_queue_size\{database="[^"]+"\} 512$/m,
]
--- error_log
reconfiguring
gracefully shutting down



=== TEST 5: a worker that dies: its slot goes to the next one
--- http_config eval: $::http_config
--- config eval: $::config
--- init
main::answers('dies');
main::wait_for(10, sub { main::nginx_workers() == 2 });
my @w = main::nginx_workers();
die "no workers" unless @w;
kill 'KILL', $w[0];
main::wait_for(10, sub {
    my @now = main::nginx_workers();
    return @now == 2 && !grep { $_ == $w[0] } @now;
});
# the next worker to start writes its gauges within a tick
Time::HiRes::sleep(0.5);
--- request
GET /metrics
--- response_body_like eval
[
qr/^saveitem_queue_size\{database="[^"]+"\} 512$/m,
qr/^saveitem_pool_size\{database="[^"]+"\} 16$/m,
qr/^saveitem_rows_total\{database="[^"]+"\} 3$/m,
]



=== TEST 6: two databases, one down: told apart by a label without secrets
--- http_config
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem_database "$TEST_NGINX_DB";
        saveitem t12.items;
    }

    location = /down {
        saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_DEAD_PORT dbname=x user=u password=sekret";
        saveitem t12.items;
    }

    location = /other {
        saveitem_database "$TEST_NGINX_DB application_name=t12";
        saveitem t12.items;
    }

    location = /metrics {
        saveitem_status;
    }
--- request eval
["POST /items\n{\"m\": 6}", "POST /down\n{\"m\": 6}",
 "POST /other\n{\"m\": 6}", "GET /metrics"]
--- error_code eval
[200, 503, 200, 200]
--- response_body_like eval
[qr/pk/, qr/database_unavailable/, qr/pk/,
qr/^saveitem_requests_total\{database="user=u dbname=x hostaddr=127\.0\.0\.1 port=\d+",code="503"\} 1\nsaveitem_requests_total\{database="user=postgres dbname=saveitem [^"#]+ #2",code="200"\} 1\n(?:.*\n)*saveitem_rows_total\{database="user=postgres dbname=saveitem [^"#]+"\} 1\nsaveitem_rows_total\{database="user=u dbname=x hostaddr=127\.0\.0\.1 port=\d+"\} 0\nsaveitem_rows_total\{database="user=postgres dbname=saveitem [^"#]+ #2"\} 1\n(?:.*\n)*saveitem_connect_failures_total\{database="user=postgres [^"#]+"\} 0\nsaveitem_connect_failures_total\{database="user=u dbname=x hostaddr=127\.0\.0\.1 port=\d+"\} 1\n/m]
--- response_body_unlike eval
[qr/sekret/, qr/sekret/, qr/sekret/, qr/sekret|application_name/]



=== TEST 7: a real Prometheus scrapes it: the series through its HTTP API
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::store_ok('/items', qq({"prometheus": $_}), "POST $_ stored")
    for 1 .. 3;
main::start_prometheus();
main::wait_for(30, sub {
    (main::prom_query('sum(saveitem_rows_total)') // '') eq '3'
});
Test::More::is(main::prom_query('sum(saveitem_rows_total)'), '3',
               'Prometheus scraped saveitem_rows_total');
Test::More::is(main::prom_query('sum(saveitem_requests_total{code="200"})'),
               '3', '... and saveitem_requests_total{code="200"}');
Test::More::is(main::prom_query('count(saveitem_statement_seconds_bucket)'),
               '14', '... and the buckets of saveitem_statement_seconds');
Test::More::like(main::prom_get('/api/v1/rules'),
                 qr/"SaveitemQueueNearlyFull".*"SaveitemServerErrors"/s,
                 '... and loaded the alert rules of conf/prometheus/');
--- request
GET /metrics
--- response_body_like: (?m)^saveitem_rows_total\{database="[^"]+"\} 3$



=== TEST 8: only GET and HEAD: a JSON 405 with Allow, the body of a POST read away
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /metrics
{"a": 1}
--- error_code: 405
--- response_headers
Allow: GET, HEAD
Content-Type: application/json
--- response_body
{"error": "method_not_allowed", "message": "only GET and HEAD are allowed"}
--- error_log
saveitem: method POST is not allowed
