
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * Unit tests of JSON keys into typed columns
 * (src/ngx_http_saveitem_field.c): finding a key, unknown keys, a
 * scalar's text, and judging values for each column type, with their
 * boundaries.  TAP output; util/unit/run builds and runs it.
 *
 *   field_test              the tests
 *   field_test --vectors    the judging vectors, one a line, for
 *                           util/unit/field_vs_pg.sh to compare with a
 *                           server: where TAB type TAB verdict TAB hex
 */


#include <stdio.h>
#include <string.h>

#include "ngx_http_saveitem_field.h"


static int  tests, failures;


#define is(got, want, name)                                                  \
    do {                                                                     \
        unsigned long  g_ = (unsigned long) (got);                           \
        unsigned long  w_ = (unsigned long) (want);                          \
        tests++;                                                             \
        if (g_ == w_) {                                                      \
            printf("ok %d - %s\n", tests, name);                             \
        } else {                                                             \
            failures++;                                                      \
            printf("not ok %d - %s: got %lu, want %lu (line %d)\n",          \
                   tests, name, g_, w_, __LINE__);                           \
        }                                                                    \
    } while (0)


#define is_str(got, want, name)                                              \
    do {                                                                     \
        const char  *g_ = (got);                                             \
        const char  *w_ = (want);                                            \
        tests++;                                                             \
        if ((g_ == NULL && w_ == NULL)                                       \
            || (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0))            \
        {                                                                    \
            printf("ok %d - %s\n", tests, name);                             \
        } else {                                                             \
            failures++;                                                      \
            printf("not ok %d - %s: got \"%s\", want \"%s\" (line %d)\n",    \
                   tests, name, g_ ? g_ : "(null)", w_ ? w_ : "(null)",      \
                   __LINE__);                                                \
        }                                                                    \
    } while (0)


/* a dotted path, split; a '.' cannot be in a key here */

static size_t
split(const char *path, saveitem_part_t *parts)
{
    size_t       n;
    const char  *p, *dot;

    n = 0;

    if (*path == '\0') {
        return 0;
    }

    for (p = path; ; p = dot + 1) {
        dot = strchr(p, '.');
        parts[n].data = (const unsigned char *) p;
        parts[n].len = dot ? (size_t) (dot - p) : strlen(p);
        n++;

        if (dot == NULL) {
            return n;
        }
    }
}


static int
find(const char *doc, const char *path, saveitem_jv_t *v)
{
    size_t           n;
    saveitem_part_t  parts[16];

    n = split(path, parts);

    return saveitem_json_find((const unsigned char *) doc, strlen(doc),
                              parts, n, v);
}


/* the text of what a path finds, "" when absent */

static const char *
found(const char *doc, const char *path)
{
    int                   rc;
    saveitem_jv_t         v;
    static char           buf[256];

    rc = find(doc, path, &v);

    if (rc != 0) {
        return "(error)";
    }

    if (v.type == SAVEITEM_JV_ABSENT) {
        return "";
    }

    snprintf(buf, sizeof(buf), "%d:%.*s", v.type, (int) v.len,
             (const char *) v.start);

    return buf;
}


