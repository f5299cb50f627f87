
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * The database, as the configuration describes it: the conninfo checked
 * with libpq's own parser, a description of it that is safe to log, host
 * names resolved (libpq would resolve them blockingly in every worker),
 * the parameters each connection is opened with, and the statement texts.
 * All of it runs at configuration time, in the master (or nginx -t), but
 * for names resolved again in the workers through nginx's resolver.  The
 * start-up check is src/ngx_http_saveitem_db_check.c.
 */


#include <netdb.h>

#include "ngx_http_saveitem.h"


static ngx_uint_t ngx_http_saveitem_db_secret(ngx_str_t *conninfo);
static size_t ngx_http_saveitem_db_chomp(const char *s);
static ngx_int_t ngx_http_saveitem_db_resolve(ngx_conf_t *cf,
    ngx_http_saveitem_db_t *db, const char *hosts, const char *ports);
static void ngx_http_saveitem_db_list_item(const char *list, ngx_uint_t i,
    ngx_str_t *item);
static void ngx_http_saveitem_db_list_add(u_char **p, u_char *last,
    ngx_str_t *item);
static ngx_int_t ngx_http_saveitem_db_list_copy(ngx_conf_t *cf, ngx_str_t *dst,
    u_char *buf, u_char *last);
static void ngx_http_saveitem_db_resolve_next(ngx_http_saveitem_hosts_t *hs);
static void ngx_http_saveitem_db_resolved(ngx_resolver_ctx_t *ctx);
static const char *ngx_http_saveitem_db_skip(const char *list, ngx_uint_t n);
static ngx_int_t ngx_http_saveitem_db_stmts_bulk(ngx_conf_t *cf,
    ngx_http_saveitem_stmt_t *stmt, ngx_uint_t i);
static ngx_int_t ngx_http_saveitem_db_stmts_key(ngx_conf_t *cf,
    ngx_http_saveitem_stmt_t *stmt, ngx_uint_t i, ngx_uint_t batch_max);


static ngx_str_t  ngx_http_saveitem_db_none = ngx_string("");


/*
 * Host names resolved at connect time by nginx's resolver: each entry of
 * "host" in turn, a unix socket or an address as it is, a name as one
 * entry per address (libpq tries them in order), into the lists libpq
 * takes as host, hostaddr and port.
 */

struct ngx_http_saveitem_hosts_s {
    ngx_http_saveitem_db_t         *db;
    ngx_resolver_ctx_t             *ctx;
    ngx_uint_t                      next;
    ngx_http_saveitem_resolved_pt   handler;
    void                           *data;
    ngx_log_t                      *log;
    ngx_str_t                       port;     /* of the name resolving */
    u_char                         *h, *a, *p;
    u_char                          host[2048];
    u_char                          hostaddr[2048];
    u_char                          ports[1024];
};


/*
 * Checks the conninfo with libpq's own parser (no connection is made),
 * makes a description of it without the password, takes its
 * connect_timeout, and resolves host names now, in the master: libpq would
 * resolve them with a blocking getaddrinfo() in every worker.
 */

