
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * Unit tests of the adaptive rules (src/ngx_http_saveitem_policy.c): each
 * rule's documented behaviour, its edges and its constants.  TAP output;
 * util/unit/run builds and runs it.
 */


#include <stdio.h>
#include <string.h>

#include "ngx_http_saveitem_policy.h"


static int  tests, failures;


#define is(got, want, name)                                                  \
    do {                                                                     \
        unsigned long  g_ = (unsigned long) (got);                           \
        unsigned long  w_ = (unsigned long) (want);                          \
        tests++;                                                             \
        if (g_ == w_) {                                                      \
            printf("ok %d - %s\n", tests, name);                             \
        } else {                                                             \
            failures++;                                                      \
            printf("not ok %d - %s: got %lu, want %lu (line %d)\n",          \
                   tests, name, g_, w_, __LINE__);                           \
        }                                                                    \
    } while (0)


static void
test_hold(void)
{
    int  grow;

    /* rtt16 160: 10 ms usual, held at most half of it (5 ms) */

    is(saveitem_policy_hold(0, 1, 8, 160, 0, &grow), 0,
       "hold: nothing in use, nothing to wait for");
    is(grow, 0, "hold: nothing in use, no growth");

    is(saveitem_policy_hold(1, 2, 8, 160, 0, &grow), 0,
       "hold: fewer in use than active, use another");
    is(saveitem_policy_hold(8, 8, 8, 160, 0, &grow), 0,
       "hold: the pool is all in use, nothing gained by holding");

    is(saveitem_policy_hold(1, 1, 8, 160, 0, &grow), 5,
       "hold: half the usual statement time");
    is(grow, 0, "hold: no growth while holding");
    is(saveitem_policy_hold(1, 1, 8, 160, 3, &grow), 2,
       "hold: what is left of it");

    is(saveitem_policy_hold(1, 1, 8, 160, 5, &grow), 0,
       "hold: waited long enough");
    is(grow, 1, "hold: then one more connection is used");

    is(saveitem_policy_hold(1, 1, 8, 0, 0, &grow), 1,
       "hold: at least 1 ms before anything is measured");
    is(saveitem_policy_hold(1, 1, 8, 16 * 10000, 0, &grow),
       NGX_HTTP_SAVEITEM_HOLD_MAX,
       "hold: a slow statement does not hold the others longer");
}


static void
test_rtt(void)
{
    int        i;
    uintptr_t  rtt16;

    rtt16 = 0;

    for (i = 0; i < 200; i++) {
        rtt16 = saveitem_policy_rtt(rtt16, 10);
    }

    is(rtt16 >= 16 * 10 - 8 && rtt16 <= 16 * 10, 1,
       "rtt: converges to the usual time, in 1/16 ms");

    rtt16 = saveitem_policy_rtt(0, 1000000);
    is(rtt16, 2 * NGX_HTTP_SAVEITEM_RTT_MAX,
       "rtt: one statement's time counts at most RTT_MAX");
}


static void
test_share(void)
{
    is(saveitem_policy_share(10, 1, 0, 8, 8, 0, 1), 10,
       "share: one connection idle, none to open: all of them");
    is(saveitem_policy_share(10, 1, 0, 1, 8, 0, 1), 2,
       "share: shared with the connections that can be opened");
    is(saveitem_policy_share(10, 1, 0, 1, 8, 1, 1), 10,
       "share: not with those that cannot be opened now");
    is(saveitem_policy_share(10, 1, 0, 1, 8, 0, 0), 1,
       "share: behind a pooler, one transaction in flight");
    is(saveitem_policy_share(1, 0, 0, 8, 8, 1, 1), 1,
       "share: never a division by zero");

    is(saveitem_policy_pipeline(0), 1, "pipeline: at least one");
    is(saveitem_policy_pipeline(100), NGX_HTTP_SAVEITEM_PIPELINE,
       "pipeline: at most PIPELINE");
}


static void
test_guilt(void)
{
    int        i, isolating, switched;
    uintptr_t  guilty;

    guilty = 0;

    for (i = 0; i < 1000; i++) {
        guilty = saveitem_policy_guilt(guilty, 1);
    }

    is(guilty > 65536 - 2 * 64 && guilty <= 65536, 1,
       "guilt: all refused converges to 65536");

    for (i = 0; i < 2000; i++) {
        guilty = saveitem_policy_guilt(guilty, 0);
    }

    is(guilty < 64, 1, "guilt: all stored decays towards 0");

    /* one in 10 refused: isolating; back to clean: one statement again */

    guilty = 0;
    isolating = 0;
    switched = -1;

    for (i = 0; i < 640; i++) {
        guilty = saveitem_policy_guilt(guilty, i % 10 == 0);
        isolating = saveitem_policy_isolating(guilty, isolating);

        if (isolating && switched < 0) {
            switched = i;
        }
    }

    is(isolating, 1, "guilt: one in 10 refused isolates");
    is(switched >= 0 && switched < 64, 1, "guilt: within 64 documents");

    for (i = 0; i < 200 && isolating; i++) {
        guilty = saveitem_policy_guilt(guilty, 0);
        isolating = saveitem_policy_isolating(guilty, isolating);
    }

    is(isolating, 0, "guilt: clean documents end it");
    is(i > 30, 1, "guilt: not at the first clean document");

    /* the edge: share 1/64 isolates above, stops below 1/128 */

    is(saveitem_policy_isolating(1025, 0), 1, "isolating: above 1/64");
    is(saveitem_policy_isolating(1024, 0), 0, "isolating: not at 1/64");
    is(saveitem_policy_isolating(600, 1), 1, "isolating: kept above 1/128");
    is(saveitem_policy_isolating(511, 1), 0, "isolating: ends below 1/128");
}


