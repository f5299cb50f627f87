# expected: dies on the misspelt section before running anything
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: typo
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- respones_body
ok
