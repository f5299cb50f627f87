# Mapped columns: JSON keys into typed columns (saveitem_field), nginx
# values into columns (saveitem_value), saveitem_strict, keys taken from
# a field or a value; each wrong type answered 400 naming the key and the
# column's type, by group commit or not.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t21 CASCADE;
CREATE SCHEMA t21;
CREATE TABLE t21.events (
    id bigserial PRIMARY KEY,
    payload jsonb NOT NULL,
    user_id bigint,
    kind text NOT NULL,
    amount numeric(10,2),
    occurred_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    flag boolean DEFAULT true,
    tags text[],
    counts int[],
    meta jsonb,
    label varchar(5) DEFAULT 'none',
    small smallint,
    day date,
    ref uuid,
    ip inet,
    delivery uuid UNIQUE,
    tenant int,
    agent text
);
CREATE TABLE t21.forms (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    name text,
    age int CHECK (age >= 0),
    at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE t21.charges (
    pk bigserial PRIMARY KEY,
    id text UNIQUE,
    amount bigint NOT NULL,
    currency text NOT NULL DEFAULT 'usd',
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE t21.issues (
    id bigserial PRIMARY KEY,
    payload jsonb NOT NULL,
    action text NOT NULL,
    repo text NOT NULL,
    number int NOT NULL,
    title text,
    labels jsonb,
    opened_at timestamptz,
    sender_id bigint,
    sender_site_admin boolean,
    idem text UNIQUE
);
_SQL_

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB" pool=2;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    location = /hooks/github {
        saveitem t21.events column=payload idempotency=delivery;
        saveitem_field user_id sender.id;
        saveitem_field kind action;
        saveitem_field amount;
        saveitem_field occurred_at;
        saveitem_field flag;
        saveitem_field tags;
        saveitem_field counts;
        saveitem_field meta;
        saveitem_field label;
        saveitem_field small;
        saveitem_field day;
        saveitem_field ref;
        saveitem_value ip $remote_addr;
        saveitem_value delivery $http_x_github_delivery;
        saveitem_value tenant $http_x_tenant;
        saveitem_value agent $http_user_agent;
    }
    location = /strict {
        saveitem t21.events column=payload;
        saveitem_field kind action;
        saveitem_field user_id sender.id;
        saveitem_strict on;
    }
    location = /forms {
        saveitem t21.forms column=off;
        saveitem_field email;
        saveitem_field name;
        saveitem_field age;
    }
    location = /charges {
        saveitem t21.charges column=off returning=pk idempotency=id;
        saveitem_field id;
        saveitem_field amount;
        saveitem_field currency;
        saveitem_field at;
    }
    location = /bulk {
        saveitem t21.forms column=off bulk=10;
        saveitem_field email;
        saveitem_field age;
    }
    location = /hooks/issues {
        saveitem t21.issues column=payload idempotency=idem;
        saveitem_field action;
        saveitem_field repo repository.full_name;
        saveitem_field number issue.number;
        saveitem_field title issue.title;
        saveitem_field labels issue.labels;
        saveitem_field opened_at issue.created_at;
        saveitem_field sender_id sender.id;
        saveitem_field sender_site_admin sender.site_admin;
    }
    location = /auth-check {
        internal;
        proxy_pass http://127.0.0.1:$server_port/auth-server;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
    location = /auth-server {
        if ($http_x_token = "") {
            return 403;
        }
        add_header X-User "user-$http_x_token";
        return 200;
    }
    location = /authed {
        auth_request /auth-check;
        auth_request_set $authed_user $upstream_http_x_user;
        saveitem t21.events column=payload;
        saveitem_field kind action;
        saveitem_value agent $authed_user;
    }
    location = /basic {
        auth_basic "t21";
        auth_basic_user_file ../html/htpasswd;
        saveitem t21.events column=payload;
        saveitem_field kind action;
        saveitem_value agent $remote_user;
    }
_EOC_

no_shuffle();
run_tests();

# what the first blocks stored, read back from the table

is(psql(q{SELECT user_id, kind, amount, flag, label, small
          FROM t21.events WHERE payload->>'n' = 'full'}),
   '42|opened|12.50|f|abc|7', 'fields: bigint, text, numeric, boolean, '
   . 'varchar, smallint');
is(psql(q{SELECT occurred_at = '2024-02-29T10:00:00Z', day, ref,
                 tags, counts, meta->>'x'
          FROM t21.events WHERE payload->>'n' = 'full'}),
   't|2024-02-29|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{a,b}|{1,2,NULL}|1',
   '... timestamptz, date, uuid, text[], int[] with a null, nested jsonb');
is(psql(q{SELECT ip, delivery, tenant, agent
          FROM t21.events WHERE payload->>'n' = 'full'}),
   '127.0.0.1|8d1a4c3e-0000-4000-8000-000000000001|7|t21-agent',
   '... and nginx values: inet, uuid, int, text');
is(psql(q{SELECT payload->'sender'->>'login' FROM t21.events
          WHERE payload->>'n' = 'full'}), 'octocat',
   'the whole document in column=');
is(psql(q{SELECT flag, label, created_at > now() - interval '1 hour',
                 amount IS NULL, tenant IS NULL, delivery IS NULL
          FROM t21.events WHERE payload->>'n' = 'defaults'}),
   't|none|t|t|t|t',
   'omitted keys take the DEFAULT (or NULL), empty values are NULL');
is(psql(q{SELECT flag IS NULL, label IS NULL FROM t21.events
          WHERE payload->>'n' = 'nulls'}), 't|t',
   'an explicit null is NULL, not the DEFAULT');
is(psql(q{SELECT count(*) FROM t21.events WHERE payload ? 'refused'}), 0,
   'nothing refused was stored');
is(psql(q{SELECT count(*) FROM t21.forms WHERE email = 'form@example.com'}),
   1, 'column=off: typed columns only, identity ALWAYS filled');
is(psql(q{SELECT count(*) FROM t21.events WHERE payload->>'n' = 'redelivered'}),
   1, 'a redelivered webhook left one row');
is(psql(q{SELECT count(*) FROM t21.events WHERE payload->>'n' = 'nodelivery'
          AND delivery IS NULL}), 2,
   'without the delivery header: no key, each request a row');
is(psql(q{SELECT amount FROM t21.charges WHERE id = 'ch_1'}), 100,
   'a key from the document: one row, the first document');
is(psql(q{SELECT count(*) FROM t21.charges WHERE id = '12345'}), 1,
   'a number key and its string: one key');
is(psql(q{SELECT string_agg(email || ':' || coalesce(age::text, '-'), ' '
          ORDER BY id) FROM t21.forms WHERE email LIKE 'b_@example.com'}),
   'b1@example.com:1 b2@example.com:- b3@example.com:3',
   'a bulk array: each document its row, in order');
is(psql(q{SELECT count(*) FROM t21.forms WHERE email ~ '^[rs][0-9]@'}), 0,
   'a bulk body with one document refused: none stored');
is(psql(q{SELECT action, repo, number, title, labels->0->>'name',
                 opened_at = '2024-03-01T12:34:56Z', sender_id,
                 sender_site_admin
          FROM t21.issues}),
   'opened|octo-org/hello-world|1347|Found a bug|bug|t|1|f',
   'a GitHub "issues" event: nested keys into typed columns');
is(psql(q{SELECT count(*) FROM t21.issues}), 1,
   '... once, though sent twice with its Idempotency-Key');
is(psql(q{SELECT agent FROM t21.events WHERE payload->>'n' = 'authed'}),
   'user-alice', 'auth_request: the user its server named, stored');
is(psql(q{SELECT agent FROM t21.events WHERE payload->>'n' = 'basic'}),
   'alice', 'auth_basic: $remote_user stored');

__DATA__

=== TEST 1: a GitHub-like webhook into typed columns
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
X-GitHub-Delivery: 8d1a4c3e-0000-4000-8000-000000000001
X-Tenant: 7
User-Agent: t21-agent
--- request
POST /hooks/github
{"n": "full", "action": "opened", "sender": {"login": "octocat", "id": 42}, "amount": 12.5, "occurred_at": "2024-02-29T10:00:00Z", "flag": false, "tags": ["a", "b"], "counts": [1, 2, null], "meta": {"x": 1}, "label": "abc", "small": 7, "day": "2024-02-29", "ref": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}
--- response_body_like: ^\{"pk": \d+\}$
--- no_error_log
[error]



=== TEST 2: omitted keys take the column's DEFAULT; empty values NULL
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"n": "defaults", "action": "x"}
--- response_body_like: ^\{"pk": \d+\}$
--- no_error_log
[error]



=== TEST 3: an explicit null is NULL
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"n": "nulls", "action": "x", "flag": null, "label": null}
--- response_body_like: ^\{"pk": \d+\}$
--- no_error_log
[error]



