
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * util/fuzz/fuzz_field.c - the part of the libFuzzer harness (see
 * fuzz_check.c, which calls fuzz_field() with every input) for JSON keys
 * into typed columns (src/ngx_http_saveitem_field.c).  The input is a
 * document, searched along each of a few paths (keys the corpus and the
 * dictionary use).  Every input, valid or not, goes through every
 * function; the oracles:
 *
 *   saveitem_json_find       0 or -1, never -1 for a document that
 *                            saveitem_json_check() accepts; then what it
 *                            finds is what jansson finds along the path
 *                            (the last of duplicate keys), its span within
 *                            the document and equal to it once parsed
 *   saveitem_json_unknown_key
 *                            never -1 for an accepted document; a key it
 *                            names is one jansson has and none known; 0
 *                            for an object means jansson has no other key
 *   saveitem_json_text       within size (an exact allocation: ASan
 *                            tells); a string's text is jansson's
 *   saveitem_type_check      for every kind, array or not, NOT NULL or
 *                            not: NULL or a reason from the list; null is
 *                            "is null" exactly when NOT NULL; json, jsonb,
 *                            other and unlimited text take any value
 *   saveitem_type_check_text on the raw input: NUL and UTF-8 first, then
 *                            for int8 what strtoll() takes in PostgreSQL's
 *                            way (white space, sign, digits, white space)
 */


#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "ngx_http_saveitem_check.h"
#include "ngx_http_saveitem_field.h"


#define CHECK(cond, what)                                                    \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "oracle failed: %s: %s (line %d)\n", what, #cond,\
                    __LINE__);                                               \
            abort();                                                         \
        }                                                                    \
    } while (0)


void fuzz_field(const unsigned char *data, size_t size);


#define P(s)  { (const unsigned char *) s, sizeof(s) - 1 }

static const saveitem_part_t  parts[][3] = {
    { P("a") },
    { P("a"), P("b") },
    { P("b") },
    { P("\xc3\xa9") },
    { P("a"), P("b"), P("c") },
    { P("") },
    { P("id"), P("a") },
    { P("a") }
};

static const size_t  nparts[] = { 0, 2, 1, 1, 3, 1, 2, 1 };


static int
is_reason(const char *r)
{
    return strncmp(r, "is ", 3) == 0 || strncmp(r, "has an element ", 15) == 0
           || strcmp(r, "holds a nested array") == 0
           || strcmp(r, "holds a NUL byte") == 0;
}


static int
jv_type(json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return SAVEITEM_JV_OBJECT;
    case JSON_ARRAY:
        return SAVEITEM_JV_ARRAY;
    case JSON_STRING:
        return SAVEITEM_JV_STRING;
    case JSON_INTEGER:
    case JSON_REAL:
        return SAVEITEM_JV_NUMBER;
    case JSON_TRUE:
        return SAVEITEM_JV_TRUE;
    case JSON_FALSE:
        return SAVEITEM_JV_FALSE;
    default:
        return SAVEITEM_JV_NULL;
    }
}


static void
judge_all(const saveitem_jv_t *v)
{
    int              kind, array, not_null, big;
    const char      *r;
    saveitem_type_t  t;

    for (kind = SAVEITEM_TYPE_OTHER; kind <= SAVEITEM_TYPE_JSONB; kind++) {
        for (array = 0; array < 2; array++) {
            for (not_null = 0; not_null < 2; not_null++) {
                for (big = 0; big < 2; big++) {
                    t.kind = kind;
                    t.array = array;
                    t.not_null = not_null;
                    t.max_chars = big ? 3 : 0;

                    r = saveitem_type_check(&t, v);

                    if (v->type == SAVEITEM_JV_NULL) {
                        CHECK((r != NULL) == not_null,
                              "type_check: null, NOT NULL");
                        continue;
                    }

                    if (r == NULL) {
                        continue;
                    }

                    CHECK(is_reason(r), "type_check: not a reason");
                    CHECK(kind != SAVEITEM_TYPE_OTHER,
                          "type_check: other refused");
                    CHECK(array || (kind != SAVEITEM_TYPE_JSON
                                    && kind != SAVEITEM_TYPE_JSONB
                                    && (kind != SAVEITEM_TYPE_TEXT || big)),
                          "type_check: json or text refused");
                }
            }
        }
    }
}


