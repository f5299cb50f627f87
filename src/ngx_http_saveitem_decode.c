
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * A compressed request body, decoded on the event loop without holding
 * it: nginx has read the body (in memory, or spooled to a temporary
 * file); each step takes the body's buffers where it left them (a file a
 * chunk at a time), decodes at most NGX_HTTP_SAVEITEM_DECODE_STEP bytes,
 * and posts itself for the next turn of the loop (ngx_posted_next_events:
 * the other connections' events run in between).  When the body is
 * decoded, or refused, the request's body handler is called again.
 *
 * The limit (saveitem_decompressed_max_size, else client_max_body_size)
 * holds while decoding: the decoder never gets room beyond it (see
 * src/ngx_http_saveitem_coding.c), so a bomb costs at most the limit's
 * worth of work and memory.  The decoded body is malloc()ed, freed with
 * the request's pool.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_saveitem_decode.h"
#include "ngx_http_saveitem_coding.h"
#include "ngx_http_saveitem_metrics.h"


/* decoded bytes per step, and file reads per step, at most */
#define NGX_HTTP_SAVEITEM_DECODE_STEP    (256 * 1024)
#define NGX_HTTP_SAVEITEM_DECODE_READS   4

/* a spooled body is read in chunks of this size */
#define NGX_HTTP_SAVEITEM_DECODE_CHUNK   (64 * 1024)


struct ngx_http_saveitem_decode_s {
    ngx_http_request_t           *request;
    ngx_http_event_handler_pt     handler;    /* the body's, again */
    ngx_event_t                   event;      /* the next step */
    saveitem_coding_t             coding;
    int                           type;       /* SAVEITEM_CODING_* */
    int                           rc;         /* feed()'s, once done */
    size_t                        max;
    ngx_chain_t                  *cl;         /* the next buffer */
    off_t                         file_pos;   /* in cl's file */
    u_char                       *pos;        /* what is left to feed */
    u_char                       *last;
    u_char                       *chunk;      /* for a spooled body */
    ngx_uint_t                    steps;
    unsigned                      started:1;
    unsigned                      done:1;
    unsigned                      end:1;      /* no buffer after pos */
    unsigned                      in_file:1;  /* cl's file is being read */
    unsigned                      read:1;     /* next() read a file */
    unsigned                      counted:1;
};


static ngx_int_t ngx_http_saveitem_decode_step(ngx_http_request_t *r,
    ngx_http_saveitem_decode_t *d);
static ngx_int_t ngx_http_saveitem_decode_next(ngx_http_request_t *r,
    ngx_http_saveitem_decode_t *d);
static ngx_int_t ngx_http_saveitem_decode_done(ngx_http_request_t *r,
    ngx_http_saveitem_decode_t *d, ngx_http_saveitem_facts_t *f);
static void ngx_http_saveitem_decode_event(ngx_event_t *ev);
static void ngx_http_saveitem_decode_cleanup(void *data);


/*
 * The request's Content-Encoding, before its body is read: NGX_OK, and
 * *dp NULL for a plain body; NGX_DECLINED: not a coding the location
 * takes (accept: what it takes, for Accept-Encoding); NGX_ERROR
 */

ngx_int_t
ngx_http_saveitem_decode_start(ngx_http_request_t *r,
    ngx_http_event_handler_pt handler, ngx_http_saveitem_decode_t **dp,
    ngx_str_t *accept)
{
    u_char                        *p;
    size_t                         len;
    ngx_int_t                      coding;
    ngx_uint_t                     i, n;
    ngx_list_part_t               *part;
    ngx_table_elt_t               *h;
    ngx_pool_cleanup_t            *cln;
    ngx_http_saveitem_decode_t    *d;
    ngx_http_saveitem_loc_conf_t  *slcf;
    u_char                         value[256], text[256];

    *dp = NULL;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    /* the header lines, joined by commas, as RFC 9110 reads them */

    len = 0;
    n = 0;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("Content-Encoding") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Encoding",
                               sizeof("Content-Encoding") - 1)
               != 0)
        {
            continue;
        }

        if (n++) {
            if (len < sizeof(value)) {
                value[len++] = ',';
            }
        }

        if (h[i].value.len > sizeof(value) - len) {
            /* longer than any list of codings taken, once */
            len = sizeof(value);
            continue;
        }

        len += ngx_cpymem(value + len, h[i].value.data, h[i].value.len)
               - (value + len);
    }

    if (n == 0) {
        return NGX_OK;
    }

    coding = saveitem_coding_parse(value, len, (int) slcf->decompress);

    if (coding == 0) {
        return NGX_OK;
    }

    if (coding < 0) {
        p = text + saveitem_log_escape(text, sizeof(text), value,
                                       ngx_min(len, sizeof(text) / 4));

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "saveitem: content coding \"%*s\" %s",
                      p - text, text,
                      coding == SAVEITEM_CODING_STACKED
                      ? "is several codings, not taken"
                      : "is not taken here");

        accept->data = ngx_pnalloc(r->pool, 32);
        if (accept->data == NULL) {
            return NGX_ERROR;
        }

        accept->len = saveitem_coding_accept(accept->data,
                                             (int) slcf->decompress);

        return NGX_DECLINED;
    }

    d = ngx_pcalloc(r->pool, sizeof(ngx_http_saveitem_decode_t));
    if (d == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_saveitem_decode_cleanup;
    cln->data = d;

    d->request = r;
    d->handler = handler;
    d->type = (int) coding;
    d->rc = -1;

    d->event.handler = ngx_http_saveitem_decode_event;
    d->event.data = d;
    d->event.log = r->connection->log;

    *dp = d;

    return NGX_OK;
}