=== TEST 4: a string for a bigint: 400 naming the key and the type
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "sender": {"id": "abc"}}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"sender.id\" is not an integer for column \"user_id\" (bigint)", "key": "sender.id", "column": "user_id", "type": "bigint"}
--- error_log
saveitem: "sender.id" is not an integer for column "user_id" (bigint)
--- no_error_log
[error]



=== TEST 5: NULL into a NOT NULL column: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": null}
--- error_code: 400
--- response_body_like: ^\{"error": "invalid_value", "message": "\\"action\\" is null for column \\"kind\\" \(text\)", "key": "action", "column": "kind", "type": "text"\}$
--- no_error_log
[error]



=== TEST 6: an integer past bigint's range: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "sender": {"id": 9223372036854775808}}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"sender.id\" is out of range for column \"user_id\" (bigint)", "key": "sender.id", "column": "user_id", "type": "bigint"}
--- no_error_log
[error]


=== TEST 7: a fraction for a smallint: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "small": 1.5}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"small\" is not an integer for column \"small\" (smallint)", "key": "small", "column": "small", "type": "smallint"}
--- no_error_log
[error]


=== TEST 8: a smallint past its range: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "small": 32768}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"small\" is out of range for column \"small\" (smallint)", "key": "small", "column": "small", "type": "smallint"}
--- no_error_log
[error]


