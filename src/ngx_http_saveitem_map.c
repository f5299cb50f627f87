
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * Mapped columns (saveitem_field, saveitem_value, saveitem_conflict,
 * column=off): the table as the catalog describes it, the statements that
 * fill it, and a document judged against it.
 *
 * The catalog is read once: at start, in the master, when the database
 * answers (src/ngx_http_saveitem_db_check.c), otherwise by a worker's
 * connection before the location's first statement.  From it come each
 * column's type (which the module judges values against, and casts to),
 * its DEFAULT (an omitted key gets it, an explicit null is NULL), whether
 * it is an identity, and the unique indexes an upsert or a key needs.
 *
 * Every statement takes, per row, the document as text and the nginx
 * values as a JSON array, both parsed once (a MATERIALIZED CTE); the
 * values of the columns are taken from them by the server, so that one
 * text serves every document however many of its keys are present.
 */


#include "ngx_http_saveitem.h"


#define NGX_HTTP_SAVEITEM_MAP_ROW_LEN  (sizeof(",(, $::text, $::text, $::)") \
                                        + 3 * NGX_INT_T_LEN)


typedef struct {
    ngx_uint_t                 row;       /* in the catalog's result */
    ngx_str_t                  type;      /* format_type(), no modifier */
    ngx_str_t                  def;       /* the DEFAULT, or empty */
    unsigned                   json:1;    /* json: compared as jsonb */
    unsigned                   always:1;  /* GENERATED ALWAYS AS IDENTITY */
} ngx_http_saveitem_map_col_t;


typedef struct {
    ngx_pool_t                *pool;
    ngx_http_saveitem_stmt_t  *stmt;
    PGresult                  *res;
    ngx_uint_t                 index;
    ngx_uint_t                 batch_max;
    ngx_http_saveitem_map_col_t *cols;    /* as stmt->cols */
    ngx_str_t                  doc_type;  /* of column=, or empty */
    ngx_str_t                  key_type;  /* of idempotency= */
    ngx_str_t                  exprs;     /* the values, as SELECTed */
    ngx_str_t                  names;     /* the columns they go into */
    ngx_str_t                  exprs_key; /* the same, with the key last */
    ngx_str_t                  names_key;
    ngx_str_t                  same;      /* a key's row, unchanged */
    ngx_str_t                  upsert;    /* ON CONFLICT ... */
    ngx_uint_t                 overriding;
} ngx_http_saveitem_map_ctx_t;


static ngx_int_t ngx_http_saveitem_map_find(ngx_http_saveitem_map_ctx_t *mc,
    ngx_str_t *name, ngx_uint_t *row);
static ngx_int_t ngx_http_saveitem_map_columns(
    ngx_http_saveitem_map_ctx_t *mc);
static ngx_int_t ngx_http_saveitem_map_unique(ngx_http_saveitem_map_ctx_t *mc,
    ngx_str_t *names, ngx_uint_t n);
static ngx_int_t ngx_http_saveitem_map_exprs(ngx_http_saveitem_map_ctx_t *mc);
static u_char *ngx_http_saveitem_map_expr(u_char *p, u_char *last,
    ngx_http_saveitem_col_t *col, ngx_http_saveitem_map_col_t *mcol);
static u_char *ngx_http_saveitem_map_path(u_char *p, u_char *last,
    ngx_http_saveitem_col_t *col);
static u_char *ngx_http_saveitem_map_literal(u_char *p, u_char *last,
    saveitem_part_t *part);
static ngx_int_t ngx_http_saveitem_map_texts(ngx_http_saveitem_map_ctx_t *mc);
static ngx_int_t ngx_http_saveitem_map_text(ngx_http_saveitem_map_ctx_t *mc,
    ngx_uint_t n, ngx_uint_t keyed, ngx_str_t *sql, ngx_str_t *name);
static ngx_int_t ngx_http_saveitem_map_bulk(ngx_http_saveitem_map_ctx_t *mc,
    ngx_uint_t probe, ngx_str_t *sql, ngx_str_t *name);
static ngx_int_t ngx_http_saveitem_map_fail(ngx_http_saveitem_map_ctx_t *mc,
    const char *fmt, ngx_str_t *what);
static char *ngx_http_saveitem_map_value(PGresult *res, ngx_uint_t row,
    ngx_uint_t field);


/*
 * The table's columns ('c') and the columns of its plain unique indexes
 * ('u', one row per column, by index), with one parameter: the table's
 * name as the statements quote it.  An identity's default is its
 * sequence's next value.
 */

const char  ngx_http_saveitem_map_catalog[] =
    "SELECT 'c', a.attnum::int8, a.attname::text, "
    "(CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem "
    "ELSE a.atttypid END)::int8, "
    "(t.typcategory = 'A' AND t.typelem <> 0)::int, a.atttypmod, "
    "a.attnotnull::int, "
    "CASE WHEN a.attidentity <> '' THEN format('nextval(%L::regclass)', "
    "pg_get_serial_sequence($1::text, a.attname)) "
    "ELSE pg_get_expr(d.adbin, d.adrelid) END, "
    "a.attidentity::text, a.attgenerated::text, "
    "format_type(a.atttypid, NULL), format_type(a.atttypid, a.atttypmod) "
    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 "
    "AND NOT a.attisdropped "
    "UNION ALL "
    "SELECT 'u', i.indexrelid::int8, a.attname::text, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL "
    "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
    "AND a.attnum = ANY (i.indkey) "
    "WHERE i.indrelid = $1::text::regclass AND i.indisunique "
    "AND i.indpred IS NULL AND i.indexprs IS NULL";


