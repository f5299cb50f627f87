
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * Pure checks on bytes, with no nginx inside (see
 * ngx_http_saveitem_check.h): content types, the SQLSTATE map, log and
 * JSON escaping, identifier quoting, keys, the documents of a bulk body.
 * The JSON validator is src/ngx_http_saveitem_json.c.
 */


#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "ngx_http_saveitem_check.h"


/*
 * "application/json", or any "type/subtype+json", with optional
 * parameters after ";"; case-insensitive, as RFC 9110 says media types are
 */

int
saveitem_content_type_is_json(const unsigned char *p, size_t len)
{
    size_t                i, end, slash, found;
    static const char     json[] = "application/json";

    for (i = 0; i < len && (p[i] == ' ' || p[i] == '\t'); i++) {
        /* void */
    }

    for (end = i; end < len && p[end] != ';'; end++) {
        /* void */
    }

    while (end > i && (p[end - 1] == ' ' || p[end - 1] == '\t')) {
        end--;
    }

    if (end - i == sizeof(json) - 1
        && strncasecmp((const char *) p + i, json, sizeof(json) - 1) == 0)
    {
        return 1;
    }

    slash = 0;
    found = 0;

    for (len = i; len < end; len++) {
        if (p[len] == '/') {
            if (found) {
                return 0;
            }

            slash = len;
            found = 1;
        }
    }

    if (!found || slash == i || end - slash < 1 + 5 + 1) {
        return 0;
    }

    return strncasecmp((const char *) p + end - 5, "+json", 5) == 0;
}


/*
 * An error one document of a bulk body can be at fault for: data (22) or
 * integrity (23), or with saveitem_conflict a key the body holds twice
 * (21000: ON CONFLICT cannot affect a row twice); 22012 is the probe's own
 * (a division by zero).
 */

int
saveitem_sqlstate_is_document(const char *sqlstate)
{
    return sqlstate != NULL
           && (strncmp(sqlstate, "22", 2) == 0
               || strncmp(sqlstate, "23", 2) == 0
               || strcmp(sqlstate, "21000") == 0)
           && strcmp(sqlstate, "22012") != 0;
}


unsigned
saveitem_sqlstate_status(const char *sqlstate)
{
    if (sqlstate == NULL || strlen(sqlstate) != 5) {
        return 500;
    }

    if (strncmp(sqlstate, "22", 2) == 0) {
        return 400;
    }

    if (strcmp(sqlstate, "23505") == 0 || strcmp(sqlstate, "21000") == 0) {
        return 409;
    }

    if (strncmp(sqlstate, "23", 2) == 0) {
        return 422;
    }

    if (strcmp(sqlstate, "57014") == 0) {
        return 504;
    }

    /* the wrong server, or a conflict: not stored, worth retrying */

    if (strcmp(sqlstate, "25006") == 0
        || strcmp(sqlstate, "40001") == 0
        || strcmp(sqlstate, "40P01") == 0)
    {
        return 503;
    }

    if (strncmp(sqlstate, "08", 2) == 0
        || strncmp(sqlstate, "53", 2) == 0
        || strncmp(sqlstate, "57", 2) == 0)
    {
        return 503;
    }

    return 500;
}


const char *
saveitem_sqlstate_error(const char *sqlstate)
{
    switch (saveitem_sqlstate_status(sqlstate)) {

    case 400:
        return "invalid_data";

    case 409:
        return "conflict";

    case 422:
        return "constraint_violation";

    case 503:
        return "database_unavailable";

    case 504:
        return "query_timeout";

    default:
        return "database_error";
    }
}


/* for a status from SQLSTATE, when the server's words are not shown */

const char *
saveitem_sqlstate_message(const char *sqlstate)
{
    switch (saveitem_sqlstate_status(sqlstate)) {

    case 400:
        return "the database refused the data";

    case 409:
        return "the item conflicts with a stored one";

    case 422:
        return "the item violates a constraint";

    case 503:
        return "the database is not available";

    case 504:
        return "the statement took longer than the query timeout and was "
               "cancelled";

    default:
        return "the database could not store the item";
    }
}


