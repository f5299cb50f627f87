# Compressed bodies: Content-Encoding gzip (x-gzip), deflate (zlib and raw)
# and zstd, made by the real encoders (gzip, zstd, Python's zlib), for
# single documents, bulk arrays and NDJSON, answered as the plain body
# would be; several gzip members and zstd frames; 415 with Accept-Encoding
# for another coding or stacked ones; 400 naming the coding for a
# truncated or corrupt stream or bytes after it; bombs of 10 GiB of zeros
# (gzip, zstd; nested gzip) refused with 413 after at most the limit; a
# body spooled to a file; the counters of saveitem_status.

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Nginx::Socket 'no_plan';
use SaveItem::Test;

setup_tables(<<'_SQL_');
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t19 CASCADE;
CREATE SCHEMA t19;
CREATE TABLE t19.items (id bigserial PRIMARY KEY, data jsonb NOT NULL);
_SQL_

our $Tmp = "/tmp/saveitem-t19-$$";

# $text in a coding, by a real encoder: gzip and x-gzip by gzip(1), zstd by
# zstd(1), deflate (zlib's format, RFC 1950) and raw (RFC 1951, sent as
# deflate) by Python's zlib
sub enc {
    my ($coding, $text) = @_;

    my %cmd = (
        'gzip'    => 'gzip -c -n',
        'x-gzip'  => 'gzip -c -n',
        'zstd'    => 'zstd -q -c',
        'deflate' => q{python3 -c 'import sys, zlib; }
                     . q{sys.stdout.buffer.write(zlib.compress(}
                     . q{sys.stdin.buffer.read()))'},
        'raw'     => q{python3 -c 'import sys, zlib; }
                     . q{z = zlib.compressobj(6, zlib.DEFLATED, -15); }
                     . q{sys.stdout.buffer.write(}
                     . q{z.compress(sys.stdin.buffer.read()) + z.flush())'},
    );

    my $cmd = $cmd{$coding} or die "no encoder for $coding";

    open my $fh, '>', "$Tmp.in" or die "$Tmp.in: $!";
    print $fh $text;
    close $fh;

    my $out = `$cmd < $Tmp.in`;
    die "$cmd failed: $?" if $? != 0;
    unlink "$Tmp.in";

    return $out;
}

# the coding's name in Content-Encoding (raw deflate is "deflate" too)
sub ce {
    my ($coding) = @_;
    return $coding eq 'raw' ? 'deflate' : $coding;
}

# the headers of one request: its coding, type, and its length given, so
# that the body is sent as it is (not trimmed of bytes that look blank)
sub hdr {
    my ($coding, $body, $type) = @_;

    return join "\n",
        ($coding ne '' ? ("Content-Encoding: " . ce($coding)) : ()),
        ($type ? ("Content-Type: $type") : ()),
        "Content-Length: " . length($body);
}

our @Codings = qw(gzip x-gzip deflate raw zstd);

# bombs, made here and now from streams of zeros, never stored: gzip, 1024
# members of 10 MiB each (about 10 MB); zstd, 10 frames of 1 GiB each
# (about 330 KB); both 10 GiB once decoded
our %Bomb;

sub bomb {
    my ($coding) = @_;

    return $Bomb{$coding} //= do {
        my $one = $coding eq 'gzip'
                  ? `head -c 10M /dev/zero | gzip -9 -n -c`
                  : `head -c 1G /dev/zero | zstd -q -c`;
        die "cannot make a $coding bomb: $?" if $? != 0 || $one eq '';
        $one x ($coding eq 'gzip' ? 1024 : 10);
    };
}

# 100 MiB of zeros in gzip: 10 members, about 100 KB; decoded in about
# 400 steps, a few tenths of a second
our $Zeros;

sub zeros {
    return $Zeros //= `head -c 10M /dev/zero | gzip -9 -n -c` x 10;
}

# a small document in a zstd frame with a window of 128 MB (--long=27, from
# a pipe: its size unknown), more than the 8 MB a 1m limit allows
sub long_window {
    return `printf '{"t": "refused"}' | zstd -q --long=27 -c`;
}

# a gzip of the gzip bomb: 10 MB of gzip members, in about 10 KB
our $Nested;

sub nested {
    return $Nested //= enc('gzip', bomb('gzip'));
}

# streams cut short, damaged, followed by bytes, or empty: [coding, body]
our @Broken;

sub broken {
    return @Broken if @Broken;

    my $d = '{"t": "refused", "s": "some text to compress, some text"}';
    my $g = enc('gzip', $d);
    my $z = enc('zstd', $d);
    my $f = enc('deflate', $d);

    my $bad = $g;
    substr($bad, 12, 6) = "\xff" x 6;

    my $badz = $z;
    substr($badz, 8, 8) = "\xff" x 8;

    @Broken = (['gzip', substr($g, 0, length($g) - 5)],
               ['zstd', substr($z, 0, length($z) - 3)],
               ['deflate', substr($f, 0, length($f) - 1)],
               ['gzip', $bad],
               ['zstd', $badz],
               ['gzip', $g . "\n"],
               ['gzip', $g . "\x1f\x8b"],
               ['zstd', $z . "junk"],
               ['deflate', $f . $f],
               ['gzip', '']);

    return @Broken;
}

our $http_config = <<'_EOC_';
    saveitem_database "$TEST_NGINX_DB";
    saveitem_batch $TEST_NGINX_SAVEITEM_BATCH;
_EOC_

our $config = <<'_EOC_';
    location = /items {
        saveitem t19.items bulk=10000;
    }
    location = /off {
        saveitem t19.items;
        saveitem_decompress off;
    }
    location = /zstd {
        saveitem t19.items;
        saveitem_decompress zstd;
    }
    location = /small {
        saveitem t19.items bulk=10000;
        saveitem_decompressed_max_size 1m;
    }
    location = /tied {
        client_max_body_size 64k;
        saveitem t19.items;
    }
    location = /spool {
        client_body_buffer_size 1k;
        saveitem t19.items bulk=10000;
    }
    location = /large {
        client_max_body_size 1m;
        saveitem t19.items;
        saveitem_decompressed_max_size 128m;
    }
    location = /metrics {
        saveitem_status;
    }
_EOC_

# NDJSON of $n documents tagged $tag, with some text that compresses
sub ndjson {
    my ($tag, $n) = @_;
    return join '', map { qq({"t": "$tag", "i": $_, "s": "document $_ of $n"}\n) }
                    1 .. $n;
}

our $Single = '{"t": "single", "c": "%s", "n": [1, 2.5, "three"]}';
our $Array = '[{"t": "array", "c": "%s"}, {"t": "array"}, {"t": "array"}]';
our $Nd = qq({"t": "nd", "c": "%s"}\n\n{"t": "nd"}\r\n{"t": "nd"}\n);

# a document broken on its second line, in an array and in NDJSON
our $Bad = qq({"t": "refused",\n "b": });
our $BadArray = qq([{"t": "refused"},\n {"t": "refused", }]);
our $BadNd = qq({"t": "refused"}\n{"t": "refused"}\n{"t": "refused",}\n);

no_shuffle();
run_tests();

is(psql(q{SELECT count(*) FROM t19.items WHERE data->>'t' = 'single'}),
   scalar(@Codings), 'a single document of each coding stored');
is(psql(q{SELECT string_agg(data->>'c', ',' ORDER BY id) FROM t19.items
          WHERE data->>'t' = 'single'}),
   join(',', @Codings), '... each the document its client sent');
is(psql(q{SELECT count(*) FROM t19.items WHERE data->>'t' = 'array'}),
   3 * @Codings, 'three documents of a bulk array in each coding');
is(psql(q{SELECT count(*) FROM t19.items WHERE data->>'t' = 'nd'}),
   3 * @Codings, 'three documents of NDJSON in each coding');
is(psql(q{SELECT count(*) FROM t19.items WHERE data->>'t' = 'members'}),
   6, 'gzip members and zstd frames make one body');
is(psql(q{SELECT count(*) FROM t19.items WHERE data->>'t' = 'spool'}),
   6000, 'spooled bodies: every document');
is(psql(q{SELECT count(*) FROM t19.items WHERE data->>'t' = 'steps'}),
   9000, 'a body decoded in many steps: every document');
is(psql(q{SELECT count(*) FROM t19.items WHERE data->>'t' = 'refused'}),
   0, 'nothing of a refused body stored');

unlink "$Tmp.in";

__DATA__

=== TEST 1: a single document in every coding: stored, its key answered
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
[map { "POST /items\n" . ::enc($_, sprintf($::Single, $_)) } @::Codings]
--- more_headers eval
[map { ::hdr($_, ::enc($_, sprintf($::Single, $_))) } @::Codings]
--- error_code eval
[(200) x @::Codings]
--- response_body_like eval
[(qr/^\{"pk": \d+\}\n$/) x @::Codings]
--- no_error_log
[error]
[warn]



=== TEST 2: a bulk array in every coding: its keys, in order
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
[map { "POST /items\n" . ::enc($_, sprintf($::Array, $_)) } @::Codings]
--- more_headers eval
[map { ::hdr($_, ::enc($_, sprintf($::Array, $_))) } @::Codings]
--- error_code eval
[(200) x @::Codings]
--- response_body_like eval
[(qr/^\{"pks": \[\d+, \d+, \d+\]\}\n$/) x @::Codings]
--- no_error_log
[error]



=== TEST 3: NDJSON in every coding: its keys, in order
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
[map { "POST /items\n" . ::enc($_, sprintf($::Nd, $_)) } @::Codings]
--- more_headers eval
[map { ::hdr($_, ::enc($_, sprintf($::Nd, $_)), 'application/x-ndjson') }
 @::Codings]
--- error_code eval
[(200) x @::Codings]
--- response_body_like eval
[(qr/^\{"pks": \[\d+, \d+, \d+\]\}\n$/) x @::Codings]
--- no_error_log
[error]



=== TEST 4: several gzip members, several zstd frames: one body, cut anywhere
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n" . ::enc('gzip', '{"t": "memb') . ::enc('gzip', 'ers", "m": 1}'),
 "POST /items\n" . ::enc('zstd', '[{"t": "members"}, {"t"') . ::enc('zstd', ': "members"}]'),
 "POST /items\n" . ::enc('gzip', qq({"t": "members"}\n)) . ::enc('gzip', '')
                 . ::enc('gzip', qq({"t": "members"}\n{"t": "members"}))]
--- more_headers eval
[::hdr('gzip', ::enc('gzip', '{"t": "memb') . ::enc('gzip', 'ers", "m": 1}')),
 ::hdr('zstd', ::enc('zstd', '[{"t": "members"}, {"t"') . ::enc('zstd', ': "members"}]')),
 ::hdr('gzip', ::enc('gzip', qq({"t": "members"}\n)) . ::enc('gzip', '')
             . ::enc('gzip', qq({"t": "members"}\n{"t": "members"})),
     'application/x-ndjson')]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
[qr/^\{"pk": \d+\}\n$/, qr/^\{"pks": \[\d+, \d+\]\}\n$/,
 qr/^\{"pks": \[\d+, \d+, \d+\]\}\n$/]
--- no_error_log
[error]



=== TEST 5: invalid JSON: the plain body's answer, positions in the decoded document
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
[map { my $c = $_; map { "POST /items\n" . ($c ? ::enc($c, $_) : $_) }
                       $::Bad, $::BadArray, $::BadNd }
 '', 'gzip', 'zstd', 'deflate']
--- more_headers eval
[map { my $c = $_;
       map { ::hdr($c, ($c ? ::enc($c, $_->[0]) : $_->[0]), $_->[1]) }
           [$::Bad], [$::BadArray], [$::BadNd, 'application/x-ndjson'] }
 '', 'gzip', 'zstd', 'deflate']
--- error_code eval
[(400) x 12]
--- response_body eval
[(qq({"error": "invalid_json", "message": "unexpected token near '}'", "line": 2, "column": 7, "position": 24}\n),
  qq({"error": "invalid_json", "message": "string or '}' expected near '}'", "index": 1, "line": 1, "column": 18, "position": 18}\n),
  qq({"error": "invalid_json", "message": "string or '}' expected near '}'", "index": 2, "line": 1, "column": 17, "position": 17}\n))
 x 4]



=== TEST 6: a coding the location does not take: 415 with Accept-Encoding
--- http_config eval: $::http_config
--- config eval: $::config
--- more_headers
Content-Encoding: br
--- request
POST /items
{"t": "refused"}
--- error_code: 415
--- response_headers
Accept-Encoding: gzip, deflate, zstd
--- response_body
{"error": "unsupported_content_encoding", "message": "the content coding is not one this location takes (see Accept-Encoding)"}
--- error_log
saveitem: content coding "br" is not taken here
--- no_error_log
[error]



=== TEST 7: stacked codings, even gzip twice, are not decoded: 415
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n" . ::enc('gzip', ::enc('gzip', '{"t": "refused"}')),
 "POST /items\n" . ::enc('gzip', '{"t": "refused"}')]
--- more_headers eval
["Content-Encoding: gzip, gzip\n"
 . ::hdr('', ::enc('gzip', ::enc('gzip', '{"t": "refused"}'))),
 "Content-Encoding: zstd\n" . ::hdr('gzip', ::enc('gzip', '{"t": "refused"}'))]
--- error_code eval
[415, 415]
--- response_body eval
[("{\"error\": \"unsupported_content_encoding\", \"message\": \"the content coding is not one this location takes (see Accept-Encoding)\"}\n") x 2]
--- error_log
is several codings, not taken



=== TEST 8: saveitem_decompress off: 415, Accept-Encoding: identity; identity passes
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /off\n" . ::enc('gzip', '{"t": "refused"}'),
 "POST /off\n{\"t\": \"identity\"}"]
