# expected: a broken chunked response fails
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: "chunked" with a plain body
--- config
    location = /t {
        add_header Transfer-Encoding chunked;
        return 200 "x";
    }
--- raw_request eval
"GET /t HTTP/1.0\r\n\r\n"
--- response_body
x
