# TLS to PostgreSQL: sslmode=require and verify-full against a server whose
# certificate the test made with openssl (util/tls.sh: its own CA, a cluster
# that refuses TCP without TLS); the wrong CA and the wrong name refused with
# the reason logged; a server that stalls the handshake bounded by
# connect_timeout.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use POSIX ();
use SaveItem::Test;

our $Tls = "$FindBin::Bin/../util/tls.sh";
our $Parent = $$;
our $Stall;

# the cluster with ssl=on, stopped at the end whatever happens (util/tls.sh
# stop removes its directory, the keys with it)
system('bash', $Tls, 'start') == 0 or die "util/tls.sh start failed\n";

END {
    if (defined $Parent && $$ == $Parent) {
        if ($Stall) {
            kill 'TERM', $Stall;
            waitpid($Stall, 0);
        }

        system('bash', $Tls, 'stop');
    }
}

our %Tls = map { chomp; split /=/, $_, 2 } `bash $Tls env`;

$ENV{TEST_NGINX_TLS_PORT} = $Tls{SAVEITEM_TLS_PORT};
$ENV{TEST_NGINX_TLS_CA} = $Tls{SAVEITEM_TLS_CA};
$ENV{TEST_NGINX_TLS_OTHER_CA} = $Tls{SAVEITEM_TLS_OTHER_CA};

# a server that answers the SSLRequest with 'S' (go ahead with TLS), then
# says nothing more: the client's handshake waits
my $listen = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                   LocalPort => 0, ReuseAddr => 1)
    or die "cannot listen: $!";
$ENV{TEST_NGINX_STALL_PORT} = $listen->sockport;

$Stall = fork() // die "fork: $!";

if ($Stall == 0) {
    my @held;

    # not the test's handlers: a TERM ends the listener quietly
    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP QUIT);

    while (my $c = $listen->accept) {
        my $req = '';
        $c->sysread($req, 8);
        # SSLRequest: length 8, code 80877103
        $c->syswrite('S') if $req eq pack('NN', 8, 80877103);
        push @held, $c;
    }

    POSIX::_exit(0);
}

close $listen;

sub tls_psql {
    local $ENV{TEST_NGINX_PG_SOCKET} = $Tls{SAVEITEM_TLS_SOCKET};
    local $ENV{TEST_NGINX_PG_PORT} = $Tls{SAVEITEM_TLS_PORT};
    local $ENV{TEST_NGINX_PG_DB} = 'saveitem';

    return psql(shift);
}

our $tcp = 'port=$TEST_NGINX_TLS_PORT dbname=saveitem user=postgres';

no_shuffle();
run_tests();

is(tls_psql(q{SELECT count(*) FROM items WHERE data ? 'bad'}), 0,
   'nothing was stored over a connection that failed');
cmp_ok(tls_psql(q{SELECT count(*) FROM items WHERE data ? 'tls'}), '>=', 3,
       'the documents that got a key were stored over TLS');

__DATA__

=== TEST 1: sslmode=require: 200
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_TLS_PORT dbname=saveitem user=postgres sslmode=require";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"tls": "require"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 2: ... and that server refuses TCP without TLS, so the 200 went over TLS
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_TLS_PORT dbname=saveitem user=postgres sslmode=disable";
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"bad": "disable"}
--- error_code: 503
--- response_body_like: "error": "database_unavailable"
--- error_log
pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "saveitem", no encryption



=== TEST 3: sslmode=verify-full, the CA that signed the server's certificate, host=localhost: 200
--- http_config
    saveitem_database "host=localhost port=$TEST_NGINX_TLS_PORT dbname=saveitem user=postgres sslmode=verify-full sslrootcert=$TEST_NGINX_TLS_CA";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"tls": "verify-full host"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 4: verify-full with hostaddr=127.0.0.1 host=localhost: 200
--- http_config
    saveitem_database "hostaddr=127.0.0.1 host=localhost port=$TEST_NGINX_TLS_PORT dbname=saveitem user=postgres sslmode=verify-full sslrootcert=$TEST_NGINX_TLS_CA";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"tls": "verify-full hostaddr"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 5: verify-full with another CA: 503, "certificate verify failed" logged
--- http_config
    saveitem_database "host=localhost port=$TEST_NGINX_TLS_PORT dbname=saveitem user=postgres sslmode=verify-full sslrootcert=$TEST_NGINX_TLS_OTHER_CA";
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"bad": "other CA"}
--- error_code: 503
--- response_headers_like
Retry-After: \d+
--- response_body
{"error": "database_unavailable", "message": "the database is not reachable"}
--- error_log eval
qr/\[error\] .*saveitem: could not connect to PostgreSQL \(.*host=localhost.*\): .*certificate verify failed/



=== TEST 6: verify-full checks the name too: the right CA, another host name: 503
--- http_config
    saveitem_database "hostaddr=127.0.0.1 host=db.invalid port=$TEST_NGINX_TLS_PORT dbname=saveitem user=postgres sslmode=verify-full sslrootcert=$TEST_NGINX_TLS_CA";
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"bad": "other name"}
--- error_code: 503
--- response_body_like: "error": "database_unavailable"
--- error_log
server certificate for "localhost" (and 1 other name) does not match host name "db.invalid"



=== TEST 7: a server that stalls the TLS handshake: connect_timeout bounds the wait
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_STALL_PORT dbname=saveitem user=postgres sslmode=require connect_timeout=2";
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"bad": "stall"}
--- error_code: 503
--- response_body_like: "error": "database_unavailable"
--- error_log
could not connect to PostgreSQL (user=postgres dbname=saveitem hostaddr=127.0.0.1
: timed out
--- timeout: 4
