
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * JSON keys into typed columns (see ngx_http_saveitem_field.h): finding a
 * key's value in a document, and judging it as PostgreSQL 15 would for
 * the column's type, so that a wrong type is the client's 400 naming the
 * key.  Pure: no nginx, no allocation; tested in util/unit/field_test.c,
 * fuzzed in util/fuzz, compared with a server by util/unit/field_vs_pg.sh.
 */


#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_saveitem_check.h"
#include "ngx_http_saveitem_field.h"


/* a string's unescaped text, judged on the stack */
#define SAVEITEM_FIELD_BUF       512

/* timestamps: longer is refused (PostgreSQL's own limit is near 150) */
#define SAVEITEM_FIELD_DATE_MAX  128

/* inet, cidr: longer is refused */
#define SAVEITEM_FIELD_INET_MAX  255

/* numeric_in(): an exponent this large is an error whatever the digits */
#define SAVEITEM_FIELD_EXP_MAX   1073741823

/* numeric: 16383 digits after the point, a weight of 32767 base 10000 */
#define SAVEITEM_FIELD_SCALE_MAX 16383
#define SAVEITEM_FIELD_E_MAX     131071


#define SAVEITEM_R_OK            0
#define SAVEITEM_R_NULL          1
#define SAVEITEM_R_OBJECT        2
#define SAVEITEM_R_ARRAY         3
#define SAVEITEM_R_INTEGER       4
#define SAVEITEM_R_RANGE         5
#define SAVEITEM_R_NUMBER        6
#define SAVEITEM_R_BOOL          7
#define SAVEITEM_R_LONG          8
#define SAVEITEM_R_TIMESTAMP     9
#define SAVEITEM_R_DATE          10
#define SAVEITEM_R_TIME          11
#define SAVEITEM_R_UUID          12
#define SAVEITEM_R_INET          13
#define SAVEITEM_R_CIDR          14
#define SAVEITEM_R_NOT_ARRAY     15
#define SAVEITEM_R_UTF8          16
#define SAVEITEM_R_NUL           17


/* the reason for a value, and for an element of an array */

static const char  *saveitem_field_reasons[][2] = {
    { NULL, NULL },
    { "is null", "has an element that is null" },
    { "is an object", "has an element that is an object" },
    { "is an array", "holds a nested array" },
    { "is not an integer", "has an element that is not an integer" },
    { "is out of range", "has an element that is out of range" },
    { "is not a number", "has an element that is not a number" },
    { "is not true or false", "has an element that is not true or false" },
    { "is too long", "has an element that is too long" },
    { "is not an RFC 3339 timestamp",
      "has an element that is not an RFC 3339 timestamp" },
    { "is not a date (YYYY-MM-DD)",
      "has an element that is not a date (YYYY-MM-DD)" },
    { "is not a time (hh:mm:ss)",
      "has an element that is not a time (hh:mm:ss)" },
    { "is not a UUID", "has an element that is not a UUID" },
    { "is not an IP address", "has an element that is not an IP address" },
    { "is not a network (address/bits)",
      "has an element that is not a network (address/bits)" },
    { "is not an array", "is not an array" },
    { "is not valid UTF-8", "is not valid UTF-8" },
    { "holds a NUL byte", "holds a NUL byte" }
};


typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    int                   object;
    int                   first;
} saveitem_field_iter_t;


static const unsigned char *saveitem_field_ws(const unsigned char *p,
    const unsigned char *end);
static const unsigned char *saveitem_field_string_end(
    const unsigned char *p, const unsigned char *end);
static const unsigned char *saveitem_field_skip(const unsigned char *p,
    const unsigned char *end);
static void saveitem_field_classify(const unsigned char *p,
    const unsigned char *q, saveitem_jv_t *v);
static int saveitem_field_top(const unsigned char *doc, size_t len,
    saveitem_jv_t *v);
static void saveitem_field_open(saveitem_field_iter_t *it,
    const saveitem_jv_t *v);
static int saveitem_field_next(saveitem_field_iter_t *it, saveitem_jv_t *key,
    saveitem_jv_t *val);
static int saveitem_field_char(const unsigned char **pp,
    const unsigned char *end, unsigned char *out);
static int saveitem_field_hex4(const unsigned char *p,
    const unsigned char *end, unsigned *cp);
static int saveitem_field_key_equal(const saveitem_jv_t *key,
    const saveitem_part_t *part);
static int saveitem_field_scalar(const saveitem_type_t *t,
    const saveitem_jv_t *v);
static int saveitem_field_kind_reason(int kind);
static int saveitem_field_text(const saveitem_type_t *t,
    const unsigned char *p, size_t n);
static int saveitem_field_long(const unsigned char *p, size_t n,
    size_t max);
static int saveitem_field_long_json(const saveitem_jv_t *v, size_t max);
static void saveitem_field_trim(const unsigned char **pp, size_t *n);
static int saveitem_field_prefix(const unsigned char *p, size_t n,
    const char *word);
static int saveitem_field_int(const unsigned char *p, size_t n, int kind);
static int saveitem_field_numeric(const unsigned char *p, size_t n,
    int range);
static int saveitem_field_float(const unsigned char *p, size_t n, int kind);
static int saveitem_field_bool(const unsigned char *p, size_t n);
static int saveitem_field_datetime(const unsigned char *p, size_t n,
    int time);
static int saveitem_field_digits(const unsigned char *p, size_t n,
    size_t i, size_t count, int *val);
static int saveitem_field_uuid(const unsigned char *p, size_t n);
static int saveitem_field_inet(const unsigned char *p, size_t n, int cidr);
static int saveitem_field_ipv4(const char *src, unsigned char *dst);
static int saveitem_field_cidr4(const char *src, unsigned char *dst);
static int saveitem_field_ipv6(const char *src, unsigned char *dst);
static int saveitem_field_getbits(const char *src, int *bitsp);
static int saveitem_field_getv4(const char *src, unsigned char *dst,
    int *bitsp);


#define saveitem_field_json_ws(c)                                            \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

/* isspace() in the C locale, as PostgreSQL's input functions use it */
#define saveitem_field_space(c)                                              \
    ((c) == ' ' || ((c) >= '\t' && (c) <= '\r'))

#define saveitem_field_digit(c)  ((c) >= '0' && (c) <= '9')

#define saveitem_field_xdigit(c)                                             \
    (saveitem_field_digit(c) || ((c) >= 'a' && (c) <= 'f')                 \
     || ((c) >= 'A' && (c) <= 'F'))

#define saveitem_field_lower(c)                                              \
    (((c) >= 'A' && (c) <= 'Z') ? (c) + 32 : (c))


