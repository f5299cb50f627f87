
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * POST -> JSON check -> INSERT on a pooled, non-blocking libpq
 * connection -> {"pk": N}.  This file is the nginx side: directives,
 * the request (method, type, body, checks), the answer.  The pool and
 * the connections are in src/ngx_http_saveitem_pg.c, the pure checks on
 * bytes in src/ngx_http_saveitem_check.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <netdb.h>

#include "ngx_http_saveitem.h"


typedef struct {
    ngx_http_saveitem_db_t       *db;
    ngx_int_t                     stmt;
    ngx_msec_t                    query_timeout;
    ngx_uint_t                    batch_rows;
    size_t                        batch_bytes;
    u_char                       *file;
    ngx_uint_t                    line;
} ngx_http_saveitem_loc_conf_t;


typedef struct {
    ngx_http_request_t           *request;
    ngx_http_saveitem_job_t      *job;
    ngx_str_t                     pk;
    u_char                        sqlstate[6];
} ngx_http_saveitem_ctx_t;


typedef struct {
    ngx_uint_t                    status;
    const char                   *error;
    ngx_str_t                     message;
    const char                   *sqlstate;
    ngx_uint_t                    unknown;
    ngx_msec_t                    retry_after;
    saveitem_json_error_t        *json;
} ngx_http_saveitem_error_t;


static ngx_int_t ngx_http_saveitem_handler(ngx_http_request_t *r);
static void ngx_http_saveitem_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_saveitem_process(ngx_http_request_t *r,
    ngx_http_saveitem_ctx_t *ctx);
static ngx_int_t ngx_http_saveitem_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static void ngx_http_saveitem_cleanup(void *data);
static void ngx_http_saveitem_job_handler(ngx_http_saveitem_job_t *job);
static ngx_int_t ngx_http_saveitem_send_pk(ngx_http_request_t *r,
    ngx_str_t *pk, ngx_uint_t number);
static ngx_int_t ngx_http_saveitem_send_error(ngx_http_request_t *r,
    ngx_http_saveitem_error_t *err);
static ngx_int_t ngx_http_saveitem_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_buf_t *b);

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
static char *ngx_http_saveitem_conninfo(ngx_conf_t *cf,
    ngx_http_saveitem_db_t *db);
static ngx_uint_t ngx_http_saveitem_secret(ngx_str_t *conninfo);
static size_t ngx_http_saveitem_chomp(const char *s);
static ngx_int_t ngx_http_saveitem_resolve(ngx_conf_t *cf,
    ngx_http_saveitem_db_t *db, const char *hosts, const char *ports);
static void ngx_http_saveitem_list_item(const char *list, ngx_uint_t i,
    ngx_str_t *item);
static void ngx_http_saveitem_list_add(u_char **p, u_char *last,
    ngx_str_t *item);
static ngx_int_t ngx_http_saveitem_list_copy(ngx_conf_t *cf, ngx_str_t *dst,
    u_char *buf, u_char *last);
static ngx_uint_t ngx_http_saveitem_streq(ngx_str_t *a, ngx_str_t *b);
static ngx_int_t ngx_http_saveitem_quote(ngx_conf_t *cf, ngx_str_t *name,
    size_t max_parts, ngx_str_t *quoted);
static ngx_int_t ngx_http_saveitem_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_saveitem_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_saveitem_check_db(ngx_conf_t *cf,
    ngx_http_saveitem_main_conf_t *smcf, ngx_http_saveitem_db_t *db);