char *
ngx_http_saveitem_db_conninfo(ngx_conf_t *cf, ngx_http_saveitem_db_t *db)
{
    u_char            *p, *last;
    char              *errmsg, *hosts, *ports, *timeout, *service;
    char              *rv;
    ngx_int_t          n;
    ngx_uint_t         hostaddr, named;
    PQconninfoOption  *opts, *o;
    u_char             buf[1024];

    errmsg = NULL;
    opts = PQconninfoParse((char *) db->conninfo.data, &errmsg);

    if (opts == NULL) {
        /* libpq's message may quote a part of the string: a password */

        if (errmsg && !ngx_http_saveitem_db_secret(&db->conninfo)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid conninfo in \"saveitem_database\": "
                               "%*s", ngx_http_saveitem_db_chomp(errmsg),
                               errmsg);
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid conninfo in \"saveitem_database\" "
                               "(libpq's message is not shown: it may quote "
                               "the password)");
        }

        if (errmsg) {
            PQfreemem(errmsg);
        }

        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    p = buf;
    last = buf + sizeof(buf) - 1;
    hosts = NULL;
    ports = NULL;
    service = NULL;
    named = 0;
    timeout = getenv("PGCONNECT_TIMEOUT");
    hostaddr = (getenv("PGHOSTADDR") != NULL);

    db->connect_timeout = NGX_HTTP_SAVEITEM_CONNECT_TIMEOUT;

    for (o = opts; o->keyword; o++) {

        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        if (ngx_strcmp(o->keyword, "connect_timeout") == 0) {
            timeout = o->val;
            continue;
        }

        if (ngx_strcmp(o->keyword, "service") == 0) {
            service = o->val;

        } else if (ngx_strcmp(o->keyword, "host") == 0) {
            hosts = o->val;
            named = 1;

        } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            hostaddr = 1;
            named = 1;

        } else if (ngx_strcmp(o->keyword, "port") == 0) {
            ports = o->val;

        } else if (ngx_strcmp(o->keyword, "dbname") != 0
                   && ngx_strcmp(o->keyword, "user") != 0)
        {
            continue;
        }

        p = ngx_slprintf(p, last, "%s%s=%s", p == buf ? "" : " ",
                         o->keyword, o->val);
    }

    if (p == buf) {
        p = ngx_cpymem(p, "(libpq defaults)", sizeof("(libpq defaults)") - 1);
    }

    /*
     * A service (pg_service.conf) fills in what the conninfo leaves out,
     * before the environment: its host is not known here, and libpq
     * would resolve a name in it blockingly in every worker
     */

    if (service == NULL) {
        service = getenv("PGSERVICE");
    }

    if (service != NULL && !named) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"saveitem_database\" uses the service \"%s\" "
                           "without host= or hostaddr=: the host it names "
                           "would be resolved blockingly in every worker; "
                           "give host= (a socket directory, an address, or "
                           "a name, resolved without blocking) or hostaddr= "
                           "in the conninfo", service);
        goto done;
    }

    db->display.len = p - buf;
    db->display.data = ngx_pnalloc(cf->pool, db->display.len);
    if (db->display.data == NULL) {
        goto done;
    }

    ngx_memcpy(db->display.data, buf, db->display.len);

    if (timeout != NULL) {
        n = ngx_atoi((u_char *) timeout, ngx_strlen(timeout));

        if (n == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid connect_timeout \"%s\"", timeout);
            goto done;
        }

        /* as libpq: 0 is "no limit", and at least 2 seconds */

        if (n > 0) {
            db->connect_timeout = ngx_max(n, 2) * 1000;
        }
    }

    if (hosts == NULL) {
        hosts = getenv("PGHOST");
    }

    if (ports == NULL) {
        ports = getenv("PGPORT");
    }

    /* resolved once the configuration is read: see db_names() */

    db->hostaddr_set = hostaddr;

    if (hosts != NULL) {
        db->hosts.len = ngx_strlen(hosts);
        db->hosts.data = ngx_pnalloc(cf->pool, db->hosts.len + 1);
        if (db->hosts.data == NULL) {
            goto done;
        }

        ngx_cpystrn(db->hosts.data, (u_char *) hosts, db->hosts.len + 1);
    }

    if (ports != NULL) {
        db->ports.len = ngx_strlen(ports);
        db->ports.data = ngx_pnalloc(cf->pool, db->ports.len + 1);
        if (db->ports.data == NULL) {
            goto done;
        }

        ngx_cpystrn(db->ports.data, (u_char *) ports, db->ports.len + 1);
    }

    rv = NGX_CONF_OK;

done:

    PQconninfoFree(opts);

    return rv;
}


/* a password may be written in it: as a keyword, or in a URI */

static ngx_uint_t
ngx_http_saveitem_db_secret(ngx_str_t *conninfo)
{
    return ngx_strcasestrn(conninfo->data, "password", 8 - 1) != NULL
           || ngx_strchr(conninfo->data, '@') != NULL;
}


static size_t
ngx_http_saveitem_db_chomp(const char *s)
{
    size_t  len;

    len = ngx_strlen(s);

    while (len && (s[len - 1] == '\n' || s[len - 1] == ' ')) {
        len--;
    }

    return len;
}


/*
 * "host" and "port" are comma-separated lists.  A socket directory or an
 * address stays as it is; a name becomes one entry per address it
 * resolves to, with the address in "hostaddr", as libpq would try them.
 */

