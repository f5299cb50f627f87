
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * The request, in the order data flows: the content handler (method,
 * content type), the body (read without blocking, one contiguous copy),
 * a bulk body split into its documents, the Idempotency-Key, the job
 * posted on the location's pool and its handler when the pool is done;
 * and saveitem_ready's handler, which asks the pool.  Every answer is
 * written by src/ngx_http_saveitem_answer.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_saveitem_http.h"
#include "ngx_http_saveitem_decode.h"


/* a saveitem_ready probe that waits for a connection being opened */

typedef struct {
    ngx_http_request_t           *request;
    ngx_event_t                   poll;
    ngx_msec_t                    deadline;
} ngx_http_saveitem_ready_t;


/* a key from a mapped column that cannot be a key, as header keys */
static const char  ngx_http_saveitem_not_a_key[] =
    "is not a key: 1 to 255 visible ASCII characters";


/* saveitem_ready: how often a waiting probe looks, and its extra time */
#define NGX_HTTP_SAVEITEM_READY_POLL     25
#define NGX_HTTP_SAVEITEM_READY_SLACK    500


static void ngx_http_saveitem_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_saveitem_fail(ngx_http_request_t *r);
static ngx_int_t ngx_http_saveitem_process(ngx_http_request_t *r,
    ngx_http_saveitem_ctx_t *ctx);
static ngx_int_t ngx_http_saveitem_post(ngx_http_request_t *r,
    ngx_http_saveitem_ctx_t *ctx, ngx_str_t *body, ngx_str_t *key,
    ngx_uint_t bulk);
