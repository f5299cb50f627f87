-- bench/pgbench-insert.sql - the ceiling: the module's statement, one row a
-- transaction, with a ~200-byte document that differs per transaction
-- (pgbench -n -M prepared -f; :client_id and :n become parameters)
\set n random(1, 2000000000)
INSERT INTO items (data) VALUES (('{"run":"pgbench","t":' || :client_id || ',"n":' || :n || ',"kind":"bench","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb) RETURNING id;
