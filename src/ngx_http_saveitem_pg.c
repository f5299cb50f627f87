
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * The per-worker pool of PostgreSQL connections and the connection state
 * machine: connecting -> idle -> busy -> idle, or -> closed.  libpq owns
 * the socket; nginx only watches it, level-triggered (see PITFALLS: with
 * edge-triggered events a socket that is already readable or writable
 * gives no new event).  A connection always runs in pipeline mode; what
 * it has sent is a FIFO of expected results ("expect" entries), and the
 * jobs whose statements it carries are a FIFO in the same order.
 *
 * This file reports facts (ngx_http_saveitem_facts_t: stored or not, and
 * why); the module file alone decides what to answer.
 */


#include <sys/stat.h>

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
    NGX_HTTP_SAVEITEM_COMMIT
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
    (2 * ngx_max((pool)->batch_max,                                           \
                 ngx_max(NGX_HTTP_SAVEITEM_PIPELINE,                          \
                         NGX_HTTP_SAVEITEM_ISOLATE)))

#define INT2OID                       21
#define INT4OID                       23
#define INT8OID                       20
#define OIDOID                        26
#define NUMERICOID                    1700


typedef struct ngx_http_saveitem_conn_s  ngx_http_saveitem_conn_t;


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
     * Group commit: connections in use at most (see dispatch), and a
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
};


static void ngx_http_saveitem_job_free(ngx_http_saveitem_job_t *job);
static void ngx_http_saveitem_job_done(ngx_http_saveitem_job_t *job);
static void ngx_http_saveitem_job_fail(ngx_http_saveitem_job_t *job,
    ngx_http_saveitem_outcome_e outcome, ngx_http_saveitem_reason_e reason);
static void ngx_http_saveitem_job_wait(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_job_t *job, ngx_uint_t head);
static void ngx_http_saveitem_wait_handler(ngx_event_t *ev);
static void ngx_http_saveitem_fail_waiting(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason);
static void ngx_http_saveitem_dispatch_handler(ngx_event_t *ev);
static void ngx_http_saveitem_dispatch(ngx_http_saveitem_pool_t *pool);
static void ngx_http_saveitem_retry_handler(ngx_event_t *ev);
static void ngx_http_saveitem_open_handler(ngx_event_t *ev);
static ngx_msec_t ngx_http_saveitem_retry_left(ngx_http_saveitem_pool_t *pool);
static ngx_uint_t ngx_http_saveitem_hold(ngx_http_saveitem_pool_t *pool);
static void ngx_http_saveitem_grow_handler(ngx_event_t *ev);
static void ngx_http_saveitem_backoff(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason);

static ngx_int_t ngx_http_saveitem_connect(ngx_http_saveitem_pool_t *pool);
static void ngx_http_saveitem_resolved(void *data, ngx_int_t rc,
    const char *err);
static ngx_int_t ngx_http_saveitem_conn_start(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_connect_timedout(ngx_http_saveitem_conn_t *sc);
static ngx_uint_t ngx_http_saveitem_expired(ngx_http_saveitem_conn_t *sc);
static u_char *ngx_http_saveitem_conn_log(ngx_log_t *log, u_char *buf,
    size_t len);
static ngx_int_t ngx_http_saveitem_wrap(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_unwrap(ngx_http_saveitem_conn_t *sc);
static ngx_int_t ngx_http_saveitem_watch_write(ngx_http_saveitem_conn_t *sc,
    ngx_uint_t on);
static void ngx_http_saveitem_connect_handler(ngx_event_t *ev);
static void ngx_http_saveitem_connected(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_connect_failed(ngx_http_saveitem_conn_t *sc,
    const char *reason, ngx_uint_t local);
static void ngx_http_saveitem_notice(void *arg, const PGresult *res);

static ngx_int_t ngx_http_saveitem_alive(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_conn_send(ngx_http_saveitem_conn_t *sc,
    ngx_uint_t share);
static ngx_int_t ngx_http_saveitem_send_tx(ngx_http_saveitem_conn_t *sc,
    ngx_uint_t t);
static ngx_int_t ngx_http_saveitem_send_isolated(ngx_http_saveitem_conn_t *sc,
    ngx_str_t *name, ngx_uint_t rows, ngx_uint_t keyed,
    ngx_http_saveitem_kind_e kind);
static void ngx_http_saveitem_expect(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_e type, ngx_uint_t arg,
    ngx_http_saveitem_kind_e kind);
static void ngx_http_saveitem_write_handler(ngx_event_t *ev);
static void ngx_http_saveitem_read_handler(ngx_event_t *ev);
static void ngx_http_saveitem_idle_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_saveitem_results(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_set_failed(ngx_http_saveitem_conn_t *sc,
    PGresult *res);
static void ngx_http_saveitem_not_run(ngx_http_saveitem_job_t *job);
static void ngx_http_saveitem_setup_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res);
static ngx_int_t ngx_http_saveitem_insert_result(
    ngx_http_saveitem_conn_t *sc, ngx_http_saveitem_expect_t *e,
    PGresult *res);
static void ngx_http_saveitem_job_forget_pk(ngx_http_saveitem_job_t *job);
static ngx_int_t ngx_http_saveitem_job_pk(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job, PGresult *res, int i, int col, Oid type);
static ngx_int_t ngx_http_saveitem_keyed_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res, ngx_queue_t *q);
static ngx_int_t ngx_http_saveitem_bulk_params(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job);
static ngx_int_t ngx_http_saveitem_bulk_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res, ngx_queue_t *q);
static ngx_int_t ngx_http_saveitem_bulk_error(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res, ngx_queue_t *q);
static void ngx_http_saveitem_commit_result(ngx_http_saveitem_conn_t *sc,
    PGresult *res);
static void ngx_http_saveitem_sync_error(ngx_http_saveitem_conn_t *sc,
    PGresult *res);
static void ngx_http_saveitem_settle(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_guilt(ngx_http_saveitem_pool_t *pool,
    ngx_uint_t guilty);
static void ngx_http_saveitem_requeue(ngx_http_saveitem_pool_t *pool,
    ngx_queue_t *jobs);
static ngx_uint_t ngx_http_saveitem_job_error(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job, PGresult *res, ngx_uint_t owner,
    ngx_uint_t late);
static void ngx_http_saveitem_set_idle(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_conn_fail(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_reason_e reason, const char *why);
static void ngx_http_saveitem_close(ngx_http_saveitem_conn_t *sc);


/* the statements of an isolation, NGX_HTTP_SAVEITEM_TX */

static const char  *ngx_http_saveitem_tx[] = {
    "BEGIN",
    "SAVEPOINT saveitem",
    "ROLLBACK TO SAVEPOINT saveitem",
    "COMMIT"
};

/* the two sent for each row are prepared once per connection */

static const char  *ngx_http_saveitem_tx_names[] = {
    NULL,
    "saveitem_savepoint",
    "saveitem_rollback_to",
    NULL
};

#define NGX_HTTP_SAVEITEM_TX_BEGIN     0
#define NGX_HTTP_SAVEITEM_TX_SAVE      1
#define NGX_HTTP_SAVEITEM_TX_BACK      2
#define NGX_HTTP_SAVEITEM_TX_COMMIT    3


static const char  *ngx_http_saveitem_outcomes[] = {
    "pending", "stored", "not stored", "outcome unknown"
};


ngx_int_t
ngx_http_saveitem_pool_init(ngx_cycle_t *cycle, ngx_http_saveitem_db_t *db,
    ngx_http_saveitem_main_conf_t *smcf)
{
    ngx_http_saveitem_pool_t  *pool;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_saveitem_pool_t));
    if (pool == NULL) {
        return NGX_ERROR;
    }

    pool->db = db;
    pool->log = cycle->log;
    pool->stmts = smcf->stmts.elts;
    pool->nstmts = smcf->stmts.nelts;
    pool->batch_max = smcf->batch_max;

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->busy);
    ngx_queue_init(&pool->waiting);
    ngx_queue_init(&pool->free);

    pool->retry.handler = ngx_http_saveitem_retry_handler;
    pool->retry.data = pool;
    pool->retry.log = cycle->log;
    pool->retry.cancelable = 1;

    pool->dispatch.handler = ngx_http_saveitem_dispatch_handler;
    pool->dispatch.data = pool;
    pool->dispatch.log = cycle->log;

    pool->open.handler = ngx_http_saveitem_open_handler;
    pool->open.data = pool;
    pool->open.log = cycle->log;

    pool->active = 1;
    pool->grow.handler = ngx_http_saveitem_grow_handler;
    pool->grow.data = pool;
    pool->grow.log = cycle->log;
    pool->grow.cancelable = 1;

    db->pool = pool;

    return NGX_OK;
}


void
ngx_http_saveitem_pool_done(ngx_http_saveitem_pool_t *pool)
{
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    if (pool->nstatements) {
        ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                      "saveitem: %ui rows in %ui statements, %ui at most "
                      "in one; statements of 1 row: %ui, 2-3: %ui, 4-7: %ui, "
                      "8-15: %ui, 16-31: %ui, 32-63: %ui, 64-127: %ui, "
                      "more: %ui; on %V", pool->nrows, pool->nstatements,
                      pool->maxrows, pool->sizes[0], pool->sizes[1],
                      pool->sizes[2], pool->sizes[3], pool->sizes[4],
                      pool->sizes[5], pool->sizes[6], pool->sizes[7],
                      &pool->db->display);
    }

    if (pool->retry.timer_set) {
        ngx_del_timer(&pool->retry);
    }

    if (pool->grow.timer_set) {
        ngx_del_timer(&pool->grow);
    }

    if (pool->dispatch.posted) {
        ngx_delete_posted_event(&pool->dispatch);
    }

    if (pool->open.posted) {
        ngx_delete_posted_event(&pool->open);
    }

    while (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        ngx_http_saveitem_close(ngx_queue_data(q, ngx_http_saveitem_conn_t,
                                               queue));
    }

    /* the worker is exiting: nobody waits for these answers any more */

    while (!ngx_queue_empty(&pool->busy)) {
        q = ngx_queue_head(&pool->busy);
        ngx_http_saveitem_close(ngx_queue_data(q, ngx_http_saveitem_conn_t,
                                               queue));
    }

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
        ngx_queue_remove(q);
        job->waiting = 0;
        ngx_http_saveitem_job_free(job);
    }

    while (!ngx_queue_empty(&pool->free)) {
        q = ngx_queue_head(&pool->free);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_saveitem_job_t, queue));
    }
}


ngx_http_saveitem_job_t *
ngx_http_saveitem_job_get(ngx_http_saveitem_pool_t *pool)
{
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    if (!ngx_queue_empty(&pool->free)) {
        q = ngx_queue_head(&pool->free);
        ngx_queue_remove(q);
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

    } else {
        job = ngx_alloc(sizeof(ngx_http_saveitem_job_t), pool->log);
        if (job == NULL) {
            return NULL;
        }
    }

    ngx_memzero(job, sizeof(ngx_http_saveitem_job_t));

    job->pool = pool;
    job->log = pool->log;

    job->wait.handler = ngx_http_saveitem_wait_handler;
    job->wait.data = job;

    return job;
}


/*
 * Queues a job.  Its handler is never called from here: the pool is
 * dispatched from a posted event, so the caller may go on using the
 * request.  Otherwise the job's facts say why not, and the caller still
 * owns the job.
 */

