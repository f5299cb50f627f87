
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * The JSON validator: whether a document is one JSON value that
 * PostgreSQL's jsonb stores, and where and why not (the limits of jsonb
 * and numeric, UTF-8, "\u0000"), with jansson for the wording of syntax
 * errors.  Pure: no nginx inside (see ngx_http_saveitem_check.h); fuzzed
 * with the checks (util/fuzz).
 */


#include <stdint.h>
#include <string.h>
#include <jansson.h>

#include "ngx_http_saveitem_check.h"


static void saveitem_json_message(saveitem_json_error_t *err,
    const char *text);
static size_t saveitem_utf8_len(const unsigned char *p);
static int saveitem_json_scan(const unsigned char *p, size_t len,
    size_t *at);
static int saveitem_json_string(const unsigned char **pp,
    const unsigned char *end, uint64_t *len);
static int saveitem_json_number(const unsigned char **pp,
    const unsigned char *end, uint64_t *bytes);
static const unsigned char *saveitem_json_escape_u(const unsigned char *p,
    const unsigned char *end, unsigned *cp);


/*
 * What jsonb can store, measured against PostgreSQL 15 with psql (the
 * boundaries are in t/011-hostile.t): jsonb's parser recurses (54001 past about
 * 10,000 levels with the default max_stack_depth); a numeric keeps at most
 * 131072 digits before the point and 16383 after (22003); numeric_in()
 * refuses an exponent of 1073741823 (INT_MAX / 2) or more whatever the
 * digits; a jsonb string and the whole converted value hold at most
 * 2^28 - 1 bytes (54000); an array past 2^24 elements and an object past
 * 2^23 members (duplicates counted) make the parser ask for 1 GB (XX000).
 */


#define SAVEITEM_JSON_MAX_DEPTH   2048      /* jansson's own limit */
#define SAVEITEM_JSONB_MAX_LEN    0x0fffffff
#define SAVEITEM_JSONB_MAX_ELEMS  16777216
#define SAVEITEM_JSONB_MAX_PAIRS  8388608
#define SAVEITEM_NUMERIC_MAX_EXP  1073741823
#define SAVEITEM_NUMERIC_MAX_E    131071    /* weight 32767, base 10000 */
#define SAVEITEM_NUMERIC_MAX_SCALE  16383

#define SAVEITEM_JSON_OBJECT      0x80000000   /* in count[]: an object */

#define saveitem_json_ws(c)                                                  \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

#define saveitem_json_digit(c)  ((c) >= '0' && (c) <= '9')

/* floor(e / 4) */
#define saveitem_numeric_weight(e)  ((e) >= 0 ? (e) / 4 : -((3 - (e)) / 4))


static const char  *saveitem_json_reasons[] = {
    "",
    "unexpected end of input",
    "unexpected data after the JSON value",
    "syntax error",
    "invalid UTF-8",
    "invalid escape",
    "\"\\u0000\" cannot be stored in PostgreSQL",
    "control character in a string",
    "too deeply nested",
    "number too large for PostgreSQL: more than 131072 digits before "
        "the decimal point",
    "number with more than 16383 digits after the decimal point: "
        "PostgreSQL cannot store it",
    "exponent out of PostgreSQL's range",
    "string longer than PostgreSQL's jsonb limit of 268435455 bytes",
    "document larger than PostgreSQL's jsonb limit of 268435455 bytes",
    "array with more than 16777216 elements: PostgreSQL cannot store it",
    "object with more than 8388608 members: PostgreSQL cannot store it"
};


/*
 * The validator decides: a document passes when it is one JSON value that
 * PostgreSQL's jsonb stores, and nothing else does.  What it refuses gets
 * the position of the offending token; for a syntax error jansson words the
 * message and gives the position, as before, unless a number it cannot hold
 * (1e400: valid, and stored) stops it first.  A NUL byte cannot travel as a
 * libpq text parameter and "\u0000" cannot be stored in jsonb.
 */

