
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <libpq-fe.h>

#include "ngx_http_saveitem_check.h"
#include "ngx_http_saveitem_field.h"


/*
 * What the files share, in the order data flows:
 *
 *   ngx_http_saveitem_module.c     directives, configuration, variables,
 *                                  a worker's start and exit
 *   src/ngx_http_saveitem_request.c the request: handler, body, bulk
 *                                  split, key, the job; saveitem_ready
 *   src/ngx_http_saveitem_answer.c every body the module sends, and the
 *                                  status page (these three share
 *                                  src/ngx_http_saveitem_http.h)
 *   src/ngx_http_saveitem_db.c     the database: conninfo, what is safe to
 *                                  log, host names, connection parameters,
 *                                  statement texts
 *   src/ngx_http_saveitem_db_check.c the start-up check, in the master
 *   src/ngx_http_saveitem_map.c    mapped columns: the table as the
 *                                  catalog describes it, the statements
 *                                  that fill it, a document's values
 *                                  judged against it
 *   src/ngx_http_saveitem_pool.c   the per-worker pool: its queue of jobs,
 *                                  dispatch, backoff, readiness, gauges
 *   src/ngx_http_saveitem_conn.c   a connection's state machine: connect,
 *                                  events, expected results, read
 *   src/ngx_http_saveitem_batch.c  batches: which jobs go together, the
 *                                  statements that carry them, what each
 *                                  result means for each job
 *   src/ngx_http_saveitem_job.c    a job's life, below the three above
 *                                  (these four report facts, never HTTP
 *                                  statuses; they share
 *                                  src/ngx_http_saveitem_pool.h)
 *   src/ngx_http_saveitem_policy.c the adaptive rules, pure functions
 *   src/ngx_http_saveitem_check.c  pure checks on bytes, and
 *   src/ngx_http_saveitem_json.c   the JSON validator
 *   src/ngx_http_saveitem_metrics.c counters and gauges for
 *                                  saveitem_status, in shared memory,
 *                                  written by their owners; a leaf
 */


typedef struct ngx_http_saveitem_db_s       ngx_http_saveitem_db_t;
typedef struct ngx_http_saveitem_pool_s     ngx_http_saveitem_pool_t;
typedef struct ngx_http_saveitem_job_s      ngx_http_saveitem_job_t;
typedef struct ngx_http_saveitem_hosts_s    ngx_http_saveitem_hosts_t;

typedef struct ngx_http_saveitem_counters_s  ngx_http_saveitem_counters_t;
typedef struct ngx_http_saveitem_metrics_s   ngx_http_saveitem_metrics_t;

typedef void (*ngx_http_saveitem_done_pt)(ngx_http_saveitem_job_t *job);

/* host names resolved at run time: rc NGX_OK, or NGX_ERROR and why */
typedef void (*ngx_http_saveitem_resolved_pt)(void *data, ngx_int_t rc,
    const char *err);


/* every default, once */

#define NGX_HTTP_SAVEITEM_POOL_SIZE        8
#define NGX_HTTP_SAVEITEM_QUEUE_SIZE       256
#define NGX_HTTP_SAVEITEM_QUEUE_TIMEOUT    5000
#define NGX_HTTP_SAVEITEM_CONNECT_TIMEOUT  5000
#define NGX_HTTP_SAVEITEM_QUERY_TIMEOUT    30000
#define NGX_HTTP_SAVEITEM_BATCH_ROWS       64
#define NGX_HTTP_SAVEITEM_BATCH_BYTES      (256 * 1024)
#define NGX_HTTP_SAVEITEM_BATCH_ROWS_MAX   1000
#define NGX_HTTP_SAVEITEM_LIFETIME         3600000
#define NGX_HTTP_SAVEITEM_BULK_MAX         1000000

/* lifetime= below it would retire connections as fast as they open */
#define NGX_HTTP_SAVEITEM_LIFETIME_MIN     1000

/* PostgreSQL's statement_timeout takes at most INT_MAX ms (~24.8 days) */
#define NGX_HTTP_SAVEITEM_QUERY_TIMEOUT_MAX  2147483647

/* nginx's resolver_timeout when none is given */
#define NGX_HTTP_SAVEITEM_RESOLVER_TIMEOUT 30000

