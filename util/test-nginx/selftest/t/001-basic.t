# Self-test of the lite Test::Nginx::Socket: requests, responses, headers.
# Only stock nginx features; run by ../run.sh.

use Test::Nginx::Socket 'no_plan';

$ENV{TEST_NGINX_GREETING} = 'hiya';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: plain response, default request line, default status 200
--- config
    location = / {
        return 200 "root\n";
    }
--- request
GET
--- response_body
root
--- no_error_log
[error]



=== TEST 2: a block without --- config reuses the running nginx
--- request
    GET /
--- response_body eval
"root\n"
--- error_code: 200



=== TEST 3: Host and Connection are sent by default
--- config
    location = /t {
        return 200 "$http_host|$http_connection|$server_protocol\n";
    }
--- request
GET /t
--- response_body
localhost|close|HTTP/1.1



=== TEST 4: more_headers, HTTP/1.0, comment lines before the request line
--- config
    location = /t {
        return 200 "$http_host|$http_x_foo|$server_protocol\n";
    }
--- more_headers
# a comment
Host: example.com
X-Foo: bar
--- request
# comment
# another

GET /t HTTP/1.0
--- response_body
example.com|bar|HTTP/1.0



=== TEST 5: Content-Length is computed on the body trimmed of whitespace
--- config
    location = /t {
        return 200 "cl=$http_content_length te=$http_transfer_encoding\n";
    }
--- request
POST /t
   hello world   
--- response_body
cl=11 te=



=== TEST 6: the body really is trimmed (dav PUT stores it), JSON body
--- config
    location /dav/ {
        root $TEST_NGINX_SERVER_ROOT/html;
        dav_methods PUT;
        create_full_put_path on;
    }
--- request eval
["PUT /dav/a.json\n{\"a\":1}\n", "GET /dav/a.json"]
--- error_code eval
[201, 200]
--- response_body eval
["", "{\"a\":1}"]
--- response_headers eval
["", "Content-Length: 7"]



=== TEST 7: more_headers Content-Length: the body is sent as is
--- config
    location /dav/ {
        root $TEST_NGINX_SERVER_ROOT/html;
        dav_methods PUT;
        create_full_put_path on;
    }
--- more_headers eval
["Content-Length: 4", ""]
--- request eval
["PUT /dav/b.txt\nabc\n", "GET /dav/b.txt"]
--- error_code eval
[201, 200]
--- response_body eval
["", "abc\n"]



=== TEST 8: chunked request body, sent as is
--- config
    location /dav/ {
        root $TEST_NGINX_SERVER_ROOT/html;
        dav_methods PUT;
        create_full_put_path on;
    }
--- more_headers eval
["Transfer-Encoding: chunked", ""]
--- request eval
["PUT /dav/c.txt\n5\r\nhello\r\n0\r\n\r\n", "GET /dav/c.txt"]
--- error_code eval
[201, 200]
--- response_body eval
["", "hello"]



=== TEST 9: a request in packets, with a delay
--- config
    location /dav/ {
        root $TEST_NGINX_SERVER_ROOT/html;
        dav_methods PUT;
        create_full_put_path on;
    }
--- request eval
[["PUT /dav/d.txt\nhel", {value => "lo world\n", delay_before => 0.3}],
 "GET /dav/d.txt"]
--- error_code eval
[201, 200]
--- response_body eval
["", "hello world"]
--- timeout: 2



=== TEST 10: the request line itself cut into packets
--- config
    location = /abc {
        return 200 "$request_method $request_uri\n";
    }
--- request eval
[["GE", "T /a", {value => "bc HTTP/1.1\n", delay_before => 0.1}]]
--- response_body
GET /abc



=== TEST 11: raw_request
--- config
    location = /t {
        return 200 "$http_host|$http_connection\n";
    }
--- raw_request eval
"GET /t HTTP/1.1\r
Host: raw.example\r
Connection: close\r
\r
"
--- response_body
raw.example|close



=== TEST 12: raw_request in pieces
--- config
    location = /t {
        return 200 "$http_host\n";
    }
--- raw_request eval
["GET /t HTTP/1.1\r\nHo", "st: pieces\r\nConnection: close\r\n\r\n"]
--- raw_request_middle_delay: 0.1
--- response_body
pieces