ngx_int_t
ngx_http_saveitem_job_post(ngx_http_saveitem_job_t *job)
{
    ngx_http_saveitem_db_t    *db;
    ngx_http_saveitem_pool_t  *pool;

    pool = job->pool;
    db = pool->db;

    job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;

    /*
     * the key is read until the statement's result, which can come after
     * the request (and the header it came in) has gone: the job keeps its
     * own copy; the body is read only when sent, with the request there
     */

    if (job->key.len) {
        if (job->key.len >= sizeof(job->key_buf)) {
            job->facts.reason = NGX_HTTP_SAVEITEM_R_INVALID_KEY;
            return NGX_DECLINED;
        }

        ngx_memcpy(job->key_buf, job->key.data, job->key.len);
        job->key_buf[job->key.len] = '\0';
        job->key.data = job->key_buf;
    }

    if (pool->down && pool->nconns == 0 && pool->retry.timer_set) {
        job->facts.reason = pool->down;
        job->facts.retry_after = ngx_http_saveitem_retry_left(pool);

        ngx_log_error(NGX_LOG_INFO, job->log, 0,
                      "saveitem: no connection to PostgreSQL can be opened "
                      "now, retrying in %M ms", job->facts.retry_after);
        return NGX_DECLINED;
    }

    if (pool->exiting) {
        job->facts.reason = NGX_HTTP_SAVEITEM_R_EXITING;
        return NGX_DECLINED;
    }

    /* "queue" counts the jobs that wait beyond what can start at once */

    if (pool->nwaiting >= db->queue_size + pool->nidle
                         + (db->pool_size - pool->nconns))
    {
        ngx_log_error(NGX_LOG_WARN, job->log, 0,
                      "saveitem: pool and queue are full: %ui "
                      "connections, %ui requests waiting "
                      "(saveitem_database pool= queue=)",
                      pool->nconns, pool->nwaiting);

        job->facts.reason = NGX_HTTP_SAVEITEM_R_QUEUE_FULL;
        return NGX_BUSY;
    }

    job->facts.outcome = NGX_HTTP_SAVEITEM_PENDING;

    /* taken now: answered within queue_timeout + the query timeout */

    job->queued = ngx_current_msec;
    job->queued_until = ngx_current_msec + db->queue_timeout;
    ngx_http_saveitem_job_wait(pool, job, 0);

    if (!pool->dispatch.posted) {
        ngx_post_event(&pool->dispatch, &ngx_posted_events);
    }

    return NGX_OK;
}


/* the request ends before its answer: the statement, if sent, goes on */

void
ngx_http_saveitem_job_detach(ngx_http_saveitem_job_t *job)
{
    ngx_http_saveitem_pool_t  *pool;

    pool = job->pool;

    if (job->waiting) {
        ngx_log_error(NGX_LOG_INFO, job->log, 0,
                      "saveitem: request ends while waiting for a "
                      "connection: nothing was sent, nothing is stored");

        ngx_queue_remove(&job->queue);
        pool->nwaiting--;
        job->waiting = 0;
        ngx_http_saveitem_job_free(job);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, job->log, 0,
                  "saveitem: request ends before PostgreSQL answered, "
                  "the statement completes without it");

    job->data = NULL;
    job->log = pool->log;
}


void
ngx_http_saveitem_job_release(ngx_http_saveitem_job_t *job)
{
    ngx_http_saveitem_job_free(job);
}


static void
ngx_http_saveitem_job_free(ngx_http_saveitem_job_t *job)
{
    if (job->wait.timer_set) {
        ngx_del_timer(&job->wait);
    }

    if (job->res) {
        PQclear(job->res);
    }

    ngx_http_saveitem_job_forget_pk(job);

    if (job->pks.data != NULL) {
        ngx_free(job->pks.data);
    }

    if (job->probe != NULL) {
        ngx_free(job->probe);
    }

    job->data = NULL;
    ngx_queue_insert_head(&job->pool->free, &job->queue);
}


/* hands a finished job to its request, or logs it when there is none */

static void
ngx_http_saveitem_job_done(ngx_http_saveitem_job_t *job)
{
    ngx_uint_t        stored;
    static ngx_str_t  empty = ngx_null_string;

    if (job->data != NULL) {
        job->handler(job);

    } else {
        /* a key its statement returned names no row unless committed */

        stored = (job->facts.outcome == NGX_HTTP_SAVEITEM_STORED
                  && job->pk.len);

        ngx_log_error(NGX_LOG_INFO, job->log, 0,
                      "saveitem: client closed the request before the "
                      "answer: %s%s%V%s%s",
                      ngx_http_saveitem_outcomes[job->facts.outcome],
                      stored ? ", key " : "", stored ? &job->pk : &empty,
                      job->facts.sqlstate[0] ? ", SQLSTATE " : "",
                      job->facts.sqlstate);
    }

    ngx_http_saveitem_job_free(job);
}


static void
ngx_http_saveitem_job_fail(ngx_http_saveitem_job_t *job,
    ngx_http_saveitem_outcome_e outcome, ngx_http_saveitem_reason_e reason)
{
    job->facts.outcome = outcome;
    job->facts.reason = reason;

    if (outcome == NGX_HTTP_SAVEITEM_NOT_STORED
        && job->pool->retry.timer_set)
    {
        job->facts.retry_after = ngx_http_saveitem_retry_left(job->pool);
    }

    ngx_http_saveitem_job_done(job);
}


/*
 * Puts a job in the queue until the end of its queue_timeout, counted
 * from when the module took it: a job that waits again (its batch failed)
 * gets no more time.
 */

static void
ngx_http_saveitem_job_wait(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_job_t *job, ngx_uint_t head)
{
    ngx_msec_t  until;

    until = job->queued_until;

    if (head) {
        ngx_queue_insert_head(&pool->waiting, &job->queue);

    } else {
        ngx_queue_insert_tail(&pool->waiting, &job->queue);
    }

    pool->nwaiting++;
    job->waiting = 1;

    job->wait.log = job->log;
    ngx_add_timer(&job->wait, (ngx_msec_int_t) (until - ngx_current_msec) > 0
                              ? until - ngx_current_msec : 1);
}


static void
ngx_http_saveitem_wait_handler(ngx_event_t *ev)
{
    ngx_http_saveitem_job_t  *job;

    job = ev->data;

    ngx_queue_remove(&job->queue);
    job->pool->nwaiting--;
    job->waiting = 0;

    if (job->retried && job->facts.reason != NGX_HTTP_SAVEITEM_R_STORED) {
        /* its statement failed and its time is up: say why */
        ngx_http_saveitem_job_done(job);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, job->log, 0,
                  "saveitem: no PostgreSQL connection became free within "
                  "%M ms (saveitem_database queue_timeout)",
                  job->pool->db->queue_timeout);

    ngx_http_saveitem_job_fail(job, NGX_HTTP_SAVEITEM_NOT_STORED,
                               NGX_HTTP_SAVEITEM_R_QUEUE_TIMEOUT);
}


static void
ngx_http_saveitem_fail_waiting(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason)
{
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

        ngx_queue_remove(q);
        pool->nwaiting--;
        job->waiting = 0;

        if (job->wait.timer_set) {
            ngx_del_timer(&job->wait);
        }

        ngx_http_saveitem_job_fail(job, NGX_HTTP_SAVEITEM_NOT_STORED, reason);
    }
}


static void
ngx_http_saveitem_dispatch_handler(ngx_event_t *ev)
{
    ngx_http_saveitem_dispatch(ev->data);
}


/*
 * Gives waiting jobs to idle connections, and opens connections (up to
 * the pool size, no more than there are jobs waiting, one at a time while
 * the database is down) when none is idle.  With saveitem_batch off, the
 * jobs are shared out among the connections that can take them now or
 * once opened: one slow statement delays only the few behind it.
 */

static void
ngx_http_saveitem_dispatch(ngx_http_saveitem_pool_t *pool)
{
    ngx_uint_t                 share;
    ngx_queue_t               *q;
    ngx_http_saveitem_conn_t  *sc;

    if (pool->exiting) {
        ngx_http_saveitem_fail_waiting(pool, NGX_HTTP_SAVEITEM_R_EXITING);
        return;
    }

    while (!ngx_queue_empty(&pool->waiting)) {

        if (ngx_http_saveitem_hold(pool)) {
            break;
        }

        if (!ngx_queue_empty(&pool->idle)) {
            q = ngx_queue_head(&pool->idle);
            sc = ngx_queue_data(q, ngx_http_saveitem_conn_t, queue);

            if (ngx_http_saveitem_expired(sc)) {
                ngx_http_saveitem_close(sc);
                continue;
            }

            if (ngx_http_saveitem_alive(sc) != NGX_OK) {
                ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                              "saveitem: idle PostgreSQL connection "
                              "was closed by the server, replacing it");
                ngx_http_saveitem_close(sc);
                continue;
            }

            share = saveitem_policy_share(pool->nwaiting, pool->nidle,
                                          pool->nconnecting, pool->nconns,
                                          pool->db->pool_size,
                                          pool->down || pool->retry.timer_set,
                                          pool->db->prepare);

            ngx_http_saveitem_conn_send(sc, share);
            continue;
        }

        if (pool->nconns >= pool->db->pool_size
            || pool->nconnecting >= pool->nwaiting
            || (pool->down && pool->nconnecting > 0)
            || pool->retry.timer_set)
        {
            break;
        }

        if (ngx_http_saveitem_connect(pool) != NGX_OK) {
            break;
        }
    }
}


static void
ngx_http_saveitem_retry_handler(ngx_event_t *ev)
{
    ngx_http_saveitem_dispatch(ev->data);
}


/* saveitem_ready asked for a connection and none is open or opening */

static void
ngx_http_saveitem_open_handler(ngx_event_t *ev)
{
    ngx_http_saveitem_pool_t *pool = ev->data;

    if (pool->exiting || ngx_exiting || pool->nconns > 0
        || pool->retry.timer_set)
    {
        return;
    }

    (void) ngx_http_saveitem_connect(pool);
}


/*
 * What is left of the backoff, for Retry-After: its timer may be late
 * (a busy event loop), its key then in the past
 */

static ngx_msec_t
ngx_http_saveitem_retry_left(ngx_http_saveitem_pool_t *pool)
{
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (pool->retry.timer.key - ngx_current_msec);

    return left > 0 ? (ngx_msec_t) left : 0;
}


/*
 * Group commit uses as few connections as keep up (the rule:
 * saveitem_policy_hold()): the first waiting request may be held for a
 * busy connection, and a connection that finds nothing waiting when it
 * finishes gives its place back (see set_idle).  With saveitem_batch off
 * nothing is held: one commit per request needs as many backends as
 * there are requests; nor are requests whose statement failed (they have
 * waited once, and their wait counts from their arrival), nor bulk
 * bodies.
 */

static ngx_uint_t
ngx_http_saveitem_hold(ngx_http_saveitem_pool_t *pool)
{
    int                       grow;
    ngx_msec_t                waited, hold;
    ngx_http_saveitem_job_t  *first;

    first = ngx_queue_data(ngx_queue_head(&pool->waiting),
                           ngx_http_saveitem_job_t, queue);

    if (first->batch_rows == 1 || first->retried || first->bulk) {
        return 0;
    }

    waited = ngx_current_msec - first->queued;

    /* in use: busy or being opened */

    hold = saveitem_policy_hold(pool->nconns - pool->nidle, pool->active,
                                pool->db->pool_size, pool->rtt16, waited,
                                &grow);

    if (grow) {
        pool->active++;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                       "saveitem: a request waited %M ms, %ui connections "
                       "in use", waited, pool->active);
    }

    if (hold == 0) {
        return 0;
    }

    if (!pool->grow.timer_set) {
        ngx_add_timer(&pool->grow, hold);
    }

    return 1;
}


static void
ngx_http_saveitem_grow_handler(ngx_event_t *ev)
{
    ngx_http_saveitem_dispatch(ev->data);
}


/*
 * No connection could be made: wait before the next try, and while no
 * connection is open, waiting requests fail fast with the reason
 */

static void
ngx_http_saveitem_backoff(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason)
{
    pool->down = reason;
    pool->backoff = saveitem_policy_backoff(pool->backoff);

    if (!pool->retry.timer_set) {
        ngx_add_timer(&pool->retry, pool->backoff);
    }

    if (pool->nconns == 0) {
        ngx_http_saveitem_fail_waiting(pool, reason);
    }
}


/*
 * Opens a connection: through nginx's resolver first where host names are
 * resolved at run time.  NGX_ERROR: nothing could be started here
 * (memory, worker_connections); the waiting jobs have been answered and
 * the pool backs off.
 */