int
saveitem_json_check(const unsigned char *p, size_t len,
    saveitem_json_error_t *err)
{
    int            reason;
    size_t         at;
    json_t        *root;
    json_error_t   e;
    const char    *nul;

    /* nothing but white space is no document: said as for an empty body */

    for (at = 0; at < len && saveitem_json_ws(p[at]); at++) { /* void */ }

    if (at == len) {
        saveitem_json_locate(err, p, 0);
        saveitem_json_message(err, "empty body");

        return SAVEITEM_JSON_INVALID;
    }

    nul = memchr(p, '\0', len);

    if (nul != NULL) {
        saveitem_json_locate(err, p, (const unsigned char *) nul - p);
        saveitem_json_message(err, "NUL byte in the body");

        return SAVEITEM_JSON_INVALID;
    }

    reason = saveitem_json_scan(p, len, &at);

    if (reason == SAVEITEM_SCAN_OK) {
        return SAVEITEM_JSON_OK;
    }

    if (reason >= SAVEITEM_SCAN_LIMITS) {
        goto own;
    }

    root = json_loadb((const char *) p, len, JSON_DECODE_ANY, &e);

    if (root != NULL) {
        /* cannot happen: the fuzzer checks that the two agree */
        json_decref(root);
        goto own;
    }

    if (json_error_code(&e) == json_error_numeric_overflow) {
        goto own;
    }

    err->line = e.line > 0 ? (size_t) e.line : 1;
    err->column = e.column > 0 ? (size_t) e.column : 1;
    err->position = e.position > 0 ? (size_t) e.position : 0;

    switch (json_error_code(&e)) {

    case json_error_out_of_memory:
        saveitem_json_message(err, "out of memory");
        return SAVEITEM_JSON_ERROR;

    case json_error_premature_end_of_input:
        saveitem_json_message(err, len ? "unexpected end of input"
                                       : "empty body");
        break;

    case json_error_end_of_input_expected:
        saveitem_json_message(err, "unexpected data after the JSON value");
        break;

    case json_error_invalid_utf8:
        saveitem_json_message(err, "invalid UTF-8");
        break;

    case json_error_null_character:
    case json_error_null_byte_in_key:
        saveitem_json_message(err,
                              "\"\\u0000\" cannot be stored in PostgreSQL");
        break;

    case json_error_stack_overflow:
        saveitem_json_message(err, "too deeply nested");
        break;

    default:
        if (len == 0) {
            saveitem_json_message(err, "empty body");

        } else if (strstr(e.text, "JSON_") != NULL) {
            saveitem_json_message(err, "syntax error");

        } else {
            saveitem_json_message(err, e.text);
        }
    }

    return SAVEITEM_JSON_INVALID;

own:

    saveitem_json_locate(err, p, at);
    saveitem_json_message(err, len ? saveitem_json_reasons[reason]
                                   : "empty body");

    return SAVEITEM_JSON_INVALID;
}


/* line and column (1-based, in characters) of the byte at offset at */

void
saveitem_json_locate(saveitem_json_error_t *err, const unsigned char *p,
    size_t at)
{
    size_t  i, line, column;

    line = 1;
    column = 1;

    for (i = 0; i < at; i++) {
        if (p[i] == '\n') {
            line++;
            column = 1;

        } else if ((p[i] & 0xc0) != 0x80) {
            column++;
        }
    }

    err->line = line;
    err->column = column;
    err->position = at;
}


/*
 * jansson quotes the input near an error, and may cut a character in two:
 * the message goes into a JSON answer, so what is not valid UTF-8 becomes
 * "?" (as do control characters)
 */

static void
saveitem_json_message(saveitem_json_error_t *err, const char *text)
{
    size_t                n, i, k, len;
    unsigned char         c;
    const unsigned char  *s;

    s = (const unsigned char *) text;
    n = 0;

    for (i = 0; s[i] != '\0' && n < SAVEITEM_JSON_MESSAGE_LEN - 1; i += len) {
        c = s[i];
        len = saveitem_utf8_len(s + i);

        if (len == 0 || n + len > SAVEITEM_JSON_MESSAGE_LEN - 1
            || (len == 1 && c < 0x20))
        {
            err->message[n++] = '?';
            len = 1;
            continue;
        }

        for (k = 0; k < len; k++) {
            err->message[n++] = s[i + k];
        }
    }

    err->message[n] = '\0';
}


/* the length of the valid UTF-8 sequence at p, 0 when it is not one */

static size_t
saveitem_utf8_len(const unsigned char *p)
{
    size_t         len, i;
    unsigned       cp, min;

    if (p[0] < 0x80) {
        return 1;
    }

    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = p[0] & 0x1f;
        min = 0x80;

    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = p[0] & 0x0f;
        min = 0x800;

    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = p[0] & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return len;
}


