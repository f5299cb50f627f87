# Self-test of the lite Test::Nginx::Socket: --- ONLY.

use Test::Nginx::Socket;

plan tests => 2;

run_tests();

__DATA__

=== TEST 1: not this one
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- response_body
never



=== TEST 2: only this one
--- ONLY
--- config
    location = /t {
        return 200 "only\n";
    }
--- request
GET /t
--- response_body
only



=== TEST 3: not this one either
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- response_body
never
