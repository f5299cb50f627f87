
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * The answer: every body the module sends is built here and leaves
 * through one function, ngx_http_saveitem_output().  The request and the
 * pool report facts (an outcome, a reason, a SQLSTATE); one table turns
 * a reason into a status, an error code and a message.  Success ({"pk"},
 * {"pks"}), errors (with Retry-After, "outcome": "unknown"), readiness,
 * the status page (its text rendered by src/ngx_http_saveitem_metrics.c)
 * and the internal error that needs no memory: all JSON but the
 * Prometheus text, none nginx's HTML page.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_saveitem_http.h"
#include "ngx_http_saveitem_metrics.h"


#define NGX_HTTP_SAVEITEM_UNPROCESSABLE  422


/* what to answer for a reason; NULL message: see the answer function */

typedef struct {
    ngx_uint_t                    status;
    char                         *error;
    char                         *message;
} ngx_http_saveitem_answer_t;


static ngx_int_t ngx_http_saveitem_retry_after(ngx_http_request_t *r,
    ngx_msec_t ms);
static ngx_int_t ngx_http_saveitem_output(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_buf_t *b);


/*
 * The answer to each reason, in the order of ngx_http_saveitem_reason_e.
 * A NULL message: the JSON error's, or the server's words for a client's
 * mistake (SQL errors are mapped by SQLSTATE, see the answer function).
 */

static ngx_http_saveitem_answer_t
    ngx_http_saveitem_answers[NGX_HTTP_SAVEITEM_R_LAST] =
{
    /* STORED */
    { NGX_HTTP_OK, NULL, NULL },

    /* METHOD */
    { NGX_HTTP_NOT_ALLOWED, "method_not_allowed", "only POST is allowed" },

    /* METHOD_GET */
    { NGX_HTTP_NOT_ALLOWED, "method_not_allowed",
      "only GET and HEAD are allowed" },

    /* MEDIA_TYPE */
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
      "the content type must be application/json" },

    /* INVALID_JSON */
    { NGX_HTTP_BAD_REQUEST, "invalid_json", NULL },

    /* INVALID_KEY */
    { NGX_HTTP_BAD_REQUEST, "invalid_idempotency_key",
      "the Idempotency-Key header must be 1 to 255 visible ASCII characters, "
      "once" },

    /* BULK_KEY */
    { NGX_HTTP_BAD_REQUEST, "invalid_idempotency_key",
      "an Idempotency-Key is not taken with a bulk body" },

    /* TOO_MANY */
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "too_many_documents",
      "the body holds more documents than this location takes at once" },

    /* KEY_REUSED */
    { NGX_HTTP_SAVEITEM_UNPROCESSABLE, "idempotency_key_reused",
      "the Idempotency-Key was used before with another document" },

    /* QUEUE_FULL */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "queue_full",
      "too many requests are waiting for the database" },

    /* QUEUE_TIMEOUT */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "queue_timeout",
      "no database connection became free in time" },

    /* UNREACHABLE */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
      "the database is not reachable" },

    /* NO_CONNECTION */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
      "the server could not open a connection to the database" },

    /* EXITING */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
      "the server is shutting down" },

    /* CONN_LOST */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
      "the connection to the database was lost" },

    /* TIMED_OUT */
    { NGX_HTTP_GATEWAY_TIME_OUT, "query_timeout",
      "no answer from the database in time" },

    /* READ_ONLY */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
      "the database server is read-only" },

    /* CONFLICT */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
      "the statement conflicted with another one, even when retried" },

    /* NOT_RUN */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
      "the statement was not run" },

    /* ROW_SKIPPED */
    { NGX_HTTP_SAVEITEM_UNPROCESSABLE, "not_stored",
      "the database did not store the item" },

    /* SQL_ERROR: by SQLSTATE */
    { 0, NULL, NULL },

    /* INTERNAL */
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal_error",
      "the server could not handle the request" },

    /* INVALID_VALUE: the message names the key, the column, its type */
    { NGX_HTTP_BAD_REQUEST, "invalid_value", NULL },

    /* MISSING_KEY */
    { NGX_HTTP_BAD_REQUEST, "missing_key", NULL },

    /* UNKNOWN_KEY */
    { NGX_HTTP_BAD_REQUEST, "unknown_key", NULL },

    /* TABLE */
    { NGX_HTTP_SERVICE_UNAVAILABLE, "database_unavailable",
      "the table does not match this location's configuration" },

    /* CODING */
    { NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_content_encoding",
      "the content coding is not one this location takes "
      "(see Accept-Encoding)" },

    /* DECODE_FAILED: the decoder's words, naming the coding */
    { NGX_HTTP_BAD_REQUEST, "invalid_content_encoding", NULL },

    /* DECODED_TOO_LARGE: the same, with the limit */
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "decompressed_body_too_large", NULL }
};


