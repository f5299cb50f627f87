# expected: bails out in the second block; nginx must not be left running
use Test::Nginx::Socket 'no_plan';
no_shuffle();
run_tests();
__DATA__

=== TEST 1: fine
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok



=== TEST 2: init dies
--- config
    location = /t {
        return 200 "ok\n";
    }
--- init
die "selftest init failure\n";
--- request
GET /t
