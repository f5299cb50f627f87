
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * POST -> JSON check -> INSERT on a pooled, non-blocking libpq
 * connection -> {"pk": N}.  This file is the nginx side: directives,
 * the request (method, type, body, checks), and the answer: the pool
 * (src/ngx_http_saveitem_pool.c) reports what happened, and one function
 * here, ngx_http_saveitem_answer(), decides what to say.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_saveitem.h"
#include "ngx_http_saveitem_metrics.h"


typedef struct {
    ngx_http_saveitem_db_t       *db;
    ngx_int_t                     stmt;
    ngx_msec_t                    query_timeout;
    ngx_uint_t                    batch_rows;
    size_t                        batch_bytes;
    ngx_uint_t                    idempotency;  /* takes Idempotency-Key */
    ngx_uint_t                    bulk;         /* documents; 0: off */
    u_char                       *file;
    ngx_uint_t                    line;
    ngx_flag_t                    ready;      /* saveitem_ready */
} ngx_http_saveitem_loc_conf_t;


typedef struct {
    ngx_http_request_t           *request;
    ngx_http_saveitem_job_t      *job;
    ngx_str_t                     pk;
    u_char                        sqlstate[6];
    ngx_buf_t                     fallback;   /* see saveitem_internal() */
    unsigned                      lines:1;    /* an NDJSON body */
} ngx_http_saveitem_ctx_t;


/* a saveitem_ready probe that waits for a connection being opened */

typedef struct {
    ngx_http_request_t           *request;
    ngx_event_t                   poll;
    ngx_msec_t                    deadline;
} ngx_http_saveitem_ready_t;


#define NGX_HTTP_SAVEITEM_UNPROCESSABLE  422

/* saveitem_ready: how often a waiting probe looks, and its extra time */
#define NGX_HTTP_SAVEITEM_READY_POLL     25
#define NGX_HTTP_SAVEITEM_READY_SLACK    500


/* what to answer for a reason; NULL message: see the answer function */

typedef struct {
    ngx_uint_t                    status;
    char                         *error;
    char                         *message;
} ngx_http_saveitem_answer_t;


static ngx_int_t ngx_http_saveitem_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_saveitem_refuse(ngx_http_request_t *r,
    ngx_http_saveitem_reason_e reason);
static void ngx_http_saveitem_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_saveitem_fail(ngx_http_request_t *r);
static ngx_int_t ngx_http_saveitem_process(ngx_http_request_t *r,
    ngx_http_saveitem_ctx_t *ctx);
static ngx_int_t ngx_http_saveitem_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static void ngx_http_saveitem_cleanup(void *data);
static void ngx_http_saveitem_job_handler(ngx_http_saveitem_job_t *job);
static ngx_int_t ngx_http_saveitem_answer(ngx_http_request_t *r,
    ngx_http_saveitem_facts_t *f);
static ngx_int_t ngx_http_saveitem_answer_pk(ngx_http_request_t *r,
    ngx_str_t *pk, ngx_uint_t number, ngx_uint_t replayed);
static ngx_int_t ngx_http_saveitem_retry_after(ngx_http_request_t *r,
    ngx_msec_t ms);
static ngx_int_t ngx_http_saveitem_key(ngx_http_request_t *r,
    ngx_str_t *key);
