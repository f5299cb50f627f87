
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


typedef enum {
    NGX_HTTP_SAVEITEM_CONNECTING = 0,
    NGX_HTTP_SAVEITEM_IDLE,
    NGX_HTTP_SAVEITEM_BUSY
} ngx_http_saveitem_state_e;


typedef enum {
    NGX_HTTP_SAVEITEM_SET = 0,
    NGX_HTTP_SAVEITEM_PREPARE,
    NGX_HTTP_SAVEITEM_INSERT,
    NGX_HTTP_SAVEITEM_SYNC
} ngx_http_saveitem_expect_e;


/*
 * With saveitem_batch off, a connection that becomes free takes up to this
 * many waiting requests, each its own statement and transaction, as a
 * pipeline: one round trip for all of them (libpq 15 still writes each
 * at its PQpipelineSync()).  Waiting requests are shared out among the
 * connections that can take them, so a pipeline is only this deep when
 * every connection is busy.
 */
#define NGX_HTTP_SAVEITEM_PIPELINE    16

#define NGX_HTTP_SAVEITEM_EXPECT      (2 * NGX_HTTP_SAVEITEM_PIPELINE + 8)

#define NGX_HTTP_SAVEITEM_BACKOFF_MIN 50
#define NGX_HTTP_SAVEITEM_BACKOFF_MAX 1000

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

    /* why no connection can be had now; STORED: none */
    ngx_http_saveitem_reason_e    down;
    unsigned                      exiting:1;  /* worker_shutdown_timeout */
};


typedef struct {
    ngx_http_saveitem_expect_e    type;
    ngx_uint_t                    arg;        /* statement, or jobs */
    ngx_uint_t                    seen;       /* results so far */
} ngx_http_saveitem_expect_t;


