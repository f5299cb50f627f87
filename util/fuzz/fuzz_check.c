
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * util/fuzz/fuzz_check.c - a libFuzzer harness for the pure checks on
 * bytes (src/ngx_http_saveitem_check.c and _json.c), linked without
 * nginx; built and run by util/fuzz/run.  Every input goes through every
 * function, each with an oracle:
 *
 *   saveitem_json_check      OK exactly when the document is valid and
 *                            jsonb stores it: no NUL byte, jansson takes it
 *                            once every number in it is replaced by 0, and
 *                            every number is within numeric's range as
 *                            PostgreSQL 15's set_var_from_str() and
 *                            make_result() compute it (ported below; sizes
 *                            and counts cannot reach jsonb's limits in
 *                            8 KB); INVALID: a sane position, a message
 *                            that is valid UTF-8 and never names jansson's
 *                            flags
 *   saveitem_content_type_is_json
 *                            agrees with a plain restatement of its rule
 *   saveitem_quote_ident     writes within 2 * len + 4 bytes (an exact
 *                            allocation: ASan tells), output is quoted
 *                            parts joined by dots, at most max_parts, each
 *                            part's quotes doubled; quoting its own output
 *                            gives it back unchanged
 *   saveitem_json_escape     the counted length is the written length;
 *                            in quotes, jansson parses it back to the input
 *                            (or, for input that is not UTF-8, fails only
 *                            because of that)
 *   saveitem_pk_is_number    what it calls a number is a JSON number
 *   saveitem_sqlstate_*      a known status and a code for any string
 *   saveitem_json_find, _unknown_key, _text, saveitem_type_check*
 *                            see fuzz_field.c
 *
 * A failed oracle aborts: libFuzzer saves the input as a crash.
 */


#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>

#include "ngx_http_saveitem_check.h"


#define CHECK(cond, what)                                                    \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "oracle failed: %s: %s (line %d)\n", what, #cond,\
                    __LINE__);                                               \
            abort();                                                         \
        }                                                                    \
    } while (0)


static int
utf8_valid(const unsigned char *p, size_t len)
{
    size_t    i, n, k;
    uint32_t  cp;

    for (i = 0; i < len; i += n) {
        if (p[i] < 0x80) {
            n = 1;
            continue;
        }

        if (p[i] >= 0xc2 && p[i] <= 0xdf) {
            n = 2;
            cp = p[i] & 0x1f;

        } else if (p[i] >= 0xe0 && p[i] <= 0xef) {
            n = 3;
            cp = p[i] & 0x0f;

        } else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
            n = 4;
            cp = p[i] & 0x07;

        } else {
            return 0;
        }

        if (i + n > len) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (p[i + k] & 0x3f);
        }

        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)
            || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * numeric_in() of PostgreSQL 15 on a JSON number, as it decides range:
 * set_var_from_str() (decimal digits, weight and scale, the exponent's own
 * limit), the conversion to base 10000 digits, strip_var(), then
 * make_result()'s check that weight fits int16 and scale 14 bits
 */

static int
ref_numeric_ok(const unsigned char *s, size_t len)
{
    int             ok;
    long            dweight, dscale, weight, offset, ndigits, ddigits, i, k;
    long            exponent, first, last;
    int             have_dp;
    char            exp[32];
    size_t          j, n;
    unsigned char  *dec;

    dec = calloc(len + 16, 1);
    CHECK(dec != NULL, "calloc");

    have_dp = 0;
    dweight = -1;
    dscale = 0;
    i = 4;
    j = (s[0] == '-');

    for ( /* void */ ; j < len; j++) {
        if (s[j] >= '0' && s[j] <= '9') {
            dec[i++] = s[j] - '0';

            if (!have_dp) {
                dweight++;

            } else {
                dscale++;
            }

        } else if (s[j] == '.') {
            have_dp = 1;

        } else {
            break;
        }
    }

    ddigits = i - 4;

    if (j < len) {
        /* "e": strtol() of the rest; past 18 digits it saturates */
        n = 0;
        j++;

        if (s[j] == '+' || s[j] == '-') {
            exp[n++] = s[j++];
        }

        while (j < len - 1 && s[j] == '0') {
            j++;
        }

        if (len - j > 18) {
            free(dec);
            return 0;
        }

        memcpy(exp + n, s + j, len - j);
        exp[n + len - j] = '\0';

        exponent = strtol(exp, NULL, 10);

        if (exponent >= INT_MAX / 2 || exponent <= -(INT_MAX / 2)) {
            free(dec);
            return 0;
        }

        dweight += exponent;
        dscale -= exponent;

        if (dscale < 0) {
            dscale = 0;
        }
    }

    if (dweight >= 0) {
        weight = (dweight + 1 + 4 - 1) / 4 - 1;

    } else {
        weight = -((-dweight - 1) / 4 + 1);
    }

    offset = (weight + 1) * 4 - (dweight + 1);
    ndigits = (ddigits + offset + 4 - 1) / 4;

    /* base 10000 digits, then strip_var(): only which are zero matters */

    first = -1;
    last = -1;

    for (k = 0; k < ndigits; k++) {
        i = 4 - offset + 4 * k;

        if (dec[i] | dec[i + 1] | dec[i + 2] | dec[i + 3]) {
            if (first < 0) {
                first = k;
            }

            last = k;
        }
    }

    free(dec);

    if (first < 0) {
        weight = 0;

    } else {
        weight -= first;
    }

    (void) last;

    ok = weight >= -32768 && weight <= 32767 && dscale <= 0x3fff;

    return ok;
}


