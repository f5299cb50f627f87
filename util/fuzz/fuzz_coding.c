
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * util/fuzz/fuzz_coding.c - a libFuzzer harness for the decoder of
 * compressed bodies (src/ngx_http_saveitem_coding.c), linked without
 * nginx, with zlib and libzstd; built and run by util/fuzz/run.
 *
 * The first byte chooses what to do with the rest, the next two how it
 * is fed (piece size, decoded bytes per call) and the limit:
 *
 *   byte0 & 3 = 1, 2, 3   the rest is a gzip, deflate or zstd stream, fed
 *                         in pieces: the decoder never holds more than the
 *                         limit and one byte, a body it calls done is
 *                         within the limit and null-terminated, and fed
 *                         whole, in one call, it says the same and gives
 *                         the same bytes
 *   byte0 & 3 = 0         the rest is a body: compressed here (coding by
 *                         byte0 >> 2: gzip, zlib, raw deflate, zstd; in
 *                         one or two members or frames), then decoded in
 *                         pieces: the same bytes back, or "too large"
 *                         exactly when it is longer than the limit
 *
 * A failed oracle aborts: libFuzzer saves the input as a crash.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "ngx_http_saveitem_coding.h"


#define CHECK(cond, what)                                                    \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "oracle failed: %s: %s (line %d)\n", what, #cond,\
                    __LINE__);                                               \
            abort();                                                         \
        }                                                                    \
    } while (0)


/* decodes p in pieces of "piece" bytes, "budget" decoded bytes a call */

static int
decode(saveitem_coding_t *c, int coding, const uint8_t *p, size_t len,
    size_t piece, size_t budget, size_t max)
{
    int     rc;
    size_t  off, n, used, calls;

    rc = saveitem_coding_init(c, coding, max, len * 2);
    if (rc != SAVEITEM_CODING_DONE) {
        return rc;
    }

    off = 0;
    calls = 0;

    for ( ;; ) {
        n = len - off < piece ? len - off : piece;

        rc = saveitem_coding_feed(c, p + off, n, &used, budget,
                                  off + n == len);

        CHECK(used <= n, "feed takes at most what it is given");
        CHECK(c->out_len <= max + 1, "never more than the limit and one");
        CHECK(c->out_size <= max + 2, "a buffer within the limit");

        off += used;

        /* at most 8 bytes in and budget out a call: it ends */
        CHECK(++calls < 4 * (len + 2) + 4 * (max / budget + 2),
              "the decoder ends");

        if (rc == SAVEITEM_CODING_NEED) {
            CHECK(used == n, "NEED: all taken");
            CHECK(off < len, "NEED only before the last piece");
            continue;
        }

        if (rc == SAVEITEM_CODING_AGAIN) {
            continue;
        }

        break;
    }

    if (rc == SAVEITEM_CODING_DONE) {
        CHECK(c->out_len <= max, "done: within the limit");
        CHECK(c->out[c->out_len] == '\0', "done: null-terminated");
        CHECK(off == len, "done: all input taken");
    }

    return rc;
}


static size_t
compress_zlib(const uint8_t *p, size_t len, int bits, uint8_t *out,
    size_t size)
{
    z_stream  z;

    memset(&z, 0, sizeof(z_stream));

    if (deflateInit2(&z, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    {
        abort();
    }

    z.next_in = (uint8_t *) p;
    z.avail_in = (uInt) len;
    z.next_out = out;
    z.avail_out = (uInt) size;

    CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END, "zlib compresses");

    size -= z.avail_out;
    deflateEnd(&z);

    return size;
}


static size_t
compress_any(int how, const uint8_t *p, size_t len, uint8_t *out,
    size_t size)
{
    size_t  n;

    switch (how) {

    case 0:
        return compress_zlib(p, len, 16 + MAX_WBITS, out, size);

    case 1:
        return compress_zlib(p, len, MAX_WBITS, out, size);

    case 2:
        return compress_zlib(p, len, -MAX_WBITS, out, size);

    default:
        n = ZSTD_compress(out, size, p, len, 1);
        CHECK(!ZSTD_isError(n), "zstd compresses");
        return n;
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 rc, rc1, coding, how, two;
    size_t              piece, budget, max, len, n, cut;
    uint8_t            *z;
    const uint8_t      *p;
    saveitem_coding_t   c, one;

    static const int    codings[] = {
        SAVEITEM_CODING_GZIP, SAVEITEM_CODING_DEFLATE,
        SAVEITEM_CODING_DEFLATE, SAVEITEM_CODING_ZSTD
    };

    if (size < 3) {
        return 0;
    }

    piece = 1 + (data[1] & 0x3f) * (data[1] & 0x40 ? 64 : 1);
    budget = 1 + (data[2] & 0x7f) * (data[2] & 0x80 ? 512 : 1);
    max = ((size_t) data[1] << 8 | data[2]) % 20000;

    p = data + 3;
    len = size - 3;

    if (data[0] & 3) {
        coding = (data[0] & 3) == 1 ? SAVEITEM_CODING_GZIP
                 : (data[0] & 3) == 2 ? SAVEITEM_CODING_DEFLATE
                 : SAVEITEM_CODING_ZSTD;

        rc = decode(&c, coding, p, len, piece, budget, max);
        rc1 = decode(&one, coding, p, len, len + 1, (size_t) -1 / 2, max);

        CHECK((rc == SAVEITEM_CODING_DONE) == (rc1 == SAVEITEM_CODING_DONE),
              "done however it is fed");

        if (rc == SAVEITEM_CODING_DONE) {
            CHECK(c.out_len == one.out_len
                  && memcmp(c.out, one.out, c.out_len) == 0,
                  "the same bytes however it is fed");
        }

        saveitem_coding_free(&c);
        saveitem_coding_free(&one);

        return 0;
    }

    /* a body compressed here, in one or two members or frames */

    how = (data[0] >> 2) & 3;
    two = (data[0] >> 4) & 1;
    coding = codings[how];

    if (how == 1 || how == 2) {
        two = 0;    /* deflate is one stream */
    }

    n = 2 * len + 1024;
    z = malloc(2 * n);
    if (z == NULL) {
        return 0;
    }

    cut = two ? (len * (data[0] >> 5)) / 8 : len;

    n = compress_any(how, p, cut, z, 2 * len + 1024);

    if (two) {
        n += compress_any(how, p + cut, len - cut, z + n, 2 * len + 1024);
    }

    rc = decode(&c, coding, z, n, piece, budget, max);

    if (len > max) {
        CHECK(rc == SAVEITEM_CODING_TOO_LARGE, "longer than the limit");
        CHECK(c.out_len == max + 1, "stops at the limit and one byte");
        CHECK(memcmp(c.out, p, max + 1) == 0, "the body, up to the limit");

    } else {
        CHECK(rc == SAVEITEM_CODING_DONE, "a stream made here decodes");
        CHECK(c.out_len == len && memcmp(c.out, p, len) == 0,
              "the same bytes back");
    }

    saveitem_coding_free(&c);
    free(z);

    return 0;
}
