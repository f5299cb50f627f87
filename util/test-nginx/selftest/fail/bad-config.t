# expected: bails out, nginx cannot start
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: bad directive
--- config
    location = /t {
        no_such_directive;
    }
--- request
GET /t