struct ngx_http_saveitem_conn_s {
    ngx_queue_t                   queue;      /* in pool->idle or ->busy */
    ngx_http_saveitem_pool_t     *pool;
    PGconn                       *pg;
    ngx_connection_t             *c;
    ino_t                         ino;
    ngx_log_t                     log;
    ngx_http_saveitem_state_e     state;
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
    u_char                       *prepared;   /* [stmt * batch_max + rows] */
    const char                  **params;     /* [batch_max] */
    unsigned                      fatal:1;    /* the server said goodbye */
    unsigned                      retire:1;   /* close when idle */
    unsigned                      timedout:1;
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
static void ngx_http_saveitem_backoff(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason);

static ngx_int_t ngx_http_saveitem_connect(ngx_http_saveitem_pool_t *pool);
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
static void ngx_http_saveitem_expect(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_e type, ngx_uint_t arg);
static void ngx_http_saveitem_write_handler(ngx_event_t *ev);
static void ngx_http_saveitem_read_handler(ngx_event_t *ev);
static void ngx_http_saveitem_idle_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_saveitem_results(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_setup_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res);
static ngx_int_t ngx_http_saveitem_insert_result(
    ngx_http_saveitem_conn_t *sc, ngx_http_saveitem_expect_t *e,
    PGresult *res);
static void ngx_http_saveitem_sync_error(ngx_http_saveitem_conn_t *sc,
    PGresult *res);
static void ngx_http_saveitem_settle(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_requeue(ngx_http_saveitem_pool_t *pool,
    ngx_queue_t *jobs);
static ngx_uint_t ngx_http_saveitem_retryable(const char *sqlstate);
static ngx_uint_t ngx_http_saveitem_job_error(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job, PGresult *res, ngx_uint_t owner,
    ngx_uint_t late);
static void ngx_http_saveitem_set_idle(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_conn_fail(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_reason_e reason, const char *why);
static void ngx_http_saveitem_close(ngx_http_saveitem_conn_t *sc);


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

    if (pool->dispatch.posted) {
        ngx_delete_posted_event(&pool->dispatch);
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

    if (pool->down && pool->nconns == 0 && pool->retry.timer_set) {
        job->facts.reason = pool->down;
        job->facts.retry_after = pool->retry.timer.key - ngx_current_msec;

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

    if (job->pk.data != NULL && job->pk.data != job->pk_buf) {
        ngx_free(job->pk.data);
    }

    job->data = NULL;
    ngx_queue_insert_head(&job->pool->free, &job->queue);
}


/* hands a finished job to its request, or logs it when there is none */

static void
ngx_http_saveitem_job_done(ngx_http_saveitem_job_t *job)
{
    if (job->data != NULL) {
        job->handler(job);

    } else {
        ngx_log_error(NGX_LOG_INFO, job->log, 0,
                      "saveitem: client closed the request before the "
                      "answer: %s%s%V%s%s",
                      ngx_http_saveitem_outcomes[job->facts.outcome],
                      job->pk.len ? ", key " : "", &job->pk,
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
        job->facts.retry_after = job->pool->retry.timer.key
                                 - ngx_current_msec;
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
    ngx_uint_t                 share, slots;
    ngx_queue_t               *q;
    ngx_http_saveitem_conn_t  *sc;

    if (pool->exiting) {
        ngx_http_saveitem_fail_waiting(pool, NGX_HTTP_SAVEITEM_R_EXITING);
        return;
    }

    while (!ngx_queue_empty(&pool->waiting)) {

        if (!ngx_queue_empty(&pool->idle)) {
            q = ngx_queue_head(&pool->idle);
            sc = ngx_queue_data(q, ngx_http_saveitem_conn_t, queue);

            if (ngx_http_saveitem_alive(sc) != NGX_OK) {
                ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                              "saveitem: idle PostgreSQL connection "
                              "was closed by the server, replacing it");
                ngx_http_saveitem_close(sc);
                continue;
            }

            slots = pool->nidle + pool->nconnecting
                    + pool->db->pool_size - pool->nconns;

            if (pool->down || pool->retry.timer_set) {
                slots = pool->nidle;
            }

            share = (pool->nwaiting + slots - 1) / slots;

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


/*
 * No connection could be made: wait before the next try, and while no
 * connection is open, waiting requests fail fast with the reason
 */

static void
ngx_http_saveitem_backoff(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason)
{
    pool->down = reason;
    pool->backoff = pool->backoff ? ngx_min(pool->backoff * 2,
                                            NGX_HTTP_SAVEITEM_BACKOFF_MAX)
                                  : NGX_HTTP_SAVEITEM_BACKOFF_MIN;

    if (!pool->retry.timer_set) {
        ngx_add_timer(&pool->retry, pool->backoff);
    }

    if (pool->nconns == 0) {
        ngx_http_saveitem_fail_waiting(pool, reason);
    }
}


/*
 * Opens a connection.  NGX_ERROR: nothing could be started here (memory,
 * worker_connections); the waiting jobs have been answered and the pool
 * backs off.
 */

static ngx_int_t
ngx_http_saveitem_connect(ngx_http_saveitem_pool_t *pool)
{
    PGconn                    *pg;
    ngx_uint_t                 n;
    const char                *keywords[NGX_HTTP_SAVEITEM_PARAMS + 1];
    const char                *values[NGX_HTTP_SAVEITEM_PARAMS + 1];
    ngx_http_saveitem_db_t    *db;
    ngx_http_saveitem_conn_t  *sc;

    db = pool->db;

    n = ngx_http_saveitem_db_params(db, keywords, values);
    keywords[n] = NULL;
    values[n] = NULL;

    sc = ngx_calloc(sizeof(ngx_http_saveitem_conn_t)
                    + ngx_max(pool->batch_max, NGX_HTTP_SAVEITEM_PIPELINE)
                      * sizeof(const char *)
                    + pool->nstmts * (pool->batch_max + 1), pool->log);
    if (sc == NULL) {
        ngx_http_saveitem_backoff(pool, NGX_HTTP_SAVEITEM_R_NO_CONNECTION);
        return NGX_ERROR;
    }

    sc->pool = pool;
    sc->params = (const char **) &sc[1];
    sc->prepared = (u_char *) &sc->params[ngx_max(pool->batch_max,
                                                  NGX_HTTP_SAVEITEM_PIPELINE)];
    sc->log = *pool->log;
    sc->log.handler = ngx_http_saveitem_conn_log;
    sc->log.data = sc;
    sc->log.action = "connecting to PostgreSQL";
    ngx_queue_init(&sc->jobs);

    pool->nconns++;
    pool->nconnecting++;
    sc->state = NGX_HTTP_SAVEITEM_CONNECTING;
    ngx_queue_insert_tail(&pool->busy, &sc->queue);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                   "saveitem connecting to %V", &db->display);

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
        ngx_http_saveitem_connect_failed(sc, "timed out", 0);
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
    ngx_uint_t                 n, i, k, max, idx, rows, pipeline;
    ngx_queue_t               *q, *next;
    ngx_http_saveitem_job_t   *first, *job;
    ngx_http_saveitem_stmt_t  *stmt;
    ngx_http_saveitem_pool_t  *pool;
    u_char                     set[64];

    pool = sc->pool;

    first = ngx_queue_data(ngx_queue_head(&pool->waiting),
                           ngx_http_saveitem_job_t, queue);

    pipeline = (first->batch_rows == 1);
    max = pipeline ? ngx_max(ngx_min(share, NGX_HTTP_SAVEITEM_PIPELINE), 1)
                   : ngx_min(first->batch_rows, pool->batch_max);
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
                || (job->batch_rows == 1) != pipeline
                || (!pipeline && bytes + job->body_len > first->batch_bytes)))
        {
            continue;
        }

        ngx_queue_remove(q);
        pool->nwaiting--;
        job->waiting = 0;

        if (job->wait.timer_set) {
            ngx_del_timer(&job->wait);
        }

        /* what a failed try recorded no longer holds */
        ngx_memzero(&job->facts, sizeof(ngx_http_saveitem_facts_t));

        ngx_queue_insert_tail(&sc->jobs, &job->queue);

        sc->params[n++] = (const char *) job->body;
        bytes += job->body_len;
    }

    ngx_queue_remove(&sc->queue);
    ngx_queue_insert_tail(&pool->busy, &sc->queue);
    pool->nidle--;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                   "saveitem send: %ui rows, %uz bytes%s", n, bytes,
                   pipeline ? ", a statement each" : "");

    rows = n;

    if (pipeline) {
        pool->nstatements += n;
        pool->sizes[0] += n;
        n = 1;

    } else {
        pool->nstatements++;

        for (i = 0; i < 7 && (n >> (i + 1)); i++) { /* void */ }

        pool->sizes[i]++;
    }

    pool->nrows += rows;
    pool->maxrows = ngx_max(pool->maxrows, n);

    ngx_http_saveitem_metrics_sent(pool->db->counters, rows / n, n);

    sc->state = NGX_HTTP_SAVEITEM_BUSY;
    sc->c->idle = 0;
    sc->log.action = "sending to PostgreSQL";
    sc->nsettled = 0;
    sc->nulls = 0;
    sc->timedout = 0;

    stmt = &pool->stmts[first->stmt];
    idx = first->stmt * (pool->batch_max + 1) + n;

    /*
     * The server aborts a statement itself just before the module's own
     * timer fires, so that a timeout normally means "not stored".  SET is
     * transactional: it gets a sync of its own, as does PREPARE.
     */

    if (first->timeout > 1) {
        st = first->timeout - ngx_max(ngx_min(first->timeout / 10, 1000), 1);

    } else {
        st = 1;
    }

    if (sc->statement_timeout != st || !sc->prepared[idx]) {

        if (sc->statement_timeout != st) {
            last = ngx_snprintf(set, sizeof(set) - 1,
                                "SET statement_timeout = %M", st);
            *last = '\0';

            if (!PQsendQueryParams(sc->pg, (char *) set, 0, NULL, NULL,
                                   NULL, NULL, 0))
            {
                goto failed;
            }

            ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SET, st);
            sc->statement_timeout = st;
        }

        if (!sc->prepared[idx]) {
            if (!PQsendPrepare(sc->pg, (char *) stmt->name[n].data,
                               (char *) stmt->sql[n].data, (int) n, NULL))
            {
                goto failed;
            }

            ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_PREPARE, idx);
            sc->prepared[idx] = 1;
        }

        if (!PQpipelineSync(sc->pg)) {
            goto failed;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 0);
    }

    q = ngx_queue_head(&sc->jobs);

    for (i = 0; i < rows; i += n) {
        if (!PQsendQueryPrepared(sc->pg, (char *) stmt->name[n].data, (int) n,
                                 &sc->params[i], NULL, NULL, 0))
        {
            goto failed;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_INSERT, n);

        /* from here on, the server may commit these rows */

        for (k = 0; k < n; k++, q = ngx_queue_next(q)) {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
            job->sent = 1;
        }

        if (!PQpipelineSync(sc->pg)) {
            goto failed;
        }

        ngx_http_saveitem_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 0);
    }

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


static void
ngx_http_saveitem_expect(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_e type, ngx_uint_t arg)
{
    ngx_http_saveitem_expect_t  *e;

    e = &sc->expect[(sc->head + sc->nexpect) % NGX_HTTP_SAVEITEM_EXPECT];

    e->type = type;
    e->arg = arg;
    e->seen = 0;

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
                ngx_http_saveitem_settle(sc);
                break;
            }

