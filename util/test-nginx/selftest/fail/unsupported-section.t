# expected: dies on a section of the real framework this runner lacks
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: tcp_listen
--- config
    location = /t {
        return 200 "ok\n";
    }
--- tcp_listen: 12345
--- tcp_reply: hello
--- request
GET /t