/* the grammar of a JSON number, restated as a regular expression would */

static int
ref_is_number(const unsigned char *s, size_t len)
{
    size_t  i, k;

    i = (len > 0 && s[0] == '-');

    if (i < len && s[i] == '0') {
        i++;

    } else {
        for (k = i; i < len && s[i] >= '0' && s[i] <= '9'; i++) { }

        if (i == k) {
            return 0;
        }
    }

    if (i < len && s[i] == '.') {
        for (k = ++i; i < len && s[i] >= '0' && s[i] <= '9'; i++) { }

        if (i == k) {
            return 0;
        }
    }

    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        i += (i < len && (s[i] == '+' || s[i] == '-'));

        for (k = i; i < len && s[i] >= '0' && s[i] <= '9'; i++) { }

        if (i == k) {
            return 0;
        }
    }

    return i == len;
}


/*
 * The document with each number (outside strings) replaced by "0", for
 * jansson's verdict on everything else; 0 in *bad when every number is in
 * numeric's range.  A run of number characters that is no JSON number is
 * left as it is: the document is invalid either way.
 */

static unsigned char *
ref_neutral(const unsigned char *p, size_t len, size_t *out, int *bad)
{
    size_t          i, j, k, n;
    unsigned char  *d;

    d = malloc(len + 1);
    CHECK(d != NULL, "malloc");

    n = 0;
    *bad = 0;

    for (i = 0; i < len; /* void */ ) {

        if (p[i] == '"') {
            d[n++] = p[i++];

            while (i < len && p[i] != '"') {
                if (p[i] == '\\' && i + 1 < len) {
                    d[n++] = p[i++];
                }

                d[n++] = p[i++];
            }

            if (i < len) {
                d[n++] = p[i++];
            }

            continue;
        }

        if (p[i] != '-' && (p[i] < '0' || p[i] > '9')) {
            d[n++] = p[i++];
            continue;
        }

        for (j = i; j < len && (strchr("0123456789+-.eE", p[j]) != NULL)
                    && p[j] != '\0'; j++)
        {
            /* void */
        }

        k = ref_is_number(p + i, j - i);

        if (k) {
            if (!ref_numeric_ok(p + i, j - i)) {
                *bad = 1;
            }

            d[n++] = '0';

        } else {
            memcpy(d + n, p + i, j - i);
            n += j - i;
        }

        i = j;
    }

    *out = n;

    return d;
}