/* the start-up check: at most this long for each step */
#define NGX_HTTP_SAVEITEM_CHECK_TIMEOUT    2000

/* an Idempotency-Key, at most (see saveitem_key_is_valid()) */
#define NGX_HTTP_SAVEITEM_KEY_LEN          255

/* why a table does not match, at most */
#define NGX_HTTP_SAVEITEM_ERROR_LEN        256


/* saveitem_field and saveitem_value, per location */
#define NGX_HTTP_SAVEITEM_COLS_MAX         64


/* at most, see ngx_http_saveitem_db_params() */
#define NGX_HTTP_SAVEITEM_PARAMS           8


/* what happened to a job's row: only "stored" answers with a key */

typedef enum {
    NGX_HTTP_SAVEITEM_PENDING = 0,
    NGX_HTTP_SAVEITEM_STORED,
    NGX_HTTP_SAVEITEM_NOT_STORED,
    NGX_HTTP_SAVEITEM_UNKNOWN
} ngx_http_saveitem_outcome_e;


/*
 * Why: each reason is one line in the answer table of
 * src/ngx_http_saveitem_answer.c.  The pool and the request report
 * reasons; only the answer turns them into statuses and messages.
 */

typedef enum {
    NGX_HTTP_SAVEITEM_R_STORED = 0,
    NGX_HTTP_SAVEITEM_R_METHOD,          /* not a POST */
    NGX_HTTP_SAVEITEM_R_METHOD_GET,      /* not a GET or HEAD */
    NGX_HTTP_SAVEITEM_R_MEDIA_TYPE,      /* not JSON */
    NGX_HTTP_SAVEITEM_R_INVALID_JSON,
    NGX_HTTP_SAVEITEM_R_INVALID_KEY,     /* Idempotency-Key */
    NGX_HTTP_SAVEITEM_R_BULK_KEY,        /* a key with a bulk body */
    NGX_HTTP_SAVEITEM_R_TOO_MANY,        /* bulk: more than bulk= */
    NGX_HTTP_SAVEITEM_R_KEY_REUSED,      /* with another document */
    NGX_HTTP_SAVEITEM_R_QUEUE_FULL,
    NGX_HTTP_SAVEITEM_R_QUEUE_TIMEOUT,
    NGX_HTTP_SAVEITEM_R_UNREACHABLE,     /* no connection could be made */
    NGX_HTTP_SAVEITEM_R_NO_CONNECTION,   /* worker_connections, memory */
    NGX_HTTP_SAVEITEM_R_EXITING,         /* the worker is shutting down */
    NGX_HTTP_SAVEITEM_R_CONN_LOST,
    NGX_HTTP_SAVEITEM_R_TIMED_OUT,       /* saveitem_query_timeout */
    NGX_HTTP_SAVEITEM_R_READ_ONLY,       /* 25006: the wrong server */
    NGX_HTTP_SAVEITEM_R_CONFLICT,        /* 40001, 40P01, retried once */
    NGX_HTTP_SAVEITEM_R_NOT_RUN,         /* an earlier error aborted it */
    NGX_HTTP_SAVEITEM_R_ROW_SKIPPED,     /* no row came back */
    NGX_HTTP_SAVEITEM_R_SQL_ERROR,       /* see the SQLSTATE */
    NGX_HTTP_SAVEITEM_R_INTERNAL,
    NGX_HTTP_SAVEITEM_R_INVALID_VALUE,   /* a column cannot take it */
    NGX_HTTP_SAVEITEM_R_MISSING_KEY,     /* a NOT NULL column, no default */
    NGX_HTTP_SAVEITEM_R_UNKNOWN_KEY,     /* saveitem_strict */
    NGX_HTTP_SAVEITEM_R_TABLE,           /* the table does not match */
    NGX_HTTP_SAVEITEM_R_CODING,          /* Content-Encoding not taken */
    NGX_HTTP_SAVEITEM_R_DECODE_FAILED,   /* corrupt, truncated, trailing */
    NGX_HTTP_SAVEITEM_R_DECODED_TOO_LARGE,  /* decompressed_max_size */
    NGX_HTTP_SAVEITEM_R_LAST
} ngx_http_saveitem_reason_e;


/* the facts of one answer, as the pool or the request report them */