/*
 * A JSON validator that allocates nothing: SAVEITEM_SCAN_OK when p is one
 * JSON value (RFC 8259 as jansson reads it: UTF-8, no lone surrogate) that
 * jsonb stores (see above), otherwise the reason, and in *at the offset of
 * the offending byte (a syntax error) or token (what jsonb cannot hold).
 *
 * size bounds the length of the jsonb PostgreSQL builds (convertToJsonb()):
 * a container is a 4-byte header, then a 4-byte JEntry per element (two per
 * member), then the data; strings are their bytes, numerics their varlena,
 * numerics and containers are aligned on 4 bytes (counted as 3), a scalar
 * at the top is an array of one.  It can only overcount: duplicate keys,
 * which PostgreSQL drops, and padding.
 */

static int
saveitem_json_scan(const unsigned char *p, size_t len, size_t *at)
{
    int                   rc;
    size_t                depth;
    uint64_t              size, n;
    uint32_t              count[SAVEITEM_JSON_MAX_DEPTH + 1];
    const unsigned char  *start, *end, *tok, *q;

    /* p's address is never taken: it stays in a register */

    start = p;
    end = p + len;
    depth = 0;
    size = 4;

value:

    while (p < end && saveitem_json_ws(*p)) {
        p++;
    }

    if (p == end) {
        tok = p;
        rc = SAVEITEM_SCAN_END;
        goto failed;
    }

    tok = p;

    if (depth && !(count[depth] & SAVEITEM_JSON_OBJECT)
        && ++count[depth] > SAVEITEM_JSONB_MAX_ELEMS)
    {
        rc = SAVEITEM_SCAN_ELEMS;
        goto failed;
    }

    switch (*p) {

    case '{':
    case '[':
        if (depth == SAVEITEM_JSON_MAX_DEPTH) {
            rc = SAVEITEM_SCAN_DEPTH;
            goto failed;
        }

        if (depth) {
            size += 4 + 3 + 4;
        }

        count[++depth] = (*p == '{') ? SAVEITEM_JSON_OBJECT : 0;

        for (p++; p < end && saveitem_json_ws(*p); p++) { /* void */ }

        if (p == end) {
            tok = p;
            rc = SAVEITEM_SCAN_END;
            goto failed;
        }

        if (count[depth] & SAVEITEM_JSON_OBJECT) {
            if (*p == '}') {
                depth--;
                p++;
                goto next;
            }

            goto key;
        }

        if (*p == ']') {
            depth--;
            p++;
            goto next;
        }

        goto value;

    case '"':
        p++;
        q = p;
        rc = saveitem_json_string(&q, end, &n);
        p = q;

        if (rc != SAVEITEM_SCAN_OK) {
            tok = (rc == SAVEITEM_SCAN_STRING) ? tok : p;
            goto failed;
        }

        size += 4 + n;
        break;

    case 't':
        if (end - p < 4 || memcmp(p, "true", 4) != 0) {
            rc = SAVEITEM_SCAN_SYNTAX;
            goto failed;
        }

        p += 4;
        size += 4;
        break;

    case 'f':
        if (end - p < 5 || memcmp(p, "false", 5) != 0) {
            rc = SAVEITEM_SCAN_SYNTAX;
            goto failed;
        }

        p += 5;
        size += 4;
        break;

    case 'n':
        if (end - p < 4 || memcmp(p, "null", 4) != 0) {
            rc = SAVEITEM_SCAN_SYNTAX;
            goto failed;
        }

        p += 4;
        size += 4;
        break;

    default:
        q = p;
        rc = saveitem_json_number(&q, end, &n);
        p = q;

        if (rc != SAVEITEM_SCAN_OK) {
            tok = (rc == SAVEITEM_SCAN_SYNTAX) ? p : tok;
            goto failed;
        }

        size += 4 + 3 + n;
    }

next:

    /* after each value: tok is still where it began */

    if (size > SAVEITEM_JSONB_MAX_LEN) {
        rc = SAVEITEM_SCAN_SIZE;
        goto failed;
    }

    while (p < end && saveitem_json_ws(*p)) {
        p++;
    }

    tok = p;

    if (depth == 0) {
        if (p == end) {
            return SAVEITEM_SCAN_OK;
        }

        rc = SAVEITEM_SCAN_TRAILING;
        goto failed;
    }

    if (p == end) {
        rc = SAVEITEM_SCAN_END;
        goto failed;
    }

    if (count[depth] & SAVEITEM_JSON_OBJECT) {

        if (*p == '}') {
            depth--;
            p++;
            goto next;
        }

        if (*p != ',') {
            rc = SAVEITEM_SCAN_SYNTAX;
            goto failed;
        }

        for (p++; p < end && saveitem_json_ws(*p); p++) { /* void */ }

        goto key;
    }

    if (*p == ']') {
        depth--;
        p++;
        goto next;
    }

    if (*p != ',') {
        rc = SAVEITEM_SCAN_SYNTAX;
        goto failed;
    }

    p++;
    goto value;

key:

    tok = p;

    if (p == end) {
        rc = SAVEITEM_SCAN_END;
        goto failed;
    }

    if (*p != '"') {
        rc = SAVEITEM_SCAN_SYNTAX;
        goto failed;
    }

    if ((++count[depth] & ~SAVEITEM_JSON_OBJECT) > SAVEITEM_JSONB_MAX_PAIRS) {
        rc = SAVEITEM_SCAN_PAIRS;
        goto failed;
    }

    p++;
    q = p;
    rc = saveitem_json_string(&q, end, &n);
    p = q;

    if (rc != SAVEITEM_SCAN_OK) {
        tok = (rc == SAVEITEM_SCAN_STRING) ? tok : p;
        goto failed;
    }

    size += 4 + n;

    while (p < end && saveitem_json_ws(*p)) {
        p++;
    }

    if (p == end || *p != ':') {
        tok = p;
        rc = (p == end) ? SAVEITEM_SCAN_END : SAVEITEM_SCAN_SYNTAX;
        goto failed;
    }

    p++;
    goto value;

failed:

    *at = tok - start;

    return rc;
}