static void
test_find(void)
{
    saveitem_jv_t  v;

    is_str(found("{\"a\": 1}", "a"), "4:1", "find: a number");
    is_str(found(" {\"a\" : \"x\\\"y\" } ", "a"), "5:\"x\\\"y\"",
           "find: a string, quotes included");
    is_str(found("{\"a\": {\"b\": {\"c\": [1, 2]}}}", "a.b.c"), "6:[1, 2]",
           "find: nested objects");
    is_str(found("{\"a\": {\"b\": {\"c\": [1, 2]}}}", "a.b"),
           "7:{\"c\": [1, 2]}", "find: an object");
    is_str(found("{\"a\": true, \"b\": false, \"c\": null}", "a"), "3:true",
           "find: true");
    is_str(found("{\"a\": true, \"b\": false, \"c\": null}", "b"), "2:false",
           "find: false");
    is_str(found("{\"a\": true, \"b\": false, \"c\": null}", "c"), "1:null",
           "find: null");
    is_str(found("{\"a\": 1}", "b"), "", "find: a missing key is absent");
    is_str(found("{\"a\": 1}", "a.b"), "",
           "find: through a number, absent");
    is_str(found("{\"a\": \"s\"}", "a.b"), "",
           "find: through a string, absent");
    is_str(found("{\"a\": [{\"b\": 1}]}", "a.b"), "",
           "find: through an array, absent");
    is_str(found("[{\"a\": 1}]", "a"), "", "find: an array document");
    is_str(found("{\"a\": 1, \"a\": 2}", "a"), "4:2",
           "find: of duplicate keys the last wins");
    is_str(found("{\"a\": {\"b\": 1}, \"a\": {\"c\": 2}}", "a.b"), "",
           "find: the last duplicate, even for a path through it");
    is_str(found("{\"\\u0061\": 1}", "a"), "4:1",
           "find: an escaped key");
    is_str(found("{\"a\\\"b\": 1}", "a\"b"), "4:1",
           "find: an escaped quote in a key");
    is_str(found("{\"\\ud83d\\ude00\": 7}", "\xf0\x9f\x98\x80"), "4:7",
           "find: a surrogate pair in a key");
    is_str(found("{\"\xc3\xa9\": 7}", "\\u00e9"), "",
           "find: the path is not unescaped");
    is_str(found("{\"\\u00e9\": 7}", "\xc3\xa9"), "4:7",
           "find: \\u00e9 is UTF-8 c3 a9");
    is_str(found("{\"ab\": 1, \"a\": 2}", "a"), "4:2",
           "find: a key that only begins with the part");
    is_str(found("{\"a\": 1}", "ab"), "", "find: a key shorter than the part");
    is_str(found("{\"x\": {\"a\": 1}, \"a\": 2}", "a"), "4:2",
           "find: a nested key is not a top-level one");
    is_str(found("{\"x\": \"}\", \"a\": 3}", "a"), "4:3",
           "find: brackets in strings are skipped");
    is_str(found("{\"a\": -1.5e3}", "a"), "4:-1.5e3", "find: a number");
    is_str(found("{}", "a"), "", "find: an empty object");
    is_str(found("5", ""), "4:5", "find: no path, the document");

    is(find("{\"a\": 1", "a", &v), (unsigned long) -1,
       "find: unterminated, -1");
    is(find("{\"a\" 1}", "a", &v), (unsigned long) -1, "find: no colon, -1");
    is(find("{\"a\": 1,}", "a", &v), (unsigned long) -1,
       "find: trailing comma, -1");
    is(find("{\"\\x\": 1}", "a", &v), (unsigned long) -1,
       "find: bad escape in a key, -1");
    is(find("{\"\\ud83d\": 1}", "a", &v), (unsigned long) -1,
       "find: lone surrogate in a key, -1");
    is(find("{\"a\": tru}", "a", &v), (unsigned long) -1,
       "find: bad literal, -1");
    is(find("{\"a\": 1} x", "a", &v), (unsigned long) -1,
       "find: trailing data, -1");
    is(find("", "a", &v), (unsigned long) -1, "find: empty, -1");
    is(saveitem_json_find((const unsigned char *) "{\"a\": 12}", 8, NULL, 0,
                          &v), (unsigned long) -1,
       "find: never reads past len");
}


static const char *
unknown(const char *doc, const char *known)
{
    int                   rc;
    size_t                n;
    saveitem_jv_t         key;
    saveitem_part_t       parts[16];
    static char           buf[256];

    n = split(known, parts);
    rc = saveitem_json_unknown_key((const unsigned char *) doc, strlen(doc),
                                   parts, n, &key);

    if (rc == 0) {
        return "";
    }

    if (rc < 0) {
        return "(error)";
    }

    snprintf(buf, sizeof(buf), "%.*s", (int) key.len,
             (const char *) key.start);

    return buf;
}


static void
test_unknown_key(void)
{
    is_str(unknown("{\"a\": 1, \"b\": 2}", "a.b"), "",
           "unknown_key: all known");
    is_str(unknown("{\"a\": 1, \"c\": 2, \"d\": 3}", "a.b"), "\"c\"",
           "unknown_key: the first unknown");
    is_str(unknown("{\"\\u0061\": 1, \"b\\n\": 2}", "a.b"), "\"b\\n\"",
           "unknown_key: compared unescaped, span as written");
    is_str(unknown("{\"a\": {\"x\": 1}}", "a"), "",
           "unknown_key: nested keys are not top-level");
    is_str(unknown("[1]", "a"), "", "unknown_key: not an object");
    is_str(unknown("{}", ""), "", "unknown_key: empty object");
    is_str(unknown("{\"a\": 1}", ""), "\"a\"", "unknown_key: none known");
    is_str(unknown("{\"a\": 1", "a"), "(error)", "unknown_key: malformed");
    is_str(unknown("{\"\\x\": 1}", ""), "(error)",
           "unknown_key: a malformed key is never named");
}


static const char *
text(const char *json, size_t size)
{
    size_t           n;
    saveitem_jv_t    v;
    static char      buf[256];
    unsigned char    dst[64];

    if (find(json, "", &v) != 0) {
        return "(error)";
    }

    n = saveitem_json_text(&v, dst, size);

    if (n == (size_t) -1) {
        return "(none)";
    }

    is(saveitem_json_text(&v, NULL, 0), n, "json_text: NULL dst counts");

    snprintf(buf, sizeof(buf), "%.*s", (int) n, (const char *) dst);

    return buf;
}


