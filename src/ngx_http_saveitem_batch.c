
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * Batches: which waiting jobs go together on a connection (group commit,
 * a pipeline, an isolation a savepoint each, a bulk body and its probes),
 * the statements that carry them, and what each result means for each
 * job: its key, or why not stored.  The adaptive rules it follows are the
 * pure functions of src/ngx_http_saveitem_policy.c.
 *
 * Below the connection (src/ngx_http_saveitem_conn.c), which calls it to
 * send and to read each result; it calls only the jobs
 * (src/ngx_http_saveitem_job.c): a connection that cannot send is failed
 * by the connection, from what batch_send returns.
 */


#include "ngx_http_saveitem_pool.h"


static ngx_int_t ngx_http_saveitem_batch_send_isolated(
    ngx_http_saveitem_conn_t *sc, ngx_str_t *name, ngx_uint_t rows,
    ngx_uint_t per, ngx_http_saveitem_kind_e kind);
static ngx_int_t ngx_http_saveitem_batch_send_tx(ngx_http_saveitem_conn_t *sc,
    ngx_uint_t t);
static ngx_int_t ngx_http_saveitem_job_pk(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job, PGresult *res, int i, int col, Oid type);
static ngx_int_t ngx_http_saveitem_bulk_params(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job);
static ngx_int_t ngx_http_saveitem_bulk_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res, ngx_queue_t *q);
static ngx_int_t ngx_http_saveitem_bulk_error(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res, ngx_queue_t *q);
static ngx_int_t ngx_http_saveitem_keyed_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res, ngx_queue_t *q);
static ngx_uint_t ngx_http_saveitem_job_error(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_job_t *job, PGresult *res, ngx_uint_t owner,
    ngx_uint_t late);
static void ngx_http_saveitem_guilt(ngx_http_saveitem_pool_t *pool,
    ngx_uint_t guilty);
static void ngx_http_saveitem_batch_stamp(ngx_http_saveitem_conn_t *sc,
    ngx_uint_t each);


/* the statements of an isolation, NGX_HTTP_SAVEITEM_TX */

const char  *ngx_http_saveitem_tx[] = {
    "BEGIN",
    "SAVEPOINT saveitem",
    "ROLLBACK TO SAVEPOINT saveitem",
    "COMMIT"
};

/* the two sent for each row are prepared once per connection */

const char  *ngx_http_saveitem_tx_names[] = {
    NULL,
    "saveitem_savepoint",
    "saveitem_rollback_to",
    NULL
};


/*
 * Takes the first waiting job and those queued behind it that can share
 * its statement (group commit: what waits when a connection becomes free,
 * never more waiting), or with saveitem_batch off up to "share" of them,
 * a statement each, and hands them to libpq with any setup first (the
 * connection flushes them: see conn_send).  Every job sent is answered
 * within its own query timeout from now: the timer is not extended by the
 * results of the others.  NGX_ERROR: libpq took not all of it.
 */