/*
 * The one place that turns what happened into an answer: status, error
 * code, message, "outcome": "unknown" where the row may have been stored,
 * and Retry-After where retrying is safe (503, not stored).
 */

ngx_int_t
ngx_http_saveitem_answer(ngx_http_request_t *r, ngx_http_saveitem_facts_t *f)
{
    size_t                       len, mlen;
    u_char                      *msg, *last;
    ngx_buf_t                   *b;
    ngx_uint_t                   status, level, unknown;
    const char                  *error, *sqlstate;
    saveitem_json_error_t       *json;
    ngx_http_saveitem_answer_t  *a;
    u_char                       text[NGX_HTTP_SAVEITEM_ERROR_LEN * 2];

    a = &ngx_http_saveitem_answers[f->reason];

    status = a->status;
    error = a->error;
    msg = (u_char *) a->message;
    json = f->json;
    sqlstate = f->sqlstate[0] ? (const char *) f->sqlstate : NULL;
    unknown = (f->outcome == NGX_HTTP_SAVEITEM_UNKNOWN);

    if (f->reason == NGX_HTTP_SAVEITEM_R_SQL_ERROR) {
        status = saveitem_sqlstate_status(sqlstate);
        error = saveitem_sqlstate_error(sqlstate);

        /* the server's words only where they explain a client's mistake */

        if (status < NGX_HTTP_INTERNAL_SERVER_ERROR && f->detail != NULL) {
            msg = (u_char *) f->detail;

        } else {
            msg = (u_char *) saveitem_sqlstate_message(sqlstate);
        }
    }

    if (sqlstate != NULL) {

        /* waiting too long or a server going away is the operator's news */

        if (status < NGX_HTTP_INTERNAL_SERVER_ERROR) {
            level = NGX_LOG_INFO;

        } else if (status == NGX_HTTP_INTERNAL_SERVER_ERROR) {
            level = NGX_LOG_ERR;

        } else {
            level = NGX_LOG_WARN;
        }

        ngx_log_error(level, r->connection->log, 0,
                      "saveitem: PostgreSQL error %s: %s%s", sqlstate,
                      f->detail ? f->detail : (char *) msg,
                      unknown ? " (the row may have been stored)" : "");
    }

    if (json != NULL) {
        msg = (u_char *) json->message;
    }

    /* a mapped column: which key, which column, what type */

    if (f->reason == NGX_HTTP_SAVEITEM_R_INVALID_VALUE) {
        last = ngx_snprintf(text, sizeof(text) - 1, "\"%V\" %s for column "
                            "\"%V\" (%V)", &f->key, f->why, &f->col,
                            &f->type);
        *last = '\0';
        msg = text;

    } else if (f->reason == NGX_HTTP_SAVEITEM_R_MISSING_KEY) {
        last = ngx_snprintf(text, sizeof(text) - 1, "\"%V\" is required: "
                            "column \"%V\" is NOT NULL and has no default",
                            &f->key, &f->col);
        *last = '\0';
        msg = text;

    } else if (f->reason == NGX_HTTP_SAVEITEM_R_UNKNOWN_KEY) {
        last = ngx_snprintf(text, sizeof(text) - 1, "\"%V\" is not a key "
                            "this location takes", &f->key);
        *last = '\0';
        msg = text;

    } else if (msg == NULL && f->detail != NULL) {
        msg = (u_char *) f->detail;
    }

    /* the client's mistake with a mapped column, in the answer's words */

    if (msg == text) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "saveitem: %s",
                      msg);
    }

    if (status == NGX_HTTP_OK || error == NULL || msg == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "saveitem: no answer for reason %d", f->reason);
        return ngx_http_saveitem_answer_internal(r, NULL, unknown);
    }

    mlen = ngx_strlen(msg);

    len = sizeof("{\"error\": \"\", \"message\": \"\"}\n") - 1
          + ngx_strlen(error)
          + saveitem_json_escape(NULL, msg, mlen);

    if (sqlstate) {
        len += sizeof(", \"sqlstate\": \"\"") - 1 + 5;
    }

    if (json) {
        len += sizeof(", \"line\": , \"column\": , \"position\": ") - 1
               + 3 * NGX_SIZE_T_LEN;
    }

    if (f->indexed) {
        len += sizeof(", \"index\": ") - 1 + NGX_INT_T_LEN;
    }

    if (unknown) {
        len += sizeof(", \"outcome\": \"unknown\"") - 1;
    }

    if (f->key.len) {
        len += sizeof(", \"key\": \"\"") - 1
               + saveitem_json_escape(NULL, f->key.data, f->key.len);
    }

    if (f->col.len) {
        len += sizeof(", \"column\": \"\", \"type\": \"\"") - 1
               + saveitem_json_escape(NULL, f->col.data, f->col.len)
               + saveitem_json_escape(NULL, f->type.data, f->type.len);
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return ngx_http_saveitem_answer_internal(r, NULL, unknown);
    }

    b->last = ngx_sprintf(b->last, "{\"error\": \"%s\", \"message\": \"",
                          error);
    b->last += saveitem_json_escape(b->last, msg, mlen);
    *b->last++ = '"';

    if (sqlstate) {
        b->last = ngx_sprintf(b->last, ", \"sqlstate\": \"%5s\"", sqlstate);
    }

    if (f->indexed) {
        b->last = ngx_sprintf(b->last, ", \"index\": %ui", f->index);
    }

    if (json) {
        b->last = ngx_sprintf(b->last,
                              ", \"line\": %uz, \"column\": %uz, "
                              "\"position\": %uz",
                              json->line, json->column, json->position);
    }

    if (unknown) {
        b->last = ngx_cpymem(b->last, ", \"outcome\": \"unknown\"",
                             sizeof(", \"outcome\": \"unknown\"") - 1);
    }

    if (f->key.len) {
        b->last = ngx_cpymem(b->last, ", \"key\": \"",
                             sizeof(", \"key\": \"") - 1);
        b->last += saveitem_json_escape(b->last, f->key.data, f->key.len);
        *b->last++ = '"';
    }

    if (f->col.len) {
        b->last = ngx_cpymem(b->last, ", \"column\": \"",
                             sizeof(", \"column\": \"") - 1);
        b->last += saveitem_json_escape(b->last, f->col.data, f->col.len);
        b->last = ngx_cpymem(b->last, "\", \"type\": \"",
                             sizeof("\", \"type\": \"") - 1);
        b->last += saveitem_json_escape(b->last, f->type.data, f->type.len);
        *b->last++ = '"';
    }

    *b->last++ = '}';
    *b->last++ = LF;

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && !unknown
        && ngx_http_saveitem_retry_after(r, f->retry_after) != NGX_OK)
    {
        return ngx_http_saveitem_answer_internal(r, NULL, unknown);
    }

    return ngx_http_saveitem_output(r, status, NULL, b);
}