static ngx_int_t
ngx_http_saveitem_connect(ngx_http_saveitem_pool_t *pool)
{
    ngx_http_saveitem_db_t    *db;
    ngx_http_saveitem_conn_t  *sc;

    db = pool->db;

    sc = ngx_calloc(sizeof(ngx_http_saveitem_conn_t)
                    + ngx_http_saveitem_nparams(pool) * sizeof(const char *)
                    + pool->nstmts * ngx_http_saveitem_slots(pool),
                    pool->log);
    if (sc == NULL) {
        ngx_http_saveitem_backoff(pool, NGX_HTTP_SAVEITEM_R_NO_CONNECTION);
        return NGX_ERROR;
    }

    sc->pool = pool;
    sc->params = (const char **) &sc[1];
    sc->prepared = (u_char *) &sc->params[ngx_http_saveitem_nparams(pool)];
    sc->log = *pool->log;
    sc->log.handler = ngx_http_saveitem_conn_log;
    sc->log.data = sc;
    sc->started = ngx_current_msec;
    ngx_queue_init(&sc->jobs);

    pool->nconns++;
    pool->nconnecting++;
    ngx_queue_insert_tail(&pool->busy, &sc->queue);

    if (db->resolver == NULL) {
        sc->state = NGX_HTTP_SAVEITEM_CONNECTING;
        return ngx_http_saveitem_conn_start(sc);
    }

    sc->state = NGX_HTTP_SAVEITEM_RESOLVING;
    sc->log.action = "resolving the PostgreSQL host name";

    /* the handler may run (and the connection fail) before this returns */

    if (ngx_http_saveitem_db_resolve_start(db, ngx_http_saveitem_resolved,
                                           sc, &sc->log, &sc->hosts)
        != NGX_OK)
    {
        ngx_http_saveitem_connect_failed(sc, "out of memory", 1);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_saveitem_resolved(void *data, ngx_int_t rc, const char *err)
{
    ngx_http_saveitem_conn_t *sc = data;

    if (rc != NGX_OK) {
        ngx_http_saveitem_connect_failed(sc, err, 0);
        return;
    }

    sc->state = NGX_HTTP_SAVEITEM_CONNECTING;

    (void) ngx_http_saveitem_conn_start(sc);
}


/* libpq's non-blocking connect, on the addresses known now */

static ngx_int_t
ngx_http_saveitem_conn_start(ngx_http_saveitem_conn_t *sc)
{
    PGconn                    *pg;
    ngx_uint_t                 n;
    const char                *keywords[NGX_HTTP_SAVEITEM_PARAMS + 1];
    const char                *values[NGX_HTTP_SAVEITEM_PARAMS + 1];
    ngx_http_saveitem_db_t    *db;

    db = sc->pool->db;

    n = ngx_http_saveitem_db_params(db, sc->hosts, sc->skip, &sc->targets,
                                    keywords, values);
    keywords[n] = NULL;
    values[n] = NULL;

    sc->log.action = "connecting to PostgreSQL";

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                   "saveitem connecting to %V%s", &db->display,
                   sc->hosts ? " (resolved now)" : "");

    pg = PQconnectStartParams(keywords, values, 1);
    sc->pg = pg;

    if (pg == NULL) {
        ngx_http_saveitem_connect_failed(sc, "out of memory", 1);
        return NGX_ERROR;
    }

    PQsetNoticeReceiver(pg, ngx_http_saveitem_notice, sc);

    if (PQstatus(pg) == CONNECTION_BAD) {
        ngx_http_saveitem_connect_failed(sc, NULL, 0);
        return NGX_ERROR;
    }

    if (ngx_http_saveitem_wrap(sc) != NGX_OK) {
        ngx_http_saveitem_connect_failed(sc, "no free connection in the "
                                         "worker (worker_connections)", 1);
        return NGX_ERROR;
    }

    sc->deadline = ngx_current_msec + db->connect_timeout;
    ngx_add_timer(sc->c->read, db->connect_timeout);

    /* before the first PQconnectPoll(), libpq waits for "writable" */

    if (ngx_http_saveitem_watch_write(sc, 1) != NGX_OK) {
        ngx_http_saveitem_connect_failed(sc, NULL, 0);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* what the connection was doing, in its log lines */

static u_char *
ngx_http_saveitem_conn_log(ngx_log_t *log, u_char *buf, size_t len)
{
    if (log->action == NULL) {
        return buf;
    }

    return ngx_snprintf(buf, len, " while %s", log->action);
}


/*
 * Puts libpq's current socket on the event loop, read side
 * level-triggered; the write side is watched only while libpq waits
 * for it.
 */

static ngx_int_t
ngx_http_saveitem_wrap(ngx_http_saveitem_conn_t *sc)
{
    int                fd;
    struct stat        st;
    ngx_connection_t  *c;

    fd = PQsocket(sc->pg);

    if (fd == -1 || fstat(fd, &st) == -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, &sc->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    sc->c = c;
    sc->ino = st.st_ino;

    c->data = sc;
    c->log = &sc->log;
    c->read->log = &sc->log;
    c->write->log = &sc->log;
    c->read->handler = ngx_http_saveitem_connect_handler;
    c->write->handler = ngx_http_saveitem_connect_handler;

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * libpq closes the socket itself (PQfinish, or a new socket while
 * connecting): only forget it here, never close it
 */

static void
ngx_http_saveitem_unwrap(ngx_http_saveitem_conn_t *sc)
{
    ngx_connection_t  *c;

    c = sc->c;

    if (c == NULL) {
        return;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (ngx_del_conn) {
        ngx_del_conn(c, NGX_CLOSE_EVENT);

    } else {
        if (c->read->active || c->read->disabled) {
            ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->write->active || c->write->disabled) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
        }
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    ngx_free_connection(c);

    /* nginx checks at exit that no socket is left in its connections */
    c->fd = (ngx_socket_t) -1;

    sc->c = NULL;
}


static ngx_int_t
ngx_http_saveitem_watch_write(ngx_http_saveitem_conn_t *sc, ngx_uint_t on)
{
    ngx_event_t  *wev;

    wev = sc->c->write;

    if (on && !wev->active) {
        return ngx_add_event(wev, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }

    if (!on && wev->active) {
        return ngx_del_event(wev, NGX_WRITE_EVENT, 0);
    }

    return NGX_OK;
}


static void
ngx_http_saveitem_connect_handler(ngx_event_t *ev)
{
    int                        fd;
    struct stat                st;
    ngx_connection_t          *c;
    PostgresPollingStatusType  status;
    ngx_http_saveitem_conn_t  *sc;

    c = ev->data;
    sc = c->data;

    if (c->close) {
        ngx_http_saveitem_connect_failed(sc, "the worker is exiting", 0);
        return;
    }

    if (c->read->timedout) {
        ngx_http_saveitem_connect_timedout(sc);
        return;
    }

    status = PQconnectPoll(sc->pg);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                   "saveitem connect poll: %d, status: %d",
                   status, PQstatus(sc->pg));

    if (status == PGRES_POLLING_FAILED) {
        ngx_http_saveitem_connect_failed(sc, NULL, 0);
        return;
    }

    /*
     * libpq may have closed its socket and opened another one (the next
     * host or address, SSL or GSS fallback), possibly with the same
     * number: the inode tells
     */

    fd = PQsocket(sc->pg);

    if (fd != sc->c->fd || fstat(fd, &st) == -1 || st.st_ino != sc->ino) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                       "saveitem connect: new socket %d", fd);

        ngx_http_saveitem_unwrap(sc);

        if (ngx_http_saveitem_wrap(sc) != NGX_OK) {
            ngx_http_saveitem_connect_failed(sc, NULL, 0);
            return;
        }

        ngx_add_timer(sc->c->read,
                      (ngx_msec_int_t) (sc->deadline - ngx_current_msec) > 0
                      ? sc->deadline - ngx_current_msec : 1);
    }

    switch (status) {

    case PGRES_POLLING_READING:
        if (ngx_http_saveitem_watch_write(sc, 0) != NGX_OK) {
            ngx_http_saveitem_connect_failed(sc, NULL, 0);
        }

        return;

    case PGRES_POLLING_WRITING:
        if (ngx_http_saveitem_watch_write(sc, 1) != NGX_OK) {
            ngx_http_saveitem_connect_failed(sc, NULL, 0);
        }

        return;

    case PGRES_POLLING_OK:
        ngx_http_saveitem_connected(sc);
        return;

    default:
        ngx_http_saveitem_connect_failed(sc, NULL, 0);
        return;
    }
}


/*
 * connect_timeout, for each host: a host that accepts the connection and
 * then says nothing (a hung primary) is left out and the next ones are
 * tried from the start, as libpq's blocking connect would do
 */

static void
ngx_http_saveitem_connect_timedout(ngx_http_saveitem_conn_t *sc)
{
    ngx_int_t  i;

    i = ngx_http_saveitem_db_target(&sc->targets, sc->pg);

    if (i == NGX_ERROR || (ngx_uint_t) i + 1 >= sc->targets.n) {
        ngx_http_saveitem_connect_failed(sc, "timed out", 0);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, &sc->log, 0,
                  "saveitem: PostgreSQL at %s port %s did not answer within "
                  "%M ms, trying the next host", PQhost(sc->pg),
                  PQport(sc->pg), sc->pool->db->connect_timeout);

    ngx_http_saveitem_unwrap(sc);
    PQfinish(sc->pg);
    sc->pg = NULL;

    sc->skip += i + 1;

    (void) ngx_http_saveitem_conn_start(sc);
}


static void
ngx_http_saveitem_connected(ngx_http_saveitem_conn_t *sc)
{
    ngx_http_saveitem_pool_t  *pool;

    pool = sc->pool;

    if (PQsetnonblocking(sc->pg, 1) != 0
        || PQenterPipelineMode(sc->pg) != 1
        || ngx_http_saveitem_watch_write(sc, 0) != NGX_OK)
    {
        ngx_http_saveitem_connect_failed(sc, NULL, 0);
        return;
    }

    if (sc->c->read->timer_set) {
        ngx_del_timer(sc->c->read);
    }

    if (sc->hosts) {
        ngx_http_saveitem_db_resolve_done(sc->hosts);
        sc->hosts = NULL;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                   "saveitem connected to %V, backend pid %d",
                   &pool->db->display, PQbackendPID(sc->pg));

    if (pool->down) {
        ngx_log_error(NGX_LOG_NOTICE, &sc->log, 0,
                      "saveitem: connected to PostgreSQL again (%V)",
                      &pool->db->display);
    }

    pool->nconnecting--;
    pool->down = NGX_HTTP_SAVEITEM_R_STORED;
    pool->backoff = 0;

    sc->c->read->handler = ngx_http_saveitem_read_handler;
    sc->c->write->handler = ngx_http_saveitem_write_handler;

    ngx_http_saveitem_set_idle(sc);
}


/*
 * reason: why, for the log; NULL: libpq's message.  A connection that
 * could not even be started here ("local": no socket, no memory) is not
 * the database's fault: the requests are told so.
 */

static void
ngx_http_saveitem_connect_failed(ngx_http_saveitem_conn_t *sc,
    const char *reason, ngx_uint_t local)
{
    ngx_http_saveitem_pool_t  *pool;
    u_char                     buf[NGX_MAX_ERROR_STR];

    pool = sc->pool;

    if (reason == NULL) {
        ngx_http_saveitem_db_error(sc->pg, buf, sizeof(buf));
        reason = (const char *) buf;
    }

    ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                  "saveitem: could not connect to PostgreSQL (%V): %s",
                  &pool->db->display, reason);

    ngx_http_saveitem_metrics_connect_failed(pool->db->counters);

    pool->nconnecting--;
    ngx_http_saveitem_close(sc);

    if (ngx_exiting) {
        ngx_http_saveitem_fail_waiting(pool, NGX_HTTP_SAVEITEM_R_EXITING);
        return;
    }

    ngx_http_saveitem_backoff(pool, local ? NGX_HTTP_SAVEITEM_R_NO_CONNECTION
                                          : NGX_HTTP_SAVEITEM_R_UNREACHABLE);
}


/*
 * Messages from the server outside a result.  A FATAL one (the backend
 * was terminated) can arrive together with the end of the previous
 * result: libpq still says CONNECTION_OK, so remember it here.
 */

static void
ngx_http_saveitem_notice(void *arg, const PGresult *res)
{
    ngx_http_saveitem_conn_t *sc = arg;

    size_t       len;
    ngx_uint_t   level;
    const char  *severity, *message;

    severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    message = PQresultErrorMessage(res);

    if (severity == NULL) {
        severity = "";
    }

    if (ngx_strcmp(severity, "FATAL") == 0
        || ngx_strcmp(severity, "PANIC") == 0
        || ngx_strcmp(severity, "ERROR") == 0)
    {
        /* the module copes: an operator's act, not the module's error */
        sc->fatal = 1;
        level = NGX_LOG_WARN;

    } else if (ngx_strcmp(severity, "WARNING") == 0) {
        level = NGX_LOG_WARN;

    } else {
        level = NGX_LOG_INFO;
    }

    len = ngx_strlen(message);

    while (len && (message[len - 1] == '\n' || message[len - 1] == ' ')) {
        len--;
    }

    ngx_log_error(level, &sc->log, 0, "saveitem: PostgreSQL says: %*s",
                  len, message);
}


/*
 * An idle connection is checked before it gets a statement: the server
 * may have closed it in the same event loop iteration (its event not
 * handled yet), and a statement sent there would have an unknown outcome
 */

static ngx_int_t
ngx_http_saveitem_alive(ngx_http_saveitem_conn_t *sc)
{
    u_char      buf[1];
    ssize_t     n;
    ngx_err_t   err;

    if (sc->fatal || PQstatus(sc->pg) != CONNECTION_OK
        || sc->c->read->pending_eof)
    {
        return NGX_ERROR;
    }

    n = recv(sc->c->fd, buf, 1, MSG_PEEK);

    if (n == -1) {
        err = ngx_socket_errno;
        return (err == NGX_EAGAIN || err == NGX_EINTR) ? NGX_OK : NGX_ERROR;
    }

    if (n == 0) {
        return NGX_ERROR;
    }

    /* something arrived while idle: a notice, or the server's goodbye */

    if (!PQconsumeInput(sc->pg)) {
        return NGX_ERROR;
    }

    /* PQisBusy() parses what came: a FATAL goes to the notice receiver */

    (void) PQisBusy(sc->pg);

    if (sc->fatal || PQstatus(sc->pg) != CONNECTION_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Takes the first waiting job and those queued behind it that can share
 * its statement (group commit: what waits when a connection becomes free,
 * never more waiting), or with saveitem_batch off up to "share" of them,
 * a statement each, and sends them with any setup first.  Every job sent
 * is answered within its own query timeout from now: the timer is not
 * extended by the results of the others.
 */

static void
ngx_http_saveitem_conn_send(ngx_http_saveitem_conn_t *sc, ngx_uint_t share)
{
    int                        rc;
    u_char                    *last;
    size_t                     bytes;
    ngx_msec_t                 st;
    ngx_str_t                 *name, *sql;
    int                        direct;
    ngx_uint_t                 n, i, k, max, idx, rows, pipeline, keyed;
    ngx_uint_t                 nparams, slot, isolate, docs;
    ngx_http_saveitem_kind_e   kind;
    ngx_queue_t               *q, *next, *kq;
    ngx_http_saveitem_job_t   *first, *job, *other;
    ngx_http_saveitem_stmt_t  *stmt;
    const char                *setp;
    ngx_http_saveitem_pool_t  *pool;
    u_char                     set[64];

    pool = sc->pool;

    first = ngx_queue_data(ngx_queue_head(&pool->waiting),
                           ngx_http_saveitem_job_t, queue);

    isolate = first->isolate;
    pipeline = (first->batch_rows == 1 && !isolate && !first->bulk);
    keyed = (first->key.len > 0);
    max = pipeline ? saveitem_policy_pipeline(share)
                   : ngx_min(first->batch_rows, pool->batch_max);

    if (isolate) {
        max = NGX_HTTP_SAVEITEM_ISOLATE;
    }

    if (first->bulk) {
        /* a bulk body is a statement of its own */
        max = 1;
    }

    /* rows that would likely fail together: straight into an isolation */

    direct = 0;

    if (pool->isolating && !isolate && !pipeline && !first->bulk) {
        max = saveitem_policy_guilty_rows(max, pool->nwaiting, pool->guilty,
                                          pool->db->prepare, &direct);
    }

    bytes = 0;
    n = 0;

    for (q = ngx_queue_head(&pool->waiting);
         q != ngx_queue_sentinel(&pool->waiting) && n < max;
         q = next)
    {
        next = ngx_queue_next(q);
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

        if (n > 0
            && (job->stmt != first->stmt
                || job->timeout != first->timeout
                || (job->batch_rows == 1 && !job->isolate) != pipeline
                || job->isolate != isolate
                || (job->key.len > 0) != keyed
                || job->bulk
                || (!pipeline && bytes + job->body_len > first->batch_bytes)))
        {
            continue;
        }

        /* never two equal keys in one statement (21000), nor in a pipeline */

        if (keyed && n > 0) {
            for (kq = ngx_queue_head(&sc->jobs);
                 kq != ngx_queue_sentinel(&sc->jobs);
                 kq = ngx_queue_next(kq))
            {
                other = ngx_queue_data(kq, ngx_http_saveitem_job_t, queue);

                if (saveitem_key_equal(other->key.data, other->key.len,
                                       job->key.data, job->key.len))
                {
                    break;
                }
            }

            if (kq != ngx_queue_sentinel(&sc->jobs)) {
                continue;
            }
        }

        ngx_queue_remove(q);
        pool->nwaiting--;
        job->waiting = 0;

        if (job->wait.timer_set) {
            ngx_del_timer(&job->wait);
        }

        /* what a failed try recorded no longer holds (but while probing) */

        if (!job->probing) {
            ngx_memzero(&job->facts, sizeof(ngx_http_saveitem_facts_t));
        }

        ngx_queue_insert_tail(&sc->jobs, &job->queue);

        if (keyed) {
            sc->params[2 * n] = (const char *) job->body;
            sc->params[2 * n + 1] = (const char *) job->key.data;

        } else {
            sc->params[n] = (const char *) job->body;
        }

        n++;
        bytes += job->body_len;
    }

    if (direct && n > 1) {
        for (q = ngx_queue_head(&sc->jobs);
             q != ngx_queue_sentinel(&sc->jobs);
             q = ngx_queue_next(q))
        {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
            job->isolate = 1;
        }

        isolate = 1;
    }

    ngx_queue_remove(&sc->queue);
    ngx_queue_insert_tail(&pool->busy, &sc->queue);
    pool->nidle--;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                   "saveitem send: %ui rows, %uz bytes%s", n, bytes,
                   isolate ? ", a savepoint each"
                           : (pipeline ? ", a statement each" : ""));

    rows = n;

    /* a bulk body's statement carries its documents (a probe: none kept) */

    docs = (first->bulk && !first->probing) ? first->bulk : n;

    if (pipeline || isolate) {
        pool->nstatements += n;
        pool->sizes[0] += n;
        n = 1;
        docs = 1;

    } else {
        pool->nstatements++;

        for (i = 0; i < 7 && (docs >> (i + 1)); i++) { /* void */ }

        pool->sizes[i]++;
    }

    pool->nrows += first->bulk ? (first->probing ? 0 : first->bulk) : rows;
    pool->maxrows = ngx_max(pool->maxrows, docs);

    ngx_http_saveitem_metrics_sent(pool->db->counters, rows / n, docs);

    sc->state = NGX_HTTP_SAVEITEM_BUSY;
    sc->used = 1;
    sc->c->idle = 0;
    sc->c->read->cancelable = 0;
    sc->log.action = "sending to PostgreSQL";
    sc->nsettled = 0;
    sc->nulls = 0;
    sc->timedout = 0;

    stmt = &pool->stmts[first->stmt];
    slot = first->stmt * ngx_http_saveitem_slots(pool);

    if (first->bulk) {
        if (ngx_http_saveitem_bulk_params(sc, first) != NGX_OK) {
            goto failed;
        }

        kind = first->probing ? NGX_HTTP_SAVEITEM_PROBE
                              : NGX_HTTP_SAVEITEM_BULK;
        idx = slot + 2 * (pool->batch_max + 1) + (first->probing ? 1 : 0);
        name = first->probing ? &stmt->name_probe : &stmt->name_bulk;
        sql = first->probing ? &stmt->sql_probe : &stmt->sql_bulk;
        nparams = first->probing ? 1 : 2;

    } else {
        kind = keyed ? NGX_HTTP_SAVEITEM_KEYED : NGX_HTTP_SAVEITEM_ROWS;
        idx = slot + keyed * (pool->batch_max + 1) + n;
        name = keyed ? &stmt->name_key[n] : &stmt->name[n];
        sql = keyed ? &stmt->sql_key[n] : &stmt->sql[n];
        nparams = keyed ? 2 * n : n;
    }

    /*
     * The server aborts a statement itself just before the module's own
     * timer fires, so that a timeout normally means "not stored" (see
     * saveitem_policy_statement_timeout()).  SET is transactional: it gets
     * a sync of its own, as does PREPARE.
     */

    st = saveitem_policy_statement_timeout(first->timeout);

    if (!pool->db->prepare) {
        goto unnamed;
    }

    if (sc->statement_timeout != st || !sc->prepared[idx]
        || (isolate && !sc->savepoints))
    {
        if (sc->statement_timeout != st) {
            last = ngx_snprintf(set, sizeof(set) - 1,
                                "SET statement_timeout = %M", st);
            *last = '\0';

            if (!PQsendQueryParams(sc->pg, (char *) set, 0, NULL, NULL,
                                   NULL, NULL, 0))
            {
                goto failed;
            }

            ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SET, 0, 0);
            sc->statement_timeout = st;
        }

        if (!sc->prepared[idx]) {
            if (!PQsendPrepare(sc->pg, (char *) name->data,
                               (char *) sql->data, (int) nparams, NULL))
            {
                goto failed;
            }

            ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_PREPARE, idx, 0);
            sc->prepared[idx] = 1;
        }

        if (isolate && !sc->savepoints) {
            for (i = NGX_HTTP_SAVEITEM_TX_SAVE;
                 i <= NGX_HTTP_SAVEITEM_TX_BACK;
                 i++)
            {
                if (!PQsendPrepare(sc->pg, ngx_http_saveitem_tx_names[i],
                                   ngx_http_saveitem_tx[i], 0, NULL))
                {
                    goto failed;
                }

                ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_TX, i, 1);
            }

            sc->savepoints = 1;
        }

        if (!PQpipelineSync(sc->pg)) {
            goto failed;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 0, 0);
    }

    if (isolate) {
        if (ngx_http_saveitem_send_isolated(sc, name, rows, keyed, kind)
            != NGX_OK)
        {
            goto failed;
        }

        goto sent;
    }

    q = ngx_queue_head(&sc->jobs);

    for (i = 0; i < rows; i += n) {
        if (!PQsendQueryPrepared(sc->pg, (char *) name->data, (int) nparams,
                                 &sc->params[keyed ? 2 * i : i], NULL, NULL,
                                 0))
        {
            goto failed;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_INSERT, n, kind);

        /* from here on, the server may commit these rows */

        for (k = 0; k < n; k++, q = ngx_queue_next(q)) {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
            job->sent = 1;
        }

        if (!PQpipelineSync(sc->pg)) {
            goto failed;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 0, 0);
    }

    goto sent;

unnamed:

    /*
     * prepare=off, for poolers in transaction mode: no session state.
     * The statement timeout is set for the transaction alone, in the same
     * sync as the INSERT, which is an unnamed statement; one sync at a
     * time per connection (share is 1: see dispatch).
     */

    last = ngx_snprintf(set, sizeof(set) - 1, "%M", st);
    *last = '\0';
    setp = (const char *) set;

    q = ngx_queue_head(&sc->jobs);

    for (i = 0; i < rows; i += n) {
        if (!PQsendQueryParams(sc->pg, "SELECT set_config('statement_timeout',"
                               " $1, true)", 1, NULL, &setp, NULL, NULL, 0))
        {
            goto failed;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SET, 0, 0);

        if (!PQsendQueryParams(sc->pg, (char *) sql->data, (int) nparams,
                               NULL, &sc->params[keyed ? 2 * i : i], NULL,
                               NULL, 0))
        {
            goto failed;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_INSERT, n, kind);

        for (k = 0; k < n; k++, q = ngx_queue_next(q)) {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
            job->sent = 1;
        }

        if (!PQpipelineSync(sc->pg)) {
            goto failed;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 0, 0);
    }

sent:

    sc->timeout = first->timeout;
    sc->deadline = ngx_current_msec + first->timeout;
    ngx_add_timer(sc->c->read, first->timeout);

    rc = PQflush(sc->pg);

    if (rc == -1) {
        goto failed;
    }

    if (ngx_http_saveitem_watch_write(sc, rc == 1) != NGX_OK) {
        goto failed;
    }

    sc->log.action = "waiting for PostgreSQL";

    return;

failed:

    /* the jobs whose sync was not handed to libpq are not stored */

    ngx_http_saveitem_conn_fail(sc, NGX_HTTP_SAVEITEM_R_CONN_LOST, NULL);
}


/*
 * The rows of a failed statement again, in one transaction, each its own
 * single-row INSERT between savepoints, each with a sync of its own so
 * that a row that fails aborts only what follows it up to that sync:
 *
 *     BEGIN; SAVEPOINT s; INSERT 1; SAVEPOINT s; sync
 *     ROLLBACK TO s; INSERT 2; SAVEPOINT s; sync
 *     ...
 *     ROLLBACK TO s; COMMIT; sync
 *
 * ROLLBACK TO goes back to the newest savepoint "s": the one after the
 * row before when that row was stored (then it undoes nothing), the one
 * before it when it failed.  Nothing is committed before COMMIT: the jobs
 * are "sent" only then.
 */

static ngx_int_t
ngx_http_saveitem_send_isolated(ngx_http_saveitem_conn_t *sc,
    ngx_str_t *name, ngx_uint_t rows, ngx_uint_t keyed,
    ngx_http_saveitem_kind_e kind)
{
    ngx_uint_t                i;
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    for (i = 0; i <= rows; i++) {

        if (ngx_http_saveitem_send_tx(sc, i == 0 ? NGX_HTTP_SAVEITEM_TX_BEGIN
                                                 : NGX_HTTP_SAVEITEM_TX_BACK)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (i == rows) {
            break;
        }

        if (i == 0
            && ngx_http_saveitem_send_tx(sc, NGX_HTTP_SAVEITEM_TX_SAVE)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (!PQsendQueryPrepared(sc->pg, (char *) name->data, keyed ? 2 : 1,
                                 &sc->params[keyed ? 2 * i : i], NULL, NULL,
                                 0))
        {
            return NGX_ERROR;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_INSERT, 1, kind);

        if (ngx_http_saveitem_send_tx(sc, NGX_HTTP_SAVEITEM_TX_SAVE)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (!PQpipelineSync(sc->pg)) {
            return NGX_ERROR;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 1, 0);
    }

    if (!PQsendQueryParams(sc->pg,
                           ngx_http_saveitem_tx[NGX_HTTP_SAVEITEM_TX_COMMIT],
                           0, NULL, NULL, NULL, NULL, 0))
    {
        return NGX_ERROR;
    }

    ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_COMMIT, 0, 0);

    /* from here on, the server may commit these rows */

    for (q = ngx_queue_head(&sc->jobs);
         q != ngx_queue_sentinel(&sc->jobs);
         q = ngx_queue_next(q))
    {
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
        job->sent = 1;
    }

    if (!PQpipelineSync(sc->pg)) {
        return NGX_ERROR;
    }

    ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 0, 0);

    return NGX_OK;
}


/* one of an isolation's statements: prepared where it was */

static ngx_int_t
ngx_http_saveitem_send_tx(ngx_http_saveitem_conn_t *sc, ngx_uint_t t)
{
    int  ok;

    if (sc->savepoints && ngx_http_saveitem_tx_names[t] != NULL) {
        ok = PQsendQueryPrepared(sc->pg, ngx_http_saveitem_tx_names[t], 0,
                                 NULL, NULL, NULL, 0);

    } else {
        ok = PQsendQueryParams(sc->pg, ngx_http_saveitem_tx[t], 0, NULL,
                               NULL, NULL, NULL, 0);
    }

    if (!ok) {
        return NGX_ERROR;
    }

    ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_TX, t, 0);

    return NGX_OK;
}


static void
ngx_http_saveitem_expect(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_e type, ngx_uint_t arg,
    ngx_http_saveitem_kind_e kind)
{
    ngx_http_saveitem_expect_t  *e;

    if (sc->nexpect >= NGX_HTTP_SAVEITEM_EXPECT) {

        /* never: the results could not be matched (see results) */

        if (sc->nexpect++ == NGX_HTTP_SAVEITEM_EXPECT) {
            ngx_log_error(NGX_LOG_ALERT, &sc->log, 0,
                          "saveitem: more than %d results expected",
                          NGX_HTTP_SAVEITEM_EXPECT);
        }

        return;
    }

    e = &sc->expect[(sc->head + sc->nexpect) % NGX_HTTP_SAVEITEM_EXPECT];

    e->type = type;
    e->arg = arg;
    e->seen = 0;
    e->kind = kind;

    sc->nexpect++;
}


static void
ngx_http_saveitem_write_handler(ngx_event_t *ev)
{
    int                        rc;
    ngx_connection_t          *c;
    ngx_http_saveitem_conn_t  *sc;

    c = ev->data;
    sc = c->data;

    rc = PQflush(sc->pg);

    if (rc == -1) {
        ngx_http_saveitem_conn_fail(sc, NGX_HTTP_SAVEITEM_R_CONN_LOST, NULL);
        return;
    }

    if (ngx_http_saveitem_watch_write(sc, rc == 1) != NGX_OK) {
        ngx_http_saveitem_conn_fail(sc, NGX_HTTP_SAVEITEM_R_CONN_LOST, NULL);
    }
}


static void
ngx_http_saveitem_read_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_saveitem_conn_t  *sc;

    c = ev->data;
    sc = c->data;

    if (sc->state == NGX_HTTP_SAVEITEM_IDLE) {
        ngx_http_saveitem_idle_handler(ev);
        return;
    }

    if (c->close) {
        /* worker_shutdown_timeout: what is in flight is left unknown */

        ngx_log_error(NGX_LOG_WARN, &sc->log, 0,
                      "saveitem: closing a busy PostgreSQL connection: "
                      "the worker is exiting (worker_shutdown_timeout)");

        sc->pool->exiting = 1;
        ngx_http_saveitem_conn_fail(sc, NGX_HTTP_SAVEITEM_R_EXITING, "");
        return;
    }

    if (ev->timedout) {
        ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                      "saveitem: no answer from PostgreSQL within %M ms "
                      "(saveitem_query_timeout), closing the connection",
                      sc->timeout);

        sc->timedout = 1;
        ngx_http_saveitem_conn_fail(sc, NGX_HTTP_SAVEITEM_R_TIMED_OUT, "");
        return;
    }

    if (!PQconsumeInput(sc->pg)) {
        ngx_http_saveitem_conn_fail(sc, NGX_HTTP_SAVEITEM_R_CONN_LOST, NULL);
        return;
    }

    switch (ngx_http_saveitem_results(sc)) {

    case NGX_AGAIN:
        return;

    case NGX_OK:
        ngx_http_saveitem_set_idle(sc);
        return;

    default: /* NGX_ERROR */
        ngx_http_saveitem_conn_fail(sc, NGX_HTTP_SAVEITEM_R_CONN_LOST, NULL);
        return;
    }
}


