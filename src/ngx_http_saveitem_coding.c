
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * Content codings of request bodies, pure (see
 * ngx_http_saveitem_coding.h): the Content-Encoding header, and a stream
 * decoder that takes the compressed body in pieces of any size and
 * writes the decoded body into one buffer.
 *
 * A bomb cannot pass: the buffer grows (doubling, from a hint) to at most
 * the limit and one byte; the decoder is never given room beyond it, so
 * the work done is at most the limit's worth, whatever the ratio.  Each
 * call also stops after "budget" decoded bytes, so that the caller can
 * give the event loop back between steps.
 *
 *   gzip (x-gzip)  RFC 1952; several members one after the other are one
 *                  body, as gzip -d reads them
 *   deflate        RFC 1950 (zlib), as HTTP defines it; raw RFC 1951 too,
 *                  as some clients send it: told apart by the zlib header
 *   zstd           RFC 8878; several frames one after the other, skippable
 *                  frames skipped; the window a frame asks for is bounded
 *
 * A stream that stops inside a member or frame is truncated; bytes after
 * its end that do not begin another member or frame are trailing: both
 * refused, as a corrupt stream is.
 */


/* ZSTD_getFrameHeader(): exported by libzstd, declared in its static part */
#define ZSTD_STATIC_LINKING_ONLY

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zstd_errors.h>

#include "ngx_http_saveitem_coding.h"


#define SAVEITEM_CODING_S_START    0    /* no byte yet */
#define SAVEITEM_CODING_S_IN       1    /* inside a member or frame */
#define SAVEITEM_CODING_S_BETWEEN  2    /* after one: another may come */
#define SAVEITEM_CODING_S_END      3    /* deflate: nothing may follow */
#define SAVEITEM_CODING_S_DONE     4

/* the first size of the buffer, at least */
#define SAVEITEM_CODING_MIN_SIZE   4096


static int saveitem_coding_grow(saveitem_coding_t *c);
static int saveitem_coding_zstd_header(saveitem_coding_t *c,
    const unsigned char *p, size_t len, size_t *used, int last);
static int saveitem_coding_finish(saveitem_coding_t *c);
static void saveitem_coding_end(saveitem_coding_t *c);


/*
 * The value of Content-Encoding (several header lines joined by commas):
 * 0 for none ("identity", or nothing), a coding of the mask, or
 * SAVEITEM_CODING_UNKNOWN (not one the mask takes), or
 * SAVEITEM_CODING_STACKED (more than one coding: never decoded twice)
 */

int
saveitem_coding_parse(const unsigned char *p, size_t len, int mask)
{
    int      coding, found, n;
    size_t   i, start, end;

    found = 0;
    n = 0;
    i = 0;

    while (i <= len) {

        for (start = i; start < len && (p[start] == ' ' || p[start] == '\t');
             start++)
        {
            /* void */
        }

        for (end = start; end < len && p[end] != ','; end++) {
            /* void */
        }

        i = end + 1;

        while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t')) {
            end--;
        }

        if (end == start
            || (end - start == 8
                && strncasecmp((const char *) p + start, "identity", 8) == 0))
        {
            continue;
        }

        if ((end - start == 4
             && strncasecmp((const char *) p + start, "gzip", 4) == 0)
            || (end - start == 6
                && strncasecmp((const char *) p + start, "x-gzip", 6) == 0))
        {
            coding = SAVEITEM_CODING_GZIP;

        } else if (end - start == 7
                   && strncasecmp((const char *) p + start, "deflate", 7)
                      == 0)
        {
            coding = SAVEITEM_CODING_DEFLATE;

        } else if (end - start == 4
                   && strncasecmp((const char *) p + start, "zstd", 4) == 0)
        {
            coding = SAVEITEM_CODING_ZSTD;

        } else {
            coding = SAVEITEM_CODING_UNKNOWN;
        }

        found = coding;
        n++;
    }

    if (n > 1) {
        return SAVEITEM_CODING_STACKED;
    }

    if (found > 0 && !(found & mask)) {
        return SAVEITEM_CODING_UNKNOWN;
    }

    return found;
}


const char *
saveitem_coding_name(int coding)
{
    switch (coding) {

    case SAVEITEM_CODING_GZIP:
        return "gzip";

    case SAVEITEM_CODING_DEFLATE:
        return "deflate";

    case SAVEITEM_CODING_ZSTD:
        return "zstd";

    default:
        return "identity";
    }
}


/* the value of Accept-Encoding for a mask; dst holds 32 bytes */