static void
test_json_text(void)
{
    is_str(text("\"abc\"", 64), "abc", "json_text: a string");
    is_str(text("\"a\\\"b\\\\c\\/d\\n\\t\\b\\f\\r\"", 64),
           "a\"b\\c/d\n\t\b\f\r", "json_text: escapes");
    is_str(text("\"\\u00e9\\u20ac\\ud83d\\ude00\"", 64),
           "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
           "json_text: \\u escapes to UTF-8, a surrogate pair");
    is_str(text("\"\xc3\xa9\"", 64), "\xc3\xa9", "json_text: raw UTF-8");
    is_str(text("\"\"", 64), "", "json_text: empty string");
    is_str(text("-1.5E+3", 64), "-1.5E+3", "json_text: a number as written");
    is_str(text("true", 64), "true", "json_text: true");
    is_str(text("false", 64), "false", "json_text: false");
    is_str(text("null", 64), "(none)", "json_text: null has none");
    is_str(text("[1]", 64), "(none)", "json_text: an array has none");
    is_str(text("{}", 64), "(none)", "json_text: an object has none");
    is_str(text("\"abcd\"", 4), "abcd", "json_text: fits exactly");
    is_str(text("\"abcde\"", 4), "(none)", "json_text: too small");
    is_str(text("\"\\u20ac\"", 2), "(none)",
           "json_text: too small for one character");
    is_str(text("12345", 4), "(none)", "json_text: a number too long");
}


/*
 * The judging vectors: each a column type, a JSON value (in {"v": ...})
 * or, for text vectors, a value from nginx, and the verdict.  pg says
 * where PostgreSQL 15 differs: STRICT, it takes what the module refuses
 * (a deliberate choice, listed in the header); LOOSE, the module lets
 * through what the server refuses (the server judges).
 */

#define SAME    0
#define STRICT  1
#define LOOSE   2

typedef struct {
    int          kind;
    int          array;
    size_t       max;
    int          text;          /* a value from nginx */
    const char  *value;
    const char  *reason;        /* NULL: taken */
    int          pg;
} vector_t;


#define OK(k, v)         { SAVEITEM_TYPE_##k, 0, 0, 0, v, NULL, SAME }
#define NO(k, v, r)      { SAVEITEM_TYPE_##k, 0, 0, 0, v, r, SAME }
#define NOS(k, v, r)     { SAVEITEM_TYPE_##k, 0, 0, 0, v, r, STRICT }
#define OKT(k, v)        { SAVEITEM_TYPE_##k, 0, 0, 1, v, NULL, SAME }
#define NOT(k, v, r)     { SAVEITEM_TYPE_##k, 0, 0, 1, v, r, SAME }
#define NOTS(k, v, r)    { SAVEITEM_TYPE_##k, 0, 0, 1, v, r, STRICT }
#define OKL(k, v)        { SAVEITEM_TYPE_##k, 0, 0, 1, v, NULL, LOOSE }
#define OKM(m, v)        { SAVEITEM_TYPE_TEXT, 0, m, 0, v, NULL, SAME }
#define NOM(m, v)                                                            \
    { SAVEITEM_TYPE_TEXT, 0, m, 0, v, "is too long", SAME }
#define OKA(k, v)        { SAVEITEM_TYPE_##k, 1, 0, 0, v, NULL, SAME }
#define NOA(k, v, r)     { SAVEITEM_TYPE_##k, 1, 0, 0, v, r, SAME }

#define R_INT   "is not an integer"
#define R_RANGE "is out of range"
#define R_NUM   "is not a number"
#define R_BOOL  "is not true or false"
#define R_TS    "is not an RFC 3339 timestamp"
#define R_DATE  "is not a date (YYYY-MM-DD)"
#define R_TIME  "is not a time (hh:mm:ss)"
#define R_UUID  "is not a UUID"
#define R_INET  "is not an IP address"
#define R_CIDR  "is not a network (address/bits)"
#define R_OBJ   "is an object"
#define R_ARR   "is an array"

#define U1 "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""