static ngx_int_t
ngx_http_saveitem_db_resolve(ngx_conf_t *cf, ngx_http_saveitem_db_t *db,
    const char *hosts, const char *ports)
{
    int               rc;
    u_char           *h, *a, *pt, *hlast, *alast, *plast;
    ngx_str_t         host, port;
    ngx_uint_t        named, nports, i;
    struct addrinfo   hints, *res, *ai;
    u_char            name[NGX_MAXHOSTNAMELEN];
    u_char            addr[NGX_SOCKADDR_STRLEN];
    u_char            hbuf[2048], abuf[2048], pbuf[1024];

    nports = 0;

    if (ports != NULL && ports[0] != '\0') {
        nports = 1;

        for (i = 0; ports[i]; i++) {
            if (ports[i] == ',') {
                nports++;
            }
        }
    }

    h = hbuf;
    a = abuf;
    pt = pbuf;
    hlast = hbuf + sizeof(hbuf) - 1;
    alast = abuf + sizeof(abuf) - 1;
    plast = pbuf + sizeof(pbuf) - 1;
    named = 0;

    for (i = 0; /* void */ ; i++) {
        ngx_http_saveitem_db_list_item(hosts, i, &host);

        if (host.data == NULL) {
            break;
        }

        if (nports > 1) {
            ngx_http_saveitem_db_list_item(ports, i, &port);

            if (port.data == NULL) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "\"saveitem_database\" has fewer ports than "
                              "hosts in %s:%ui", db->file, db->line);
                return NGX_ERROR;
            }

        } else {
            port.len = 0;
            port.data = NULL;
        }

        if (host.len >= sizeof(name)) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "host name too long in %s:%ui", db->file, db->line);
            return NGX_ERROR;
        }

        ngx_cpystrn(name, host.data, host.len + 1);

        if (name[0] == '\0' || name[0] == '/' || name[0] == '@') {
            /* a unix socket */
            ngx_http_saveitem_db_list_add(&h, hlast, &host);
            ngx_http_saveitem_db_list_add(&a, alast, NULL);
            ngx_http_saveitem_db_list_add(&pt, plast, &port);
            continue;
        }

        ngx_memzero(&hints, sizeof(struct addrinfo));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICHOST;

        rc = getaddrinfo((char *) name, NULL, &hints, &res);

        if (rc != 0) {
            hints.ai_flags = AI_ADDRCONFIG;
            rc = getaddrinfo((char *) name, NULL, &hints, &res);

            if (rc != 0) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "host not found in \"saveitem_database\": "
                              "\"%s\": %s in %s:%ui", name, gai_strerror(rc),
                              db->file, db->line);
                return NGX_ERROR;
            }

            named = 1;
        }

        for (ai = res; ai; ai = ai->ai_next) {
            ngx_http_saveitem_db_list_add(&h, hlast, &host);
            ngx_http_saveitem_db_list_add(&pt, plast, &port);

            /* ngx_sock_ntop() does not terminate the string */

            host.len = ngx_sock_ntop(ai->ai_addr, ai->ai_addrlen, addr,
                                     NGX_SOCKADDR_STRLEN, 0);
            host.data = addr;
            ngx_http_saveitem_db_list_add(&a, alast, &host);
            host.len = ngx_strlen(name);
            host.data = name;
        }

        freeaddrinfo(res);
    }

    if (!named) {
        return NGX_OK;
    }

    if (h == hlast || a == alast || pt == plast) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "too many hosts in \"saveitem_database\" in %s:%ui",
                      db->file, db->line);
        return NGX_ERROR;
    }

    if (ngx_http_saveitem_db_list_copy(cf, &db->host, hbuf, h) != NGX_OK
        || ngx_http_saveitem_db_list_copy(cf, &db->hostaddr, abuf, a)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (nports > 1
        && ngx_http_saveitem_db_list_copy(cf, &db->port, pbuf, pt) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, cf->log, 0,
                  "saveitem: \"%s\" resolved to \"%V\" now; libpq would "
                  "resolve it blockingly in every worker (a \"resolver\" "
                  "resolves it at each connect)", hosts, &db->hostaddr);

    return NGX_OK;
}


/* the i-th element of a comma-separated list, or a NULL data */

static void
ngx_http_saveitem_db_list_item(const char *list, ngx_uint_t i, ngx_str_t *item)
{
    const char  *p, *end;

    p = list;

    while (i--) {
        p = ngx_strchr(p, ',');

        if (p == NULL) {
            item->len = 0;
            item->data = NULL;
            return;
        }

        p++;
    }

    end = ngx_strchr(p, ',');

    if (end == NULL) {
        end = p + ngx_strlen(p);
    }

    item->data = (u_char *) p;
    item->len = end - p;
}


static void
ngx_http_saveitem_db_list_add(u_char **p, u_char *last, ngx_str_t *item)
{
    /* each item with a leading comma: ngx_http_saveitem_db_list_copy() */

    *p = ngx_slprintf(*p, last, ",%V",
                      item && item->data ? item : &ngx_http_saveitem_db_none);
}


static ngx_int_t
ngx_http_saveitem_db_list_copy(ngx_conf_t *cf, ngx_str_t *dst, u_char *buf,
    u_char *last)
{
    dst->len = last - buf - 1;
    dst->data = ngx_pnalloc(cf->pool, dst->len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, buf + 1, dst->len);
    dst->data[dst->len] = '\0';

    return NGX_OK;
}


/*
 * Once the configuration is read (the "resolver" of the context that
 * declared the database is known): with a resolver, host names are
 * resolved by it at each connect, honouring the TTL of its answers or its
 * "valid="; without one, now, once, in the master.
 */