size_t
saveitem_coding_accept(unsigned char *dst, int mask)
{
    int          bit;
    size_t       n, k;
    const char  *name;

    n = 0;

    for (bit = SAVEITEM_CODING_GZIP; bit & SAVEITEM_CODING_ALL; bit <<= 1) {

        if (!(mask & bit)) {
            continue;
        }

        if (n) {
            memcpy(dst + n, ", ", 2);
            n += 2;
        }

        name = saveitem_coding_name(bit);
        k = strlen(name);
        memcpy(dst + n, name, k);
        n += k;
    }

    if (n == 0) {
        memcpy(dst, "identity", 8);
        n = 8;
    }

    return n;
}


/* max: decoded bytes at most; hint: a first size for the buffer */

int
saveitem_coding_init(saveitem_coding_t *c, int coding, size_t max,
    size_t hint)
{
    size_t  wlog;

    memset(c, 0, sizeof(saveitem_coding_t));

    c->coding = coding;
    c->max = max;
    c->state = SAVEITEM_CODING_S_START;

    if (max == (size_t) -1) {
        return SAVEITEM_CODING_NOMEM;
    }

    c->out_size = hint < SAVEITEM_CODING_MIN_SIZE ? SAVEITEM_CODING_MIN_SIZE
                                                  : hint;
    if (c->out_size > max + 1) {
        c->out_size = max + 1;
    }

    c->out = malloc(c->out_size);
    if (c->out == NULL) {
        return SAVEITEM_CODING_NOMEM;
    }

    switch (coding) {

    case SAVEITEM_CODING_GZIP:

        /* 16 + MAX_WBITS: a gzip header and trailer, nothing else */

        if (inflateInit2(&c->z, 16 + MAX_WBITS) != Z_OK) {
            return SAVEITEM_CODING_NOMEM;
        }

        c->zinit = 1;
        break;

    case SAVEITEM_CODING_DEFLATE:
        /* zlib's or raw: the first two bytes tell (feed()) */
        break;

    case SAVEITEM_CODING_ZSTD:

        c->zs = ZSTD_createDStream();
        if (c->zs == NULL) {
            return SAVEITEM_CODING_NOMEM;
        }

        for (wlog = SAVEITEM_CODING_ZSTD_WLOG;
             wlog < SAVEITEM_CODING_ZSTD_WLOG_MAX && ((size_t) 1 << wlog) < max;
             wlog++)
        {
            /* void */
        }

        if (ZSTD_isError(ZSTD_DCtx_setParameter(c->zs, ZSTD_d_windowLogMax,
                                                (int) wlog)))
        {
            return SAVEITEM_CODING_NOMEM;
        }

        c->window = (size_t) 1 << wlog;

        break;

    default:
        return SAVEITEM_CODING_CORRUPT;
    }

    return SAVEITEM_CODING_DONE;
}


/*
 * Decodes from p (len bytes; *used: how many were taken), writing at most
 * "budget" more decoded bytes; last: no input after p.  NEED: p is all
 * taken, give more; AGAIN: the budget is spent, call again with the rest
 * of p (or with nothing, if it was all taken); DONE: c->out holds the
 * body, c->out_len bytes and a null byte; else an error (c->error may
 * say the library's words).
 */

