
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * One PostgreSQL connection as a state machine: resolving -> connecting
 * -> idle -> busy -> idle, or -> closed.  libpq owns the socket; nginx
 * only watches it, level-triggered (see PITFALLS: with edge-triggered
 * events a socket that is already readable or writable gives no new
 * event).  A connection always runs in pipeline mode; what it has sent
 * is a FIFO of expected results, read here in order and handed to the
 * batch code (src/ngx_http_saveitem_batch.c) for what they mean.
 *
 * Below the pool: what the pool must know (a connection released, none
 * could be made) goes through the handlers it set (pool->released,
 * pool->connect_failed), never by a call to src/ngx_http_saveitem_pool.c.
 */


#include <sys/stat.h>

#include "ngx_http_saveitem_pool.h"


static void ngx_http_saveitem_resolved(void *data, ngx_int_t rc,
    const char *err);
static ngx_int_t ngx_http_saveitem_conn_start(ngx_http_saveitem_conn_t *sc);
static u_char *ngx_http_saveitem_conn_log(ngx_log_t *log, u_char *buf,
    size_t len);
static ngx_int_t ngx_http_saveitem_wrap(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_unwrap(ngx_http_saveitem_conn_t *sc);
static ngx_int_t ngx_http_saveitem_watch_write(ngx_http_saveitem_conn_t *sc,
    ngx_uint_t on);
static void ngx_http_saveitem_connect_handler(ngx_event_t *ev);
static void ngx_http_saveitem_connect_timedout(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_connected(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_connect_failed(ngx_http_saveitem_conn_t *sc,
    const char *reason, ngx_uint_t local);
static void ngx_http_saveitem_notice(void *arg, const PGresult *res);
static void ngx_http_saveitem_write_handler(ngx_event_t *ev);
static void ngx_http_saveitem_read_handler(ngx_event_t *ev);
static void ngx_http_saveitem_idle_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_saveitem_conn_results(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_conn_setup_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res);
static void ngx_http_saveitem_conn_catalog_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res);
static void ngx_http_saveitem_conn_catalog_free(void *data);
static void ngx_http_saveitem_set_failed(ngx_http_saveitem_conn_t *sc,
    PGresult *res);
static void ngx_http_saveitem_conn_idle(ngx_http_saveitem_conn_t *sc);
static void ngx_http_saveitem_conn_fail(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_reason_e reason, const char *why);


/*
 * Opens a connection: through nginx's resolver first where host names are
 * resolved at run time.  NGX_ERROR: nothing could be started here
 * (memory, worker_connections); the waiting jobs have been answered and
 * the pool backs off.
 */

ngx_int_t
ngx_http_saveitem_conn_open(ngx_http_saveitem_pool_t *pool)
{
    ngx_http_saveitem_db_t    *db;
    ngx_http_saveitem_conn_t  *sc;

    db = pool->db;

    sc = ngx_calloc(sizeof(ngx_http_saveitem_conn_t)
                    + ngx_http_saveitem_nparams(pool) * sizeof(const char *)
                    + pool->nstmts * ngx_http_saveitem_slots(pool),
                    pool->log);
    if (sc == NULL) {
        pool->connect_failed(pool, NGX_HTTP_SAVEITEM_R_NO_CONNECTION);
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

    ngx_http_saveitem_conn_idle(sc);
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
    ngx_http_saveitem_conn_close(sc);

    if (ngx_exiting) {
        ngx_http_saveitem_job_fail_waiting(pool, NGX_HTTP_SAVEITEM_R_EXITING);
        return;
    }

    pool->connect_failed(pool, local ? NGX_HTTP_SAVEITEM_R_NO_CONNECTION
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

ngx_int_t
ngx_http_saveitem_conn_alive(ngx_http_saveitem_conn_t *sc)
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
 * Sends what the batch code puts on the connection (it takes the jobs
 * and queues their statements in libpq), then as much of it as the
 * socket takes now; libpq asks for "writable" for the rest.
 */

void
ngx_http_saveitem_conn_send(ngx_http_saveitem_conn_t *sc, ngx_uint_t share)
{
    int  rc;

    if (ngx_http_saveitem_batch_send(sc, share) != NGX_OK) {
        goto failed;
    }

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

    switch (ngx_http_saveitem_conn_results(sc)) {

    case NGX_AGAIN:
        return;

    case NGX_OK:
        ngx_http_saveitem_conn_idle(sc);
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
        ngx_http_saveitem_conn_close(sc);
        return;
    }

    if (ev->timedout) {
        (void) ngx_http_saveitem_conn_expired(sc);
        ngx_http_saveitem_conn_close(sc);
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
        ngx_http_saveitem_conn_close(sc);
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
ngx_http_saveitem_conn_results(ngx_http_saveitem_conn_t *sc)
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
                    ngx_http_saveitem_batch_settle(sc);
                }

                break;
            }

            ngx_http_saveitem_batch_sync_error(sc, res);
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
            ngx_http_saveitem_batch_commit_result(sc, res);
            break;

        case NGX_HTTP_SAVEITEM_CATALOG:
            e->seen++;
            ngx_http_saveitem_conn_catalog_result(sc, e, res);
            break;

        case NGX_HTTP_SAVEITEM_INSERT:
            e->seen++;

            if (ngx_http_saveitem_batch_result(sc, e, res) != NGX_OK) {
                return NGX_ERROR;
            }

            break;

        default: /* SET, PREPARE */
            e->seen++;
            ngx_http_saveitem_conn_setup_result(sc, e, res);
            break;
        }

        if (PQstatus(sc->pg) != CONNECTION_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_saveitem_conn_setup_result(ngx_http_saveitem_conn_t *sc,
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
 * Mapped columns whose table the start-up check could not read (the
 * database did not answer then): an idle connection asks the catalog,
 * before the location's first statement, and again at most once a second
 * while the table does not match (each such request is answered 503
 * meanwhile: see pool_dispatch).
 */

void
ngx_http_saveitem_conn_catalog(ngx_http_saveitem_conn_t *sc, ngx_uint_t i)
{
    int                        rc;
    const char                *table;
    ngx_http_saveitem_pool_t  *pool;
    ngx_http_saveitem_stmt_t  *stmt;

    pool = sc->pool;
    stmt = &pool->stmts[i];

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &sc->log, 0,
                   "saveitem reading the columns of %V", &stmt->table);

    ngx_queue_remove(&sc->queue);
    ngx_queue_insert_tail(&pool->busy, &sc->queue);
    pool->nidle--;

    sc->state = NGX_HTTP_SAVEITEM_BUSY;
    sc->c->idle = 0;
    sc->c->read->cancelable = 0;
    sc->log.action = "reading the catalog of PostgreSQL";
    sc->nsettled = 0;
    sc->nulls = 0;
    sc->catalog = i + 1;

    stmt->reading = 1;
    stmt->read_at = ngx_current_msec;

    /* the quoted name is null-terminated: see ngx_http_saveitem_quote() */

    table = (const char *) stmt->table.data;

    if (!PQsendQueryParams(sc->pg, ngx_http_saveitem_map_catalog, 1, NULL,
                           &table, NULL, NULL, 0)
        || !PQpipelineSync(sc->pg))
    {
        goto failed;
    }

    ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_CATALOG, i, 0);
    ngx_http_saveitem_batch_expect(sc, NGX_HTTP_SAVEITEM_SYNC, 1, 0);

    sc->timeout = pool->db->connect_timeout;
    sc->deadline = ngx_current_msec + sc->timeout;
    ngx_add_timer(sc->c->read, sc->timeout);

    rc = PQflush(sc->pg);

    if (rc == -1 || ngx_http_saveitem_watch_write(sc, rc == 1) != NGX_OK) {
        goto failed;
    }

    return;

failed:

    ngx_http_saveitem_conn_fail(sc, NGX_HTTP_SAVEITEM_R_CONN_LOST, NULL);
}


static void
ngx_http_saveitem_conn_catalog_result(ngx_http_saveitem_conn_t *sc,
    ngx_http_saveitem_expect_t *e, PGresult *res)
{
    ngx_int_t                  rc;
    ngx_pool_t                *pool;
    ngx_pool_cleanup_t        *cln;
    ngx_http_saveitem_stmt_t  *stmt;

    stmt = &sc->pool->stmts[e->arg];

    stmt->reading = 0;
    sc->catalog = 0;

    if (stmt->built) {
        PQclear(res);
        return;
    }

    /* what a failed try made is freed with its pool; the reason is kept */

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, sc->pool->log);
    if (pool == NULL) {
        PQclear(res);
        return;
    }

    rc = ngx_http_saveitem_map_build(pool, stmt, e->arg, sc->pool->batch_max,
                                     res);
    PQclear(res);

    /* the statements live as long as the worker */

    if (rc == NGX_OK) {
        cln = ngx_pool_cleanup_add(ngx_cycle->pool, 0);

        if (cln == NULL) {
            stmt->built = 0;
            rc = NGX_ERROR;

        } else {
            cln->handler = ngx_http_saveitem_conn_catalog_free;
            cln->data = pool;
        }
    }

    if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, &sc->log, 0,
                      "saveitem: read the columns of %V from PostgreSQL (%V)",
                      &stmt->table, &sc->pool->db->display);
        return;
    }

    ngx_destroy_pool(pool);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, &sc->log, 0,
                      "saveitem: table %V on PostgreSQL (%V) does not match "
                      "the configuration: %V; its requests are answered 503 "
                      "until it does", &stmt->table, &sc->pool->db->display,
                      &stmt->error);
    }
}


static void
ngx_http_saveitem_conn_catalog_free(void *data)
{
    ngx_pool_t *pool = data;

    ngx_destroy_pool(pool);
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


/*
 * saveitem_database lifetime=: an older connection is closed when idle,
 * never mid-statement, so that load spreads again after a failback or a
 * name that moved while the old server is still up
 */

ngx_uint_t
ngx_http_saveitem_conn_expired(ngx_http_saveitem_conn_t *sc)
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
ngx_http_saveitem_conn_idle(ngx_http_saveitem_conn_t *sc)
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
        || ngx_http_saveitem_conn_expired(sc))
    {
        ngx_http_saveitem_conn_close(sc);
        pool->released(pool);
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

    pool->released(pool);
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

    ngx_http_saveitem_conn_close(sc);
    ngx_http_saveitem_job_requeue(pool, &retry);
    pool->released(pool);
}


void
ngx_http_saveitem_conn_close(ngx_http_saveitem_conn_t *sc)
{
    ngx_queue_t               *q;
    ngx_http_saveitem_job_t   *job;
    ngx_http_saveitem_pool_t  *pool;

    pool = sc->pool;

    if (sc->catalog) {
        pool->stmts[sc->catalog - 1].reading = 0;
    }

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
