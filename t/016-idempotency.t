# Idempotency-Key: a retried request is stored once and answered with the
# same key, by group commit or not, concurrently or a day later.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t16 CASCADE;
CREATE SCHEMA t16;
CREATE TABLE t16.items (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                        idem text UNIQUE);
CREATE TABLE t16.uuids (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                        idem uuid UNIQUE);
CREATE TABLE t16.nounique (id bigserial PRIMARY KEY, data jsonb NOT NULL,
                           idem text);
_SQL_

our @Bursts = map { "/tmp/saveitem-t16-burst$_-$$" } 0 .. 1;

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB" pool=2;
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    location = /items {
        saveitem t16.items idempotency=idem;
    }
    location = /uuids {
        saveitem t16.uuids idempotency=idem;
    }
    location = /plain {
        saveitem t16.items;
    }
_EOC_

no_shuffle();
run_tests();

# twenty copies of one request at once: one row, one key for all
my (%pks, %status);

for my $r (burst_results($Bursts[0])) {
    my ($doc, $status, $body) = @$r;
    $status{$status}++;
    $pks{$1}++ if $body =~ /^\{"pk": (\d+)\}$/;
}

is_deeply(\%status, { 200 => 20 }, 'twenty concurrent copies: all 200');
is(scalar keys %pks, 1, '... all with the same key');
is(psql(q{SELECT count(*) FROM t16.items WHERE idem = 'same-20'}), 1,
   '... and one row');

# thirty requests, ten keys, each three times, at once
my %by_key;