/*
 * From the body handler: NGX_AGAIN, a step was taken and the handler is
 * called again for the next; NGX_OK, decoded (decode_get() gives it);
 * NGX_DECLINED, refused, f says why
 */

ngx_int_t
ngx_http_saveitem_decode_body(ngx_http_request_t *r,
    ngx_http_saveitem_decode_t *d, ngx_http_saveitem_facts_t *f)
{
    off_t                          max, size;
    ngx_buf_t                     *b;
    ngx_chain_t                   *cl;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_saveitem_loc_conf_t  *slcf;

    if (!d->started) {
        d->started = 1;

        slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

        max = slcf->decompress_max;

        if (max == (off_t) NGX_CONF_UNSET_SIZE) {
            clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
            max = clcf->client_max_body_size;

            if (max == 0) {
                max = NGX_HTTP_SAVEITEM_DECOMPRESS_MAX;
            }
        }

        if ((uint64_t) max > NGX_MAX_SIZE_T_VALUE / 2) {
            max = NGX_MAX_SIZE_T_VALUE / 2;
        }

        d->max = (size_t) max;

        size = 0;
        d->cl = r->request_body ? r->request_body->bufs : NULL;

        for (cl = d->cl; cl; cl = cl->next) {
            b = cl->buf;
            size += b->in_file ? b->file_last - b->file_pos
                               : b->last - b->pos;
        }

        /* a first guess of the decoded size: text compresses about 4:1 */

        size = ngx_min(size, (off_t) d->max / 4) * 4;

        if (saveitem_coding_init(&d->coding, d->type, d->max, (size_t) size)
            != SAVEITEM_CODING_DONE)
        {
            d->rc = SAVEITEM_CODING_NOMEM;
            return ngx_http_saveitem_decode_done(r, d, f);
        }
    }

    if (!d->done) {

        if (ngx_http_saveitem_decode_step(r, d) == NGX_AGAIN) {
            d->steps++;
            ngx_post_event(&d->event, &ngx_posted_next_events);

            /*
             * a client that leaves meanwhile ends the request: its pool's
             * cleanup takes the next step off the queue
             */

            r->read_event_handler = ngx_http_test_reading;

            return NGX_AGAIN;
        }

        d->done = 1;
    }

    return ngx_http_saveitem_decode_done(r, d, f);
}