int
saveitem_type_kind(unsigned long oid)
{
    switch (oid) {
    case 21:
        return SAVEITEM_TYPE_INT2;
    case 23:
        return SAVEITEM_TYPE_INT4;
    case 20:
        return SAVEITEM_TYPE_INT8;
    case 1700:
        return SAVEITEM_TYPE_NUMERIC;
    case 700:
        return SAVEITEM_TYPE_FLOAT4;
    case 701:
        return SAVEITEM_TYPE_FLOAT8;
    case 16:
        return SAVEITEM_TYPE_BOOL;
    case 25:
    case 1043:
    case 1042:
        return SAVEITEM_TYPE_TEXT;
    case 1184:
        return SAVEITEM_TYPE_TIMESTAMPTZ;
    case 1114:
        return SAVEITEM_TYPE_TIMESTAMP;
    case 1082:
        return SAVEITEM_TYPE_DATE;
    case 1083:
        return SAVEITEM_TYPE_TIME;
    case 1266:
        return SAVEITEM_TYPE_TIMETZ;
    case 2950:
        return SAVEITEM_TYPE_UUID;
    case 869:
        return SAVEITEM_TYPE_INET;
    case 650:
        return SAVEITEM_TYPE_CIDR;
    case 114:
        return SAVEITEM_TYPE_JSON;
    case 3802:
        return SAVEITEM_TYPE_JSONB;
    default:
        return SAVEITEM_TYPE_OTHER;
    }
}


int
saveitem_json_find(const unsigned char *doc, size_t len,
    const saveitem_part_t *path, size_t n, saveitem_jv_t *v)
{
    int                    rc, eq;
    size_t                 k;
    saveitem_jv_t          cur, key, val, found;
    saveitem_field_iter_t  it;

    if (saveitem_field_top(doc, len, &cur) != 0) {
        return -1;
    }

    for (k = 0; k < n; k++) {

        if (cur.type != SAVEITEM_JV_OBJECT) {
            v->start = NULL;
            v->len = 0;
            v->type = SAVEITEM_JV_ABSENT;
            return 0;
        }

        /* every member is read: of duplicate keys the last one wins */

        found.type = SAVEITEM_JV_ABSENT;
        saveitem_field_open(&it, &cur);

        while ((rc = saveitem_field_next(&it, &key, &val)) == 1) {
            eq = saveitem_field_key_equal(&key, &path[k]);

            if (eq < 0) {
                return -1;
            }

            if (eq) {
                found = val;
            }
        }

        if (rc < 0) {
            return -1;
        }

        if (found.type == SAVEITEM_JV_ABSENT) {
            v->start = NULL;
            v->len = 0;
            v->type = SAVEITEM_JV_ABSENT;
            return 0;
        }

        cur = found;
    }

    *v = cur;

    return 0;
}


int
saveitem_json_unknown_key(const unsigned char *doc, size_t len,
    const saveitem_part_t *known, size_t n, saveitem_jv_t *key)
{
    int                    rc, eq;
    size_t                 k;
    saveitem_jv_t          top, name, val;
    saveitem_field_iter_t  it;

    if (saveitem_field_top(doc, len, &top) != 0) {
        return -1;
    }

    if (top.type != SAVEITEM_JV_OBJECT) {
        return 0;
    }

    saveitem_field_open(&it, &top);

    while ((rc = saveitem_field_next(&it, &name, &val)) == 1) {

        for (k = 0; k < n; k++) {
            eq = saveitem_field_key_equal(&name, &known[k]);

            if (eq < 0) {
                return -1;
            }

            if (eq) {
                break;
            }
        }

        if (k == n) {
            if (saveitem_json_text(&name, NULL, 0) == (size_t) -1) {
                return -1;
            }

            *key = name;
            return 1;
        }
    }

    return (rc < 0) ? -1 : 0;
}


const char *
saveitem_type_check(const saveitem_type_t *t, const saveitem_jv_t *v)
{
    int                    r, rc;
    saveitem_jv_t          val;
    saveitem_field_iter_t  it;

    if (v->type == SAVEITEM_JV_ABSENT) {
        return NULL;
    }

    if (v->type == SAVEITEM_JV_NULL) {
        return t->not_null ? saveitem_field_reasons[SAVEITEM_R_NULL][0]
                           : NULL;
    }

    if (t->kind == SAVEITEM_TYPE_OTHER) {
        return NULL;
    }

    if (!t->array) {
        r = saveitem_field_scalar(t, v);
        return saveitem_field_reasons[r][0];
    }

    if (v->type != SAVEITEM_JV_ARRAY) {
        return saveitem_field_reasons[SAVEITEM_R_NOT_ARRAY][0];
    }

    saveitem_field_open(&it, v);

    while ((rc = saveitem_field_next(&it, NULL, &val)) == 1) {

        if (val.type == SAVEITEM_JV_NULL) {
            continue;
        }

        if (val.type == SAVEITEM_JV_ARRAY
            && t->kind != SAVEITEM_TYPE_JSON
            && t->kind != SAVEITEM_TYPE_JSONB)
        {
            return saveitem_field_reasons[SAVEITEM_R_ARRAY][1];
        }

        r = saveitem_field_scalar(t, &val);

        if (r != SAVEITEM_R_OK) {
            return saveitem_field_reasons[r][1];
        }
    }

    /* malformed: the server judges */

    return NULL;
}


const char *
saveitem_type_check_text(const saveitem_type_t *t, const unsigned char *p,
    size_t len)
{
    int                   r;
    size_t                n;
    const unsigned char  *q, *end;

    if (len == 0) {
        return t->not_null ? saveitem_field_reasons[SAVEITEM_R_NULL][0]
                           : NULL;
    }

    if (memchr(p, '\0', len) != NULL) {
        return saveitem_field_reasons[SAVEITEM_R_NUL][0];
    }

    end = p + len;

    for (q = p; q < end; q += n) {
        n = saveitem_utf8_len_in(q, end);

        if (n == 0) {
            return saveitem_field_reasons[SAVEITEM_R_UTF8][0];
        }
    }

    if (t->kind == SAVEITEM_TYPE_OTHER || t->array) {
        return NULL;
    }

    r = saveitem_field_text(t, p, len);

    return saveitem_field_reasons[r][0];
}