for my $r (map { burst_results("$Bursts[1]-$_") } 1 .. 10) {
    my ($doc, $status, $body) = @$r;
    my ($n) = $doc =~ /"n": (\d+)/;
    my ($pk) = $body =~ /^\{"pk": (\d+)\}$/;

    is($status, 200, "key many-$n: 200");
    $by_key{$n}{$pk // 'none'}++;
}

is(scalar(grep { keys %{ $by_key{$_} } == 1 } keys %by_key), 10,
   'ten keys sent three times each at once: one key per document');
is(psql(q{SELECT count(*) FROM t16.items WHERE idem LIKE 'many-%'}), 10,
   '... and ten rows');

for my $n (sort keys %by_key) {
    my ($pk) = keys %{ $by_key{$n} };
    is(psql("SELECT data->>'n' FROM t16.items WHERE id = $pk AND"
            . " idem = 'many-$n'"), $n, "key many-$n names its own row");
}

is(psql(q{SELECT count(*) FROM t16.items WHERE idem = 'once'}), 1,
   'a retried request left one row');
is(psql(q{SELECT count(*) FROM t16.items WHERE data ? 'plain'}), 2,
   'without the header, each request is a row');
is(psql(q{SELECT count(*) FROM t16.items WHERE data ? 'refused'}), 0,
   'nothing refused was stored');
is(psql(q{SELECT count(*) FROM t16.items WHERE idem = 'quoted-1'}), 1,
   'a key quoted and bare: one row, its key stored without the quotes');
is(psql(q{SELECT count(*) FROM t16.items WHERE idem LIKE '%"%'}), 0,
   '... no key stored with its quotes');
is(psql(q{SELECT idem FROM t16.items WHERE data->>'q' = '2'}), 'quoted-\\2',
   'a quoted key with an escaped backslash: the backslash, once');
is(psql(q{SELECT count(*) FROM t16.items WHERE data ? 'unused'}), 2,
   'where no column is named, the key is not used: two rows');

__DATA__

=== TEST 1: the same request twice: the same key, replayed, one row
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: once
--- request eval
["POST /items\n{\"a\": 1}", "POST /items\n{\"a\":  1 }"]
--- response_body_like eval
['^\{"pk": (\d+)\}$', '^\{"pk": (\d+)\}$']
--- response_headers eval
["Idempotent-Replayed: ", "Idempotent-Replayed: true"]
--- no_error_log
[error]



=== TEST 2: the same key with another document: 422, not stored
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: other
--- request eval
["POST /items\n{\"b\": 1}", "POST /items\n{\"b\": 2, \"refused\": 1}"]
--- error_code eval
[200, 422]
--- response_body_like eval
['^\{"pk": \d+\}$',
 '^\{"error": "idempotency_key_reused", "message": "the Idempotency-Key was used before with another document"\}$']



=== TEST 3: a key longer than 255 characters: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers eval
"Idempotency-Key: " . ("k" x 256)
--- request
POST /items
{"refused": "long"}
--- error_code: 400
--- response_body
{"error": "invalid_idempotency_key", "message": "the Idempotency-Key header must be 1 to 255 visible ASCII characters, once"}



=== TEST 4: a key with a space or a byte beyond ASCII: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- raw_request eval
["POST /items HTTP/1.1\r\nHost: localhost\r\nIdempotency-Key: a b\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{\"refused\": \"sp\"}",
 "POST /items HTTP/1.1\r\nHost: localhost\r\nIdempotency-Key: caf\xc3\xa9\r\nContent-Length: 17\r\nConnection: close\r\n\r\n{\"refused\": \"u8\"}",
 "POST /items HTTP/1.1\r\nHost: localhost\r\nIdempotency-Key: \r\nContent-Length: 17\r\nConnection: close\r\n\r\n{\"refused\": \"em\"}"]
--- error_code eval
[400, 400, 400]



=== TEST 5: the header twice: 400
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: one
Idempotency-Key: two
--- request
POST /items
{"refused": "twice"}
--- error_code: 400



=== TEST 6: without the header, or where no column is named, as before
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n{\"plain\": 1}", "POST /plain\n{\"plain\": 2}"]
--- response_body_like eval
['^\{"pk": \d+\}$', '^\{"pk": \d+\}$']



=== TEST 7: a uuid key, replayed in another spelling
--- http_config eval: $::http_config
--- config eval: $::config
--- raw_request eval
["POST /uuids HTTP/1.1\r\nHost: localhost\r\nIdempotency-Key: 0E1C4B6A-2C1B-4C1F-9D8E-7A6B5C4D3E2F\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{\"u\": 1}",
 "POST /uuids HTTP/1.1\r\nHost: localhost\r\nIdempotency-Key: {0e1c4b6a2c1b4c1f9d8e7a6b5c4d3e2f}\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{\"u\": 1}"]
--- response_body_like eval
['^\{"pk": 1\}$', '^\{"pk": 1\}$']
--- response_headers eval
["Idempotent-Replayed: ", "Idempotent-Replayed: true"]



=== TEST 8: twenty copies of one request at once
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::burst('/items', [('{"same": 20}') x 20], $main::Bursts[0],
                      0, ['Idempotency-Key: same-20']);
--- request
POST /items
{"warm": 1}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- wait: 1



=== TEST 9: ten keys, three copies each, all at once
--- http_config eval: $::http_config
--- config eval: $::config
--- init
for my $n (1 .. 10) {
    SaveItem::Test::burst('/items', [(qq({"n": $n})) x 3],
                          "$main::Bursts[1]-$n", 0.1,
                          ["Idempotency-Key: many-$n"]);
}
--- request
POST /items
{"warm": 2}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- wait: 1



=== TEST 10: a key column without a unique constraint is refused at start
--- http_config eval: $::http_config
--- config
    location = /items {
        saveitem t16.nounique idempotency=idem;
    }
--- must_die
--- error_log
the idempotency column "idem" of "t16"."nounique" has no unique index of its own



=== TEST 11: a quoted key (the draft's structured-field string) is the key between the quotes
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::wait_nginx();
my ($status, $body) = SaveItem::Test::post('/items', '{"q": 1}',
                                           ['Idempotency-Key: "quoted-1"']);
Test::More::like("$status $body", qr/^200 \{"pk": \d+\}$/,
                 'a quoted key: stored');
($status, $body) = SaveItem::Test::post('/items', '{"q": 2}',
                                        ['Idempotency-Key: "quoted-\\\\2"']);
Test::More::like("$status $body", qr/^200 \{"pk": \d+\}$/,
                 'a quoted key with an escaped backslash: stored');
--- more_headers
Idempotency-Key: quoted-1
--- request
POST /items
{"q": 1}
--- response_body_like chomp
^\{"pk": \d+\}\n$
--- response_headers
Idempotent-Replayed: true
--- no_error_log
[error]



=== TEST 12: malformed quoting: 400, not stored
--- http_config eval: $::http_config
--- config eval: $::config
--- init
SaveItem::Test::wait_nginx();
for my $key ('"open', '"a"b"', '"a\\b"', '""', '"a b"', '"a";p=1') {
    my ($status, $body) = SaveItem::Test::post('/items', '{"refused": 1}',
                                               ["Idempotency-Key: $key"]);
    Test::More::is("$status $body", '400 {"error": "invalid_idempotency_key", '
                   . '"message": "the Idempotency-Key header must be 1 to 255 '
                   . 'visible ASCII characters, once"}', "the key $key: 400");
}
--- more_headers
Idempotency-Key: "close
--- request
POST /items
{"refused": 2}
--- error_code: 400
--- response_body
{"error": "invalid_idempotency_key", "message": "the Idempotency-Key header must be 1 to 255 visible ASCII characters, once"}
--- error_log
saveitem: invalid Idempotency-Key header



=== TEST 13: where no column is named, a single document's key is not used: each is a row
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Idempotency-Key: unused
--- request eval
["POST /plain\n{\"unused\": true}", "POST /plain\n{\"unused\": true}"]
--- response_body_like eval
['^\{"pk": \d+\}$', '^\{"pk": \d+\}$']
--- response_headers eval
["Idempotent-Replayed: ", "Idempotent-Replayed: "]