/*
 * The rest of a string after its quote: *pp moves past the closing quote,
 * *len is the length of the string once its escapes are decoded.  On
 * failure *pp is at the offending byte.
 */

static int
saveitem_json_string(const unsigned char **pp, const unsigned char *end,
    uint64_t *len)
{
    size_t                n, saved;
    unsigned              cp, lo;
    const unsigned char  *p, *start, *esc;

    p = *pp;
    start = p;
    saved = 0;

    while (p < end) {

        if (*p == '"') {
            *len = (p - start) - saved;
            *pp = p + 1;

            return (*len > SAVEITEM_JSONB_MAX_LEN) ? SAVEITEM_SCAN_STRING
                                                   : SAVEITEM_SCAN_OK;
        }

        if (*p < 0x20) {
            *pp = p;
            return SAVEITEM_SCAN_CONTROL;
        }

        if (*p >= 0x80) {
            n = saveitem_utf8_len_in(p, end);

            if (n == 0) {
                *pp = p;
                return SAVEITEM_SCAN_UTF8;
            }

            p += n;
            continue;
        }

        if (*p != '\\') {
            p++;
            continue;
        }

        esc = p;

        if (++p == end) {
            *pp = p;
            return SAVEITEM_SCAN_END;
        }

        switch (*p) {

        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p++;
            saved++;
            continue;

        case 'u':
            break;

        default:
            *pp = esc;
            return SAVEITEM_SCAN_ESCAPE;
        }

        p = saveitem_json_escape_u(p + 1, end, &cp);

        if (p == NULL || (cp >= 0xdc00 && cp <= 0xdfff)) {
            *pp = esc;
            return SAVEITEM_SCAN_ESCAPE;
        }

        if (cp == 0) {
            *pp = esc;
            return SAVEITEM_SCAN_U0000;
        }

        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - p < 2 || p[0] != '\\' || p[1] != 'u') {
                *pp = esc;
                return SAVEITEM_SCAN_ESCAPE;
            }

            p = saveitem_json_escape_u(p + 2, end, &lo);

            if (p == NULL || lo < 0xdc00 || lo > 0xdfff) {
                *pp = esc;
                return SAVEITEM_SCAN_ESCAPE;
            }

            saved += 12 - 4;
            continue;
        }

        saved += 6 - (cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3);
    }

    *pp = p;

    return SAVEITEM_SCAN_END;
}


/* four hex digits after "\u" */

static const unsigned char *
saveitem_json_escape_u(const unsigned char *p, const unsigned char *end,
    unsigned *cp)
{
    int            i;
    unsigned char  c;

    if (end - p < 4) {
        return NULL;
    }

    *cp = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            *cp = (*cp << 4) | (c - '0');

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            *cp = (*cp << 4) | ((c | 0x20) - 'a' + 10);

        } else {
            return NULL;
        }
    }

    return p + 4;
}