static ngx_int_t ngx_http_saveitem_bulk(ngx_http_request_t *r,
    ngx_http_saveitem_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_saveitem_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_http_saveitem_stmt_t *ngx_http_saveitem_stmt(ngx_http_request_t *r);
static ngx_int_t ngx_http_saveitem_judge(ngx_http_request_t *r,
    ngx_http_saveitem_stmt_t *stmt, u_char *doc, size_t len, ngx_str_t *key,
    ngx_http_saveitem_facts_t *f);
static ngx_int_t ngx_http_saveitem_values(ngx_http_request_t *r,
    ngx_http_saveitem_ctx_t *ctx, ngx_http_saveitem_stmt_t *stmt,
    ngx_str_t *key, ngx_http_saveitem_facts_t *f);
static ngx_int_t ngx_http_saveitem_key(ngx_http_request_t *r,
    ngx_str_t *key);
static void ngx_http_saveitem_cleanup(void *data);
static void ngx_http_saveitem_job_handler(ngx_http_saveitem_job_t *job);

static ngx_int_t ngx_http_saveitem_ready_probe(ngx_http_saveitem_ready_t *rd,
    ngx_http_saveitem_facts_t *f);
static void ngx_http_saveitem_ready_poll(ngx_event_t *ev);
static void ngx_http_saveitem_ready_cleanup(void *data);


ngx_int_t
ngx_http_saveitem_request_handler(ngx_http_request_t *r)
{
    u_char                        *p;
    ngx_int_t                      rc;
    ngx_str_t                      accept;
    ngx_uint_t                     lines;
    ngx_table_elt_t               *h;
    ngx_http_saveitem_ctx_t       *ctx;
    ngx_http_saveitem_loc_conf_t  *slcf;
    u_char                         type[256];

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_saveitem_answer_not_allowed(r,
                                                    NGX_HTTP_SAVEITEM_R_METHOD);
    }

    h = r->headers_in.content_type;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);
    lines = 0;

    if (h != NULL && slcf->bulk
        && saveitem_content_type_is_ndjson(h->value.data, h->value.len))
    {
        lines = 1;

    } else if (h != NULL
               && !saveitem_content_type_is_json(h->value.data, h->value.len))
    {
        /* the client's bytes, escaped as nginx escapes them in its log */

        p = type + saveitem_log_escape(type, sizeof(type), h->value.data,
                                       h->value.len);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "saveitem: content type \"%*s\" is not JSON",
                      p - type, type);

        return ngx_http_saveitem_answer_refuse(r,
                                           NGX_HTTP_SAVEITEM_R_MEDIA_TYPE);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_saveitem_ctx_t));
    if (ctx == NULL) {
        return ngx_http_saveitem_answer_refuse(r, NGX_HTTP_SAVEITEM_R_INTERNAL);
    }

    ctx->request = r;
    ctx->lines = lines;
    ngx_http_set_ctx(r, ctx, ngx_http_saveitem_module);

    /* a compressed body: a coding the location takes, or 415 */

    rc = ngx_http_saveitem_decode_start(r, ngx_http_saveitem_body_handler,
                                        &ctx->decode, &accept);

    if (rc == NGX_DECLINED) {
        return ngx_http_saveitem_answer_coding(r, &accept);
    }

    if (rc != NGX_OK) {
        return ngx_http_saveitem_answer_refuse(r, NGX_HTTP_SAVEITEM_R_INTERNAL);
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_saveitem_body_handler);

    if (rc == NGX_HTTP_INTERNAL_SERVER_ERROR) {
        /* nginx's own failure (memory, a temporary file): ours in JSON */
        return ngx_http_saveitem_answer_internal(r, NULL, 0);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* 413, and what breaks HTTP's framing: nginx's page, as nginx's */
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_saveitem_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_saveitem_ctx_t   *ctx;
    ngx_http_saveitem_facts_t  f;

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    /* a compressed body is decoded first, in steps: called again after */

    if (ctx->decode != NULL) {
        rc = ngx_http_saveitem_decode_body(r, ctx->decode, &f);

        if (rc == NGX_AGAIN) {
            return;
        }

        if (rc != NGX_OK) {
            ngx_http_finalize_request(r, ngx_http_saveitem_answer(r, &f));
            return;
        }
    }

    rc = ngx_http_saveitem_process(r, ctx);

    if (rc == NGX_DONE) {
        /* the job's handler finalizes the request */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


/* the request's body read: nothing went wrong that the client caused */

static ngx_int_t
ngx_http_saveitem_fail(ngx_http_request_t *r)
{
    ngx_http_saveitem_facts_t  f;

    ngx_memzero(&f, sizeof(ngx_http_saveitem_facts_t));
    f.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
    f.reason = NGX_HTTP_SAVEITEM_R_INTERNAL;

    return ngx_http_saveitem_answer(r, &f);
}


static ngx_int_t
ngx_http_saveitem_process(ngx_http_request_t *r, ngx_http_saveitem_ctx_t *ctx)
{
    ngx_int_t                      rc;
    ngx_str_t                      body, key;
    saveitem_json_error_t          json;
    ngx_http_saveitem_stmt_t      *stmt;
    ngx_http_saveitem_facts_t      f;
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    if (ngx_http_saveitem_read_body(r, &body) != NGX_OK) {
        return ngx_http_saveitem_fail(r);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "saveitem body: %uz bytes", body.len);

    if (slcf->bulk && (ctx->lines || saveitem_json_is_array(body.data,
                                                              body.len)))
    {
        return ngx_http_saveitem_bulk(r, ctx, &body);
    }

    rc = saveitem_json_check(body.data, body.len, &json);

    switch (rc) {

    case SAVEITEM_JSON_OK:
        break;

    case SAVEITEM_JSON_INVALID:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "saveitem: invalid JSON at line %uz, column %uz: %s",
                      json.line, json.column, json.message);

        ngx_memzero(&f, sizeof(ngx_http_saveitem_facts_t));
        f.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
        f.reason = NGX_HTTP_SAVEITEM_R_INVALID_JSON;
        f.json = &json;

        return ngx_http_saveitem_answer(r, &f);

    default:
        return ngx_http_saveitem_fail(r);
    }

    ngx_str_null(&key);

    stmt = ngx_http_saveitem_stmt(r);

    if (stmt->mapped) {
        ngx_memzero(&f, sizeof(ngx_http_saveitem_facts_t));

        rc = ngx_http_saveitem_values(r, ctx, stmt, &key, &f);

        if (rc == NGX_OK) {
            rc = ngx_http_saveitem_judge(r, stmt, body.data, body.len, &key,
                                         &f);
        }

        if (rc == NGX_ERROR) {
            return ngx_http_saveitem_fail(r);
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_saveitem_answer(r, &f);
        }
    }

    /* a key from a mapped column is the key: the header is not asked */

    rc = (slcf->idempotency && stmt->key_col < 0)
         ? ngx_http_saveitem_key(r, &key) : NGX_OK;

    if (rc == NGX_ERROR) {
        return ngx_http_saveitem_fail(r);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "saveitem: invalid Idempotency-Key header");

        ngx_memzero(&f, sizeof(ngx_http_saveitem_facts_t));
        f.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
        f.reason = NGX_HTTP_SAVEITEM_R_INVALID_KEY;

        return ngx_http_saveitem_answer(r, &f);
    }

    return ngx_http_saveitem_post(r, ctx, &body, &key, 0);
}