=== TEST 9: a word for a numeric: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "amount": "lots"}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"amount\" is not a number for column \"amount\" (numeric(10,2))", "key": "amount", "column": "amount", "type": "numeric(10,2)"}
--- no_error_log
[error]


=== TEST 10: a timestamp that is not one: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "occurred_at": "yesterday at noon"}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"occurred_at\" is not an RFC 3339 timestamp for column \"occurred_at\" (timestamp with time zone)", "key": "occurred_at", "column": "occurred_at", "type": "timestamp with time zone"}
--- no_error_log
[error]


=== TEST 11: a day that does not exist: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "day": "2023-02-29"}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"day\" is not a date (YYYY-MM-DD) for column \"day\" (date)", "key": "day", "column": "day", "type": "date"}
--- no_error_log
[error]


=== TEST 12: a string for a boolean: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "flag": "maybe"}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"flag\" is not true or false for column \"flag\" (boolean)", "key": "flag", "column": "flag", "type": "boolean"}
--- no_error_log
[error]


=== TEST 13: a UUID that is not one: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "ref": "a0eebc99-9c0b"}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"ref\" is not a UUID for column \"ref\" (uuid)", "key": "ref", "column": "ref", "type": "uuid"}
--- no_error_log
[error]


=== TEST 14: a string for an array: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "tags": "a,b"}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"tags\" is not an array for column \"tags\" (text[])", "key": "tags", "column": "tags", "type": "text[]"}
--- no_error_log
[error]


=== TEST 15: an array element of the wrong type: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "counts": [1, "two"]}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"counts\" has an element that is not an integer for column \"counts\" (integer[])", "key": "counts", "column": "counts", "type": "integer[]"}
--- no_error_log
[error]


=== TEST 16: a string longer than varchar(5): 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "label": "abcdef"}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"label\" is too long for column \"label\" (character varying(5))", "key": "label", "column": "label", "type": "character varying(5)"}
--- no_error_log
[error]