static ngx_int_t ngx_http_saveitem_init_process(ngx_cycle_t *cycle);
static void ngx_http_saveitem_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_saveitem_commands[] = {

    { ngx_string("saveitem"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
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


static ngx_str_t  ngx_http_saveitem_none = ngx_string("");


static ngx_http_variable_t  ngx_http_saveitem_vars[] = {

    { ngx_string("saveitem_pk"), NULL, ngx_http_saveitem_pk_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("saveitem_sqlstate"), NULL,
      ngx_http_saveitem_sqlstate_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_saveitem_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_table_elt_t           *h;
    ngx_http_saveitem_ctx_t   *ctx;
    ngx_http_saveitem_error_t  err;

    ngx_memzero(&err, sizeof(ngx_http_saveitem_error_t));

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "saveitem: method %V is not allowed", &r->method_name);

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        ngx_str_set(&h->value, "POST");

        err.status = NGX_HTTP_NOT_ALLOWED;
        err.error = "method_not_allowed";
        ngx_str_set(&err.message, "only POST is allowed");

        return ngx_http_saveitem_send_error(r, &err);
    }

    h = r->headers_in.content_type;

    if (h != NULL
        && !saveitem_content_type_is_json(h->value.data, h->value.len))
    {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "saveitem: content type \"%V\" is not JSON", &h->value);

        err.status = NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
        err.error = "unsupported_media_type";
        ngx_str_set(&err.message,
                    "the content type must be application/json");

        return ngx_http_saveitem_send_error(r, &err);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_saveitem_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_saveitem_module);

    rc = ngx_http_read_client_request_body(r, ngx_http_saveitem_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
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
    ngx_str_t                      body;
    ngx_http_cleanup_t            *cln;
    saveitem_json_error_t          json;
    ngx_http_saveitem_job_t       *job;
    ngx_http_saveitem_error_t      err;
    ngx_http_saveitem_pool_t      *pool;
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    ngx_memzero(&err, sizeof(ngx_http_saveitem_error_t));

    if (ngx_http_saveitem_read_body(r, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "saveitem body: %uz bytes", body.len);

    rc = saveitem_json_check(body.data, body.len, &json);

    switch (rc) {

    case SAVEITEM_JSON_OK:
    case SAVEITEM_JSON_DEFER:
        break;

    case SAVEITEM_JSON_INVALID:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "saveitem: invalid JSON at line %uz, column %uz: %s",
                      json.line, json.column, json.message);

        err.status = NGX_HTTP_BAD_REQUEST;
        err.error = "invalid_json";
        err.json = &json;

        return ngx_http_saveitem_send_error(r, &err);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pool = slcf->db->pool;

    job = ngx_http_saveitem_job_get(pool);
    if (job == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    job->data = ctx;
    job->handler = ngx_http_saveitem_job_handler;
    job->log = r->connection->log;
    job->stmt = slcf->stmt;
    job->timeout = slcf->query_timeout;
    job->body = body.data;
    job->body_len = body.len;
    job->batch_rows = slcf->batch_rows;
    job->batch_bytes = slcf->batch_bytes;

    rc = ngx_http_saveitem_job_post(job);

    if (rc != NGX_OK) {
        ngx_http_saveitem_job_release(job);

        err.status = NGX_HTTP_SERVICE_UNAVAILABLE;
        err.error = "database_unavailable";
        err.retry_after = ngx_http_saveitem_retry_after(pool);

        if (rc == NGX_BUSY) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "saveitem: pool and queue are full: %ui "
                          "connections, %ui requests waiting "
                          "(saveitem_database pool= queue=)",
                          pool->nconns, pool->nwaiting);

            err.error = "queue_full";
            ngx_str_set(&err.message, "too many requests are waiting for "
                                      "the database");

        } else {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "saveitem: PostgreSQL is not reachable, "
                          "retrying in %M ms", err.retry_after);

            ngx_str_set(&err.message, "the database is not reachable");
        }

        return ngx_http_saveitem_send_error(r, &err);
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_http_saveitem_job_detach(job);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_saveitem_cleanup;
    cln->data = ctx;
    ctx->job = job;

    /* notice a client that goes away while the statement runs */

    r->read_event_handler = ngx_http_test_reading;

    return NGX_DONE;
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


/* the request ends first: let go of the job, whose statement goes on */

static void
ngx_http_saveitem_cleanup(void *data)
{
    ngx_http_saveitem_ctx_t *ctx = data;

    if (ctx->job == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "saveitem: request ends before PostgreSQL answered, "
                  "the statement completes without it");

    ngx_http_saveitem_job_detach(ctx->job);
    ctx->job = NULL;
}


static void
ngx_http_saveitem_job_handler(ngx_http_saveitem_job_t *job)
{
    size_t                      len;
    ngx_int_t                   rc;
    ngx_uint_t                  level;
    const char                 *msg;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_saveitem_ctx_t    *ctx;
    ngx_http_saveitem_error_t   err;

    ctx = job->data;
    r = ctx->request;
    c = r->connection;

    ctx->job = NULL;

    if (job->outcome == NGX_HTTP_SAVEITEM_STORED) {
        ctx->pk.data = ngx_pstrdup(r->pool, &job->pk);
        ctx->pk.len = job->pk.len;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "saveitem stored, key %V", &job->pk);

        if (ctx->pk.data == NULL) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

        } else {
            rc = ngx_http_saveitem_send_pk(r, &ctx->pk, job->pk_number);
        }

        goto done;
    }

    ngx_memzero(&err, sizeof(ngx_http_saveitem_error_t));

    err.status = job->status;
    err.error = job->error;
    err.unknown = (job->outcome == NGX_HTTP_SAVEITEM_UNKNOWN);

    if (job->message) {
        err.message.data = (u_char *) job->message;
        err.message.len = ngx_strlen(job->message);
    }

    if (job->sqlstate[0]) {
        err.sqlstate = (const char *) job->sqlstate;
        ngx_memcpy(ctx->sqlstate, job->sqlstate, sizeof(ctx->sqlstate));

        msg = job->res ? PQresultErrorField(job->res, PG_DIAG_MESSAGE_PRIMARY)
                       : job->message;

        if (msg == NULL) {
            msg = "unknown error";
        }

        level = (err.status < NGX_HTTP_INTERNAL_SERVER_ERROR) ? NGX_LOG_INFO
                                                              : NGX_LOG_ERR;
        len = ngx_strlen(msg);

        ngx_log_error(level, c->log, 0,
                      "saveitem: PostgreSQL error %s: %*s%s",
                      err.sqlstate, len, msg,
                      err.unknown ? " (the row may have been stored)" : "");

        /* the server's words only where they explain a client's mistake */

        if (err.status < NGX_HTTP_INTERNAL_SERVER_ERROR) {
            err.message.data = (u_char *) msg;
            err.message.len = len;

        } else if (err.status == NGX_HTTP_GATEWAY_TIME_OUT) {
            ngx_str_set(&err.message, "the statement took longer than the "
                                      "query timeout and was cancelled");

        } else if (err.status == NGX_HTTP_SERVICE_UNAVAILABLE) {
            ngx_str_set(&err.message, "the database is not available");

        } else {
            ngx_str_set(&err.message, "the database could not store the "
                                      "item");
        }
    }

    if (err.status == NGX_HTTP_SERVICE_UNAVAILABLE && !err.unknown) {
        err.retry_after = ngx_http_saveitem_retry_after(job->pool);
    }

    rc = ngx_http_saveitem_send_error(r, &err);

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_saveitem_send_pk(ngx_http_request_t *r, ngx_str_t *pk,
    ngx_uint_t number)
{
    size_t      len;
    ngx_buf_t  *b;

    len = sizeof("{\"pk\": \"\"}\n") - 1
          + (number ? pk->len : saveitem_json_escape(NULL, pk->data, pk->len));

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
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

    return ngx_http_saveitem_send(r, NGX_HTTP_OK, b);
}


static ngx_int_t
ngx_http_saveitem_send_error(ngx_http_request_t *r,
    ngx_http_saveitem_error_t *err)
{
    size_t                  len, mlen;
    u_char                 *msg;
    ngx_buf_t              *b;
    ngx_table_elt_t        *h;
    saveitem_json_error_t  *json;

    json = err->json;

    if (json != NULL) {
        msg = (u_char *) json->message;
        mlen = ngx_strlen(msg);

    } else {
        msg = err->message.data;
        mlen = err->message.len;
    }

    len = sizeof("{\"error\": \"\", \"message\": \"\"}\n") - 1
          + ngx_strlen(err->error)
          + saveitem_json_escape(NULL, msg, mlen);

    if (err->sqlstate) {
        len += sizeof(", \"sqlstate\": \"\"") - 1 + 5;
    }

    if (json) {
        len += sizeof(", \"line\": , \"column\": , \"position\": ") - 1
               + 3 * NGX_SIZE_T_LEN;
    }

    if (err->unknown) {
        len += sizeof(", \"outcome\": \"unknown\"") - 1;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"error\": \"%s\", \"message\": \"",
                          err->error);
    b->last += saveitem_json_escape(b->last, msg, mlen);
    *b->last++ = '"';

    if (err->sqlstate) {
        b->last = ngx_sprintf(b->last, ", \"sqlstate\": \"%5s\"",
                              err->sqlstate);
    }

    if (json) {
        b->last = ngx_sprintf(b->last,
                              ", \"line\": %uz, \"column\": %uz, "
                              "\"position\": %uz",
                              json->line, json->column, json->position);
    }

    if (err->unknown) {
        b->last = ngx_cpymem(b->last, ", \"outcome\": \"unknown\"",
                             sizeof(", \"outcome\": \"unknown\"") - 1);
    }

    *b->last++ = '}';
    *b->last++ = LF;

    if (err->status == NGX_HTTP_SERVICE_UNAVAILABLE && !err->unknown) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (h->value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value.len = ngx_sprintf(h->value.data, "%M",
                                   ngx_max((err->retry_after + 999) / 1000,
                                           1))
                       - h->value.data;
    }

    return ngx_http_saveitem_send(r, err->status, b);
}


static ngx_int_t
ngx_http_saveitem_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
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
                              30000);
    ngx_conf_merge_uint_value(conf->batch_rows, prev->batch_rows, 64);
    ngx_conf_merge_size_value(conf->batch_bytes, prev->batch_bytes,
                              256 * 1024);

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


/* saveitem <table> [column=<name>] [returning=<name>]; */

static char *
ngx_http_saveitem(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ngx_str_t                      *value, table, column, returning;
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
            && ngx_http_saveitem_streq(&stmt[i].returning, &returning))
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
    }

    slcf->stmt = i;
    slcf->file = cf->conf_file->file.name.data;
    slcf->line = cf->conf_file->line;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_saveitem_handler;

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_http_saveitem_streq(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len && ngx_strncmp(a->data, b->data, a->len) == 0;
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

    slcf->batch_rows = 64;
    slcf->batch_bytes = 256 * 1024;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "rows=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            /* PostgreSQL takes 65535 parameters; plans get slow before */

            if (n == NGX_ERROR || n < 1 || n > 1000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": rows must be "
                                   "1 to 1000", &value[i]);
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
 *                   [queue_timeout=<time>];
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
    db->pool_size = 8;
    db->queue_size = 256;
    db->queue_timeout = 5000;
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
            || dbp[i]->queue_timeout != db->queue_timeout)
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

    if (ngx_http_saveitem_conninfo(cf, db) != NGX_CONF_OK) {
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
 * Checks the conninfo with libpq's own parser (no connection is made),
 * makes a description of it without the password, takes its
 * connect_timeout, and resolves host names now, in the master: libpq would
 * resolve them with a blocking getaddrinfo() in every worker.
 */

static char *
ngx_http_saveitem_conninfo(ngx_conf_t *cf, ngx_http_saveitem_db_t *db)
{
    u_char            *p, *last;
    char              *errmsg, *hosts, *ports, *timeout;
    char              *rv;
    ngx_int_t          n;
    ngx_uint_t         hostaddr;
    PQconninfoOption  *opts, *o;
    u_char             buf[1024];

    errmsg = NULL;
    opts = PQconninfoParse((char *) db->conninfo.data, &errmsg);

    if (opts == NULL) {
        /* libpq's message may quote a part of the string: a password */

        if (errmsg && !ngx_http_saveitem_secret(&db->conninfo)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid conninfo in \"saveitem_database\": "
                               "%*s", ngx_http_saveitem_chomp(errmsg),
                               errmsg);
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid conninfo in \"saveitem_database\" "
                               "(libpq's message is not shown: it may quote "
                               "the password)");
        }

        if (errmsg) {
            PQfreemem(errmsg);
        }

        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    p = buf;
    last = buf + sizeof(buf) - 1;
    hosts = NULL;
    ports = NULL;
    timeout = getenv("PGCONNECT_TIMEOUT");
    hostaddr = (getenv("PGHOSTADDR") != NULL);

    db->connect_timeout = 5000;

    for (o = opts; o->keyword; o++) {

        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        if (ngx_strcmp(o->keyword, "connect_timeout") == 0) {
            timeout = o->val;
            continue;
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            hosts = o->val;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = 1;

        } else if (ngx_strcmp(o->keyword, "port") == 0) {
            ports = o->val;

        } else if (ngx_strcmp(o->keyword, "dbname") != 0
                   && ngx_strcmp(o->keyword, "user") != 0)
        {
            continue;
        }

        p = ngx_slprintf(p, last, "%s%s=%s", p == buf ? "" : " ",
                         o->keyword, o->val);
    }

    if (p == buf) {
        p = ngx_cpymem(p, "(libpq defaults)", sizeof("(libpq defaults)") - 1);
    }

    db->display.len = p - buf;
    db->display.data = ngx_pnalloc(cf->pool, db->display.len);
    if (db->display.data == NULL) {
        goto done;
    }

    ngx_memcpy(db->display.data, buf, db->display.len);

    if (timeout != NULL) {
        n = ngx_atoi((u_char *) timeout, ngx_strlen(timeout));

        if (n == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid connect_timeout \"%s\"", timeout);
            goto done;
        }

        /* as libpq: 0 is "no limit", and at least 2 seconds */

        if (n > 0) {
            db->connect_timeout = ngx_max(n, 2) * 1000;
        }
    }

    if (hosts == NULL) {
        hosts = getenv("PGHOST");
    }

    if (ports == NULL) {
        ports = getenv("PGPORT");
    }

    if (hosts != NULL && !hostaddr
        && ngx_http_saveitem_resolve(cf, db, hosts, ports) != NGX_OK)
    {
        goto done;
    }

    rv = NGX_CONF_OK;

