# expected: the client times out (no --- abort)
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: incomplete request, nginx waits
--- config
    location = /t {
        return 200 "never";
    }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\n"
--- timeout: 200ms
--- ignore_response