            ngx_http_saveitem_sync_error(sc, res);
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
    ngx_uint_t                 rows;
    ngx_http_saveitem_stmt_t  *stmt;

    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return;
    }

    if (e->type == NGX_HTTP_SAVEITEM_SET) {
        sc->statement_timeout = 0;

    } else {
        sc->prepared[e->arg] = 0;
    }

    if (PQresultStatus(res) != PGRES_FATAL_ERROR) {
        PQclear(res);
        return;
    }

    stmt = &sc->pool->stmts[e->arg / (sc->pool->batch_max + 1)];
    rows = e->arg % (sc->pool->batch_max + 1);

    ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                  "saveitem: PostgreSQL refused %s: %s",
                  e->type == NGX_HTTP_SAVEITEM_SET
                  ? "SET statement_timeout"
                  : (char *) stmt->sql[rows].data,
                  PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));

    /* the statement that follows fails for this reason: tell that one */

    if (sc->setup_err) {
        PQclear(sc->setup_err);
    }

    sc->setup_err = res;
}


static ngx_int_t
ngx_http_saveitem_insert_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res)
{
    int                        len;
    Oid                        type;
    u_char                    *value;
    ngx_uint_t                 i, taken;
    const char                *sqlstate;
    ngx_queue_t               *q;
    ngx_http_saveitem_job_t   *job;
    ngx_http_saveitem_reason_e reason;

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

    switch (PQresultStatus(res)) {

    case PGRES_TUPLES_OK:

        if ((ngx_uint_t) PQntuples(res) != e->arg || PQnfields(res) != 1) {
            /* a trigger may have skipped the row */
            break;
        }

        type = PQftype(res, 0);

        for (i = 0; i < e->arg; i++, q = ngx_queue_next(q)) {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

            len = PQgetlength(res, i, 0);
            value = (u_char *) PQgetvalue(res, i, 0);

            if ((size_t) len <= sizeof(job->pk_buf)) {
                job->pk.data = job->pk_buf;

            } else {
                job->pk.data = ngx_alloc(len, &sc->log);
                if (job->pk.data == NULL) {
                    PQclear(res);
                    return NGX_ERROR;
                }
            }

            job->pk.len = ngx_cpymem(job->pk.data, value, len) - job->pk.data;

            job->pk_number = (type == INT8OID || type == INT4OID
                              || type == INT2OID || type == OIDOID
                              || type == NUMERICOID)
                             && saveitem_pk_is_number(job->pk.data,
                                                      job->pk.len);
        }

        sc->nsettled += e->arg;
        PQclear(res);
        return NGX_OK;

    case PGRES_FATAL_ERROR:

        sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        ngx_http_saveitem_metrics_error(sc->pool->db->counters, sqlstate);

        if (e->arg > 1 && ngx_http_saveitem_retryable(sqlstate)) {
            /* one document may be guilty: each gets a statement alone */

            ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                          "saveitem: a statement of %ui rows failed (%s), "
                          "retrying them one by one",
                          e->arg, PQresultErrorField(res,
                                                     PG_DIAG_MESSAGE_PRIMARY));

            for (i = 0; i < e->arg; i++, q = ngx_queue_next(q)) {
                job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
                job->failed = 1;
                job->retry = 1;

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
             && ngx_http_saveitem_retryable(
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
    ngx_queue_t              *q, retry;
    ngx_http_saveitem_job_t  *job;

    ngx_queue_init(&retry);

    /* a statement's sync: its time since it was sent (deadline - timeout) */

    if (sc->nsettled) {
        ngx_http_saveitem_metrics_result(sc->pool->db->counters,
                                         ngx_current_msec
                                         - (sc->deadline - sc->timeout));
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
            ngx_memzero(&job->facts, sizeof(ngx_http_saveitem_facts_t));
            job->facts.outcome = NGX_HTTP_SAVEITEM_STORED;
            ngx_http_saveitem_metrics_stored(sc->pool->db->counters);
        }

        ngx_http_saveitem_job_done(job);
    }

    ngx_http_saveitem_requeue(sc->pool, &retry);
}


/*
 * Jobs whose statement failed before its commit go back to the head of
 * the queue, each to be sent alone, with what is left of their
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

        if (job->data == NULL) {
            job->facts.outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
            ngx_http_saveitem_job_done(job);
            continue;
        }

        if (job->res) {
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
        job->batch_rows = 1;
        ngx_http_saveitem_job_wait(pool, job, 1);
    }
}


/* a batch that failed for these may have one guilty document */

static ngx_uint_t
ngx_http_saveitem_retryable(const char *sqlstate)
{
    if (sqlstate == NULL) {
        return 0;
    }

    /* a statement timeout may be one slow document's */

    if (ngx_strcmp(sqlstate, "57014") == 0) {
        return 1;
    }

    /* the wrong server: no document is guilty */

    if (ngx_strcmp(sqlstate, "25006") == 0) {
        return 0;
    }

    return ngx_strncmp(sqlstate, "08", 2) != 0
           && ngx_strncmp(sqlstate, "53", 2) != 0
           && ngx_strncmp(sqlstate, "57", 2) != 0
           && ngx_strncmp(sqlstate, "XX", 2) != 0;
}


static void
ngx_http_saveitem_set_idle(ngx_http_saveitem_conn_t *sc)
{
    ngx_http_saveitem_pool_t  *pool;

    pool = sc->pool;

    if (sc->c->read->timer_set) {
        ngx_del_timer(sc->c->read);
    }

    if (sc->setup_err) {
        PQclear(sc->setup_err);
        sc->setup_err = NULL;
    }

    if (sc->fatal || sc->retire || (ngx_exiting && pool->nwaiting == 0)) {
        ngx_http_saveitem_close(sc);
        ngx_http_saveitem_dispatch(pool);
        return;
    }

    sc->state = NGX_HTTP_SAVEITEM_IDLE;
    sc->log.action = NULL;
    sc->c->idle = 1;

    ngx_queue_remove(&sc->queue);
    ngx_queue_insert_head(&pool->idle, &sc->queue);
    pool->nidle++;

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

    if (pool->nconnecting == 0 && !pool->retry.timer_set) {
        (void) ngx_http_saveitem_connect(pool);
    }

    if (pool->nconnecting) {
        return NGX_AGAIN;
    }

    /* it failed at once, or the pool waits before the next try */

    f->reason = pool->down ? pool->down : NGX_HTTP_SAVEITEM_R_UNREACHABLE;

    if (pool->retry.timer_set) {
        f->retry_after = pool->retry.timer.key - ngx_current_msec;
    }

    return NGX_DECLINED;
}