done:

    PQconninfoFree(opts);

    return rv;
}


/* a password may be written in it: as a keyword, or in a URI */

static ngx_uint_t
ngx_http_saveitem_secret(ngx_str_t *conninfo)
{
    return ngx_strcasestrn(conninfo->data, "password", 8 - 1) != NULL
           || ngx_strchr(conninfo->data, '@') != NULL;
}


static size_t
ngx_http_saveitem_chomp(const char *s)
{
    size_t  len;

    len = ngx_strlen(s);

    while (len && (s[len - 1] == '\n' || s[len - 1] == ' ')) {
        len--;
    }

    return len;
}


/*
 * "host" and "port" are comma-separated lists.  A socket directory or an
 * address stays as it is; a name becomes one entry per address it
 * resolves to, with the address in "hostaddr", as libpq would try them.
 */

static ngx_int_t
ngx_http_saveitem_resolve(ngx_conf_t *cf, ngx_http_saveitem_db_t *db,
    const char *hosts, const char *ports)
{
    int               rc;
    u_char           *h, *a, *pt, *hlast, *alast, *plast;
    ngx_str_t         host, port;
    ngx_uint_t        named, nports, i;
    struct addrinfo   hints, *res, *ai;
    u_char            name[NGX_MAXHOSTNAMELEN];
    u_char            addr[NGX_SOCKADDR_STRLEN];
    u_char            hbuf[2048], abuf[2048], pbuf[1024];

    nports = 0;

    if (ports != NULL && ports[0] != '\0') {
        nports = 1;

        for (i = 0; ports[i]; i++) {
            if (ports[i] == ',') {
                nports++;
            }
        }
    }

    h = hbuf;
    a = abuf;
    pt = pbuf;
    hlast = hbuf + sizeof(hbuf) - 1;
    alast = abuf + sizeof(abuf) - 1;
    plast = pbuf + sizeof(pbuf) - 1;
    named = 0;

    for (i = 0; /* void */ ; i++) {
        ngx_http_saveitem_list_item(hosts, i, &host);

        if (host.data == NULL) {
            break;
        }

        if (nports > 1) {
            ngx_http_saveitem_list_item(ports, i, &port);

            if (port.data == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"saveitem_database\" has fewer ports "
                                   "than hosts");
                return NGX_ERROR;
            }

        } else {
            port.len = 0;
            port.data = NULL;
        }

        if (host.len >= sizeof(name)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "host name too long");
            return NGX_ERROR;
        }

        ngx_cpystrn(name, host.data, host.len + 1);

        if (name[0] == '\0' || name[0] == '/' || name[0] == '@') {
            /* a unix socket */
            ngx_http_saveitem_list_add(&h, hlast, &host);
            ngx_http_saveitem_list_add(&a, alast, NULL);
            ngx_http_saveitem_list_add(&pt, plast, &port);
            continue;
        }

        ngx_memzero(&hints, sizeof(struct addrinfo));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICHOST;

        rc = getaddrinfo((char *) name, NULL, &hints, &res);

        if (rc != 0) {
            hints.ai_flags = AI_ADDRCONFIG;
            rc = getaddrinfo((char *) name, NULL, &hints, &res);

            if (rc != 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "host not found in \"saveitem_database\": "
                                   "\"%s\": %s", name, gai_strerror(rc));
                return NGX_ERROR;
            }

            named = 1;
        }

        for (ai = res; ai; ai = ai->ai_next) {
            ngx_http_saveitem_list_add(&h, hlast, &host);
            ngx_http_saveitem_list_add(&pt, plast, &port);

            /* ngx_sock_ntop() does not terminate the string */

            host.len = ngx_sock_ntop(ai->ai_addr, ai->ai_addrlen, addr,
                                     NGX_SOCKADDR_STRLEN, 0);
            host.data = addr;
            ngx_http_saveitem_list_add(&a, alast, &host);
            host.len = ngx_strlen(name);
            host.data = name;
        }

        freeaddrinfo(res);
    }

    if (!named) {
        return NGX_OK;
    }

    if (h == hlast || a == alast || pt == plast) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many hosts in \"saveitem_database\"");
        return NGX_ERROR;
    }

    if (ngx_http_saveitem_list_copy(cf, &db->host, hbuf, h) != NGX_OK
        || ngx_http_saveitem_list_copy(cf, &db->hostaddr, abuf, a) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (nports > 1
        && ngx_http_saveitem_list_copy(cf, &db->port, pbuf, pt) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_INFO, cf, 0,
                       "saveitem: \"%s\" resolved to \"%V\" now; libpq "
                       "would resolve it blockingly in every worker",
                       hosts, &db->hostaddr);

    return NGX_OK;
}