static void
fuzz_json_check(const unsigned char *data, size_t size)
{
    int                     rc, bad, valid;
    size_t                  n;
    json_t                 *j;
    json_error_t            e;
    unsigned char          *d;
    saveitem_json_error_t   err;

    memset(&err, 0x5a, sizeof(err));

    rc = saveitem_json_check(data, size, &err);

    CHECK(rc == SAVEITEM_JSON_OK || rc == SAVEITEM_JSON_INVALID,
          "json_check: unknown return");

    if (memchr(data, '\0', size) != NULL) {
        CHECK(rc == SAVEITEM_JSON_INVALID, "json_check: OK with a NUL");
        CHECK(strcmp(err.message, "NUL byte in the body") == 0,
              "json_check: a NUL byte, another message");
        return;
    }

    d = ref_neutral(data, size, &n, &bad);
    j = json_loadb((const char *) d, n, JSON_DECODE_ANY, &e);
    valid = (j != NULL);
    free(d);

    if (j) {
        json_decref(j);
    }

    if (rc == SAVEITEM_JSON_OK) {
        CHECK(valid, "json_check: OK but jansson rejects it (numbers as 0)");
        CHECK(!bad, "json_check: OK with a number out of numeric's range");
        CHECK(utf8_valid(data, size), "json_check: OK but not UTF-8");
        return;
    }

    /* INVALID */

    CHECK(!valid || bad, "json_check: INVALID but valid, numbers in range");

    CHECK(memchr(err.message, '\0', SAVEITEM_JSON_MESSAGE_LEN) != NULL,
          "json_check: message not terminated");
    CHECK(err.message[0] != '\0', "json_check: empty message");
    CHECK(strstr(err.message, "JSON_") == NULL,
          "json_check: message names a jansson flag");
    CHECK(utf8_valid((unsigned char *) err.message, strlen(err.message)),
          "json_check: message is not UTF-8");
    CHECK(err.line >= 1 && err.column >= 1,
          "json_check: line or column below 1");
    CHECK(err.position <= size, "json_check: position past the end");
    CHECK(err.line <= size + 1, "json_check: line past the end");
}


/* the rule, restated: see saveitem_content_type_is_json() */

static int
ref_content_type_is_json(const unsigned char *p, size_t len)
{
    size_t  b, e, i, slash, nslash;

    b = 0;
    while (b < len && (p[b] == ' ' || p[b] == '\t')) {
        b++;
    }

    e = b;
    while (e < len && p[e] != ';') {
        e++;
    }

    while (e > b && (p[e - 1] == ' ' || p[e - 1] == '\t')) {
        e--;
    }

    /* now the media type is p[b, e) */

    if (e - b == 16 && strncasecmp((char *) p + b, "application/json", 16)
                       == 0)
    {
        return 1;
    }

    nslash = 0;
    slash = 0;

    for (i = b; i < e; i++) {
        if (p[i] == '/') {
            nslash++;
            slash = i;
        }
    }

    /* type "/" subtype, the type not empty, the subtype "x+json" */

    return nslash == 1 && slash > b && e - slash - 1 >= 6
           && strncasecmp((char *) p + e - 5, "+json", 5) == 0;
}


static void
fuzz_content_type(const unsigned char *data, size_t size)
{
    int  got, want;

    got = saveitem_content_type_is_json(data, size);
    want = ref_content_type_is_json(data, size);

    CHECK((got != 0) == (want != 0), "content_type_is_json: rule differs");
}


/* checks a quoted name; returns the number of parts, 0 when malformed */

static size_t
quoted_parts(const unsigned char *q, size_t n)
{
    size_t  i, parts, start;

    parts = 0;
    i = 0;

    for ( ;; ) {
        if (i >= n || q[i] != '"') {
            return 0;
        }

        start = ++i;

        for ( ;; ) {
            if (i >= n) {
                return 0;
            }

            if (q[i] == '\0') {
                return 0;
            }

            if (q[i] == '"') {
                if (i + 1 < n && q[i + 1] == '"') {
                    i += 2;
                    continue;
                }

                break;
            }

            i++;
        }

        if (i == start) {
            return 0;                   /* "" is no name */
        }

        i++;                            /* the closing quote */
        parts++;

        if (i == n) {
            return parts;
        }

        if (q[i] != '.') {
            return 0;
        }

        i++;
    }
}


static void
fuzz_quote_ident(const unsigned char *data, size_t size)
{
    size_t          max_parts, len, n, n2, errpos, parts;
    unsigned char  *dst, *dst2;
    const unsigned char  *src;

    if (size == 0) {
        return;
    }

    max_parts = 1 + (data[0] & 1);
    src = data + 1;
    len = size - 1;

    /* an exact allocation: a byte written past it is an ASan report */
    dst = malloc(2 * len + 4);
    CHECK(dst != NULL, "malloc");

    errpos = (size_t) -1;
    n = saveitem_quote_ident(dst, src, len, max_parts, &errpos);

    if (n == 0) {
        CHECK(errpos <= len, "quote_ident: error position past the end");
        free(dst);
        return;
    }

    CHECK(n <= 2 * len + 4, "quote_ident: longer than 2 * len + 4");
    CHECK(dst[0] == '"' && dst[n - 1] == '"',
          "quote_ident: not in quotes");

    parts = quoted_parts(dst, n);
    CHECK(parts >= 1, "quote_ident: malformed output");
    CHECK(parts <= max_parts, "quote_ident: too many parts");

    /* its own output is a valid name that quotes to itself */

    dst2 = malloc(2 * n + 4);
    CHECK(dst2 != NULL, "malloc");

    n2 = saveitem_quote_ident(dst2, dst, n, max_parts, &errpos);

    CHECK(n2 == n && memcmp(dst, dst2, n) == 0,
          "quote_ident: quoting the output changes it");

    free(dst2);
    free(dst);
}


