
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <libpq-fe.h>

#include "ngx_http_saveitem_check.h"


typedef struct ngx_http_saveitem_db_s    ngx_http_saveitem_db_t;
typedef struct ngx_http_saveitem_pool_s  ngx_http_saveitem_pool_t;
typedef struct ngx_http_saveitem_conn_s  ngx_http_saveitem_conn_t;
typedef struct ngx_http_saveitem_job_s   ngx_http_saveitem_job_t;

typedef void (*ngx_http_saveitem_done_pt)(ngx_http_saveitem_job_t *job);


/* at most, see ngx_http_saveitem_conn_params() */
#define NGX_HTTP_SAVEITEM_PARAMS  6


/* what happened to a job's row: only "stored" answers with a key */

typedef enum {
    NGX_HTTP_SAVEITEM_PENDING = 0,
    NGX_HTTP_SAVEITEM_STORED,
    NGX_HTTP_SAVEITEM_NOT_STORED,
    NGX_HTTP_SAVEITEM_UNKNOWN
} ngx_http_saveitem_outcome_e;


/*
 * An INSERT, as 1, 2, ... rows: the text and name of each, null-terminated;
 * [1] is the plain single-row statement.  Made in each worker at start.
 */

typedef struct {
    ngx_str_t                     table;      /* quoted */
    ngx_str_t                     column;     /* quoted */
    ngx_str_t                     returning;  /* quoted */
    ngx_str_t                    *sql;        /* [rows] */
    ngx_str_t                    *name;       /* [rows] */
} ngx_http_saveitem_stmt_t;


/* one per distinct conninfo, made at configuration time */

struct ngx_http_saveitem_db_s {
    ngx_str_t                     conninfo;   /* null-terminated */
    ngx_str_t                     display;    /* without a password */
    ngx_str_t                     host;       /* names, as resolved */
    ngx_str_t                     hostaddr;   /* their addresses */
    ngx_str_t                     port;       /* as many as hosts */
    ngx_uint_t                    pool_size;
    ngx_uint_t                    queue_size;
    ngx_msec_t                    queue_timeout;
    ngx_msec_t                    connect_timeout;
    ngx_http_saveitem_pool_t     *pool;       /* this worker's */
    u_char                       *file;
    ngx_uint_t                    line;
};


typedef struct {
    ngx_array_t                   dbs;        /* ngx_http_saveitem_db_t * */
    ngx_array_t                   stmts;      /* ngx_http_saveitem_stmt_t */
    ngx_uint_t                    batch_max;  /* rows, over all locations */
    ngx_array_t                   uses;       /* ngx_http_saveitem_use_t */
} ngx_http_saveitem_main_conf_t;


/* a statement used with a database somewhere: checked at start */

typedef struct {
    ngx_http_saveitem_db_t       *db;
    ngx_uint_t                    stmt;
    u_char                       *file;
    ngx_uint_t                    line;
} ngx_http_saveitem_use_t;


/*
 * A job links one request to the connection that carries its statement.
 * It belongs to the pool: a request that ends early only clears job->data.
 */

struct ngx_http_saveitem_job_s {
    ngx_queue_t                   queue;
    ngx_event_t                   wait;       /* queue timeout */
    ngx_http_saveitem_pool_t     *pool;
    ngx_log_t                    *log;

    void                         *data;       /* NULL once detached */
    ngx_http_saveitem_done_pt     handler;

    ngx_uint_t                    stmt;
    ngx_msec_t                    timeout;
    u_char                       *body;       /* null-terminated */
    size_t                        body_len;
    ngx_uint_t                    batch_rows; /* 1: never with others */
    size_t                        batch_bytes;

    ngx_http_saveitem_outcome_e   outcome;
    ngx_uint_t                    status;
    const char                   *error;      /* machine-readable code */
    const char                   *message;    /* for the client */
    PGresult                     *res;        /* the error, owned */
    u_char                        sqlstate[6];
    ngx_str_t                     pk;
    u_char                        pk_buf[64];
    unsigned                      pk_number:1;
    unsigned                      waiting:1;
    unsigned                      failed:1;   /* its statement failed */
    unsigned                      retry:1;    /* its batch failed */
};


struct ngx_http_saveitem_pool_s {
    ngx_http_saveitem_db_t       *db;
    ngx_log_t                    *log;
    ngx_http_saveitem_stmt_t     *stmts;
    ngx_uint_t                    nstmts;
    ngx_uint_t                    batch_max;

    ngx_queue_t                   idle;       /* connections */
    ngx_queue_t                   busy;       /* connections */
    ngx_queue_t                   waiting;    /* jobs */
    ngx_queue_t                   free;       /* jobs */

    ngx_uint_t                    nconns;
    ngx_uint_t                    nidle;
    ngx_uint_t                    nconnecting;
    ngx_uint_t                    nwaiting;

    ngx_uint_t                    nstatements;
    ngx_uint_t                    nrows;
    ngx_uint_t                    maxrows;
    ngx_uint_t                    sizes[8];   /* statements of 1, 2-3, .. */

    ngx_msec_t                    backoff;
    ngx_event_t                   retry;      /* end of the backoff */
    ngx_event_t                   dispatch;   /* posted */
    unsigned                      down:1;     /* last connect failed */
};


ngx_int_t ngx_http_saveitem_stmts_init(ngx_cycle_t *cycle,
    ngx_http_saveitem_main_conf_t *smcf);
ngx_int_t ngx_http_saveitem_pool_init(ngx_cycle_t *cycle,
    ngx_http_saveitem_db_t *db, ngx_http_saveitem_main_conf_t *smcf);
void ngx_http_saveitem_pool_done(ngx_http_saveitem_pool_t *pool);
ngx_http_saveitem_job_t *ngx_http_saveitem_job_get(
    ngx_http_saveitem_pool_t *pool);
ngx_int_t ngx_http_saveitem_job_post(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_job_release(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_job_detach(ngx_http_saveitem_job_t *job);
ngx_msec_t ngx_http_saveitem_retry_after(ngx_http_saveitem_pool_t *pool);
ngx_uint_t ngx_http_saveitem_conn_params(ngx_http_saveitem_db_t *db,
    const char **keywords, const char **values);
u_char *ngx_http_saveitem_pq_error(PGconn *pg, u_char *buf, size_t len);


extern ngx_module_t  ngx_http_saveitem_module;


#endif /* _NGX_HTTP_SAVEITEM_H_INCLUDED_ */
