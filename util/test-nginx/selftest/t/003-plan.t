# Self-test of the lite Test::Nginx::Socket: an exact plan, repeat_each,
# --- SKIP and --- LAST, shuffled order (no no_shuffle() here).

use Test::Nginx::Socket;

repeat_each(3);

plan tests => repeat_each() * 2 * blocks();

run_tests();

__DATA__

=== TEST 1: one
--- config
    location = /t {
        return 200 "one\n";
    }
--- request
GET /t
--- response_body
one



=== TEST 2: skipped
--- SKIP
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- response_body
never



=== TEST 3: two
--- config
    location = /t {
        return 200 "two\n";
    }
--- request
GET /t
--- response_body
two



=== TEST 4: last
--- LAST
--- config
    location = /t {
        return 200 "last\n";
    }
--- request
GET /t
--- response_body
last



=== TEST 5: after the last one: never run
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- response_body
never