static void
test_guilty_rows(void)
{
    int  direct;

    is(saveitem_policy_guilty_rows(64, 64, 2048, 1, &direct),
       NGX_HTTP_SAVEITEM_ISOLATE, "guilty rows: at most an isolation");
    is(direct, 1, "guilty rows: 32 rows at 1/32 go straight in");

    is(saveitem_policy_guilty_rows(64, 4, 2048, 1, &direct),
       NGX_HTTP_SAVEITEM_ISOLATE, "guilty rows: few waiting");
    is(direct, 0, "guilty rows: 4 rows at 1/32 go as one statement");

    is(saveitem_policy_guilty_rows(64, 64, 6553, 0, &direct), 5,
       "guilty rows: behind a pooler at 1/10, 5 rows a statement");
    is(direct, 0, "guilty rows: never straight in behind a pooler");
    is(saveitem_policy_guilty_rows(64, 64, 60000, 0, &direct), 2,
       "guilty rows: behind a pooler at least 2");
    is(saveitem_policy_guilty_rows(3, 64, 6553, 0, &direct), 3,
       "guilty rows: never more than the location's rows");
    is(saveitem_policy_guilty_rows(64, 64, 0, 0, &direct), 64,
       "guilty rows: no division by zero");
}


static void
test_retry(void)
{
    int  isolate;

    is(saveitem_policy_retryable("23514"), 1, "retryable: a CHECK");
    is(saveitem_policy_retryable("22003"), 1, "retryable: a value");
    is(saveitem_policy_retryable("57014"), 1, "retryable: a timeout");
    is(saveitem_policy_retryable("25006"), 0, "retryable: not read-only");
    is(saveitem_policy_retryable("08006"), 0, "retryable: not a lost link");
    is(saveitem_policy_retryable("57P01"), 0, "retryable: not a shutdown");
    is(saveitem_policy_retryable("53100"), 0, "retryable: not a full disk");
    is(saveitem_policy_retryable("XX000"), 0, "retryable: not internal");
    is(saveitem_policy_retryable(NULL), 0, "retryable: not without one");

    is(saveitem_policy_retry_rows(10, "23514", 1, &isolate), 5,
       "retry rows: halves");
    is(isolate, 1, "retry rows: a savepoint each");
    is(saveitem_policy_retry_rows(10, "23514", 0, &isolate), 5,
       "retry rows: halves behind a pooler");
    is(isolate, 0, "retry rows: no savepoints behind a pooler");
    is(saveitem_policy_retry_rows(3, "23514", 1, &isolate), 2,
       "retry rows: rounds up");
    is(saveitem_policy_retry_rows(2, "23514", 1, &isolate), 1,
       "retry rows: two become one each");
    is(isolate, 0, "retry rows: a single row is not isolated");
    is(saveitem_policy_retry_rows(10, "57014", 1, &isolate), 1,
       "retry rows: after a timeout, one each");
    is(isolate, 0, "retry rows: after a timeout, not isolated");
}


static void
test_backoff(void)
{
    int        i;
    uintptr_t  b;

    b = saveitem_policy_backoff(0);
    is(b, NGX_HTTP_SAVEITEM_BACKOFF_MIN, "backoff: starts at MIN");
    is(saveitem_policy_backoff(b), 2 * NGX_HTTP_SAVEITEM_BACKOFF_MIN,
       "backoff: doubles");

    for (i = 0; i < 100; i++) {
        b = saveitem_policy_backoff(b);
    }

    is(b, NGX_HTTP_SAVEITEM_BACKOFF_MAX, "backoff: at most MAX");
}


static void
test_statement_timeout(void)
{
    is(saveitem_policy_statement_timeout(30000), 29000,
       "statement timeout: a second before the module's");
    is(saveitem_policy_statement_timeout(5000), 4500,
       "statement timeout: a tenth before it");
    is(saveitem_policy_statement_timeout(5), 4,
       "statement timeout: at least 1 ms before it");
    is(saveitem_policy_statement_timeout(1), 1,
       "statement timeout: at least 1 ms");
    is(saveitem_policy_statement_timeout(0), 1,
       "statement timeout: never 0 (no timeout)");
}


int
main(void)
{
    test_hold();
    test_rtt();
    test_share();
    test_guilt();
    test_guilty_rows();
    test_retry();
    test_backoff();
    test_statement_timeout();

    printf("1..%d\n", tests);

    return failures ? 1 : 0;
}
