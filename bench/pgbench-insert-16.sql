-- bench/pgbench-insert-16.sql - the database's limit when requests are
-- combined: one INSERT of 16 rows a transaction (what group commit sends
-- when 16 requests wait together), each row a ~200-byte document that
-- differs per row and transaction (pgbench -n -M prepared -f; bench.py
-- reports rows/s: transactions/s x 16)
\set n random(1, 2000000000)
INSERT INTO items (data) VALUES
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":1,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":2,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":3,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":4,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":5,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":6,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":7,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":8,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":9,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":10,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":11,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":12,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":13,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":14,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":15,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb),
    (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"i":16,"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb)
RETURNING id;
