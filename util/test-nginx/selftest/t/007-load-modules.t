# Self-test of the lite Test::Nginx::Socket: TEST_NGINX_LOAD_MODULES becomes
# load_module lines (here of modules that do not exist, so nginx must die).

BEGIN {
    $ENV{TEST_NGINX_LOAD_MODULES} = '/nonexistent/ngx_a.so '
                                    . '/nonexistent/ngx_b.so';
}

use Test::Nginx::Socket 'no_plan';

run_tests();

__DATA__

=== TEST 1: the first module is loaded first
--- config
    location = /t {
        return 200 "ok\n";
    }
--- must_die
--- error_log
dlopen() "/nonexistent/ngx_a.so" failed
[emerg]
