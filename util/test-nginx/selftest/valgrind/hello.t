# Run by ../valgrind.t under TEST_NGINX_USE_VALGRIND=1.
use Test::Nginx::Socket 'no_plan';
no_shuffle();
run_tests();
__DATA__

=== TEST 1: hello under valgrind
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
hello
--- no_error_log
[error]



=== TEST 2: a block of its own: its own nginx
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
hello
