
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * The start-up check, at configuration time (in the master, or nginx -t):
 * each table takes its statement, prepared on the database as the workers
 * will prepare it.  A blocking connection in the master, so every step is
 * bounded (NGX_HTTP_SAVEITEM_CHECK_TIMEOUT): a table held by ALTER TABLE
 * or VACUUM FULL must not hang a start or a reload.
 */


#include <poll.h>

#include "ngx_http_saveitem.h"


static ngx_int_t ngx_http_saveitem_db_check_sql(ngx_conf_t *cf, PGconn *pg,
    ngx_http_saveitem_db_t *db, ngx_http_saveitem_use_t *use,
    ngx_http_saveitem_stmt_t *st, ngx_str_t *sql, const char *role,
    ngx_msec_t deadline);
static ngx_int_t ngx_http_saveitem_db_check_key(ngx_conf_t *cf, PGconn *pg,
    ngx_http_saveitem_db_t *db, ngx_http_saveitem_use_t *use,
    ngx_http_saveitem_stmt_t *st, const char *role, ngx_msec_t deadline);
static ngx_int_t ngx_http_saveitem_db_check_map(ngx_conf_t *cf, PGconn *pg,
    ngx_http_saveitem_main_conf_t *smcf, ngx_http_saveitem_db_t *db,
    ngx_http_saveitem_use_t *use, const char *role, ngx_msec_t deadline);
static PGresult *ngx_http_saveitem_db_run(PGconn *pg, const char *sql,
    ngx_uint_t prepare, ngx_msec_t deadline);
static ngx_int_t ngx_http_saveitem_db_wait(PGconn *pg, ngx_uint_t write,
    ngx_msec_t deadline);


/*
 * At start, reload and `nginx -t`, in the master: each table is asked
 * whether it takes its statement (a missing table or column, a missing
 * privilege is a configuration error).  A database that cannot be reached
 * or answer now is not an error: it may come up later.  Every step is
 * bounded: a table held by ALTER TABLE or VACUUM FULL, or a frozen server,
 * gives up within NGX_HTTP_SAVEITEM_CHECK_TIMEOUT.  The master may not be
 * who the workers are: the role checked is named in the log.
 */