size_t
saveitem_json_text(const saveitem_jv_t *v, unsigned char *dst, size_t size)
{
    int                   n;
    size_t                k;
    unsigned char         buf[4];
    const unsigned char  *p, *end;

    switch (v->type) {

    case SAVEITEM_JV_NUMBER:
    case SAVEITEM_JV_TRUE:
    case SAVEITEM_JV_FALSE:
        if (dst != NULL) {
            if (v->len > size) {
                return (size_t) -1;
            }

            memcpy(dst, v->start, v->len);
        }

        return v->len;

    case SAVEITEM_JV_STRING:
        break;

    default:
        return (size_t) -1;
    }

    if (v->len < 2) {
        return (size_t) -1;
    }

    p = v->start + 1;
    end = v->start + v->len;
    k = 0;

    for ( ;; ) {
        n = saveitem_field_char(&p, end, buf);

        if (n < 0) {
            return (size_t) -1;
        }

        if (n == 0) {
            return k;
        }

        if (dst != NULL) {
            if (size - k < (size_t) n) {
                return (size_t) -1;
            }

            memcpy(dst + k, buf, n);
        }

        k += n;
    }
}


/* walking a document */

static const unsigned char *
saveitem_field_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && saveitem_field_json_ws(*p)) {
        p++;
    }

    return p;
}


/* p just after a string's opening quote: past its closing one, or NULL */

static const unsigned char *
saveitem_field_string_end(const unsigned char *p, const unsigned char *end)
{
    while (p < end) {

        if (*p == '"') {
            return p + 1;
        }

        if (*p == '\\' && ++p == end) {
            return NULL;
        }

        p++;
    }

    return NULL;
}


/*
 * Past the value at p, or NULL: a container is skipped by counting its
 * brackets outside strings, without recursion (an input that is no
 * document may nest deeply); its inside is read when walked
 */

static const unsigned char *
saveitem_field_skip(const unsigned char *p, const unsigned char *end)
{
    size_t  depth;

    if (p == end) {
        return NULL;
    }

    switch (*p) {

    case '"':
        return saveitem_field_string_end(p + 1, end);

    case '{':
    case '[':
        depth = 0;

        while (p < end) {

            if (*p == '"') {
                p = saveitem_field_string_end(p + 1, end);

                if (p == NULL) {
                    return NULL;
                }

                continue;
            }

            if (*p == '{' || *p == '[') {
                depth++;

            } else if (*p == '}' || *p == ']') {
                if (--depth == 0) {
                    return p + 1;
                }
            }

            p++;
        }

        return NULL;

    case 't':
        return (end - p >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : NULL;

    case 'f':
        return (end - p >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : NULL;

    case 'n':
        return (end - p >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : NULL;

    default:
        if (*p != '-' && !saveitem_field_digit(*p)) {
            return NULL;
        }

        for (p++; p < end; p++) {
            if (!saveitem_field_digit(*p) && *p != '.' && *p != 'e'
                && *p != 'E' && *p != '+' && *p != '-')
            {
                break;
            }
        }

        return p;
    }
}


static void
saveitem_field_classify(const unsigned char *p, const unsigned char *q,
    saveitem_jv_t *v)
{
    v->start = p;
    v->len = q - p;

    switch (*p) {
    case '"':
        v->type = SAVEITEM_JV_STRING;
        break;
    case '{':
        v->type = SAVEITEM_JV_OBJECT;
        break;
    case '[':
        v->type = SAVEITEM_JV_ARRAY;
        break;
    case 't':
        v->type = SAVEITEM_JV_TRUE;
        break;
    case 'f':
        v->type = SAVEITEM_JV_FALSE;
        break;
    case 'n':
        v->type = SAVEITEM_JV_NULL;
        break;
    default:
        v->type = SAVEITEM_JV_NUMBER;
    }
}


/* the document's one value, white space around it */

static int
saveitem_field_top(const unsigned char *doc, size_t len, saveitem_jv_t *v)
{
    const unsigned char  *p, *q, *end;

    if (doc == NULL) {
        return -1;
    }

    end = doc + len;
    p = saveitem_field_ws(doc, end);
    q = saveitem_field_skip(p, end);

    if (q == NULL || saveitem_field_ws(q, end) != end) {
        return -1;
    }

    saveitem_field_classify(p, q, v);

    return 0;
}


static void
saveitem_field_open(saveitem_field_iter_t *it, const saveitem_jv_t *v)
{
    it->p = v->start + 1;
    it->end = v->start + v->len;
    it->object = (v->type == SAVEITEM_JV_OBJECT);
    it->first = 1;
}


/*
 * The next member of an object (its key in *key) or element of an array:
 * 1, 0 at the end, -1 on malformed input
 */

static int
saveitem_field_next(saveitem_field_iter_t *it, saveitem_jv_t *key,
    saveitem_jv_t *val)
{
    const unsigned char  *p, *q, *end;

    end = it->end;
    p = saveitem_field_ws(it->p, end);

    if (p == end) {
        return -1;
    }

    if (*p == (it->object ? '}' : ']')) {
        it->p = p + 1;
        return 0;
    }

    if (!it->first) {
        if (*p != ',') {
            return -1;
        }

        p = saveitem_field_ws(p + 1, end);
    }

    it->first = 0;

    if (it->object) {
        if (p == end || *p != '"') {
            return -1;
        }

        q = saveitem_field_string_end(p + 1, end);

        if (q == NULL) {
            return -1;
        }

        if (key != NULL) {
            key->start = p;
            key->len = q - p;
            key->type = SAVEITEM_JV_STRING;
        }

        p = saveitem_field_ws(q, end);

        if (p == end || *p != ':') {
            return -1;
        }

        p = saveitem_field_ws(p + 1, end);
    }

    q = saveitem_field_skip(p, end);

    if (q == NULL) {
        return -1;
    }

    saveitem_field_classify(p, q, val);
    it->p = q;

    return 1;
}


/*
 * One character of a string's inside, decoded: the bytes written to out
 * (1 to 4; a byte of a raw UTF-8 sequence is passed on alone), 0 at the
 * closing quote, -1 on malformed input
 */

static int
saveitem_field_char(const unsigned char **pp, const unsigned char *end,
    unsigned char *out)
{
    unsigned              cp, lo;
    const unsigned char  *p;

    p = *pp;

    if (p >= end) {
        return -1;
    }

    if (*p == '"') {
        *pp = p + 1;
        return 0;
    }

    if (*p != '\\') {
        out[0] = *p;
        *pp = p + 1;
        return 1;
    }

    if (++p == end) {
        return -1;
    }

    switch (*p) {
    case '"':
    case '\\':
    case '/':
        out[0] = *p;
        break;
    case 'b':
        out[0] = '\b';
        break;
    case 'f':
        out[0] = '\f';
        break;
    case 'n':
        out[0] = '\n';
        break;
    case 'r':
        out[0] = '\r';
        break;
    case 't':
        out[0] = '\t';
        break;

    case 'u':
        if (saveitem_field_hex4(p + 1, end, &cp) != 0) {
            return -1;
        }

        p += 5;

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            return -1;
        }

        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u'
                || saveitem_field_hex4(p + 2, end, &lo) != 0
                || lo < 0xdc00 || lo > 0xdfff)
            {
                return -1;
            }

            p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }

        *pp = p;

        if (cp < 0x80) {
            out[0] = (unsigned char) cp;
            return 1;
        }

        if (cp < 0x800) {
            out[0] = (unsigned char) (0xc0 | (cp >> 6));
            out[1] = (unsigned char) (0x80 | (cp & 0x3f));
            return 2;
        }

        if (cp < 0x10000) {
            out[0] = (unsigned char) (0xe0 | (cp >> 12));
            out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
            out[2] = (unsigned char) (0x80 | (cp & 0x3f));
            return 3;
        }

        out[0] = (unsigned char) (0xf0 | (cp >> 18));
        out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
        out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        out[3] = (unsigned char) (0x80 | (cp & 0x3f));
        return 4;

    default:
        return -1;
    }

    *pp = p + 1;

    return 1;
}