/*
 * The job of a request: queued on its location's pool, detached by the
 * request's cleanup if the request ends first; its handler answers.
 */

static ngx_int_t
ngx_http_saveitem_post(ngx_http_request_t *r, ngx_http_saveitem_ctx_t *ctx,
    ngx_str_t *body, ngx_str_t *key, ngx_uint_t bulk)
{
    ngx_http_cleanup_t            *cln;
    ngx_http_saveitem_job_t       *job;
    ngx_http_saveitem_facts_t      f;
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    /* before the job is posted: once posted, its row may be stored */

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return ngx_http_saveitem_fail(r);
    }

    cln->handler = ngx_http_saveitem_cleanup;
    cln->data = ctx;

    job = ngx_http_saveitem_job_get(slcf->db->pool);
    if (job == NULL) {
        return ngx_http_saveitem_fail(r);
    }

    job->data = ctx;
    job->handler = ngx_http_saveitem_job_handler;
    job->log = r->connection->log;
    job->stmt = slcf->stmt;
    job->timeout = slcf->query_timeout;
    job->body = body->data;
    job->body_len = body->len;
    job->key = *key;
    job->bulk = bulk;
    job->batch_rows = slcf->batch_rows;
    job->batch_bytes = slcf->batch_bytes;
    job->values = ctx->values;

    if (ngx_http_saveitem_job_post(job) != NGX_OK) {
        f = job->facts;
        ngx_http_saveitem_job_release(job);

        return ngx_http_saveitem_answer(r, &f);
    }

    ctx->job = job;

    /* notice a client that goes away while the statement runs */

    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
}


/*
 * A bulk body: a JSON array, or NDJSON, of at most "bulk=" documents,
 * each judged as a single document is; one job stores them all in one
 * statement, or none.  NDJSON becomes an array (one copy).
 */