ngx_int_t
ngx_http_saveitem_db_check(ngx_conf_t *cf,
    ngx_http_saveitem_main_conf_t *smcf, ngx_http_saveitem_db_t *db)
{
    PGconn                     *pg;
    ngx_int_t                   rc;
    ngx_msec_t                  deadline;
    ngx_uint_t                  i, k, n, checked;
    const char                 *keywords[NGX_HTTP_SAVEITEM_PARAMS + 1];
    const char                 *values[NGX_HTTP_SAVEITEM_PARAMS + 1];
    const char                 *why, *role;
    ngx_http_saveitem_use_t    *use;
    ngx_http_saveitem_stmt_t   *stmt, *st;
    ngx_http_saveitem_targets_t targets;
    PostgresPollingStatusType   status;
    u_char                      err[NGX_MAX_ERROR_STR];

    use = smcf->uses.elts;
    stmt = smcf->stmts.elts;

    n = ngx_http_saveitem_db_params(db, NULL, 0, &targets, keywords, values);
    keywords[n] = NULL;
    values[n] = NULL;

    ngx_time_update();
    deadline = ngx_current_msec + NGX_HTTP_SAVEITEM_CHECK_TIMEOUT;

    pg = PQconnectStartParams(keywords, values, 1);

    if (pg == NULL) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "saveitem: could not check the tables of %V now: "
                      "out of memory", &db->display);
        return NGX_OK;
    }

    why = NULL;
    status = PGRES_POLLING_WRITING;

    while (PQstatus(pg) != CONNECTION_BAD && status != PGRES_POLLING_OK) {

        if (status != PGRES_POLLING_READING
            && status != PGRES_POLLING_WRITING)
        {
            break;
        }

        if (ngx_http_saveitem_db_wait(pg, status == PGRES_POLLING_WRITING,
                                      deadline)
            != NGX_OK)
        {
            why = "timed out";
            break;
        }

        status = PQconnectPoll(pg);
    }

    if (status != PGRES_POLLING_OK || PQstatus(pg) != CONNECTION_OK) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "saveitem: could not connect to PostgreSQL (%V) to "
                      "check its tables now: %s", &db->display,
                      why ? why : (char *) ngx_http_saveitem_db_error(pg, err,
                                                                sizeof(err)));
        PQfinish(pg);
        return NGX_OK;
    }

    role = PQuser(pg);

    rc = NGX_OK;
    checked = 0;

    for (i = 0; i < smcf->uses.nelts; i++) {

        if (use[i].db != db) {
            continue;
        }

        st = &stmt[use[i].stmt];

        if (st->mapped && !st->built) {
            switch (ngx_http_saveitem_db_check_map(cf, pg, smcf, db, &use[i],
                                                   role, deadline))
            {
            case NGX_OK:
                break;

            case NGX_ERROR:
                rc = NGX_ERROR;
                continue;

            case NGX_ABORT:
                goto done;

            default: /* NGX_DECLINED */
                continue;
            }
        }

        for (k = 0; k < 2; k++) {

            if (k == 1 && st->idem.len == 0) {
                break;
            }

            switch (ngx_http_saveitem_db_check_sql(cf, pg, db, &use[i], st,
                                                   k ? &st->sql_key[1]
                                                     : &st->sql[1],
                                                   role, deadline))
            {
            case NGX_OK:
                checked++;
                break;

            case NGX_ERROR:
                rc = NGX_ERROR;
                break;

            case NGX_ABORT:
                /* the connection is in an unknown state: no more checks */
                goto done;

            default: /* NGX_DECLINED: could not check, said so */
                break;
            }
        }
    }

done:

    if (checked) {
        ngx_log_error(NGX_LOG_INFO, cf->log, 0,
                      "saveitem: PostgreSQL (%V) takes %ui statement(s), "
                      "checked as role \"%s\"", &db->display, checked, role);
    }

    PQfinish(pg);

    return rc;
}


/*
 * One statement checked: parsed and planned by the server (PREPARE of the
 * unnamed statement), in a transaction of its own whose lock and
 * statement timeouts go with it (nothing is left on a pooled server
 * connection).  NGX_OK: it takes it; NGX_ERROR: it refuses it (class 42),
 * said as [emerg]; NGX_DECLINED: could not tell now, said as [warn];
 * NGX_ABORT: the same, and the connection is of no more use.
 */

static ngx_int_t
ngx_http_saveitem_db_check_sql(ngx_conf_t *cf, PGconn *pg,
    ngx_http_saveitem_db_t *db, ngx_http_saveitem_use_t *use,
    ngx_http_saveitem_stmt_t *st, ngx_str_t *sql, const char *role,
    ngx_msec_t deadline)
{
    PGresult    *res;
    ngx_int_t    rc;
    const char  *sqlstate, *why;
    u_char       err[NGX_MAX_ERROR_STR];

    /* a lock is reported, not waited for */

    res = ngx_http_saveitem_db_run(pg, "BEGIN; SET LOCAL lock_timeout = 1000; "
                                   "SET LOCAL statement_timeout = 2000", 0,
                                   deadline);
    if (res == NULL) {
        why = NULL;
        rc = NGX_ABORT;
        goto failed;
    }

    PQclear(res);

    res = ngx_http_saveitem_db_run(pg, (char *) sql->data, 1, deadline);

    if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        rc = NGX_OK;

        if (st->sql_key != NULL && sql == &st->sql_key[1]) {
            rc = ngx_http_saveitem_db_check_key(cf, pg, db, use, st, role,
                                                deadline);
            if (rc == NGX_ABORT) {
                why = NULL;
                goto failed;
            }
        }

        goto rollback;
    }

    sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (sqlstate != NULL && ngx_strncmp(sqlstate, "42", 2) == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem\" in %s:%ui: PostgreSQL (%V) refuses "
                      "%V: %s (checked as role \"%s\")", use->file,
                      use->line, &db->display, sql,
                      PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY), role);
        PQclear(res);
        rc = NGX_ERROR;
        goto rollback;
    }

    if (res == NULL) {
        why = NULL;
        rc = NGX_ABORT;
        goto failed;
    }

    why = (sqlstate != NULL)
          ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                  "saveitem: could not check %V.%V on %V now: %s "
                  "(as role \"%s\")", &st->table, &st->column,
                  &db->display, why ? why : "unknown error", role);

    PQclear(res);
    rc = NGX_DECLINED;

