# A host name that moves: with nginx's resolver, the name is resolved at
# each connect (honouring valid=), so when the database moves to another
# address the module follows it within seconds, without a reload.  dnsmasq
# serves the name from a hosts file on a loopback port of its own; two
# clusters listen on 127.0.0.2 and 127.0.0.3, on the same port.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();
use SaveItem::Test;

our $Util = "$FindBin::Bin/../util";
our $Main = $$;
our $Dir = "/tmp/saveitem-t15-$$";
our %Addr = (a => '127.0.0.2', b => '127.0.0.3');
our ($Dns, $Moved, $OnA, $Slow);

$ENV{TEST_NGINX_DNS_PORT} //= 15353;
$ENV{TEST_NGINX_DNS_PG_PORT} //= 15541;

sub cluster_env {
    my ($name) = @_;

    return ("SAVEITEM_PG_PORT=$ENV{TEST_NGINX_DNS_PG_PORT}",
            "SAVEITEM_PG_DIR=$Dir/pg-$name",
            "SAVEITEM_PG_LISTEN=$Addr{$name}", 'SAVEITEM_PG_FSYNC=off');
}

sub cluster {
    my ($name, @args) = @_;

    system('env', cluster_env($name), "$Util/pg.sh", @args) == 0
        or die "pg.sh @args for cluster $name failed";
}

sub cluster_psql {
    my ($name, $sql) = @_;

    open my $fh, '-|', 'env', cluster_env($name), "$Util/pg.sh", 'psql',
                       '-X', '-q', '-tA', '-c', $sql
        or die "psql: $!";
    my $out = do { local $/; <$fh> } // '';
    close $fh;
    $out =~ s/\s+\z//;

    return $out;
}

# the name now points to $addr; dnsmasq rereads its hosts file on SIGHUP
sub name_to {
    my ($addr) = @_;

    open my $fh, '>', "$Dir/hosts" or die "$Dir/hosts: $!";
    print $fh "$addr db.saveitem.test\n";
    close $fh;

    kill 'HUP', $Dns if $Dns;
}

END {
    if ($$ == $Main) {
        kill 'TERM', $Dns if $Dns;
        waitpid($Dns, 0) if $Dns;
        kill 'TERM', $Slow if $Slow;
        waitpid($Slow, 0) if $Slow;
        cluster($_, 'stop') for grep { -d "$Dir/pg-$_" } keys %Addr;
        system('rm', '-rf', $Dir);
    }
}

mkdir $Dir, 0755 or die "mkdir $Dir: $!";
cluster($_, 'start') for sort keys %Addr;
name_to($Addr{a});

$Dns = fork() // die "fork: $!";

if ($Dns == 0) {
    exec('dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null',
         '--no-resolv', '--no-hosts', "--addn-hosts=$Dir/hosts",
         '--listen-address=127.0.0.1', '--bind-interfaces',
         "--port=$ENV{TEST_NGINX_DNS_PORT}", '--local-ttl=1',
         '--user=root', '--pid-file=', "--log-facility=$Dir/dnsmasq.log")
        or POSIX::_exit(127);
}

Time::HiRes::sleep(0.3);
die "dnsmasq did not start: see $Dir/dnsmasq.log" if waitpid($Dns, 1) == $Dns;

# a resolver that answers after 100 ms (dnsmasq's answers, held back): a
# look-up whose timer has expired already loses to it every time
{
    my $sock = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1',
                                     LocalPort => 0)
        or die "slow resolver: $!";

    $ENV{TEST_NGINX_DNS_SLOW_PORT} = $sock->sockport;

    $Slow = fork() // die "fork: $!";

    if ($Slow == 0) {
        # not the test's: its handlers would bail the whole run out
        $SIG{$_} = sub { POSIX::_exit(0) } for qw(INT TERM HUP);

        my $up = IO::Socket::INET->new(Proto => 'udp',
                                       PeerAddr => '127.0.0.1',
                                       PeerPort => $ENV{TEST_NGINX_DNS_PORT})
            or POSIX::_exit(1);
        my $sel = IO::Select->new($up);

        for ( ;; ) {
            my $from = $sock->recv(my $query, 4096) // next;
            Time::HiRes::sleep(0.1);
            $up->send($query);
            next unless $sel->can_read(1);
            $up->recv(my $answer, 4096);
            $sock->send($answer, 0, $from);
        }
    }
}

# the database moves while nginx runs: the old server stops, the name
# points to the new one; how long until a request is stored again
sub move {
    # under valgrind --- init runs before nginx listens
    SaveItem::Test::wait_nginx();

    my ($status, $body) = SaveItem::Test::post('/items', '{"dns": "a"}');
    die "before the move: $status $body" unless $status eq '200';

    $OnA = cluster_psql('a', q{SELECT count(*) FROM items
                                WHERE data->>'dns' = 'a'});

    cluster('a', 'stop');
    name_to($Addr{b});

    my $start = Time::HiRes::time();

    for my $i (1 .. 100) {
        ($status) = SaveItem::Test::post('/items', qq({"dns": "moving"}));
        last if $status eq '200';
        Time::HiRes::sleep(0.1);
    }

    $Moved = Time::HiRes::time() - $start;
}

run_tests();

is($OnA, 1, 'before the move, the request was a row on the first server');
ok(defined $Moved, 'the name was moved');
cmp_ok($Moved // 99, '<=', 5, sprintf('stored again %.2f s after the move, '
                                      . 'without a reload', $Moved // 99));
is(cluster_psql('b', q{SELECT count(*) FROM items WHERE data->>'dns' = 'b'}),
   1, 'the request after the move is a row on the new server');

__DATA__

=== TEST 1: the name moves to another server: followed within seconds
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_DNS_PORT valid=1s ipv6=off;
    resolver_timeout 1s;
    saveitem_database "host=db.saveitem.test port=$TEST_NGINX_DNS_PG_PORT dbname=saveitem user=postgres connect_timeout=2";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem items;
    }
--- init
main::move();
--- request
POST /items
{"dns": "b"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- timeout: 5



=== TEST 2: the first request after a start, no resolver_timeout given: stored
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_DNS_SLOW_PORT valid=1s ipv6=off;
    saveitem_database "host=db.saveitem.test port=$TEST_NGINX_DNS_PG_PORT dbname=saveitem user=postgres connect_timeout=2";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"first": 1}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
could not be resolved
--- timeout: 5



=== TEST 3: ... again, after another start
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_DNS_SLOW_PORT valid=1s ipv6=off;
    saveitem_database "host=db.saveitem.test port=$TEST_NGINX_DNS_PG_PORT dbname=saveitem user=postgres connect_timeout=2";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"first": 2}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
could not be resolved
--- timeout: 5
