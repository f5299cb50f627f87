# expected: the plan does not match the tests run
use Test::Nginx::Socket;
plan tests => 3;
run_tests();
__DATA__

=== TEST 1: two tests, not three
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