static ngx_int_t
ngx_http_saveitem_bulk(ngx_http_request_t *r, ngx_http_saveitem_ctx_t *ctx,
    ngx_str_t *body)
{
    u_char                        *p, *array;
    size_t                         start, end, size;
    ngx_int_t                      rc;
    ngx_str_t                      key;
    ngx_uint_t                     n;
    saveitem_docs_t                docs;
    saveitem_json_error_t          json;
    ngx_http_saveitem_stmt_t      *stmt;
    ngx_http_saveitem_facts_t      f;
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);
    stmt = ngx_http_saveitem_stmt(r);

    ngx_memzero(&f, sizeof(ngx_http_saveitem_facts_t));
    f.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;

    ngx_str_null(&key);

    /* refused wherever it comes, idempotency= or not: it would be lost */

    rc = ngx_http_saveitem_key(r, &key);

    if (rc == NGX_ERROR) {
        return ngx_http_saveitem_fail(r);
    }

    if (rc != NGX_OK || key.len) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "saveitem: an Idempotency-Key with a bulk body");

        f.reason = NGX_HTTP_SAVEITEM_R_BULK_KEY;
        return ngx_http_saveitem_answer(r, &f);
    }

    /* the nginx values of a bulk body's documents: the same for each */

    if (stmt->mapped) {
        rc = ngx_http_saveitem_values(r, ctx, stmt, &key, &f);

        if (rc == NGX_ERROR) {
            return ngx_http_saveitem_fail(r);
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_saveitem_answer(r, &f);
        }
    }

    n = 0;
    size = 2;

    if (saveitem_docs_open(&docs, body->data, body->len, ctx->lines) == 0) {

        while ((rc = saveitem_docs_next(&docs, &start, &end)) == 1) {

            if (n == slcf->bulk) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "saveitem: more than %ui documents in a bulk "
                              "body", slcf->bulk);

                f.reason = NGX_HTTP_SAVEITEM_R_TOO_MANY;
                return ngx_http_saveitem_answer(r, &f);
            }

            rc = saveitem_json_check(body->data + start, end - start, &json);

            if (rc == SAVEITEM_JSON_INVALID) {
                goto invalid;
            }

            if (rc != SAVEITEM_JSON_OK) {
                return ngx_http_saveitem_fail(r);
            }

            if (stmt->mapped) {
                rc = ngx_http_saveitem_judge(r, stmt, body->data + start,
                                             end - start, NULL, &f);

                if (rc == NGX_ERROR) {
                    return ngx_http_saveitem_fail(r);
                }

                if (rc == NGX_DECLINED) {
                    f.index = n;
                    f.indexed = 1;
                    return ngx_http_saveitem_answer(r, &f);
                }
            }

            size += end - start + 1;
            n++;
        }

        if (rc == 0) {
            goto valid;
        }

        /*
         * the array stops inside or before document n: judged alone, a
         * broken document says where it breaks, as a line of NDJSON does
         */

        if (rc == -2) {
            if (start == end) {
                saveitem_json_locate(&json, body->data + start, 0);
                ngx_cpystrn((u_char *) json.message,
                            (u_char *) (start == body->len
                                        ? "unexpected end of input"
                                        : "a document is missing"),
                            SAVEITEM_JSON_MESSAGE_LEN);
                goto invalid;
            }

            rc = saveitem_json_check(body->data + start, end - start, &json);

            if (rc == SAVEITEM_JSON_INVALID) {
                goto invalid;
            }

            if (rc != SAVEITEM_JSON_OK) {
                return ngx_http_saveitem_fail(r);
            }
        }
    }

    /* not an array of documents around them: where it stops being one */

    saveitem_json_locate(&json, body->data, docs.pos);
    ngx_cpystrn((u_char *) json.message,
                (u_char *) "a bulk body must be a JSON array of documents",
                SAVEITEM_JSON_MESSAGE_LEN);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "saveitem: invalid bulk body at line %uz, column %uz",
                  json.line, json.column);

    f.reason = NGX_HTTP_SAVEITEM_R_INVALID_JSON;
    f.json = &json;

    return ngx_http_saveitem_answer(r, &f);

invalid:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "saveitem: invalid JSON in document %ui of a bulk body, "
                  "at line %uz, column %uz: %s",
                  n, json.line, json.column, json.message);

    f.reason = NGX_HTTP_SAVEITEM_R_INVALID_JSON;
    f.json = &json;
    f.index = n;
    f.indexed = 1;

    return ngx_http_saveitem_answer(r, &f);

valid:

    if (n == 0) {
        ngx_str_set(&key, "");
        return ngx_http_saveitem_answer_pks(r, &key);
    }

    array = body->data;

    if (ctx->lines) {
        array = ngx_pnalloc(r->pool, size + 1);
        if (array == NULL) {
            return ngx_http_saveitem_fail(r);
        }

        p = array;
        *p++ = '[';

        (void) saveitem_docs_open(&docs, body->data, body->len, 1);

        while (saveitem_docs_next(&docs, &start, &end) == 1) {
            if (p != array + 1) {
                *p++ = ',';
            }

            p = ngx_cpymem(p, body->data + start, end - start);
        }

        *p++ = ']';
        *p = '\0';
        size = p - array;

    } else {
        size = body->len;
    }

    body->data = array;
    body->len = size;

    return ngx_http_saveitem_post(r, ctx, body, &key, n);
}


/* one contiguous, null-terminated copy: libpq takes C strings */

static ngx_int_t
ngx_http_saveitem_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char                   *p;
    size_t                    len;
    ssize_t                   n;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_http_saveitem_ctx_t  *ctx;

    len = 0;

    /* a compressed body: as decoded (see body_handler()) */

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    if (ctx->decode != NULL) {
        ngx_http_saveitem_decode_get(ctx->decode, body);
        return NGX_OK;
    }

    if (r->request_body == NULL) {
        ngx_str_set(body, "");
        return NGX_OK;
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            if (b->last != b->pos) {
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }

            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                          "saveitem: could not read the request body "
                          "from \"%V\"", &b->file->name);
            return NGX_ERROR;
        }

        p += n;
    }

    *p = '\0';

    return NGX_OK;
}