static ngx_int_t ngx_http_saveitem_bulk(ngx_http_request_t *r,
    ngx_http_saveitem_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_saveitem_post(ngx_http_request_t *r,
    ngx_http_saveitem_ctx_t *ctx, ngx_str_t *body, ngx_str_t *key,
    ngx_uint_t bulk);
static ngx_int_t ngx_http_saveitem_answer_pks(ngx_http_request_t *r,
    ngx_str_t *pks);

static ngx_int_t ngx_http_saveitem_ready_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_saveitem_ready_probe(ngx_http_saveitem_ready_t *rd,
    ngx_http_saveitem_facts_t *f);
static void ngx_http_saveitem_ready_poll(ngx_event_t *ev);
static void ngx_http_saveitem_ready_cleanup(void *data);
static ngx_int_t ngx_http_saveitem_answer_ready(ngx_http_request_t *r,
    ngx_http_saveitem_facts_t *f);
static ngx_int_t ngx_http_saveitem_log_handler(ngx_http_request_t *r);

static ngx_int_t ngx_http_saveitem_pk_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_saveitem_sqlstate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static void *ngx_http_saveitem_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_saveitem_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_saveitem_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_saveitem(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_batch(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_ready(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_query_timeout(ngx_conf_t *cf, void *post,
    void *data);
static ngx_uint_t ngx_http_saveitem_streq(ngx_str_t *a, ngx_str_t *b);
static ngx_int_t ngx_http_saveitem_quote(ngx_conf_t *cf, ngx_str_t *name,
    size_t max_parts, ngx_str_t *quoted);
static ngx_int_t ngx_http_saveitem_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_saveitem_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_saveitem_init_process(ngx_cycle_t *cycle);
static void ngx_http_saveitem_exit_process(ngx_cycle_t *cycle);


static ngx_conf_post_handler_pt  ngx_http_saveitem_query_timeout_p =
    ngx_http_saveitem_query_timeout;


static ngx_command_t  ngx_http_saveitem_commands[] = {

    { ngx_string("saveitem"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_saveitem,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_database"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_saveitem_database,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_batch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_saveitem_batch,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_query_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_saveitem_loc_conf_t, query_timeout),
      &ngx_http_saveitem_query_timeout_p },

    { ngx_string("saveitem_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_saveitem_status,
      0,
      0,
      NULL },

    { ngx_string("saveitem_ready"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_saveitem_ready,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_saveitem_module_ctx = {
    ngx_http_saveitem_add_variables,       /* preconfiguration */
    ngx_http_saveitem_init,                /* postconfiguration */

    ngx_http_saveitem_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_saveitem_create_loc_conf,     /* create location configuration */
    ngx_http_saveitem_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_saveitem_module = {
    NGX_MODULE_V1,
    &ngx_http_saveitem_module_ctx,         /* module context */
    ngx_http_saveitem_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_saveitem_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_saveitem_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_saveitem_vars[] = {

    { ngx_string("saveitem_pk"), NULL, ngx_http_saveitem_pk_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("saveitem_sqlstate"), NULL,
      ngx_http_saveitem_sqlstate_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


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
      "the server could not handle the request" }
};


static ngx_int_t
ngx_http_saveitem_handler(ngx_http_request_t *r)
{
    u_char                        *p;
    ngx_int_t                      rc;
    ngx_uint_t                     lines;
    ngx_table_elt_t               *h;
    ngx_http_saveitem_ctx_t       *ctx;
    ngx_http_saveitem_loc_conf_t  *slcf;
    u_char                         type[256];

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_saveitem_not_allowed(r, NGX_HTTP_SAVEITEM_R_METHOD);
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

        return ngx_http_saveitem_refuse(r, NGX_HTTP_SAVEITEM_R_MEDIA_TYPE);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_saveitem_ctx_t));
    if (ctx == NULL) {
        return ngx_http_saveitem_refuse(r, NGX_HTTP_SAVEITEM_R_INTERNAL);
    }

    ctx->request = r;
    ctx->lines = lines;
    ngx_http_set_ctx(r, ctx, ngx_http_saveitem_module);

    rc = ngx_http_read_client_request_body(r, ngx_http_saveitem_body_handler);

    if (rc == NGX_HTTP_INTERNAL_SERVER_ERROR) {
        /* nginx's own failure (memory, a temporary file): ours in JSON */
        return ngx_http_saveitem_internal(r, NULL, 0);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* 413, and what breaks HTTP's framing: nginx's page, as nginx's */
        return rc;
    }

    return NGX_DONE;
}


/*
 * Refused before the body: as nginx does for a body that is too large,
 * "Expect: 100-continue" is not answered, so no body is invited that
 * would only be discarded.
 */

static ngx_int_t
ngx_http_saveitem_refuse(ngx_http_request_t *r,
    ngx_http_saveitem_reason_e reason)
{
    ngx_int_t                  rc;
    ngx_http_saveitem_facts_t  f;

    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
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
ngx_http_saveitem_not_allowed(ngx_http_request_t *r,
    ngx_http_saveitem_reason_e reason)
{
    ngx_table_elt_t  *h;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "saveitem: method %V is not allowed", &r->method_name);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return ngx_http_saveitem_refuse(r, NGX_HTTP_SAVEITEM_R_INTERNAL);
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");

    if (reason == NGX_HTTP_SAVEITEM_R_METHOD) {
        ngx_str_set(&h->value, "POST");

    } else {
        ngx_str_set(&h->value, "GET, HEAD");
    }

    return ngx_http_saveitem_refuse(r, reason);
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


static void
ngx_http_saveitem_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_http_saveitem_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    rc = ngx_http_saveitem_process(r, ctx);

    if (rc == NGX_DONE) {
        /* the job's handler finalizes the request */
        return;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_saveitem_process(ngx_http_request_t *r, ngx_http_saveitem_ctx_t *ctx)
{
    ngx_int_t                      rc;
    ngx_str_t                      body, key;
    saveitem_json_error_t          json;
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

    rc = slcf->idempotency ? ngx_http_saveitem_key(r, &key) : NGX_OK;

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
    ngx_http_saveitem_facts_t      f;
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

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
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

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
        rc = ngx_http_saveitem_internal(r, &ctx->fallback, 1);

    } else {
        rc = ngx_http_saveitem_answer_pk(r, &ctx->pk, job->pk_number,
                                         job->facts.replayed);
    }

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * The one place that turns what happened into an answer: status, error
 * code, message, "outcome": "unknown" where the row may have been stored,
 * and Retry-After where retrying is safe (503, not stored).
 */

static ngx_int_t
ngx_http_saveitem_answer(ngx_http_request_t *r, ngx_http_saveitem_facts_t *f)
{
    size_t                       len, mlen;
    u_char                      *msg;
    ngx_buf_t                   *b;
    ngx_uint_t                   status, level, unknown;
    const char                  *error, *sqlstate;
    saveitem_json_error_t       *json;
    ngx_http_saveitem_answer_t  *a;

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

    if (status == NGX_HTTP_OK || error == NULL || msg == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "saveitem: no answer for reason %d", f->reason);
        return ngx_http_saveitem_internal(r, NULL, unknown);
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

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return ngx_http_saveitem_internal(r, NULL, unknown);
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

    *b->last++ = '}';
    *b->last++ = LF;

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && !unknown
        && ngx_http_saveitem_retry_after(r, f->retry_after) != NGX_OK)
    {
        return ngx_http_saveitem_internal(r, NULL, unknown);
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

static ngx_int_t
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
            return ngx_http_saveitem_internal(r, &ctx->fallback, 1);
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Idempotent-Replayed");
        ngx_str_set(&h->value, "true");
    }

    len = sizeof("{\"pk\": \"\"}\n") - 1
          + (number ? pk->len : saveitem_json_escape(NULL, pk->data, pk->len));

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return ngx_http_saveitem_internal(r, &ctx->fallback, 1);
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

static ngx_int_t
ngx_http_saveitem_answer_pks(ngx_http_request_t *r, ngx_str_t *pks)
{
    ngx_buf_t                *b;
    ngx_http_saveitem_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    b = ngx_create_temp_buf(r->pool, sizeof("{\"pks\": []}\n") - 1 + pks->len);
    if (b == NULL) {
        return ngx_http_saveitem_internal(r, &ctx->fallback, pks->len != 0);
    }

    b->last = ngx_cpymem(b->last, "{\"pks\": [", sizeof("{\"pks\": [") - 1);
    b->last = ngx_cpymem(b->last, pks->data, pks->len);
    b->last = ngx_cpymem(b->last, "]}\n", sizeof("]}\n") - 1);

    return ngx_http_saveitem_output(r, NGX_HTTP_OK, NULL, b);
}


/* every answer the module writes: one buffer (type NULL: JSON) */

ngx_int_t
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


/*
 * The answer when one cannot be built (no memory, or nginx failed to
 * read the body): a constant body in b, preallocated where a row may be
 * committed, or in a buffer allocated here; so that no path falls to
 * nginx's HTML page.  Without even that, the connection is closed.
 */

ngx_int_t
ngx_http_saveitem_internal(ngx_http_request_t *r, ngx_buf_t *b,
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


/*
 * saveitem_ready: can the location's database take a write now?  A
 * connection open in this worker's pool says yes at once, with no
 * statement; otherwise the pool opens one and the probe looks again
 * every few milliseconds, until it is open, fails, or connect_timeout
 * has passed.
 */

static ngx_int_t
ngx_http_saveitem_ready_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_cleanup_t            *cln;
    ngx_http_saveitem_facts_t      f;
    ngx_http_saveitem_ready_t     *rd;
    ngx_http_saveitem_loc_conf_t  *slcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_saveitem_not_allowed(r,
                                             NGX_HTTP_SAVEITEM_R_METHOD_GET);
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    rd = ngx_pcalloc(r->pool, sizeof(ngx_http_saveitem_ready_t));
    if (rd == NULL) {
        return ngx_http_saveitem_internal(r, NULL, 0);
    }

    rd->request = r;
    rd->deadline = ngx_current_msec + slcf->db->connect_timeout
                   + NGX_HTTP_SAVEITEM_READY_SLACK;

    if (ngx_http_saveitem_ready_probe(rd, &f) == NGX_OK) {
        return ngx_http_saveitem_answer_ready(r, &f);
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return ngx_http_saveitem_internal(r, NULL, 0);
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


/*
 * The answer of saveitem_ready: {"ready": true}, or 503 with the message
 * of the reason's answer and Retry-After
 */

static ngx_int_t
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
            return ngx_http_saveitem_internal(r, NULL, 0);
        }

        b->last = ngx_cpymem(b->last, "{\"ready\": true}\n", len);

        return ngx_http_saveitem_output(r, NGX_HTTP_OK, NULL, b);
    }

    a = &ngx_http_saveitem_answers[f->reason];

    if (a->status != NGX_HTTP_SERVICE_UNAVAILABLE || a->message == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "saveitem: no ready answer for reason %d", f->reason);
        return ngx_http_saveitem_internal(r, NULL, 0);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "saveitem: not ready: %s", a->message);

    mlen = ngx_strlen(a->message);
    len = sizeof("{\"ready\": false, \"reason\": \"\"}\n") - 1
          + saveitem_json_escape(NULL, (u_char *) a->message, mlen);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return ngx_http_saveitem_internal(r, NULL, 0);
    }

    b->last = ngx_cpymem(b->last, "{\"ready\": false, \"reason\": \"",
                         sizeof("{\"ready\": false, \"reason\": \"") - 1);
    b->last += saveitem_json_escape(b->last, (u_char *) a->message, mlen);
    b->last = ngx_cpymem(b->last, "\"}\n", sizeof("\"}\n") - 1);

    if (ngx_http_saveitem_retry_after(r, f->retry_after) != NGX_OK) {
        return ngx_http_saveitem_internal(r, NULL, 0);
    }

    return ngx_http_saveitem_output(r, NGX_HTTP_SERVICE_UNAVAILABLE, NULL, b);
}


/*
 * Every request of a saveitem location is counted here, by the status it
 * got, whoever chose it: the answer function, nginx (413, a 500 before
 * any answer), or the client that left first (499)
 */

static ngx_int_t
ngx_http_saveitem_log_handler(ngx_http_request_t *r)
{
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    if (slcf->stmt != NGX_CONF_UNSET) {
        ngx_http_saveitem_metrics_request(slcf->db->counters,
                                          r->err_status ? r->err_status
                                          : r->headers_out.status);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_saveitem_pk_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_saveitem_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    if (ctx == NULL || ctx->pk.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->pk.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->pk.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_saveitem_sqlstate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_saveitem_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    if (ctx == NULL || ctx->sqlstate[0] == '\0') {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_strlen(ctx->sqlstate);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->sqlstate;

    return NGX_OK;
}


static void *
ngx_http_saveitem_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_saveitem_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&smcf->dbs, cf->pool, 4,
                       sizeof(ngx_http_saveitem_db_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&smcf->stmts, cf->pool, 4,
                       sizeof(ngx_http_saveitem_stmt_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&smcf->uses, cf->pool, 4,
                       sizeof(ngx_http_saveitem_use_t))
        != NGX_OK)
    {
        return NULL;
    }

    return smcf;
}


static void *
ngx_http_saveitem_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_saveitem_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_saveitem_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->file = NULL;
     *     conf->line = 0;
     */

    conf->db = NGX_CONF_UNSET_PTR;
    conf->stmt = NGX_CONF_UNSET;
    conf->query_timeout = NGX_CONF_UNSET_MSEC;
    conf->batch_rows = NGX_CONF_UNSET_UINT;
    conf->batch_bytes = NGX_CONF_UNSET_SIZE;

    return conf;
}


static char *
ngx_http_saveitem_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_saveitem_loc_conf_t *prev = parent;
    ngx_http_saveitem_loc_conf_t *conf = child;

    ngx_uint_t                      i;
    ngx_http_saveitem_use_t        *use;
    ngx_http_saveitem_main_conf_t  *smcf;

    ngx_conf_merge_ptr_value(conf->db, prev->db, NULL);
    ngx_conf_merge_msec_value(conf->query_timeout, prev->query_timeout,
                              NGX_HTTP_SAVEITEM_QUERY_TIMEOUT);
    ngx_conf_merge_uint_value(conf->batch_rows, prev->batch_rows,
                              NGX_HTTP_SAVEITEM_BATCH_ROWS);
    ngx_conf_merge_size_value(conf->batch_bytes, prev->batch_bytes,
                              NGX_HTTP_SAVEITEM_BATCH_BYTES);

    if (conf->ready && conf->db == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem_ready\" in %s:%ui needs a "
                      "\"saveitem_database\" in its location, server or "
                      "http block", conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (conf->stmt == NGX_CONF_UNSET) {
        return NGX_CONF_OK;
    }

    if (conf->db == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem\" in %s:%ui needs a \"saveitem_database\" "
                      "in its location, server or http block",
                      conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_saveitem_module);

    smcf->batch_max = ngx_max(smcf->batch_max, conf->batch_rows);

    use = smcf->uses.elts;

    for (i = 0; i < smcf->uses.nelts; i++) {
        if (use[i].db == conf->db && use[i].stmt == (ngx_uint_t) conf->stmt) {
            return NGX_CONF_OK;
        }
    }

    use = ngx_array_push(&smcf->uses);
    if (use == NULL) {
        return NGX_CONF_ERROR;
    }

    use->db = conf->db;
    use->stmt = conf->stmt;
    use->file = conf->file;
    use->line = conf->line;

    return NGX_CONF_OK;
}


/*
 * saveitem <table> [column=<name>] [returning=<name>]
 *          [idempotency=<name>] [bulk=<n>];
 */

static char *
ngx_http_saveitem(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ngx_int_t                       n;
    ngx_uint_t                      bulk;
    ngx_str_t                      *value, table, column, returning, idem;
    ngx_uint_t                      i;
    ngx_http_saveitem_stmt_t       *stmt;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_saveitem_main_conf_t  *smcf;

    if (slcf->stmt != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_saveitem_quote(cf, &value[1], 2, &table) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&column, "\"data\"");
    ngx_str_set(&returning, "\"id\"");
    ngx_str_null(&idem);
    bulk = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "column=", 7) == 0) {
            value[i].data += 7;
            value[i].len -= 7;

            if (ngx_http_saveitem_quote(cf, &value[i], 1, &column) != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "bulk=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            if (n == NGX_ERROR || n < 1 || n > NGX_HTTP_SAVEITEM_BULK_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": bulk must be "
                                   "1 to %d", &value[i],
                                   NGX_HTTP_SAVEITEM_BULK_MAX);
                return NGX_CONF_ERROR;
            }

            bulk = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "idempotency=", 12) == 0) {
            value[i].data += 12;
            value[i].len -= 12;

            if (ngx_http_saveitem_quote(cf, &value[i], 1, &idem) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "returning=", 10) == 0) {
            value[i].data += 10;
            value[i].len -= 10;

            if (ngx_http_saveitem_quote(cf, &value[i], 1, &returning)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    /* one statement (and its batch forms) per table, column, key */

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_saveitem_module);
    stmt = smcf->stmts.elts;

    for (i = 0; i < smcf->stmts.nelts; i++) {
        if (ngx_http_saveitem_streq(&stmt[i].table, &table)
            && ngx_http_saveitem_streq(&stmt[i].column, &column)
            && ngx_http_saveitem_streq(&stmt[i].returning, &returning)
            && ngx_http_saveitem_streq(&stmt[i].idem, &idem))
        {
            break;
        }
    }

    if (i == smcf->stmts.nelts) {
        stmt = ngx_array_push(&smcf->stmts);
        if (stmt == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(stmt, sizeof(ngx_http_saveitem_stmt_t));

        stmt->table = table;
        stmt->column = column;
        stmt->returning = returning;
        stmt->idem = idem;
    }

    slcf->stmt = i;
    slcf->idempotency = (idem.len > 0);
    slcf->bulk = bulk;
    slcf->file = cf->conf_file->file.name.data;
    slcf->line = cf->conf_file->line;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_saveitem_handler;

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_http_saveitem_streq(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || ngx_strncmp(a->data, b->data, a->len) == 0);
}


/* saveitem_batch off | on [rows=<n>] [bytes=<size>]; */

static char *
ngx_http_saveitem_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ssize_t      size;
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (slcf->batch_rows != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            return "takes no parameters with \"off\"";
        }

        slcf->batch_rows = 1;
        slcf->batch_bytes = 0;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"on\" or "
                           "\"off\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    slcf->batch_rows = NGX_HTTP_SAVEITEM_BATCH_ROWS;
    slcf->batch_bytes = NGX_HTTP_SAVEITEM_BATCH_BYTES;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "rows=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            /* PostgreSQL takes 65535 parameters; plans get slow before */

            if (n == NGX_ERROR || n < 1
                || n > NGX_HTTP_SAVEITEM_BATCH_ROWS_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": rows must be "
                                   "1 to %d", &value[i],
                                   NGX_HTTP_SAVEITEM_BATCH_ROWS_MAX);
                return NGX_CONF_ERROR;
            }

            slcf->batch_rows = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "bytes=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || size == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            slcf->batch_bytes = size;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* saveitem_status; */

static char *
ngx_http_saveitem_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_saveitem_metrics_handler;

    return NGX_CONF_OK;
}


/* saveitem_ready; */

static char *
ngx_http_saveitem_ready(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->ready) {
        return "is duplicate";
    }

    slcf->ready = 1;
    slcf->file = cf->conf_file->file.name.data;
    slcf->line = cf->conf_file->line;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_saveitem_ready_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_saveitem_quote(ngx_conf_t *cf, ngx_str_t *name, size_t max_parts,
    ngx_str_t *quoted)
{
    size_t  errpos;

    quoted->data = ngx_pnalloc(cf->pool, 2 * name->len + 4);
    if (quoted->data == NULL) {
        return NGX_ERROR;
    }

    quoted->len = saveitem_quote_ident(quoted->data, name->data, name->len,
                                       max_parts, &errpos);

    if (quoted->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %s name \"%V\" at position %uz",
                           max_parts > 1 ? "table" : "column", name, errpos);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * saveitem_database <conninfo> [pool=<n>] [queue=<n>]
 *                   [queue_timeout=<time>] [lifetime=<time>]
 *                   [prepare=on|off];
 */

static char *
ngx_http_saveitem_database(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ngx_int_t                       n;
    ngx_str_t                      *value, s;
    ngx_uint_t                      i;
    ngx_msec_t                      ms;
    ngx_http_saveitem_db_t         *db, **dbp;
    ngx_http_saveitem_main_conf_t  *smcf;

    if (slcf->db != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    db = ngx_pcalloc(cf->pool, sizeof(ngx_http_saveitem_db_t));
    if (db == NULL) {
        return NGX_CONF_ERROR;
    }

    db->conninfo = value[1];
    db->pool_size = NGX_HTTP_SAVEITEM_POOL_SIZE;
    db->queue_size = NGX_HTTP_SAVEITEM_QUEUE_SIZE;
    db->queue_timeout = NGX_HTTP_SAVEITEM_QUEUE_TIMEOUT;
    db->lifetime = NGX_HTTP_SAVEITEM_LIFETIME;
    db->prepare = 1;
    db->clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    db->file = cf->conf_file->file.name.data;
    db->line = cf->conf_file->line;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            db->pool_size = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "queue=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n == NGX_ERROR) {
                goto invalid;
            }

            db->queue_size = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "queue_timeout=", 14) == 0) {
            s.data = value[i].data + 14;
            s.len = value[i].len - 14;

            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            db->queue_timeout = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "lifetime=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR) {
                goto invalid;
            }

            if (ms != 0 && ms < NGX_HTTP_SAVEITEM_LIFETIME_MIN) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" is too short: a lifetime must "
                                   "be at least 1s (or 0: for ever)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            db->lifetime = ms;
            continue;
        }

        if (ngx_strcmp(value[i].data, "prepare=on") == 0) {
            db->prepare = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "prepare=off") == 0) {
            db->prepare = 0;
            continue;
        }

        goto invalid;
    }

    /* one pool per distinct conninfo */

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_saveitem_module);
    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {

        if (dbp[i]->conninfo.len != db->conninfo.len
            || ngx_strncmp(dbp[i]->conninfo.data, db->conninfo.data,
                           db->conninfo.len) != 0)
        {
            continue;
        }

        if (dbp[i]->pool_size != db->pool_size
            || dbp[i]->queue_size != db->queue_size
            || dbp[i]->queue_timeout != db->queue_timeout
            || dbp[i]->lifetime != db->lifetime
            || dbp[i]->prepare != db->prepare)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "database %V is already defined in %s:%ui "
                               "with other pool parameters",
                               &dbp[i]->display, dbp[i]->file, dbp[i]->line);
            return NGX_CONF_ERROR;
        }

        slcf->db = dbp[i];
        return NGX_CONF_OK;
    }

    if (ngx_http_saveitem_db_conninfo(cf, db) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    dbp = ngx_array_push(&smcf->dbs);
    if (dbp == NULL) {
        return NGX_CONF_ERROR;
    }

    *dbp = db;
    slcf->db = db;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


/*
 * 0 would answer every request "outcome unknown"; above INT_MAX ms,
 * PostgreSQL refuses the connection's "SET statement_timeout"
 */

static char *
ngx_http_saveitem_query_timeout(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must be more than 0";
    }

    if (*ms > NGX_HTTP_SAVEITEM_QUERY_TIMEOUT_MAX) {
        return "must be at most 2147483647ms (24d20h31m23s), the longest "
               "statement_timeout PostgreSQL takes";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_saveitem_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_saveitem_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * The statement texts, once; then, at start, reload and `nginx -t`, each
 * table is asked whether it takes its statement (ngx_http_saveitem_db.c).
 */

static ngx_int_t
ngx_http_saveitem_init(ngx_conf_t *cf)
{
    ngx_uint_t                      i;
    ngx_http_handler_pt            *h;
    ngx_http_saveitem_db_t        **dbp;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_saveitem_module);

    if (smcf->dbs.nelts == 0) {
        return NGX_OK;
    }

    /* the counters of saveitem_status, and where requests are counted */

    if (ngx_http_saveitem_metrics_conf(cf, smcf) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_saveitem_log_handler;

    if (smcf->uses.nelts == 0) {
        return NGX_OK;
    }

    if (ngx_http_saveitem_db_stmts(cf, smcf) != NGX_OK) {
        return NGX_ERROR;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (ngx_http_saveitem_db_names(cf, dbp[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_process == NGX_PROCESS_SIGNALLER) {
        return NGX_OK;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (ngx_http_saveitem_db_check(cf, smcf, dbp[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_saveitem_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_saveitem_db_t        **dbp;
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_saveitem_module);
    if (smcf == NULL) {
        return NGX_OK;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (ngx_http_saveitem_pool_init(cycle, dbp[i], smcf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_saveitem_metrics_init_process(cycle, smcf);
}


static void
ngx_http_saveitem_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_saveitem_db_t        **dbp;
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_saveitem_module);
    if (smcf == NULL) {
        return;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (dbp[i]->pool) {
            ngx_http_saveitem_pool_done(dbp[i]->pool);
        }
    }

    ngx_http_saveitem_metrics_exit_process(cycle, smcf);
}