static int
saveitem_field_hex4(const unsigned char *p, const unsigned char *end,
    unsigned *cp)
{
    int            i;
    unsigned char  c;

    if (end - p < 4) {
        return -1;
    }

    *cp = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (saveitem_field_digit(c)) {
            *cp = (*cp << 4) | (c - '0');

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            *cp = (*cp << 4) | ((c | 0x20) - 'a' + 10);

        } else {
            return -1;
        }
    }

    return 0;
}


/* a key (quotes included) against a path's part: 1, 0, -1 malformed */

static int
saveitem_field_key_equal(const saveitem_jv_t *key,
    const saveitem_part_t *part)
{
    int                   n, equal;
    size_t                i;
    unsigned char         buf[4];
    const unsigned char  *p, *end;

    p = key->start + 1;
    end = key->start + key->len;
    i = 0;
    equal = 1;

    /* decoded to the end even when different: a malformed key is -1 */

    for ( ;; ) {
        n = saveitem_field_char(&p, end, buf);

        if (n < 0) {
            return -1;
        }

        if (n == 0) {
            return equal && i == part->len;
        }

        if (equal
            && (part->len - i < (size_t) n
                || memcmp(part->data + i, buf, n) != 0))
        {
            equal = 0;
        }

        i += n;
    }
}


/* judging a value */

static int
saveitem_field_scalar(const saveitem_type_t *t, const saveitem_jv_t *v)
{
    int                   kind;
    size_t                n;
    unsigned char         buf[SAVEITEM_FIELD_BUF];
    const unsigned char  *p;

    kind = t->kind;

    if (kind == SAVEITEM_TYPE_JSON || kind == SAVEITEM_TYPE_JSONB
        || kind == SAVEITEM_TYPE_OTHER)
    {
        return SAVEITEM_R_OK;
    }

    switch (v->type) {

    case SAVEITEM_JV_OBJECT:
    case SAVEITEM_JV_ARRAY:
        if (kind == SAVEITEM_TYPE_TEXT) {
            return saveitem_field_long(v->start, v->len, t->max_chars);
        }

        return (v->type == SAVEITEM_JV_OBJECT) ? SAVEITEM_R_OBJECT
                                               : SAVEITEM_R_ARRAY;

    case SAVEITEM_JV_TRUE:
    case SAVEITEM_JV_FALSE:
        if (kind == SAVEITEM_TYPE_BOOL) {
            return SAVEITEM_R_OK;
        }

        if (kind == SAVEITEM_TYPE_TEXT) {
            return saveitem_field_long(v->start, v->len, t->max_chars);
        }

        return saveitem_field_kind_reason(kind);

    case SAVEITEM_JV_NUMBER:

        switch (kind) {

        case SAVEITEM_TYPE_INT2:
        case SAVEITEM_TYPE_INT4:
        case SAVEITEM_TYPE_INT8:
            /* deliberately: no fraction, no exponent, even 1.0 or 1e2 */
            for (n = 0; n < v->len; n++) {
                if (v->start[n] == '.' || v->start[n] == 'e'
                    || v->start[n] == 'E')
                {
                    return SAVEITEM_R_INTEGER;
                }
            }

            return saveitem_field_int(v->start, v->len, kind);

        case SAVEITEM_TYPE_NUMERIC:
            /* saveitem_json_check() judged its range */
            return saveitem_field_numeric(v->start, v->len, 0);

        case SAVEITEM_TYPE_FLOAT4:
        case SAVEITEM_TYPE_FLOAT8:
            return saveitem_field_float(v->start, v->len, kind);

        case SAVEITEM_TYPE_BOOL:
            /* the server reads the number's text: "0" or "1" */
            if ((v->len == 1 && (v->start[0] == '0' || v->start[0] == '1'))
                || (v->len == 2 && v->start[0] == '-' && v->start[1] == '0'))
            {
                return SAVEITEM_R_OK;
            }

            return SAVEITEM_R_BOOL;

        case SAVEITEM_TYPE_TEXT:
            return saveitem_field_long(v->start, v->len, t->max_chars);

        default:
            return saveitem_field_kind_reason(kind);
        }

    case SAVEITEM_JV_STRING:
        break;

    default:
        return SAVEITEM_R_OK;
    }

    if (v->len < 2) {
        return SAVEITEM_R_OK;
    }

    if (kind == SAVEITEM_TYPE_TEXT) {
        return saveitem_field_long_json(v, t->max_chars);
    }

    /* judged on its unescaped text */

    if (memchr(v->start + 1, '\\', v->len - 2) == NULL) {
        p = v->start + 1;
        n = v->len - 2;

    } else {
        n = saveitem_json_text(v, buf, sizeof(buf));

        if (n == (size_t) -1) {
            /* too long to judge here, or malformed: the server judges */
            return SAVEITEM_R_OK;
        }

        p = buf;
    }

    return saveitem_field_text(t, p, n);
}


/* what a value of the wrong JSON type is told, by the column's kind */

