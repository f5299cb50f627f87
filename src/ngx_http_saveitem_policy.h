
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_POLICY_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_POLICY_H_INCLUDED_


/*
 * Every rule that adapts to load, as a pure function: numbers in, a
 * decision out, no nginx event, request or pool inside, so that each is
 * tested on its own (util/unit).  The pool and batch code call these and
 * never re-derive a rule inline.  A constant that a benchmark chose says
 * so, with the A/B, where it is defined.
 */

#include <stddef.h>
#include <stdint.h>


/*
 * With saveitem_batch off, a connection that becomes free takes up to this
 * many waiting requests, each its own statement and transaction, as a
 * pipeline: one round trip for all of them (libpq 15 still writes each
 * at its PQpipelineSync()).  Waiting requests are shared out among the
 * connections that can take them, so a pipeline is only this deep when
 * every connection is busy.
 */
#define NGX_HTTP_SAVEITEM_PIPELINE    16

/*
 * The rows of a group-commit statement that failed for one guilty
 * document are sent again in one transaction, a savepoint each, at most
 * this many at a time: one round trip and one commit find the guilty and
 * store the others (a subtransaction each: fewer than PostgreSQL's 64
 * cached per backend)
 */
#define NGX_HTTP_SAVEITEM_ISOLATE     32

/*
 * Group commit holds a request for a busy connection no longer than this,
 * however long statements take (a slow one should not delay the others)
 */
#define NGX_HTTP_SAVEITEM_HOLD_MAX    50

/*
 * Group-commit rows go straight into an isolation, without a statement of
 * their own first, while the documents refused lately (guilty, in
 * 1/65536) make a guilty one among them likely: expected guilty documents
 * at least one half (LIKELY / 65536).  The doomed statement costs its rows
 * a round trip; the savepoints cost the server less than that.  A/B in
 * the README ("straight-to-savepoint rows"): innocent over clean 0.60-0.76
 * against 0.50-0.60 with one worker, one document in 10 refused.
 */
#define NGX_HTTP_SAVEITEM_LIKELY      32768

/* the share of guilty documents: each counts this much, 1/64 decays */
#define NGX_HTTP_SAVEITEM_GUILT_UNIT  1024
#define NGX_HTTP_SAVEITEM_GUILT_DECAY 64

/* waiting before the next connect while none can be made */
#define NGX_HTTP_SAVEITEM_BACKOFF_MIN 50
#define NGX_HTTP_SAVEITEM_BACKOFF_MAX 1000

/* a statement's usual time: a moving average over the last 8 or so */
#define NGX_HTTP_SAVEITEM_RTT_DECAY   8
#define NGX_HTTP_SAVEITEM_RTT_MAX     60000


uintptr_t saveitem_policy_hold(uintptr_t inuse, uintptr_t active,
    uintptr_t pool_size, uintptr_t rtt16, uintptr_t waited, int *grow);
uintptr_t saveitem_policy_rtt(uintptr_t rtt16, uintptr_t took);
uintptr_t saveitem_policy_share(uintptr_t waiting, uintptr_t idle,
    uintptr_t connecting, uintptr_t conns, uintptr_t pool_size, int down,
    int prepare);
uintptr_t saveitem_policy_pipeline(uintptr_t share);
uintptr_t saveitem_policy_guilt(uintptr_t guilty, int refused);
int saveitem_policy_isolating(uintptr_t guilty, int isolating);
uintptr_t saveitem_policy_guilty_rows(uintptr_t max, uintptr_t waiting,
    uintptr_t guilty, int prepare, int *direct);
int saveitem_policy_retryable(const char *sqlstate);
uintptr_t saveitem_policy_retry_rows(uintptr_t rows, const char *sqlstate,
    int prepare, int *isolate);
uintptr_t saveitem_policy_backoff(uintptr_t backoff);
uintptr_t saveitem_policy_statement_timeout(uintptr_t timeout);


#endif /* _NGX_HTTP_SAVEITEM_POLICY_H_INCLUDED_ */