ngx_int_t
ngx_http_saveitem_db_names(ngx_conf_t *cf, ngx_http_saveitem_db_t *db)
{
    ngx_str_t        host;
    ngx_uint_t       i, nhosts, nports;
    ngx_resolver_t  *r;

    if (db->hosts.data == NULL || db->hostaddr_set) {
        return NGX_OK;
    }

    nhosts = 1;
    nports = (db->ports.len && ngx_strchr(db->ports.data, ',')) ? 2 : 0;

    for (i = 0; i < db->hosts.len; i++) {
        if (db->hosts.data[i] == ',') {
            nhosts++;
        }
    }

    if (nports) {
        nports = 1;

        for (i = 0; i < db->ports.len; i++) {
            if (db->ports.data[i] == ',') {
                nports++;
            }
        }

        if (nports < nhosts) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"saveitem_database\" has fewer ports than hosts "
                          "in %s:%ui", db->file, db->line);
            return NGX_ERROR;
        }
    }

    r = db->clcf ? db->clcf->resolver : NULL;

    if (r == NULL || r == NGX_CONF_UNSET_PTR || r->connections.nelts == 0) {
        return ngx_http_saveitem_db_resolve(cf, db, (char *) db->hosts.data,
                                            (char *) db->ports.data);
    }

    for (i = 0; i < nhosts; i++) {
        ngx_http_saveitem_db_list_item((char *) db->hosts.data, i, &host);

        if (host.len >= NGX_MAXHOSTNAMELEN) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "host name too long in %s:%ui", db->file, db->line);
            return NGX_ERROR;
        }
    }

    /*
     * the http{} level's configuration is never merged: without a
     * "resolver_timeout" there, its value is unset, (ngx_msec_t) -1, a
     * timer that has expired already, and a look-up "timed out" unless
     * its answer came first
     */

    db->resolver = r;
    db->resolver_timeout = db->clcf->resolver_timeout;

    if (db->resolver_timeout == NGX_CONF_UNSET_MSEC) {
        db->resolver_timeout = NGX_HTTP_SAVEITEM_RESOLVER_TIMEOUT;
    }

    return NGX_OK;
}


/*
 * *hsp is set before any resolution starts: the handler may be called
 * from here already (an answer in the resolver's cache), and goes on
 * with what *hsp points to; the caller frees it with db_resolve_done().
 */

ngx_int_t
ngx_http_saveitem_db_resolve_start(ngx_http_saveitem_db_t *db,
    ngx_http_saveitem_resolved_pt handler, void *data, ngx_log_t *log,
    ngx_http_saveitem_hosts_t **hsp)
{
    ngx_http_saveitem_hosts_t  *hs;

    hs = ngx_alloc(sizeof(ngx_http_saveitem_hosts_t), log);
    if (hs == NULL) {
        return NGX_ERROR;
    }

    *hsp = hs;

    hs->db = db;
    hs->ctx = NULL;
    hs->next = 0;
    hs->handler = handler;
    hs->data = data;
    hs->log = log;
    hs->h = hs->host;
    hs->a = hs->hostaddr;
    hs->p = hs->ports;

    ngx_http_saveitem_db_resolve_next(hs);

    return NGX_OK;
}


void
ngx_http_saveitem_db_resolve_done(ngx_http_saveitem_hosts_t *hs)
{
    if (hs->ctx) {
        ngx_resolve_name_done(hs->ctx);
    }

    ngx_free(hs);
}


static void
ngx_http_saveitem_db_resolve_next(ngx_http_saveitem_hosts_t *hs)
{
    u_char                  *c;
    ngx_str_t                host, port;
    ngx_uint_t               i, ip;
    ngx_resolver_ctx_t      *ctx, temp;
    ngx_http_saveitem_db_t  *db;

    db = hs->db;

    for ( ;; ) {
        i = hs->next;

        ngx_http_saveitem_db_list_item((char *) db->hosts.data, i, &host);

        if (host.data == NULL) {
            break;
        }

        hs->next++;

        port.len = 0;
        port.data = NULL;

        if (db->ports.data && ngx_strchr(db->ports.data, ',')) {
            ngx_http_saveitem_db_list_item((char *) db->ports.data, i,
                                           &port);
        }

        ip = 1;

        for (c = host.data; c < host.data + host.len; c++) {
            if (!(*c == '.' || *c == ':' || (*c >= '0' && *c <= '9')
                  || (*c >= 'a' && *c <= 'f') || (*c >= 'A' && *c <= 'F')))
            {
                ip = 0;
                break;
            }
        }

        if (host.len == 0 || host.data[0] == '/' || host.data[0] == '@'
            || (ip && ngx_inet_addr(host.data, host.len) != INADDR_NONE)
            || (ip && ngx_strlchr(host.data, host.data + host.len, ':')))
        {
            /* a unix socket or an address: libpq needs no name look-up */
            ngx_http_saveitem_db_list_add(&hs->h, hs->host + 2047, &host);
            ngx_http_saveitem_db_list_add(&hs->a, hs->hostaddr + 2047, NULL);
            ngx_http_saveitem_db_list_add(&hs->p, hs->ports + 1023, &port);
            continue;
        }

        temp.name = host;

        ctx = ngx_resolve_start(db->resolver, &temp);

        if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
            hs->handler(hs->data, NGX_ERROR, "the resolver could not start");
            return;
        }

        ctx->name = host;
        ctx->handler = ngx_http_saveitem_db_resolved;
        ctx->data = hs;
        ctx->timeout = db->resolver_timeout;
        ctx->cancelable = 1;

        hs->ctx = ctx;
        hs->port = port;

        if (ngx_resolve_name(ctx) != NGX_OK) {
            hs->ctx = NULL;
            hs->handler(hs->data, NGX_ERROR, "the resolver failed");
        }

        /* the handler goes on from here, now or later */

        return;
    }

    if (hs->h >= hs->host + 2047 || hs->a >= hs->hostaddr + 2047
        || hs->p >= hs->ports + 1023)
    {
        hs->handler(hs->data, NGX_ERROR, "too many addresses");
        return;
    }

    hs->handler(hs->data, NGX_OK, NULL);
}