static void
ngx_http_saveitem_idle_handler(ngx_event_t *ev)
{
    int                        ok;
    ngx_connection_t          *c;
    ngx_http_saveitem_conn_t  *sc;

    c = ev->data;
    sc = c->data;

    if (c->close) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                       "saveitem closing idle connection");
        ngx_http_saveitem_close(sc);
        return;
    }

    if (ev->timedout) {
        (void) ngx_http_saveitem_expired(sc);
        ngx_http_saveitem_close(sc);
        return;
    }

    ok = PQconsumeInput(sc->pg);

    if (ok) {
        /* PQisBusy() parses what came: a FATAL goes to the notice receiver */
        (void) PQisBusy(sc->pg);
    }

    if (!ok || sc->fatal || PQstatus(sc->pg) != CONNECTION_OK) {
        ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                      "saveitem: PostgreSQL closed an idle connection");
        ngx_http_saveitem_close(sc);
        return;
    }
}


/*
 * Reads what has arrived, in the order it was sent.  Each statement's
 * results end with NULL; each sync with PGRES_PIPELINE_SYNC, which is
 * where a statement is committed.  NGX_OK: nothing more is expected;
 * NGX_AGAIN: wait for more input; NGX_ERROR: the connection is broken.
 */

static ngx_int_t
ngx_http_saveitem_results(ngx_http_saveitem_conn_t *sc)
{
    PGresult                    *res;
    ExecStatusType               status;
    ngx_http_saveitem_expect_t  *e;

    if (sc->nexpect > NGX_HTTP_SAVEITEM_EXPECT) {
        return NGX_ERROR;
    }

    while (sc->nexpect) {

        if (PQisBusy(sc->pg)) {
            return PQstatus(sc->pg) == CONNECTION_OK ? NGX_AGAIN : NGX_ERROR;
        }

        res = PQgetResult(sc->pg);
        e = &sc->expect[sc->head];

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                       "saveitem result: %s, expected %d, seen %ui",
                       res ? PQresStatus(PQresultStatus(res)) : "NULL",
                       e->type, e->seen);

        if (res == NULL) {

            if (e->type == NGX_HTTP_SAVEITEM_SYNC) {
                /* after an error at commit; never twice in a row */

                if (sc->nulls++) {
                    return NGX_ERROR;
                }

                continue;
            }

            if (e->seen == 0) {
                /* a statement with no result at all: libpq lost it */
                return NGX_ERROR;
            }

            sc->head = (sc->head + 1) % NGX_HTTP_SAVEITEM_EXPECT;
            sc->nexpect--;
            continue;
        }

        sc->nulls = 0;
        status = PQresultStatus(res);

        if (status == PGRES_FATAL_ERROR
            && PQresultErrorField(res, PG_DIAG_SQLSTATE) == NULL)
        {
            /* made by libpq itself: the connection is gone */
            PQclear(res);
            return NGX_ERROR;
        }

        switch (e->type) {

        case NGX_HTTP_SAVEITEM_SYNC:

            if (status == PGRES_PIPELINE_SYNC) {
                PQclear(res);
                sc->head = (sc->head + 1) % NGX_HTTP_SAVEITEM_EXPECT;
                sc->nexpect--;

                if (e->arg == 0) {
                    ngx_http_saveitem_settle(sc);
                }

                break;
            }

            ngx_http_saveitem_sync_error(sc, res);
            break;

        case NGX_HTTP_SAVEITEM_TX:
            e->seen++;

            if (status == PGRES_FATAL_ERROR) {
                ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                              "saveitem: PostgreSQL refused %s%s: %s",
                              e->kind ? "to prepare " : "",
                              ngx_http_saveitem_tx[e->arg],
                              PQresultErrorField(res,
                                                 PG_DIAG_MESSAGE_PRIMARY));
            }

            if (e->kind && status != PGRES_COMMAND_OK) {
                /* unnamed again next time */
                sc->savepoints = 0;
            }

            PQclear(res);
            break;

        case NGX_HTTP_SAVEITEM_COMMIT:
            e->seen++;
            ngx_http_saveitem_commit_result(sc, res);
            break;

        case NGX_HTTP_SAVEITEM_INSERT:
            e->seen++;

            if (ngx_http_saveitem_insert_result(sc, e, res) != NGX_OK) {
                return NGX_ERROR;
            }

            break;

        default: /* SET, PREPARE */
            e->seen++;
            ngx_http_saveitem_setup_result(sc, e, res);
            break;
        }

        if (PQstatus(sc->pg) != CONNECTION_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_saveitem_setup_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res)
{
    ngx_str_t                 *sql;
    ngx_uint_t                 v, rows;
    ngx_http_saveitem_stmt_t  *stmt;

    if (PQresultStatus(res) == PGRES_COMMAND_OK
        || PQresultStatus(res) == PGRES_TUPLES_OK)
    {
        PQclear(res);
        return;
    }

    if (e->type == NGX_HTTP_SAVEITEM_SET) {
        ngx_http_saveitem_set_failed(sc, res);
        return;
    }

    sc->prepared[e->arg] = 0;

    if (PQresultStatus(res) != PGRES_FATAL_ERROR) {
        PQclear(res);
        return;
    }

    stmt = &sc->pool->stmts[e->arg / ngx_http_saveitem_slots(sc->pool)];
    v = e->arg % ngx_http_saveitem_slots(sc->pool);
    rows = v % (sc->pool->batch_max + 1);

    if (v >= 2 * (sc->pool->batch_max + 1)) {
        sql = (v % 2) ? &stmt->sql_probe : &stmt->sql_bulk;

    } else {
        sql = (v / (sc->pool->batch_max + 1)) ? &stmt->sql_key[rows]
                                               : &stmt->sql[rows];
    }

    ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                  "saveitem: PostgreSQL refused %s: %s", sql->data,
                  PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));

    /* the statement that follows fails for this reason: tell that one */

    if (sc->setup_err) {
        PQclear(sc->setup_err);
    }

    sc->setup_err = res;
}