static ngx_http_saveitem_stmt_t *
ngx_http_saveitem_stmt(ngx_http_request_t *r)
{
    ngx_http_saveitem_loc_conf_t   *slcf;
    ngx_http_saveitem_main_conf_t  *smcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);
    smcf = ngx_http_get_module_main_conf(r, ngx_http_saveitem_module);

    return (ngx_http_saveitem_stmt_t *) smcf->stmts.elts + slcf->stmt;
}


/*
 * A document against the mapped columns (src/ngx_http_saveitem_map.c);
 * key: with a key taken from a field, that field's text, when present.
 */

static ngx_int_t
ngx_http_saveitem_judge(ngx_http_request_t *r, ngx_http_saveitem_stmt_t *stmt,
    u_char *doc, size_t len, ngx_str_t *key, ngx_http_saveitem_facts_t *f)
{
    u_char                        *p;
    size_t                         n;
    ngx_int_t                      rc;
    saveitem_jv_t                  v;
    ngx_http_saveitem_col_t       *col;
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    rc = ngx_http_saveitem_map_judge(stmt, slcf->strict == 1, doc, len, f);

    if (rc != NGX_OK || key == NULL || stmt->key_col < 0) {
        return rc;
    }

    col = &stmt->cols[stmt->key_col];

    if (col->value >= 0) {
        return NGX_OK;
    }

    if (saveitem_json_find(doc, len, col->parts, col->nparts, &v) != 0) {
        return NGX_ERROR;
    }

    if (v.type == SAVEITEM_JV_ABSENT || v.type == SAVEITEM_JV_NULL) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_HTTP_SAVEITEM_KEY_LEN + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    n = saveitem_json_text(&v, p, NGX_HTTP_SAVEITEM_KEY_LEN);

    if (n == (size_t) -1 || !saveitem_key_is_valid(p, n)) {
        f->outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
        f->reason = NGX_HTTP_SAVEITEM_R_INVALID_VALUE;
        f->key = col->path;
        f->col = col->name;
        f->type = col->type_name;
        f->why = ngx_http_saveitem_not_a_key;
        return NGX_DECLINED;
    }

    p[n] = '\0';

    key->data = p;
    key->len = n;

    return NGX_OK;
}


/*
 * The nginx values of the mapped columns, evaluated for this request,
 * as a JSON array of strings (an empty value: null, which stores NULL);
 * key: with a key taken from a value, that value, when not empty.
 */