static void
text_of(const saveitem_jv_t *v, size_t size, json_t *j)
{
    size_t          n, m;
    unsigned char  *buf;

    buf = malloc(size ? size : 1);
    CHECK(buf != NULL, "malloc");

    n = saveitem_json_text(v, buf, size);
    m = saveitem_json_text(v, NULL, 0);

    if (v->type == SAVEITEM_JV_NULL || v->type == SAVEITEM_JV_OBJECT
        || v->type == SAVEITEM_JV_ARRAY)
    {
        CHECK(n == (size_t) -1 && m == (size_t) -1,
              "json_text: text of a non-scalar");
    }

    if (n != (size_t) -1) {
        CHECK(n <= size && n == m, "json_text: length");
    }

    if (j != NULL && json_is_string(j)) {
        CHECK(m == json_string_length(j), "json_text: not jansson's length");

        if (n != (size_t) -1) {
            CHECK(memcmp(buf, json_string_value(j), n) == 0,
                  "json_text: not jansson's text");

        } else {
            CHECK(m > size, "json_text: fits but refused");
        }
    }

    free(buf);
}


static void
fuzz_find(const unsigned char *data, size_t size, int valid, json_t *root,
    size_t sel)
{
    int              rc;
    size_t           k, n;
    json_t          *j, *span;
    json_error_t     e;
    saveitem_jv_t    v;

    n = nparts[sel];

    memset(&v, 0x5a, sizeof(v));
    rc = saveitem_json_find(data, size, parts[sel], n, &v);

    CHECK(rc == 0 || rc == -1, "json_find: unknown return");
    CHECK(!valid || rc == 0, "json_find: -1 for an accepted document");

    if (rc != 0) {
        return;
    }

    if (v.type != SAVEITEM_JV_ABSENT) {
        CHECK(v.start >= data && v.len > 0 && v.len <= size
              && (size_t) (v.start - data) <= size - v.len,
              "json_find: span outside the document");
    }

    /* the same as jansson's walk */

    j = root;

    for (k = 0; j != NULL && k < n; k++) {
        j = json_is_object(j) ? json_object_getn(j,
                                    (const char *) parts[sel][k].data,
                                    parts[sel][k].len)
                              : NULL;
    }

    if (root != NULL) {
        CHECK((j == NULL) == (v.type == SAVEITEM_JV_ABSENT),
              "json_find: found where jansson does not, or not found");
    }

    if (v.type == SAVEITEM_JV_ABSENT) {
        return;
    }

    if (j != NULL) {
        CHECK(jv_type(j) == v.type, "json_find: not jansson's type");

        span = json_loadb((const char *) v.start, v.len, JSON_DECODE_ANY, &e);
        CHECK(span != NULL, "json_find: the span is not JSON");
        CHECK(json_equal(span, j), "json_find: the span is not the value");
        json_decref(span);
    }

    if (sel == 0 || sel == 1 || sel == 3 || sel == 4) {
        judge_all(&v);
    }

    text_of(&v, v.len, j);
    text_of(&v, (size + sel) % 5, j);
}