/*
 * A client's bytes for a log line, as nginx escapes them in its own:
 * printable ASCII as it is, anything else (and the backslash) as \xHH.
 * Writes at most size bytes, never part of an escape; returns the length.
 */

size_t
saveitem_log_escape(unsigned char *dst, size_t size,
    const unsigned char *src, size_t len)
{
    size_t                i, n;
    static const char     hex[] = "0123456789ABCDEF";

    n = 0;

    for (i = 0; i < len; i++) {

        if (src[i] >= 0x20 && src[i] < 0x7f && src[i] != '\\') {
            if (n + 1 > size) {
                break;
            }

            dst[n++] = src[i];
            continue;
        }

        if (n + 4 > size) {
            break;
        }

        dst[n++] = '\\';
        dst[n++] = 'x';
        dst[n++] = hex[src[i] >> 4];
        dst[n++] = hex[src[i] & 0xf];
    }

    return n;
}


/*
 * "schema.table" or "table", each part either bare (taken literally,
 * case included) or in double quotes (where "" is a quote and a dot is
 * allowed), at most max_parts parts; the result is every part
 * double-quoted.  dst needs
 * 2 * len + 4 bytes at most.  Returns the length written, 0 when the name
 * is invalid (*errpos tells where), and never writes past a NUL.
 */

size_t
saveitem_quote_ident(unsigned char *dst, const unsigned char *src,
    size_t len, size_t max_parts, size_t *errpos)
{
    size_t          i, start, parts;
    unsigned char  *d;

    d = dst;
    i = 0;

    for (parts = 1; /* void */ ; parts++) {
        if (parts > max_parts) {
            *errpos = i;
            return 0;
        }

        start = i;
        *d++ = '"';

        if (i < len && src[i] == '"') {

            for (i++; ; i++) {
                if (i == len) {
                    *errpos = start;
                    return 0;
                }

                if (src[i] == '"') {
                    if (i + 1 < len && src[i + 1] == '"') {
                        *d++ = '"';
                        *d++ = '"';
                        i++;
                        continue;
                    }

                    i++;
                    break;
                }

                if (src[i] == '\0') {
                    *errpos = i;
                    return 0;
                }

                *d++ = src[i];
            }

            if (i == start + 2) {
                *errpos = start;
                return 0;
            }

        } else {

            for ( /* void */ ; i < len && src[i] != '.'; i++) {
                if (src[i] == '"' || src[i] == '\0') {
                    *errpos = i;
                    return 0;
                }

                *d++ = src[i];
            }

            if (i == start) {
                *errpos = start;
                return 0;
            }
        }

        *d++ = '"';

        if (i == len) {
            return d - dst;
        }

        if (src[i] != '.') {
            *errpos = i;
            return 0;
        }

        *d++ = '.';
        i++;
    }
}


/*
 * the inside of a JSON string; dst NULL counts the bytes
 */

size_t
saveitem_json_escape(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    size_t          i, n;
    unsigned char   c;
    static const char hex[] = "0123456789abcdef";

    n = 0;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c == '"' || c == '\\') {
            if (dst) {
                dst[n] = '\\';
                dst[n + 1] = c;
            }

            n += 2;

        } else if (c < 0x20 || c == 0x7f) {
            if (dst) {
                dst[n] = '\\';
                dst[n + 1] = 'u';
                dst[n + 2] = '0';
                dst[n + 3] = '0';
                dst[n + 4] = hex[c >> 4];
                dst[n + 5] = hex[c & 0xf];
            }

            n += 6;

        } else {
            if (dst) {
                dst[n] = c;
            }

            n++;
        }
    }

    return n;
}


/*
 * a key of an integer or numeric column goes out as a JSON number when its
 * text is one ("NaN" and "Infinity" of numeric are not)
 */