static ngx_int_t
ngx_http_saveitem_values(ngx_http_request_t *r, ngx_http_saveitem_ctx_t *ctx,
    ngx_http_saveitem_stmt_t *stmt, ngx_str_t *key,
    ngx_http_saveitem_facts_t *f)
{
    u_char                        *p, *start;
    size_t                         len;
    ngx_str_t                     *v;
    ngx_uint_t                     i;
    saveitem_json_error_t          json;
    ngx_http_saveitem_col_t       *col;
    ngx_http_complex_value_t      *cv;
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    if (stmt->nvalues == 0) {
        ctx->values = (u_char *) "[]";
        return NGX_OK;
    }

    v = ngx_palloc(r->pool, stmt->nvalues * sizeof(ngx_str_t));
    if (v == NULL) {
        return NGX_ERROR;
    }

    cv = slcf->values->elts;
    len = sizeof("[]");

    for (i = 0; i < stmt->nvalues; i++) {
        if (ngx_http_complex_value(r, &cv[i], &v[i]) != NGX_OK) {
            return NGX_ERROR;
        }

        len += sizeof("\"\",") + saveitem_json_escape(NULL, v[i].data,
                                                      v[i].len);
    }

    for (i = 0; i < stmt->ncols; i++) {
        col = &stmt->cols[i];

        if (col->value < 0) {
            continue;
        }

        if (ngx_http_saveitem_map_judge_value(stmt, i, v[col->value].data,
                                              v[col->value].len, f)
            != NGX_OK)
        {
            f->key = col->path;
            return NGX_DECLINED;
        }

        if ((ngx_int_t) i == stmt->key_col && v[col->value].len) {
            if (!saveitem_key_is_valid(v[col->value].data,
                                       v[col->value].len))
            {
                f->outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
                f->reason = NGX_HTTP_SAVEITEM_R_INVALID_VALUE;
                f->key = col->path;
                f->col = col->name;
                f->type = col->type_name;
                f->why = ngx_http_saveitem_not_a_key;
                return NGX_DECLINED;
            }

            key->data = ngx_pnalloc(r->pool, v[col->value].len + 1);
            if (key->data == NULL) {
                return NGX_ERROR;
            }

            key->len = v[col->value].len;
            *ngx_cpymem(key->data, v[col->value].data, key->len) = '\0';
        }
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->values = p;
    *p++ = '[';

    for (i = 0; i < stmt->nvalues; i++) {
        if (i) {
            *p++ = ',';
        }

        if (v[i].len == 0) {
            p = ngx_cpymem(p, "null", 4);
            continue;
        }

        start = p;
        *p++ = '"';
        p += saveitem_json_escape(p, v[i].data, v[i].len);
        *p++ = '"';

        /* not UTF-8, or a NUL: no text column could hold it */

        if (saveitem_json_check(start, p - start, &json) != SAVEITEM_JSON_OK) {
            for (col = stmt->cols; col->value != (ngx_int_t) i; col++) {
                /* void */
            }

            f->outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
            f->reason = NGX_HTTP_SAVEITEM_R_INVALID_VALUE;
            f->key = col->path;
            f->col = col->name;
            f->type = col->type_name;
            f->why = "is not UTF-8 text";
            return NGX_DECLINED;
        }
    }

    *p++ = ']';
    *p = '\0';

    return NGX_OK;
}


/*
 * The Idempotency-Key header, at most once, bare or quoted (an sf-string,
 * see saveitem_key_unquote()); null-terminated, as libpq takes it.
 * NGX_DECLINED: present but not a key; NGX_ERROR: no memory.
 */

static ngx_int_t
ngx_http_saveitem_key(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char           *p;
    size_t            n;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    found = NULL;
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

        if (h[i].key.len != sizeof("Idempotency-Key") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Idempotency-Key",
                               sizeof("Idempotency-Key") - 1)
               != 0)
        {
            continue;
        }

        if (found != NULL) {
            return NGX_DECLINED;
        }

        found = &h[i];
    }

    if (found == NULL) {
        return NGX_OK;
    }

    if (found->value.len == 0 || found->value.data[0] != '"') {
        p = found->value.data;
        n = found->value.len;

    } else {
        p = ngx_pnalloc(r->pool, found->value.len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (!saveitem_key_unquote(found->value.data, found->value.len, p, &n))
        {
            return NGX_DECLINED;
        }

        p[n] = '\0';
    }

    if (!saveitem_key_is_valid(p, n)) {
        return NGX_DECLINED;
    }

    key->data = p;
    key->len = n;

    return NGX_OK;
}


/* the request ends first: let go of the job (the pool says what follows) */

static void
ngx_http_saveitem_cleanup(void *data)
{
    ngx_http_saveitem_ctx_t *ctx = data;

    if (ctx->job == NULL) {
        return;
    }

    ngx_http_saveitem_job_detach(ctx->job);
    ctx->job = NULL;
}