int
saveitem_coding_feed(saveitem_coding_t *c, const unsigned char *p,
    size_t len, size_t *used, size_t budget, int last)
{
    int                   rc, zlib, peek;
    size_t                srclen, avail, took, made, produced, ret;
    ZSTD_inBuffer         zin;
    ZSTD_outBuffer        zout;
    const unsigned char  *src;

    *used = 0;
    produced = 0;

    if (p == NULL) {
        /* no input: p + 0 must still be a pointer */
        p = (const unsigned char *) "";
        len = 0;
    }

    if (c->state == SAVEITEM_CODING_S_DONE) {
        return len ? SAVEITEM_CODING_TRAILING : SAVEITEM_CODING_DONE;
    }

    /* deflate: a zlib header (RFC 1950), or raw deflate */

    if (c->coding == SAVEITEM_CODING_DEFLATE && !c->zinit) {

        while (c->npeek < 2 && *used < len) {
            c->peek[c->npeek++] = p[(*used)++];
            c->in++;
        }

        if (c->npeek < 2 && !last) {
            return SAVEITEM_CODING_NEED;
        }

        if (c->npeek == 0) {
            return SAVEITEM_CODING_TRUNCATED;
        }

        zlib = (c->npeek == 2
                && (c->peek[0] & 0x0f) == Z_DEFLATED
                && (c->peek[0] >> 4) + 8 <= MAX_WBITS
                && ((c->peek[0] << 8) | c->peek[1]) % 31 == 0);

        if (inflateInit2(&c->z, zlib ? MAX_WBITS : -MAX_WBITS) != Z_OK) {
            return SAVEITEM_CODING_NOMEM;
        }

        c->zinit = 1;
        c->state = SAVEITEM_CODING_S_IN;
    }

    for ( ;; ) {

        if (c->out_len > c->max) {
            return SAVEITEM_CODING_TOO_LARGE;
        }

        if (c->coding == SAVEITEM_CODING_ZSTD && !c->header) {
            rc = saveitem_coding_zstd_header(c, p, len, used, last);

            if (rc != SAVEITEM_CODING_DONE
                || c->state == SAVEITEM_CODING_S_DONE)
            {
                return rc;
            }
        }

        peek = (c->peeked < c->npeek);

        if (peek) {
            src = c->peek + c->peeked;
            srclen = c->npeek - c->peeked;

        } else {
            src = p + *used;
            srclen = len - *used;
        }

        if (srclen > UINT_MAX) {
            srclen = UINT_MAX;
        }

        if (c->state == SAVEITEM_CODING_S_BETWEEN
            || c->state == SAVEITEM_CODING_S_END)
        {
            if (srclen == 0) {
                return last ? saveitem_coding_finish(c)
                            : SAVEITEM_CODING_NEED;
            }

            if (c->state == SAVEITEM_CODING_S_END) {
                return SAVEITEM_CODING_TRAILING;
            }

            /* another gzip member begins with its magic, 1f 8b */

            if (c->coding == SAVEITEM_CODING_GZIP) {
                if (src[0] != 0x1f) {
                    return SAVEITEM_CODING_TRAILING;
                }

                if (inflateReset(&c->z) != Z_OK) {
                    return SAVEITEM_CODING_CORRUPT;
                }
            }

            c->state = SAVEITEM_CODING_S_IN;
        }

        if (c->out_len == c->out_size) {
            rc = saveitem_coding_grow(c);
            if (rc != SAVEITEM_CODING_DONE) {
                return rc;
            }
        }

        if (produced >= budget) {
            return SAVEITEM_CODING_AGAIN;
        }

        avail = c->out_size - c->out_len;

        if (avail > budget - produced) {
            avail = budget - produced;
        }

        if (avail > UINT_MAX) {
            avail = UINT_MAX;
        }

        c->state = SAVEITEM_CODING_S_IN;

        if (c->coding == SAVEITEM_CODING_ZSTD) {
            zin.src = src;
            zin.size = srclen;
            zin.pos = 0;
            zout.dst = c->out + c->out_len;
            zout.size = avail;
            zout.pos = 0;

            ret = ZSTD_decompressStream(c->zs, &zout, &zin);
            rc = Z_OK;

            took = zin.pos;
            made = zout.pos;

        } else {
            c->z.next_in = (unsigned char *) src;
            c->z.avail_in = (uInt) srclen;
            c->z.next_out = c->out + c->out_len;
            c->z.avail_out = (uInt) avail;

            rc = inflate(&c->z, Z_NO_FLUSH);

            took = srclen - c->z.avail_in;
            made = avail - c->z.avail_out;
            ret = 0;
        }

        if (peek) {
            c->peeked += took;

        } else {
            *used += took;
            c->in += took;
        }

        c->out_len += made;
        produced += made;

        if (c->coding == SAVEITEM_CODING_ZSTD) {

            if (ZSTD_isError(ret)) {
                c->error = ZSTD_getErrorName(ret);

                switch (ZSTD_getErrorCode(ret)) {

                case ZSTD_error_frameParameter_windowTooLarge:
                    return SAVEITEM_CODING_TOO_LARGE;

                case ZSTD_error_memory_allocation:
                    return SAVEITEM_CODING_NOMEM;

                case ZSTD_error_prefix_unknown:
                    if (c->members) {
                        c->error = NULL;
                        return SAVEITEM_CODING_TRAILING;
                    }

                    /* fall through */

                default:
                    return SAVEITEM_CODING_CORRUPT;
                }
            }

            if (ret == 0) {
                /* a frame ended, all of it written */
                c->state = SAVEITEM_CODING_S_BETWEEN;
                c->members = 1;
                c->header = 0;
                c->npeek = 0;
                c->peeked = 0;
                continue;
            }

            if (zout.pos == zout.size) {
                continue;
            }

            if (zin.pos == zin.size) {
                /* all taken, room left: it waits for input */

                if (peek) {
                    continue;
                }

                return last ? SAVEITEM_CODING_TRUNCATED
                            : SAVEITEM_CODING_NEED;
            }

            if (took == 0 && made == 0) {
                c->error = "the decoder makes no progress";
                return SAVEITEM_CODING_CORRUPT;
            }

            continue;
        }

        switch (rc) {

        case Z_STREAM_END:
            c->members = 1;
            c->state = (c->coding == SAVEITEM_CODING_GZIP)
                       ? SAVEITEM_CODING_S_BETWEEN : SAVEITEM_CODING_S_END;
            continue;

        case Z_OK:
            continue;

        case Z_BUF_ERROR:

            if (c->z.avail_out == 0) {
                continue;
            }

            /* no input left: it waits for more */

            if (peek) {
                continue;
            }

            return last ? SAVEITEM_CODING_TRUNCATED : SAVEITEM_CODING_NEED;

        case Z_MEM_ERROR:
            return SAVEITEM_CODING_NOMEM;

        case Z_NEED_DICT:
            c->error = "a preset dictionary is needed";
            return SAVEITEM_CODING_CORRUPT;

        default:
            c->error = c->z.msg;
            return SAVEITEM_CODING_CORRUPT;
        }
    }
}


