
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * Counters for saveitem_status, in Prometheus' text format (0.0.4).
 *
 * One shared-memory zone, "saveitem_status", holds a block of counters
 * per database, found again by its label when nginx reloads: the zone is
 * declared with the same name, size and tag, so nginx hands the old one
 * to the new cycle, and the counters go on (as stub_status's do).
 * Workers add to them atomically: no lock, no allocation.
 *
 * Gauges (waiting requests, connections) are each worker's own: a worker
 * claims a slot at start, its pools write their figures there
 * (ngx_http_saveitem_metrics_gauges()), and it zeroes the slot at exit; a
 * worker that died without exiting leaves its slot to the next worker
 * that starts.  The reader sums the slots.
 *
 * A leaf: the owners of the figures write them, the status page's
 * handler asks for the text; nothing here calls out of this file but
 * nginx.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_saveitem_metrics.h"


/* workers alive at once, old ones of a reload included */
#define NGX_HTTP_SAVEITEM_METRICS_SLOTS    128

/* statuses 100 to 599 */
#define NGX_HTTP_SAVEITEM_METRICS_CODES    500

/* SQLSTATE classes, two of [0-9A-Z]; and one for anything else */
#define NGX_HTTP_SAVEITEM_METRICS_CLASSES  (36 * 36 + 1)

#define NGX_HTTP_SAVEITEM_METRICS_ROWS     12
#define NGX_HTTP_SAVEITEM_METRICS_TIMES    14

/* a request's waits: queued, held, in flight, answering; the total */
#define NGX_HTTP_SAVEITEM_METRICS_STAGES   5
#define NGX_HTTP_SAVEITEM_METRICS_WAITS    19
#define NGX_HTTP_SAVEITEM_METRICS_BYTES    10
/* content codings of request bodies: gzip, deflate, zstd */
#define NGX_HTTP_SAVEITEM_METRICS_CODINGS  3

/* at least; the same size across reloads keeps the counters */
#define NGX_HTTP_SAVEITEM_METRICS_ZONE     (1024 * 1024)


/* one database, in the zone */

struct ngx_http_saveitem_counters_s {
    ngx_queue_t                   queue;
    ngx_str_t                     label;      /* escaped, after the block */

    ngx_atomic_t                  requests[NGX_HTTP_SAVEITEM_METRICS_CODES];
    ngx_atomic_t                  rows;       /* stored */
    ngx_atomic_t                  rows_sent;  /* in statements sent */
    ngx_atomic_t                  sizes[NGX_HTTP_SAVEITEM_METRICS_ROWS];
    ngx_atomic_t                  times[NGX_HTTP_SAVEITEM_METRICS_TIMES];
    ngx_atomic_t                  time_sum;   /* ms */
    ngx_atomic_t                  waits[NGX_HTTP_SAVEITEM_METRICS_STAGES]
                                       [NGX_HTTP_SAVEITEM_METRICS_WAITS];
    ngx_atomic_t                  wait_sums[NGX_HTTP_SAVEITEM_METRICS_STAGES];
    ngx_atomic_t                  bytes[NGX_HTTP_SAVEITEM_METRICS_BYTES];
    ngx_atomic_t                  bytes_sum;
    ngx_atomic_t                  connect_failures;
    ngx_atomic_t                  errors[NGX_HTTP_SAVEITEM_METRICS_CLASSES];

    ngx_http_saveitem_gauges_t    slots[NGX_HTTP_SAVEITEM_METRICS_SLOTS];

    ngx_atomic_t                  coded_in[NGX_HTTP_SAVEITEM_METRICS_CODINGS];
    ngx_atomic_t                  coded_out[NGX_HTTP_SAVEITEM_METRICS_CODINGS];
    ngx_atomic_t                  refused[NGX_HTTP_SAVEITEM_METRICS_CODINGS];
};


typedef struct {
    ngx_queue_t                   counters;   /* every block ever made */
    ngx_atomic_t                  pids[NGX_HTTP_SAVEITEM_METRICS_SLOTS];
} ngx_http_saveitem_metrics_sh_t;


struct ngx_http_saveitem_metrics_s {
    ngx_http_saveitem_metrics_sh_t  *sh;
    ngx_slab_pool_t                 *shpool;
    ngx_http_saveitem_main_conf_t   *smcf;
    ngx_str_t                       *labels;  /* [smcf->dbs.nelts] */
};


typedef enum {
    NGX_HTTP_SAVEITEM_M_REQUESTS = 0,
    NGX_HTTP_SAVEITEM_M_ROWS,
    NGX_HTTP_SAVEITEM_M_STATEMENTS,
    NGX_HTTP_SAVEITEM_M_ROWS_HIST,
    NGX_HTTP_SAVEITEM_M_TIMES_HIST,
    NGX_HTTP_SAVEITEM_M_BYTES_HIST,
    NGX_HTTP_SAVEITEM_M_WAITS_HIST,
    NGX_HTTP_SAVEITEM_M_REQUEST_HIST,
    NGX_HTTP_SAVEITEM_M_CONNECT_FAILURES,
    NGX_HTTP_SAVEITEM_M_ERRORS,
    NGX_HTTP_SAVEITEM_M_CONNECTIONS,
    NGX_HTTP_SAVEITEM_M_GAUGE,
    NGX_HTTP_SAVEITEM_M_CODING
} ngx_http_saveitem_what_e;


/* a metric family: its name, type, help, and where its values are */

typedef struct {
    char                         *name;
    char                         *type;
    char                         *help;
    ngx_http_saveitem_what_e      what;
    size_t                        offset;     /* of a gauge, or of
                                                 counters by coding */
} ngx_http_saveitem_family_t;


static ngx_int_t ngx_http_saveitem_metrics_init_zone(ngx_shm_zone_t *zone,
    void *data);
static ngx_int_t ngx_http_saveitem_metrics_label(ngx_conf_t *cf,
    ngx_http_saveitem_db_t **dbp, ngx_uint_t n, ngx_str_t *label);
static void ngx_http_saveitem_metrics_reclaim(ngx_http_saveitem_metrics_t *m);
static void ngx_http_saveitem_metrics_zero(ngx_http_saveitem_metrics_t *m,
    ngx_uint_t slot);
static void ngx_http_saveitem_metrics_copy(ngx_http_saveitem_counters_t *dst,
    ngx_http_saveitem_counters_t *src);
static u_char *ngx_http_saveitem_metrics_samples(u_char *p, u_char *last,
    ngx_http_saveitem_family_t *fm, ngx_http_saveitem_counters_t *mc);
static ngx_atomic_uint_t ngx_http_saveitem_metrics_gauge(
    ngx_http_saveitem_counters_t *mc, size_t offset);
static u_char *ngx_http_saveitem_metrics_histogram(u_char *p, u_char *last,
    const char *name, ngx_str_t *label, ngx_atomic_t *buckets,
    const char **les, ngx_uint_t n, ngx_atomic_uint_t sum, ngx_uint_t ms);
static void ngx_http_saveitem_metrics_wait(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t stage, ngx_uint_t us);
static u_char *ngx_http_saveitem_metrics_wait_text(u_char *p, u_char *last,
    const char *name, ngx_http_saveitem_counters_t *mc, ngx_uint_t stage);


/* this worker's slot for its gauges; -1: none */

static ngx_int_t  ngx_http_saveitem_metrics_slot = -1;


/* the upper bounds of the histograms' buckets; the last is +Inf */

static ngx_uint_t  ngx_http_saveitem_metrics_rows_le[] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000
};

