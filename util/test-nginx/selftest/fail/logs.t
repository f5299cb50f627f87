# expected: error_log, no_error_log and grep_error_log_out fail
use Test::Nginx::Socket 'no_plan';
run_tests();
__DATA__

=== TEST 1: log checks
--- config
    location /missing {
        root $TEST_NGINX_SERVER_ROOT/html;
    }
--- request
GET /missing/file
--- error_code: 404
--- error_log
this line is not in the log
--- no_error_log
No such file or directory
--- grep_error_log eval
qr/open\(\) "[^"]+" failed/
--- grep_error_log_out
something else