/*
 * -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?, within numeric's
 * range as numeric_in() reads it (set_var_from_str(), make_result()): the
 * scale is the digits written after the point less the exponent (zeros
 * count, 0.0e-16383 overflows); the weight, in base 10000 digits, is that
 * of the first digit that is not zero.  *pp moves past the number, *bytes
 * is the size of its varlena; on a syntax error *pp is at the offending
 * byte, on a range error it stays at the number.
 */

static int
saveitem_json_number(const unsigned char **pp, const unsigned char *end,
    uint64_t *bytes)
{
    int                   neg;
    int64_t               ni, nf, first, last, x, e, w, scale;
    const unsigned char  *p, *q, *digits, *point, *stop;

    p = *pp;

    if (p < end && *p == '-') {
        p++;
    }

    if (p == end || !saveitem_json_digit(*p)) {
        goto syntax;
    }

    digits = p;

    if (*p == '0') {
        p++;

    } else {
        while (p < end && saveitem_json_digit(*p)) {
            p++;
        }
    }

    point = p;
    nf = 0;

    if (p < end && *p == '.') {
        p++;

        while (p < end && saveitem_json_digit(*p)) {
            p++;
        }

        nf = p - point - 1;

        if (nf == 0) {
            goto syntax;
        }
    }

    stop = p;

    if (p == end || (*p != 'e' && *p != 'E')) {
        if (stop - digits <= 16) {
            /*
             * the common case, far from every limit: the short header, and
             * at most (digits + 6) / 4 base 10000 digits
             */
            *bytes = 6 + 2 * ((stop - digits - (nf ? 1 : 0) + 6) / 4);
            *pp = p;
            return SAVEITEM_SCAN_OK;
        }
    }

    x = 0;

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        neg = 0;

        if (p < end && (*p == '+' || *p == '-')) {
            neg = (*p == '-');
            p++;
        }

        q = p;

        for ( /* void */ ; p < end && saveitem_json_digit(*p); p++) {
            if (x < SAVEITEM_NUMERIC_MAX_EXP) {
                x = x * 10 + (*p - '0');
            }
        }

        if (p == q) {
            goto syntax;
        }

        if (x >= SAVEITEM_NUMERIC_MAX_EXP) {
            return SAVEITEM_SCAN_NUM_EXP;
        }

        if (neg) {
            x = -x;
        }
    }

    scale = nf - x;

    if (scale > SAVEITEM_NUMERIC_MAX_SCALE) {
        return SAVEITEM_SCAN_NUM_SCALE;
    }

    if (scale < 0) {
        scale = 0;
    }

    *pp = p;

    /* the first and the last digit that are not zero, short walks */

    for (q = digits; q < stop && (*q == '0' || *q == '.'); q++) {
        /* void */
    }

    if (q == stop) {
        /* zero: no digits, weight 0 */
        *bytes = (scale <= 63) ? 6 : 8;
        return SAVEITEM_SCAN_OK;
    }

    ni = point - digits;
    first = (q < point) ? q - digits : q - digits - 1;

    for (q = stop - 1; *q == '0' || *q == '.'; q--) {
        /* void */
    }

    last = (q < point) ? q - digits : q - digits - 1;

    e = ni - 1 - first + x;

    if (e > SAVEITEM_NUMERIC_MAX_E) {
        *pp = digits;
        return SAVEITEM_SCAN_NUM_BIG;
    }

    /* the short header: scale up to 63, weight from -64 to 63 */

    w = saveitem_numeric_weight(e);

    *bytes = ((scale <= 63 && w >= -64 && w <= 63) ? 6 : 8)
             + 2 * (w - saveitem_numeric_weight(ni - 1 - last + x) + 1);

    return SAVEITEM_SCAN_OK;

syntax:

    *pp = p;

    return SAVEITEM_SCAN_SYNTAX;
}


/*
 * The length of the valid UTF-8 sequence at p, never reading past end; 0
 * when it is not one (shared with src/ngx_http_saveitem_field.c)
 */

size_t
saveitem_utf8_len_in(const unsigned char *p, const unsigned char *end)
{
    size_t  i, n;

    if (*p < 0x80) {
        return 1;
    }

    n = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3
        : (*p & 0xf8) == 0xf0 ? 4 : 0;

    if (n == 0 || (size_t) (end - p) < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    return saveitem_utf8_len(p);
}