typedef struct {
    ngx_http_saveitem_outcome_e   outcome;
    ngx_http_saveitem_reason_e    reason;
    u_char                        sqlstate[6];
    const char                   *detail;     /* the server's words */
    ngx_msec_t                    retry_after;
    saveitem_json_error_t        *json;
    ngx_uint_t                    index;      /* bulk: the document at fault */
    unsigned                      indexed:1;
    unsigned                      replayed:1; /* stored before, same key */
    unsigned                      action:2;   /* saveitem_conflict: _ACT_ */
    ngx_str_t                     key;        /* the JSON key, as written */
    ngx_str_t                     col;        /* a mapped column, quoted */
    ngx_str_t                     type;       /* the column's type */
    const char                   *why;        /* what is wrong with it */
} ngx_http_saveitem_facts_t;


#define NGX_HTTP_SAVEITEM_ACT_NONE      0
#define NGX_HTTP_SAVEITEM_ACT_INSERTED  1
#define NGX_HTTP_SAVEITEM_ACT_UPDATED   2
#define NGX_HTTP_SAVEITEM_ACT_LEFT      3


/*
 * A mapped column (saveitem_field, saveitem_value), and what the catalog
 * says of it once read: at start in the master, or by a worker's first
 * connection when the database did not answer at start.
 */

typedef struct {
    ngx_str_t                     name;       /* as written */
    ngx_str_t                     quoted;
    ngx_str_t                     path;       /* a field's, as written */
    saveitem_part_t              *parts;      /* its keys */
    ngx_uint_t                    nparts;
    ngx_int_t                     value;      /* saveitem_value: its index
                                                 in the values; -1: a field */
    saveitem_type_t               type;       /* from the catalog */
    ngx_str_t                     type_name;  /* format_type() */
    unsigned                      has_default:1;
} ngx_http_saveitem_col_t;


#define NGX_HTTP_SAVEITEM_UPSERT_NONE     0
#define NGX_HTTP_SAVEITEM_UPSERT_UPDATE   1
#define NGX_HTTP_SAVEITEM_UPSERT_NOTHING  2


/*
 * An INSERT, as 1, 2, ... rows: the text and name of each, null-terminated;
 * [1] is the plain single-row statement.  With idempotency=, the same with
 * a key for each row (sql_key): a key already stored with the same
 * document returns its row again, with another document nothing.  Made
 * once, at configuration.
 */

typedef struct {
    ngx_str_t                     table;      /* quoted */
    ngx_str_t                     column;     /* quoted */
    ngx_str_t                     returning;  /* quoted */
    ngx_str_t                     idem;       /* quoted, or empty */
    ngx_str_t                    *sql;        /* [rows] */
    ngx_str_t                    *name;       /* [rows] */
    ngx_str_t                    *sql_key;    /* [rows], with keys */
    ngx_str_t                    *name_key;   /* [rows] */
    ngx_str_t                     sql_bulk;   /* a JSON array, in order */
    ngx_str_t                     name_bulk;
    ngx_str_t                     sql_probe;  /* the same, never committed */
    ngx_str_t                     name_probe;

    /* mapped columns: texts made once the catalog is read (built) */

    ngx_http_saveitem_col_t      *cols;
    ngx_uint_t                    ncols;
    ngx_uint_t                    nvalues;
    ngx_int_t                     key_col;    /* idempotency= among cols */
    ngx_str_t                     column_name;    /* as written */
    ngx_str_t                     returning_name;
    ngx_str_t                     idem_name;
    ngx_str_t                    *conflict;   /* saveitem_conflict, as
                                                 written */
    ngx_uint_t                    nconflict;
    ngx_str_t                     conflict_text;   /* as written */
    ngx_str_t                     conflict_quoted; /* a, b, quoted */
    ngx_str_t                     conflict_first;  /* quoted */
    saveitem_part_t              *known;      /* the fields' first keys */
    ngx_uint_t                    nknown;
    ngx_uint_t                    upsert;     /* NGX_HTTP_SAVEITEM_UPSERT_ */
    ngx_msec_t                    read_at;    /* the catalog, last asked */
    ngx_str_t                     error;      /* why it does not match */
    u_char                        error_buf[NGX_HTTP_SAVEITEM_ERROR_LEN];
    unsigned                      mapped:1;
    unsigned                      built:1;
    unsigned                      broken:1;   /* error says why */
    unsigned                      reading:1;  /* a catalog query is out */
} ngx_http_saveitem_stmt_t;