static void
ngx_http_saveitem_db_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_http_saveitem_hosts_t *hs = ctx->data;

    ngx_str_t   addr;
    ngx_uint_t  i;
    u_char      text[NGX_SOCKADDR_STRLEN];
    u_char      err[NGX_MAX_ERROR_STR];

    if (ctx->state) {
        ngx_snprintf(err, sizeof(err) - 1, "\"%V\" could not be resolved "
                     "(%i: %s)%Z", &ctx->name, ctx->state,
                     ngx_resolver_strerror(ctx->state));

        ngx_resolve_name_done(ctx);
        hs->ctx = NULL;

        hs->handler(hs->data, NGX_ERROR, (char *) err);
        return;
    }

    for (i = 0; i < ctx->naddrs; i++) {
        addr.data = text;
        addr.len = ngx_sock_ntop(ctx->addrs[i].sockaddr, ctx->addrs[i].socklen,
                                 text, NGX_SOCKADDR_STRLEN, 0);

        ngx_http_saveitem_db_list_add(&hs->h, hs->host + 2047, &ctx->name);
        ngx_http_saveitem_db_list_add(&hs->a, hs->hostaddr + 2047, &addr);
        ngx_http_saveitem_db_list_add(&hs->p, hs->ports + 1023, &hs->port);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, hs->log, 0,
                   "saveitem resolved \"%V\": %ui addresses",
                   &ctx->name, ctx->naddrs);

    ngx_resolve_name_done(ctx);
    hs->ctx = NULL;

    ngx_http_saveitem_db_resolve_next(hs);
}


/*
 * The connection parameters, for PQconnectStartParams() with expand_dbname:
 * the conninfo is expanded in place of "dbname" and what follows it
 * overrides it: the module needs UTF-8, and host names were resolved at
 * configuration time (libpq would resolve them blockingly).  Returns how
 * many were written, NGX_HTTP_SAVEITEM_PARAMS at most, not terminated.
 */

ngx_uint_t
ngx_http_saveitem_db_params(ngx_http_saveitem_db_t *db,
    ngx_http_saveitem_hosts_t *hs, ngx_uint_t skip,
    ngx_http_saveitem_targets_t *t, const char **keywords,
    const char **values)
{
    ngx_uint_t   n;
    const char  *c;

    n = 0;
    keywords[n] = "dbname";
    values[n++] = (const char *) db->conninfo.data;
    keywords[n] = "client_encoding";
    values[n++] = "UTF8";
    keywords[n] = "fallback_application_name";
    values[n++] = "nginx saveitem";

    ngx_memzero(t, sizeof(ngx_http_saveitem_targets_t));

    if (hs != NULL) {
        /* each list was written with a leading comma */

        *hs->h = '\0';
        *hs->a = '\0';
        *hs->p = '\0';

        t->host = (const char *) hs->host + 1;
        t->hostaddr = (const char *) hs->hostaddr + 1;

        if (db->ports.data && ngx_strchr(db->ports.data, ',')) {
            t->port = (const char *) hs->ports + 1;
        }

    } else if (db->hostaddr.len) {
        t->host = (const char *) db->host.data;
        t->hostaddr = (const char *) db->hostaddr.data;

        if (db->port.len) {
            t->port = (const char *) db->port.data;
        }

    } else if (db->hosts.data && !db->hostaddr_set) {
        /* sockets and addresses, as written */

        t->host = (const char *) db->hosts.data;

        if (db->ports.data && ngx_strchr(db->ports.data, ',')) {
            t->port = (const char *) db->ports.data;
        }

    } else {
        /* as the conninfo says: libpq's defaults, or its own hostaddr */
        t->n = 1;
        return n;
    }

    /* the hosts tried already (one that did not answer) are left out */

    t->host = ngx_http_saveitem_db_skip(t->host, skip);
    t->hostaddr = ngx_http_saveitem_db_skip(t->hostaddr, skip);
    t->port = ngx_http_saveitem_db_skip(t->port, skip);

    if (t->host == NULL) {
        return n;
    }

    t->n = 1;

    for (c = t->host; *c; c++) {
        if (*c == ',') {
            t->n++;
        }
    }

    keywords[n] = "host";
    values[n++] = t->host;

    if (t->hostaddr) {
        keywords[n] = "hostaddr";
        values[n++] = t->hostaddr;
    }

    if (t->port) {
        keywords[n] = "port";
        values[n++] = t->port;
    }

    return n;
}


/* a comma-separated list past its first n entries; NULL: none left */

static const char *
ngx_http_saveitem_db_skip(const char *list, ngx_uint_t n)
{
    if (list == NULL) {
        return NULL;
    }

    while (n--) {
        list = ngx_strchr(list, ',');

        if (list == NULL) {
            return NULL;
        }

        list++;
    }

    return list;
}