rollback:

    res = ngx_http_saveitem_db_run(pg, "ROLLBACK", 0, deadline);

    if (res == NULL) {
        return NGX_ABORT;
    }

    PQclear(res);

    return rc;

failed:

    ngx_time_update();

    if (why == NULL) {
        why = (ngx_current_msec >= deadline)
              ? "no answer in time"
              : (char *) ngx_http_saveitem_db_error(pg, err, sizeof(err));
    }

    ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                  "saveitem: could not check %V.%V on %V now: %s "
                  "(as role \"%s\")", &st->table, &st->column,
                  &db->display, why, role);

    return rc;
}


/*
 * ON CONFLICT (key) needs a unique index on the key column alone; PREPARE
 * does not find out (the arbiter index is chosen when the statement is
 * planned), the catalog does
 */

static ngx_int_t
ngx_http_saveitem_db_check_key(ngx_conf_t *cf, PGconn *pg,
    ngx_http_saveitem_db_t *db, ngx_http_saveitem_use_t *use,
    ngx_http_saveitem_stmt_t *st, const char *role, ngx_msec_t deadline)
{
    char      *table, *column;
    u_char    *p;
    PGresult  *res;
    ngx_int_t  rc;
    u_char     sql[NGX_MAX_ERROR_STR];

    table = PQescapeLiteral(pg, (char *) st->table.data, st->table.len);
    column = PQescapeLiteral(pg, (char *) st->idem.data, st->idem.len);

    if (table == NULL || column == NULL) {
        rc = NGX_ABORT;
        goto done;
    }

    p = ngx_snprintf(sql, sizeof(sql) - 1,
                     "SELECT count(*) FROM pg_index i JOIN pg_attribute a "
                     "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                     "WHERE i.indrelid = %s::regclass AND i.indnkeyatts = 1 "
                     "AND i.indisunique AND i.indpred IS NULL "
                     "AND i.indexprs IS NULL "
                     "AND '\"' || replace(a.attname, '\"', '\"\"') || '\"' "
                     "= %s", table, column);
    *p = '\0';

    res = ngx_http_saveitem_db_run(pg, (char *) sql, 0, deadline);

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res != NULL) {
            PQclear(res);
        }

        rc = NGX_ABORT;
        goto done;
    }

    if (ngx_strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem\" in %s:%ui: the idempotency column %V of "
                      "%V has no unique index of its own on PostgreSQL (%V), "
                      "which INSERT ... ON CONFLICT (%V) needs (checked as "
                      "role \"%s\")", use->file, use->line, &st->idem,
                      &st->table, &db->display, &st->idem, role);
        rc = NGX_ERROR;

    } else {
        rc = NGX_OK;
    }

    PQclear(res);

done:

    if (table != NULL) {
        PQfreemem(table);
    }

    if (column != NULL) {
        PQfreemem(column);
    }

    return rc;
}


/*
 * Mapped columns: the table's columns, types, defaults and unique indexes
 * read from the catalog, and the statements made from them.  NGX_ERROR:
 * the table does not match the configuration, said as [emerg].
 */

