
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_DECODE_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_DECODE_H_INCLUDED_


/*
 * A compressed request body (Content-Encoding: gzip, x-gzip, deflate,
 * zstd), decoded after nginx has read it, in steps that give the event
 * loop back (src/ngx_http_saveitem_decode.c); the decoding itself is pure
 * (src/ngx_http_saveitem_coding.c).
 */


#include "ngx_http_saveitem_http.h"


/* every default, once: see README, saveitem_decompressed_max_size */

/* the limit when client_max_body_size is 0 (no limit) */
#define NGX_HTTP_SAVEITEM_DECOMPRESS_MAX   (64 * 1024 * 1024)


ngx_int_t ngx_http_saveitem_decode_start(ngx_http_request_t *r,
    ngx_http_event_handler_pt handler, ngx_http_saveitem_decode_t **dp,
    ngx_str_t *accept);
ngx_int_t ngx_http_saveitem_decode_body(ngx_http_request_t *r,
    ngx_http_saveitem_decode_t *d, ngx_http_saveitem_facts_t *f);
void ngx_http_saveitem_decode_get(ngx_http_saveitem_decode_t *d,
    ngx_str_t *body);


#endif /* _NGX_HTTP_SAVEITEM_DECODE_H_INCLUDED_ */
