
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_METRICS_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_METRICS_H_INCLUDED_


#include "ngx_http_saveitem.h"


/*
 * The counters saveitem_status reports: one shared-memory zone, one block
 * of counters per database (db->counters), atomic adds on the request
 * path, no lock, no allocation.  Gauges are per worker: each worker
 * writes its pools' figures into a slot of its own; the reader sums.
 */


/* configuration: the zone, the labels; workers: the slot */

ngx_int_t ngx_http_saveitem_metrics_conf(ngx_conf_t *cf,
    ngx_http_saveitem_main_conf_t *smcf);
ngx_int_t ngx_http_saveitem_metrics_init_process(ngx_cycle_t *cycle,
    ngx_http_saveitem_main_conf_t *smcf);
void ngx_http_saveitem_metrics_exit_process(ngx_cycle_t *cycle,
    ngx_http_saveitem_main_conf_t *smcf);

/* the content handler of saveitem_status */

ngx_int_t ngx_http_saveitem_metrics_handler(ngx_http_request_t *r);

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


#endif /* _NGX_HTTP_SAVEITEM_METRICS_H_INCLUDED_ */