static void
ngx_http_saveitem_job_handler(ngx_http_saveitem_job_t *job)
{
    ngx_int_t                 rc;
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_saveitem_ctx_t  *ctx;

    ctx = job->data;
    r = ctx->request;
    c = r->connection;

    ctx->job = NULL;

    if (job->facts.outcome != NGX_HTTP_SAVEITEM_STORED) {
        ngx_memcpy(ctx->sqlstate, job->facts.sqlstate, sizeof(ctx->sqlstate));

        /* a bulk body of one document: that one is at fault, unprobed */

        if (job->bulk == 1
            && job->facts.reason == NGX_HTTP_SAVEITEM_R_SQL_ERROR
            && saveitem_sqlstate_is_document((char *) job->facts.sqlstate))
        {
            job->facts.index = 0;
            job->facts.indexed = 1;
        }
        rc = ngx_http_saveitem_answer(r, &job->facts);
        goto done;
    }

    if (job->bulk) {
        rc = ngx_http_saveitem_answer_pks(r, &job->pks);
        goto done;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "saveitem stored, key %V", &job->pk);

    ctx->pk.data = ngx_pstrdup(r->pool, &job->pk);
    ctx->pk.len = job->pk.len;

    if (ctx->pk.data == NULL) {
        ctx->pk.len = 0;
        rc = ngx_http_saveitem_answer_internal(r, &ctx->fallback, 1);

    } else {
        ctx->action = job->action;
        rc = ngx_http_saveitem_answer_pk(r, &ctx->pk, job->pk_number,
                                         job->facts.replayed);
    }

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * saveitem_ready: can the location's database take a write now?  A
 * connection open in this worker's pool says yes at once, with no
 * statement; otherwise the pool opens one and the probe looks again
 * every few milliseconds, until it is open, fails, or connect_timeout
 * has passed.
 */

ngx_int_t
ngx_http_saveitem_request_ready(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_cleanup_t            *cln;
    ngx_http_saveitem_facts_t      f;
    ngx_http_saveitem_ready_t     *rd;
    ngx_http_saveitem_loc_conf_t  *slcf;

    rc = ngx_http_saveitem_answer_get(r);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    rd = ngx_pcalloc(r->pool, sizeof(ngx_http_saveitem_ready_t));
    if (rd == NULL) {
        return ngx_http_saveitem_answer_internal(r, NULL, 0);
    }

    rd->request = r;
    rd->deadline = ngx_current_msec + slcf->db->connect_timeout
                   + NGX_HTTP_SAVEITEM_READY_SLACK;

    if (ngx_http_saveitem_ready_probe(rd, &f) == NGX_OK) {
        return ngx_http_saveitem_answer_ready(r, &f);
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return ngx_http_saveitem_answer_internal(r, NULL, 0);
    }

    cln->handler = ngx_http_saveitem_ready_cleanup;
    cln->data = rd;

    rd->poll.handler = ngx_http_saveitem_ready_poll;
    rd->poll.data = rd;
    rd->poll.log = r->connection->log;

    ngx_add_timer(&rd->poll, NGX_HTTP_SAVEITEM_READY_POLL);

    /* a client that leaves ends the probe (its cleanup stops the timer) */

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    r->main->count++;

    return NGX_DONE;
}


/* NGX_OK: f says whether the pool is ready, and if not, why; NGX_AGAIN */

static ngx_int_t
ngx_http_saveitem_ready_probe(ngx_http_saveitem_ready_t *rd,
    ngx_http_saveitem_facts_t *f)
{
    ngx_int_t                      rc;
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(rd->request, ngx_http_saveitem_module);

    ngx_memzero(f, sizeof(ngx_http_saveitem_facts_t));

    rc = ngx_http_saveitem_pool_ready(slcf->db->pool, f);

    if (rc == NGX_OK) {
        f->reason = NGX_HTTP_SAVEITEM_R_STORED;
        return NGX_OK;
    }

    if (rc == NGX_AGAIN) {
        if ((ngx_msec_int_t) (rd->deadline - ngx_current_msec) > 0) {
            return NGX_AGAIN;
        }

        f->reason = NGX_HTTP_SAVEITEM_R_UNREACHABLE;
    }

    return NGX_OK;
}


static void
ngx_http_saveitem_ready_poll(ngx_event_t *ev)
{
    ngx_int_t                   rc;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_saveitem_facts_t   f;
    ngx_http_saveitem_ready_t  *rd;

    rd = ev->data;
    r = rd->request;
    c = r->connection;

    if (ngx_http_saveitem_ready_probe(rd, &f) == NGX_AGAIN) {
        ngx_add_timer(ev, NGX_HTTP_SAVEITEM_READY_POLL);
        return;
    }

    rc = ngx_http_saveitem_answer_ready(r, &f);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_saveitem_ready_cleanup(void *data)
{
    ngx_http_saveitem_ready_t *rd = data;

    if (rd->poll.timer_set) {
        ngx_del_timer(&rd->poll);
    }
}
