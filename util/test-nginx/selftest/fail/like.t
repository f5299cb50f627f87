# expected: response_body_like and error_code_like fail
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: a multi-line like keeps its final newline
--- config
    location = /t {
        return 200 "hello";
    }
--- request
GET /t
--- error_code_like: ^5
--- response_body_like
^hello$
