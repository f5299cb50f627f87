
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * POST -> JSON check -> INSERT on a pooled, non-blocking libpq
 * connection -> {"pk": N}.  This file is the module as nginx sees it:
 * the directives, the configuration they make (created, merged,
 * checked), the variables, the log-phase handler that counts requests,
 * and the worker's start and exit.  The request is read in
 * src/ngx_http_saveitem_request.c, answered in
 * src/ngx_http_saveitem_answer.c; the pool stores it
 * (src/ngx_http_saveitem_pool.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_saveitem_http.h"
#include "ngx_http_saveitem_metrics.h"
#include "ngx_http_saveitem_coding.h"


/* how often a worker's pools write their gauges for saveitem_status */
#define NGX_HTTP_SAVEITEM_GAUGES_TICK    200


static ngx_int_t ngx_http_saveitem_log_handler(ngx_http_request_t *r);

static ngx_int_t ngx_http_saveitem_pk_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_saveitem_sqlstate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static void *ngx_http_saveitem_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_saveitem_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_saveitem_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_saveitem(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_database(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_batch(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_ready(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_field(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_value(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_conflict(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_http_saveitem_col_t *ngx_http_saveitem_col_add(ngx_conf_t *cf,
    ngx_http_saveitem_loc_conf_t *slcf, ngx_str_t *name);
static char *ngx_http_saveitem_merge_stmt(ngx_conf_t *cf,
    ngx_http_saveitem_loc_conf_t *conf);
static char *ngx_http_saveitem_merge_map(ngx_conf_t *cf,
    ngx_http_saveitem_loc_conf_t *conf, ngx_http_saveitem_stmt_t *stmt);
static char *ngx_http_saveitem_query_timeout(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_saveitem_decompress(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_saveitem_decompressed_max(ngx_conf_t *cf, void *post,
    void *data);
static ngx_uint_t ngx_http_saveitem_streq(ngx_str_t *a, ngx_str_t *b);
static ngx_int_t ngx_http_saveitem_quote(ngx_conf_t *cf, ngx_str_t *name,
    size_t max_parts, ngx_str_t *quoted);
static ngx_int_t ngx_http_saveitem_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_saveitem_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_saveitem_init_process(ngx_cycle_t *cycle);
static void ngx_http_saveitem_exit_process(ngx_cycle_t *cycle);
static void ngx_http_saveitem_gauges_tick(ngx_event_t *ev);
static void ngx_http_saveitem_gauges_write(
    ngx_http_saveitem_main_conf_t *smcf);


static ngx_conf_post_handler_pt  ngx_http_saveitem_query_timeout_p =
    ngx_http_saveitem_query_timeout;

static ngx_conf_post_handler_pt  ngx_http_saveitem_decompressed_max_p =
    ngx_http_saveitem_decompressed_max;


static ngx_command_t  ngx_http_saveitem_commands[] = {

    { ngx_string("saveitem"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_saveitem,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_database"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_saveitem_database,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_batch"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_saveitem_batch,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_query_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_saveitem_loc_conf_t, query_timeout),
      &ngx_http_saveitem_query_timeout_p },

    { ngx_string("saveitem_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_saveitem_status,
      0,
      0,
      NULL },

    { ngx_string("saveitem_ready"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_saveitem_ready,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_field"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_saveitem_field,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_value"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_saveitem_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_strict"),
      NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_saveitem_loc_conf_t, strict),
      NULL },

    { ngx_string("saveitem_conflict"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_saveitem_conflict,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_decompress"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_saveitem_decompress,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("saveitem_decompressed_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_saveitem_loc_conf_t, decompress_max),
      &ngx_http_saveitem_decompressed_max_p },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_saveitem_module_ctx = {
    ngx_http_saveitem_add_variables,       /* preconfiguration */
    ngx_http_saveitem_init,                /* postconfiguration */

    ngx_http_saveitem_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_saveitem_create_loc_conf,     /* create location configuration */
    ngx_http_saveitem_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_saveitem_module = {
    NGX_MODULE_V1,
    &ngx_http_saveitem_module_ctx,         /* module context */
    ngx_http_saveitem_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_saveitem_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_saveitem_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_saveitem_vars[] = {

    { ngx_string("saveitem_pk"), NULL, ngx_http_saveitem_pk_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("saveitem_sqlstate"), NULL,
      ngx_http_saveitem_sqlstate_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/*
 * Every request of a saveitem location is counted here, by the status it
 * got, whoever chose it: the answer function, nginx (413, a 500 before
 * any answer), or the client that left first (499)
 */

static ngx_int_t
ngx_http_saveitem_log_handler(ngx_http_request_t *r)
{
    ngx_http_saveitem_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_saveitem_module);

    if (slcf->stmt != NGX_CONF_UNSET) {
        ngx_http_saveitem_metrics_request(slcf->db->counters,
                                          r->err_status ? r->err_status
                                          : r->headers_out.status);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_saveitem_pk_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_saveitem_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    if (ctx == NULL || ctx->pk.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->pk.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->pk.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_saveitem_sqlstate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_saveitem_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_saveitem_module);

    if (ctx == NULL || ctx->sqlstate[0] == '\0') {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_strlen(ctx->sqlstate);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->sqlstate;

    return NGX_OK;
}


static void *
ngx_http_saveitem_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_saveitem_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&smcf->dbs, cf->pool, 4,
                       sizeof(ngx_http_saveitem_db_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&smcf->stmts, cf->pool, 4,
                       sizeof(ngx_http_saveitem_stmt_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&smcf->uses, cf->pool, 4,
                       sizeof(ngx_http_saveitem_use_t))
        != NGX_OK)
    {
        return NULL;
    }

    return smcf;
}


static void *
ngx_http_saveitem_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_saveitem_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_saveitem_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->file = NULL;
     *     conf->line = 0;
     */

    conf->db = NGX_CONF_UNSET_PTR;
    conf->stmt = NGX_CONF_UNSET;
    conf->query_timeout = NGX_CONF_UNSET_MSEC;
    conf->batch_rows = NGX_CONF_UNSET_UINT;
    conf->batch_bytes = NGX_CONF_UNSET_SIZE;
    conf->strict = NGX_CONF_UNSET;
    conf->decompress = NGX_CONF_UNSET_UINT;
    conf->decompress_max = NGX_CONF_UNSET_SIZE;

    return conf;
}


static char *
ngx_http_saveitem_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_saveitem_loc_conf_t *prev = parent;
    ngx_http_saveitem_loc_conf_t *conf = child;

    ngx_uint_t                      i;
    ngx_http_saveitem_use_t        *use;
    ngx_http_saveitem_main_conf_t  *smcf;

    ngx_conf_merge_ptr_value(conf->db, prev->db, NULL);
    ngx_conf_merge_msec_value(conf->query_timeout, prev->query_timeout,
                              NGX_HTTP_SAVEITEM_QUERY_TIMEOUT);
    ngx_conf_merge_uint_value(conf->batch_rows, prev->batch_rows,
                              NGX_HTTP_SAVEITEM_BATCH_ROWS);
    ngx_conf_merge_size_value(conf->batch_bytes, prev->batch_bytes,
                              NGX_HTTP_SAVEITEM_BATCH_BYTES);
    ngx_conf_merge_uint_value(conf->decompress, prev->decompress,
                              SAVEITEM_CODING_ALL);

    /* unset: as the location's client_max_body_size, at run time */
    ngx_conf_merge_size_value(conf->decompress_max, prev->decompress_max,
                              NGX_CONF_UNSET_SIZE);

    if (conf->ready && conf->db == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem_ready\" in %s:%ui needs a "
                      "\"saveitem_database\" in its location, server or "
                      "http block", conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (conf->spec == NULL) {
        if (conf->cols || conf->conflict || conf->strict != NGX_CONF_UNSET) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"saveitem_field\", \"saveitem_value\", "
                          "\"saveitem_strict\" and \"saveitem_conflict\" "
                          "need a \"saveitem\" in the same location");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (conf->db == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem\" in %s:%ui needs a \"saveitem_database\" "
                      "in its location, server or http block",
                      conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (conf->stmt == NGX_CONF_UNSET
        && ngx_http_saveitem_merge_stmt(cf, conf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_saveitem_module);

    smcf->batch_max = ngx_max(smcf->batch_max, conf->batch_rows);

    use = smcf->uses.elts;

    for (i = 0; i < smcf->uses.nelts; i++) {
        if (use[i].db == conf->db && use[i].stmt == (ngx_uint_t) conf->stmt) {
            return NGX_CONF_OK;
        }
    }

    use = ngx_array_push(&smcf->uses);
    if (use == NULL) {
        return NGX_CONF_ERROR;
    }

    use->db = conf->db;
    use->stmt = conf->stmt;
    use->file = conf->file;
    use->line = conf->line;

    return NGX_CONF_OK;
}


/*
 * saveitem <table> [column=<name>] [returning=<name>]
 *          [idempotency=<name>] [bulk=<n>];
 */

static char *
ngx_http_saveitem(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ngx_int_t                  n;
    ngx_str_t                 *value, table, column, returning, idem;
    ngx_str_t                  column_name, returning_name, idem_name;
    ngx_uint_t                 i, bulk;
    ngx_http_saveitem_stmt_t  *stmt;
    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->spec != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_saveitem_quote(cf, &value[1], 2, &table) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&column, "\"data\"");
    ngx_str_set(&column_name, "data");
    ngx_str_set(&returning, "\"id\"");
    ngx_str_set(&returning_name, "id");
    ngx_str_null(&idem);
    ngx_str_null(&idem_name);
    bulk = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "column=", 7) == 0) {
            value[i].data += 7;
            value[i].len -= 7;

            if (value[i].len == 3
                && ngx_strncmp(value[i].data, "off", 3) == 0)
            {
                /* mapped columns only (saveitem_field, saveitem_value) */

                ngx_str_null(&column);
                ngx_str_null(&column_name);
                continue;
            }

            if (ngx_http_saveitem_quote(cf, &value[i], 1, &column) != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            column_name = value[i];
            continue;
        }

        if (ngx_strncmp(value[i].data, "bulk=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            if (n == NGX_ERROR || n < 1 || n > NGX_HTTP_SAVEITEM_BULK_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": bulk must be "
                                   "1 to %d", &value[i],
                                   NGX_HTTP_SAVEITEM_BULK_MAX);
                return NGX_CONF_ERROR;
            }

            bulk = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "idempotency=", 12) == 0) {
            value[i].data += 12;
            value[i].len -= 12;

            if (ngx_http_saveitem_quote(cf, &value[i], 1, &idem) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            idem_name = value[i];
            continue;
        }

        if (ngx_strncmp(value[i].data, "returning=", 10) == 0) {
            value[i].data += 10;
            value[i].len -= 10;

            if (ngx_http_saveitem_quote(cf, &value[i], 1, &returning)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            returning_name = value[i];
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    /* the statement is made when the location is merged */

    stmt = ngx_pcalloc(cf->pool, sizeof(ngx_http_saveitem_stmt_t));
    if (stmt == NULL) {
        return NGX_CONF_ERROR;
    }

    stmt->table = table;
    stmt->column = column;
    stmt->returning = returning;
    stmt->idem = idem;
    stmt->column_name = column_name;
    stmt->returning_name = returning_name;
    stmt->idem_name = idem_name;
    stmt->key_col = -1;

    slcf->spec = stmt;
    slcf->idempotency = (idem.len > 0);
    slcf->bulk = bulk;
    slcf->file = cf->conf_file->file.name.data;
    slcf->line = cf->conf_file->line;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_saveitem_request_handler;

    return NGX_CONF_OK;
}


/*
 * One statement (and its batch forms) per table, column, key; a location
 * with mapped columns has its own.
 */

static char *
ngx_http_saveitem_merge_stmt(ngx_conf_t *cf,
    ngx_http_saveitem_loc_conf_t *conf)
{
    ngx_uint_t                      i;
    ngx_http_saveitem_stmt_t       *stmt, *spec;
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_saveitem_module);
    spec = conf->spec;

    spec->mapped = (conf->cols != NULL || conf->conflict != NULL
                    || spec->column.len == 0);

    stmt = smcf->stmts.elts;

    for (i = 0; !spec->mapped && i < smcf->stmts.nelts; i++) {
        if (!stmt[i].mapped
            && ngx_http_saveitem_streq(&stmt[i].table, &spec->table)
            && ngx_http_saveitem_streq(&stmt[i].column, &spec->column)
            && ngx_http_saveitem_streq(&stmt[i].returning, &spec->returning)
            && ngx_http_saveitem_streq(&stmt[i].idem, &spec->idem))
        {
            conf->stmt = i;
            return NGX_CONF_OK;
        }
    }

    if (spec->mapped && ngx_http_saveitem_merge_map(cf, conf, spec)
                        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    stmt = ngx_array_push(&smcf->stmts);
    if (stmt == NULL) {
        return NGX_CONF_ERROR;
    }

    *stmt = *spec;
    conf->stmt = smcf->stmts.nelts - 1;

    return NGX_CONF_OK;
}


/* what the mapped columns of a location are, checked together */

static char *
ngx_http_saveitem_merge_map(ngx_conf_t *cf, ngx_http_saveitem_loc_conf_t *conf,
    ngx_http_saveitem_stmt_t *stmt)
{
    u_char                   *p;
    size_t                    len;
    ngx_str_t                *names, quoted;
    ngx_uint_t                i, j;
    ngx_http_saveitem_col_t  *col;

    if (conf->cols) {
        stmt->cols = conf->cols->elts;
        stmt->ncols = conf->cols->nelts;
        stmt->nvalues = conf->values ? conf->values->nelts : 0;
    }

    if (stmt->ncols == 0 && stmt->column.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem\" in %s:%ui has column=off and no "
                      "\"saveitem_field\" or \"saveitem_value\": nothing "
                      "to store", conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    stmt->known = ngx_palloc(cf->pool, (stmt->ncols + 1)
                                       * sizeof(saveitem_part_t));
    if (stmt->known == NULL) {
        return NGX_CONF_ERROR;
    }

    col = stmt->cols;

    for (i = 0; i < stmt->ncols; i++) {

        if (col[i].value < 0) {
            stmt->known[stmt->nknown++] = col[i].parts[0];
        }

        if (ngx_http_saveitem_streq(&col[i].name, &stmt->column_name)) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "column \"%V\" of \"saveitem\" in %s:%ui is "
                          "mapped again", &col[i].name, conf->file,
                          conf->line);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_saveitem_streq(&col[i].name, &stmt->idem_name)) {
            stmt->key_col = i;
        }

        for (j = 0; j < i; j++) {
            if (ngx_http_saveitem_streq(&col[i].name, &col[j].name)) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "column \"%V\" is mapped twice in the "
                              "location of \"saveitem\" in %s:%ui",
                              &col[i].name, conf->file, conf->line);
                return NGX_CONF_ERROR;
            }
        }
    }

    if (stmt->key_col >= 0 && conf->bulk) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem\" in %s:%ui: bulk= cannot be used with a "
                      "key taken from a mapped column (idempotency=%V)",
                      conf->file, conf->line, &stmt->idem_name);
        return NGX_CONF_ERROR;
    }

    if (conf->conflict == NULL) {
        return NGX_CONF_OK;
    }

    if (stmt->idem.len) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem_conflict\" in %s:%ui cannot be used with "
                      "idempotency=: an upsert on a natural key is already "
                      "safe to repeat", conf->conflict_file,
                      conf->conflict_line);
        return NGX_CONF_ERROR;
    }

    names = conf->conflict->elts;
    stmt->conflict = names;
    stmt->nconflict = conf->conflict->nelts;
    stmt->upsert = conf->upsert;
    stmt->conflict_text = conf->conflict_text;

    for (j = 0; j < stmt->nconflict; j++) {
        for (i = 0; i < stmt->ncols; i++) {
            if (ngx_http_saveitem_streq(&col[i].name, &names[j])) {
                break;
            }
        }

        if (i == stmt->ncols) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"saveitem_conflict\" in %s:%ui names \"%V\", "
                          "which no \"saveitem_field\" or \"saveitem_value\" "
                          "of its location fills", conf->conflict_file,
                          conf->conflict_line, &names[j]);
            return NGX_CONF_ERROR;
        }
    }

    len = 0;

    for (i = 0; i < stmt->nconflict; i++) {
        len += 2 * names[i].len + 4 + 2;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    stmt->conflict_quoted.data = p;

    for (i = 0; i < stmt->nconflict; i++) {
        if (ngx_http_saveitem_quote(cf, &names[i], 1, &quoted) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        if (i == 0) {
            stmt->conflict_first = quoted;
        }

        p = ngx_sprintf(p, "%s%V", i ? ", " : "", &quoted);
    }

    stmt->conflict_quoted.len = p - stmt->conflict_quoted.data;

    return NGX_CONF_OK;
}


static ngx_uint_t
ngx_http_saveitem_streq(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || ngx_strncmp(a->data, b->data, a->len) == 0);
}


/* saveitem_batch off | on [rows=<n>] [bytes=<size>]; */

static char *
ngx_http_saveitem_batch(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ssize_t      size;
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (slcf->batch_rows != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            return "takes no parameters with \"off\"";
        }

        slcf->batch_rows = 1;
        slcf->batch_bytes = 0;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"on\" or "
                           "\"off\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    slcf->batch_rows = NGX_HTTP_SAVEITEM_BATCH_ROWS;
    slcf->batch_bytes = NGX_HTTP_SAVEITEM_BATCH_BYTES;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "rows=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            /* PostgreSQL takes 65535 parameters; plans get slow before */

            if (n == NGX_ERROR || n < 1
                || n > NGX_HTTP_SAVEITEM_BATCH_ROWS_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": rows must be "
                                   "1 to %d", &value[i],
                                   NGX_HTTP_SAVEITEM_BATCH_ROWS_MAX);
                return NGX_CONF_ERROR;
            }

            slcf->batch_rows = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "bytes=", 6) == 0) {
            s.data = value[i].data + 6;
            s.len = value[i].len - 6;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || size == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            slcf->batch_bytes = size;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* saveitem_status; */

static char *
ngx_http_saveitem_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_saveitem_answer_status;

    return NGX_CONF_OK;
}


/* saveitem_ready; */

static char *
ngx_http_saveitem_ready(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->ready) {
        return "is duplicate";
    }

    slcf->ready = 1;
    slcf->file = cf->conf_file->file.name.data;
    slcf->line = cf->conf_file->line;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_saveitem_request_ready;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_saveitem_quote(ngx_conf_t *cf, ngx_str_t *name, size_t max_parts,
    ngx_str_t *quoted)
{
    size_t  errpos;

    /* null-terminated: the catalog takes the table's name as a parameter */

    quoted->data = ngx_pnalloc(cf->pool, 2 * name->len + 5);
    if (quoted->data == NULL) {
        return NGX_ERROR;
    }

    quoted->len = saveitem_quote_ident(quoted->data, name->data, name->len,
                                       max_parts, &errpos);

    if (quoted->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %s name \"%V\" at position %uz",
                           max_parts > 1 ? "table" : "column", name, errpos);
        return NGX_ERROR;
    }

    quoted->data[quoted->len] = '\0';

    return NGX_OK;
}


/* saveitem_field <column> [<key>[.<key>...]]; */

static char *
ngx_http_saveitem_field(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    u_char                   *p, *start, *end;
    ngx_str_t                *value, path;
    ngx_uint_t                n;
    ngx_http_saveitem_col_t  *col;

    value = cf->args->elts;

    path = (cf->args->nelts == 3) ? value[2] : value[1];

    col = ngx_http_saveitem_col_add(cf, slcf, &value[1]);
    if (col == NULL) {
        return NGX_CONF_ERROR;
    }

    col->value = -1;
    col->path = path;

    n = 1;

    for (p = path.data; p < path.data + path.len; p++) {
        if (*p == '.') {
            n++;
        }
    }

    col->parts = ngx_palloc(cf->pool, n * sizeof(saveitem_part_t));
    if (col->parts == NULL) {
        return NGX_CONF_ERROR;
    }

    start = path.data;
    end = path.data + path.len;

    for ( ;; ) {
        p = ngx_strlchr(start, end, '.');

        if (p == NULL) {
            p = end;
        }

        if (p == start) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid key path \"%V\": an empty key", &path);
            return NGX_CONF_ERROR;
        }

        col->parts[col->nparts].data = start;
        col->parts[col->nparts].len = p - start;
        col->nparts++;

        if (p == end) {
            break;
        }

        start = p + 1;

        if (start == end) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid key path \"%V\": an empty key", &path);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* saveitem_value <column> <value>; */

static char *
ngx_http_saveitem_value(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ngx_str_t                         *value;
    ngx_http_saveitem_col_t           *col;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (slcf->values == NULL) {
        slcf->values = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_complex_value_t));
        if (slcf->values == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cv = ngx_array_push(slcf->values);
    if (cv == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    col = ngx_http_saveitem_col_add(cf, slcf, &value[1]);
    if (col == NULL) {
        return NGX_CONF_ERROR;
    }

    col->value = slcf->values->nelts - 1;
    col->path = value[2];

    return NGX_CONF_OK;
}


static ngx_http_saveitem_col_t *
ngx_http_saveitem_col_add(ngx_conf_t *cf, ngx_http_saveitem_loc_conf_t *slcf,
    ngx_str_t *name)
{
    ngx_http_saveitem_col_t  *col;

    if (slcf->cols == NULL) {
        slcf->cols = ngx_array_create(cf->pool, 8,
                                      sizeof(ngx_http_saveitem_col_t));
        if (slcf->cols == NULL) {
            return NULL;
        }
    }

    if (slcf->cols->nelts >= NGX_HTTP_SAVEITEM_COLS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many mapped columns (at most %d)",
                           NGX_HTTP_SAVEITEM_COLS_MAX);
        return NULL;
    }

    col = ngx_array_push(slcf->cols);
    if (col == NULL) {
        return NULL;
    }

    ngx_memzero(col, sizeof(ngx_http_saveitem_col_t));

    col->name = *name;

    if (ngx_http_saveitem_quote(cf, name, 1, &col->quoted) != NGX_OK) {
        return NULL;
    }

    return col;
}


/* saveitem_conflict <column>[,<column>...] update | nothing; */

static char *
ngx_http_saveitem_conflict(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    u_char     *p, *start, *end;
    ngx_str_t  *value, *name;

    if (slcf->conflict != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[2].data, "update") == 0) {
        slcf->upsert = NGX_HTTP_SAVEITEM_UPSERT_UPDATE;

    } else if (ngx_strcmp(value[2].data, "nothing") == 0) {
        slcf->upsert = NGX_HTTP_SAVEITEM_UPSERT_NOTHING;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\": \"update\" or \"nothing\"",
                           &value[2]);
        return NGX_CONF_ERROR;
    }

    slcf->conflict = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
    if (slcf->conflict == NULL) {
        return NGX_CONF_ERROR;
    }

    start = value[1].data;
    end = value[1].data + value[1].len;

    for ( ;; ) {
        p = ngx_strlchr(start, end, ',');

        if (p == NULL) {
            p = end;
        }

        if (p == start) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid column list \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        name = ngx_array_push(slcf->conflict);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        name->data = start;
        name->len = p - start;

        if (p == end) {
            break;
        }

        start = p + 1;
    }

    slcf->conflict_text = value[1];
    slcf->conflict_file = cf->conf_file->file.name.data;
    slcf->conflict_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/*
 * saveitem_database <conninfo> [pool=<n>] [queue=<n>]
 *                   [queue_timeout=<time>] [lifetime=<time>]
 *                   [prepare=on|off];
 */

static char *
ngx_http_saveitem_database(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ngx_int_t                       n;
    ngx_str_t                      *value, s;
    ngx_uint_t                      i;
    ngx_msec_t                      ms;
    ngx_http_saveitem_db_t         *db, **dbp;
    ngx_http_saveitem_main_conf_t  *smcf;

    if (slcf->db != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    db = ngx_pcalloc(cf->pool, sizeof(ngx_http_saveitem_db_t));
    if (db == NULL) {
        return NGX_CONF_ERROR;
    }

    db->conninfo = value[1];
    db->pool_size = NGX_HTTP_SAVEITEM_POOL_SIZE;
    db->queue_size = NGX_HTTP_SAVEITEM_QUEUE_SIZE;
    db->queue_timeout = NGX_HTTP_SAVEITEM_QUEUE_TIMEOUT;
    db->lifetime = NGX_HTTP_SAVEITEM_LIFETIME;
    db->prepare = 1;
    db->clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    db->file = cf->conf_file->file.name.data;
    db->line = cf->conf_file->line;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            n = ngx_atoi(value[i].data + 5, value[i].len - 5);

            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            db->pool_size = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "queue=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n == NGX_ERROR) {
                goto invalid;
            }

            db->queue_size = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "queue_timeout=", 14) == 0) {
            s.data = value[i].data + 14;
            s.len = value[i].len - 14;

            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            db->queue_timeout = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "lifetime=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            ms = ngx_parse_time(&s, 0);

            if (ms == (ngx_msec_t) NGX_ERROR) {
                goto invalid;
            }

            if (ms != 0 && ms < NGX_HTTP_SAVEITEM_LIFETIME_MIN) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" is too short: a lifetime must "
                                   "be at least 1s (or 0: for ever)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            db->lifetime = ms;
            continue;
        }

        if (ngx_strcmp(value[i].data, "prepare=on") == 0) {
            db->prepare = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "prepare=off") == 0) {
            db->prepare = 0;
            continue;
        }

        goto invalid;
    }

    /* one pool per distinct conninfo */

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_saveitem_module);
    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {

        if (dbp[i]->conninfo.len != db->conninfo.len
            || ngx_strncmp(dbp[i]->conninfo.data, db->conninfo.data,
                           db->conninfo.len) != 0)
        {
            continue;
        }

        if (dbp[i]->pool_size != db->pool_size
            || dbp[i]->queue_size != db->queue_size
            || dbp[i]->queue_timeout != db->queue_timeout
            || dbp[i]->lifetime != db->lifetime
            || dbp[i]->prepare != db->prepare)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "database %V is already defined in %s:%ui "
                               "with other pool parameters",
                               &dbp[i]->display, dbp[i]->file, dbp[i]->line);
            return NGX_CONF_ERROR;
        }

        slcf->db = dbp[i];
        return NGX_CONF_OK;
    }

    if (ngx_http_saveitem_db_conninfo(cf, db) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    dbp = ngx_array_push(&smcf->dbs);
    if (dbp == NULL) {
        return NGX_CONF_ERROR;
    }

    *dbp = db;
    slcf->db = db;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


/*
 * 0 would answer every request "outcome unknown"; above INT_MAX ms,
 * PostgreSQL refuses the connection's "SET statement_timeout"
 */

static char *
ngx_http_saveitem_query_timeout(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must be more than 0";
    }

    if (*ms > NGX_HTTP_SAVEITEM_QUERY_TIMEOUT_MAX) {
        return "must be at most 2147483647ms (24d20h31m23s), the longest "
               "statement_timeout PostgreSQL takes";
    }

    return NGX_CONF_OK;
}