enum {
    NGX_HTTP_SAVEITEM_CAT_KIND = 0,
    NGX_HTTP_SAVEITEM_CAT_NUM,
    NGX_HTTP_SAVEITEM_CAT_NAME,
    NGX_HTTP_SAVEITEM_CAT_OID,
    NGX_HTTP_SAVEITEM_CAT_ARRAY,
    NGX_HTTP_SAVEITEM_CAT_TYPMOD,
    NGX_HTTP_SAVEITEM_CAT_NOTNULL,
    NGX_HTTP_SAVEITEM_CAT_DEFAULT,
    NGX_HTTP_SAVEITEM_CAT_IDENTITY,
    NGX_HTTP_SAVEITEM_CAT_GENERATED,
    NGX_HTTP_SAVEITEM_CAT_TYPE,
    NGX_HTTP_SAVEITEM_CAT_FULL,
    NGX_HTTP_SAVEITEM_CAT_FIELDS
};


/*
 * Builds the statements of a mapped location from the catalog's answer.
 * NGX_DECLINED: the table does not match the configuration, and
 * stmt->error says why (allocated from pool); NGX_ERROR: no memory.
 */

ngx_int_t
ngx_http_saveitem_map_build(ngx_pool_t *pool, ngx_http_saveitem_stmt_t *stmt,
    ngx_uint_t index, ngx_uint_t batch_max, PGresult *res)
{
    ngx_int_t                     rc;
    ngx_str_t                     msg;
    ngx_http_saveitem_map_ctx_t   mc;

    ngx_memzero(&mc, sizeof(ngx_http_saveitem_map_ctx_t));

    mc.pool = pool;
    mc.stmt = stmt;
    mc.res = res;
    mc.index = index;
    mc.batch_max = batch_max;

    stmt->broken = 0;
    ngx_str_null(&stmt->error);

    if (PQresultStatus(res) != PGRES_TUPLES_OK
        || PQnfields(res) != NGX_HTTP_SAVEITEM_CAT_FIELDS)
    {
        msg.data = (u_char *) PQresultErrorField(res,
                                                 PG_DIAG_MESSAGE_PRIMARY);
        if (msg.data == NULL) {
            ngx_str_set(&msg, "the catalog gave no answer");

        } else {
            msg.len = ngx_strlen(msg.data);
        }

        return ngx_http_saveitem_map_fail(&mc, "%V", &msg);
    }

    if (PQntuples(res) == 0) {
        return ngx_http_saveitem_map_fail(&mc, "table %V has no columns",
                                          &stmt->table);
    }

    mc.cols = ngx_pcalloc(pool, (stmt->ncols + 1)
                                * sizeof(ngx_http_saveitem_map_col_t));
    if (mc.cols == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_saveitem_map_columns(&mc);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_saveitem_map_exprs(&mc);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_saveitem_map_texts(&mc);
    if (rc != NGX_OK) {
        return rc;
    }

    stmt->built = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_saveitem_map_find(ngx_http_saveitem_map_ctx_t *mc, ngx_str_t *name,
    ngx_uint_t *row)
{
    int          r;
    const char  *v;

    for (r = 0; r < PQntuples(mc->res); r++) {
        v = PQgetvalue(mc->res, r, NGX_HTTP_SAVEITEM_CAT_KIND);

        if (v[0] != 'c') {
            continue;
        }

        if ((size_t) PQgetlength(mc->res, r, NGX_HTTP_SAVEITEM_CAT_NAME)
            == name->len
            && ngx_strncmp(PQgetvalue(mc->res, r, NGX_HTTP_SAVEITEM_CAT_NAME),
                           name->data, name->len) == 0)
        {
            *row = r;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* each mapped column as the catalog has it */

static ngx_int_t
ngx_http_saveitem_map_columns(ngx_http_saveitem_map_ctx_t *mc)
{
    char                         *v;
    ngx_str_t                     name;
    ngx_int_t                     mod;
    ngx_uint_t                    i, row;
    ngx_http_saveitem_col_t      *col;
    ngx_http_saveitem_stmt_t     *stmt;
    ngx_http_saveitem_map_col_t  *mcol;

    stmt = mc->stmt;

    /* the quoted names of the configuration, as written, unquoted */

    for (i = 0; i < stmt->ncols; i++) {
        col = &stmt->cols[i];
        mcol = &mc->cols[i];

        if (ngx_http_saveitem_map_find(mc, &col->name, &row) != NGX_OK) {
            return ngx_http_saveitem_map_fail(mc, "column \"%V\" does not "
                                              "exist", &col->name);
        }

        mcol->row = row;

        v = ngx_http_saveitem_map_value(mc->res, row,
                                        NGX_HTTP_SAVEITEM_CAT_GENERATED);
        if (v[0] != '\0') {
            return ngx_http_saveitem_map_fail(mc, "column \"%V\" is "
                                              "generated: nothing can be "
                                              "stored in it", &col->name);
        }

        v = ngx_http_saveitem_map_value(mc->res, row,
                                        NGX_HTTP_SAVEITEM_CAT_IDENTITY);
        mcol->always = (v[0] == 'a');

        if (mcol->always) {
            mc->overriding = 1;
        }

        col->type.kind = saveitem_type_kind(
                              ngx_atoi((u_char *) PQgetvalue(mc->res, row,
                                                 NGX_HTTP_SAVEITEM_CAT_OID),
                                       PQgetlength(mc->res, row,
                                                 NGX_HTTP_SAVEITEM_CAT_OID)));
        col->type.array = (PQgetvalue(mc->res, row,
                                      NGX_HTTP_SAVEITEM_CAT_ARRAY)[0] == '1');
        col->type.not_null = (PQgetvalue(mc->res, row,
                                      NGX_HTTP_SAVEITEM_CAT_NOTNULL)[0] == '1');

        /* varchar(n), char(n): atttypmod is n + 4 */

        v = PQgetvalue(mc->res, row, NGX_HTTP_SAVEITEM_CAT_TYPMOD);
        mod = (v[0] == '-') ? -1 : ngx_atoi((u_char *) v, ngx_strlen(v));

        col->type.max_chars = (col->type.kind == SAVEITEM_TYPE_TEXT
                               && mod > 4) ? (size_t) (mod - 4) : 0;

        v = ngx_http_saveitem_map_value(mc->res, row,
                                        NGX_HTTP_SAVEITEM_CAT_FULL);
        col->type_name.len = ngx_strlen(v);
        col->type_name.data = ngx_pstrdup(mc->pool, &(ngx_str_t) {
                                              col->type_name.len,
                                              (u_char *) v });
        if (col->type_name.data == NULL) {
            return NGX_ERROR;
        }

        v = ngx_http_saveitem_map_value(mc->res, row,
                                        NGX_HTTP_SAVEITEM_CAT_TYPE);
        mcol->type.len = ngx_strlen(v);
        mcol->type.data = ngx_pstrdup(mc->pool, &(ngx_str_t) {
                                          mcol->type.len, (u_char *) v });
        if (mcol->type.data == NULL) {
            return NGX_ERROR;
        }

        mcol->json = (col->type.kind == SAVEITEM_TYPE_JSON);

        v = ngx_http_saveitem_map_value(mc->res, row,
                                        NGX_HTTP_SAVEITEM_CAT_DEFAULT);
        col->has_default = (v[0] != '\0');

        if (col->has_default) {
            mcol->def.len = ngx_strlen(v);
            mcol->def.data = ngx_pstrdup(mc->pool, &(ngx_str_t) {
                                             mcol->def.len, (u_char *) v });
            if (mcol->def.data == NULL) {
                return NGX_ERROR;
            }
        }
    }

    /* the others named: the document's column, the key, what is returned */

    if (stmt->column_name.len) {
        if (ngx_http_saveitem_map_find(mc, &stmt->column_name, &row)
            != NGX_OK)
        {
            return ngx_http_saveitem_map_fail(mc, "column \"%V\" does not "
                                              "exist", &stmt->column_name);
        }

        v = ngx_http_saveitem_map_value(mc->res, row,
                                        NGX_HTTP_SAVEITEM_CAT_TYPE);
        mc->doc_type.len = ngx_strlen(v);
        mc->doc_type.data = ngx_pstrdup(mc->pool, &(ngx_str_t) {
                                            mc->doc_type.len, (u_char *) v });
        if (mc->doc_type.data == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_saveitem_map_find(mc, &stmt->returning_name, &row)
        != NGX_OK)
    {
        return ngx_http_saveitem_map_fail(mc, "column \"%V\" (returning=) "
                                          "does not exist",
                                          &stmt->returning_name);
    }

    if (stmt->idem_name.len) {
        if (ngx_http_saveitem_map_find(mc, &stmt->idem_name, &row)
            != NGX_OK)
        {
            return ngx_http_saveitem_map_fail(mc, "column \"%V\" "
                                              "(idempotency=) does not "
                                              "exist", &stmt->idem_name);
        }

        v = ngx_http_saveitem_map_value(mc->res, row,
                                        NGX_HTTP_SAVEITEM_CAT_TYPE);
        mc->key_type.len = ngx_strlen(v);
        mc->key_type.data = ngx_pstrdup(mc->pool, &(ngx_str_t) {
                                            mc->key_type.len, (u_char *) v });
        if (mc->key_type.data == NULL) {
            return NGX_ERROR;
        }

        if (ngx_http_saveitem_map_unique(mc, &stmt->idem_name, 1) != NGX_OK) {
            return ngx_http_saveitem_map_fail(mc, "no unique index on "
                                              "exactly (%V) for "
                                              "idempotency=",
                                              &stmt->idem_name);
        }
    }

    if (stmt->upsert) {
        if (ngx_http_saveitem_map_unique(mc, stmt->conflict, stmt->nconflict)
            != NGX_OK)
        {
            name = stmt->conflict_text;
            return ngx_http_saveitem_map_fail(mc, "no unique index on "
                                              "exactly (%V) for "
                                              "saveitem_conflict", &name);
        }
    }

    return NGX_OK;
}


/* a plain unique index on exactly these columns, in any order */

static ngx_int_t
ngx_http_saveitem_map_unique(ngx_http_saveitem_map_ctx_t *mc,
    ngx_str_t *names, ngx_uint_t n)
{
    int          r, s;
    char        *index, *other, *name;
    size_t       len;
    ngx_uint_t   i, count, found;

    for (r = 0; r < PQntuples(mc->res); r++) {

        if (PQgetvalue(mc->res, r, NGX_HTTP_SAVEITEM_CAT_KIND)[0] != 'u') {
            continue;
        }

        index = PQgetvalue(mc->res, r, NGX_HTTP_SAVEITEM_CAT_NUM);

        /* the first row of each index only */

        for (s = 0; s < r; s++) {
            other = PQgetvalue(mc->res, s, NGX_HTTP_SAVEITEM_CAT_NUM);

            if (PQgetvalue(mc->res, s, NGX_HTTP_SAVEITEM_CAT_KIND)[0] == 'u'
                && ngx_strcmp(other, index) == 0)
            {
                break;
            }
        }

        if (s < r) {
            continue;
        }

        count = 0;
        found = 0;

        for (s = r; s < PQntuples(mc->res); s++) {
            other = PQgetvalue(mc->res, s, NGX_HTTP_SAVEITEM_CAT_NUM);

            if (PQgetvalue(mc->res, s, NGX_HTTP_SAVEITEM_CAT_KIND)[0] != 'u'
                || ngx_strcmp(other, index) != 0)
            {
                continue;
            }

            count++;
            name = PQgetvalue(mc->res, s, NGX_HTTP_SAVEITEM_CAT_NAME);
            len = PQgetlength(mc->res, s, NGX_HTTP_SAVEITEM_CAT_NAME);

            for (i = 0; i < n; i++) {
                if (names[i].len == len
                    && ngx_strncmp(names[i].data, name, len) == 0)
                {
                    found++;
                    break;
                }
            }
        }

        if (count == n && found == n) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * The values SELECTed from saveitem_w (n, t: the document as text, d: as
 * jsonb, e: the nginx values, k: the key) and the columns they go into,
 * once without and once with the key; the replay test of a key; the
 * ON CONFLICT clause of an upsert.
 */

static ngx_int_t
ngx_http_saveitem_map_exprs(ngx_http_saveitem_map_ctx_t *mc)
{
    u_char                       *p, *last, *q, *qlast;
    size_t                        len;
    ngx_uint_t                    i, j, first, keyed, same;
    ngx_http_saveitem_col_t      *col;
    ngx_http_saveitem_stmt_t     *stmt;
    ngx_http_saveitem_map_col_t  *mcol;

    stmt = mc->stmt;

    len = 256 + stmt->column.len + mc->doc_type.len;

    for (i = 0; i < stmt->ncols; i++) {
        col = &stmt->cols[i];
        len += 512 + 3 * col->quoted.len + 2 * mc->cols[i].type.len
               + mc->cols[i].def.len + 4 * col->path.len
               + col->nparts * 32 + stmt->idem.len;
    }

    for (keyed = 0; keyed < 2; keyed++) {

        if (keyed && stmt->idem.len == 0) {
            break;
        }

        p = ngx_pnalloc(mc->pool, len);
        q = ngx_pnalloc(mc->pool, len);
        if (p == NULL || q == NULL) {
            return NGX_ERROR;
        }

        last = p + len;
        qlast = q + len;

        (keyed ? &mc->exprs_key : &mc->exprs)->data = p;
        (keyed ? &mc->names_key : &mc->names)->data = q;

        first = 1;

        for (i = 0; i < stmt->ncols; i++) {
            if (keyed && (ngx_int_t) i == stmt->key_col) {
                continue;
            }

            col = &stmt->cols[i];

            if (!first) {
                p = ngx_slprintf(p, last, ", ");
                q = ngx_slprintf(q, qlast, ", ");
            }

            first = 0;

            p = ngx_http_saveitem_map_expr(p, last, col, &mc->cols[i]);
            q = ngx_slprintf(q, qlast, "%V", &col->quoted);
        }

        if (stmt->column.len) {
            p = ngx_slprintf(p, last, "%s%s", first ? "" : ", ",
                             ngx_strncmp(mc->doc_type.data, "jsonb", 5) == 0
                             && mc->doc_type.len == 5 ? "d" : "t");
            q = ngx_slprintf(q, qlast, "%s%V", first ? "" : ", ",
                             &stmt->column);
            first = 0;
        }

        if (keyed) {
            p = ngx_slprintf(p, last, "%sk", first ? "" : ", ");
            q = ngx_slprintf(q, qlast, "%s%V", first ? "" : ", ",
                             &stmt->idem);
            first = 0;
        }

        if (first || p == last || q == qlast) {
            return ngx_http_saveitem_map_fail(mc, "nothing to store in %V",
                                              &stmt->table);
        }

        (keyed ? &mc->exprs_key : &mc->exprs)->len =
                                  p - (keyed ? mc->exprs_key : mc->exprs).data;
        (keyed ? &mc->names_key : &mc->names)->len =
                                  q - (keyed ? mc->names_key : mc->names).data;
    }

    /* a key stored with the same document, or the same values */

    if (stmt->idem.len) {
        p = ngx_pnalloc(mc->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        last = p + len;
        mc->same.data = p;

        if (stmt->column.len) {
            p = ngx_slprintf(p, last, "saveitem_row.%V::jsonb = "
                             "EXCLUDED.%V::jsonb",
                             &stmt->column, &stmt->column);

        } else {
            same = 0;

            for (i = 0; i < stmt->ncols; i++) {
                col = &stmt->cols[i];
                mcol = &mc->cols[i];

                if (col->value >= 0 || (ngx_int_t) i == stmt->key_col) {
                    continue;
                }

                p = ngx_slprintf(p, last, "%s(saveitem_row.%V%s IS NOT "
                                 "DISTINCT FROM EXCLUDED.%V%s",
                                 same ? " AND " : "",
                                 &col->quoted, mcol->json ? "::jsonb" : "",
                                 &col->quoted, mcol->json ? "::jsonb" : "");

                /*
                 * a key the document leaves out took the column's DEFAULT,
                 * which may differ each time (now()): not compared
                 */

                if (mcol->def.len) {
                    p = ngx_slprintf(p, last, " OR (SELECT ");
                    p = ngx_http_saveitem_map_path(p, last, col);
                    p = ngx_slprintf(p, last, " IS NULL FROM saveitem_w "
                                     "WHERE saveitem_w.k = EXCLUDED.%V)",
                                     &stmt->idem);
                }

                p = ngx_slprintf(p, last, ")");
                same = 1;
            }

            if (!same) {
                p = ngx_slprintf(p, last, "true");
            }
        }

        if (p == last) {
            return NGX_ERROR;
        }

        mc->same.len = p - mc->same.data;
    }

    /* saveitem_conflict: every other column updated, or one set to itself */

    if (stmt->upsert) {
        p = ngx_pnalloc(mc->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        last = p + len;
        mc->upsert.data = p;

        p = ngx_slprintf(p, last, " ON CONFLICT (%V) DO UPDATE SET ",
                         &stmt->conflict_quoted);
        first = 1;

        if (stmt->upsert == NGX_HTTP_SAVEITEM_UPSERT_UPDATE) {
            for (i = 0; i < stmt->ncols; i++) {
                col = &stmt->cols[i];

                for (j = 0; j < stmt->nconflict; j++) {
                    if (col->name.len == stmt->conflict[j].len
                        && ngx_strncmp(col->name.data, stmt->conflict[j].data,
                                       col->name.len) == 0)
                    {
                        break;
                    }
                }

                if (j < stmt->nconflict) {
                    continue;
                }

                p = ngx_slprintf(p, last, "%s%V = EXCLUDED.%V",
                                 first ? "" : ", ", &col->quoted,
                                 &col->quoted);
                first = 0;
            }

            if (stmt->column.len) {
                p = ngx_slprintf(p, last, "%s%V = EXCLUDED.%V",
                                 first ? "" : ", ", &stmt->column,
                                 &stmt->column);
                first = 0;
            }
        }

        if (first) {
            /* "nothing", or nothing else to update: the row locked, kept */

            p = ngx_slprintf(p, last, "%V = saveitem_row.%V",
                             &stmt->conflict_first, &stmt->conflict_first);
        }

        if (p == last) {
            return NGX_ERROR;
        }

        mc->upsert.len = p - mc->upsert.data;
    }

    return NGX_OK;
}


/*
 * A field: the key's value converted to the column's type by the server,
 * the column's DEFAULT when the key is absent, NULL for an explicit null.
 * A value from nginx: its text, cast; an empty one came as null.
 */

static u_char *
ngx_http_saveitem_map_expr(u_char *p, u_char *last,
    ngx_http_saveitem_col_t *col, ngx_http_saveitem_map_col_t *mcol)
{
    u_char  *x, *xlast;
    u_char   buf[1024];

    if (col->value >= 0) {
        return ngx_slprintf(p, last, "(e ->> %i)::%V", col->value,
                            &mcol->type);
    }

    x = buf;
    xlast = buf + sizeof(buf);

    x = ngx_http_saveitem_map_path(x, xlast, col);

    if (x == xlast) {
        return last;
    }

    if (mcol->def.len) {
        p = ngx_slprintf(p, last, "CASE WHEN %*s IS NULL THEN (%V)::%V ELSE ",
                         x - buf, buf, &mcol->def, &mcol->type);
    }

    if (col->type.array) {
        p = ngx_slprintf(p, last, "CASE jsonb_typeof(%*s) WHEN 'array' THEN "
                         "ARRAY(SELECT jsonb_array_elements_text(%*s))::%V "
                         "END", x - buf, buf, x - buf, buf, &mcol->type);

    } else if (col->type.kind == SAVEITEM_TYPE_JSON
               || col->type.kind == SAVEITEM_TYPE_JSONB)
    {
        p = ngx_slprintf(p, last, "NULLIF(%*s, 'null'::jsonb)::%V",
                         x - buf, buf, &mcol->type);

    } else {
        p = ngx_slprintf(p, last, "(%*s #>> '{}')::%V", x - buf, buf,
                         &mcol->type);
    }

    if (mcol->def.len) {
        p = ngx_slprintf(p, last, " END");
    }

    return p;
}


/* the key's value in the document d, jsonb, or SQL NULL when absent */

static u_char *
ngx_http_saveitem_map_path(u_char *p, u_char *last,
    ngx_http_saveitem_col_t *col)
{
    ngx_uint_t  i;

    if (col->nparts == 1) {
        p = ngx_slprintf(p, last, "(d -> ");
        p = ngx_http_saveitem_map_literal(p, last, &col->parts[0]);
        return ngx_slprintf(p, last, ")");
    }

    p = ngx_slprintf(p, last, "jsonb_extract_path(d");

    for (i = 0; i < col->nparts; i++) {
        p = ngx_slprintf(p, last, ", ");
        p = ngx_http_saveitem_map_literal(p, last, &col->parts[i]);
    }

    return ngx_slprintf(p, last, ")");
}


/* a key of a path as an SQL string, whatever standard_conforming_strings */

static u_char *
ngx_http_saveitem_map_literal(u_char *p, u_char *last, saveitem_part_t *part)
{
    size_t  i;

    p = ngx_slprintf(p, last, "E'");

    for (i = 0; i < part->len && p + 2 < last; i++) {
        if (part->data[i] == '\'' || part->data[i] == '\\') {
            *p++ = part->data[i];
        }

        *p++ = part->data[i];
    }

    return ngx_slprintf(p, last, "'::text");
}


static ngx_int_t
ngx_http_saveitem_map_texts(ngx_http_saveitem_map_ctx_t *mc)
{
    ngx_uint_t                 n;
    ngx_http_saveitem_stmt_t  *stmt;

    stmt = mc->stmt;

    stmt->sql = ngx_pcalloc(mc->pool, (mc->batch_max + 1) * sizeof(ngx_str_t));
    stmt->name = ngx_pcalloc(mc->pool,
                             (mc->batch_max + 1) * sizeof(ngx_str_t));
    if (stmt->sql == NULL || stmt->name == NULL) {
        return NGX_ERROR;
    }

    if (stmt->idem.len) {
        stmt->sql_key = ngx_pcalloc(mc->pool,
                                    (mc->batch_max + 1) * sizeof(ngx_str_t));
        stmt->name_key = ngx_pcalloc(mc->pool,
                                     (mc->batch_max + 1) * sizeof(ngx_str_t));
        if (stmt->sql_key == NULL || stmt->name_key == NULL) {
            return NGX_ERROR;
        }
    }

    for (n = 1; n <= mc->batch_max; n++) {
        if (ngx_http_saveitem_map_text(mc, n, 0, &stmt->sql[n],
                                       &stmt->name[n])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (stmt->idem.len
            && ngx_http_saveitem_map_text(mc, n, 1, &stmt->sql_key[n],
                                          &stmt->name_key[n])
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_saveitem_map_bulk(mc, 0, &stmt->sql_bulk, &stmt->name_bulk)
        != NGX_OK
        || ngx_http_saveitem_map_bulk(mc, 1, &stmt->sql_probe,
                                      &stmt->name_probe)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * n rows; each row's parameters are the document, the nginx values, and
 * with keyed its key (cast to the key column's type).  The rows are
 * inserted in order and their keys come back in order; with several rows
 * the statement fails (22012) unless every row was inserted, as the
 * unmapped statements do (src/ngx_http_saveitem_db.c).  A keyed one, and
 * an upsert, returns each row as (its place, its key, what happened).
 */

static ngx_int_t
ngx_http_saveitem_map_text(ngx_http_saveitem_map_ctx_t *mc, ngx_uint_t n,
    ngx_uint_t keyed, ngx_str_t *sql, ngx_str_t *name)
{
    u_char                    *p, *last;
    size_t                     len;
    ngx_uint_t                 k, per;
    ngx_http_saveitem_stmt_t  *stmt;

    stmt = mc->stmt;
    per = keyed ? 3 : 2;

    len = 1024 + mc->exprs_key.len + mc->exprs.len + mc->names_key.len
          + mc->names.len + mc->same.len + mc->upsert.len
          + 4 * stmt->table.len + 4 * stmt->idem.len
          + 2 * stmt->returning.len
          + n * (NGX_HTTP_SAVEITEM_MAP_ROW_LEN + mc->key_type.len);

    p = ngx_pnalloc(mc->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = p + len - 1;
    sql->data = p;

    p = ngx_slprintf(p, last, "WITH saveitem_w AS MATERIALIZED (SELECT n, t, "
                     "t::jsonb AS d, e::jsonb AS e%s FROM (VALUES ",
                     keyed ? ", k" : "");

    for (k = 0; k < n; k++) {
        p = ngx_slprintf(p, last, "%s(%ui, $%ui::text, $%ui::text",
                         k ? ", " : "", k + 1, per * k + 1, per * k + 2);

        if (keyed) {
            p = ngx_slprintf(p, last, ", $%ui::%V", per * k + 3,
                             &mc->key_type);
        }

        p = ngx_slprintf(p, last, ")");
    }

    p = ngx_slprintf(p, last, ") AS saveitem_v (n, t, e%s)), "
                     "saveitem_i AS (INSERT INTO %V AS saveitem_row (%V)%s "
                     "SELECT %V FROM saveitem_w ORDER BY n",
                     keyed ? ", k" : "", &stmt->table,
                     keyed ? &mc->names_key : &mc->names,
                     mc->overriding ? " OVERRIDING SYSTEM VALUE" : "",
                     keyed ? &mc->exprs_key : &mc->exprs);

    if (keyed) {
        p = ngx_slprintf(p, last, " ON CONFLICT (%V) DO UPDATE SET %V = "
                         "EXCLUDED.%V WHERE %V RETURNING saveitem_row.%V AS "
                         "saveitem_k, saveitem_row.%V AS saveitem_pk, "
                         "saveitem_row.xmax <> 0 AS saveitem_r) "
                         "SELECT saveitem_w.n, saveitem_i.saveitem_pk, "
                         "CASE WHEN saveitem_i.saveitem_r THEN 'r' "
                         "WHEN saveitem_i.saveitem_r IS NOT NULL THEN 'n' "
                         "WHEN EXISTS (SELECT 1 FROM %V saveitem_s "
                         "WHERE saveitem_s.%V = saveitem_w.k) THEN 'k' "
                         "ELSE 's' END FROM saveitem_w LEFT JOIN saveitem_i "
                         "ON saveitem_i.saveitem_k = saveitem_w.k "
                         "ORDER BY saveitem_w.n",
                         &stmt->idem, &stmt->idem, &stmt->idem, &mc->same,
                         &stmt->idem, &stmt->returning, &stmt->table,
                         &stmt->idem);

    } else if (stmt->upsert) {
        p = ngx_slprintf(p, last, "%V RETURNING saveitem_row.%V AS "
                         "saveitem_pk, saveitem_row.xmax <> 0 AS saveitem_r) ",
                         &mc->upsert, &stmt->returning);

        if (n == 1) {
            /* a trigger may skip the row: 's' */

            p = ngx_slprintf(p, last, "SELECT 1, saveitem_i.saveitem_pk, "
                             "CASE WHEN saveitem_i.saveitem_r THEN '%c' "
                             "WHEN saveitem_i.saveitem_r IS NOT NULL "
                             "THEN 'n' ELSE 's' END FROM (VALUES (1)) "
                             "saveitem_one LEFT JOIN saveitem_i ON true",
                             stmt->upsert == NGX_HTTP_SAVEITEM_UPSERT_UPDATE
                             ? 'u' : 'l');

        } else {
            p = ngx_slprintf(p, last, "SELECT row_number() OVER (), "
                             "saveitem_pk, CASE WHEN saveitem_r THEN '%c' "
                             "ELSE 'n' END FROM saveitem_i WHERE 1 / (SELECT "
                             "CASE count(*) WHEN %ui THEN 1 ELSE 0 END FROM "
                             "saveitem_i) = 1",
                             stmt->upsert == NGX_HTTP_SAVEITEM_UPSERT_UPDATE
                             ? 'u' : 'l', n);
        }

    } else if (n == 1) {
        p = ngx_slprintf(p, last, " RETURNING saveitem_row.%V AS saveitem_pk) "
                         "SELECT saveitem_pk FROM saveitem_i",
                         &stmt->returning);

    } else {
        p = ngx_slprintf(p, last, " RETURNING saveitem_row.%V AS saveitem_pk) "
                         "SELECT saveitem_pk FROM saveitem_i WHERE 1 / "
                         "(SELECT CASE count(*) WHEN %ui THEN 1 ELSE 0 END "
                         "FROM saveitem_i) = 1", &stmt->returning, n);
    }

    if (p == last) {
        ngx_str_set(&stmt->error, "a statement too long");
        return NGX_ERROR;
    }

    *p = '\0';
    sql->len = p - sql->data;

    p = ngx_pnalloc(mc->pool, sizeof("saveitem__k") + 2 * NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    name->data = p;
    p = ngx_sprintf(p, "saveitem_%ui_%s%ui%Z", mc->index, keyed ? "k" : "",
                    n);
    name->len = p - 1 - name->data;

    return NGX_OK;
}


/*
 * A bulk body: $1 the JSON array, $2 how many (the probe has none), then
 * the nginx values, the same for every document of the body.
 */

static ngx_int_t
ngx_http_saveitem_map_bulk(ngx_http_saveitem_map_ctx_t *mc, ngx_uint_t probe,
    ngx_str_t *sql, ngx_str_t *name)
{
    u_char                    *p, *last;
    size_t                     len;
    ngx_http_saveitem_stmt_t  *stmt;

    stmt = mc->stmt;

    len = 1024 + mc->exprs.len + mc->names.len + mc->upsert.len
          + stmt->table.len + stmt->returning.len;

    p = ngx_pnalloc(mc->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = p + len - 1;
    sql->data = p;

    p = ngx_slprintf(p, last, "WITH saveitem_w AS MATERIALIZED (SELECT "
                     "ordinality AS n, value::text AS t, value::jsonb AS d, "
                     "$%d::jsonb AS e FROM json_array_elements($1::json) "
                     "WITH ORDINALITY), "
                     "saveitem_i AS (INSERT INTO %V AS saveitem_row (%V)%s "
                     "SELECT %V FROM saveitem_w ORDER BY n%V ",
                     probe ? 2 : 3, &stmt->table, &mc->names,
                     mc->overriding ? " OVERRIDING SYSTEM VALUE" : "",
                     &mc->exprs, &mc->upsert);

    if (probe) {
        p = ngx_slprintf(p, last, "RETURNING 1) SELECT 1 / (c - c) FROM "
                         "(SELECT count(*) AS c FROM saveitem_i) "
                         "saveitem_count");

    } else {
        p = ngx_slprintf(p, last, "RETURNING saveitem_row.%V AS saveitem_pk) "
                         "SELECT saveitem_pk FROM saveitem_i WHERE 1 / "
                         "(SELECT CASE count(*) WHEN $2::bigint THEN 1 ELSE 0 "
                         "END FROM saveitem_i) = 1", &stmt->returning);
    }

    if (p == last) {
        return NGX_ERROR;
    }

    *p = '\0';
    sql->len = p - sql->data;

    p = ngx_pnalloc(mc->pool, sizeof("saveitem__probe") + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    name->data = p;
    p = ngx_sprintf(p, "saveitem_%ui_%s%Z", mc->index,
                    probe ? "probe" : "bulk");
    name->len = p - 1 - name->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_saveitem_map_fail(ngx_http_saveitem_map_ctx_t *mc, const char *fmt,
    ngx_str_t *what)
{
    u_char  *p;

    p = ngx_snprintf(mc->stmt->error_buf, NGX_HTTP_SAVEITEM_ERROR_LEN, fmt,
                     what);

    mc->stmt->broken = 1;
    mc->stmt->error.data = mc->stmt->error_buf;
    mc->stmt->error.len = p - mc->stmt->error_buf;

    return NGX_DECLINED;
}


static char *
ngx_http_saveitem_map_value(PGresult *res, ngx_uint_t row, ngx_uint_t field)
{
    return PQgetisnull(res, row, field) ? (char *) ""
                                        : PQgetvalue(res, row, field);
}


/*
 * A document judged against the mapped columns, before it is sent: an
 * unknown top-level key (saveitem_strict), a key a column cannot take, a
 * NOT NULL column without a DEFAULT whose key is absent.  NGX_DECLINED
 * with f filled in.  Until the catalog is read, only saveitem_strict is
 * judged here; the server judges the rest.
 */

ngx_int_t
ngx_http_saveitem_map_judge(ngx_http_saveitem_stmt_t *stmt, ngx_uint_t strict,
    u_char *doc, size_t len, ngx_http_saveitem_facts_t *f)
{
    const char               *why;
    ngx_uint_t                i;
    saveitem_jv_t             v;
    ngx_http_saveitem_col_t  *col;

    if (strict
        && saveitem_json_unknown_key(doc, len, stmt->known, stmt->nknown, &v)
           == 1)
    {
        f->outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
        f->reason = NGX_HTTP_SAVEITEM_R_UNKNOWN_KEY;
        f->key.data = (u_char *) v.start + 1;
        f->key.len = v.len - 2;
        return NGX_DECLINED;
    }

    if (!stmt->built) {
        return NGX_OK;
    }

    for (i = 0; i < stmt->ncols; i++) {
        col = &stmt->cols[i];

        if (col->value >= 0) {
            continue;
        }

        if (saveitem_json_find(doc, len, col->parts, col->nparts, &v) != 0) {
            return NGX_ERROR;
        }

        if (v.type == SAVEITEM_JV_ABSENT) {
            if (!col->type.not_null || col->has_default
                || (ngx_int_t) i == stmt->key_col)
            {
                continue;
            }

            why = "is required";
            f->reason = NGX_HTTP_SAVEITEM_R_MISSING_KEY;

        } else {
            why = saveitem_type_check(&col->type, &v);

            if (why == NULL) {
                continue;
            }

            f->reason = NGX_HTTP_SAVEITEM_R_INVALID_VALUE;
        }

        f->outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
        f->key = col->path;
        f->col = col->name;
        f->type = col->type_name;
        f->why = why;

        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* a value from nginx for the column col (text; len 0: NULL) */

ngx_int_t
ngx_http_saveitem_map_judge_value(ngx_http_saveitem_stmt_t *stmt,
    ngx_uint_t i, u_char *p, size_t len, ngx_http_saveitem_facts_t *f)
{
    const char               *why;
    ngx_http_saveitem_col_t  *col;

    if (!stmt->built) {
        return NGX_OK;
    }

    col = &stmt->cols[i];

    why = saveitem_type_check_text(&col->type, p, len);

    if (why == NULL) {
        return NGX_OK;
    }

    f->outcome = NGX_HTTP_SAVEITEM_NOT_STORED;
    f->reason = NGX_HTTP_SAVEITEM_R_INVALID_VALUE;
    ngx_str_null(&f->key);
    f->col = col->name;
    f->type = col->type_name;
    f->why = why;

    return NGX_DECLINED;
}