static const char  *ngx_http_saveitem_metrics_rows_les[] = {
    "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1000", "+Inf"
};

static ngx_msec_t  ngx_http_saveitem_metrics_times_le[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

static const char  *ngx_http_saveitem_metrics_times_les[] = {
    "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10", "+Inf"
};

/* microseconds */

static ngx_uint_t  ngx_http_saveitem_metrics_waits_le[] = {
    25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000
};

static const char  *ngx_http_saveitem_metrics_waits_les[] = {
    "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "+Inf"
};

/* the label of each stage; the total has none (its own family) */

static const char  *ngx_http_saveitem_metrics_stages[] = {
    ",stage=\"queued\"", ",stage=\"held\"", ",stage=\"in_flight\"",
    ",stage=\"answering\"", ""
};

static size_t  ngx_http_saveitem_metrics_bytes_le[] = {
    256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216
};

static const char  *ngx_http_saveitem_metrics_bytes_les[] = {
    "256", "1024", "4096", "16384", "65536", "262144", "1048576", "4194304",
    "16777216", "+Inf"
};


static ngx_http_saveitem_family_t  ngx_http_saveitem_families[] = {

    { "saveitem_requests_total", "counter",
      "Requests answered in saveitem locations, by HTTP status "
      "(499: the client left first).",
      NGX_HTTP_SAVEITEM_M_REQUESTS, 0 },

    { "saveitem_rows_total", "counter",
      "Rows stored: committed, their keys given (or logged, the client gone).",
      NGX_HTTP_SAVEITEM_M_ROWS, 0 },

    { "saveitem_statements_total", "counter",
      "INSERT statements sent.",
      NGX_HTTP_SAVEITEM_M_STATEMENTS, 0 },

    { "saveitem_statement_rows", "histogram",
      "Rows per INSERT statement sent.",
      NGX_HTTP_SAVEITEM_M_ROWS_HIST, 0 },

    { "saveitem_statement_seconds", "histogram",
      "Time from sending a statement to its commit or error.",
      NGX_HTTP_SAVEITEM_M_TIMES_HIST, 0 },

    { "saveitem_statement_bytes", "histogram",
      "Bytes of the documents in each INSERT statement sent.",
      NGX_HTTP_SAVEITEM_M_BYTES_HIST, 0 },

    { "saveitem_request_wait_seconds", "histogram",
      "Where requests answered after their statement's result waited: "
      "from the body read to the statement sent, queued (no connection "
      "free) or held (by the hold rule, for a fuller batch); in_flight "
      "(statement sent to its result read); answering (result read to "
      "answer written).",
      NGX_HTTP_SAVEITEM_M_WAITS_HIST, 0 },

    { "saveitem_request_seconds", "histogram",
      "Time from the body read to the answer written, for requests "
      "answered after their statement's result.",
      NGX_HTTP_SAVEITEM_M_REQUEST_HIST, 0 },

    { "saveitem_connect_failures_total", "counter",
      "Connections to PostgreSQL that could not be opened.",
      NGX_HTTP_SAVEITEM_M_CONNECT_FAILURES, 0 },

    { "saveitem_errors_total", "counter",
      "Errors PostgreSQL returned for statements, by SQLSTATE class.",
      NGX_HTTP_SAVEITEM_M_ERRORS, 0 },

    { "saveitem_waiting", "gauge",
      "Requests waiting for a connection, over all workers.",
      NGX_HTTP_SAVEITEM_M_GAUGE,
      offsetof(ngx_http_saveitem_gauges_t, waiting) },

    { "saveitem_queue_size", "gauge",
      "Requests that may wait beyond the free connections "
      "(saveitem_database queue=), over all workers.",
      NGX_HTTP_SAVEITEM_M_GAUGE,
      offsetof(ngx_http_saveitem_gauges_t, queue) },

    { "saveitem_pool_size", "gauge",
      "Connections the pools may open (saveitem_database pool=), "
      "over all workers.",
      NGX_HTTP_SAVEITEM_M_GAUGE,
      offsetof(ngx_http_saveitem_gauges_t, pool) },

    { "saveitem_connections", "gauge",
      "Connections to PostgreSQL by state, over all workers.",
      NGX_HTTP_SAVEITEM_M_CONNECTIONS, 0 },

    { "saveitem_compressed_bytes_total", "counter",
      "Bytes of compressed request bodies read, by content coding.",
      NGX_HTTP_SAVEITEM_M_CODING,
      offsetof(ngx_http_saveitem_counters_t, coded_in) },

    { "saveitem_decompressed_bytes_total", "counter",
      "Bytes that compressed request bodies decompressed to, by content "
      "coding (a refused body: its limit and one byte).",
      NGX_HTTP_SAVEITEM_M_CODING,
      offsetof(ngx_http_saveitem_counters_t, coded_out) },

    { "saveitem_decompress_refused_total", "counter",
      "Compressed request bodies refused because they decompress to more "
      "than saveitem_decompressed_max_size, by content coding.",
      NGX_HTTP_SAVEITEM_M_CODING,
      offsetof(ngx_http_saveitem_counters_t, refused) },

    { NULL, NULL, NULL, 0, 0 }
};


/* a line of one sample, at most, beyond its label */
#define NGX_HTTP_SAVEITEM_METRICS_LINE                                       \
    (sizeof("saveitem_statement_seconds_bucket{database=\"\",le=\"+Inf\"} ")  \
     + NGX_ATOMIC_T_LEN + 8)

/* the same, of a request's wait by stage */
#define NGX_HTTP_SAVEITEM_METRICS_WAIT_LINE                                  \
    (sizeof("saveitem_request_wait_seconds_bucket{database=\"\","            \
            "stage=\"answering\",le=\"0.000025\"} ")                         \
     + NGX_ATOMIC_T_LEN + 8)

/* the HELP and TYPE lines of a family, at most */
#define NGX_HTTP_SAVEITEM_METRICS_HEAD  400


ngx_int_t
ngx_http_saveitem_metrics_conf(ngx_conf_t *cf,
    ngx_http_saveitem_main_conf_t *smcf)
{
    size_t                         size;
    ngx_str_t                      name;
    ngx_uint_t                     i;
    ngx_shm_zone_t                *zone;
    ngx_http_saveitem_db_t       **dbp;
    ngx_http_saveitem_metrics_t   *m;

    m = ngx_pcalloc(cf->pool, sizeof(ngx_http_saveitem_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    m->smcf = smcf;

    m->labels = ngx_pcalloc(cf->pool, smcf->dbs.nelts * sizeof(ngx_str_t));
    if (m->labels == NULL) {
        return NGX_ERROR;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (ngx_http_saveitem_metrics_label(cf, dbp, i, &m->labels[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /*
     * room for the blocks of databases that come and go over reloads (an
     * old block stays: old workers may still write to it); the same size
     * for the same number of databases
     */

    size = 4 * smcf->dbs.nelts * sizeof(ngx_http_saveitem_counters_t);
    size = ngx_max(ngx_align(size, NGX_HTTP_SAVEITEM_METRICS_ZONE),
                   NGX_HTTP_SAVEITEM_METRICS_ZONE);

    ngx_str_set(&name, "saveitem_status");

    zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_saveitem_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_saveitem_metrics_init_zone;
    zone->data = m;

    smcf->metrics = m;

    return NGX_OK;
}


/*
 * The label of a database: its description without secrets, escaped as
 * Prometheus wants label values; the second database with the same
 * description (another password, say) gets " #2" after it, and so on.
 */

static ngx_int_t
ngx_http_saveitem_metrics_label(ngx_conf_t *cf, ngx_http_saveitem_db_t **dbp,
    ngx_uint_t n, ngx_str_t *label)
{
    u_char      *p;
    ngx_str_t   *display;
    ngx_uint_t   i, same;

    display = &dbp[n]->display;
    same = 0;

    for (i = 0; i < n; i++) {
        if (dbp[i]->display.len == display->len
            && ngx_strncmp(dbp[i]->display.data, display->data,
                           display->len) == 0)
        {
            same++;
        }
    }

    p = ngx_pnalloc(cf->pool, 2 * display->len + sizeof(" #") + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    label->data = p;

    for (i = 0; i < display->len; i++) {

        switch (display->data[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = display->data[i];
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = display->data[i];
        }
    }

    if (same) {
        p = ngx_sprintf(p, " #%ui", same + 1);
    }

    label->len = p - label->data;

    return NGX_OK;
}


/*
 * In the master, at start and at each reload: the zone is new (then it
 * gets its list and slot table), or the old cycle's, whose blocks are
 * found again by label.  The list is changed under the zone's mutex:
 * old workers, exiting, walk it meanwhile (metrics_zero()).
 */

static ngx_int_t
ngx_http_saveitem_metrics_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_saveitem_metrics_t *om = data;

    size_t                         size;
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    ngx_http_saveitem_db_t       **dbp;
    ngx_http_saveitem_counters_t  *mc;
    ngx_http_saveitem_metrics_t   *m;

    m = zone->data;
    m->shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (om) {
        m->sh = om->sh;

    } else if (zone->shm.exists) {
        m->sh = m->shpool->data;

    } else {
        m->sh = ngx_slab_calloc(m->shpool,
                                sizeof(ngx_http_saveitem_metrics_sh_t));
        if (m->sh == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_init(&m->sh->counters);
        m->shpool->data = m->sh;
    }

    dbp = m->smcf->dbs.elts;

    ngx_shmtx_lock(&m->shpool->mutex);

    for (i = 0; i < m->smcf->dbs.nelts; i++) {

        for (q = ngx_queue_head(&m->sh->counters);
             q != ngx_queue_sentinel(&m->sh->counters);
             q = ngx_queue_next(q))
        {
            mc = ngx_queue_data(q, ngx_http_saveitem_counters_t, queue);

            if (mc->label.len == m->labels[i].len
                && ngx_strncmp(mc->label.data, m->labels[i].data,
                               mc->label.len) == 0)
            {
                goto found;
            }
        }

        size = sizeof(ngx_http_saveitem_counters_t) + m->labels[i].len;

        mc = ngx_slab_calloc_locked(m->shpool, size);
        if (mc == NULL) {
            ngx_shmtx_unlock(&m->shpool->mutex);

            ngx_log_error(NGX_LOG_EMERG, zone->shm.log, 0,
                          "saveitem: no room for the counters of database "
                          "%V in the zone \"saveitem_status\": restart nginx",
                          &dbp[i]->display);
            return NGX_ERROR;
        }

        mc->label.data = (u_char *) &mc[1];
        mc->label.len = m->labels[i].len;
        ngx_memcpy(mc->label.data, m->labels[i].data, mc->label.len);

        ngx_queue_insert_tail(&m->sh->counters, &mc->queue);

    found:

        dbp[i]->counters = mc;
    }

    ngx_shmtx_unlock(&m->shpool->mutex);

    return NGX_OK;
}


/*
 * A worker takes a slot for its gauges (its pools write them).  Slots
 * are reclaimed, taken and freed under the zone's mutex, so that a slot
 * is zeroed only while its owner is dead, never once it is taken again.
 */

ngx_int_t
ngx_http_saveitem_metrics_init_process(ngx_cycle_t *cycle,
    ngx_http_saveitem_main_conf_t *smcf)
{
    ngx_uint_t                    i;
    ngx_http_saveitem_metrics_t  *m;

    m = smcf->metrics;

    if (m == NULL || m->sh == NULL) {
        return NGX_OK;
    }

    ngx_shmtx_lock(&m->shpool->mutex);

    ngx_http_saveitem_metrics_reclaim(m);

    for (i = 0; i < NGX_HTTP_SAVEITEM_METRICS_SLOTS; i++) {
        if (m->sh->pids[i] == 0) {
            m->sh->pids[i] = (ngx_atomic_uint_t) ngx_pid;
            ngx_http_saveitem_metrics_slot = i;
            break;
        }
    }

    ngx_shmtx_unlock(&m->shpool->mutex);

    if (ngx_http_saveitem_metrics_slot == -1) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "saveitem: more than %d workers at once, the gauges "
                      "of this one are not counted",
                      NGX_HTTP_SAVEITEM_METRICS_SLOTS);
    }

    return NGX_OK;
}


void
ngx_http_saveitem_metrics_exit_process(ngx_cycle_t *cycle,
    ngx_http_saveitem_main_conf_t *smcf)
{
    ngx_http_saveitem_metrics_t  *m;

    m = smcf->metrics;

    if (m == NULL || ngx_http_saveitem_metrics_slot == -1) {
        return;
    }

    ngx_shmtx_lock(&m->shpool->mutex);

    ngx_http_saveitem_metrics_zero(m, ngx_http_saveitem_metrics_slot);
    m->sh->pids[ngx_http_saveitem_metrics_slot] = 0;

    ngx_shmtx_unlock(&m->shpool->mutex);

    ngx_http_saveitem_metrics_slot = -1;
}


/*
 * The slots of workers that died without exiting (the master restarts
 * them), with the zone's mutex held; a slot with this worker's own pid is
 * a dead one's whose pid came again (this worker has none yet)
 */

static void
ngx_http_saveitem_metrics_reclaim(ngx_http_saveitem_metrics_t *m)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  pid;

    for (i = 0; i < NGX_HTTP_SAVEITEM_METRICS_SLOTS; i++) {
        pid = m->sh->pids[i];

        if (pid == 0) {
            continue;
        }

        if ((ngx_pid_t) pid != ngx_pid
            && (kill((ngx_pid_t) pid, 0) == 0 || ngx_errno != NGX_ESRCH))
        {
            continue;
        }

        ngx_http_saveitem_metrics_zero(m, i);
        m->sh->pids[i] = 0;
    }
}


/* with the zone's mutex held: the master may add to the list */

static void
ngx_http_saveitem_metrics_zero(ngx_http_saveitem_metrics_t *m,
    ngx_uint_t slot)
{
    ngx_queue_t                   *q;
    ngx_http_saveitem_counters_t  *mc;

    for (q = ngx_queue_head(&m->sh->counters);
         q != ngx_queue_sentinel(&m->sh->counters);
         q = ngx_queue_next(q))
    {
        mc = ngx_queue_data(q, ngx_http_saveitem_counters_t, queue);
        ngx_memzero(&mc->slots[slot], sizeof(ngx_http_saveitem_gauges_t));
    }
}


/* a pool's figures, as its owner writes them, into this worker's slot */

void
ngx_http_saveitem_metrics_gauges(ngx_http_saveitem_counters_t *mc,
    ngx_http_saveitem_gauges_t *st)
{
    ngx_http_saveitem_gauges_t  *g;

    if (ngx_http_saveitem_metrics_slot == -1) {
        return;
    }

    g = &mc->slots[ngx_http_saveitem_metrics_slot];

    g->waiting = st->waiting;
    g->connecting = st->connecting;
    g->idle = st->idle;
    g->busy = st->busy;
    g->queue = st->queue;
    g->pool = st->pool;
}


void
ngx_http_saveitem_metrics_request(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t status)
{
    if (status >= 100 && status < 100 + NGX_HTTP_SAVEITEM_METRICS_CODES) {
        (void) ngx_atomic_fetch_add(&mc->requests[status - 100], 1);
    }
}


/* "statements" statements of "rows" rows each */

void
ngx_http_saveitem_metrics_sent(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t statements, ngx_uint_t rows)
{
    ngx_uint_t  i;

    for (i = 0;
         i < NGX_HTTP_SAVEITEM_METRICS_ROWS - 1
         && rows > ngx_http_saveitem_metrics_rows_le[i];
         i++)
    {
        /* void */
    }

    (void) ngx_atomic_fetch_add(&mc->sizes[i], statements);
    (void) ngx_atomic_fetch_add(&mc->rows_sent, statements * rows);
}


/* a statement's commit (or error) arrived, ms after it was sent */

void
ngx_http_saveitem_metrics_result(ngx_http_saveitem_counters_t *mc,
    ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0;
         i < NGX_HTTP_SAVEITEM_METRICS_TIMES - 1
         && ms > ngx_http_saveitem_metrics_times_le[i];
         i++)
    {
        /* void */
    }

    (void) ngx_atomic_fetch_add(&mc->times[i], 1);
    (void) ngx_atomic_fetch_add(&mc->time_sum, ms);
}


void
ngx_http_saveitem_metrics_stored(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t rows)
{
    (void) ngx_atomic_fetch_add(&mc->rows, rows);
}


void
ngx_http_saveitem_metrics_connect_failed(ngx_http_saveitem_counters_t *mc)
{
    (void) ngx_atomic_fetch_add(&mc->connect_failures, 1);
}


void
ngx_http_saveitem_metrics_error(ngx_http_saveitem_counters_t *mc,
    const char *sqlstate)
{
    ngx_uint_t  i, k, c;

    k = 0;

    for (i = 0; sqlstate != NULL && i < 2; i++) {
        c = (u_char) sqlstate[i];

        if (c >= '0' && c <= '9') {
            k = k * 36 + c - '0';

        } else if (c >= 'A' && c <= 'Z') {
            k = k * 36 + c - 'A' + 10;

        } else {
            break;
        }
    }

    if (i < 2) {
        k = NGX_HTTP_SAVEITEM_METRICS_CLASSES - 1;
    }

    (void) ngx_atomic_fetch_add(&mc->errors[k], 1);
}


void
ngx_http_saveitem_metrics_decoded(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t coding, size_t in, size_t out, ngx_uint_t refused)
{
    if (coding >= NGX_HTTP_SAVEITEM_METRICS_CODINGS) {
        return;
    }

    (void) ngx_atomic_fetch_add(&mc->coded_in[coding], in);
    (void) ngx_atomic_fetch_add(&mc->coded_out[coding], out);

    if (refused) {
        (void) ngx_atomic_fetch_add(&mc->refused[coding], 1);
    }
}


/*
 * The clock of a request's waits: a monotonic one, read when asked (the
 * event loop's cached ngx_current_msec has whole milliseconds, and does
 * not move while a result's requests are answered one after another);
 * through the vDSO, some tens of nanoseconds
 */

ngx_uint_t
ngx_http_saveitem_metrics_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (ngx_uint_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/*
 * A request answered: its moments, from the same clock, in order, and
 * how long of its wait before the send the hold rule held it
 */

void
ngx_http_saveitem_metrics_waits(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t posted, ngx_uint_t held, ngx_uint_t sent, ngx_uint_t read,
    ngx_uint_t answered)
{
    held = ngx_min(held, sent - posted);

    ngx_http_saveitem_metrics_wait(mc, 0, sent - posted - held);
    ngx_http_saveitem_metrics_wait(mc, 1, held);
    ngx_http_saveitem_metrics_wait(mc, 2, read - sent);
    ngx_http_saveitem_metrics_wait(mc, 3, answered - read);
    ngx_http_saveitem_metrics_wait(mc, 4, answered - posted);
}


static void
ngx_http_saveitem_metrics_wait(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t stage, ngx_uint_t us)
{
    ngx_uint_t  i;

    for (i = 0;
         i < NGX_HTTP_SAVEITEM_METRICS_WAITS - 1
         && us > ngx_http_saveitem_metrics_waits_le[i];
         i++)
    {
        /* void */
    }

    (void) ngx_atomic_fetch_add(&mc->waits[stage][i], 1);
    (void) ngx_atomic_fetch_add(&mc->wait_sums[stage], us);
}


/* a statement sent, with "bytes" of documents */

void
ngx_http_saveitem_metrics_bytes(ngx_http_saveitem_counters_t *mc,
    size_t bytes)
{
    ngx_uint_t  i;

    for (i = 0;
         i < NGX_HTTP_SAVEITEM_METRICS_BYTES - 1
         && bytes > ngx_http_saveitem_metrics_bytes_le[i];
         i++)
    {
        /* void */
    }

    (void) ngx_atomic_fetch_add(&mc->bytes[i], 1);
    (void) ngx_atomic_fetch_add(&mc->bytes_sum, bytes);
}


/*
 * saveitem_status: every family with its HELP and TYPE lines, then its
 * samples for each database of this configuration.  The reader only
 * reads the zone: a copy of each block, taken first, so that a code or
 * a class that other workers count for the first time meanwhile cannot
 * outgrow the buffer sized for the copy, and cut a line.  The text is
 * built in one buffer from the pool given; NULL: no memory.
 */

ngx_buf_t *
ngx_http_saveitem_metrics_text(ngx_http_saveitem_main_conf_t *smcf,
    ngx_pool_t *pool)
{
    size_t                          size;
    ngx_buf_t                      *b;
    ngx_uint_t                      i, k, lines;
    ngx_http_saveitem_db_t        **dbp;
    ngx_http_saveitem_family_t     *fm;
    ngx_http_saveitem_counters_t   *mc, *copy;

    /* the size: the heads, and the lines that have a value */

    size = 0;

    for (fm = ngx_http_saveitem_families; fm->name; fm++) {
        size += NGX_HTTP_SAVEITEM_METRICS_HEAD;
    }

    dbp = smcf->dbs.elts;

    copy = ngx_palloc(pool,
                      smcf->dbs.nelts * sizeof(ngx_http_saveitem_counters_t));
    if (copy == NULL) {
        return NULL;
    }

    for (i = 0; i < smcf->dbs.nelts; i++) {
        mc = &copy[i];
        ngx_http_saveitem_metrics_copy(mc, dbp[i]->counters);

        lines = NGX_HTTP_SAVEITEM_METRICS_ROWS + NGX_HTTP_SAVEITEM_METRICS_TIMES
                + 4 + 10;

        lines += 3 * NGX_HTTP_SAVEITEM_METRICS_CODINGS;

        for (k = 0; k < NGX_HTTP_SAVEITEM_METRICS_CODES; k++) {
            lines += (mc->requests[k] != 0);
        }

        for (k = 0; k < NGX_HTTP_SAVEITEM_METRICS_CLASSES; k++) {
            lines += (mc->errors[k] != 0);
        }

        lines += NGX_HTTP_SAVEITEM_METRICS_BYTES + 2;

        size += lines * (NGX_HTTP_SAVEITEM_METRICS_LINE + mc->label.len);

        size += NGX_HTTP_SAVEITEM_METRICS_STAGES
                * (NGX_HTTP_SAVEITEM_METRICS_WAITS + 2)
                * (NGX_HTTP_SAVEITEM_METRICS_WAIT_LINE + mc->label.len);
    }

    b = ngx_create_temp_buf(pool, size);
    if (b == NULL) {
        return NULL;
    }

    for (fm = ngx_http_saveitem_families; fm->name; fm++) {
        b->last = ngx_slprintf(b->last, b->end, "# HELP %s %s\n# TYPE %s %s\n",
                               fm->name, fm->help, fm->name, fm->type);

        for (i = 0; i < smcf->dbs.nelts; i++) {
            b->last = ngx_http_saveitem_metrics_samples(b->last, b->end, fm,
                                                        &copy[i]);
        }
    }

    return b;
}


/*
 * A block as it is now, word by word (each an atomic read): counters only
 * grow, so the copy is a consistent enough snapshot for one scrape
 */

static void
ngx_http_saveitem_metrics_copy(ngx_http_saveitem_counters_t *dst,
    ngx_http_saveitem_counters_t *src)
{
    ngx_uint_t     i, n;
    ngx_atomic_t  *s, *d;

    dst->label = src->label;

    s = src->requests;
    d = dst->requests;
    n = (sizeof(ngx_http_saveitem_counters_t)
         - offsetof(ngx_http_saveitem_counters_t, requests))
        / sizeof(ngx_atomic_t);

    for (i = 0; i < n; i++) {
        d[i] = s[i];
    }
}


/* the samples of one family for one database */

static u_char *
ngx_http_saveitem_metrics_samples(u_char *p, u_char *last,
    ngx_http_saveitem_family_t *fm, ngx_http_saveitem_counters_t *mc)
{
    ngx_uint_t         k;
    ngx_atomic_uint_t  v;
    u_char             class[3];

    static const char  *states[] = { "connecting", "idle", "busy" };
    static const char  *codings[] = { "gzip", "deflate", "zstd" };
    static const char  *digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

    static size_t       offsets[] = {
        offsetof(ngx_http_saveitem_gauges_t, connecting),
        offsetof(ngx_http_saveitem_gauges_t, idle),
        offsetof(ngx_http_saveitem_gauges_t, busy)
    };

    switch (fm->what) {

    case NGX_HTTP_SAVEITEM_M_REQUESTS:

        for (k = 0; k < NGX_HTTP_SAVEITEM_METRICS_CODES; k++) {
            v = mc->requests[k];

            if (v) {
                p = ngx_slprintf(p, last, "%s{database=\"%V\",code=\"%ui\"} "
                                 "%uA\n", fm->name, &mc->label, k + 100, v);
            }
        }

        return p;

    case NGX_HTTP_SAVEITEM_M_ERRORS:

        for (k = 0; k < NGX_HTTP_SAVEITEM_METRICS_CLASSES; k++) {
            v = mc->errors[k];

            if (v == 0) {
                continue;
            }

            if (k == NGX_HTTP_SAVEITEM_METRICS_CLASSES - 1) {
                ngx_cpystrn(class, (u_char *) "??", sizeof(class));

            } else {
                class[0] = digits[k / 36];
                class[1] = digits[k % 36];
                class[2] = '\0';
            }

            p = ngx_slprintf(p, last, "%s{database=\"%V\","
                             "sqlstate_class=\"%s\"} %uA\n",
                             fm->name, &mc->label, class, v);
        }

        return p;

    case NGX_HTTP_SAVEITEM_M_ROWS_HIST:
        return ngx_http_saveitem_metrics_histogram(p, last, fm->name,
                   &mc->label, mc->sizes, ngx_http_saveitem_metrics_rows_les,
                   NGX_HTTP_SAVEITEM_METRICS_ROWS, mc->rows_sent, 0);

    case NGX_HTTP_SAVEITEM_M_TIMES_HIST:
        return ngx_http_saveitem_metrics_histogram(p, last, fm->name,
                   &mc->label, mc->times, ngx_http_saveitem_metrics_times_les,
                   NGX_HTTP_SAVEITEM_METRICS_TIMES, mc->time_sum, 1);

    case NGX_HTTP_SAVEITEM_M_BYTES_HIST:
        return ngx_http_saveitem_metrics_histogram(p, last, fm->name,
                   &mc->label, mc->bytes, ngx_http_saveitem_metrics_bytes_les,
                   NGX_HTTP_SAVEITEM_METRICS_BYTES, mc->bytes_sum, 0);

    case NGX_HTTP_SAVEITEM_M_WAITS_HIST:

        for (k = 0; k < NGX_HTTP_SAVEITEM_METRICS_STAGES - 1; k++) {
            p = ngx_http_saveitem_metrics_wait_text(p, last, fm->name, mc, k);
        }

        return p;

    case NGX_HTTP_SAVEITEM_M_REQUEST_HIST:
        return ngx_http_saveitem_metrics_wait_text(p, last, fm->name, mc,
                   NGX_HTTP_SAVEITEM_METRICS_STAGES - 1);

    case NGX_HTTP_SAVEITEM_M_CONNECTIONS:

        for (k = 0; k < 3; k++) {
            p = ngx_slprintf(p, last, "%s{database=\"%V\",state=\"%s\"} %uA\n",
                             fm->name, &mc->label, states[k],
                             ngx_http_saveitem_metrics_gauge(mc, offsets[k]));
        }

        return p;

    case NGX_HTTP_SAVEITEM_M_CODING:

        for (k = 0; k < NGX_HTTP_SAVEITEM_METRICS_CODINGS; k++) {
            v = ((ngx_atomic_t *) ((u_char *) mc + fm->offset))[k];
            p = ngx_slprintf(p, last, "%s{database=\"%V\",coding=\"%s\"} "
                             "%uA\n", fm->name, &mc->label, codings[k], v);
        }

        return p;

    case NGX_HTTP_SAVEITEM_M_STATEMENTS:

        for (v = 0, k = 0; k < NGX_HTTP_SAVEITEM_METRICS_ROWS; k++) {
            v += mc->sizes[k];
        }

        break;

    case NGX_HTTP_SAVEITEM_M_ROWS:
        v = mc->rows;
        break;

    case NGX_HTTP_SAVEITEM_M_CONNECT_FAILURES:
        v = mc->connect_failures;
        break;

    default: /* a gauge */
        v = ngx_http_saveitem_metrics_gauge(mc, fm->offset);
        break;
    }

    return ngx_slprintf(p, last, "%s{database=\"%V\"} %uA\n",
                        fm->name, &mc->label, v);
}


/* the sum of a gauge over the workers' slots */

static ngx_atomic_uint_t
ngx_http_saveitem_metrics_gauge(ngx_http_saveitem_counters_t *mc,
    size_t offset)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  sum;

    sum = 0;

    for (i = 0; i < NGX_HTTP_SAVEITEM_METRICS_SLOTS; i++) {
        sum += *(ngx_atomic_t *) ((u_char *) &mc->slots[i] + offset);
    }

    return sum;
}


/*
 * Cumulative buckets from the counts of each, and a count that is their
 * total, so that the +Inf bucket and the count always agree; ms: the sum
 * is in milliseconds, printed in seconds
 */

static u_char *
ngx_http_saveitem_metrics_histogram(u_char *p, u_char *last,
    const char *name, ngx_str_t *label, ngx_atomic_t *buckets,
    const char **les, ngx_uint_t n, ngx_atomic_uint_t sum, ngx_uint_t ms)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  count;

    count = 0;

    for (i = 0; i < n; i++) {
        count += buckets[i];
        p = ngx_slprintf(p, last, "%s_bucket{database=\"%V\",le=\"%s\"} %uA\n",
                         name, label, les[i], count);
    }

    if (ms) {
        p = ngx_slprintf(p, last, "%s_sum{database=\"%V\"} %uA.%03uA\n",
                         name, label, sum / 1000, sum % 1000);

    } else {
        p = ngx_slprintf(p, last, "%s_sum{database=\"%V\"} %uA\n",
                         name, label, sum);
    }

    return ngx_slprintf(p, last, "%s_count{database=\"%V\"} %uA\n",
                        name, label, count);
}


/* one stage of a request's wait, or its total: the sum in microseconds */

static u_char *
ngx_http_saveitem_metrics_wait_text(u_char *p, u_char *last,
    const char *name, ngx_http_saveitem_counters_t *mc, ngx_uint_t stage)
{
    ngx_uint_t          i;
    const char         *label;
    ngx_atomic_uint_t   count, sum;

    label = ngx_http_saveitem_metrics_stages[stage];
    count = 0;

    for (i = 0; i < NGX_HTTP_SAVEITEM_METRICS_WAITS; i++) {
        count += mc->waits[stage][i];
        p = ngx_slprintf(p, last, "%s_bucket{database=\"%V\"%s,le=\"%s\"} "
                         "%uA\n", name, &mc->label, label,
                         ngx_http_saveitem_metrics_waits_les[i], count);
    }

    sum = mc->wait_sums[stage];

    p = ngx_slprintf(p, last, "%s_sum{database=\"%V\"%s} %uA.%06uA\n",
                     name, &mc->label, label, sum / 1000000, sum % 1000000);

    return ngx_slprintf(p, last, "%s_count{database=\"%V\"%s} %uA\n",
                        name, &mc->label, label, count);
}
