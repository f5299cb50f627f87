
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#include <string.h>

#include "ngx_http_saveitem_policy.h"


#define saveitem_min(a, b)  ((a) < (b) ? (a) : (b))
#define saveitem_max(a, b)  ((a) > (b) ? (a) : (b))


/*
 * Group commit uses as few connections as keep up: the fewer statements
 * carry the rows, the less each row costs the server.  While "active"
 * connections are busy (inuse: busy or being opened), the first waiting
 * request is held for the first of them to finish (it takes all that
 * waits in one statement), rather than sent alone on another connection;
 * only when it has waited half as long as a statement usually takes
 * (rtt16, in 1/16 ms; at most HOLD_MAX) is one more connection used
 * (*grow).  Returns how much longer to hold it, 0: do not hold.  Half of
 * it: measured, sooner is better at 16 clients, as good at 64.  Tried
 * against this rule and not kept, each an A/B in the README ("Where the
 * time goes"): no hold, holding only under load, two connections in use
 * before any hold: none faster in every run, each slower at 256 clients
 * by 5-12% in some, or for up to 65% more database CPU a request.
 */

uintptr_t
saveitem_policy_hold(uintptr_t inuse, uintptr_t active, uintptr_t pool_size,
    uintptr_t rtt16, uintptr_t waited, int *grow)
{
    uintptr_t  usual;

    *grow = 0;

    if (inuse == 0 || inuse < active || active >= pool_size) {
        return 0;
    }

    usual = saveitem_min(saveitem_max((rtt16 + 31) / 32, 1),
                         NGX_HTTP_SAVEITEM_HOLD_MAX);

    if (waited >= usual) {
        *grow = 1;
        return 0;
    }

    return usual - waited;
}


/* a statement took "took" ms: the usual time, in 1/16 ms */

uintptr_t
saveitem_policy_rtt(uintptr_t rtt16, uintptr_t took)
{
    return rtt16 - rtt16 / NGX_HTTP_SAVEITEM_RTT_DECAY
           + saveitem_min(took, NGX_HTTP_SAVEITEM_RTT_MAX) * 2;
}


/*
 * With saveitem_batch off, how many of the waiting requests a free
 * connection takes: an equal share among the connections that can take
 * them now or once opened (only the idle ones while the database is down
 * or the pool backs off); behind a pooler (prepare=off) one transaction
 * in flight at a time.
 */

uintptr_t
saveitem_policy_share(uintptr_t waiting, uintptr_t idle, uintptr_t connecting,
    uintptr_t conns, uintptr_t pool_size, int down, int prepare)
{
    uintptr_t  slots;

    if (!prepare) {
        return 1;
    }

    slots = down ? idle : idle + connecting + pool_size - conns;

    if (slots == 0) {
        slots = 1;
    }

    return (waiting + slots - 1) / slots;
}


/* the statements of a pipeline, from the share */

uintptr_t
saveitem_policy_pipeline(uintptr_t share)
{
    return saveitem_max(saveitem_min(share, NGX_HTTP_SAVEITEM_PIPELINE), 1);
}


/*
 * A document stored (0), or refused at its INSERT for what it holds (1: a
 * data exception or a constraint, SQLSTATE class 22 or 23): the share of
 * guilty documents lately, in 1/65536, a moving average over the last 64
 * or so.
 */

uintptr_t
saveitem_policy_guilt(uintptr_t guilty, int refused)
{
    return guilty - guilty / NGX_HTTP_SAVEITEM_GUILT_DECAY
           + (refused ? NGX_HTTP_SAVEITEM_GUILT_UNIT : 0);
}


/*
 * Whether group-commit rows are sent expecting a guilty document among
 * them: from when a full isolation would likely hold one, until that is
 * less than half as likely (no flapping at the edge)
 */

int
saveitem_policy_isolating(uintptr_t guilty, int isolating)
{
    uintptr_t  likely;

    likely = guilty * NGX_HTTP_SAVEITEM_ISOLATE;

    if (!isolating && likely > NGX_HTTP_SAVEITEM_LIKELY) {
        return 1;
    }

    if (isolating && likely < NGX_HTTP_SAVEITEM_LIKELY / 2) {
        return 0;
    }

    return isolating;
}


/*
 * While isolating: the rows of a group-commit statement, at most max of
 * the waiting ones.  Where savepoints can be used, at most a full
 * isolation, and *direct when those rows would likely hold a guilty
 * document: they go straight into an isolation.  Behind a pooler
 * (prepare=off, no savepoints), statements that likely hold none.
 */

uintptr_t
saveitem_policy_guilty_rows(uintptr_t max, uintptr_t waiting,
    uintptr_t guilty, int prepare, int *direct)
{
    *direct = 0;

    if (prepare) {
        max = saveitem_min(max, NGX_HTTP_SAVEITEM_ISOLATE);
        *direct = (saveitem_min(max, waiting) * guilty
                   >= NGX_HTTP_SAVEITEM_LIKELY);
        return max;
    }

    if (guilty == 0) {
        return max;
    }

    return saveitem_min(max, saveitem_max(NGX_HTTP_SAVEITEM_LIKELY / guilty,
                                          2));
}


/* a statement of several rows that failed for this may hold one guilty */

int
saveitem_policy_retryable(const char *sqlstate)
{
    if (sqlstate == NULL) {
        return 0;
    }

    /* a statement timeout may be one slow document's */

    if (strcmp(sqlstate, "57014") == 0) {
        return 1;
    }

    /* the wrong server: no document is guilty */

    if (strcmp(sqlstate, "25006") == 0) {
        return 0;
    }

    return strncmp(sqlstate, "08", 2) != 0
           && strncmp(sqlstate, "53", 2) != 0
           && strncmp(sqlstate, "57", 2) != 0
           && strncmp(sqlstate, "XX", 2) != 0;
}


/*
 * A retryable statement of "rows" rows failed at its INSERT: the rows of
 * each statement that retries them.  One document may be guilty: they go
 * again in one transaction, a savepoint each (*isolate; one round trip,
 * one commit), or behind a pooler (prepare=off: one sync in flight, no
 * savepoints) in two halves, a half that fails again halved again.  A
 * statement timeout costs a whole timeout at each try: then one
 * statement each, pipelined, the slow one alone.
 */

uintptr_t
saveitem_policy_retry_rows(uintptr_t rows, const char *sqlstate, int prepare,
    int *isolate)
{
    uintptr_t  half;

    half = (sqlstate != NULL && strcmp(sqlstate, "57014") == 0)
           ? 1 : (rows + 1) / 2;

    *isolate = (half > 1 && prepare);

    return half;
}


/* no connection could be made: how long to wait before the next try */

uintptr_t
saveitem_policy_backoff(uintptr_t backoff)
{
    return backoff ? saveitem_min(backoff * 2, NGX_HTTP_SAVEITEM_BACKOFF_MAX)
                   : NGX_HTTP_SAVEITEM_BACKOFF_MIN;
}


/*
 * The server aborts a statement itself just before the module's own
 * timer fires (a tenth of it earlier, at most a second), so that a
 * timeout normally means "not stored"
 */

uintptr_t
saveitem_policy_statement_timeout(uintptr_t timeout)
{
    if (timeout <= 1) {
        return 1;
    }

    return timeout - saveitem_max(saveitem_min(timeout / 10, 1000), 1);
}