/*
 * Which of the targets libpq is trying now: the host, port and address
 * it reports, matched in order.  NGX_ERROR: none matches.
 */

ngx_int_t
ngx_http_saveitem_db_target(ngx_http_saveitem_targets_t *t, PGconn *pg)
{
    ngx_str_t    host, addr, port;
    ngx_uint_t   i;
    const char  *h, *a, *p;

    h = PQhost(pg);
    a = PQhostaddr(pg);
    p = PQport(pg);

    if (t->host == NULL || h == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < t->n; i++) {
        ngx_http_saveitem_db_list_item(t->host, i, &host);

        if (host.len != ngx_strlen(h)
            || ngx_strncmp(host.data, h, host.len) != 0)
        {
            continue;
        }

        if (t->hostaddr && a != NULL && a[0] != '\0') {
            ngx_http_saveitem_db_list_item(t->hostaddr, i, &addr);

            if (addr.len && (addr.len != ngx_strlen(a)
                             || ngx_strncmp(addr.data, a, addr.len) != 0))
            {
                continue;
            }
        }

        if (t->port && p != NULL) {
            ngx_http_saveitem_db_list_item(t->port, i, &port);

            if (port.len && (port.len != ngx_strlen(p)
                             || ngx_strncmp(port.data, p, port.len) != 0))
            {
                continue;
            }
        }

        return i;
    }

    return NGX_ERROR;
}


/*
 * Each INSERT as 1 .. batch_max rows, the only place the text is made.
 * With several rows, the statement fails (division by zero, class 22)
 * unless every row was inserted: a trigger that skips one would leave the
 * keys impossible to map back to the requests, and the batch is then
 * retried one request at a time.  The keys come back in the order of the
 * VALUES list (t/ checks this).
 */

