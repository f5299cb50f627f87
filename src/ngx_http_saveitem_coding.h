
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_CODING_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_CODING_H_INCLUDED_


/*
 * Content codings of request bodies (gzip, deflate, zstd), decoded as a
 * stream into one growing buffer that never holds more than the limit
 * and one byte: pure, no nginx inside, so that it can be fuzzed on its own
 * (util/fuzz/fuzz_coding.c).  The nginx side, which feeds it the body's
 * buffers a step at a time, is src/ngx_http_saveitem_decode.c.
 */

#include <stddef.h>
#include <zlib.h>
#include <zstd.h>


/* codings, as bits: a location's set of them is a mask */
#define SAVEITEM_CODING_GZIP      0x01
#define SAVEITEM_CODING_DEFLATE   0x02
#define SAVEITEM_CODING_ZSTD      0x04
#define SAVEITEM_CODING_ALL       0x07

/* saveitem_coding_parse(): not a coding this location takes */
#define SAVEITEM_CODING_UNKNOWN   (-1)
#define SAVEITEM_CODING_STACKED   (-2)

/* what saveitem_coding_feed() says */
#define SAVEITEM_CODING_DONE      0     /* the body is whole, in out */
#define SAVEITEM_CODING_NEED      1     /* all taken: more input */
#define SAVEITEM_CODING_AGAIN     2     /* the budget spent: call again */
#define SAVEITEM_CODING_TOO_LARGE 3     /* more than max once decoded */
#define SAVEITEM_CODING_CORRUPT   4
#define SAVEITEM_CODING_TRUNCATED 5
#define SAVEITEM_CODING_TRAILING  6     /* bytes after the stream's end */
#define SAVEITEM_CODING_NOMEM     7

/*
 * zstd: the largest window a frame may ask for, unless the limit is
 * larger (up to zstd's own default, 2^27): 8 MB covers every level up to
 * 19 of a stream compressed without knowing its size.  The window is
 * allocated, but only its pages that decoded bytes reach are touched.
 */
#define SAVEITEM_CODING_ZSTD_WLOG      23
#define SAVEITEM_CODING_ZSTD_WLOG_MAX  27


typedef struct {
    int                   coding;
    int                   state;
    size_t                max;      /* decoded bytes, at most */
    size_t                in;       /* compressed bytes taken */
    unsigned char        *out;      /* malloc()ed; null-terminated when
                                       done */
    size_t                out_len;
    size_t                out_size;
    const char           *error;    /* the library's words, or NULL */
    z_stream              z;
    ZSTD_DStream         *zs;
    unsigned char         peek[18]; /* deflate: zlib header or raw?
                                       zstd: a frame's header, checked */
    size_t                npeek;
    size_t                peeked;   /* of peek, given to the decoder */
    size_t                window;   /* zstd: the largest window taken */
    unsigned              zinit:1;
    unsigned              members:1;  /* one ended: at a boundary */
    unsigned              header:1;   /* zstd: this frame's is checked */
} saveitem_coding_t;


int saveitem_coding_parse(const unsigned char *p, size_t len, int mask);
const char *saveitem_coding_name(int coding);
size_t saveitem_coding_accept(unsigned char *dst, int mask);
int saveitem_coding_init(saveitem_coding_t *c, int coding, size_t max,
    size_t hint);
int saveitem_coding_feed(saveitem_coding_t *c, const unsigned char *p,
    size_t len, size_t *used, size_t budget, int last);
void saveitem_coding_free(saveitem_coding_t *c);


#endif /* _NGX_HTTP_SAVEITEM_CODING_H_INCLUDED_ */
