# Self-test of the lite Test::Nginx::Socket: error.log checks, repeat_each,
# per-request log windows, log_level, access_log, must_die, skips.

use Test::Nginx::Socket 'no_plan';

repeat_each(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: error_log and no_error_log, plain and eval
--- config
    location /missing {
        root $TEST_NGINX_SERVER_ROOT/html;
    }
--- request
GET /missing/file
--- error_code: 404
--- error_log
No such file or directory
open()
--- no_error_log eval
["[alert]", qr/\[crit\]/]



=== TEST 2: the log window is per request: each repeat sees its own line once
--- config
    location /missing {
        root $TEST_NGINX_SERVER_ROOT/html;
    }
--- request
GET /missing/again
--- error_code: 404
--- grep_error_log eval
qr/open\(\) "[^"]+" failed/
--- grep_error_log_out
open() "$TEST_NGINX_SERVER_ROOT/html/missing/again" failed



=== TEST 3: in a multi-request block the log is checked after each request
--- config
    location /missing {
        root $TEST_NGINX_SERVER_ROOT/html;
    }
--- request eval
["GET /missing/same", "GET /missing/same"]
--- error_code eval
[404, 404]
--- response_body_like eval
["404 Not Found", "404 Not Found"]
--- error_log
No such file or directory
--- grep_error_log eval
qr/open\(\) "[^"]+" failed/
--- grep_error_log_out
open() "$TEST_NGINX_SERVER_ROOT/html/missing/same" failed



=== TEST 4: log_level
--- config
    location = /t {
        return 200 "ok\n";
    }
--- log_level: warn
--- request
GET /t
--- no_error_log
[debug]
[info]
--- skip_eval
3: $ENV{TEST_NGINX_USE_HUP}



=== TEST 5: the default log level is debug
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- error_log
[debug]
http request line: "GET /t HTTP/1.1"



=== TEST 6: access_log and no_access_log
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t?from=access
--- access_log
GET /t?from=access HTTP/1.1
--- no_access_log
GET /elsewhere



=== TEST 7: must_die, with the error log checked
--- config
    location = /t {
        no_such_directive on;
    }
--- must_die
--- error_log
unknown directive "no_such_directive"
[emerg]
--- no_error_log
[error]



=== TEST 8: must_die with the exit code
--- config
    location = /t {
        return 200;
    }
--- main_config
    no_such_main_directive;
--- must_die: 1
--- error_log eval
[qr/unknown directive "no_such_main_directive"/, "[emerg]"]



=== TEST 9: skip_nginx: skipped (3 tests a round)
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- response_body
never checked
--- skip_nginx
3: > 1.0.0



=== TEST 10: skip_nginx: not skipped
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- response_body
ok
--- skip_nginx
2: < 1.0.0



=== TEST 11: todo
--- config
    location = /t {
        return 500;
    }
--- request
GET /t
--- todo
2: not there yet



=== TEST 12: init runs once before the requests, in package main
--- config
    location = /t {
        return 200 "ok\n";
    }
--- init
$main::init_runs++;
Test::More::is($main::init_runs, 1, "$name - init ran once");
--- request
GET /t
--- response_body
ok



=== TEST 13: wait
--- config
    location = /t {
        return 200 "ok\n";
    }
--- request
GET /t
--- wait: 0.1
--- response_body
ok
--- no_error_log
[error]
