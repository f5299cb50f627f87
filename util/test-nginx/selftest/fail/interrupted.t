# expected: killed (SIGTERM) by ../t/900-failures.t while waiting: bails out
# and stops its nginx
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: slow
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- wait: 10