/* one step: NGX_AGAIN, more to do; NGX_OK, d->rc says how it ended */

static ngx_int_t
ngx_http_saveitem_decode_step(ngx_http_request_t *r,
    ngx_http_saveitem_decode_t *d)
{
    int         rc;
    size_t      used, start, made;
    ngx_uint_t  reads;

    start = d->coding.out_len;
    reads = 0;

    for ( ;; ) {

        if (d->pos == d->last && !d->end) {

            if (reads == NGX_HTTP_SAVEITEM_DECODE_READS) {
                return NGX_AGAIN;
            }

            if (ngx_http_saveitem_decode_next(r, d) != NGX_OK) {
                d->rc = SAVEITEM_CODING_NOMEM;
                return NGX_OK;
            }

            reads += d->read;
        }

        made = d->coding.out_len - start;

        if (made >= NGX_HTTP_SAVEITEM_DECODE_STEP) {
            return NGX_AGAIN;
        }

        rc = saveitem_coding_feed(&d->coding, d->pos, d->last - d->pos,
                                  &used, NGX_HTTP_SAVEITEM_DECODE_STEP - made,
                                  d->end);

        if (used) {
            /* an empty buffer may have no pointers at all */
            d->pos += used;
        }

        switch (rc) {

        case SAVEITEM_CODING_NEED:

            if (d->end) {
                d->rc = SAVEITEM_CODING_TRUNCATED;
                return NGX_OK;
            }

            continue;

        case SAVEITEM_CODING_AGAIN:
            return NGX_AGAIN;

        default:
            d->rc = rc;
            return NGX_OK;
        }
    }
}


/* the next piece of the body: a buffer in memory, or a chunk of a file */

static ngx_int_t
ngx_http_saveitem_decode_next(ngx_http_request_t *r,
    ngx_http_saveitem_decode_t *d)
{
    off_t       size;
    ssize_t     n;
    ngx_buf_t  *b;

    for ( ;; ) {

        if (d->cl == NULL) {
            d->pos = d->last = (u_char *) "";
            d->end = 1;
            return NGX_OK;
        }

        b = d->cl->buf;
        d->read = 0;

        if (!b->in_file) {
            d->pos = b->pos;
            d->last = b->last;
            d->cl = d->cl->next;
            d->end = (d->cl == NULL);
            return NGX_OK;
        }

        if (!d->in_file) {
            d->in_file = 1;
            d->file_pos = b->file_pos;
        }

        size = ngx_min(b->file_last - d->file_pos,
                       NGX_HTTP_SAVEITEM_DECODE_CHUNK);

        if (size <= 0) {
            d->cl = d->cl->next;
            d->in_file = 0;
            continue;
        }

        if (d->chunk == NULL) {
            d->chunk = ngx_pnalloc(r->pool, NGX_HTTP_SAVEITEM_DECODE_CHUNK);
            if (d->chunk == NULL) {
                return NGX_ERROR;
            }
        }

        n = ngx_read_file(b->file, d->chunk, (size_t) size, d->file_pos);

        if (n != size) {
            ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                          "saveitem: could not read the request body "
                          "from \"%V\"", &b->file->name);
            return NGX_ERROR;
        }

        d->file_pos += n;
        d->pos = d->chunk;
        d->last = d->chunk + n;
        d->read = 1;

        if (d->file_pos == b->file_last) {
            d->cl = d->cl->next;
            d->in_file = 0;
            d->end = (d->cl == NULL);
        }

        return NGX_OK;
    }
}


/* the decoding ended: counted, logged, and the facts of a refusal */