/*
 * The connection's statement_timeout could not be set: the connection is
 * not used again.  The INSERTs sent after the SET are settled as if no
 * connection could be made: sent again, once, on a new connection (see
 * not_run).  When the server ended the session there (a FATAL error, the
 * backend terminated), none of them ran: the connection fails next, and
 * they are settled here; otherwise each when its result comes: one that
 * ran anyway (its statement prepared before) is stored.
 */

static void
ngx_http_saveitem_set_failed(ngx_http_saveitem_conn_t *sc, PGresult *res)
{
    ngx_uint_t                i;
    const char               *severity, *sqlstate;
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    sc->statement_timeout = 0;

    if (PQresultStatus(res) != PGRES_FATAL_ERROR) {
        PQclear(res);
        return;
    }

    severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                  "saveitem: PostgreSQL refused SET statement_timeout: %s "
                  "(SQLSTATE %s), closing the connection",
                  PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                  sqlstate ? sqlstate : "none");

    ngx_http_saveitem_metrics_error(sc->pool->db->counters, sqlstate);

    sc->setup_failed = 1;
    sc->retire = 1;

    if (severity != NULL
        && (ngx_strcmp(severity, "FATAL") == 0
            || ngx_strcmp(severity, "PANIC") == 0))
    {
        q = ngx_queue_head(&sc->jobs);

        for (i = 0; i < sc->nsettled; i++) {
            q = ngx_queue_next(q);
        }

        for ( /* void */ ; q != ngx_queue_sentinel(&sc->jobs);
             q = ngx_queue_next(q))
        {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
            ngx_http_saveitem_not_run(job);
        }
    }

    PQclear(res);
}