static int
saveitem_field_kind_reason(int kind)
{
    switch (kind) {
    case SAVEITEM_TYPE_INT2:
    case SAVEITEM_TYPE_INT4:
    case SAVEITEM_TYPE_INT8:
        return SAVEITEM_R_INTEGER;
    case SAVEITEM_TYPE_NUMERIC:
    case SAVEITEM_TYPE_FLOAT4:
    case SAVEITEM_TYPE_FLOAT8:
        return SAVEITEM_R_NUMBER;
    case SAVEITEM_TYPE_BOOL:
        return SAVEITEM_R_BOOL;
    case SAVEITEM_TYPE_TIMESTAMPTZ:
    case SAVEITEM_TYPE_TIMESTAMP:
        return SAVEITEM_R_TIMESTAMP;
    case SAVEITEM_TYPE_DATE:
        return SAVEITEM_R_DATE;
    case SAVEITEM_TYPE_TIME:
    case SAVEITEM_TYPE_TIMETZ:
        return SAVEITEM_R_TIME;
    case SAVEITEM_TYPE_UUID:
        return SAVEITEM_R_UUID;
    case SAVEITEM_TYPE_INET:
        return SAVEITEM_R_INET;
    case SAVEITEM_TYPE_CIDR:
        return SAVEITEM_R_CIDR;
    default:
        return SAVEITEM_R_OK;
    }
}


/* a text as the server reads it for the kind */

static int
saveitem_field_text(const saveitem_type_t *t, const unsigned char *p,
    size_t n)
{
    int  ok;

    switch (t->kind) {

    case SAVEITEM_TYPE_INT2:
    case SAVEITEM_TYPE_INT4:
    case SAVEITEM_TYPE_INT8:
        return saveitem_field_int(p, n, t->kind);

    case SAVEITEM_TYPE_NUMERIC:
        return saveitem_field_numeric(p, n, 1);

    case SAVEITEM_TYPE_FLOAT4:
    case SAVEITEM_TYPE_FLOAT8:
        return saveitem_field_float(p, n, t->kind);

    case SAVEITEM_TYPE_BOOL:
        return saveitem_field_bool(p, n);

    case SAVEITEM_TYPE_TEXT:
        return saveitem_field_long(p, n, t->max_chars);

    case SAVEITEM_TYPE_TIMESTAMPTZ:
    case SAVEITEM_TYPE_TIMESTAMP:
    case SAVEITEM_TYPE_DATE:
        ok = saveitem_field_datetime(p, n, 0);
        break;

    case SAVEITEM_TYPE_TIME:
    case SAVEITEM_TYPE_TIMETZ:
        ok = saveitem_field_datetime(p, n, 1);
        break;

    case SAVEITEM_TYPE_UUID:
        ok = saveitem_field_uuid(p, n);
        break;

    case SAVEITEM_TYPE_INET:
        ok = saveitem_field_inet(p, n, 0);
        break;

    case SAVEITEM_TYPE_CIDR:
        ok = saveitem_field_inet(p, n, 1);
        break;

    default:
        return SAVEITEM_R_OK;
    }

    return ok ? SAVEITEM_R_OK : saveitem_field_kind_reason(t->kind);
}


/*
 * varchar(n), char(n): too long when a character past the n-th is not a
 * space (PostgreSQL drops trailing spaces past n); characters counted as
 * UTF-8 lead bytes
 */

static int
saveitem_field_long(const unsigned char *p, size_t n, size_t max)
{
    size_t  i, chars;

    if (max == 0) {
        return SAVEITEM_R_OK;
    }

    chars = 0;

    for (i = 0; i < n; i++) {
        if ((p[i] & 0xc0) == 0x80) {
            continue;
        }

        if (chars >= max && p[i] != ' ') {
            return SAVEITEM_R_LONG;
        }

        chars++;
    }

    return SAVEITEM_R_OK;
}


/* the same for a JSON string, unescaped as it goes */

static int
saveitem_field_long_json(const saveitem_jv_t *v, size_t max)
{
    int                   n;
    size_t                chars;
    unsigned char         buf[4];
    const unsigned char  *p, *end;

    if (max == 0) {
        return SAVEITEM_R_OK;
    }

    p = v->start + 1;
    end = v->start + v->len;
    chars = 0;

    for ( ;; ) {
        n = saveitem_field_char(&p, end, buf);

        if (n <= 0) {
            /* the end, or malformed: the server judges */
            return SAVEITEM_R_OK;
        }

        if ((buf[0] & 0xc0) == 0x80) {
            continue;
        }

        if (chars >= max && buf[0] != ' ') {
            return SAVEITEM_R_LONG;
        }

        chars++;
    }
}


/* white space around, as PostgreSQL's input functions skip it */

static void
saveitem_field_trim(const unsigned char **pp, size_t *n)
{
    const unsigned char  *p, *end;

    p = *pp;
    end = p + *n;

    while (p < end && saveitem_field_space(*p)) {
        p++;
    }

    while (end > p && saveitem_field_space(end[-1])) {
        end--;
    }

    *pp = p;
    *n = end - p;
}


/* p[0..n) is a case-insensitive prefix of word, at least one character */

static int
saveitem_field_prefix(const unsigned char *p, size_t n, const char *word)
{
    size_t  i;

    if (n == 0 || n > strlen(word)) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (saveitem_field_lower(p[i]) != (unsigned char) word[i]) {
            return 0;
        }
    }

    return 1;
}


/*
 * pg_strtoint16/32/64(): white space, [+-], digits, white space; the range
 * by comparing digit strings, leading zeros dropped
 */

static int
saveitem_field_int(const unsigned char *p, size_t n, int kind)
{
    int          neg;
    size_t       i, len;
    const char  *max;

    saveitem_field_trim(&p, &n);

    neg = 0;
    i = 0;

    if (i < n && (p[i] == '-' || p[i] == '+')) {
        neg = (p[i] == '-');
        i++;
    }

    if (i == n) {
        return SAVEITEM_R_INTEGER;
    }

    for (len = i; len < n; len++) {
        if (!saveitem_field_digit(p[len])) {
            return SAVEITEM_R_INTEGER;
        }
    }

    while (i < n - 1 && p[i] == '0') {
        i++;
    }

    switch (kind) {
    case SAVEITEM_TYPE_INT2:
        max = neg ? "32768" : "32767";
        break;
    case SAVEITEM_TYPE_INT4:
        max = neg ? "2147483648" : "2147483647";
        break;
    default:
        max = neg ? "9223372036854775808" : "9223372036854775807";
    }

    len = strlen(max);

    if (n - i < len) {
        return SAVEITEM_R_OK;
    }

    if (n - i > len || memcmp(p + i, max, len) > 0) {
        return SAVEITEM_R_RANGE;
    }

    return SAVEITEM_R_OK;
}