/* in whole seconds, at least 1 */

static ngx_int_t
ngx_http_saveitem_retry_after(ngx_http_request_t *r, ngx_msec_t ms)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.len = ngx_sprintf(h->value.data, "%M",
                               ngx_max((ms + 999) / 1000, 1))
                   - h->value.data;

    return NGX_OK;
}


/*
 * A stored row's answers: the row is committed, so an allocation that
 * fails is answered with the request's own preallocated buffer
 */

ngx_int_t
ngx_http_saveitem_answer_pk(ngx_http_request_t *r, ngx_str_t *pk,
    ngx_uint_t number, ngx_uint_t replayed)
{
    size_t                    len;
    ngx_buf_t                *b;
    ngx_table_elt_t          *h;
    ngx_http_saveitem_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    if (replayed) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return ngx_http_saveitem_answer_internal(r, &ctx->fallback, 1);
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Idempotent-Replayed");
        ngx_str_set(&h->value, "true");
    }

    /* saveitem_conflict: what became of the row */

    if (ctx->action != NGX_HTTP_SAVEITEM_ACT_NONE) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return ngx_http_saveitem_answer_internal(r, &ctx->fallback, 1);
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Saveitem-Action");

        if (ctx->action == NGX_HTTP_SAVEITEM_ACT_INSERTED) {
            ngx_str_set(&h->value, "inserted");

        } else if (ctx->action == NGX_HTTP_SAVEITEM_ACT_UPDATED) {
            ngx_str_set(&h->value, "updated");

        } else {
            ngx_str_set(&h->value, "left");
        }
    }

    len = sizeof("{\"pk\": \"\"}\n") - 1
          + (number ? pk->len : saveitem_json_escape(NULL, pk->data, pk->len));

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return ngx_http_saveitem_answer_internal(r, &ctx->fallback, 1);
    }

    b->last = ngx_cpymem(b->last, "{\"pk\": ", sizeof("{\"pk\": ") - 1);

    if (number) {
        b->last = ngx_cpymem(b->last, pk->data, pk->len);

    } else {
        *b->last++ = '"';
        b->last += saveitem_json_escape(b->last, pk->data, pk->len);
        *b->last++ = '"';
    }

    *b->last++ = '}';
    *b->last++ = LF;

    return ngx_http_saveitem_output(r, NGX_HTTP_OK, NULL, b);
}