ngx_int_t
ngx_http_saveitem_db_stmts(ngx_conf_t *cf,
    ngx_http_saveitem_main_conf_t *smcf)
{
    u_char                    *p;
    size_t                     len;
    ngx_uint_t                 i, n, k;
    ngx_http_saveitem_stmt_t  *stmt;

    stmt = smcf->stmts.elts;

    for (i = 0; i < smcf->stmts.nelts; i++) {

        if (stmt[i].mapped) {
            /* once the catalog is read: src/ngx_http_saveitem_map.c */
            continue;
        }

        stmt[i].sql = ngx_pcalloc(cf->pool,
                                  (smcf->batch_max + 1) * sizeof(ngx_str_t));
        stmt[i].name = ngx_pcalloc(cf->pool,
                                   (smcf->batch_max + 1) * sizeof(ngx_str_t));
        if (stmt[i].sql == NULL || stmt[i].name == NULL) {
            return NGX_ERROR;
        }

        for (n = 1; n <= smcf->batch_max; n++) {

            len = sizeof("WITH i AS (INSERT INTO  () VALUES  RETURNING ) "
                         "SELECT  FROM i WHERE 1 / (SELECT CASE count(*) "
                         "WHEN  THEN 1 ELSE 0 END FROM i) = 1") - 1
                  + stmt[i].table.len + stmt[i].column.len
                  + 2 * stmt[i].returning.len
                  + n * (sizeof(",($)") - 1 + NGX_INT_T_LEN) + NGX_INT_T_LEN;

            p = ngx_pnalloc(cf->pool, len + 1);
            if (p == NULL) {
                return NGX_ERROR;
            }

            stmt[i].sql[n].data = p;

            if (n == 1) {
                p = ngx_sprintf(p, "INSERT INTO %V (%V) VALUES ($1) "
                                "RETURNING %V", &stmt[i].table,
                                &stmt[i].column, &stmt[i].returning);

            } else {
                p = ngx_sprintf(p, "WITH i AS (INSERT INTO %V (%V) VALUES ",
                                &stmt[i].table, &stmt[i].column);

                for (k = 1; k <= n; k++) {
                    p = ngx_sprintf(p, "%s($%ui)", k == 1 ? "" : ",", k);
                }

                p = ngx_sprintf(p, " RETURNING %V) SELECT %V FROM i WHERE "
                                "1 / (SELECT CASE count(*) WHEN %ui THEN 1 "
                                "ELSE 0 END FROM i) = 1",
                                &stmt[i].returning, &stmt[i].returning, n);
            }

            *p = '\0';
            stmt[i].sql[n].len = p - stmt[i].sql[n].data;

            p = ngx_pnalloc(cf->pool, sizeof("saveitem__") - 1
                                      + 2 * NGX_INT_T_LEN + 1);
            if (p == NULL) {
                return NGX_ERROR;
            }

            stmt[i].name[n].data = p;
            p = ngx_sprintf(p, "saveitem_%ui_%ui", i, n);
            *p = '\0';
            stmt[i].name[n].len = p - stmt[i].name[n].data;
        }

        if (stmt[i].idem.len
            && ngx_http_saveitem_db_stmts_key(cf, &stmt[i], i,
                                              smcf->batch_max)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_saveitem_db_stmts_bulk(cf, &stmt[i], i) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A bulk body: one parameter, a JSON array (however many documents: no
 * limit of 65535 parameters), its elements inserted in order and their
 * keys returned in order, all in one statement or none (the count guard,
 * as for group commit).  The probe inserts some of them and always fails
 * after (22012, with no row committed), to find which document a
 * constraint refuses.
 */

static ngx_int_t
ngx_http_saveitem_db_stmts_bulk(ngx_conf_t *cf, ngx_http_saveitem_stmt_t *stmt,
    ngx_uint_t i)
{
    u_char  *p;
    size_t   len;

    len = sizeof("WITH saveitem_docs AS (SELECT value, ordinality FROM "
                 "json_array_elements($1::json) WITH ORDINALITY), "
                 "saveitem_rows AS (INSERT INTO  () SELECT value FROM "
                 "saveitem_docs ORDER BY ordinality RETURNING ) SELECT  FROM "
                 "saveitem_rows WHERE 1 / (SELECT CASE count(*) WHEN "
                 "$2::bigint THEN 1 ELSE 0 END FROM saveitem_rows) = 1")
          + stmt->table.len + stmt->column.len + 2 * stmt->returning.len;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    stmt->sql_bulk.data = p;
    p = ngx_sprintf(p, "WITH saveitem_docs AS (SELECT value, ordinality FROM "
                    "json_array_elements($1::json) WITH ORDINALITY), "
                    "saveitem_rows AS (INSERT INTO %V (%V) SELECT value FROM "
                    "saveitem_docs ORDER BY ordinality RETURNING %V) "
                    "SELECT %V FROM saveitem_rows WHERE 1 / (SELECT CASE "
                    "count(*) WHEN $2::bigint THEN 1 ELSE 0 END FROM "
                    "saveitem_rows) = 1%Z", &stmt->table, &stmt->column,
                    &stmt->returning, &stmt->returning);
    stmt->sql_bulk.len = p - 1 - stmt->sql_bulk.data;

    len = sizeof("WITH saveitem_docs AS (SELECT value, ordinality FROM "
                 "json_array_elements($1::json) WITH ORDINALITY), "
                 "saveitem_rows AS (INSERT INTO  () SELECT value FROM "
                 "saveitem_docs ORDER BY ordinality RETURNING 1) "
                 "SELECT 1 / (c - c) FROM (SELECT count(*) AS c FROM "
                 "saveitem_rows) saveitem_count")
          + stmt->table.len + stmt->column.len;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    stmt->sql_probe.data = p;
    p = ngx_sprintf(p, "WITH saveitem_docs AS (SELECT value, ordinality FROM "
                    "json_array_elements($1::json) WITH ORDINALITY), "
                    "saveitem_rows AS (INSERT INTO %V (%V) SELECT value FROM "
                    "saveitem_docs ORDER BY ordinality RETURNING 1) "
                    "SELECT 1 / (c - c) FROM (SELECT count(*) AS c FROM "
                    "saveitem_rows) saveitem_count%Z", &stmt->table,
                    &stmt->column);
    stmt->sql_probe.len = p - 1 - stmt->sql_probe.data;

    p = ngx_pnalloc(cf->pool, 2 * (sizeof("saveitem__probe") + NGX_INT_T_LEN));
    if (p == NULL) {
        return NGX_ERROR;
    }

    stmt->name_bulk.data = p;
    p = ngx_sprintf(p, "saveitem_%ui_bulk%Z", i);
    stmt->name_bulk.len = p - 1 - stmt->name_bulk.data;

    stmt->name_probe.data = p;
    p = ngx_sprintf(p, "saveitem_%ui_probe%Z", i);
    stmt->name_probe.len = p - 1 - stmt->name_probe.data;

    return NGX_OK;
}


/*
 * With idempotency=: each row with its key.  A key that is new inserts
 * its row; a key stored with the same document (as jsonb) returns that
 * row again, marked (the row version written by the no-op update carries
 * our transaction as its xmax); a key stored with another document
 * returns nothing.  DO UPDATE, not DO NOTHING: a concurrent copy waits
 * for the first and then sees its row, which a separate SELECT in the
 * same statement would not.
 *
 * Each row comes back as (its place among the parameters, primary key,
 * what happened: n new, r replayed, k the key holds another document,
 * s skipped by a trigger), in the order sent: the keys are compared by
 * the server, as the key column's type compares them (an integer column
 * stores 007 as 7), never by their spelling.  The parameters of the
 * VALUES list below take the key column's type from the INSERT.  Never
 * two equal keys in one statement (21000).
 */

static ngx_int_t
ngx_http_saveitem_db_stmts_key(ngx_conf_t *cf, ngx_http_saveitem_stmt_t *stmt,
    ngx_uint_t i, ngx_uint_t batch_max)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   n, k;

    stmt->sql_key = ngx_pcalloc(cf->pool, (batch_max + 1) * sizeof(ngx_str_t));
    stmt->name_key = ngx_pcalloc(cf->pool,
                                 (batch_max + 1) * sizeof(ngx_str_t));
    if (stmt->sql_key == NULL || stmt->name_key == NULL) {
        return NGX_ERROR;
    }

    for (n = 1; n <= batch_max; n++) {

        len = sizeof("WITH saveitem_i AS (INSERT INTO  AS saveitem_row (, ) "
                     "VALUES  ON CONFLICT () DO UPDATE SET  = EXCLUDED. "
                     "WHERE saveitem_row.::jsonb = EXCLUDED.::jsonb "
                     "RETURNING saveitem_row. AS saveitem_k, "
                     "saveitem_row. AS saveitem_pk, "
                     "saveitem_row.xmax <> 0 AS saveitem_r) "
                     "SELECT saveitem_v.n, saveitem_i.saveitem_pk, "
                     "CASE WHEN saveitem_i.saveitem_r THEN 'r' "
                     "WHEN saveitem_i.saveitem_r IS NOT NULL THEN 'n' "
                     "WHEN EXISTS (SELECT 1 FROM  saveitem_s "
                     "WHERE saveitem_s. = saveitem_v.k) THEN 'k' "
                     "ELSE 's' END FROM (VALUES ) AS saveitem_v (n, k) "
                     "LEFT JOIN saveitem_i "
                     "ON saveitem_i.saveitem_k = saveitem_v.k "
                     "ORDER BY saveitem_v.n") - 1
              + 2 * stmt->table.len + 3 * stmt->column.len
              + 6 * stmt->idem.len + stmt->returning.len
              + n * (sizeof(",($, $)") - 1 + 2 * NGX_INT_T_LEN)
              + n * (sizeof(",(, $)") - 1 + 2 * NGX_INT_T_LEN);

        p = ngx_pnalloc(cf->pool, len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        stmt->sql_key[n].data = p;

        p = ngx_sprintf(p, "WITH saveitem_i AS (INSERT INTO %V AS saveitem_row "
                        "(%V, %V) VALUES ",
                        &stmt->table, &stmt->column, &stmt->idem);

        for (k = 1; k <= n; k++) {
            p = ngx_sprintf(p, "%s($%ui, $%ui)", k == 1 ? "" : ",",
                            2 * k - 1, 2 * k);
        }

        p = ngx_sprintf(p, " ON CONFLICT (%V) DO UPDATE SET %V = EXCLUDED.%V "
                        "WHERE saveitem_row.%V::jsonb = EXCLUDED.%V::jsonb "
                        "RETURNING saveitem_row.%V AS saveitem_k, "
                        "saveitem_row.%V AS saveitem_pk, "
                        "saveitem_row.xmax <> 0 AS saveitem_r) "
                        "SELECT saveitem_v.n, saveitem_i.saveitem_pk, "
                        "CASE WHEN saveitem_i.saveitem_r THEN 'r' "
                        "WHEN saveitem_i.saveitem_r IS NOT NULL THEN 'n' "
                        "WHEN EXISTS (SELECT 1 FROM %V saveitem_s "
                        "WHERE saveitem_s.%V = saveitem_v.k) THEN 'k' "
                        "ELSE 's' END FROM (VALUES ",
                        &stmt->idem, &stmt->idem, &stmt->idem,
                        &stmt->column, &stmt->column, &stmt->idem,
                        &stmt->returning, &stmt->table, &stmt->idem);

        for (k = 1; k <= n; k++) {
            p = ngx_sprintf(p, "%s(%ui, $%ui)", k == 1 ? "" : ",", k, 2 * k);
        }

        p = ngx_sprintf(p, ") AS saveitem_v (n, k) LEFT JOIN saveitem_i "
                        "ON saveitem_i.saveitem_k = saveitem_v.k "
                        "ORDER BY saveitem_v.n");

        *p = '\0';
        stmt->sql_key[n].len = p - stmt->sql_key[n].data;

        p = ngx_pnalloc(cf->pool, sizeof("saveitem__k") - 1
                                  + 2 * NGX_INT_T_LEN + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        stmt->name_key[n].data = p;
        p = ngx_sprintf(p, "saveitem_%ui_k%ui", i, n);
        *p = '\0';
        stmt->name_key[n].len = p - stmt->name_key[n].data;
    }

    return NGX_OK;
}


/* libpq's last message on one line, for the log */

u_char *
ngx_http_saveitem_db_error(PGconn *pg, u_char *buf, size_t len)
{
    u_char      *p, *last;
    const char  *msg;

    msg = pg ? PQerrorMessage(pg) : "out of memory";

    last = ngx_cpystrn(buf, (u_char *) msg, len);

    /* libpq's messages end with a newline and may have several lines */

    while (last > buf && (last[-1] == '\n' || last[-1] == ' ')) {
        last--;
    }

    *last = '\0';

    for (p = buf; p < last; p++) {
        if (*p == '\n' || *p == '\t') {
            *p = ' ';
        }
    }

    if (last == buf) {
        ngx_cpystrn(buf, (u_char *) "unknown error", len);
    }

    return buf;
}