/* the i-th element of a comma-separated list, or a NULL data */

static void
ngx_http_saveitem_list_item(const char *list, ngx_uint_t i, ngx_str_t *item)
{
    const char  *p, *end;

    p = list;

    while (i--) {
        p = ngx_strchr(p, ',');

        if (p == NULL) {
            item->len = 0;
            item->data = NULL;
            return;
        }

        p++;
    }

    end = ngx_strchr(p, ',');

    if (end == NULL) {
        end = p + ngx_strlen(p);
    }

    item->data = (u_char *) p;
    item->len = end - p;
}


static void
ngx_http_saveitem_list_add(u_char **p, u_char *last, ngx_str_t *item)
{
    /* each item with a leading comma: ngx_http_saveitem_list_copy() */

    *p = ngx_slprintf(*p, last, ",%V",
                      item && item->data ? item : &ngx_http_saveitem_none);
}


static ngx_int_t
ngx_http_saveitem_list_copy(ngx_conf_t *cf, ngx_str_t *dst, u_char *buf,
    u_char *last)
{
    dst->len = last - buf - 1;
    dst->data = ngx_pnalloc(cf->pool, dst->len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, buf + 1, dst->len);
    dst->data[dst->len] = '\0';

    return NGX_OK;
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
 * At start and at `nginx -t`, in the master, where blocking is harmless:
 * each table is asked whether it takes the statement (a missing table or
 * column, a missing privilege is a configuration error).  A database that
 * cannot be reached now is not an error: it may come up later.
 */

static ngx_int_t
ngx_http_saveitem_init(ngx_conf_t *cf)
{
    ngx_uint_t                      i;
    ngx_http_saveitem_db_t        **dbp;
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_saveitem_module);

    if (ngx_process == NGX_PROCESS_SIGNALLER || smcf->uses.nelts == 0) {
        return NGX_OK;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (ngx_http_saveitem_check_db(cf, smcf, dbp[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_saveitem_check_db(ngx_conf_t *cf,
    ngx_http_saveitem_main_conf_t *smcf, ngx_http_saveitem_db_t *db)
{
    u_char                    *p;
    PGconn                    *pg;
    PGresult                  *res;
    ngx_int_t                  rc;
    ngx_uint_t                 i, n;
    const char                *keywords[NGX_HTTP_SAVEITEM_PARAMS + 2];
    const char                *values[NGX_HTTP_SAVEITEM_PARAMS + 2];
    const char                *sqlstate;
    ngx_http_saveitem_use_t   *use;
    ngx_http_saveitem_stmt_t  *stmt;
    u_char                     sql[NGX_MAX_ERROR_STR];
    u_char                     timeout[NGX_INT_T_LEN + 1];

    use = smcf->uses.elts;
    stmt = smcf->stmts.elts;

    n = ngx_http_saveitem_conn_params(db, keywords, values);

    /* a check must not hold the start up for long */

    p = ngx_sprintf(timeout, "%M", ngx_min(db->connect_timeout, 2000) / 1000);
    *p = '\0';
    keywords[n] = "connect_timeout";
    values[n++] = (const char *) timeout;

    keywords[n] = NULL;
    values[n] = NULL;

    pg = PQconnectdbParams(keywords, values, 1);

    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "saveitem: could not connect to PostgreSQL (%V) to "
                      "check its tables now: %s", &db->display,
                      ngx_http_saveitem_pq_error(pg, sql, sizeof(sql)));
        PQfinish(pg);
        return NGX_OK;
    }

    rc = NGX_OK;

    for (i = 0; i < smcf->uses.nelts; i++) {

        if (use[i].db != db) {
            continue;
        }

        /* the single-row statement, as the workers will prepare it */

        p = ngx_snprintf(sql, sizeof(sql) - 1,
                         "INSERT INTO %V (%V) VALUES ($1) RETURNING %V",
                         &stmt[use[i].stmt].table, &stmt[use[i].stmt].column,
                         &stmt[use[i].stmt].returning);
        *p = '\0';

        res = PQprepare(pg, "", (char *) sql, 1, NULL);
        sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        if (PQresultStatus(res) != PGRES_COMMAND_OK
            && sqlstate != NULL && ngx_strncmp(sqlstate, "42", 2) == 0)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"saveitem\" in %s:%ui: PostgreSQL (%V) refuses "
                          "%s: %s", use[i].file, use[i].line, &db->display,
                          sql, PQresultErrorField(res,
                                                  PG_DIAG_MESSAGE_PRIMARY));
            rc = NGX_ERROR;

        } else if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "saveitem: could not check %V.%V now: %s",
                          &stmt[use[i].stmt].table,
                          &stmt[use[i].stmt].column,
                          ngx_http_saveitem_pq_error(pg, sql, sizeof(sql)));
        }

        PQclear(res);
    }

    PQfinish(pg);

    return rc;
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

    if (ngx_http_saveitem_stmts_init(cycle, smcf) != NGX_OK) {
        return NGX_ERROR;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (ngx_http_saveitem_pool_init(cycle, dbp[i], smcf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
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
}