/* one per distinct conninfo, made at configuration time */

struct ngx_http_saveitem_db_s {
    ngx_str_t                     conninfo;   /* null-terminated */
    ngx_str_t                     display;    /* without a password */
    ngx_str_t                     hosts;      /* as written, or NULL data */
    ngx_str_t                     ports;      /* as written, or NULL data */
    ngx_str_t                     host;       /* names, as resolved */
    ngx_str_t                     hostaddr;   /* their addresses */
    ngx_str_t                     port;       /* as many as hosts */
    ngx_uint_t                    pool_size;
    ngx_uint_t                    queue_size;
    ngx_msec_t                    queue_timeout;
    ngx_msec_t                    connect_timeout;
    ngx_msec_t                    lifetime;   /* 0: for ever */
    ngx_resolver_t               *resolver;   /* names at connect time */
    ngx_msec_t                    resolver_timeout;
    ngx_http_core_loc_conf_t     *clcf;       /* where it was declared */
    ngx_http_saveitem_pool_t     *pool;       /* this worker's */
    ngx_http_saveitem_counters_t *counters;   /* in shared memory */
    u_char                       *file;
    ngx_uint_t                    line;
    unsigned                      prepare:1;  /* named statements */
    unsigned                      hostaddr_set:1;  /* given: no names */
};


typedef struct {
    ngx_array_t                   dbs;        /* ngx_http_saveitem_db_t * */
    ngx_array_t                   stmts;      /* ngx_http_saveitem_stmt_t */
    ngx_uint_t                    batch_max;  /* rows, over all locations */
    ngx_array_t                   uses;       /* ngx_http_saveitem_use_t */
    ngx_http_saveitem_metrics_t  *metrics;
    ngx_event_t                   gauges;     /* this worker's tick */
} ngx_http_saveitem_main_conf_t;


/*
 * The hosts a connection tries, as given to libpq: comma-separated lists
 * (NULL: as the conninfo says), n entries.  They stay valid while it
 * connects: a host that does not answer within connect_timeout is left
 * out and the others are tried (libpq's own per-host timeout does not
 * work in non-blocking mode).
 */

typedef struct {
    const char                   *host;
    const char                   *hostaddr;
    const char                   *port;
    ngx_uint_t                    n;
} ngx_http_saveitem_targets_t;


/* a statement used with a database somewhere: checked at start */

typedef struct {
    ngx_http_saveitem_db_t       *db;
    ngx_uint_t                    stmt;
    u_char                       *file;
    ngx_uint_t                    line;
} ngx_http_saveitem_use_t;


/*
 * A job links one request to the connection that carries its statement.
 * It belongs to the pool: a request that ends early only detaches.
 */

struct ngx_http_saveitem_job_s {
    ngx_queue_t                   queue;
    ngx_event_t                   wait;       /* queue timeout */
    ngx_http_saveitem_pool_t     *pool;
    ngx_log_t                    *log;

    void                         *data;       /* NULL once detached */
    ngx_http_saveitem_done_pt     handler;

    ngx_uint_t                    stmt;
    ngx_msec_t                    timeout;    /* once sent */
    ngx_msec_t                    queued;     /* when it began to wait */
    ngx_msec_t                    queued_until;  /* absolute */
    u_char                       *body;       /* null-terminated, the
                                                 request's: read only
                                                 when sent */
    size_t                        body_len;
    ngx_str_t                     key;        /* in key_buf, or empty */
    ngx_uint_t                    bulk;       /* documents in body, a JSON
                                                 array; 0: one document */
    ngx_str_t                     pks;        /* bulk: "1,2,..." */
    ngx_uint_t                    probe_lo;   /* bulk: where the document */
    ngx_uint_t                    probe_hi;   /* at fault can be */
    u_char                       *probe;      /* the documents probed */
    ngx_uint_t                    batch_rows; /* 1: never with others */
    size_t                        batch_bytes;

    ngx_http_saveitem_facts_t     facts;
    PGresult                     *res;        /* holds facts.detail */
    ngx_str_t                     pk;
    u_char                        pk_buf[64];
    u_char                        key_buf[NGX_HTTP_SAVEITEM_KEY_LEN + 1];
    unsigned                      pk_number:1;