/* a job whose statement did not run for its connection's fault */

static void
ngx_http_saveitem_not_run(ngx_http_saveitem_job_t *job)
{
    if (job->probing) {
        /* a bulk body known not stored, as its own error said */
        job->failed = 1;
        job->probing = 0;
        job->retry = 0;
        return;
    }

    job->failed = 1;
    job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
    job->facts.reason = NGX_HTTP_SAVEITEM_R_UNREACHABLE;

    if (!job->retried) {
        job->retry = 1;
    }
}


static ngx_int_t
ngx_http_saveitem_insert_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res)
{
    Oid                         type;
    int                         isolate;
    ngx_uint_t                  i, taken, half;
    const char                 *sqlstate;
    ngx_queue_t                *q;
    ngx_http_saveitem_job_t    *job;
    ngx_http_saveitem_reason_e  reason;

    if (e->seen > 1) {
        ngx_log_error(NGX_LOG_ALERT, &sc->log, 0,
                      "saveitem: unexpected second result: %s",
                      PQresStatus(PQresultStatus(res)));
        PQclear(res);
        return NGX_ERROR;
    }

    /* the jobs of this statement follow those already settled */

    q = ngx_queue_head(&sc->jobs);

    for (i = 0; i < sc->nsettled; i++) {
        q = ngx_queue_next(q);
    }

    if (sc->setup_failed
        && (PQresultStatus(res) == PGRES_FATAL_ERROR
            || PQresultStatus(res) == PGRES_PIPELINE_ABORTED))
    {
        /* it failed for the SET's sake (or with it): on a new connection */

        for (i = 0; i < e->arg; i++, q = ngx_queue_next(q)) {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

            if (!job->failed) {
                ngx_http_saveitem_not_run(job);
            }
        }

        sc->nsettled += e->arg;
        PQclear(res);
        return NGX_OK;
    }

    switch (PQresultStatus(res)) {

    case PGRES_TUPLES_OK:

        if (e->kind == NGX_HTTP_SAVEITEM_BULK) {
            if (ngx_http_saveitem_bulk_result(sc, e, res, q) != NGX_OK) {
                PQclear(res);
                return NGX_ERROR;
            }

            sc->nsettled += e->arg;
            PQclear(res);
            return NGX_OK;
        }

        if (e->kind == NGX_HTTP_SAVEITEM_KEYED) {
            if (ngx_http_saveitem_keyed_result(sc, e, res, q) != NGX_OK) {
                PQclear(res);
                return NGX_ERROR;
            }

            sc->nsettled += e->arg;
            PQclear(res);
            return NGX_OK;
        }

        if ((ngx_uint_t) PQntuples(res) != e->arg || PQnfields(res) != 1) {
            /* a trigger may have skipped the row */
            break;
        }

        type = PQftype(res, 0);

        for (i = 0; i < e->arg; i++, q = ngx_queue_next(q)) {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

            if (ngx_http_saveitem_job_pk(sc, job, res, i, 0, type) != NGX_OK) {
                PQclear(res);
                return NGX_ERROR;
            }
        }

        sc->nsettled += e->arg;
        PQclear(res);
        return NGX_OK;

    case PGRES_FATAL_ERROR:

        if ((e->kind == NGX_HTTP_SAVEITEM_BULK
             || e->kind == NGX_HTTP_SAVEITEM_PROBE)
            && ngx_http_saveitem_bulk_error(sc, e, res, q) == NGX_OK)
        {
            sc->nsettled += e->arg;
            return NGX_OK;
        }

        sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        ngx_http_saveitem_metrics_error(sc->pool->db->counters, sqlstate);

        if (e->arg > 1 && saveitem_policy_retryable(sqlstate)) {

            /*
             * One document may be guilty: the rows are sent again in one
             * transaction, a savepoint each (one round trip, one commit:
             * see send_isolated).  Behind a pooler (prepare=off: one
             * sync in flight) they are sent again in two halves, and a
             * half that fails again is halved again.  A statement timeout
             * costs a whole timeout at each try: then one statement each,
             * pipelined, the slow one alone.
             */

            half = saveitem_policy_retry_rows(e->arg, sqlstate,
                                              sc->pool->db->prepare, &isolate);

            ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                          "saveitem: a statement of %ui rows failed (%s), "
                          "retrying them %s", e->arg,
                          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                          isolate ? "in one transaction, a savepoint each"
                                  : (half == 1 ? "one by one"
                                               : "in halves"));

            for (i = 0; i < e->arg; i++, q = ngx_queue_next(q)) {
                job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
                job->failed = 1;
                job->retry = 1;
                job->batch_rows = half;
                job->isolate = isolate;

                /* what to answer if its time runs out before the retry */

                if (ngx_strcmp(sqlstate, "57014") == 0) {
                    job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
                    job->facts.reason = NGX_HTTP_SAVEITEM_R_SQL_ERROR;
                    ngx_cpystrn(job->facts.sqlstate, (u_char *) sqlstate,
                                sizeof(job->facts.sqlstate));
                }
            }

            if (sc->setup_err) {
                PQclear(sc->setup_err);
                sc->setup_err = NULL;
            }

            sc->nsettled += e->arg;
            PQclear(res);
            return NGX_OK;
        }

        if (sc->setup_err) {
            /* the statement was not prepared: say why */
            PQclear(res);
            res = sc->setup_err;
            sc->setup_err = NULL;
        }

        taken = 0;

        for (i = 0; i < e->arg; i++, q = ngx_queue_next(q)) {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
            taken |= ngx_http_saveitem_job_error(sc, job, res, !taken, 0);
        }

        if (!taken) {
            PQclear(res);
        }

        sc->nsettled += e->arg;
        return NGX_OK;

    default:
        break;
    }

    /* aborted by an earlier error, or no row came back */

    reason = (PQresultStatus(res) == PGRES_PIPELINE_ABORTED)
             ? NGX_HTTP_SAVEITEM_R_NOT_RUN : NGX_HTTP_SAVEITEM_R_ROW_SKIPPED;

    for (i = 0; i < e->arg; i++, q = ngx_queue_next(q)) {
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

        job->failed = 1;
        job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
        job->facts.reason = reason;
    }

    ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                  "saveitem: INSERT returned %s with %d rows",
                  PQresStatus(PQresultStatus(res)), PQntuples(res));

    sc->nsettled += e->arg;
    PQclear(res);

    return NGX_OK;
}


/* the key of row i, column col, for a job */

static ngx_int_t
ngx_http_saveitem_job_pk(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job, PGresult *res, int i, int col, Oid type)
{
    int      len;
    u_char  *value;

    len = PQgetlength(res, i, col);
    value = (u_char *) PQgetvalue(res, i, col);

    /* a job sent again (its statement failed at commit) had one */

    ngx_http_saveitem_job_forget_pk(job);

    if ((size_t) len <= sizeof(job->pk_buf)) {
        job->pk.data = job->pk_buf;

    } else {
        job->pk.data = ngx_alloc(len, &sc->log);
        if (job->pk.data == NULL) {
            return NGX_ERROR;
        }
    }

    job->pk.len = ngx_cpymem(job->pk.data, value, len) - job->pk.data;

    job->pk_number = (type == INT8OID || type == INT4OID
                      || type == INT2OID || type == OIDOID
                      || type == NUMERICOID)
                     && saveitem_pk_is_number(job->pk.data, job->pk.len);

    return NGX_OK;
}


static void
ngx_http_saveitem_job_forget_pk(ngx_http_saveitem_job_t *job)
{
    if (job->pk.data != NULL && job->pk.data != job->pk_buf) {
        ngx_free(job->pk.data);
    }

    ngx_str_null(&job->pk);
    job->pk_number = 0;
}


/*
 * The parameters of a bulk statement: the JSON array and how many
 * documents it holds; of a probe: the documents [lo, mid) of it, as an
 * array of their own
 */

static ngx_int_t
ngx_http_saveitem_bulk_params(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job)
{
    u_char           *p;
    size_t            start, end, from, to;
    ngx_uint_t        i, mid;
    saveitem_docs_t   docs;

    if (!job->probing) {
        p = ngx_sprintf(sc->count, "%ui", job->bulk);
        *p = '\0';

        sc->params[0] = (const char *) job->body;
        sc->params[1] = (const char *) sc->count;

        return NGX_OK;
    }

    mid = job->probe_lo + (job->probe_hi - job->probe_lo) / 2;
    from = 0;
    to = 0;

    if (saveitem_docs_open(&docs, job->body, job->body_len, 0) != 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < mid; i++) {
        if (saveitem_docs_next(&docs, &start, &end) != 1) {
            return NGX_ERROR;
        }

        if (i == job->probe_lo) {
            from = start;
        }

        to = end;
    }

    if (job->probe) {
        ngx_free(job->probe);
    }

    job->probe = ngx_alloc(to - from + 3, &sc->log);
    if (job->probe == NULL) {
        return NGX_ERROR;
    }

    p = job->probe;
    *p++ = '[';
    p = ngx_cpymem(p, job->body + from, to - from);
    *p++ = ']';
    *p = '\0';

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                   "saveitem probe: documents %ui to %ui of %ui",
                   job->probe_lo, mid - 1, job->bulk);

    sc->params[0] = (const char *) job->probe;

    return NGX_OK;
}