/*
 * numeric_in(): white space, NaN, [+-]Infinity, [+-]inf (any case), or
 * [+-] digits [. digits] [e [+-] digits] (".5", "5." too), white space;
 * with range, as set_var_from_str() and make_result() compute it: the
 * scale is the digits after the point less the exponent, at most 16383;
 * the weight of the first digit that is not zero at most 32767 in base
 * 10000
 */

static int
saveitem_field_numeric(const unsigned char *p, size_t n, int range)
{
    int                 neg;
    size_t              i, k, ni, nf, first;
    long long           x, e, scale;
    static const char  *special[] = {
        "nan", "infinity", "+infinity", "-infinity", "inf", "+inf", "-inf"
    };

    saveitem_field_trim(&p, &n);

    for (k = 0; k < sizeof(special) / sizeof(special[0]); k++) {
        if (n == strlen(special[k])
            && saveitem_field_prefix(p, n, special[k]))
        {
            return SAVEITEM_R_OK;
        }
    }

    i = 0;

    if (i < n && (p[i] == '-' || p[i] == '+')) {
        i++;
    }

    k = i;

    while (i < n && saveitem_field_digit(p[i])) {
        i++;
    }

    ni = i - k;
    nf = 0;

    if (i < n && p[i] == '.') {
        i++;

        while (i < n && saveitem_field_digit(p[i])) {
            i++;
            nf++;
        }
    }

    if (ni + nf == 0) {
        return SAVEITEM_R_NUMBER;
    }

    x = 0;

    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        neg = 0;

        if (i < n && (p[i] == '-' || p[i] == '+')) {
            neg = (p[i] == '-');
            i++;
        }

        if (i == n || !saveitem_field_digit(p[i])) {
            return SAVEITEM_R_NUMBER;
        }

        while (i < n && saveitem_field_digit(p[i])) {
            if (x < SAVEITEM_FIELD_EXP_MAX) {
                x = x * 10 + (p[i] - '0');
            }

            i++;
        }

        if (neg) {
            x = -x;
        }
    }

    if (i != n) {
        return SAVEITEM_R_NUMBER;
    }

    if (!range) {
        return SAVEITEM_R_OK;
    }

    if (x >= SAVEITEM_FIELD_EXP_MAX || x <= -SAVEITEM_FIELD_EXP_MAX) {
        return SAVEITEM_R_RANGE;
    }

    scale = (long long) nf - x;

    if (scale > SAVEITEM_FIELD_SCALE_MAX) {
        return SAVEITEM_R_RANGE;
    }

    /* the first digit that is not zero, its power of ten */

    for (first = 0; first < ni + nf; first++) {
        if (p[k + first + (first >= ni)] != '0') {
            break;
        }
    }

    if (first == ni + nf) {
        return SAVEITEM_R_OK;
    }

    e = (long long) ni - 1 - (long long) first + x;

    if (e > SAVEITEM_FIELD_E_MAX) {
        return SAVEITEM_R_RANGE;
    }

    return SAVEITEM_R_OK;
}


/*
 * float4in(), float8in(): white space, strtof() or strtod() (the C
 * library's syntax: hex floats, "nan(...)"), PostgreSQL's special words
 * where they fail, out of range on ERANGE with 0 or infinity, white space
 */

static int
saveitem_field_float(const unsigned char *p, size_t n, int kind)
{
    int                 err;
    char               *num, *endp;
    char                buf[SAVEITEM_FIELD_BUF];
    double              val;
    size_t              k, len;
    static const char  *special[] = {
        "NaN", "Infinity", "+Infinity", "-Infinity", "inf", "+inf", "-inf"
    };

    while (n > 0 && saveitem_field_space(*p)) {
        p++;
        n--;
    }

    if (n >= sizeof(buf)) {
        /* long: its syntax only, as numeric's; the server judges range */
        return saveitem_field_numeric(p, n, 0);
    }

    memcpy(buf, p, n);
    buf[n] = '\0';
    num = buf;

    errno = 0;

    if (kind == SAVEITEM_TYPE_FLOAT4) {
        val = strtof(num, &endp);

    } else {
        val = strtod(num, &endp);
    }

    err = errno;

    if (endp == num || err != 0) {

        for (k = 0; k < sizeof(special) / sizeof(special[0]); k++) {
            len = strlen(special[k]);

            if (strncasecmp(num, special[k], len) == 0) {
                endp = num + len;
                break;
            }
        }

        if (k == sizeof(special) / sizeof(special[0])) {
            if (err != ERANGE) {
                return SAVEITEM_R_NUMBER;
            }

            if (val == 0.0 || isinf(val)) {
                return SAVEITEM_R_RANGE;
            }
        }
    }

    while (*endp != '\0' && saveitem_field_space((unsigned char) *endp)) {
        endp++;
    }

    return (*endp == '\0') ? SAVEITEM_R_OK : SAVEITEM_R_NUMBER;
}


/*
 * boolin(): white space around, then t, true, y, yes, on, 1, f, false, n,
 * no, off, 0, any case, any prefix of these ("o" is not: on or off?)
 */

static int
saveitem_field_bool(const unsigned char *p, size_t n)
{
    int  ok;

    saveitem_field_trim(&p, &n);

    if (n == 0) {
        return SAVEITEM_R_BOOL;
    }

    switch (saveitem_field_lower(p[0])) {
    case 't':
        ok = saveitem_field_prefix(p, n, "true");
        break;
    case 'f':
        ok = saveitem_field_prefix(p, n, "false");
        break;
    case 'y':
        ok = saveitem_field_prefix(p, n, "yes");
        break;
    case 'n':
        ok = saveitem_field_prefix(p, n, "no");
        break;
    case 'o':
        ok = n >= 2 && (saveitem_field_prefix(p, n, "on")
                        || saveitem_field_prefix(p, n, "off"));
        break;
    case '0':
    case '1':
        ok = (n == 1);
        break;
    default:
        ok = 0;
    }

    return ok ? SAVEITEM_R_OK : SAVEITEM_R_BOOL;
}


/*
 * RFC 3339 / ISO 8601: YYYY-MM-DD, then 'T', 't' or ' ' and
 * hh:mm[:ss[.digits]], then Z, z, +hh, +hhmm, +hh:mm (or -); with time
 * set, the date may be left out but not the time.  infinity, -infinity,
 * epoch (any case) for a date or timestamp.  White space around.
 */

