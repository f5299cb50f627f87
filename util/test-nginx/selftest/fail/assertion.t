# expected: an "Assertion ... failed" line in error.log fails the block
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: assertion in the log
--- config
    location = /t {
        return 200 "ok\n";
    }
--- init
open my $out, '>>', "$ENV{TEST_NGINX_SERVER_ROOT}/logs/error.log" or die $!;
print $out "nginx: src/foo.c:1: bar: Assertion `x != NULL' failed.\n";
close $out;
--- request
GET /t
--- response_body
ok
