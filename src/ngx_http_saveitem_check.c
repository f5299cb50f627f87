
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#include <string.h>
#include <jansson.h>

#include "ngx_http_saveitem_check.h"


static void saveitem_json_message(saveitem_json_error_t *err,
    const char *text);
static size_t saveitem_utf8_len(const unsigned char *p);


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
 * Every document that jsonb accepts must pass: scalars at the top level
 * too; numbers that jansson cannot hold (integers past 64 bits, 1e400) are
 * left for PostgreSQL to judge.  A NUL byte cannot travel as a libpq text
 * parameter and "\u0000" cannot be stored in jsonb: both are rejected here.
 */

int
saveitem_json_check(const unsigned char *p, size_t len,
    saveitem_json_error_t *err)
{
    size_t         i, line, column;
    json_t        *root;
    json_error_t   e;
    const char    *nul;

    nul = memchr(p, '\0', len);

    if (nul != NULL) {
        line = 1;
        column = 1;

        for (i = 0; i < (size_t) (nul - (const char *) p); i++) {
            if (p[i] == '\n') {
                line++;
                column = 1;

            } else if ((p[i] & 0xc0) != 0x80) {
                column++;
            }
        }

        err->line = line;
        err->column = column;
        err->position = i;
        saveitem_json_message(err, "NUL byte in the body");

        return SAVEITEM_JSON_INVALID;
    }

    root = json_loadb((const char *) p, len, JSON_DECODE_ANY, &e);

    if (root != NULL) {
        json_decref(root);
        return SAVEITEM_JSON_OK;
    }

    err->line = e.line > 0 ? (size_t) e.line : 1;
    err->column = e.column > 0 ? (size_t) e.column : 1;
    err->position = e.position > 0 ? (size_t) e.position : 0;

    switch (json_error_code(&e)) {

    case json_error_numeric_overflow:
        return SAVEITEM_JSON_DEFER;

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


unsigned
saveitem_sqlstate_status(const char *sqlstate)
{
    if (sqlstate == NULL || strlen(sqlstate) != 5) {
        return 500;
    }

    if (strncmp(sqlstate, "22", 2) == 0) {
        return 400;
    }

    if (strcmp(sqlstate, "23505") == 0) {
        return 409;
    }

    if (strncmp(sqlstate, "23", 2) == 0) {
        return 422;
    }

    if (strcmp(sqlstate, "57014") == 0) {
        return 504;
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