    unsigned                      waiting:1;
    unsigned                      failed:1;   /* its statement failed */
    unsigned                      retry:1;    /* its batch failed */
    unsigned                      retried:1;  /* sent again once */
    unsigned                      sent:1;     /* its sync left, maybe */
    unsigned                      probing:1;  /* bulk: which one failed */
    unsigned                      isolate:1;  /* its batch failed: again,
                                                 a savepoint each */
    unsigned                      action:2;   /* saveitem_conflict: _ACT_ */
    u_char                       *values;     /* mapped: the nginx values,
                                                 a JSON array, terminated */

    /* where it waited, in us (metrics_now()): 0, not yet */
    ngx_uint_t                    posted_us;
    ngx_uint_t                    sent_us;    /* the last time */
    ngx_uint_t                    read_us;    /* its result: answered next */
    ngx_uint_t                    held_from;  /* the pool's held, posted */
    ngx_uint_t                    held;       /* of its wait, once sent */
};


/* src/ngx_http_saveitem_db.c */

char *ngx_http_saveitem_db_conninfo(ngx_conf_t *cf,
    ngx_http_saveitem_db_t *db);
ngx_int_t ngx_http_saveitem_db_names(ngx_conf_t *cf,
    ngx_http_saveitem_db_t *db);
ngx_uint_t ngx_http_saveitem_db_params(ngx_http_saveitem_db_t *db,
    ngx_http_saveitem_hosts_t *hosts, ngx_uint_t skip,
    ngx_http_saveitem_targets_t *t, const char **keywords,
    const char **values);
ngx_int_t ngx_http_saveitem_db_target(ngx_http_saveitem_targets_t *t,
    PGconn *pg);
ngx_int_t ngx_http_saveitem_db_resolve_start(ngx_http_saveitem_db_t *db,
    ngx_http_saveitem_resolved_pt handler, void *data, ngx_log_t *log,
    ngx_http_saveitem_hosts_t **hsp);
void ngx_http_saveitem_db_resolve_done(ngx_http_saveitem_hosts_t *hosts);
ngx_int_t ngx_http_saveitem_db_stmts(ngx_conf_t *cf,
    ngx_http_saveitem_main_conf_t *smcf);
ngx_int_t ngx_http_saveitem_db_check(ngx_conf_t *cf,
    ngx_http_saveitem_main_conf_t *smcf, ngx_http_saveitem_db_t *db);
u_char *ngx_http_saveitem_db_error(PGconn *pg, u_char *buf, size_t len);


/* src/ngx_http_saveitem_map.c */

extern const char  ngx_http_saveitem_map_catalog[];

ngx_int_t ngx_http_saveitem_map_build(ngx_pool_t *pool,
    ngx_http_saveitem_stmt_t *stmt, ngx_uint_t index, ngx_uint_t batch_max,
    PGresult *res);
ngx_int_t ngx_http_saveitem_map_judge(ngx_http_saveitem_stmt_t *stmt,
    ngx_uint_t strict, u_char *doc, size_t len, ngx_http_saveitem_facts_t *f);
ngx_int_t ngx_http_saveitem_map_judge_value(ngx_http_saveitem_stmt_t *stmt,
    ngx_uint_t i, u_char *p, size_t len, ngx_http_saveitem_facts_t *f);


/* src/ngx_http_saveitem_pool.c, src/ngx_http_saveitem_job.c */

ngx_int_t ngx_http_saveitem_pool_init(ngx_cycle_t *cycle,
    ngx_http_saveitem_db_t *db, ngx_http_saveitem_main_conf_t *smcf);
void ngx_http_saveitem_pool_done(ngx_http_saveitem_pool_t *pool);
ngx_http_saveitem_job_t *ngx_http_saveitem_job_get(
    ngx_http_saveitem_pool_t *pool);
ngx_int_t ngx_http_saveitem_job_post(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_job_release(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_job_detach(ngx_http_saveitem_job_t *job);
void ngx_http_saveitem_pool_publish(ngx_http_saveitem_pool_t *pool);
ngx_int_t ngx_http_saveitem_pool_ready(ngx_http_saveitem_pool_t *pool,
    ngx_http_saveitem_facts_t *f);


extern ngx_module_t  ngx_http_saveitem_module;


#endif /* _NGX_HTTP_SAVEITEM_H_INCLUDED_ */