/*
 * A bulk body's rows: its documents' keys, in order.  A constraint or a
 * value that refuses one of them fails the whole statement (nothing is
 * stored); then probes halve the documents, each in a statement that is
 * never committed, until the one at fault is known: its index goes into
 * the answer.
 */

static ngx_int_t
ngx_http_saveitem_bulk_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res, ngx_queue_t *q)
{
    int                       r, nrows, len;
    Oid                       type;
    u_char                   *p, *value;
    size_t                    size;
    ngx_uint_t                number;
    ngx_http_saveitem_job_t  *job;

    job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

    nrows = PQntuples(res);

    if ((ngx_uint_t) nrows != job->bulk || PQnfields(res) != 1) {
        ngx_log_error(NGX_LOG_ALERT, &sc->log, 0,
                      "saveitem: a bulk INSERT of %ui documents returned "
                      "%d rows", job->bulk, nrows);
        return NGX_ERROR;
    }

    type = PQftype(res, 0);
    number = (type == INT8OID || type == INT4OID || type == INT2OID
              || type == OIDOID || type == NUMERICOID);

    size = 0;

    for (r = 0; r < nrows; r++) {
        value = (u_char *) PQgetvalue(res, r, 0);
        len = PQgetlength(res, r, 0);

        size += (number && saveitem_pk_is_number(value, len))
                ? (size_t) len : saveitem_json_escape(NULL, value, len) + 2;
        size += 2;
    }

    job->pks.data = ngx_alloc(size + 1, &sc->log);
    if (job->pks.data == NULL) {
        return NGX_ERROR;
    }

    p = job->pks.data;

    for (r = 0; r < nrows; r++) {
        value = (u_char *) PQgetvalue(res, r, 0);
        len = PQgetlength(res, r, 0);

        if (r) {
            *p++ = ',';
            *p++ = ' ';
        }

        if (number && saveitem_pk_is_number(value, len)) {
            p = ngx_cpymem(p, value, len);

        } else {
            *p++ = '"';
            p += saveitem_json_escape(p, value, len);
            *p++ = '"';
        }
    }

    job->pks.len = p - job->pks.data;

    return NGX_OK;
}


/*
 * A bulk statement failed, or a probe came back (always an error: 22012
 * when its documents went in, the first error otherwise).  NGX_OK: the
 * job's facts are set (retry: probe again); NGX_DECLINED: not a failure
 * a document can be at fault for: the usual error path.
 */

static ngx_int_t
ngx_http_saveitem_bulk_error(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res, ngx_queue_t *q)
{
    ngx_uint_t                mid;
    const char               *sqlstate;
    ngx_http_saveitem_job_t  *job;

    job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
    sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (sqlstate == NULL) {
        return NGX_DECLINED;
    }

    if (e->kind == NGX_HTTP_SAVEITEM_BULK) {

        /* data (22) or integrity (23): one document can be at fault */

        if (job->bulk < 2 || job->data == NULL
            || !saveitem_sqlstate_is_document(sqlstate))
        {
            return NGX_DECLINED;
        }

        /* the first answer, kept for when the one at fault is known */

        (void) ngx_http_saveitem_job_error(sc, job, res, 1, 0);

        ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                      "saveitem: a bulk body of %ui documents failed (%s), "
                      "probing for the one at fault", job->bulk, sqlstate);

        job->probing = 1;
        job->probe_lo = 0;
        job->probe_hi = job->bulk;
        job->retry = 1;

        return NGX_OK;
    }

    /* a probe */

    mid = job->probe_lo + (job->probe_hi - job->probe_lo) / 2;

    if (ngx_strcmp(sqlstate, "22012") == 0) {
        job->probe_lo = mid;

    } else if (saveitem_sqlstate_is_document(sqlstate)) {
        job->probe_hi = mid;

    } else {
        /*
         * not what a document holds (a timeout, a conflict, resources,
         * the backend terminated): no document is blamed for it; the
         * bulk body is answered with its own error, without an index
         */

        ngx_log_error(NGX_LOG_WARN, &sc->log, 0,
                      "saveitem: probing a bulk body of %ui documents for "
                      "the one at fault failed: %s (SQLSTATE %s); "
                      "answering without its index", job->bulk,
                      PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                      sqlstate);

        PQclear(res);

        job->failed = 1;
        job->retry = 0;
        job->probing = 0;

        return NGX_OK;
    }

    PQclear(res);

    job->failed = 1;

    if (job->probe_hi - job->probe_lo > 1) {
        job->retry = 1;
        return NGX_OK;
    }

    job->retry = 0;
    job->probing = 0;
    job->facts.index = job->probe_lo;
    job->facts.indexed = 1;

    return NGX_OK;
}


/*
 * Rows with idempotency keys: (place, primary key, what happened), one for
 * each job, in order (see ngx_http_saveitem_db_stmts_key()).  A job whose
 * key holds another document, or whose row a trigger skipped, is not
 * stored.
 */

static ngx_int_t
ngx_http_saveitem_keyed_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res, ngx_queue_t *q)
{
    int                       r;
    Oid                       type;
    u_char                   *what;
    ngx_int_t                 n;
    ngx_http_saveitem_job_t  *job;

    if (PQnfields(res) != 3 || (ngx_uint_t) PQntuples(res) != e->arg) {
        ngx_log_error(NGX_LOG_ALERT, &sc->log, 0,
                      "saveitem: INSERT with keys of %ui rows returned %d "
                      "rows of %d columns", e->arg, PQntuples(res),
                      PQnfields(res));
        return NGX_ERROR;
    }

    type = PQftype(res, 1);

    for (r = 0; (ngx_uint_t) r < e->arg; r++, q = ngx_queue_next(q)) {
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

        n = ngx_atoi((u_char *) PQgetvalue(res, r, 0),
                     PQgetlength(res, r, 0));
        what = (u_char *) PQgetvalue(res, r, 2);

        if (n != r + 1 || PQgetlength(res, r, 2) != 1) {
            ngx_log_error(NGX_LOG_ALERT, &sc->log, 0,
                          "saveitem: INSERT with keys returned row %d "
                          "for row %d", (int) n, r + 1);
            return NGX_ERROR;
        }

        switch (what[0]) {

        case 'n':
        case 'r':
            if (ngx_http_saveitem_job_pk(sc, job, res, r, 1, type) != NGX_OK) {
                return NGX_ERROR;
            }

            job->facts.replayed = (what[0] == 'r');
            break;

        case 'k':
            job->failed = 1;
            job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
            job->facts.reason = NGX_HTTP_SAVEITEM_R_KEY_REUSED;
            break;

        default: /* 's' */
            ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                          "saveitem: INSERT with the key \"%V\" returned "
                          "no row (a trigger skipped it)", &job->key);

            job->failed = 1;
            job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
            job->facts.reason = NGX_HTTP_SAVEITEM_R_ROW_SKIPPED;
            break;
        }
    }

    return NGX_OK;
}


/*
 * An error between a statement's result and its sync: the commit failed
 * (a deferred constraint), or the backend is going away, in which case
 * nobody knows whether the commit happened.
 */

static void
ngx_http_saveitem_sync_error(ngx_http_saveitem_conn_t *sc, PGresult *res)
{
    ngx_uint_t                i, retry, taken;
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    if (PQresultStatus(res) != PGRES_FATAL_ERROR) {
        PQclear(res);
        return;
    }

    ngx_http_saveitem_metrics_error(sc->pool->db->counters,
                                    PQresultErrorField(res, PG_DIAG_SQLSTATE));

    ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                  "saveitem: PostgreSQL failed at commit: %s (SQLSTATE %s)",
                  PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                  PQresultErrorField(res, PG_DIAG_SQLSTATE));

    taken = 0;
    retry = (sc->nsettled > 1
             && saveitem_policy_retryable(
                    PQresultErrorField(res, PG_DIAG_SQLSTATE)));

    q = ngx_queue_head(&sc->jobs);

    for (i = 0; i < sc->nsettled; i++, q = ngx_queue_next(q)) {
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

        if (job->failed) {
            continue;
        }

        if (retry) {
            job->failed = 1;
            job->retry = 1;
            job->isolate = 0;
            job->batch_rows = (sc->nsettled + 1) / 2;
            continue;
        }

        /* the first one holds the result; the others share its fate */
        taken |= ngx_http_saveitem_job_error(sc, job, res, !taken, 1);
    }

    if (!taken) {
        PQclear(res);
    }
}


/*
 * The COMMIT of an isolation.  An error: as at a sync.  "ROLLBACK": the
 * transaction had failed (a savepoint could not be rolled back to), so
 * none of its rows is stored.
 */

static void
ngx_http_saveitem_commit_result(ngx_http_saveitem_conn_t *sc, PGresult *res)
{
    ngx_uint_t                i;
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    if (PQresultStatus(res) == PGRES_COMMAND_OK
        && ngx_strcmp(PQcmdStatus(res), "COMMIT") == 0)
    {
        PQclear(res);
        return;
    }

    if (PQresultStatus(res) == PGRES_FATAL_ERROR) {
        ngx_http_saveitem_sync_error(sc, res);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                  "saveitem: PostgreSQL rolled back the transaction of "
                  "%ui rows: %s", sc->nsettled,
                  PQresultStatus(res) == PGRES_COMMAND_OK
                  ? PQcmdStatus(res) : PQresStatus(PQresultStatus(res)));

    q = ngx_queue_head(&sc->jobs);

    for (i = 0; i < sc->nsettled; i++, q = ngx_queue_next(q)) {
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

        if (!job->failed) {
            job->failed = 1;
            job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
            job->facts.reason = NGX_HTTP_SAVEITEM_R_NOT_RUN;
        }
    }

    PQclear(res);
}


/*
 * The statement of a job failed with res: not stored, and why.  A
 * read-only server is the wrong server: its connection is retired.  A
 * serialization failure or a deadlock is retried once.  Returns whether
 * the job now holds res (for the server's words), which only one may.
 */

static ngx_uint_t
ngx_http_saveitem_job_error(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job, PGresult *res, ngx_uint_t owner,
    ngx_uint_t late)
{
    const char  *sqlstate;

    sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (sqlstate == NULL) {
        sqlstate = "";
    }

    job->failed = 1;
    job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
    job->facts.reason = NGX_HTTP_SAVEITEM_R_SQL_ERROR;
    ngx_cpystrn(job->facts.sqlstate, (u_char *) sqlstate,
                sizeof(job->facts.sqlstate));

    if (!late && !job->bulk
        && (ngx_strncmp(sqlstate, "22", 2) == 0
            || ngx_strncmp(sqlstate, "23", 2) == 0))
    {
        ngx_http_saveitem_guilt(sc->pool, 1);
    }

    if (ngx_strcmp(sqlstate, "25006") == 0) {
        if (!sc->retire) {
            ngx_log_error(NGX_LOG_WARN, &sc->log, 0,
                          "saveitem: PostgreSQL (%V) is read-only, "
                          "retiring the connection",
                          &sc->pool->db->display);
        }

        sc->retire = 1;
        job->facts.reason = NGX_HTTP_SAVEITEM_R_READ_ONLY;

    } else if (ngx_strcmp(sqlstate, "40001") == 0
               || ngx_strcmp(sqlstate, "40P01") == 0)
    {
        job->facts.reason = NGX_HTTP_SAVEITEM_R_CONFLICT;

        if (!job->retried) {
            job->retry = 1;
            return 0;
        }
    }

    /* a backend that goes away at commit may have committed */

    if (late
        && (ngx_strncmp(sqlstate, "08", 2) == 0
            || ngx_strncmp(sqlstate, "57", 2) == 0
            || ngx_strncmp(sqlstate, "XX", 2) == 0))
    {
        job->facts.outcome = NGX_HTTP_SAVEITEM_UNKNOWN;
    }

    if (!owner) {
        return 0;
    }

    if (job->res) {
        PQclear(job->res);
    }

    job->res = res;
    job->facts.detail = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    return 1;
}


/* a sync arrived: the jobs settled before it are done */