int
saveitem_pk_is_number(const unsigned char *p, size_t len)
{
    size_t  i;

    i = 0;

    if (i < len && p[i] == '-') {
        i++;
    }

    if (i == len || p[i] < '0' || p[i] > '9') {
        return 0;
    }

    if (p[i] == '0' && i + 1 < len && p[i + 1] != '.') {
        return 0;
    }

    while (i < len && p[i] >= '0' && p[i] <= '9') {
        i++;
    }

    if (i < len && p[i] == '.') {
        i++;

        if (i == len) {
            return 0;
        }

        while (i < len && p[i] >= '0' && p[i] <= '9') {
            i++;
        }
    }

    return i == len;
}


/* an Idempotency-Key: 1 to 255 visible ASCII characters */

int
saveitem_key_is_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len < 1 || len > 255) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e) {
            return 0;
        }
    }

    return 1;
}


/*
 * An Idempotency-Key in the form of the IETF draft, a structured-field
 * string (RFC 8941 sf-string: DQUOTE, printable ASCII with "\\" before
 * a DQUOTE or a "\\", DQUOTE), is the key between the quotes: "abc" and
 * abc are one key.  A value that does not start with a DQUOTE is the key
 * as it is.  Writes at most len bytes to dst; returns 1, or 0 when the
 * quoting is malformed (nothing may follow the closing DQUOTE).
 */

int
saveitem_key_unquote(const unsigned char *p, size_t len, unsigned char *dst,
    size_t *n)
{
    size_t  i, k;

    if (len == 0 || p[0] != '"') {
        memcpy(dst, p, len);
        *n = len;
        return 1;
    }

    k = 0;

    for (i = 1; i < len; i++) {

        if (p[i] == '\\') {
            if (i + 1 == len || (p[i + 1] != '"' && p[i + 1] != '\\')) {
                return 0;
            }

            dst[k++] = p[++i];
            continue;
        }

        if (p[i] == '"') {
            break;
        }

        if (p[i] < 0x20 || p[i] > 0x7e) {
            return 0;
        }

        dst[k++] = p[i];
    }

    if (i != len - 1) {
        /* no closing DQUOTE, or something after it */
        return 0;
    }

    *n = k;

    return 1;
}


/*
 * Two keys as the key column may give them back: a uuid column prints its
 * own form (lower case, with hyphens, no braces), so keys are compared
 * without case, hyphens and braces.  Two keys equal in this sense never
 * share a statement, so that the mapping stays one to one.
 */

int
saveitem_key_equal(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen)
{
    size_t         i, j;
    unsigned char  ca, cb;

    i = 0;
    j = 0;

    for ( ;; ) {
        while (i < alen && (a[i] == '-' || a[i] == '{' || a[i] == '}')) {
            i++;
        }

        while (j < blen && (b[j] == '-' || b[j] == '{' || b[j] == '}')) {
            j++;
        }

        if (i == alen || j == blen) {
            return i == alen && j == blen;
        }

        ca = (a[i] >= 'A' && a[i] <= 'Z') ? a[i] + 32 : a[i];
        cb = (b[j] >= 'A' && b[j] <= 'Z') ? b[j] + 32 : b[j];

        if (ca != cb) {
            return 0;
        }

        i++;
        j++;
    }
}


#define SAVEITEM_WS(c)                                                        \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')


static int saveitem_docs_close(saveitem_docs_t *d);


/*
 * A top-level array is "[", documents separated by ",", "]", whitespace
 * around; a document's extent is found by counting brackets outside
 * strings.  NDJSON is one document per line ("\n", an optional "\r"
 * before it), blank lines skipped.  Returns 0, or -1 (d->pos tells where)
 * when the body is not an array.
 */

int
saveitem_docs_open(saveitem_docs_t *d, const unsigned char *p, size_t len,
    int lines)
{
    size_t  i;

    d->start = p;
    d->len = len;
    d->lines = lines;
    d->state = 0;
    d->pos = 0;

    if (lines) {
        return 0;
    }

    for (i = 0; i < len && SAVEITEM_WS(p[i]); i++) { /* void */ }

    if (i == len || p[i] != '[') {
        d->pos = i;
        return -1;
    }

    d->pos = i + 1;

    return 0;
}


