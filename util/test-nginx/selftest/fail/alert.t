# expected: passes, with a warning about the [alert] line
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: alert in the log
--- config
    location = /t {
        return 200 "ok\n";
    }
--- init
open my $out, '>>', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/error.log" or die $!;
print $out "2024/01/01 00:00:00 [alert] 1#1: selftest alert\n";
close $out;
--- request
GET /t
--- response_body
ok