static void
fuzz_unknown(const unsigned char *data, size_t size, int valid,
    json_t *root, size_t sel)
{
    int             rc;
    size_t          k, n, len, klen;
    const char     *key;
    json_t         *value;
    saveitem_jv_t   name;
    unsigned char   buf[8192];

    n = nparts[sel];

    rc = saveitem_json_unknown_key(data, size, parts[sel], n, &name);

    CHECK(rc >= -1 && rc <= 1, "unknown_key: unknown return");
    CHECK(!valid || rc >= 0, "unknown_key: -1 for an accepted document");

    if (rc == 1) {
        CHECK(name.type == SAVEITEM_JV_STRING && name.start >= data
              && name.len >= 2 && name.len <= size
              && (size_t) (name.start - data) <= size - name.len,
              "unknown_key: span outside the document");

        len = saveitem_json_text(&name, buf, sizeof(buf));
        CHECK(len != (size_t) -1, "unknown_key: the key has no text");

        for (k = 0; k < n; k++) {
            CHECK(len != parts[sel][k].len
                  || memcmp(buf, parts[sel][k].data, len) != 0,
                  "unknown_key: a known key");
        }

        if (root != NULL) {
            CHECK(json_object_getn(root, (const char *) buf, len) != NULL,
                  "unknown_key: a key jansson does not have");
        }
    }

    if (rc == 0 && root != NULL && json_is_object(root)) {
        json_object_keylen_foreach(root, key, klen, value) {
            for (k = 0; k < n; k++) {
                if (klen == parts[sel][k].len
                    && memcmp(key, parts[sel][k].data, klen) == 0)
                {
                    break;
                }
            }

            CHECK(k < n, "unknown_key: none, but jansson has one");
            (void) value;
        }
    }
}


static int
ref_int8(const unsigned char *data, size_t size)
{
    int    ok;
    char  *buf, *end, *p;

    buf = malloc(size + 1);
    CHECK(buf != NULL, "malloc");

    memcpy(buf, data, size);
    buf[size] = '\0';

    errno = 0;
    (void) strtoll(buf, &end, 10);

    ok = (end != buf && errno == 0);

    for (p = end; ok && *p != '\0'; p++) {
        ok = (*p == ' ' || (*p >= '\t' && *p <= '\r'));
    }

    free(buf);

    return ok;
}


static void
fuzz_text(const unsigned char *data, size_t size)
{
    int              kind;
    const char      *r;
    saveitem_type_t  t;

    t.array = 0;
    t.not_null = 1;
    t.max_chars = size % 4;

    for (kind = SAVEITEM_TYPE_OTHER; kind <= SAVEITEM_TYPE_JSONB; kind++) {
        t.kind = kind;
        r = saveitem_type_check_text(&t, data, size);

        if (size == 0) {
            CHECK(r != NULL && strcmp(r, "is null") == 0,
                  "type_check_text: empty is null");
            continue;
        }

        if (memchr(data, '\0', size) != NULL) {
            CHECK(r != NULL && strcmp(r, "holds a NUL byte") == 0,
                  "type_check_text: a NUL byte");
            continue;
        }

        CHECK(r == NULL || is_reason(r), "type_check_text: not a reason");

        if (r != NULL && strcmp(r, "is not valid UTF-8") == 0) {
            continue;
        }

        if (kind == SAVEITEM_TYPE_OTHER || kind == SAVEITEM_TYPE_JSON
            || kind == SAVEITEM_TYPE_JSONB)
        {
            CHECK(r == NULL, "type_check_text: other, json refused");
        }

        if (kind == SAVEITEM_TYPE_INT8) {
            CHECK((r == NULL) == ref_int8(data, size),
                  "type_check_text: int8, not as strtoll()");
        }
    }
}


void
fuzz_field(const unsigned char *data, size_t size)
{
    int                     valid;
    size_t                  sel;
    json_t                 *root;
    json_error_t            e;
    saveitem_json_error_t   err;

    valid = (saveitem_json_check(data, size, &err) == SAVEITEM_JSON_OK);

    /* jansson's reading, where it has one (not for 1e400) */

    root = valid ? json_loadb((const char *) data, size, JSON_DECODE_ANY, &e)
                 : NULL;

    for (sel = 0; sel < sizeof(nparts) / sizeof(nparts[0]); sel++) {
        fuzz_find(data, size, valid, root, sel);
        fuzz_unknown(data, size, valid, root, sel);
    }

    fuzz_text(data, size);

    if (root != NULL) {
        json_decref(root);
    }
}
