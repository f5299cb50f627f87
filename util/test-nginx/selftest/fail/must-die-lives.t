# expected: must_die fails because nginx starts fine
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: nginx does not die
--- config
    location = /t {
        return 200 "ok\n";
    }
--- must_die
