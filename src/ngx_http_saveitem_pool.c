
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * The per-worker pool of one database: its connections, the queue of
 * jobs waiting for one (the jobs themselves: src/ngx_http_saveitem_job.c),
 * dispatch, the backoff while no connection can be made, readiness, and
 * its gauges.  Reports facts (ngx_http_saveitem_facts_t), never statuses.
 *
 * The top of the path to the database: the pool calls the connections
 * (src/ngx_http_saveitem_conn.c), which call batches
 * (src/ngx_http_saveitem_batch.c); all of them call the jobs.  Nothing
 * below calls back up: a connection reports to the pool through the two
 * handlers set here (pool->released, pool->connect_failed), as nginx's
 * peer connection reports to its owner through its free handler.
 */


#include "ngx_http_saveitem_pool.h"


static void ngx_http_saveitem_dispatch_handler(ngx_event_t *ev);
static void ngx_http_saveitem_pool_dispatch(ngx_http_saveitem_pool_t *pool);
static void ngx_http_saveitem_retry_handler(ngx_event_t *ev);
static void ngx_http_saveitem_open_handler(ngx_event_t *ev);
static ngx_uint_t ngx_http_saveitem_hold(ngx_http_saveitem_pool_t *pool);
static void ngx_http_saveitem_grow_handler(ngx_event_t *ev);
static void ngx_http_saveitem_pool_backoff(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason);


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
    ngx_queue_init(&pool->settled);

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

    pool->answer.handler = ngx_http_saveitem_job_answer_handler;
    pool->answer.data = pool;
    pool->answer.log = cycle->log;

    pool->active = 1;
    pool->grow.handler = ngx_http_saveitem_grow_handler;
    pool->grow.data = pool;
    pool->grow.log = cycle->log;
    pool->grow.cancelable = 1;

    pool->released = ngx_http_saveitem_pool_dispatch;
    pool->connect_failed = ngx_http_saveitem_pool_backoff;

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

    if (pool->answer.posted) {
        ngx_delete_posted_event(&pool->answer);
    }

    while (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        ngx_http_saveitem_conn_close(ngx_queue_data(q,
                                                    ngx_http_saveitem_conn_t,
                                                    queue));
    }

    /* the worker is exiting: nobody waits for these answers any more */

    while (!ngx_queue_empty(&pool->busy)) {
        q = ngx_queue_head(&pool->busy);
        ngx_http_saveitem_conn_close(ngx_queue_data(q,
                                                    ngx_http_saveitem_conn_t,
                                                    queue));
    }

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
        ngx_queue_remove(q);
        job->waiting = 0;
        ngx_http_saveitem_job_free(job);
    }

    while (!ngx_queue_empty(&pool->settled)) {
        q = ngx_queue_head(&pool->settled);
        ngx_queue_remove(q);
        ngx_http_saveitem_job_free(ngx_queue_data(q, ngx_http_saveitem_job_t,
                                                  queue));
    }

    while (!ngx_queue_empty(&pool->free)) {
        q = ngx_queue_head(&pool->free);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_saveitem_job_t, queue));
    }
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
    job->posted_us = ngx_http_saveitem_metrics_now();
    job->held_from = ngx_http_saveitem_job_held(pool, job->posted_us);
    ngx_http_saveitem_job_wait(pool, job, 0);

    if (!pool->dispatch.posted) {
        ngx_post_event(&pool->dispatch, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_saveitem_dispatch_handler(ngx_event_t *ev)
{
    ngx_http_saveitem_pool_dispatch(ev->data);
}


/*
 * Gives waiting jobs to idle connections, and opens connections (up to
 * the pool size, no more than there are jobs waiting, one at a time while
 * the database is down) when none is idle.  With saveitem_batch off, the
 * jobs are shared out among the connections that can take them now or
 * once opened: one slow statement delays only the few behind it.
 */

static void
ngx_http_saveitem_pool_dispatch(ngx_http_saveitem_pool_t *pool)
{
    ngx_uint_t                 share;
    ngx_queue_t               *q;
    ngx_http_saveitem_job_t   *job;
    ngx_http_saveitem_conn_t  *sc;
    ngx_http_saveitem_stmt_t  *stmt;

    if (pool->exiting) {
        ngx_http_saveitem_job_fail_waiting(pool, NGX_HTTP_SAVEITEM_R_EXITING);
        return;
    }

    while (!ngx_queue_empty(&pool->waiting)) {

        if (ngx_http_saveitem_hold(pool)) {
            break;
        }

        if (!ngx_queue_empty(&pool->idle)) {
            q = ngx_queue_head(&pool->idle);
            sc = ngx_queue_data(q, ngx_http_saveitem_conn_t, queue);

            if (ngx_http_saveitem_conn_expired(sc)) {
                ngx_http_saveitem_conn_close(sc);
                continue;
            }

            if (ngx_http_saveitem_conn_alive(sc) != NGX_OK) {
                ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                              "saveitem: idle PostgreSQL connection "
                              "was closed by the server, replacing it");
                ngx_http_saveitem_conn_close(sc);
                continue;
            }

            /* mapped columns: the catalog read first (see conn_catalog) */

            job = ngx_queue_data(ngx_queue_head(&pool->waiting),
                                 ngx_http_saveitem_job_t, queue);
            stmt = &pool->stmts[job->stmt];

            if (stmt->mapped && !stmt->built) {

                if (stmt->reading) {
                    break;
                }

                if (!stmt->broken
                    || ngx_current_msec - stmt->read_at
                       >= NGX_HTTP_SAVEITEM_CATALOG_AGAIN)
                {
                    ngx_http_saveitem_conn_catalog(sc, job->stmt);
                    continue;
                }

                ngx_http_saveitem_job_fail_head(pool,
                                                NGX_HTTP_SAVEITEM_R_TABLE);
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

        if (ngx_http_saveitem_conn_open(pool) != NGX_OK) {
            break;
        }
    }
}


static void
ngx_http_saveitem_retry_handler(ngx_event_t *ev)
{
    ngx_http_saveitem_pool_dispatch(ev->data);
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

    (void) ngx_http_saveitem_conn_open(pool);
}


/*
 * Group commit uses as few connections as keep up (the rule:
 * saveitem_policy_hold()): the first waiting request may be held for a
 * busy connection, and a connection that finds nothing waiting when it
 * finishes gives its place back (see conn_idle).  With saveitem_batch off
 * nothing is held: one commit per request needs as many backends as
 * there are requests; nor are requests whose statement failed (they have
 * waited once, and their wait counts from their arrival), nor bulk
 * bodies.
 */

static ngx_uint_t
ngx_http_saveitem_hold(ngx_http_saveitem_pool_t *pool)
{
    int                       grow;
    ngx_uint_t                now;
    ngx_msec_t                waited, hold;
    ngx_http_saveitem_job_t  *first;

    /* a hold ends here (for the waits on saveitem_status): again below? */

    if (pool->hold_since) {
        now = ngx_http_saveitem_metrics_now();
        pool->held_us += now - pool->hold_since;
        pool->hold_since = 0;
    }

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

    pool->hold_since = ngx_http_saveitem_metrics_now();

    if (!pool->grow.timer_set) {
        ngx_add_timer(&pool->grow, hold);
    }

    return 1;
}


static void
ngx_http_saveitem_grow_handler(ngx_event_t *ev)
{
    ngx_http_saveitem_pool_dispatch(ev->data);
}


/*
 * No connection could be made: wait before the next try, and while no
 * connection is open, waiting requests fail fast with the reason
 */

static void
ngx_http_saveitem_pool_backoff(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason)
{
    pool->down = reason;
    pool->backoff = saveitem_policy_backoff(pool->backoff);

    if (!pool->retry.timer_set) {
        ngx_add_timer(&pool->retry, pool->backoff);
    }

    if (pool->nconns == 0) {
        ngx_http_saveitem_job_fail_waiting(pool, reason);
    }
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

        if (ngx_http_saveitem_conn_alive(sc) == NGX_OK) {
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_INFO, &sc->log, 0,
                      "saveitem: idle PostgreSQL connection was closed "
                      "by the server");
        ngx_http_saveitem_conn_close(sc);
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


/* the pool's gauges, for saveitem_status: written by the pool itself */

void
ngx_http_saveitem_pool_publish(ngx_http_saveitem_pool_t *pool)
{
    ngx_http_saveitem_gauges_t  st;

    st.waiting = pool->nwaiting;
    st.connecting = pool->nconnecting;
    st.idle = pool->nidle;
    st.busy = pool->nconns - pool->nidle - pool->nconnecting;
    st.queue = pool->db->queue_size;
    st.pool = pool->db->pool_size;

    ngx_http_saveitem_metrics_gauges(pool->db->counters, &st);
}