static const vector_t  vectors[] = {

    /* integers */

    OK(INT2, "0"), OK(INT2, "-0"), OK(INT2, "32767"), OK(INT2, "-32768"),
    NO(INT2, "32768", R_RANGE), NO(INT2, "-32769", R_RANGE),
    OK(INT4, "2147483647"), OK(INT4, "-2147483648"),
    NO(INT4, "2147483648", R_RANGE), NO(INT4, "-2147483649", R_RANGE),
    OK(INT8, "9223372036854775807"), OK(INT8, "-9223372036854775808"),
    NO(INT8, "9223372036854775808", R_RANGE),
    NO(INT8, "-9223372036854775809", R_RANGE),
    NO(INT8, "100000000000000000000000000000000000000000", R_RANGE),
    NO(INT8, "1.0", R_INT), NOS(INT8, "1e2", R_INT), NOS(INT4, "1E0", R_INT),
    NO(INT8, "1.5", R_INT), NO(INT8, "1e-1", R_INT),
    OK(INT4, "\"42\""), OK(INT4, "\" +42 \""), OK(INT4, "\"\\t-42\\n\""),
    OK(INT2, "\"0000032767\""), NO(INT2, "\"0032768\"", R_RANGE),
    OK(INT8, "\"-9223372036854775808\""),
    NO(INT8, "\"9223372036854775808\"", R_RANGE),
    NO(INT4, "\"\"", R_INT), NO(INT4, "\" \"", R_INT),
    NO(INT4, "\"-\"", R_INT), NO(INT4, "\"1.0\"", R_INT),
    NO(INT4, "\"1e2\"", R_INT), NO(INT4, "\"0x1F\"", R_INT),
    NO(INT4, "\"1_000\"", R_INT), NO(INT4, "\"abc\"", R_INT),
    NO(INT4, "\"4 2\"", R_INT), NO(INT4, "\"--1\"", R_INT),
    OK(INT4, "\"\\u0034\\u0032\""),
    NO(INT4, "true", R_INT), NO(INT4, "false", R_INT),
    NO(INT4, "{\"a\": 1}", R_OBJ), NO(INT4, "[1]", R_ARR),

    /* numeric */

    OK(NUMERIC, "0"), OK(NUMERIC, "-1.5e-3"), OK(NUMERIC, "1e300"),
    OK(NUMERIC, "\"1.5\""), OK(NUMERIC, "\" -1.5E+3 \""),
    OK(NUMERIC, "\".5\""), OK(NUMERIC, "\"5.\""), OK(NUMERIC, "\"+1\""),
    OK(NUMERIC, "\"NaN\""), OK(NUMERIC, "\"nan\""),
    OK(NUMERIC, "\"Infinity\""), OK(NUMERIC, "\"-infinity\""),
    OK(NUMERIC, "\"+Infinity\""), OK(NUMERIC, "\"inf\""),
    OK(NUMERIC, "\"-INF\""), OK(NUMERIC, "\" NaN \""),
    OK(NUMERIC, "\"1e131071\""), NO(NUMERIC, "\"1e131072\"", R_RANGE),
    OK(NUMERIC, "\"0.1e-16382\""), NO(NUMERIC, "\"0.1e-16383\"", R_RANGE),
    NO(NUMERIC, "\"1e1073741823\"", R_RANGE),
    NO(NUMERIC, "\"1e\"", R_NUM), NO(NUMERIC, "\".\"", R_NUM),
    NO(NUMERIC, "\"0x10\"", R_NUM), NO(NUMERIC, "\"1_000\"", R_NUM),
    NO(NUMERIC, "\"\"", R_NUM), NO(NUMERIC, "\"nanx\"", R_NUM),
    NO(NUMERIC, "\"1 2\"", R_NUM),
    NO(NUMERIC, "true", R_NUM), NO(NUMERIC, "[1]", R_ARR),

    /* float */

    OK(FLOAT8, "1.5"), OK(FLOAT8, "-0"), OK(FLOAT8, "1e308"),
    NO(FLOAT8, "1e309", R_RANGE), NO(FLOAT8, "1e-400", R_RANGE),
    OK(FLOAT8, "4.9e-324"), OK(FLOAT4, "3.4028235e38"),
    NO(FLOAT4, "3.4028236e38", R_RANGE), NO(FLOAT4, "1e-46", R_RANGE),
    OK(FLOAT4, "1e-45"),
    OK(FLOAT8, "\" 1.5 \""), OK(FLOAT8, "\".5\""), OK(FLOAT8, "\"5.\""),
    OK(FLOAT8, "\"NaN\""), OK(FLOAT8, "\"-Infinity\""),
    OK(FLOAT8, "\"inf\""), OK(FLOAT8, "\"+inf\""), OK(FLOAT4, "\"nan\""),
    OK(FLOAT8, "\"0x10\""), OK(FLOAT8, "\"1e-310\""),
    NO(FLOAT8, "\"1e\"", R_NUM), NO(FLOAT8, "\"\"", R_NUM),
    NO(FLOAT8, "\"-\"", R_NUM), NO(FLOAT8, "\"abc\"", R_NUM),
    NO(FLOAT8, "\"1.5x\"", R_NUM), NO(FLOAT8, "\"1e400\"", R_RANGE),
    NO(FLOAT4, "\"1e39\"", R_RANGE),
    NO(FLOAT8, "false", R_NUM), NO(FLOAT8, "{}", R_OBJ),

    /* bool */

    OK(BOOL, "true"), OK(BOOL, "false"), OK(BOOL, "0"), OK(BOOL, "1"),
    NO(BOOL, "2", R_BOOL), NO(BOOL, "0.0", R_BOOL), NOS(BOOL, "1e0", R_BOOL),
    OK(BOOL, "\"t\""), OK(BOOL, "\"tr\""), OK(BOOL, "\"TRUE\""),
    OK(BOOL, "\"y\""), OK(BOOL, "\"yes\""), OK(BOOL, "\"on\""),
    OK(BOOL, "\"On\""), OK(BOOL, "\"of\""), OK(BOOL, "\"off\""),
    OK(BOOL, "\"f\""), OK(BOOL, "\"fals\""), OK(BOOL, "\"n\""),
    OK(BOOL, "\"no\""), OK(BOOL, "\"1\""), OK(BOOL, "\"0\""),
    OK(BOOL, "\" true \""), OK(BOOL, "\"\\ttrue\\n\""),
    NO(BOOL, "\"o\"", R_BOOL), NO(BOOL, "\"truex\"", R_BOOL),
    NO(BOOL, "\"offf\"", R_BOOL), NO(BOOL, "\"onn\"", R_BOOL),
    NO(BOOL, "\"10\"", R_BOOL), NO(BOOL, "\"\"", R_BOOL),
    NO(BOOL, "\"e\"", R_BOOL), NO(BOOL, "\"t rue\"", R_BOOL),
    NO(BOOL, "\"nope\"", R_BOOL), NO(BOOL, "[true]", R_ARR),

    /* text */

    OK(TEXT, "\"anything\""), OK(TEXT, "12"), OK(TEXT, "true"),
    OK(TEXT, "{\"a\": [1]}"), OK(TEXT, "[1, 2]"),
    OKM(3, "\"abc\""), NOM(3, "\"abcd\""), OKM(3, "\"abc   \""),
    NOM(3, "\"abc  x\""), OKM(3, "\"\xc3\xa9\xc3\xa9\xc3\xa9\""),
    NOM(3, "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\""),
    OKM(3, "\"\\u00e9\\u00e9\\u00e9\""), NOM(3, "\"\\u00e9\\u00e9\\u00e9!\""),
    OKM(2, "\"\\ud83d\\ude00\\ud83d\\ude00\""),
    NOM(2, "\"\\ud83d\\ude00\\ud83d\\ude00\\ud83d\\ude00\""),
    OKM(3, "\"ab\\u0020\\u0020\""), NOM(3, "\"abc\\n\""),
    OKM(3, "123"), NOM(3, "1234"), OKM(4, "true"), NOM(4, "false"),

    /* timestamps */

    OK(TIMESTAMPTZ, "\"2024-02-29\""),
    NO(TIMESTAMPTZ, "\"2023-02-29\"", R_TS),
    OK(TIMESTAMPTZ, "\"2000-02-29T00:00:00Z\""),
    NO(TIMESTAMPTZ, "\"1900-02-29T00:00:00Z\"", R_TS),
    OK(TIMESTAMPTZ, "\"2024-01-31T10:00Z\""),
    NO(TIMESTAMPTZ, "\"2024-04-31T10:00Z\"", R_TS),
    NO(TIMESTAMPTZ, "\"2024-13-01\"", R_TS),
    NO(TIMESTAMPTZ, "\"2024-00-01\"", R_TS),
    NO(TIMESTAMPTZ, "\"2024-01-00\"", R_TS),
    OK(TIMESTAMPTZ, "\"2024-01-01 10:00:00+02\""),
    OK(TIMESTAMPTZ, "\"2024-01-01t10:00z\""),
    OK(TIMESTAMPTZ, "\"2024-01-01T10:00:00.123456Z\""),
    OK(TIMESTAMPTZ, "\"2024-01-01T10:00:00.123456789+05:30\""),
    OK(TIMESTAMPTZ, "\"2024-01-01T10:00:00-0530\""),
    OK(TIMESTAMPTZ, "\"2024-01-01T10:00:00+15:59\""),
    NO(TIMESTAMPTZ, "\"2024-01-01T10:00:00+16\"", R_TS),
    NO(TIMESTAMPTZ, "\"2024-01-01T10:00:00+05:60\"", R_TS),
    OK(TIMESTAMPTZ, "\"2024-01-01T24:00:00\""),
    OK(TIMESTAMPTZ, "\"2024-01-01T24:00\""),
    OK(TIMESTAMPTZ, "\"2024-01-01T24:00:00.000\""),
    NO(TIMESTAMPTZ, "\"2024-01-01T24:00:01\"", R_TS),
    NO(TIMESTAMPTZ, "\"2024-01-01T24:01\"", R_TS),
    NOS(TIMESTAMPTZ, "\"2024-01-01T24:00:00.0000001\"", R_TS),
    OK(TIMESTAMPTZ, "\"2024-01-01T23:59:60\""),
    OK(TIMESTAMPTZ, "\"2024-01-01T10:59:60Z\""),
    NO(TIMESTAMPTZ, "\"2024-01-01T23:59:60.5\"", R_TS),
    NO(TIMESTAMPTZ, "\"2024-01-01T23:59:61\"", R_TS),
    NO(TIMESTAMPTZ, "\"2024-01-01T25:00\"", R_TS),
    NO(TIMESTAMPTZ, "\"2024-01-01T10:60\"", R_TS),
    NO(TIMESTAMPTZ, "\"2024-01-01T10\"", R_TS),
    NOS(TIMESTAMPTZ, "\"2024-01-01T10:00:00.Z\"", R_TS),
    NOS(TIMESTAMPTZ, "\"2024-01-01 10:00:00+02:30:15\"", R_TS),
    OK(TIMESTAMPTZ, "\" 2024-01-01T10:00Z \""),
    OK(TIMESTAMPTZ, "\"infinity\""), OK(TIMESTAMPTZ, "\"-infinity\""),
    OK(TIMESTAMPTZ, "\"EPOCH\""),
    NOS(TIMESTAMPTZ, "\"now\"", R_TS), NOS(TIMESTAMPTZ, "\"today\"", R_TS),
    NOS(TIMESTAMPTZ, "\"1/8/1999\"", R_TS),
    NOS(TIMESTAMPTZ, "\"20240101\"", R_TS),
    NOS(TIMESTAMPTZ, "\"2024-1-1\"", R_TS),
    NOS(TIMESTAMPTZ, "\"12024-01-01\"", R_TS),
    NO(TIMESTAMPTZ, "\"0000-01-01\"", R_TS),
    NOS(TIMESTAMPTZ, "\"2024-01-01X10:00\"", R_TS),
    NO(TIMESTAMPTZ, "\"\"", R_TS), NO(TIMESTAMPTZ, "\"abc\"", R_TS),
    NO(TIMESTAMPTZ, "1704067200", R_TS), NO(TIMESTAMPTZ, "true", R_TS),
    OK(TIMESTAMPTZ, "\"2024\\u002d01-01\""),
    OK(TIMESTAMP, "\"2024-02-29T10:00:00\""),
    OK(TIMESTAMP, "\"2024-02-29T10:00:00+02\""),
    NO(TIMESTAMP, "\"2023-02-29T10:00:00\"", R_TS),
    OK(DATE, "\"2024-02-29\""), NO(DATE, "\"2023-02-29\"", R_DATE),
    OK(DATE, "\"2024-01-01T10:00:00Z\""), OK(DATE, "\"epoch\""),
    OK(DATE, "\"-infinity\""), NO(DATE, "\"+infinity\"", R_DATE),
    NOS(DATE, "\"now\"", R_DATE), NOS(DATE, "20240101", R_DATE),
    OK(TIME, "\"10:00\""), OK(TIME, "\"10:00:00.5\""),
    OK(TIME, "\"24:00:00\""), OK(TIME, "\"23:59:60\""),
    NO(TIME, "\"24:00:01\"", R_TIME), NO(TIME, "\"23:59:60.5\"", R_TIME),
    OK(TIME, "\"10:00+02\""), OK(TIME, "\"10:00Z\""),
    OK(TIME, "\"2024-01-01 10:00\""),
    NO(TIME, "\"10\"", R_TIME), NO(TIME, "\"25:00\"", R_TIME),
    NOS(TIME, "\"1:00\"", R_TIME), NO(TIME, "\"2024-01-01\"", R_TIME),
    OK(TIMETZ, "\"10:00\""), OK(TIMETZ, "\"10:00+02\""),
    OK(TIMETZ, "\"10:00:00.5-0530\""), OK(TIMETZ, "\"10:00z\""),

    /* uuid */

    OK(UUID, U1), OK(UUID, "\"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}\""),
    OK(UUID, "\"a0eebc999c0b4ef8bb6d6bb9bd380a11\""),
    OK(UUID, "\"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\""),
    OK(UUID, "\"a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11\""),
    OK(UUID, "\"{a0eebc999c0b4ef8bb6d6bb9bd380a11}\""),
    OK(UUID, "\"a0eebc99\\u002d9c0b-4ef8-bb6d-6bb9bd380a11\""),
    NO(UUID, "\" a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"", R_UUID),
    NO(UUID, "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 \"", R_UUID),
    NO(UUID, "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-\"", R_UUID),
    NO(UUID, "\"a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"", R_UUID),
    NO(UUID, "\"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"", R_UUID),
    NO(UUID, "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1\"", R_UUID),
    NO(UUID, "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111\"", R_UUID),
    NO(UUID, "\"a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11\"", R_UUID),
    NO(UUID, "\"g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"", R_UUID),
    NO(UUID, "\"\"", R_UUID), NO(UUID, "12", R_UUID),

    /* inet, cidr */

    OK(INET, "\"10.0.0.1\""), OK(INET, "\"10.0.0.1/8\""),
    OK(INET, "\"10.1/16\""), OK(INET, "\"10/8\""), OK(INET, "\"010.0.0.1\""),
    OK(INET, "\"10.0.0.1/08\""), OK(INET, "\"0.0.0.0/0\""),
    NO(INET, "\"10\"", R_INET), NO(INET, "\"10.1\"", R_INET),
    NO(INET, "\"10.1/24\"", R_INET), NO(INET, "\"10.0.0.1/33\"", R_INET),
    NO(INET, "\" 10.0.0.1\"", R_INET), NO(INET, "\"10.0.0.1 \"", R_INET),
    NO(INET, "\"1.2.3.4.5\"", R_INET), NO(INET, "\"256.0.0.1\"", R_INET),
    NO(INET, "\"1.2.3.\"", R_INET), NO(INET, "\"10.0.0.1/\"", R_INET),
    NO(INET, "\"10.0.0.1/1a\"", R_INET), NO(INET, "\"0x0a000001\"", R_INET),
    OK(INET, "\"::1\""), OK(INET, "\"::1/128\""), OK(INET, "\"::/0\""),
    OK(INET, "\"::ffff:1.2.3.4\""), OK(INET, "\"::1.2\""),
    OK(INET, "\"2001:db8::/32\""), OK(INET, "\"::1.2.3.4/96\""),
    OK(INET, "\"1:2:3:4:5:6:7:8\""), OK(INET, "\"ABCD::EF\""),
    OK(INET, "\"fe80::\""),
    NO(INET, "\"::1/129\"", R_INET), NO(INET, "\"1::2::3\"", R_INET),
    NO(INET, "\"fe80::1%eth0\"", R_INET), NO(INET, "\"::1/08\"", R_INET),
    NO(INET, "\":::1\"", R_INET), NO(INET, "\"1:2:3:4:5:6:7:8:9\"", R_INET),
    NO(INET, "\"1:2:3:4:5:6:7::8\"", R_INET),
    NO(INET, "\"12345::\"", R_INET), NO(INET, "\"1:\"", R_INET),
    NO(INET, "\"\"", R_INET), NO(INET, "10", R_INET),
    OK(CIDR, "\"10.0.0.0\""), OK(CIDR, "\"10.0.0.1\""),
    OK(CIDR, "\"10.0.0.0/8\""), NO(CIDR, "\"10.0.0.1/8\"", R_CIDR),
    OK(CIDR, "\"10\""), OK(CIDR, "\"10.1\""), OK(CIDR, "\"192.168.1\""),
    OK(CIDR, "\"224\""), OK(CIDR, "\"224.1\""), OK(CIDR, "\"240\""),
    OK(CIDR, "\"128\""), OK(CIDR, "\"10/8\""), OK(CIDR, "\"10.01.0.0\""),
    OK(CIDR, "\"10.0.0.0/08\""), OK(CIDR, "\"0.0.0.0/0\""),
    NO(CIDR, "\"10.0/4\"", R_CIDR), NO(CIDR, "\"10.0.0.0/33\"", R_CIDR),
    NO(CIDR, "\" 10.0.0.0\"", R_CIDR), NO(CIDR, "\"1.2.3.4.5\"", R_CIDR),
    OK(CIDR, "\"128.1\""),
    OK(CIDR, "\"::1\""), OK(CIDR, "\"::/0\""), OK(CIDR, "\"2001:db8::/32\""),
    NO(CIDR, "\"2001:db8::1/32\"", R_CIDR),
    NOS(CIDR, "\"0x0a\"", R_CIDR), NOS(CIDR, "10", R_CIDR),

    /* json, other, null */

    OK(JSON, "{\"a\": 1}"), OK(JSONB, "[1, [2]]"), OK(JSONB, "\"s\""),
    OK(OTHER, "\"anything\""), OK(OTHER, "{}"),
    OK(INT4, "null"), OK(UUID, "null"),

    /* arrays */

    OKA(INT4, "[1, 2, null, \"3\"]"), OKA(INT4, "[]"), OKA(INT4, "null"),
    NOA(INT4, "1", "is not an array"), NOA(INT4, "\"{1,2}\"",
                                            "is not an array"),
    NOA(INT4, "[1, 2.5]", "has an element that is not an integer"),
    NOA(INT2, "[1, 40000]", "has an element that is out of range"),
    NOA(INT4, "[1, [2]]", "holds a nested array"),
    NOA(INT4, "[{}]", "has an element that is an object"),
    OKA(TEXT, "[\"a\", 1, {}]"), OKA(JSONB, "[[1], {}]"),
    OKA(UUID, "[" U1 ", " U1 "]"),
    NOA(UUID, "[" U1 ", \"x\"]", "has an element that is not a UUID"),
    OKA(OTHER, "5"),

    /* values from nginx */

    OKT(INT8, "123"), OKT(INT8, " 123 "), NOT(INT8, "12a", R_INT),
    NOT(INT2, "99999", R_RANGE), OKT(TEXT, "\xc3\xa9t\xc3\xa9"),
    NOT(TEXT, "\xc3\x28", "is not valid UTF-8"),
    NOT(OTHER, "\xff", "is not valid UTF-8"),
    NOT(TEXT, "\xed\xa0\x80", "is not valid UTF-8"),
    OKT(INET, "192.0.2.1"), OKT(INET, "2001:db8::1"),
    NOT(INET, "unix:", R_INET), OKT(UUID, "a0eebc999c0b4ef8bb6d6bb9bd380a11"),
    OKT(BOOL, "on"), OKT(TIMESTAMPTZ, "2024-01-01T10:00:00Z"),
    OKL(JSONB, "not json"), OKT(OTHER, "x"), OKT(NUMERIC, "1.5"),
    NOTS(DATE, "\"2024-01-01\"", R_DATE)
};


static const char  *kinds[] = {
    "other", "int2", "int4", "int8", "numeric", "float4", "float8", "bool",
    "text", "timestamptz", "timestamp", "date", "time", "timetz", "uuid",
    "inet", "cidr", "json", "jsonb"
};


static const char *
judge(const vector_t *t, int not_null)
{
    char             doc[512];
    saveitem_jv_t    v;
    saveitem_type_t  type;

    type.kind = t->kind;
    type.array = t->array;
    type.max_chars = t->max;
    type.not_null = not_null;

    if (t->text) {
        return saveitem_type_check_text(&type,
                                        (const unsigned char *) t->value,
                                        strlen(t->value));
    }

    snprintf(doc, sizeof(doc), "{\"v\": %s}", t->value);

    if (find(doc, "v", &v) != 0 || v.type == SAVEITEM_JV_ABSENT) {
        return "(cannot find)";
    }

    return saveitem_type_check(&type, &v);
}


static void
test_vectors(void)
{
    size_t  i;
    char    name[256];

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        snprintf(name, sizeof(name), "%s%s%s(%zu) %s %s",
                 vectors[i].text ? "text " : "", kinds[vectors[i].kind],
                 vectors[i].array ? "[]" : "", vectors[i].max,
                 vectors[i].value, vectors[i].reason ? "refused" : "taken");

        is_str(judge(&vectors[i], 0), vectors[i].reason, name);
    }
}


static void
test_null(void)
{
    saveitem_jv_t          v;
    saveitem_type_t        t;
    static const vector_t  nul = OK(INT4, "null");
    static const vector_t  other = OK(OTHER, "null");
    static const vector_t  empty = OKT(TEXT, "");

    is_str(judge(&nul, 1), "is null", "null: NOT NULL refuses it");
    is_str(judge(&nul, 0), NULL, "null: a NULL column takes it");
    is_str(judge(&other, 1), "is null", "null: NOT NULL, any type");
    is_str(judge(&empty, 1), "is null", "null: empty text is NULL");
    is_str(judge(&empty, 0), NULL, "null: empty text into a NULL column");

    t.kind = SAVEITEM_TYPE_INT4;
    t.array = 0;
    t.max_chars = 0;
    t.not_null = 1;
    v.start = NULL;
    v.len = 0;
    v.type = SAVEITEM_JV_ABSENT;

    is_str(saveitem_type_check(&t, &v), NULL, "null: absent is not judged");

    is_str(saveitem_type_check_text(&t, (const unsigned char *) "1\0" "2",
                                    3), "holds a NUL byte",
           "text: a NUL byte");
}


static void
test_kind(void)
{
    is(saveitem_type_kind(21), SAVEITEM_TYPE_INT2, "kind: int2");
    is(saveitem_type_kind(23), SAVEITEM_TYPE_INT4, "kind: int4");
    is(saveitem_type_kind(20), SAVEITEM_TYPE_INT8, "kind: int8");
    is(saveitem_type_kind(1700), SAVEITEM_TYPE_NUMERIC, "kind: numeric");
    is(saveitem_type_kind(700), SAVEITEM_TYPE_FLOAT4, "kind: float4");
    is(saveitem_type_kind(701), SAVEITEM_TYPE_FLOAT8, "kind: float8");
    is(saveitem_type_kind(16), SAVEITEM_TYPE_BOOL, "kind: bool");
    is(saveitem_type_kind(25), SAVEITEM_TYPE_TEXT, "kind: text");
    is(saveitem_type_kind(1043), SAVEITEM_TYPE_TEXT, "kind: varchar");
    is(saveitem_type_kind(1042), SAVEITEM_TYPE_TEXT, "kind: bpchar");
    is(saveitem_type_kind(1184), SAVEITEM_TYPE_TIMESTAMPTZ,
       "kind: timestamptz");
    is(saveitem_type_kind(1114), SAVEITEM_TYPE_TIMESTAMP, "kind: timestamp");
    is(saveitem_type_kind(1082), SAVEITEM_TYPE_DATE, "kind: date");
    is(saveitem_type_kind(1083), SAVEITEM_TYPE_TIME, "kind: time");
    is(saveitem_type_kind(1266), SAVEITEM_TYPE_TIMETZ, "kind: timetz");
    is(saveitem_type_kind(2950), SAVEITEM_TYPE_UUID, "kind: uuid");
    is(saveitem_type_kind(869), SAVEITEM_TYPE_INET, "kind: inet");
    is(saveitem_type_kind(650), SAVEITEM_TYPE_CIDR, "kind: cidr");
    is(saveitem_type_kind(114), SAVEITEM_TYPE_JSON, "kind: json");
    is(saveitem_type_kind(3802), SAVEITEM_TYPE_JSONB, "kind: jsonb");
    is(saveitem_type_kind(17), SAVEITEM_TYPE_OTHER, "kind: bytea is other");
    is(saveitem_type_kind(0), SAVEITEM_TYPE_OTHER, "kind: 0 is other");
}


/* one line per vector the server can judge the same way */

static void
dump_vectors(void)
{
    size_t       i;
    const char  *p;

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {

        if (vectors[i].array || vectors[i].kind == SAVEITEM_TYPE_OTHER) {
            continue;
        }

        if (vectors[i].max) {
            printf("%s\tvarchar(%zu)", vectors[i].text ? "text" : "json",
                   vectors[i].max);

        } else {
            printf("%s\t%s", vectors[i].text ? "text" : "json",
                   kinds[vectors[i].kind]);
        }

        printf("\t%s\t", vectors[i].pg == LOOSE ? "loose"
                         : vectors[i].reason == NULL ? "taken"
                         : vectors[i].pg == STRICT ? "strict" : "refused");

        for (p = vectors[i].value; *p != '\0'; p++) {
            printf("%02x", (unsigned char) *p);
        }

        printf("\n");
    }
}


int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--vectors") == 0) {
        dump_vectors();
        return 0;
    }

    test_kind();
    test_find();
    test_unknown_key();
    test_json_text();
    test_vectors();
    test_null();

    printf("1..%d\n", tests);

    return failures ? 1 : 0;
}