/*
 * The next document: 1 and its extent [*start, *end), 0 at the end, -1
 * when the array is malformed around its elements (d->pos tells where),
 * -2 when it stops inside or before an element: [*start, *end) is what
 * there is of it (empty: a document is missing), for the caller to judge.
 */

int
saveitem_docs_next(saveitem_docs_t *d, size_t *start, size_t *end)
{
    int                   depth, instr;
    size_t                i, e;
    const unsigned char  *p;

    p = d->start;
    i = d->pos;

    if (d->state == 2) {
        return 0;
    }

    if (d->lines) {
        for ( ;; ) {
            if (i >= d->len) {
                d->state = 2;
                return 0;
            }

            for (e = i; e < d->len && p[e] != '\n'; e++) { /* void */ }

            d->pos = (e < d->len) ? e + 1 : e;

            *start = i;
            *end = (e > i && p[e - 1] == '\r') ? e - 1 : e;

            for (e = *start; e < *end && SAVEITEM_WS(p[e]); e++) { /* void */ }

            if (e < *end) {
                return 1;
            }

            i = d->pos;
        }
    }

    for ( /* void */ ; i < d->len && SAVEITEM_WS(p[i]); i++) { /* void */ }

    if (i == d->len) {
        d->pos = i;
        *start = i;
        *end = i;
        return -2;
    }

    if (p[i] == ']' && d->state == 0) {
        /* [] */
        goto last;
    }

    *start = i;
    depth = 0;
    instr = 0;

    for ( /* void */ ; i < d->len; i++) {

        if (instr) {
            if (p[i] == '\\') {
                i++;

            } else if (p[i] == '"') {
                instr = 0;
            }

            continue;
        }

        if (p[i] == '"') {
            instr = 1;

        } else if (p[i] == '[' || p[i] == '{') {
            depth++;

        } else if (p[i] == ']' || p[i] == '}') {
            if (depth == 0) {
                break;
            }

            depth--;

        } else if (p[i] == ',' && depth == 0) {
            break;
        }
    }

    for (e = i; e > *start && SAVEITEM_WS(p[e - 1]); e--) { /* void */ }

    *end = e;

    if (i == d->len || e == *start || (p[i] != ',' && p[i] != ']')) {
        /* unterminated, an empty element, or "}" where "]" ends it */
        d->pos = i;
        return -2;
    }

    d->state = 1;

    if (p[i] == ',') {
        d->pos = i + 1;
        return 1;
    }

    d->pos = i;

    /* the document, then "]": the array ends here */

    if (saveitem_docs_close(d) != 0) {
        return -1;
    }

    return 1;

last:

    d->pos = i;

    return saveitem_docs_close(d) == 0 ? 0 : -1;
}


/* after the closing "]", only whitespace */

static int
saveitem_docs_close(saveitem_docs_t *d)
{
    size_t  i;

    for (i = d->pos + 1; i < d->len && SAVEITEM_WS(d->start[i]); i++) {
        /* void */
    }

    if (i < d->len) {
        d->pos = i;
        return -1;
    }

    d->state = 2;
    d->pos = i;

    return 0;
}


/* application/x-ndjson, application/jsonl (and ;parameters) */

int
saveitem_content_type_is_ndjson(const unsigned char *p, size_t len)
{
    size_t  i, n;

    static const char  *types[] = {
        "application/x-ndjson", "application/jsonl", "application/x-jsonl",
        NULL
    };

    for (i = 0; i < len && (p[i] == ' ' || p[i] == '\t'); i++) { /* void */ }

    p += i;
    len -= i;

    for (n = 0; n < len && p[n] != ';' && p[n] != ' ' && p[n] != '\t'; n++) {
        /* void */
    }

    for (i = 0; types[i]; i++) {
        if (strlen(types[i]) == n && strncasecmp((const char *) p, types[i], n)
                                     == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* the body is a JSON array: its first byte that is not whitespace is "[" */

int
saveitem_json_is_array(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len && SAVEITEM_WS(p[i]); i++) { /* void */ }

    return i < len && p[i] == '[';
}

