
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_METRICS_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_METRICS_H_INCLUDED_


#include "ngx_http_saveitem.h"


/*
 * The counters saveitem_status reports: one shared-memory zone, one block
 * of counters per database (db->counters), atomic adds on the request
 * path, no lock, no allocation.  Gauges are per worker: each pool
 * writes its figures into its worker's slot; the reader sums.  A leaf:
 * it calls nothing of the module's.
 */


/* a pool's gauges, as the pool writes them and a worker's slot holds them */

typedef struct {
    ngx_atomic_t                  waiting;
    ngx_atomic_t                  connecting;
    ngx_atomic_t                  idle;
    ngx_atomic_t                  busy;
    ngx_atomic_t                  queue;      /* queue= */
    ngx_atomic_t                  pool;       /* pool= */
} ngx_http_saveitem_gauges_t;


/* configuration: the zone, the labels; workers: the slot */

ngx_int_t ngx_http_saveitem_metrics_conf(ngx_conf_t *cf,
    ngx_http_saveitem_main_conf_t *smcf);
ngx_int_t ngx_http_saveitem_metrics_init_process(ngx_cycle_t *cycle,
    ngx_http_saveitem_main_conf_t *smcf);
void ngx_http_saveitem_metrics_exit_process(ngx_cycle_t *cycle,
    ngx_http_saveitem_main_conf_t *smcf);

/* the text of saveitem_status, in a buffer from pool; NULL: no memory */

ngx_buf_t *ngx_http_saveitem_metrics_text(
    ngx_http_saveitem_main_conf_t *smcf, ngx_pool_t *pool);

/* what happened, as it happens */

void ngx_http_saveitem_metrics_request(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t status);
void ngx_http_saveitem_metrics_sent(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t statements, ngx_uint_t rows);
void ngx_http_saveitem_metrics_result(ngx_http_saveitem_counters_t *mc,
    ngx_msec_t ms);
void ngx_http_saveitem_metrics_stored(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t rows);
void ngx_http_saveitem_metrics_connect_failed(
    ngx_http_saveitem_counters_t *mc);
void ngx_http_saveitem_metrics_error(ngx_http_saveitem_counters_t *mc,
    const char *sqlstate);
void ngx_http_saveitem_metrics_gauges(ngx_http_saveitem_counters_t *mc,
    ngx_http_saveitem_gauges_t *st);

/*
 * Where a request waited: the moments of its life in microseconds of a
 * monotonic clock (metrics_now()), once its answer is written; and the
 * bytes of the documents of statements sent
 */

ngx_uint_t ngx_http_saveitem_metrics_now(void);
void ngx_http_saveitem_metrics_waits(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t posted, ngx_uint_t held, ngx_uint_t sent, ngx_uint_t read,
    ngx_uint_t answered);
void ngx_http_saveitem_metrics_bytes(ngx_http_saveitem_counters_t *mc,
    size_t bytes);
/* a compressed body decoded, or refused: coding 0 gzip, 1 deflate, 2 zstd */
void ngx_http_saveitem_metrics_decoded(ngx_http_saveitem_counters_t *mc,
    ngx_uint_t coding, size_t in, size_t out, ngx_uint_t refused);


#endif /* _NGX_HTTP_SAVEITEM_METRICS_H_INCLUDED_ */
