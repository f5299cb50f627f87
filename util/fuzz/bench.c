
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * util/fuzz/bench.c - how fast saveitem_json_check() takes typical
 * documents (the happy path, where nothing is allocated), in CPU time:
 *
 *   cc -O2 -I src -o build/bench util/fuzz/bench.c \
 *       src/ngx_http_saveitem_check.c src/ngx_http_saveitem_json.c \
 *       -ljansson && build/bench [SECONDS]
 *
 * Prints documents/s and MB/s for each kind of document.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ngx_http_saveitem_check.h"


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static size_t
item(char *buf, size_t size, unsigned i)
{
    return (size_t) snprintf(buf, size,
        "{\"id\": %u, \"name\": \"item %u \\u00e9t\\u00e9\", "
        "\"price\": %u.%02u, \"ratio\": -1.25e-3, \"tags\": [\"a\", \"bc\", "
        "\"d\\\"e\"], \"ok\": true, \"none\": null, \"nested\": {\"x\": "
        "[1, 2, 3, {\"y\": \"caf\xc3\xa9\"}], \"big\": 12345678901234567890}}",
        i, i, i % 1000, i % 100);
}


static void
run(const char *name, const unsigned char *doc, size_t len, double seconds)
{
    int                     rc;
    double                  t0, t;
    unsigned long           n;
    saveitem_json_error_t   err;

    n = 0;
    t0 = now();

    do {
        for (int k = 0; k < 64; k++) {
            rc = saveitem_json_check(doc, len, &err);

            if (rc != SAVEITEM_JSON_OK) {
                fprintf(stderr, "%s: not OK (%d): %s\n", name, rc,
                        err.message);
                exit(1);
            }
        }

        n += 64;
        t = now() - t0;

    } while (t < seconds);

    printf("%-24s %8zu bytes %10.0f docs/s %8.1f MB/s\n", name, len,
           n / t, n * (double) len / t / 1e6);
}


int
main(int argc, char **argv)
{
    char     *big;
    size_t    n, len;
    unsigned  i;
    double    seconds;
    char      small[512];

    seconds = argc > 1 ? atof(argv[1]) : 1.0;

    len = item(small, sizeof(small), 42);
    run("one item", (unsigned char *) small, len, seconds);

    run("small object", (unsigned char *) "{\"a\": 1, \"b\": \"two\"}", 20,
        seconds);

    big = malloc(1 << 20);
    if (big == NULL) {
        return 1;
    }

    len = 0;
    big[len++] = '[';

    for (i = 0; len < (1 << 20) - 1024; i++) {
        if (i) {
            big[len++] = ',';
        }

        n = item(big + len, 1024, i);
        len += n;
    }

    big[len++] = ']';
    run("1 MB of items", (unsigned char *) big, len, seconds);

    len = 0;
    big[len++] = '[';

    for (i = 0; len < (1 << 20) - 64; i++) {
        len += (size_t) snprintf(big + len, 64, "%s%u.%u", i ? "," : "",
                                 i * 7919, i % 10);
    }

    big[len++] = ']';
    run("1 MB of numbers", (unsigned char *) big, len, seconds);

    free(big);

    return 0;
}