--- more_headers eval
[::hdr('gzip', ::enc('gzip', '{"t": "refused"}')),
 "Content-Encoding: identity"]
--- error_code eval
[415, 200]
--- response_headers eval
["Accept-Encoding: identity", "Accept-Encoding:"]
--- response_body_like eval
[qr/^\{"error": "unsupported_content_encoding"/, qr/^\{"pk": \d+\}\n$/]



=== TEST 9: saveitem_decompress zstd: gzip refused with Accept-Encoding: zstd
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /zstd\n" . ::enc('gzip', '{"t": "refused"}'),
 "POST /zstd\n" . ::enc('zstd', '{"t": "zstd only"}')]
--- more_headers eval
[::hdr('gzip', ::enc('gzip', '{"t": "refused"}')),
 ::hdr('zstd', ::enc('zstd', '{"t": "zstd only"}'))]
--- error_code eval
[415, 200]
--- response_headers eval
["Accept-Encoding: zstd", "Accept-Encoding:"]
--- response_body_like eval
[qr/^\{"error": "unsupported_content_encoding"/, qr/^\{"pk": \d+\}\n$/]



=== TEST 10: truncated, corrupt, trailing bytes, empty: 400 naming the coding
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
[map { "POST /items\n" . $_->[1] } ::broken()]
--- more_headers eval
[map { ::hdr($_->[0], $_->[1]) } ::broken()]
--- error_code eval
[(400) x 10]
--- response_body eval
[map { "{\"error\": \"invalid_content_encoding\", \"message\": \"$_\"}\n" }
 'the gzip stream is truncated',
 'the zstd stream is truncated',
 'the deflate stream is truncated',
 'the gzip stream is corrupt: incorrect data check',
 'the zstd stream is corrupt: Data corruption detected',
 'bytes follow the end of the gzip stream',
 'the gzip stream is truncated',
 'bytes follow the end of the zstd stream',
 'bytes follow the end of the deflate stream',
 'the gzip stream is truncated']
--- error_log eval
qr/saveitem: (the \w+ stream is|bytes follow the end of the \w+ stream).*, refused \(\d+ bytes read, \d+ decoded\)/
--- no_error_log
[error]



=== TEST 11: 10 GiB of zeros in gzip: 413 at the limit, counted
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /small\n" . ::bomb('gzip'), "GET /metrics"]
--- more_headers eval
[::hdr('gzip', ::bomb('gzip')), ""]
--- error_code eval
[413, 200]
--- response_body_like eval
[qr/^\{"error": "decompressed_body_too_large", "message": "the gzip body decompresses to more than 1048576 bytes"\}\n$/,
 qr/\nsaveitem_decompressed_bytes_total\{database="[^"]*",coding="gzip"\} 1048577\n.*\nsaveitem_decompress_refused_total\{database="[^"]*",coding="gzip"\} 1\n/s]
--- no_error_log
[error]
--- timeout: 30



=== TEST 12: 10 GiB of zeros in zstd: 413 at the limit
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /small\n" . ::bomb('zstd')
--- more_headers eval
::hdr('zstd', ::bomb('zstd'))
--- error_code: 413
--- response_body
{"error": "decompressed_body_too_large", "message": "the zstd body decompresses to more than 1048576 bytes"}
--- error_log eval
qr/\[warn\] .*saveitem: the zstd body decompresses to more than 1048576 bytes, refused \(\d+ bytes read, 1048577 decoded\)/
--- no_error_log
[error]
--- timeout: 30



=== TEST 13: nested gzip: decoded once, the inner bomb is not JSON, or too large
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n" . ::nested(), "POST /small\n" . ::nested()]
--- more_headers eval
[::hdr('gzip', ::nested()), ::hdr('gzip', ::nested())]
--- error_code eval
[400, 413]
--- response_body_like eval
[qr/^\{"error": "invalid_json", "message": "[^"]+", "line": 1, "column": \d+, "position": \d+\}\n$/,
 qr/^\{"error": "decompressed_body_too_large"/]
--- no_error_log
[error]
--- timeout: 30



=== TEST 14: the limit is client_max_body_size unless set
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /tied\n" . ::enc('gzip', '{"t": "refused", "s": "' . ('x' x 70000) . '"}'),
 "POST /tied\n" . ::enc('zstd', '{"t": "fits", "s": "' . ('x' x 65000) . '"}')]
--- more_headers eval
[::hdr('gzip', ::enc('gzip', '{"t": "refused", "s": "' . ('x' x 70000) . '"}')),
 ::hdr('zstd', ::enc('zstd', '{"t": "fits", "s": "' . ('x' x 65000) . '"}'))]
--- error_code eval
[413, 200]
--- response_body_like eval
[qr/^\{"error": "decompressed_body_too_large", "message": "the gzip body decompresses to more than 65536 bytes"\}\n$/,
 qr/^\{"pk": \d+\}\n$/]



=== TEST 15: a body spooled to a temporary file, read back a chunk at a time
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
[map { "POST /spool\n" . ::enc($_, ::ndjson('spool', 3000)) } 'gzip', 'zstd']
--- more_headers eval
[map { ::hdr($_, ::enc($_, ::ndjson('spool', 3000)), 'application/x-ndjson') }
 'gzip', 'zstd']
--- error_code eval
[200, 200]
--- response_body_like eval
[(qr/^\{"pks": \[\d+(, \d+){2999}\]\}\n$/) x 2]
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]