=== TEST 17: an object for a bigint: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1, "action": "x", "sender": {"id": {"x": 1}}}
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"sender.id\" is an object for column \"user_id\" (bigint)", "key": "sender.id", "column": "user_id", "type": "bigint"}
--- no_error_log
[error]



=== TEST 18: a NOT NULL column without a default, its key absent: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /hooks/github
{"refused": 1}
--- error_code: 400
--- response_body
{"error": "missing_key", "message": "\"action\" is required: column \"kind\" is NOT NULL and has no default", "key": "action", "column": "kind", "type": "text"}
--- no_error_log
[error]



=== TEST 19: a header that is not an int for an int column: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
X-Tenant: seven
--- request
POST /hooks/github
{"refused": 1, "action": "x"}
--- error_code: 400
--- response_body_like: ^\{"error": "invalid_value", "message": "\\"\$http_x_tenant\\" is not an integer for column \\"tenant\\" \(integer\)", "key": "\$http_x_tenant", "column": "tenant", "type": "integer"\}$
--- no_error_log
[error]



=== TEST 20: saveitem_strict: a key no saveitem_field names: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /strict
{"action": "x", "sender": {"id": 1, "any": 2}, "refused": 1}
--- error_code: 400
--- response_body
{"error": "unknown_key", "message": "\"refused\" is not a key this location takes", "key": "refused"}
--- no_error_log
[error]



=== TEST 21: saveitem_strict: known keys only is stored
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /strict
{"action": "strict", "sender": {"id": 1, "any": 2}}
--- response_body_like: ^\{"pk": \d+\}$
--- no_error_log
[error]



=== TEST 22: column=off into a table with an identity ALWAYS key
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /forms
{"email": "form@example.com", "name": "Ann", "age": 30, "other": true}
--- response_body_like: ^\{"pk": \d+\}$
--- no_error_log
[error]



