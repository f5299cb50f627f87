
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_HTTP_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_HTTP_H_INCLUDED_


/*
 * What the nginx side shares: the directives (ngx_http_saveitem_module.c),
 * the request (src/ngx_http_saveitem_request.c) and the answer
 * (src/ngx_http_saveitem_answer.c).  Calls go one way: the module file
 * names the handlers of the other two, the request asks the answer to
 * write, the answer calls neither.
 */


#include "ngx_http_saveitem.h"


typedef struct {
    ngx_http_saveitem_db_t       *db;
    ngx_int_t                     stmt;
    ngx_msec_t                    query_timeout;
    ngx_uint_t                    batch_rows;
    size_t                        batch_bytes;
    ngx_uint_t                    idempotency;  /* takes Idempotency-Key */
    ngx_uint_t                    bulk;         /* documents; 0: off */
    u_char                       *file;
    ngx_uint_t                    line;
    ngx_flag_t                    ready;      /* saveitem_ready */
    ngx_http_saveitem_stmt_t     *spec;       /* saveitem, until merged */
    ngx_array_t                  *cols;       /* ngx_http_saveitem_col_t */
    ngx_array_t                  *values;     /* ngx_http_complex_value_t */
    ngx_flag_t                    strict;     /* saveitem_strict */
    ngx_array_t                  *conflict;   /* ngx_str_t, as written */
    ngx_uint_t                    upsert;     /* saveitem_conflict */
    ngx_str_t                     conflict_text;
    u_char                       *conflict_file;
    ngx_uint_t                    conflict_line;
    ngx_uint_t                    decompress; /* SAVEITEM_CODING_* mask */
    size_t                        decompress_max;  /* unset: as
                                                      client_max_body_size */
} ngx_http_saveitem_loc_conf_t;


typedef struct ngx_http_saveitem_decode_s  ngx_http_saveitem_decode_t;


typedef struct {
    ngx_http_request_t           *request;
    ngx_http_saveitem_job_t      *job;
    ngx_str_t                     pk;
    u_char                        sqlstate[6];
    ngx_buf_t                     fallback;   /* see answer_internal() */
    u_char                       *values;     /* mapped: a JSON array */
    ngx_uint_t                    action;     /* saveitem_conflict */
    unsigned                      lines:1;    /* an NDJSON body */
    ngx_http_saveitem_decode_t   *decode;     /* a compressed body */
} ngx_http_saveitem_ctx_t;


/* src/ngx_http_saveitem_request.c: the content handlers */

ngx_int_t ngx_http_saveitem_request_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_saveitem_request_ready(ngx_http_request_t *r);


/* src/ngx_http_saveitem_answer.c: every body the module sends */

ngx_int_t ngx_http_saveitem_answer(ngx_http_request_t *r,
    ngx_http_saveitem_facts_t *f);
ngx_int_t ngx_http_saveitem_answer_pk(ngx_http_request_t *r, ngx_str_t *pk,
    ngx_uint_t number, ngx_uint_t replayed);
ngx_int_t ngx_http_saveitem_answer_pks(ngx_http_request_t *r,
    ngx_str_t *pks);
ngx_int_t ngx_http_saveitem_answer_ready(ngx_http_request_t *r,
    ngx_http_saveitem_facts_t *f);
ngx_int_t ngx_http_saveitem_answer_status(ngx_http_request_t *r);
ngx_int_t ngx_http_saveitem_answer_get(ngx_http_request_t *r);
ngx_int_t ngx_http_saveitem_answer_refuse(ngx_http_request_t *r,
    ngx_http_saveitem_reason_e reason);
ngx_int_t ngx_http_saveitem_answer_not_allowed(ngx_http_request_t *r,
    ngx_http_saveitem_reason_e reason);
ngx_int_t ngx_http_saveitem_answer_internal(ngx_http_request_t *r,
    ngx_buf_t *b, ngx_uint_t unknown);
ngx_int_t ngx_http_saveitem_answer_coding(ngx_http_request_t *r,
    ngx_str_t *accept);


#endif /* _NGX_HTTP_SAVEITEM_HTTP_H_INCLUDED_ */
