
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_POOL_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_POOL_H_INCLUDED_


/*
 * What the pool (src/ngx_http_saveitem_pool.c), the connection state
 * machine (src/ngx_http_saveitem_conn.c), batches
 * (src/ngx_http_saveitem_batch.c) and jobs (src/ngx_http_saveitem_job.c)
 * share; the rest of the module sees only ngx_http_saveitem.h.  Each file
 * calls only those below it: pool -> conn -> batch -> job.
 */


#include "ngx_http_saveitem.h"
#include "ngx_http_saveitem_metrics.h"
#include "ngx_http_saveitem_policy.h"


typedef enum {
    NGX_HTTP_SAVEITEM_RESOLVING = 0,
    NGX_HTTP_SAVEITEM_CONNECTING,
    NGX_HTTP_SAVEITEM_IDLE,
    NGX_HTTP_SAVEITEM_BUSY
} ngx_http_saveitem_state_e;


typedef enum {
    NGX_HTTP_SAVEITEM_SET = 0,      /* arg 0 */
    NGX_HTTP_SAVEITEM_PREPARE,      /* arg: the statement's slot */
    NGX_HTTP_SAVEITEM_INSERT,
    NGX_HTTP_SAVEITEM_SYNC,         /* arg 1: inside a transaction */
    NGX_HTTP_SAVEITEM_TX,           /* arg: ngx_http_saveitem_tx[] */
    NGX_HTTP_SAVEITEM_COMMIT,
    NGX_HTTP_SAVEITEM_CATALOG       /* arg: the statement read for */
} ngx_http_saveitem_expect_e;


/* what an INSERT's rows are */

typedef enum {
    NGX_HTTP_SAVEITEM_ROWS = 0,     /* a key each, in order */
    NGX_HTTP_SAVEITEM_KEYED,        /* (key, pk, replayed), by key */
    NGX_HTTP_SAVEITEM_BULK,         /* one job, its documents in order */
    NGX_HTTP_SAVEITEM_PROBE         /* one job: always an error */
} ngx_http_saveitem_kind_e;


/*
 * The prepared statements of a connection, for each statement: 1 ..
 * batch_max rows, without and with keys, then bulk and probe
 */
/* a table that did not match its configuration, asked again after */
#define NGX_HTTP_SAVEITEM_CATALOG_AGAIN  1000


#define ngx_http_saveitem_slots(pool)  (2 * ((pool)->batch_max + 1) + 2)


/*
 * Results expected at most: setup (SET, PREPARE of the INSERT, the two
 * PREPAREs of the savepoint statements, a sync: 5), then an isolation of
 * ISOLATE rows (BEGIN and SAVEPOINT once; each row ROLLBACK TO but the
 * first, INSERT, SAVEPOINT, a sync; then ROLLBACK TO, COMMIT, a sync:
 * 4 a row + 4), or a pipeline (fewer): 137 for 32 rows
 */
#define NGX_HTTP_SAVEITEM_EXPECT      (4 * NGX_HTTP_SAVEITEM_ISOLATE + 16)

/*
 * The parameters of what one connection sends at once, two a row (the
 * document and its key): a statement of batch_max rows, a pipeline or an
 * isolation, whichever takes the most rows; any batch_max (rows= below
 * ISOLATE, or no group commit at all) still isolates ISOLATE rows
 */
#define ngx_http_saveitem_nparams(pool)                                       \
    (3 * ngx_max((pool)->batch_max,                                           \
                 ngx_max(NGX_HTTP_SAVEITEM_PIPELINE,                          \
                         NGX_HTTP_SAVEITEM_ISOLATE)))

#define INT2OID                       21
#define INT4OID                       23
#define INT8OID                       20
#define OIDOID                        26
#define NUMERICOID                    1700


typedef struct ngx_http_saveitem_conn_s  ngx_http_saveitem_conn_t;

typedef void (*ngx_http_saveitem_released_pt)(ngx_http_saveitem_pool_t *pool);
typedef void (*ngx_http_saveitem_failed_pt)(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason);


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
    ngx_event_t                   open;       /* posted: for readiness */

    /*
     * Set by the pool for its connections, which are below it and do not
     * call it: one was released (idle again, or closed): dispatch; none
     * could be made: back off
     */
    ngx_http_saveitem_released_pt released;
    ngx_http_saveitem_failed_pt   connect_failed;

    /*
     * Group commit: connections in use at most (see pool_dispatch), and a
     * statement's usual time, in 1/16 ms
     */
    ngx_uint_t                    active;
    ngx_msec_t                    rtt16;
    ngx_event_t                   grow;

    /*
     * Of the documents whose fate is known, those the server refused for
     * what they hold, in 1/65536, a moving average over the last 64 or
     * so; isolating: the rows of a full isolation would likely hold one
     */
    ngx_uint_t                    guilty;
    unsigned                      isolating:1;

    /* why no connection can be had now; STORED: none */
    ngx_http_saveitem_reason_e    down;
    unsigned                      exiting:1;  /* worker_shutdown_timeout */

    /*
     * How long the hold rule has kept waiting jobs from a connection, in
     * us (metrics_now()): before hold_since, and since it (0: not now)
     */
    ngx_uint_t                    held_us;
    ngx_uint_t                    hold_since;

    /*
     * Jobs whose statement settled, answered from a posted event: after
     * the connection that carried them has been given its next statement
     * (see job_answer)
     */
    ngx_queue_t                   settled;    /* jobs */
    ngx_event_t                   answer;     /* posted */
};