static void
ngx_http_saveitem_settle(ngx_http_saveitem_conn_t *sc)
{
    ngx_msec_t                took;
    ngx_uint_t                replayed;
    ngx_queue_t              *q, retry;
    ngx_http_saveitem_job_t  *job;

    ngx_queue_init(&retry);

    /* a statement's sync: its time since it was sent (deadline - timeout) */

    if (sc->nsettled) {
        took = ngx_current_msec - (sc->deadline - sc->timeout);

        ngx_http_saveitem_metrics_result(sc->pool->db->counters, took);

        sc->pool->rtt16 = saveitem_policy_rtt(sc->pool->rtt16, took);
    }

    while (sc->nsettled) {
        q = ngx_queue_head(&sc->jobs);
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

        ngx_queue_remove(q);
        sc->nsettled--;

        if (job->retry) {
            ngx_queue_insert_tail(&retry, q);
            continue;
        }

        if (!job->failed) {
            replayed = job->facts.replayed;
            ngx_memzero(&job->facts, sizeof(ngx_http_saveitem_facts_t));
            job->facts.outcome = NGX_HTTP_SAVEITEM_STORED;
            job->facts.replayed = replayed;
            ngx_http_saveitem_metrics_stored(sc->pool->db->counters,
                                             job->bulk ? job->bulk : 1);
        }

        if (!job->failed && !job->bulk) {
            ngx_http_saveitem_guilt(sc->pool, 0);
        }

        ngx_http_saveitem_job_done(job);
    }

    ngx_http_saveitem_requeue(sc->pool, &retry);
}


/*
 * A document stored (0), or refused at its INSERT for what it holds (1: a
 * data exception or a constraint, SQLSTATE class 22 or 23), for the share
 * of guilty documents lately.  While a full isolation would likely hold
 * one, group-commit rows are sent straight into one (see conn_send), or
 * with prepare=off in statements that likely hold none; below half of
 * that, in one statement again.  A document refused at
 * COMMIT (a deferred constraint) is not counted: it fails an isolation
 * as well.
 */

static void
ngx_http_saveitem_guilt(ngx_http_saveitem_pool_t *pool, ngx_uint_t guilty)
{
    ngx_uint_t  isolating;

    pool->guilty = saveitem_policy_guilt(pool->guilty, guilty);
    isolating = saveitem_policy_isolating(pool->guilty, pool->isolating);

    if (isolating && !pool->isolating) {
        pool->isolating = 1;

        ngx_log_error(NGX_LOG_INFO, pool->log, 0,
                      "saveitem: %ui%% of documents refused lately, "
                      "group-commit rows go %s",
                      (pool->guilty * 100 + 32768) / 65536,
                      pool->db->prepare
                      ? "in one transaction, a savepoint each"
                      : "in statements of fewer rows (prepare=off)");

    } else if (!isolating && pool->isolating) {
        pool->isolating = 0;

        ngx_log_error(NGX_LOG_INFO, pool->log, 0,
                      "saveitem: few documents refused lately, "
                      "group-commit rows go in one statement again");
    }
}


/*
 * Jobs whose statement failed before its commit go back to the head of
 * the queue, in their order, in statements of at most the rows set when
 * they failed (half of what failed), with what is left of their
 * queue_timeout; those whose request has gone are not retried (their
 * body went with the request): not stored.
 */

static void
ngx_http_saveitem_requeue(ngx_http_saveitem_pool_t *pool, ngx_queue_t *jobs)
{
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    while (!ngx_queue_empty(jobs)) {
        q = ngx_queue_last(jobs);
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
        ngx_queue_remove(q);

        job->retry = 0;
        job->failed = 0;
        job->sent = 0;

        /* a key returned before its commit failed names nothing */
        ngx_http_saveitem_job_forget_pk(job);

        if (job->data == NULL) {
            job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
            ngx_http_saveitem_job_done(job);
            continue;
        }

        if (job->res && !job->probing) {
            PQclear(job->res);
            job->res = NULL;
            job->facts.detail = NULL;
        }

        if ((ngx_msec_int_t) (job->queued_until - ngx_current_msec) <= 0) {

            /* no time left to send it again: what its statement got */

            if (job->facts.reason == NGX_HTTP_SAVEITEM_R_STORED) {
                job->facts.reason = NGX_HTTP_SAVEITEM_R_QUEUE_TIMEOUT;
            }

            job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
            ngx_http_saveitem_job_done(job);
            continue;
        }

        job->retried = 1;
        ngx_http_saveitem_job_wait(pool, job, 1);
    }
}



/*
 * saveitem_database lifetime=: an older connection is closed when idle,
 * never mid-statement, so that load spreads again after a failback or a
 * name that moved while the old server is still up
 */

static ngx_uint_t
ngx_http_saveitem_expired(ngx_http_saveitem_conn_t *sc)
{
    ngx_msec_t  lifetime;

    lifetime = sc->pool->db->lifetime;

    /*
     * a connection carries at least one statement, however short its
     * lifetime (below the time a connect takes, none would otherwise)
     */

    if (lifetime == 0 || !sc->used
        || ngx_current_msec - sc->started < lifetime)
    {
        return 0;
    }

    ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                  "saveitem: closing an idle PostgreSQL connection older "
                  "than %M ms (saveitem_database lifetime=)", lifetime);

    return 1;
}


static void
ngx_http_saveitem_set_idle(ngx_http_saveitem_conn_t *sc)
{
    ngx_msec_t                 age;
    ngx_http_saveitem_pool_t  *pool;

    pool = sc->pool;

    if (sc->c->read->timer_set) {
        ngx_del_timer(sc->c->read);
    }

    if (sc->setup_err) {
        PQclear(sc->setup_err);
        sc->setup_err = NULL;
    }

    if (sc->fatal || sc->retire || (ngx_exiting && pool->nwaiting == 0)
        || ngx_http_saveitem_expired(sc))
    {
        ngx_http_saveitem_close(sc);
        ngx_http_saveitem_dispatch(pool);
        return;
    }

    sc->state = NGX_HTTP_SAVEITEM_IDLE;
    sc->log.action = NULL;
    sc->c->idle = 1;

    /* the end of its lifetime, which does not keep an exiting worker */

    if (pool->db->lifetime) {
        age = ngx_current_msec - sc->started;

        sc->c->read->cancelable = 1;
        ngx_add_timer(sc->c->read, age < pool->db->lifetime
                                   ? pool->db->lifetime - age : 1);
    }

    ngx_queue_remove(&sc->queue);
    ngx_queue_insert_head(&pool->idle, &sc->queue);
    pool->nidle++;

    /* nothing waits for it: one connection fewer in use */

    if (pool->nwaiting == 0 && pool->active > 1) {
        pool->active--;
    }

    ngx_http_saveitem_dispatch(pool);
}


/*
 * The connection broke (or timed out, or the worker is exiting) while
 * busy.  Jobs whose statement failed with an error were not stored, nor
 * were those whose sync never left; the others may or may not have been.
 * why: for the log; NULL: libpq's message, "": already logged.
 */

static void
ngx_http_saveitem_conn_fail(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_reason_e reason, const char *why)
{
    ngx_queue_t               *q, retry;
    ngx_http_saveitem_job_t   *job;
    ngx_http_saveitem_pool_t  *pool;
    u_char                     buf[NGX_MAX_ERROR_STR];

    pool = sc->pool;

    if (why == NULL) {
        why = (const char *) ngx_http_saveitem_db_error(sc->pg, buf,
                                                        sizeof(buf));
    }

    if (why[0] != '\0') {
        ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                      "saveitem: PostgreSQL connection failed: %s", why);
    }

    ngx_queue_remove(&sc->queue);
    ngx_queue_insert_tail(&pool->busy, &sc->queue);

    /* answer every attached request exactly once, then close */

    ngx_queue_init(&retry);

    while (!ngx_queue_empty(&sc->jobs)) {
        q = ngx_queue_head(&sc->jobs);
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
        ngx_queue_remove(q);

        if (job->retry) {
            /* its statement failed with an error: nothing was committed */
            ngx_queue_insert_tail(&retry, q);
            continue;
        }

        if (job->probing) {
            /*
             * a probe never commits, and the bulk body failed before it:
             * not stored, as its own error said; which document is at
             * fault is not known
             */

            ngx_log_error(NGX_LOG_WARN, &sc->log, 0,
                          "saveitem: the connection failed while probing "
                          "a bulk body of %ui documents for the one at "
                          "fault; answering without its index", job->bulk);

            job->probing = 0;
            ngx_http_saveitem_job_done(job);
            continue;
        }

        if (job->failed) {
            ngx_http_saveitem_job_done(job);
            continue;
        }

        ngx_http_saveitem_job_fail(job, job->sent
                                        ? NGX_HTTP_SAVEITEM_UNKNOWN
                                        : NGX_HTTP_SAVEITEM_NOT_STORED,
                                   reason);
    }

    ngx_http_saveitem_close(sc);
    ngx_http_saveitem_requeue(pool, &retry);
    ngx_http_saveitem_dispatch(pool);
}


static void
ngx_http_saveitem_close(ngx_http_saveitem_conn_t *sc)
{
    ngx_queue_t               *q;
    ngx_http_saveitem_job_t   *job;
    ngx_http_saveitem_pool_t  *pool;

    pool = sc->pool;

    /* only at exit: nobody is left to answer */

    while (!ngx_queue_empty(&sc->jobs)) {
        q = ngx_queue_head(&sc->jobs);
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
        ngx_queue_remove(q);
        ngx_http_saveitem_job_free(job);
    }

    if (sc->setup_err) {
        PQclear(sc->setup_err);
    }

    if (sc->hosts) {
        ngx_http_saveitem_db_resolve_done(sc->hosts);
    }

    ngx_http_saveitem_unwrap(sc);

    if (sc->pg) {
        PQfinish(sc->pg);
    }

    if (sc->state == NGX_HTTP_SAVEITEM_IDLE) {
        pool->nidle--;
    }

    ngx_queue_remove(&sc->queue);
    pool->nconns--;

    ngx_free(sc);
}


/* a pool's gauges, for saveitem_status */

void
ngx_http_saveitem_pool_stat(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_pool_stat_t *st)
{
    st->waiting = pool->nwaiting;
    st->connecting = pool->nconnecting;
    st->idle = pool->nidle;
    st->busy = pool->nconns - pool->nidle - pool->nconnecting;
}


/*
 * For saveitem_ready: can the pool take a write now?  NGX_OK: a
 * connection is open (idle or busy; the first idle one is checked as
 * before a statement).  NGX_AGAIN: one is being opened, started here if
 * none was: ask again.  NGX_DECLINED: none can be had now, f says why
 * and for how long.  No statement is sent.
 */

ngx_int_t
ngx_http_saveitem_pool_ready(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_facts_t *f)
{
    ngx_queue_t               *q;
    ngx_http_saveitem_conn_t  *sc;

    f->outcome = NGX_HTTP_SAVEITEM_NOT_STORED;

    if (pool->exiting || ngx_exiting) {
        f->reason = NGX_HTTP_SAVEITEM_R_EXITING;
        return NGX_DECLINED;
    }

    while (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        sc = ngx_queue_data(q, ngx_http_saveitem_conn_t, queue);

        if (ngx_http_saveitem_alive(sc) == NGX_OK) {
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                      "saveitem: idle PostgreSQL connection was closed "
                      "by the server");
        ngx_http_saveitem_close(sc);
    }

    if (pool->nconns > pool->nconnecting) {
        return NGX_OK;
    }

    /*
     * the connect starts from a posted event, not inside the handler of
     * the request that asked (libpq's first steps run at its start)
     */

    if (pool->nconnecting == 0 && !pool->retry.timer_set
        && !pool->open.posted)
    {
        ngx_post_event(&pool->open, &ngx_posted_events);
    }

    if (pool->nconnecting || pool->open.posted) {
        return NGX_AGAIN;
    }

    /* it failed at once, or the pool waits before the next try */

    f->reason = pool->down ? pool->down : NGX_HTTP_SAVEITEM_R_UNREACHABLE;

    if (pool->retry.timer_set) {
        f->retry_after = ngx_http_saveitem_retry_left(pool);
    }

    return NGX_DECLINED;
}