ngx_int_t
ngx_http_saveitem_batch_send(ngx_http_saveitem_conn_t *sc, ngx_uint_t share)
{
    int                        direct, ok;
    u_char                    *last;
    size_t                     bytes;
    ngx_msec_t                 st;
    ngx_str_t                 *name, *sql;
    ngx_uint_t                 n, i, k, max, idx, rows, pipeline, keyed;
    ngx_uint_t                 nparams, slot, isolate, docs, per;
    const char               **params;
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
    stmt = &pool->stmts[first->stmt];

    /* a row's parameters: its document, with mapped columns the nginx
     * values, and its key */

    per = 1 + stmt->mapped + keyed;
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

        sc->params[per * n] = (const char *) job->body;

        if (stmt->mapped) {
            sc->params[per * n + 1] = (const char *) job->values;
        }

        if (keyed) {
            sc->params[per * n + per - 1] = (const char *) job->key.data;
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
    ngx_http_saveitem_batch_stamp(sc, n == 1);

    sc->state = NGX_HTTP_SAVEITEM_BUSY;
    sc->used = 1;
    sc->c->idle = 0;
    sc->c->read->cancelable = 0;
    sc->log.action = "sending to PostgreSQL";
    sc->nsettled = 0;
    sc->nulls = 0;
    sc->timedout = 0;

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
        nparams = (first->probing ? 1 : 2) + stmt->mapped;

    } else {
        kind = (keyed || stmt->upsert) ? NGX_HTTP_SAVEITEM_KEYED
                                       : NGX_HTTP_SAVEITEM_ROWS;
        idx = slot + keyed * (pool->batch_max + 1) + n;
        name = keyed ? &stmt->name_key[n] : &stmt->name[n];
        sql = keyed ? &stmt->sql_key[n] : &stmt->sql[n];
        nparams = per * n;
    }

    /*
     * The server aborts a statement itself just before the module's own
     * timer fires, so that a timeout normally means "not stored" (see
     * saveitem_policy_statement_timeout()).  SET is transactional: it gets
     * a sync of its own, as does PREPARE.
     */

    st = saveitem_policy_statement_timeout(first->timeout);

    if (pool->db->prepare
        && (sc->statement_timeout != st || !sc->prepared[idx]
            || (isolate && !sc->savepoints)))
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

            ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_SET, 0, 0);
            sc->statement_timeout = st;
        }

        if (!sc->prepared[idx]) {
            if (!PQsendPrepare(sc->pg, (char *) name->data,
                               (char *) sql->data, (int) nparams, NULL))
            {
                goto failed;
            }

            ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_PREPARE, idx,
                                           0);
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

                ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_TX, i, 1);
            }

            sc->savepoints = 1;
        }

        if (!PQpipelineSync(sc->pg)) {
            goto failed;
        }

        ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 0, 0);
    }

    if (isolate && pool->db->prepare) {
        if (ngx_http_saveitem_batch_send_isolated(sc, name, rows, per, kind)
            != NGX_OK)
        {
            goto failed;
        }

        goto sent;
    }

    if (!pool->db->prepare) {
        /*
         * prepare=off, for poolers in transaction mode: no session state.
         * The statement timeout is set for the transaction alone, in the
         * same sync as the INSERT, which is an unnamed statement; one sync
         * at a time per connection (share is 1: see pool_dispatch).
         */

        last = ngx_snprintf(set, sizeof(set) - 1, "%M", st);
        *last = '\0';
        setp = (const char *) set;
    }

    q = ngx_queue_head(&sc->jobs);

    for (i = 0; i < rows; i += n) {
        params = &sc->params[per * i];

        if (pool->db->prepare) {
            ok = PQsendQueryPrepared(sc->pg, (char *) name->data,
                                     (int) nparams, params, NULL, NULL, 0);

        } else {
            if (!PQsendQueryParams(sc->pg, "SELECT set_config("
                                   "'statement_timeout', $1, true)", 1,
                                   NULL, &setp, NULL, NULL, 0))
            {
                goto failed;
            }

            ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_SET, 0, 0);

            ok = PQsendQueryParams(sc->pg, (char *) sql->data, (int) nparams,
                                   NULL, params, NULL, NULL, 0);
        }

        if (!ok) {
            goto failed;
        }

        ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_INSERT, n, kind);

        /* from here on, the server may commit these rows */

        for (k = 0; k < n; k++, q = ngx_queue_next(q)) {
            job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);
            job->sent = 1;
        }

        if (!PQpipelineSync(sc->pg)) {
            goto failed;
        }

        ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 0, 0);
    }

sent:

    sc->timeout = first->timeout;
    sc->deadline = ngx_current_msec + first->timeout;
    ngx_add_timer(sc->c->read, first->timeout);

    return NGX_OK;

failed:

    return NGX_ERROR;
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
ngx_http_saveitem_batch_send_isolated(ngx_http_saveitem_conn_t *sc,
    ngx_str_t *name, ngx_uint_t rows, ngx_uint_t per,
    ngx_http_saveitem_kind_e kind)
{
    ngx_uint_t                i, t;
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    for (i = 0; i <= rows; i++) {

        t = (i == 0) ? NGX_HTTP_SAVEITEM_TX_BEGIN : NGX_HTTP_SAVEITEM_TX_BACK;

        if (ngx_http_saveitem_batch_send_tx(sc, t) != NGX_OK) {
            return NGX_ERROR;
        }

        if (i == rows) {
            break;
        }

        if (i == 0
            && ngx_http_saveitem_batch_send_tx(sc, NGX_HTTP_SAVEITEM_TX_SAVE)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (!PQsendQueryPrepared(sc->pg, (char *) name->data, (int) per,
                                 &sc->params[per * i], NULL, NULL, 0))
        {
            return NGX_ERROR;
        }

        ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_INSERT, 1, kind);

        if (ngx_http_saveitem_batch_send_tx(sc, NGX_HTTP_SAVEITEM_TX_SAVE)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (!PQpipelineSync(sc->pg)) {
            return NGX_ERROR;
        }

        ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 1, 0);
    }

    if (!PQsendQueryParams(sc->pg,
                           ngx_http_saveitem_tx[NGX_HTTP_SAVEITEM_TX_COMMIT],
                           0, NULL, NULL, NULL, NULL, 0))
    {
        return NGX_ERROR;
    }

    ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_COMMIT, 0, 0);

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

    ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 0, 0);

    return NGX_OK;
}


