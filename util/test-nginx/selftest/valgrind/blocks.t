# Run by ../valgrind.t under TEST_NGINX_USE_VALGRIND=1: TEST 1 passes,
# TEST 2 (no --- config) must fail: nginx was stopped at the end of TEST 1.
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET ();
no_shuffle();
run_tests();
__DATA__

=== TEST 1: --- init runs before nginx listens
--- config
    location = /t {
        return 200 "hello\n";
    }
--- init
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_PORT});
print STDERR "selftest init: nginx ",
             ($s ? "listens" : "does not listen yet"), "\n";
--- request
GET /t
--- response_body
hello



=== TEST 2: no --- config: no nginx
--- request
GET /t
--- response_body
hello