typedef struct {
    ngx_http_saveitem_expect_e    type;
    ngx_uint_t                    arg;        /* statement, or jobs */
    ngx_uint_t                    seen;       /* results so far */
    ngx_http_saveitem_kind_e      kind;       /* of an INSERT; TX: not 0
                                                 when it is a PREPARE */
} ngx_http_saveitem_expect_t;


struct ngx_http_saveitem_conn_s {
    ngx_queue_t                   queue;      /* in pool->idle or ->busy */
    ngx_http_saveitem_pool_t     *pool;
    PGconn                       *pg;
    ngx_connection_t             *c;
    ino_t                         ino;
    ngx_log_t                     log;
    ngx_http_saveitem_state_e     state;
    ngx_http_saveitem_hosts_t    *hosts;      /* resolved, while connecting */
    ngx_http_saveitem_targets_t   targets;    /* being tried */
    ngx_uint_t                    skip;       /* hosts that did not answer */
    ngx_msec_t                    started;    /* for saveitem lifetime= */
    ngx_msec_t                    deadline;   /* of what it waits for */
    ngx_msec_t                    timeout;    /* saveitem_query_timeout */

    ngx_queue_t                   jobs;       /* in flight, in order */
    ngx_uint_t                    nsettled;   /* jobs with a result */
    ngx_uint_t                    nulls;

    ngx_http_saveitem_expect_t    expect[NGX_HTTP_SAVEITEM_EXPECT];
    ngx_uint_t                    head;
    ngx_uint_t                    nexpect;

    ngx_msec_t                    statement_timeout;  /* 0: unknown */
    PGresult                     *setup_err;
    u_char                       *prepared;   /* [stmt * slots + ...] */
    u_char                        count[NGX_INT_T_LEN + 1];  /* bulk */
    const char                  **params;     /* [nparams(pool)] */
    unsigned                      savepoints:1;  /* prepared */
    unsigned                      fatal:1;    /* the server said goodbye */
    unsigned                      retire:1;   /* close when idle */
    unsigned                      timedout:1;
    unsigned                      used:1;     /* has carried a statement */
    unsigned                      setup_failed:1;  /* its SET */
    ngx_uint_t                    catalog;    /* 1 + the statement read for */
};


/* the statements of an isolation (src/ngx_http_saveitem_batch.c) */

extern const char  *ngx_http_saveitem_tx[];
extern const char  *ngx_http_saveitem_tx_names[];

#define NGX_HTTP_SAVEITEM_TX_BEGIN     0
#define NGX_HTTP_SAVEITEM_TX_SAVE      1
#define NGX_HTTP_SAVEITEM_TX_BACK      2
#define NGX_HTTP_SAVEITEM_TX_COMMIT    3


/* src/ngx_http_saveitem_conn.c */

ngx_int_t ngx_http_saveitem_conn_open(ngx_http_saveitem_pool_t *pool);
void ngx_http_saveitem_conn_send(ngx_http_saveitem_conn_t *sc,
    ngx_uint_t share);
ngx_int_t ngx_http_saveitem_conn_alive(ngx_http_saveitem_conn_t *sc);
ngx_uint_t ngx_http_saveitem_conn_expired(ngx_http_saveitem_conn_t *sc);
void ngx_http_saveitem_conn_close(ngx_http_saveitem_conn_t *sc);
void ngx_http_saveitem_conn_catalog(ngx_http_saveitem_conn_t *sc,
    ngx_uint_t stmt);


/* src/ngx_http_saveitem_batch.c */

ngx_int_t ngx_http_saveitem_batch_send(ngx_http_saveitem_conn_t *sc,
    ngx_uint_t share);
ngx_int_t ngx_http_saveitem_batch_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res);
void ngx_http_saveitem_batch_sync_error(ngx_http_saveitem_conn_t *sc,
    PGresult *res);
void ngx_http_saveitem_batch_commit_result(ngx_http_saveitem_conn_t *sc,
    PGresult *res);
void ngx_http_saveitem_batch_settle(ngx_http_saveitem_conn_t *sc);
void ngx_http_saveitem_not_run(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_batch_expect(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_e type, ngx_uint_t arg,
    ngx_http_saveitem_kind_e kind);


/* src/ngx_http_saveitem_job.c */

void ngx_http_saveitem_job_free(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_job_done(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_job_answer(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_job_answer_handler(ngx_event_t *ev);
void ngx_http_saveitem_job_fail(ngx_http_saveitem_job_t *job,
    ngx_http_saveitem_outcome_e outcome, ngx_http_saveitem_reason_e reason);
void ngx_http_saveitem_job_wait(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_job_t *job, ngx_uint_t head);
void ngx_http_saveitem_job_fail_head(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason);
void ngx_http_saveitem_job_fail_waiting(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason);
ngx_msec_t ngx_http_saveitem_retry_left(ngx_http_saveitem_pool_t *pool);
void ngx_http_saveitem_job_forget_pk(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_job_requeue(ngx_http_saveitem_pool_t *pool,
    ngx_queue_t *jobs);
ngx_uint_t ngx_http_saveitem_job_held(ngx_http_saveitem_pool_t *pool,
    ngx_uint_t now);


#endif /* _NGX_HTTP_SAVEITEM_POOL_H_INCLUDED_ */