static ngx_int_t
ngx_http_saveitem_db_check_map(ngx_conf_t *cf, PGconn *pg,
    ngx_http_saveitem_main_conf_t *smcf, ngx_http_saveitem_db_t *db,
    ngx_http_saveitem_use_t *use, const char *role, ngx_msec_t deadline)
{
    PGresult                  *res;
    ngx_int_t                  rc;
    const char                *table, *sqlstate;
    ngx_http_saveitem_stmt_t  *st;
    u_char                     err[NGX_MAX_ERROR_STR];

    st = (ngx_http_saveitem_stmt_t *) smcf->stmts.elts + use->stmt;

    /* the quoted name, null-terminated: see ngx_http_saveitem_quote() */

    table = (const char *) st->table.data;

    if (!PQsendQueryParams(pg, ngx_http_saveitem_map_catalog, 1, NULL,
                           &table, NULL, NULL, 0))
    {
        return NGX_ABORT;
    }

    res = ngx_http_saveitem_db_run(pg, NULL, 0, deadline);

    if (res == NULL) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "saveitem: could not read the columns of %V on %V "
                      "now: %s", &st->table, &db->display,
                      ngx_http_saveitem_db_error(pg, err, sizeof(err)));
        return NGX_ABORT;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        if (sqlstate != NULL && ngx_strncmp(sqlstate, "42", 2) == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"saveitem\" in %s:%ui: PostgreSQL (%V) has no "
                          "table %V: %s (checked as role \"%s\")",
                          use->file, use->line, &db->display, &st->table,
                          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                          role);
            PQclear(res);
            return NGX_ERROR;
        }

        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "saveitem: could not read the columns of %V on %V "
                      "now: %s", &st->table, &db->display,
                      sqlstate ? PQresultErrorField(res,
                                                    PG_DIAG_MESSAGE_PRIMARY)
                               : "unknown error");
        PQclear(res);
        return NGX_DECLINED;
    }

    rc = ngx_http_saveitem_map_build(cf->pool, st, use->stmt,
                                     smcf->batch_max, res);
    PQclear(res);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"saveitem\" in %s:%ui: table %V on PostgreSQL (%V) "
                      "does not match the configuration: %V (checked as "
                      "role \"%s\")", use->file, use->line, &st->table,
                      &db->display, &st->error, role);
        return NGX_ERROR;
    }

    return rc;
}


/*
 * One statement (or an unnamed PREPARE), its last result; NULL: none.
 * sql NULL: the results of what was sent already.
 */

static PGresult *
ngx_http_saveitem_db_run(PGconn *pg, const char *sql, ngx_uint_t prepare,
    ngx_msec_t deadline)
{
    int        ok;
    PGresult  *res, *last;

    if (sql != NULL) {
        ok = prepare ? PQsendPrepare(pg, "", sql, 1, NULL)
                     : PQsendQuery(pg, sql);

        if (!ok) {
            return NULL;
        }
    }

    last = NULL;

    for ( ;; ) {

        while (PQisBusy(pg)) {
            if (ngx_http_saveitem_db_wait(pg, 0, deadline) != NGX_OK
                || !PQconsumeInput(pg))
            {
                if (last != NULL) {
                    PQclear(last);
                }

                return NULL;
            }
        }

        res = PQgetResult(pg);

        if (res == NULL) {
            return last;
        }

        if (last != NULL) {
            PQclear(last);
        }

        last = res;
    }
}


static ngx_int_t
ngx_http_saveitem_db_wait(PGconn *pg, ngx_uint_t write, ngx_msec_t deadline)
{
    int            n;
    struct pollfd  pfd;

    pfd.fd = PQsocket(pg);
    pfd.events = write ? POLLOUT : POLLIN;

    if (pfd.fd == -1) {
        return NGX_ERROR;
    }

    for ( ;; ) {
        ngx_time_update();

        if (ngx_current_msec >= deadline) {
            return NGX_AGAIN;
        }

        n = poll(&pfd, 1, (int) (deadline - ngx_current_msec));

        if (n > 0) {
            return NGX_OK;
        }

        if (n == -1 && ngx_errno != NGX_EINTR) {
            return NGX_ERROR;
        }
    }
}