static int
saveitem_field_datetime(const unsigned char *p, size_t n, int time)
{
    int                y, mo, d, h, mi, s, zero, leap;
    size_t             i, k;
    static const int   days[] = {
        31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };
    static const char  *special[] = { "infinity", "-infinity", "epoch" };

    saveitem_field_trim(&p, &n);

    if (n > SAVEITEM_FIELD_DATE_MAX) {
        return 0;
    }

    if (!time) {
        for (k = 0; k < sizeof(special) / sizeof(special[0]); k++) {
            if (n == strlen(special[k])
                && saveitem_field_prefix(p, n, special[k]))
            {
                return 1;
            }
        }
    }

    i = 0;

    if (!time || (n > 4 && p[4] == '-')) {

        if (!saveitem_field_digits(p, n, 0, 4, &y)
            || n < 10 || p[4] != '-' || p[7] != '-'
            || !saveitem_field_digits(p, n, 5, 2, &mo)
            || !saveitem_field_digits(p, n, 8, 2, &d))
        {
            return 0;
        }

        leap = (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));

        if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days[mo - 1]
            || (mo == 2 && d == 29 && !leap))
        {
            return 0;
        }

        i = 10;

        if (i == n) {
            return !time;
        }

        if (p[i] != 'T' && p[i] != 't' && p[i] != ' ') {
            return 0;
        }

        i++;
    }

    if (!saveitem_field_digits(p, n, i, 2, &h)
        || i + 5 > n || p[i + 2] != ':'
        || !saveitem_field_digits(p, n, i + 3, 2, &mi))
    {
        return 0;
    }

    i += 5;
    s = 0;
    zero = 1;

    if (i < n && p[i] == ':') {
        if (!saveitem_field_digits(p, n, i + 1, 2, &s)) {
            return 0;
        }

        i += 3;

        if (i < n && p[i] == '.') {
            i++;
            k = i;

            while (i < n && saveitem_field_digit(p[i])) {
                zero = zero && (p[i] == '0');
                i++;
            }

            if (i == k) {
                return 0;
            }
        }
    }

    if (h > 24 || mi > 59 || s > 60
        || (h == 24 && (mi != 0 || s != 0 || !zero))
        || (s == 60 && !zero))
    {
        return 0;
    }

    if (i == n) {
        return 1;
    }

    if (p[i] == 'Z' || p[i] == 'z') {
        return i + 1 == n;
    }

    if (p[i] != '+' && p[i] != '-') {
        return 0;
    }

    if (!saveitem_field_digits(p, n, i + 1, 2, &h) || h > 15) {
        return 0;
    }

    i += 3;

    if (i == n) {
        return 1;
    }

    if (p[i] == ':') {
        i++;
    }

    return saveitem_field_digits(p, n, i, 2, &mi) && mi <= 59 && i + 2 == n;
}


/* count decimal digits at p[i], within n */

static int
saveitem_field_digits(const unsigned char *p, size_t n, size_t i,
    size_t count, int *val)
{
    size_t  k;

    if (i > n || n - i < count) {
        return 0;
    }

    *val = 0;

    for (k = i; k < i + count; k++) {
        if (!saveitem_field_digit(p[k])) {
            return 0;
        }

        *val = *val * 10 + (p[k] - '0');
    }

    return 1;
}


/*
 * uuid_in() (string_to_uuid()): 16 pairs of hex digits, a '-' allowed
 * after each second pair but the last, optionally in braces; no white
 * space
 */

static int
saveitem_field_uuid(const unsigned char *p, size_t n)
{
    int     braces;
    size_t  i, b;

    i = 0;
    braces = (n > 0 && p[0] == '{');

    if (braces) {
        i++;
    }

    for (b = 0; b < 16; b++) {
        if (n - i < 2 || !saveitem_field_xdigit(p[i])
            || !saveitem_field_xdigit(p[i + 1]))
        {
            return 0;
        }

        i += 2;

        if (i < n && p[i] == '-' && b % 2 == 1 && b < 15) {
            i++;
        }
    }

    if (braces) {
        if (i == n || p[i] != '}') {
            return 0;
        }

        i++;
    }

    return i == n;
}


/*
 * network_in(): IPv6 when there is a ':', else IPv4, read by PostgreSQL's
 * inet_net_pton() (src/port/inet_net_pton.c, ported on a copy that ends
 * with a NUL); for cidr, no bit set past the mask (addressOK())
 */

static int
saveitem_field_inet(const unsigned char *p, size_t n, int cidr)
{
    int            bits, maxbits, byte;
    char           buf[SAVEITEM_FIELD_INET_MAX + 1];
    unsigned char  addr[16], mask;

    if (n > SAVEITEM_FIELD_INET_MAX) {
        return 0;
    }

    memcpy(buf, p, n);
    buf[n] = '\0';
    memset(addr, 0, sizeof(addr));

    if (memchr(p, ':', n) != NULL) {
        bits = saveitem_field_ipv6(buf, addr);
        maxbits = 128;

    } else {
        bits = cidr ? saveitem_field_cidr4(buf, addr)
                    : saveitem_field_ipv4(buf, addr);
        maxbits = 32;
    }

    if (bits < 0 || bits > maxbits) {
        return 0;
    }

    if (!cidr || bits == maxbits) {
        return 1;
    }

    byte = bits / 8;
    mask = (bits % 8) ? (0xff >> (bits % 8)) : 0xff;

    for ( /* void */ ; byte < maxbits / 8; byte++) {
        if (addr[byte] & mask) {
            return 0;
        }

        mask = 0xff;
    }

    return 1;
}


/* inet_net_pton_ipv4(): the bits, or -1 */

static int
saveitem_field_ipv4(const char *src, unsigned char *dst)
{
    int                   ch, tmp, bits;
    size_t                size;
    const unsigned char  *odst;

    odst = dst;
    size = 4;

    while (ch = (unsigned char) *src++, saveitem_field_digit(ch)) {
        tmp = 0;

        do {
            tmp = tmp * 10 + (ch - '0');

            if (tmp > 255) {
                return -1;
            }

            ch = (unsigned char) *src++;
        } while (ch != '\0' && saveitem_field_digit(ch));

        if (size == 0) {
            return -1;
        }

        size--;
        *dst++ = (unsigned char) tmp;

        if (ch == '\0' || ch == '/') {
            break;
        }

        if (ch != '.') {
            return -1;
        }
    }

    bits = -1;

    if (ch == '/' && saveitem_field_digit((unsigned char) src[0])
        && dst > odst)
    {
        ch = (unsigned char) *src++;
        bits = 0;

        do {
            bits = bits * 10 + (ch - '0');

            if (bits > 32) {
                return -1;
            }

            ch = (unsigned char) *src++;
        } while (ch != '\0' && saveitem_field_digit(ch));

        if (ch != '\0') {
            return -1;
        }
    }

    if (ch != '\0') {
        return -1;
    }

    if (bits == -1) {
        if (dst - odst != 4) {
            return -1;
        }

        bits = 32;
    }

    if (dst == odst || bits / 8 > dst - odst) {
        return -1;
    }

    return bits;
}


