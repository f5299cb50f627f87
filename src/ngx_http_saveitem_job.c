
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * Jobs: a job links one request to the connection that carries its
 * statement; the pool owns it, a request that ends early only detaches.
 * Taken from the pool's free list, queued in its wait queue until a
 * connection takes it (or sent again, or failed, from there), handed to
 * its request once done, and freed.  The bottom of the pool, the
 * connections and batches: it calls none of them.
 */


#include "ngx_http_saveitem_pool.h"


static void ngx_http_saveitem_wait_handler(ngx_event_t *ev);


static const char  *ngx_http_saveitem_outcomes[] = {
    "pending", "stored", "not stored", "outcome unknown"
};


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


void
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


/*
 * A job whose statement settled, answered once the handler that read the
 * result has returned: by then the connection that carried it has been
 * given what waits (conn_idle: the pool dispatches at once), so the
 * server works on the next statement while these answers are written,
 * instead of waiting for the last of them.  Posted events run in the
 * same pass of the event loop, after its timers: no timer of the job's
 * runs in between (none is set once it is sent).
 */

void
ngx_http_saveitem_job_answer(ngx_http_saveitem_job_t *job)
{
    ngx_http_saveitem_pool_t  *pool;

    pool = job->pool;

    ngx_queue_insert_tail(&pool->settled, &job->queue);

    if (!pool->answer.posted) {
        ngx_post_event(&pool->answer, &ngx_posted_events);
    }
}


void
ngx_http_saveitem_job_answer_handler(ngx_event_t *ev)
{
    ngx_queue_t               *q;
    ngx_http_saveitem_job_t   *job;
    ngx_http_saveitem_pool_t  *pool;

    pool = ev->data;

    while (!ngx_queue_empty(&pool->settled)) {
        q = ngx_queue_head(&pool->settled);
        ngx_queue_remove(q);

        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
        ngx_http_saveitem_job_done(job);
    }
}


/* hands a finished job to its request, or logs it when there is none */

void
ngx_http_saveitem_job_done(ngx_http_saveitem_job_t *job)
{
    ngx_uint_t        stored;
    static ngx_str_t  empty = ngx_null_string;

    if (job->data != NULL) {
        job->handler(job);

        if (job->read_us) {
            ngx_http_saveitem_metrics_waits(job->pool->db->counters,
                                            job->posted_us, job->held,
                                            job->sent_us, job->read_us,
                                            ngx_http_saveitem_metrics_now());
        }

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


void
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

void
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


void
ngx_http_saveitem_job_fail_waiting(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason)
{
    while (!ngx_queue_empty(&pool->waiting)) {
        ngx_http_saveitem_job_fail_head(pool, reason);
    }
}


/* the first waiting job, not stored */

void
ngx_http_saveitem_job_fail_head(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_reason_e reason)
{
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

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


/*
 * What is left of the backoff, for Retry-After: its timer may be late
 * (a busy event loop), its key then in the past
 */

ngx_msec_t
ngx_http_saveitem_retry_left(ngx_http_saveitem_pool_t *pool)
{
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (pool->retry.timer.key - ngx_current_msec);

    return left > 0 ? (ngx_msec_t) left : 0;
}


void
ngx_http_saveitem_job_forget_pk(ngx_http_saveitem_job_t *job)
{
    if (job->pk.data != NULL && job->pk.data != job->pk_buf) {
        ngx_free(job->pk.data);
    }

    ngx_str_null(&job->pk);
    job->pk_number = 0;
}


/*
 * Jobs whose statement failed before its commit go back to the head of
 * the queue, in their order, in statements of at most the rows set when
 * they failed (half of what failed), with what is left of their
 * queue_timeout; those whose request has gone are not retried (their
 * body went with the request): not stored.
 */

void
ngx_http_saveitem_job_requeue(ngx_http_saveitem_pool_t *pool,
    ngx_queue_t *jobs)
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
        job->read_us = 0;
        ngx_http_saveitem_job_wait(pool, job, 1);
    }
}


/*
 * How long the pool's hold rule has kept its queue from a connection, in
 * us, up to now: a job's share is what it grew by while the job waited
 */

ngx_uint_t
ngx_http_saveitem_job_held(ngx_http_saveitem_pool_t *pool, ngx_uint_t now)
{
    return pool->held_us + (pool->hold_since ? now - pool->hold_since : 0);
}