/*
 * zstd: a frame's header, gathered from the input and judged before the
 * library sees it (its magic, and the window it asks for), then given to
 * it whole: libzstd 1.5.4 skips its own window check, and takes what
 * follows for a legacy frame, when a header it refuses comes in pieces
 * and the next piece begins with a legacy magic (found by the fuzzer).
 * DONE: the header is in peek, to be fed first; or, at the end of the
 * input between frames, the body is done (c->state says so).
 */

static int
saveitem_coding_zstd_header(saveitem_coding_t *c, const unsigned char *p,
    size_t len, size_t *used, int last)
{
    size_t              need;
    ZSTD_frameHeader    fh;

    for ( ;; ) {
        need = ZSTD_getFrameHeader(&fh, c->peek, c->npeek);

        if (ZSTD_isError(need)) {

            switch (ZSTD_getErrorCode(need)) {

            case ZSTD_error_prefix_unknown:
                if (c->members) {
                    return SAVEITEM_CODING_TRAILING;
                }

                c->error = "Unknown frame descriptor";
                return SAVEITEM_CODING_CORRUPT;

            case ZSTD_error_frameParameter_windowTooLarge:
                c->error = ZSTD_getErrorName(need);
                return SAVEITEM_CODING_TOO_LARGE;

            default:
                c->error = ZSTD_getErrorName(need);
                return SAVEITEM_CODING_CORRUPT;
            }
        }

        if (need == 0) {
            break;
        }

        if (need > sizeof(c->peek)) {
            c->error = "a frame header too long";
            return SAVEITEM_CODING_CORRUPT;
        }

        if (*used == len) {
            if (!last) {
                return SAVEITEM_CODING_NEED;
            }

            if (c->npeek == 0 && c->state == SAVEITEM_CODING_S_BETWEEN) {
                return saveitem_coding_finish(c);
            }

            return SAVEITEM_CODING_TRUNCATED;
        }

        while (c->npeek < need && *used < len) {
            c->peek[c->npeek++] = p[(*used)++];
            c->in++;
        }
    }

    if (fh.frameType == ZSTD_frame && fh.windowSize > c->window) {
        c->error = "Frame requires too much memory for decoding";
        return SAVEITEM_CODING_TOO_LARGE;
    }

    c->header = 1;
    c->peeked = 0;
    c->state = SAVEITEM_CODING_S_IN;

    return SAVEITEM_CODING_DONE;
}


/* twice as large, up to the limit and one byte: that byte says "more" */

static int
saveitem_coding_grow(saveitem_coding_t *c)
{
    size_t          size;
    unsigned char  *out;

    if (c->out_size > c->max) {
        return SAVEITEM_CODING_TOO_LARGE;
    }

    size = c->out_size * 2;

    if (size > c->max + 1 || size < c->out_size) {
        size = c->max + 1;
    }

    out = realloc(c->out, size);
    if (out == NULL) {
        return SAVEITEM_CODING_NOMEM;
    }

    c->out = out;
    c->out_size = size;

    return SAVEITEM_CODING_DONE;
}


/* the end of the input at a boundary: the body, null-terminated */

static int
saveitem_coding_finish(saveitem_coding_t *c)
{
    unsigned char  *out;

    if (c->out_len == c->out_size) {
        out = realloc(c->out, c->out_size + 1);
        if (out == NULL) {
            return SAVEITEM_CODING_NOMEM;
        }

        c->out = out;
        c->out_size++;
    }

    c->out[c->out_len] = '\0';
    c->state = SAVEITEM_CODING_S_DONE;

    saveitem_coding_end(c);

    return SAVEITEM_CODING_DONE;
}


/* the decoder's own memory, as soon as it is not needed */

static void
saveitem_coding_end(saveitem_coding_t *c)
{
    if (c->zinit) {
        (void) inflateEnd(&c->z);
        c->zinit = 0;
    }

    if (c->zs != NULL) {
        (void) ZSTD_freeDStream(c->zs);
        c->zs = NULL;
    }
}


void
saveitem_coding_free(saveitem_coding_t *c)
{
    saveitem_coding_end(c);

    free(c->out);
    c->out = NULL;
    c->out_len = 0;
    c->out_size = 0;
}
