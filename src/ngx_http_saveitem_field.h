
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_FIELD_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_FIELD_H_INCLUDED_


/*
 * JSON keys into typed columns, as pure functions on bytes: no nginx, no
 * allocation (tested in util/unit/field_test.c, fuzzed in util/fuzz).
 *
 * The server converts a value with (doc #>> path)::type, or $n::type for a
 * value from nginx; saveitem_type_check() says beforehand whether it will
 * take the value, so that a wrong type is the client's 400 naming the key.
 * It never refuses what PostgreSQL 15 takes, except where listed under
 * "stricter" below; where it cannot tell it lets the value through and the
 * server judges (SAVEITEM_TYPE_OTHER, and the cases listed as such).
 *
 * The reasons (static strings, to put after the key's name):
 *
 *   "is null"                        JSON null (or "") for a NOT NULL column
 *   "is an object", "is an array"    a container for a scalar column
 *   "is not an integer"              int2, int4, int8
 *   "is out of range"                an integer beyond its width, a number
 *                                    beyond numeric's, float4's or float8's
 *   "is not a number"                numeric, float4, float8
 *   "is not true or false"           bool
 *   "is too long"                    varchar(n), char(n)
 *   "is not an RFC 3339 timestamp"   timestamptz, timestamp
 *   "is not a date (YYYY-MM-DD)"     date
 *   "is not a time (hh:mm:ss)"       time, timetz
 *   "is not a UUID"                  uuid
 *   "is not an IP address"           inet
 *   "is not a network (address/bits)"  cidr
 *   "is not an array"                an array column, a value not an array
 *   "holds a nested array"           an array in an array (not json/jsonb)
 *   "has an element that ..."        an array column: the element's reason
 *                                    ("has an element that is not a UUID")
 *   "is not valid UTF-8", "holds a NUL byte"
 *                                    saveitem_type_check_text() only
 *
 * The rules, by kind (PostgreSQL's own rules unless said otherwise):
 *
 *   null         accepted unless not_null, for every kind (OTHER too: NOT
 *                NULL is the catalog's word, not the type's)
 *   INT2/4/8     a JSON number written as an integer (-?digits), or a
 *                string PostgreSQL's int input takes: white space, [+-],
 *                digits (leading zeros too), white space; the range is
 *                exact (digit strings compared, no arithmetic)
 *   NUMERIC      any JSON number (saveitem_json_check() judged its range);
 *                a string numeric_in() takes: [+-]digits[.digits][e[+-]d],
 *                ".5", "5.", NaN, [+-]Infinity, [+-]inf, any case, white
 *                space around; its range as numeric_in() computes it
 *   FLOAT4/8     a JSON number, or a string, as float4in()/float8in() take
 *                it: the C library's strtof()/strtod() (so hex floats and
 *                "nan(...)" too), PostgreSQL's special words; out of range
 *                as they say (0 or infinity with ERANGE; denormals pass).
 *                A string past 511 bytes is judged on its syntax alone
 *   BOOL         JSON true or false; the numbers 0, 1 (and -0), whose text
 *                is "0" and "1"; a string boolin() takes: t, true, y, yes,
 *                on, 1, f, false, n, no, off, 0, any case, any unique
 *                prefix ("o" is not), white space around
 *   TEXT         anything; with max_chars n, too long when a character
 *                past the n-th is not a space (PostgreSQL drops trailing
 *                spaces past n): a string's characters once unescaped,
 *                anything else its JSON text as written (the server's
 *                text of 1e2 is "100", of an object jsonb's: close enough)
 *   TIMESTAMPTZ, TIMESTAMP, DATE
 *                a string YYYY-MM-DD, then optionally 'T', 't' or ' ' and
 *                hh:mm[:ss[.digits]], then optionally Z, z, +hh, +hhmm,
 *                +hh:mm (or -): month 1-12, the day within its month (leap
 *                years), hour 0-23 or 24:00:00, minute 0-59, second 0-60,
 *                zone within 15:59; or infinity, -infinity, epoch (any case).
 *                White space around.  DATE takes the same (PostgreSQL drops
 *                the time); TIMESTAMP takes the zone (and ignores it)
 *   TIME, TIMETZ hh:mm[:ss[.digits]] with an optional zone, or a whole
 *                timestamp as above (PostgreSQL keeps its time)
 *   UUID         32 hex digits, any case, a '-' allowed after any group of
 *                four (one at most), optionally in braces; nothing else,
 *                no white space (uuid_in())
 *   INET         IPv4 a.b.c.d[/0-32] or a shorter network with bits (10/8,
 *                10.1/16); IPv6 with ::, an IPv4 tail, /0-128
 *                (inet_net_pton() as PostgreSQL has it); no white space
 *   CIDR         the same, with PostgreSQL's classful default mask when
 *                none is written (10 is 10.0.0.0/8, 10.0.0.0 is /32) and
 *                no bit set past the mask ("10.0.0.1/8" refused)
 *   JSON, JSONB  anything
 *   array        a JSON array (or null); each element judged as a value of
 *                the kind; null elements accepted; an array in the array
 *                refused except for json/jsonb elements
 *   OTHER        anything (the server judges)
 *
 * Stricter than PostgreSQL 15, deliberately:
 *   - integers: a JSON number with a fraction or an exponent (1.0, 1e2),
 *     which the server would take when its numeric text has none;
 *   - bool: any other number than 0, 1 (1e0 would work: "1");
 *   - timestamps, dates, times: only the ISO 8601 / RFC 3339 forms above,
 *     years 0001-9999: no DateStyle forms (1/8/1999: ambiguous for an
 *     ingest endpoint), no "now", "today", "allballs", no 5-digit years,
 *     BC, time zone names, zones with seconds, no date without its '-'s;
 *     a fraction needs a digit ("10:00:00." is PostgreSQL's too); 24:00:00
 *     and :60 take only a zero fraction (PostgreSQL rounds to microseconds
 *     first); at most 128 bytes (PostgreSQL's own limit is near 150);
 *   - dates and times: a number (20240101 is a date to the server), a
 *     letter as a zone ("2024-01-01X10:00": military zone X), quotes
 *     around the text of a value from nginx;
 *   - cidr: a number (the server's text of 10 is "10", 10.0.0.0/8); cidr
 *     in hex (0x0a); inet, cidr: more than 255 bytes;
 *   - numeric strings: white space inside the exponent (strtol() skips
 *     it: "1e 5");
 *   - a string whose escapes make it longer than 511 bytes is let through
 *     for every kind but TEXT (the server judges it).
 *
 * saveitem_type_check_text(), a value from nginx: len 0 is NULL; bytes
 * that are not UTF-8, or a NUL byte, are refused for every kind (the
 * connection's client_encoding is UTF8: the server refuses them, and a
 * NUL would cut the text parameter short); the text is then judged as a
 * JSON string's would be, except json, jsonb and arrays, which the server
 * judges (saveitem_json_check() can judge json).
 *
 * json and jsonb columns take the value with #> (jsonb), not #>> (text):
 * the text of a string is not JSON.  util/unit/field_vs_pg.sh compares
 * the unit test's vectors with a server.
 */