=== TEST 13: pipelined requests on one connection
--- config
    location = /a {
        return 200 "a $connection_requests $http_connection\n";
    }
    location = /b {
        return 200 "b $connection_requests $http_connection\n";
    }
--- pipelined_requests eval
["GET /a", "GET /b"]
--- response_body eval
["a 1 keep-alive\n", "b 2 close\n"]
--- error_code eval
[200, 200]



=== TEST 14: chunked response de-chunked
--- config
    location = /t {
        add_header X-Foo foo;
        add_header X-Foo bar;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/;
        proxy_http_version 1.1;
        proxy_buffering off;
        chunked_transfer_encoding on;
    }
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location / {
            return 200 "from backend $server_port=$TEST_NGINX_RAND_PORT_1\n";
        }
    }
--- request
GET /t
--- response_body_like chomp
^from backend (\d+)=\1$
--- response_headers
X-Foo: foo, bar
X-Absent:
! X-Really-Absent
--- response_headers_like
Content-Type: text/pla.n
--- raw_response_headers_like chomp
^HTTP/1\.1 200 OK\r\n.*X-Foo: foo\r\nX-Foo: bar\r\n



=== TEST 15: response_body eval qr//, error_code_like, $ServerPort
--- config
    location = /t {
        return 202 "port $server_port\n";
    }
--- request
GET /t
--- error_code_like: ^20[0-9]$
--- response_body eval
qr/^port \d+$/
--- no_error_log
[error]



=== TEST 16: $ServerPort in response_body and response_headers
--- config
    location = /t {
        add_header X-Port $server_port;
        return 200 "port $server_port\n";
    }
--- request
GET /t
--- response_body
port $ServerPort
--- response_headers
X-Port: $ServerPort



=== TEST 17: $TEST_NGINX_ is expanded in config, not in the request
--- config
    location = /t {
        return 200 "$TEST_NGINX_GREETING $arg_x\n";
    }
--- request
GET /t?x=$TEST_NGINX_GREETING
--- response_body_like
^hiya \$TEST_NGINX_GREETING$



=== TEST 18: response_body_unlike: a multi-line value keeps its last newline
--- config
    location = /t {
        return 200 "hello";
    }
--- request
GET /t
--- response_body_unlike
^hello$



=== TEST 19: HEAD request
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
HEAD /t
--- response_body:
--- response_headers
Content-Length: 6



=== TEST 20: 413 from client_max_body_size
--- config
    location = /t {
        client_max_body_size 1k;
        return 200 "ok\n";
    }
--- request eval
"POST /t\n" . ("x" x 4096)
--- error_code: 413
--- response_body_like: 413 Request Entity Too Large
--- error_log
client intended to send too large body



=== TEST 21: error_page and static files (user_files, html_dir)
--- config
    error_page 404 =200 /fallback.txt;
--- user_files
>>> fallback.txt
fallback
>>> sub/dir/file.txt
deep $TEST_NGINX_GREETING
--- request eval
["GET /nope", "GET /sub/dir/file.txt", "GET /"]
--- response_body eval
["fallback\n", "deep hiya\n",
 '<html><head><title>It works!</title></head><body>It works!</body></html>']



=== TEST 22: response_body_filters
--- config
    location = /t {
        return 200 "Hello";
    }
--- request
GET /t
--- response_body_filters
uc
--- response_body chomp
HELLO



=== TEST 23: timeout with abort and ignore_response: no test at all
--- config
    location = /t {
        return 200 "never";
    }
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\n"
--- timeout: 300ms
--- abort
--- ignore_response



=== TEST 24: shutdown: nginx sees a short body and closes without a response
--- config
    location /dav/ {
        root $TEST_NGINX_SERVER_ROOT/html;
        dav_methods PUT;
        create_full_put_path on;
    }
--- raw_request eval
"PUT /dav/e.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc"
--- shutdown
--- error_code:
--- response_body:
--- error_log
client prematurely closed connection



=== TEST 25: http09-style parsing of a raw answer
--- config
    location = /t {
        return 200 "hello\n";
    }
--- raw_request eval
"GET /t HTTP/1.0\r\n\r\n"
--- http09
--- response_body_like: ^HTTP/1\.1 200 OK.*hello