/*
 * inet_cidr_pton_ipv4(): the bits, or -1; the classful mask when none is
 * written.  Its hexadecimal form (0x0a) is not taken here.
 */

static int
saveitem_field_cidr4(const char *src, unsigned char *dst)
{
    int                   ch, tmp, bits;
    size_t                size;
    const unsigned char  *odst;

    odst = dst;
    size = 4;
    ch = (unsigned char) *src++;

    if (!saveitem_field_digit(ch)) {
        return -1;
    }

    for ( ;; ) {
        tmp = 0;

        do {
            tmp = tmp * 10 + (ch - '0');

            if (tmp > 255) {
                return -1;
            }

            ch = (unsigned char) *src++;
        } while (ch != '\0' && saveitem_field_digit(ch));

        if (size == 0) {
            return -1;
        }

        size--;
        *dst++ = (unsigned char) tmp;

        if (ch == '\0' || ch == '/') {
            break;
        }

        if (ch != '.') {
            return -1;
        }

        ch = (unsigned char) *src++;

        if (!saveitem_field_digit(ch)) {
            return -1;
        }
    }

    bits = -1;

    if (ch == '/' && saveitem_field_digit((unsigned char) src[0])
        && dst > odst)
    {
        ch = (unsigned char) *src++;
        bits = 0;

        do {
            if (bits <= 32) {
                bits = bits * 10 + (ch - '0');
            }

            ch = (unsigned char) *src++;
        } while (ch != '\0' && saveitem_field_digit(ch));

        if (ch != '\0' || bits > 32) {
            return -1;
        }
    }

    if (ch != '\0' || dst == odst) {
        return -1;
    }

    if (bits == -1) {
        if (*odst >= 240) {             /* class E */
            bits = 32;

        } else if (*odst >= 224) {      /* class D */
            bits = 8;

        } else if (*odst >= 192) {      /* class C */
            bits = 24;

        } else if (*odst >= 128) {      /* class B */
            bits = 16;

        } else {                        /* class A */
            bits = 8;
        }

        if (bits < (dst - odst) * 8) {
            bits = (dst - odst) * 8;
        }

        if (bits == 8 && *odst == 224) {
            bits = 4;
        }
    }

    return bits;
}


/* inet_cidr_pton_ipv6(): the bits, or -1 */

static int
saveitem_field_ipv6(const char *src, unsigned char *dst)
{
    int             ch, saw_xdigit, digits, bits, n, i;
    unsigned        val;
    const char     *curtok;
    unsigned char   tmp[16], *tp, *endp, *colonp;

    memset(tmp, 0, sizeof(tmp));
    tp = tmp;
    endp = tp + 16;
    colonp = NULL;

    /* leading "::" requires some special handling */

    if (*src == ':') {
        if (*++src != ':') {
            return -1;
        }
    }

    curtok = src;
    saw_xdigit = 0;
    val = 0;
    digits = 0;
    bits = -1;

    while ((ch = (unsigned char) *src++) != '\0') {

        if (saveitem_field_xdigit(ch)) {
            val <<= 4;
            val |= saveitem_field_digit(ch) ? (unsigned) (ch - '0')
                   : (unsigned) ((ch | 0x20) - 'a' + 10);

            if (++digits > 4) {
                return -1;
            }

            saw_xdigit = 1;
            continue;
        }

        if (ch == ':') {
            curtok = src;

            if (!saw_xdigit) {
                if (colonp != NULL) {
                    return -1;
                }

                colonp = tp;
                continue;
            }

            if (*src == '\0' || tp + 2 > endp) {
                return -1;
            }

            *tp++ = (unsigned char) (val >> 8);
            *tp++ = (unsigned char) val;
            saw_xdigit = 0;
            digits = 0;
            val = 0;
            continue;
        }

        if (ch == '.' && tp + 4 <= endp
            && saveitem_field_getv4(curtok, tp, &bits) > 0)
        {
            tp += 4;
            saw_xdigit = 0;
            break;
        }

        if (ch == '/' && saveitem_field_getbits(src, &bits) > 0) {
            break;
        }

        return -1;
    }

    if (saw_xdigit) {
        if (tp + 2 > endp) {
            return -1;
        }

        *tp++ = (unsigned char) (val >> 8);
        *tp++ = (unsigned char) val;
    }

    if (bits == -1) {
        bits = 128;
    }

    if (colonp != NULL) {
        n = tp - colonp;

        if (tp == endp) {
            return -1;
        }

        for (i = 1; i <= n; i++) {
            endp[-i] = colonp[n - i];
            colonp[n - i] = 0;
        }

        tp = endp;
    }

    if (tp != endp) {
        return -1;
    }

    memcpy(dst, tmp, 16);

    return bits;
}


/* getbits(): 0-128, no leading zero */

static int
saveitem_field_getbits(const char *src, int *bitsp)
{
    int  ch, n, val;

    val = 0;
    n = 0;

    while ((ch = (unsigned char) *src++) != '\0') {

        if (!saveitem_field_digit(ch)) {
            return 0;
        }

        if (n++ != 0 && val == 0) {
            return 0;
        }

        val = val * 10 + (ch - '0');

        if (val > 128) {
            return 0;
        }
    }

    if (n == 0) {
        return 0;
    }

    *bitsp = val;

    return 1;
}


/* getv4(): the IPv4 tail of an IPv6 address, its bits after a '/' */

static int
saveitem_field_getv4(const char *src, unsigned char *dst, int *bitsp)
{
    int             ch, n;
    unsigned        val;
    unsigned char  *odst;

    odst = dst;
    val = 0;
    n = 0;

    while ((ch = (unsigned char) *src++) != '\0') {

        if (saveitem_field_digit(ch)) {
            if (n++ != 0 && val == 0) {
                return 0;
            }

            val = val * 10 + (ch - '0');

            if (val > 255) {
                return 0;
            }

            continue;
        }

        if (ch == '.' || ch == '/') {
            if (dst - odst > 3) {
                return 0;
            }

            *dst++ = (unsigned char) val;

            if (ch == '/') {
                return saveitem_field_getbits(src, bitsp);
            }

            val = 0;
            n = 0;
            continue;
        }

        return 0;
    }

    if (n == 0 || dst - odst > 3) {
        return 0;
    }

    *dst = (unsigned char) val;

    return 1;
}
