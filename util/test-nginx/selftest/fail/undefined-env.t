# expected: bails out on an undefined $TEST_NGINX_ variable
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: undefined variable
--- config
    location = /t {
        return 200 "$TEST_NGINX_SELFTEST_UNDEFINED\n";
    }
--- request
GET /t
