# Configuration mistakes stop nginx at start (and `nginx -t`) with a clear
# message, and never print a password.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: saveitem without a database
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"saveitem" in \S+nginx\.conf:\d+ needs a "saveitem_database" in its location, server or http block/



=== TEST 2: a conninfo libpq cannot parse
--- http_config
    saveitem_database "host=/tmp port";
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid conninfo in "saveitem_database": missing "=" after "port" in connection info string



=== TEST 3: an unparsable conninfo with a password is not echoed
--- http_config
    saveitem_database "host=/tmp password=sekret port";
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid conninfo in "saveitem_database"
--- no_error_log
sekret



=== TEST 4: an unknown conninfo keyword
--- http_config
    saveitem_database "host=/tmp colour=blue";
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid connection option "colour"



=== TEST 5: a URI conninfo with a password that is not valid
--- http_config
    saveitem_database "postgresql://u:sekret@[::1/db";
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid conninfo in "saveitem_database"
--- no_error_log
sekret



=== TEST 6: a pool of zero connections
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=0;
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid parameter "pool=0"



=== TEST 7: parameters that are not numbers or times
--- http_config
    saveitem_database "$TEST_NGINX_DB" queue_timeout=soon;
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid parameter "queue_timeout=soon"



=== TEST 8: an unknown parameter
--- http_config
    saveitem_database "$TEST_NGINX_DB" pools=3;
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid parameter "pools=3"



=== TEST 9: the same database twice with other pool parameters
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=4;
--- config
    location = /items {
        saveitem_database "$TEST_NGINX_DB" pool=5;
        saveitem items;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*database .*dbname=saveitem.* is already defined in \S+:\d+ with other pool parameters/



=== TEST 10: the same database twice with the same parameters is one pool
--- http_config
    saveitem_database "$TEST_NGINX_DB" pool=4;
--- config
    location = /items {
        saveitem_database "$TEST_NGINX_DB" pool=4;
        saveitem items;
    }
    location = /t {
        return 200 "up\n";
    }
--- request
GET /t
--- response_body
up



=== TEST 11: an invalid table name
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /items {
        saveitem 'a"b';
    }
--- must_die
--- error_log
invalid table name "a"b" at position 1



=== TEST 12: too many parts in a table name
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /items {
        saveitem db.public.items;
    }
--- must_die
--- error_log
invalid table name "db.public.items"



=== TEST 13: a column name with a schema
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /items {
        saveitem items column=a.b;
    }
--- must_die
--- error_log
invalid column name "a.b"



=== TEST 14: an unknown saveitem parameter
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /items {
        saveitem items colunm=data;
    }
--- must_die
--- error_log
invalid parameter "colunm=data"



=== TEST 15: saveitem twice in one location
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /items {
        saveitem items;
        saveitem other;
    }
--- must_die
--- error_log
"saveitem" directive is duplicate



=== TEST 16: a host name that does not resolve
--- http_config
    saveitem_database "host=no-such-host.invalid dbname=x";
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
host not found in "saveitem_database": "no-such-host.invalid"



=== TEST 17: a connect_timeout that is not a number
--- http_config
    saveitem_database "host=/tmp connect_timeout=soon";
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid connect_timeout "soon"



=== TEST 18: a host name is resolved once, at configuration time
--- http_config
    saveitem_database "host=localhost port=$TEST_NGINX_PG_PORT dbname=saveitem user=postgres";
--- config
    location = /items {
        saveitem items;
    }
--- request
POST /items
{"resolved": "localhost"}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]



=== TEST 19: saveitem_batch takes on or off
--- http_config
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch maybe;
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid value "maybe", it must be "on" or "off"



=== TEST 20: a batch of zero rows
--- http_config
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch on rows=0;
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid parameter "rows=0": rows must be 1 to 1000



=== TEST 21: parameters with off
--- http_config
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch off rows=5;
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
"saveitem_batch" directive takes no parameters with "off"



=== TEST 22: a table that does not exist is refused at start
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /items {
        saveitem nope;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"saveitem" in \S+:\d+: PostgreSQL \(.*\) refuses INSERT INTO "nope" \("data"\) VALUES \(\$1\) RETURNING "id": relation "nope" does not exist/



=== TEST 23: a column that does not exist is refused at start
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /items {
        saveitem items column=nope;
    }
--- must_die
--- error_log
column "nope" of relation "items" does not exist



=== TEST 24: a key column that does not exist is refused at start
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /items {
        saveitem items returning=nope;
    }
--- must_die
--- error_log
column "nope" does not exist



=== TEST 25: a database that cannot be reached at start is not an error
--- http_config
    saveitem_database "hostaddr=127.0.0.1 port=$TEST_NGINX_DEAD_PORT dbname=x user=u password=sekret";
--- config
    location = /items {
        saveitem items;
    }
    location = /t {
        return 200 "up\n";
    }
--- request
GET /t
--- response_body
up
--- error_log eval
qr/\[warn\] .*saveitem: could not connect to PostgreSQL \(user=u dbname=x hostaddr=127\.0\.0\.1 port=\d+\) to check its tables now: .*Connection refused/
--- no_error_log
sekret



=== TEST 26: a batch of zero bytes
--- http_config
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch on bytes=0;
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
invalid parameter "bytes=0"



=== TEST 27: a lifetime below 1s is refused: connections would be retired as they open
--- http_config
    saveitem_database "$TEST_NGINX_DB" lifetime=500ms;
--- config
    location = /items {
        saveitem items;
    }
--- must_die
--- error_log
"lifetime=500ms" is too short: a lifetime must be at least 1s (or 0: for ever)



=== TEST 28: a query timeout beyond what statement_timeout takes is refused
--- http_config
    saveitem_database "$TEST_NGINX_DB";
--- config
    location = /items {
        saveitem items;
        saveitem_query_timeout 25d;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"saveitem_query_timeout" directive must be at most 2147483647ms \(24d20h31m23s\), the longest statement_timeout PostgreSQL takes in \S+nginx\.conf:\d+/



=== TEST 29: the longest query timeout statement_timeout takes, and a lifetime of 1s, are fine
--- http_config
    saveitem_database "$TEST_NGINX_DB" lifetime=1s;
--- config
    location = /items {
        saveitem items;
        saveitem_query_timeout 2147483647ms;
    }
--- request
POST /items
{"longest": 1}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- no_error_log
[error]