/* a bulk body stored: its documents' keys, in order */

ngx_int_t
ngx_http_saveitem_answer_pks(ngx_http_request_t *r, ngx_str_t *pks)
{
    ngx_buf_t                *b;
    ngx_http_saveitem_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    b = ngx_create_temp_buf(r->pool, sizeof("{\"pks\": []}\n") - 1 + pks->len);
    if (b == NULL) {
        return ngx_http_saveitem_answer_internal(r, &ctx->fallback,
                                                 pks->len != 0);
    }

    b->last = ngx_cpymem(b->last, "{\"pks\": [", sizeof("{\"pks\": [") - 1);
    b->last = ngx_cpymem(b->last, pks->data, pks->len);
    b->last = ngx_cpymem(b->last, "]}\n", sizeof("]}\n") - 1);

    return ngx_http_saveitem_output(r, NGX_HTTP_OK, NULL, b);
}


/*
 * The answer of saveitem_ready: {"ready": true}, or 503 with the message
 * of the reason's answer and Retry-After
 */

ngx_int_t
ngx_http_saveitem_answer_ready(ngx_http_request_t *r,
    ngx_http_saveitem_facts_t *f)
{
    size_t                       len, mlen;
    ngx_buf_t                   *b;
    ngx_http_saveitem_answer_t  *a;

    if (f->reason == NGX_HTTP_SAVEITEM_R_STORED) {
        len = sizeof("{\"ready\": true}\n") - 1;

        b = ngx_create_temp_buf(r->pool, len);
        if (b == NULL) {
            return ngx_http_saveitem_answer_internal(r, NULL, 0);
        }

        b->last = ngx_cpymem(b->last, "{\"ready\": true}\n", len);

        return ngx_http_saveitem_output(r, NGX_HTTP_OK, NULL, b);
    }

    a = &ngx_http_saveitem_answers[f->reason];

    if (a->status != NGX_HTTP_SERVICE_UNAVAILABLE || a->message == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "saveitem: no ready answer for reason %d", f->reason);
        return ngx_http_saveitem_answer_internal(r, NULL, 0);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "saveitem: not ready: %s", a->message);

    mlen = ngx_strlen(a->message);
    len = sizeof("{\"ready\": false, \"reason\": \"\"}\n") - 1
          + saveitem_json_escape(NULL, (u_char *) a->message, mlen);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return ngx_http_saveitem_answer_internal(r, NULL, 0);
    }

    b->last = ngx_cpymem(b->last, "{\"ready\": false, \"reason\": \"",
                         sizeof("{\"ready\": false, \"reason\": \"") - 1);
    b->last += saveitem_json_escape(b->last, (u_char *) a->message, mlen);
    b->last = ngx_cpymem(b->last, "\"}\n", sizeof("\"}\n") - 1);

    if (ngx_http_saveitem_retry_after(r, f->retry_after) != NGX_OK) {
        return ngx_http_saveitem_answer_internal(r, NULL, 0);
    }

    return ngx_http_saveitem_output(r, NGX_HTTP_SERVICE_UNAVAILABLE, NULL, b);
}

/*
 * saveitem_status: this worker's pools write their gauges as they are
 * now, then the counters of every worker are rendered as Prometheus text
 */

ngx_int_t
ngx_http_saveitem_answer_status(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_buf_t                      *b;
    ngx_str_t                       type;
    ngx_uint_t                      i;
    ngx_http_saveitem_db_t        **dbp;
    ngx_http_saveitem_main_conf_t  *smcf;

    rc = ngx_http_saveitem_answer_get(r);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    smcf = ngx_http_get_module_main_conf(r, ngx_http_saveitem_module);

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (dbp[i]->pool) {
            ngx_http_saveitem_pool_publish(dbp[i]->pool);
        }
    }

    b = ngx_http_saveitem_metrics_text(smcf, r->pool);
    if (b == NULL) {
        return ngx_http_saveitem_answer_internal(r, NULL, 0);
    }

    ngx_str_set(&type, "text/plain; version=0.0.4; charset=utf-8");

    return ngx_http_saveitem_output(r, NGX_HTTP_OK, &type, b);
}


/*
 * saveitem_status and saveitem_ready take GET and HEAD, and no body:
 * NGX_DECLINED, go on; anything else is the request's answer
 */