/* one of an isolation's statements: prepared where it was */

static ngx_int_t
ngx_http_saveitem_batch_send_tx(ngx_http_saveitem_conn_t *sc, ngx_uint_t t)
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

    ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_TX, t, 0);

    return NGX_OK;
}


/* what the connection is to read back, in order (see conn_results) */

void
ngx_http_saveitem_batch_expect(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_e type, ngx_uint_t arg,
    ngx_http_saveitem_kind_e kind)
{
    ngx_http_saveitem_expect_t  *e;

    if (sc->nexpect >= NGX_HTTP_SAVEITEM_EXPECT) {

        /* never: the results could not be matched (see conn_results) */

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


ngx_int_t
ngx_http_saveitem_batch_result(ngx_http_saveitem_conn_t *sc,
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
             * see batch_send_isolated).  Behind a pooler (prepare=off: one
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


/* a job whose statement did not run for its connection's fault */

void
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
        sc->params[2] = (const char *) job->values;

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
    sc->params[1] = (const char *) job->values;

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
        case 'u':
        case 'l':
            if (ngx_http_saveitem_job_pk(sc, job, res, r, 1, type) != NGX_OK) {
                return NGX_ERROR;
            }

            job->facts.replayed = (what[0] == 'r');

            /* saveitem_conflict: what the upsert did */

            job->action = (what[0] == 'u') ? NGX_HTTP_SAVEITEM_ACT_UPDATED
                          : (what[0] == 'l') ? NGX_HTTP_SAVEITEM_ACT_LEFT
                          : sc->pool->stmts[job->stmt].upsert
                            ? NGX_HTTP_SAVEITEM_ACT_INSERTED
                            : NGX_HTTP_SAVEITEM_ACT_NONE;
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

void
ngx_http_saveitem_batch_sync_error(ngx_http_saveitem_conn_t *sc, PGresult *res)
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

void
ngx_http_saveitem_batch_commit_result(ngx_http_saveitem_conn_t *sc,
    PGresult *res)
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
        ngx_http_saveitem_batch_sync_error(sc, res);
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

void
ngx_http_saveitem_batch_settle(ngx_http_saveitem_conn_t *sc)
{
    ngx_msec_t                took;
    ngx_uint_t                replayed, now;
    ngx_queue_t              *q, retry;
    ngx_http_saveitem_job_t  *job;

    ngx_queue_init(&retry);

    now = sc->nsettled ? ngx_http_saveitem_metrics_now() : 0;

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

        job->read_us = now;

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

        ngx_http_saveitem_job_answer(job);
    }

    ngx_http_saveitem_job_requeue(sc->pool, &retry);
}


/*
 * A document stored (0), or refused at its INSERT for what it holds (1: a
 * data exception or a constraint, SQLSTATE class 22 or 23), for the share
 * of guilty documents lately.  While a full isolation would likely hold
 * one, group-commit rows are sent straight into one (see batch_send), or
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
 * The jobs just sent: when, for where each waits (see metrics_waits()),
 * and the bytes of each statement: "each" job its own, or all in one
 */

static void
ngx_http_saveitem_batch_stamp(ngx_http_saveitem_conn_t *sc, ngx_uint_t each)
{
    size_t                    bytes;
    ngx_uint_t                now;
    ngx_queue_t              *q;
    ngx_http_saveitem_job_t  *job;

    now = ngx_http_saveitem_metrics_now();
    bytes = 0;

    for (q = ngx_queue_head(&sc->jobs);
         q != ngx_queue_sentinel(&sc->jobs);
         q = ngx_queue_next(q))
    {
        job = ngx_queue_data(q, ngx_http_saveitem_job_t, queue);

        job->sent_us = now;
        job->read_us = 0;
        job->held = ngx_http_saveitem_job_held(sc->pool, now) - job->held_from;

        if (each) {
            ngx_http_saveitem_metrics_bytes(sc->pool->db->counters,
                                            job->body_len);

        } else {
            bytes += job->body_len;
        }
    }

    if (!each) {
        ngx_http_saveitem_metrics_bytes(sc->pool->db->counters, bytes);
    }
}