=== TEST 23: a CHECK the module cannot judge: the server's 422
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /forms
{"email": "neg@example.com", "age": -1}
--- error_code: 422
--- response_body_like: ^\{"error": "constraint_violation", .*"sqlstate": "23514"



=== TEST 24: the delivery header is the key: a redelivery is replayed
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
X-GitHub-Delivery: 8d1a4c3e-0000-4000-8000-000000000002
--- request eval
["POST /hooks/github\n{\"n\": \"redelivered\", \"action\": \"x\"}",
 "POST /hooks/github\n{\"n\": \"redelivered\", \"action\": \"x\"}"]
--- response_body_like eval
['^\{"pk": (\d+)\}$', '^\{"pk": (\d+)\}$']
--- response_headers eval
["Idempotent-Replayed: ", "Idempotent-Replayed: true"]
--- no_error_log
[error]



=== TEST 25: the same delivery with another document: 422, not stored
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
X-GitHub-Delivery: 8d1a4c3e-0000-4000-8000-000000000003
--- request eval
["POST /hooks/github\n{\"n\": \"first\", \"action\": \"x\"}",
 "POST /hooks/github\n{\"n\": \"second\", \"action\": \"x\", \"refused\": 1}"]
--- error_code eval
[200, 422]
--- response_body_like eval
['^\{"pk": \d+\}$', '^\{"error": "idempotency_key_reused"']



=== TEST 26: a key column fed by a value: the Idempotency-Key header is not the key
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: not-the-key
--- request eval
["POST /hooks/github\n{\"n\": \"nodelivery\", \"action\": \"x\"}",
 "POST /hooks/github\n{\"n\": \"nodelivery\", \"action\": \"x\"}"]
--- response_body_like eval
['^\{"pk": (\d+)\}$', '^\{"pk": (\d+)\}$']
--- response_headers eval
["Idempotent-Replayed: ", "Idempotent-Replayed: "]



=== TEST 27: a document's own id is the key (Stripe), a DEFAULT of another time at each try not compared: replayed, then 422
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /charges\n{\"id\": \"ch_1\", \"amount\": 100}",
 "POST /charges\n{\"id\": \"ch_1\", \"amount\": 100}",
 "POST /charges\n{\"id\": \"ch_1\", \"amount\": 200}"]
--- error_code eval
[200, 200, 422]
--- response_body_like eval
['^\{"pk": \d+\}$', '^\{"pk": \d+\}$', '^\{"error": "idempotency_key_reused"']
--- response_headers eval
["Idempotent-Replayed: ", "Idempotent-Replayed: true", ""]



=== TEST 28: a number as the key, into a text key column
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /charges\n{\"id\": 12345, \"amount\": 1}",
 "POST /charges\n{\"id\": \"12345\", \"amount\": 1}"]
--- response_body_like eval
['^\{"pk": \d+\}$', '^\{"pk": \d+\}$']
--- response_headers eval
["Idempotent-Replayed: ", "Idempotent-Replayed: true"]



=== TEST 29: a key field that is not a key: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /charges
{"id": "has space", "amount": 1, "refused": 1}
--- error_code: 400
--- response_body_like: ^\{"error": "invalid_value", "message": "\\"id\\" is not a key
--- no_error_log
[error]



=== TEST 30: a bulk array into typed columns: pks in order
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /bulk
[{"email": "b1@example.com", "age": 1}, {"email": "b2@example.com"}, {"email": "b3@example.com", "age": 3}]
--- response_body_like: ^\{"pks": \[(\d+), (\d+), (\d+)\]\}$
--- no_error_log
[error]



=== TEST 31: bulk NDJSON with a wrong type: 400 with its index, none stored
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Content-Type: application/x-ndjson
--- request eval
"POST /bulk\n{\"email\": \"r1\@example.com\", \"refused\": 1}\n{\"email\": \"r2\@example.com\", \"age\": \"old\", \"refused\": 1}\n"
--- error_code: 400
--- response_body
{"error": "invalid_value", "message": "\"age\" is not an integer for column \"age\" (integer)", "index": 1, "key": "age", "column": "age", "type": "integer"}



=== TEST 32: bulk with a document the server refuses: 422 with its index
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /bulk
[{"email": "s1@example.com", "refused": 1}, {"email": "s2@example.com", "age": -5, "refused": 1}]
--- error_code: 422
--- response_body_like: ^\{"error": "constraint_violation", .*"index": 1



=== TEST 33: a GitHub "issues" event, nested keys into typed columns, sent twice
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: gh-issues-1
X-GitHub-Event: issues
--- request eval
["POST /hooks/issues\n{\"action\":\"opened\",\"issue\":{\"url\":\"https://api.github.com/repos/octo-org/hello-world/issues/1347\",\"repository_url\":\"https://api.github.com/repos/octo-org/hello-world\",\"id\":1,\"node_id\":\"MDU6SXNzdWUx\",\"number\":1347,\"title\":\"Found a bug\",\"user\":{\"login\":\"octocat\",\"id\":1,\"node_id\":\"MDQ6VXNlcjE=\",\"avatar_url\":\"https://github.com/images/error/octocat_happy.gif\",\"type\":\"User\",\"site_admin\":false},\"labels\":[{\"id\":208045946,\"node_id\":\"MDU6TGFiZWwyMDgwNDU5NDY=\",\"url\":\"https://api.github.com/repos/octo-org/hello-world/labels/bug\",\"name\":\"bug\",\"description\":\"Something isn't working\",\"color\":\"f29513\",\"default\":true}],\"state\":\"open\",\"locked\":false,\"assignee\":null,\"assignees\":[],\"milestone\":null,\"comments\":0,\"created_at\":\"2024-03-01T12:34:56Z\",\"updated_at\":\"2024-03-01T12:34:56Z\",\"closed_at\":null,\"author_association\":\"OWNER\",\"body\":\"I'm having a problem with this.\\nIt says \\\"\\u00e9\\u00e8\\\" and \\ud83d\\ude00.\"},\"repository\":{\"id\":1296269,\"node_id\":\"MDEwOlJlcG9zaXRvcnkxMjk2MjY5\",\"name\":\"hello-world\",\"full_name\":\"octo-org/hello-world\",\"private\":false,\"owner\":{\"login\":\"octo-org\",\"id\":2,\"type\":\"Organization\",\"site_admin\":false},\"fork\":false,\"created_at\":\"2011-01-26T19:01:12Z\",\"pushed_at\":\"2024-03-01T12:00:00Z\",\"stargazers_count\":80,\"topics\":[\"octocat\",\"api\"],\"default_branch\":\"main\"},\"sender\":{\"login\":\"octocat\",\"id\":1,\"node_id\":\"MDQ6VXNlcjE=\",\"type\":\"User\",\"site_admin\":false}}", "POST /hooks/issues\n{\"action\":\"opened\",\"issue\":{\"url\":\"https://api.github.com/repos/octo-org/hello-world/issues/1347\",\"repository_url\":\"https://api.github.com/repos/octo-org/hello-world\",\"id\":1,\"node_id\":\"MDU6SXNzdWUx\",\"number\":1347,\"title\":\"Found a bug\",\"user\":{\"login\":\"octocat\",\"id\":1,\"node_id\":\"MDQ6VXNlcjE=\",\"avatar_url\":\"https://github.com/images/error/octocat_happy.gif\",\"type\":\"User\",\"site_admin\":false},\"labels\":[{\"id\":208045946,\"node_id\":\"MDU6TGFiZWwyMDgwNDU5NDY=\",\"url\":\"https://api.github.com/repos/octo-org/hello-world/labels/bug\",\"name\":\"bug\",\"description\":\"Something isn't working\",\"color\":\"f29513\",\"default\":true}],\"state\":\"open\",\"locked\":false,\"assignee\":null,\"assignees\":[],\"milestone\":null,\"comments\":0,\"created_at\":\"2024-03-01T12:34:56Z\",\"updated_at\":\"2024-03-01T12:34:56Z\",\"closed_at\":null,\"author_association\":\"OWNER\",\"body\":\"I'm having a problem with this.\\nIt says \\\"\\u00e9\\u00e8\\\" and \\ud83d\\ude00.\"},\"repository\":{\"id\":1296269,\"node_id\":\"MDEwOlJlcG9zaXRvcnkxMjk2MjY5\",\"name\":\"hello-world\",\"full_name\":\"octo-org/hello-world\",\"private\":false,\"owner\":{\"login\":\"octo-org\",\"id\":2,\"type\":\"Organization\",\"site_admin\":false},\"fork\":false,\"created_at\":\"2011-01-26T19:01:12Z\",\"pushed_at\":\"2024-03-01T12:00:00Z\",\"stargazers_count\":80,\"topics\":[\"octocat\",\"api\"],\"default_branch\":\"main\"},\"sender\":{\"login\":\"octocat\",\"id\":1,\"node_id\":\"MDQ6VXNlcjE=\",\"type\":\"User\",\"site_admin\":false}}"]
--- response_body_like eval
['^\{"pk": (\d+)\}$', '^\{"pk": (\d+)\}$']
--- response_headers eval
["Idempotent-Replayed: ", "Idempotent-Replayed: true"]
--- no_error_log
[error]



=== TEST 34: auth_request to a second location names the user
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
X-Token: alice
--- request
POST /authed
{"n": "authed", "action": "x"}
--- response_body_like: ^\{"pk": \d+\}$
--- no_error_log
[error]



=== TEST 35: auth_request refuses: nginx's 403, nothing stored
--- http_config eval: $::http_config
--- config eval: $::config
--- request
POST /authed
{"n": "refused", "action": "x", "refused": 1}
--- error_code: 403



=== TEST 36: auth_basic: $remote_user into a column
--- http_config eval: $::http_config
--- config eval: $::config
--- user_files
>>> htpasswd
alice:{PLAIN}secret
--- more_headers
Authorization: Basic YWxpY2U6c2VjcmV0
--- request
POST /basic
{"n": "basic", "action": "x"}
--- response_body_like: ^\{"pk": \d+\}$
--- no_error_log
[error]



=== TEST 37: a header that is not UTF-8, for a text column: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers eval
"User-Agent: caf\xe9"
--- request
POST /hooks/github
{"refused": 1, "action": "x"}
--- error_code: 400
--- response_body_like: ^\{"error": "invalid_value", "message": "\\"\$http_user_agent\\" is not valid UTF-8 for column \\"agent\\" \(text\)"
--- no_error_log
[error]