static void
fuzz_json_escape(const unsigned char *data, size_t size)
{
    size_t          n, w;
    json_t         *j;
    json_error_t    e;
    unsigned char  *buf;

    n = saveitem_json_escape(NULL, data, size);

    CHECK(n >= size && n <= 6 * size, "json_escape: odd length");

    buf = malloc(n + 2);
    CHECK(buf != NULL, "malloc");

    buf[0] = '"';
    w = saveitem_json_escape(buf + 1, data, size);
    CHECK(w == n, "json_escape: wrote another length than it counted");
    buf[n + 1] = '"';

    j = json_loadb((char *) buf, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

    if (utf8_valid(data, size)) {
        CHECK(j != NULL, "json_escape: output is not a JSON string");
        CHECK(json_is_string(j), "json_escape: not a string");
        CHECK(json_string_length(j) == size
              && memcmp(json_string_value(j), data, size) == 0,
              "json_escape: does not decode to the input");

    } else {
        CHECK(j == NULL && json_error_code(&e) == json_error_invalid_utf8,
              "json_escape: fails for another reason than the input's "
              "UTF-8");
    }

    if (j) {
        json_decref(j);
    }

    free(buf);
}


static void
fuzz_pk_is_number(const unsigned char *data, size_t size)
{
    json_t        *j;
    json_error_t   e;

    if (!saveitem_pk_is_number(data, size)) {
        return;
    }

    j = json_loadb((const char *) data, size, JSON_DECODE_ANY, &e);

    if (j == NULL) {
        CHECK(json_error_code(&e) == json_error_numeric_overflow,
              "pk_is_number: not a JSON number");
        return;
    }

    CHECK(json_is_number(j), "pk_is_number: JSON, but not a number");
    json_decref(j);
}


static void
fuzz_sqlstate(const unsigned char *data, size_t size)
{
    char         s[8];
    unsigned     status;
    const char  *error;

    memset(s, 0, sizeof(s));
    memcpy(s, data, size < 7 ? size : 7);

    status = saveitem_sqlstate_status(s);
    error = saveitem_sqlstate_error(s);

    CHECK(status == 400 || status == 409 || status == 422 || status == 500
          || status == 503 || status == 504, "sqlstate_status: unknown");
    CHECK(error != NULL && error[0] != '\0', "sqlstate_error: none");

    CHECK(saveitem_sqlstate_status(NULL) == 500, "sqlstate_status(NULL)");
}


/*
 * saveitem_key_unquote: a value that is not quoted is the key as it is;
 * a quoted one gives at most its length, and quoted again (a "\\"
 * before each DQUOTE and "\\") it is the value again
 */

static void
fuzz_key_unquote(const unsigned char *data, size_t size)
{
    size_t          n, i, k;
    unsigned char  *key, *again;

    key = malloc(size + 1);
    again = malloc(2 * size + 3);

    if (key == NULL || again == NULL) {
        free(key);
        free(again);
        return;
    }

    if (saveitem_key_unquote(data, size, key, &n)) {
        CHECK(n <= size, "key_unquote: longer than the value");

        if (size == 0 || data[0] != '"') {
            CHECK(n == size && memcmp(key, data, size) == 0,
                  "key_unquote: a bare value changed");

        } else {
            k = 0;
            again[k++] = '"';

            for (i = 0; i < n; i++) {
                if (key[i] == '"' || key[i] == '\\') {
                    again[k++] = '\\';
                }

                again[k++] = key[i];
            }

            again[k++] = '"';

            CHECK(k == size && memcmp(again, data, size) == 0,
                  "key_unquote: quoted again, not the value");
        }

    } else {
        CHECK(size > 0 && data[0] == '"', "key_unquote: a bare value refused");
    }

    free(key);
    free(again);
}


void fuzz_field(const unsigned char *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_json_check(data, size);
    fuzz_content_type(data, size);
    fuzz_quote_ident(data, size);
    fuzz_json_escape(data, size);
    fuzz_pk_is_number(data, size);
    fuzz_sqlstate(data, size);
    fuzz_key_unquote(data, size);
    fuzz_field(data, size);

    return 0;
}