static ngx_int_t
ngx_http_saveitem_decode_done(ngx_http_request_t *r,
    ngx_http_saveitem_decode_t *d, ngx_http_saveitem_facts_t *f)
{
    u_char                        *p, *last;
    ngx_uint_t                     level;
    const char                    *name;
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    if (!d->counted) {
        d->counted = 1;

        ngx_http_saveitem_metrics_decoded(slcf->db->counters,
                                          d->type == SAVEITEM_CODING_GZIP ? 0
                                          : d->type == SAVEITEM_CODING_DEFLATE
                                            ? 1 : 2,
                                          d->coding.in, d->coding.out_len,
                                          d->rc == SAVEITEM_CODING_TOO_LARGE);

        ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "saveitem decoded %s: %uz bytes into %uz, "
                       "%ui steps, rc %d",
                       saveitem_coding_name(d->type), d->coding.in,
                       d->coding.out_len, d->steps, d->rc);
    }

    if (d->rc == SAVEITEM_CODING_DONE) {
        return NGX_OK;
    }

    ngx_memzero(f, sizeof(ngx_http_saveitem_facts_t));
    f->outcome = NGX_HTTP_SAVEITEM_NOT_STORED;

    name = saveitem_coding_name(d->type);
    level = NGX_LOG_INFO;

    p = ngx_pnalloc(r->pool, 256);
    if (p == NULL) {
        f->reason = NGX_HTTP_SAVEITEM_R_INTERNAL;
        return NGX_DECLINED;
    }

    last = p + 255;
    f->detail = (const char *) p;

    switch (d->rc) {

    case SAVEITEM_CODING_TOO_LARGE:
        f->reason = NGX_HTTP_SAVEITEM_R_DECODED_TOO_LARGE;
        level = NGX_LOG_WARN;

        if (d->coding.error) {
            p = ngx_slprintf(p, last, "the %s stream needs more memory to "
                             "decode than this location allows", name);

        } else {
            p = ngx_slprintf(p, last, "the %s body decompresses to more "
                             "than %uz bytes", name, d->max);
        }

        break;

    case SAVEITEM_CODING_CORRUPT:
        f->reason = NGX_HTTP_SAVEITEM_R_DECODE_FAILED;
        p = ngx_slprintf(p, last, "the %s stream is corrupt", name);

        if (d->coding.error) {
            p = ngx_slprintf(p, last, ": %s", d->coding.error);
        }

        break;

    case SAVEITEM_CODING_TRUNCATED:
        f->reason = NGX_HTTP_SAVEITEM_R_DECODE_FAILED;
        p = ngx_slprintf(p, last, "the %s stream is truncated", name);
        break;

    case SAVEITEM_CODING_TRAILING:
        f->reason = NGX_HTTP_SAVEITEM_R_DECODE_FAILED;
        p = ngx_slprintf(p, last, "bytes follow the end of the %s stream",
                         name);
        break;

    default:
        f->reason = NGX_HTTP_SAVEITEM_R_INTERNAL;
        f->detail = NULL;

        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "saveitem: could not decode a %s body (no memory?)",
                      name);
        return NGX_DECLINED;
    }

    *p = '\0';

    ngx_log_error(level, r->connection->log, 0,
                  "saveitem: %s, refused (%uz bytes read, %uz decoded)",
                  f->detail, d->coding.in, d->coding.out_len);

    return NGX_DECLINED;
}


static void
ngx_http_saveitem_decode_event(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_saveitem_decode_t  *d;

    d = ev->data;
    r = d->request;
    c = r->connection;

    d->handler(r);
    ngx_http_run_posted_requests(c);
}


/* the decoded body, null-terminated; as long as the request's pool */

void
ngx_http_saveitem_decode_get(ngx_http_saveitem_decode_t *d, ngx_str_t *body)
{
    body->data = d->coding.out;
    body->len = d->coding.out_len;
}


/* the request's pool goes: so do the decoder and the body it made */

static void
ngx_http_saveitem_decode_cleanup(void *data)
{
    ngx_http_saveitem_decode_t *d = data;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, d->event.log, 0,
                   "saveitem decode cleanup: %uz bytes decoded, %ui steps%s",
                   d->coding.out_len, d->steps,
                   d->event.posted ? ", a step posted" : "");

    if (d->event.posted) {
        ngx_delete_posted_event(&d->event);
    }

    if (d->started) {
        saveitem_coding_free(&d->coding);
    }
}