/* saveitem_decompress on | off | gzip | deflate | zstd ...; */

static char *
ngx_http_saveitem_decompress(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_saveitem_loc_conf_t *slcf = conf;

    ngx_int_t    coding;
    ngx_str_t   *value;
    ngx_uint_t   i, mask;

    if (slcf->decompress != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "on") == 0) {
        slcf->decompress = SAVEITEM_CODING_ALL;
        return NGX_CONF_OK;
    }

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        slcf->decompress = 0;
        return NGX_CONF_OK;
    }

    mask = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        coding = saveitem_coding_parse(value[i].data, value[i].len,
                                       SAVEITEM_CODING_ALL);

        if (coding <= 0 || (mask & coding)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\", it must be \"on\", "
                               "\"off\", or codings among \"gzip\", "
                               "\"deflate\" and \"zstd\", once each",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        mask |= coding;
    }

    slcf->decompress = mask;

    return NGX_CONF_OK;
}


static char *
ngx_http_saveitem_decompressed_max(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *size = data;

    if (*size == 0) {
        return "must be more than 0";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_saveitem_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_saveitem_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/*
 * The statement texts, once; then, at start, reload and `nginx -t`, each
 * table is asked whether it takes its statement (ngx_http_saveitem_db.c).
 */

static ngx_int_t
ngx_http_saveitem_init(ngx_conf_t *cf)
{
    ngx_uint_t                      i;
    ngx_http_handler_pt            *h;
    ngx_http_saveitem_db_t        **dbp;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_saveitem_module);

    if (smcf->dbs.nelts == 0) {
        return NGX_OK;
    }

    /* the counters of saveitem_status, and where requests are counted */

    if (ngx_http_saveitem_metrics_conf(cf, smcf) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_saveitem_log_handler;

    if (smcf->uses.nelts == 0) {
        return NGX_OK;
    }

    if (ngx_http_saveitem_db_stmts(cf, smcf) != NGX_OK) {
        return NGX_ERROR;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (ngx_http_saveitem_db_names(cf, dbp[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_process == NGX_PROCESS_SIGNALLER) {
        return NGX_OK;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (ngx_http_saveitem_db_check(cf, smcf, dbp[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_saveitem_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_saveitem_db_t        **dbp;
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_saveitem_module);
    if (smcf == NULL) {
        return NGX_OK;
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (ngx_http_saveitem_pool_init(cycle, dbp[i], smcf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_saveitem_metrics_init_process(cycle, smcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (smcf->metrics == NULL) {
        return NGX_OK;
    }

    /* the gauges of saveitem_status, written by the pools themselves */

    smcf->gauges.handler = ngx_http_saveitem_gauges_tick;
    smcf->gauges.data = smcf;
    smcf->gauges.log = cycle->log;
    smcf->gauges.cancelable = 1;

    ngx_http_saveitem_gauges_write(smcf);
    ngx_add_timer(&smcf->gauges, NGX_HTTP_SAVEITEM_GAUGES_TICK);

    return NGX_OK;
}


static void
ngx_http_saveitem_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_saveitem_db_t        **dbp;
    ngx_http_saveitem_main_conf_t  *smcf;

    smcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_saveitem_module);
    if (smcf == NULL) {
        return;
    }

    if (smcf->gauges.timer_set) {
        ngx_del_timer(&smcf->gauges);
    }

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (dbp[i]->pool) {
            ngx_http_saveitem_pool_done(dbp[i]->pool);
        }
    }

    ngx_http_saveitem_metrics_exit_process(cycle, smcf);
}


static void
ngx_http_saveitem_gauges_tick(ngx_event_t *ev)
{
    ngx_http_saveitem_gauges_write(ev->data);
    ngx_add_timer(ev, NGX_HTTP_SAVEITEM_GAUGES_TICK);
}


static void
ngx_http_saveitem_gauges_write(ngx_http_saveitem_main_conf_t *smcf)
{
    ngx_uint_t                 i;
    ngx_http_saveitem_db_t   **dbp;

    dbp = smcf->dbs.elts;

    for (i = 0; i < smcf->dbs.nelts; i++) {
        if (dbp[i]->pool) {
            ngx_http_saveitem_pool_publish(dbp[i]->pool);
        }
    }
}