=== TEST 16: a body that decodes to more than a step: the event loop gets turns
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /items\n" . ::enc('gzip', ::ndjson('steps', 9000))
--- more_headers eval
::hdr('gzip', ::enc('gzip', ::ndjson('steps', 9000)), 'application/x-ndjson')
--- error_code: 200
--- response_body_like chomp
^\{"pks": \[\d+(, \d+){8999}\]\}\n$
--- error_log eval
qr/saveitem decoded gzip: \d+ bytes into \d+, [1-9]\d* steps, rc 0/
--- no_error_log
[error]



=== TEST 17: saveitem_status counts compressed and decompressed bytes
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
["POST /items\n" . ::enc('zstd', '{"t": "counted"}'), "GET /metrics"]
--- more_headers eval
[::hdr('zstd', ::enc('zstd', '{"t": "counted"}')), ""]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^\{"pk": \d+\}\n$/,
 qr/\nsaveitem_compressed_bytes_total\{database="[^"]*",coding="zstd"\} \d+\n.*\nsaveitem_decompressed_bytes_total\{database="[^"]*",coding="zstd"\} 16\n.*\nsaveitem_decompress_refused_total\{database="[^"]*",coding="zstd"\} 0\n/s]
--- no_error_log
[error]



=== TEST 18: a client that leaves while its body is decoded ends the decoding
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /large\n" . ::zeros()
--- more_headers eval
::hdr('gzip', ::zeros())
--- timeout: 0.05
--- abort
--- ignore_response
--- wait: 0.5
--- error_log eval
[qr/client prematurely closed connection/,
 qr/saveitem decode cleanup: \d+ bytes decoded, \d+ steps, a step posted/]
--- no_error_log
saveitem decoded gzip
[alert]



=== TEST 19: a zstd frame that asks for a larger window than the limit allows: 413
--- http_config eval: $::http_config
--- config eval: $::config
--- request eval
"POST /small\n" . ::long_window()
--- more_headers eval
::hdr('zstd', ::long_window())
--- error_code: 413
--- response_body
{"error": "decompressed_body_too_large", "message": "the zstd stream needs more memory to decode than this location allows"}
--- no_error_log
[error]
