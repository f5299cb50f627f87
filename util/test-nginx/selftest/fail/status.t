# expected: the status and the header checks fail
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: wrong status and headers
--- config
    location = /t {
        add_header X-Present yes always;
        add_header X-Gone here always;
        return 404;
    }
--- request
GET /t
--- response_headers
X-Present: no
! X-Gone