ngx_int_t
ngx_http_saveitem_answer_get(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_saveitem_answer_not_allowed(r,
                                           NGX_HTTP_SAVEITEM_R_METHOD_GET);
    }

    rc = ngx_http_discard_request_body(r);

    if (rc == NGX_HTTP_INTERNAL_SERVER_ERROR) {
        /* nginx's own failure (memory, an event): ours in JSON */
        return ngx_http_saveitem_answer_internal(r, NULL, 0);
    }

    return (rc == NGX_OK) ? NGX_DECLINED : rc;
}


/*
 * Refused before the body: as nginx does for a body that is too large,
 * "Expect: 100-continue" is not answered, so no body is invited that
 * would only be discarded.
 */

ngx_int_t
ngx_http_saveitem_answer_refuse(ngx_http_request_t *r,
    ngx_http_saveitem_reason_e reason)
{
    ngx_int_t                  rc;
    ngx_http_saveitem_facts_t  f;

    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);

    if (rc == NGX_HTTP_INTERNAL_SERVER_ERROR) {
        return ngx_http_saveitem_answer_internal(r, NULL, 0);
    }

    if (rc != NGX_OK) {
        /* what breaks HTTP's framing: nginx's page, as nginx's */
        return rc;
    }

    ngx_memzero(&f, sizeof(ngx_http_saveitem_facts_t));
    f.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
    f.reason = reason;

    return ngx_http_saveitem_answer(r, &f);
}


/*
 * A method the location does not take: 405 with Allow, for the saveitem
 * location (POST), saveitem_status and saveitem_ready (GET, HEAD)
 */

ngx_int_t
ngx_http_saveitem_answer_not_allowed(ngx_http_request_t *r,
    ngx_http_saveitem_reason_e reason)
{
    ngx_table_elt_t  *h;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "saveitem: method %V is not allowed", &r->method_name);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return ngx_http_saveitem_answer_refuse(r, NGX_HTTP_SAVEITEM_R_INTERNAL);
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");

    if (reason == NGX_HTTP_SAVEITEM_R_METHOD) {
        ngx_str_set(&h->value, "POST");

    } else {
        ngx_str_set(&h->value, "GET, HEAD");
    }

    return ngx_http_saveitem_answer_refuse(r, reason);
}


/*
 * A Content-Encoding the location does not take: 415 with Accept-Encoding,
 * the codings it does take (RFC 7694), "identity" for none
 */

ngx_int_t
ngx_http_saveitem_answer_coding(ngx_http_request_t *r, ngx_str_t *accept)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return ngx_http_saveitem_answer_refuse(r, NGX_HTTP_SAVEITEM_R_INTERNAL);
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Accept-Encoding");
    h->value = *accept;

    return ngx_http_saveitem_answer_refuse(r, NGX_HTTP_SAVEITEM_R_CODING);
}


/*
 * The answer when one cannot be built (no memory, or nginx failed to
 * read the body): a constant body in b, preallocated where a row may be
 * committed, or in a buffer allocated here; so that no path falls to
 * nginx's HTML page.  Without even that, the connection is closed.
 */

ngx_int_t
ngx_http_saveitem_answer_internal(ngx_http_request_t *r, ngx_buf_t *b,
    ngx_uint_t unknown)
{
    static u_char  failed[] =
        "{\"error\": \"internal_error\", "
        "\"message\": \"the server could not handle the request\"}\n";

    static u_char  unwritten[] =
        "{\"error\": \"internal_error\", "
        "\"message\": \"the server could not write its answer\", "
        "\"outcome\": \"unknown\"}\n";

    ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                  "saveitem: internal error, answered 500%s",
                  unknown ? " (the row may have been stored)" : "");

    /* as nginx does after its own 500: what is left may not be whole */

    r->keepalive = 0;

    if (b == NULL) {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_ERROR;
        }

    } else {
        ngx_memzero(b, sizeof(ngx_buf_t));
    }

    b->memory = 1;

    if (unknown) {
        b->pos = unwritten;
        b->last = unwritten + sizeof(unwritten) - 1;

    } else {
        b->pos = failed;
        b->last = failed + sizeof(failed) - 1;
    }

    b->start = b->pos;
    b->end = b->last;

    return ngx_http_saveitem_output(r, NGX_HTTP_INTERNAL_SERVER_ERROR, NULL,
                                    b);
}


/* every answer the module writes: one buffer (type NULL: JSON) */

static ngx_int_t
ngx_http_saveitem_output(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;

    if (type == NULL) {
        ngx_str_set(&r->headers_out.content_type, "application/json");

    } else {
        r->headers_out.content_type = *type;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