#include <stddef.h>


typedef struct {                 /* one key of a dotted path */
    const unsigned char  *data;
    size_t                len;
} saveitem_part_t;


#define SAVEITEM_JV_ABSENT   0
#define SAVEITEM_JV_NULL     1
#define SAVEITEM_JV_FALSE    2
#define SAVEITEM_JV_TRUE     3
#define SAVEITEM_JV_NUMBER   4
#define SAVEITEM_JV_STRING   5   /* start, len include the quotes */
#define SAVEITEM_JV_ARRAY    6
#define SAVEITEM_JV_OBJECT   7


typedef struct {
    const unsigned char  *start;
    size_t                len;
    int                   type;   /* SAVEITEM_JV_ */
} saveitem_jv_t;


#define SAVEITEM_TYPE_OTHER        0   /* the module cannot tell */
#define SAVEITEM_TYPE_INT2         1
#define SAVEITEM_TYPE_INT4         2
#define SAVEITEM_TYPE_INT8         3
#define SAVEITEM_TYPE_NUMERIC      4
#define SAVEITEM_TYPE_FLOAT4       5
#define SAVEITEM_TYPE_FLOAT8       6
#define SAVEITEM_TYPE_BOOL         7
#define SAVEITEM_TYPE_TEXT         8   /* text, varchar, bpchar */
#define SAVEITEM_TYPE_TIMESTAMPTZ  9
#define SAVEITEM_TYPE_TIMESTAMP    10
#define SAVEITEM_TYPE_DATE         11
#define SAVEITEM_TYPE_TIME         12
#define SAVEITEM_TYPE_TIMETZ       13
#define SAVEITEM_TYPE_UUID         14
#define SAVEITEM_TYPE_INET         15
#define SAVEITEM_TYPE_CIDR         16
#define SAVEITEM_TYPE_JSON         17
#define SAVEITEM_TYPE_JSONB        18


typedef struct {
    int      kind;       /* SAVEITEM_TYPE_ */
    int      array;      /* a one-dimensional array of kind */
    size_t   max_chars;  /* varchar(n), char(n): n characters; 0: no limit */
    int      not_null;
} saveitem_type_t;


/*
 * PostgreSQL's type OID (the element's for an array) -> SAVEITEM_TYPE_;
 * OTHER for any other OID
 */
int saveitem_type_kind(unsigned long oid);

/*
 * doc: a document saveitem_json_check() accepted (anything else gives -1
 * or some answer, never a read past len).  Follows path[0..n-1] through
 * nested objects, comparing keys once the document's are unescaped; of
 * duplicate keys the last wins (as in jsonb).  A path through a
 * non-object, or a missing key: v->type ABSENT.  Returns 0, or -1 on
 * malformed input.
 */
int saveitem_json_find(const unsigned char *doc, size_t len,
    const saveitem_part_t *path, size_t n, saveitem_jv_t *v);

/*
 * The first top-level key of an object document that equals none of
 * known[0..n-1] (compared unescaped): 1 and its span in *key (quotes
 * included, type STRING); 0 when there is none or the document is not an
 * object; -1 on malformed input
 */
int saveitem_json_unknown_key(const unsigned char *doc, size_t len,
    const saveitem_part_t *known, size_t n, saveitem_jv_t *key);

/*
 * Whether a column of type t takes the JSON value v (not ABSENT), as far
 * as the module can tell: NULL when it does, else a reason (see above)
 */
const char *saveitem_type_check(const saveitem_type_t *t,
    const saveitem_jv_t *v);

/* the same for a value from nginx, read by the server as $n::type */
const char *saveitem_type_check_text(const saveitem_type_t *t,
    const unsigned char *p, size_t len);

/*
 * A scalar's text as PostgreSQL's ->> gives it: a string unescaped to
 * UTF-8, a number, true or false as written.  Returns its length, or
 * (size_t) -1 when it does not fit in size or v is not a scalar (or is
 * null or absent).  dst NULL: only the length.
 */
size_t saveitem_json_text(const saveitem_jv_t *v, unsigned char *dst,
    size_t size);


#endif /* _NGX_HTTP_SAVEITEM_FIELD_H_INCLUDED_ */
