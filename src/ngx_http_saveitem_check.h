
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


#ifndef _NGX_HTTP_SAVEITEM_CHECK_H_INCLUDED_
#define _NGX_HTTP_SAVEITEM_CHECK_H_INCLUDED_


/*
 * Pure checks on bytes: no nginx event, request or pool inside, so that
 * they can be tested and fuzzed on their own (see util/fuzz).
 */

#include <stddef.h>


#define SAVEITEM_JSON_OK          0     /* jsonb stores it */
#define SAVEITEM_JSON_INVALID     1
#define SAVEITEM_JSON_ERROR       3     /* out of memory */

/* why the validator refused a document; from _LIMITS on jsonb's limits */
#define SAVEITEM_SCAN_OK          0
#define SAVEITEM_SCAN_END         1
#define SAVEITEM_SCAN_TRAILING    2
#define SAVEITEM_SCAN_SYNTAX      3
#define SAVEITEM_SCAN_UTF8        4
#define SAVEITEM_SCAN_ESCAPE      5
#define SAVEITEM_SCAN_U0000       6
#define SAVEITEM_SCAN_CONTROL     7
#define SAVEITEM_SCAN_DEPTH       8
#define SAVEITEM_SCAN_LIMITS      9
#define SAVEITEM_SCAN_NUM_BIG     9
#define SAVEITEM_SCAN_NUM_SCALE   10
#define SAVEITEM_SCAN_NUM_EXP     11
#define SAVEITEM_SCAN_STRING      12
#define SAVEITEM_SCAN_SIZE        13
#define SAVEITEM_SCAN_ELEMS       14
#define SAVEITEM_SCAN_PAIRS       15

#define SAVEITEM_JSON_MESSAGE_LEN 160


typedef struct {
    size_t      line;
    size_t      column;
    size_t      position;
    char        message[SAVEITEM_JSON_MESSAGE_LEN];
} saveitem_json_error_t;


int saveitem_content_type_is_json(const unsigned char *p, size_t len);
int saveitem_json_check(const unsigned char *p, size_t len,
    saveitem_json_error_t *err);
int saveitem_sqlstate_is_document(const char *sqlstate);
unsigned saveitem_sqlstate_status(const char *sqlstate);
const char *saveitem_sqlstate_error(const char *sqlstate);
const char *saveitem_sqlstate_message(const char *sqlstate);
size_t saveitem_log_escape(unsigned char *dst, size_t size,
    const unsigned char *src, size_t len);
size_t saveitem_quote_ident(unsigned char *dst, const unsigned char *src,
    size_t len, size_t max_parts, size_t *errpos);
size_t saveitem_json_escape(unsigned char *dst, const unsigned char *src,
    size_t len);
int saveitem_pk_is_number(const unsigned char *p, size_t len);
int saveitem_key_is_valid(const unsigned char *p, size_t len);
int saveitem_key_unquote(const unsigned char *p, size_t len,
    unsigned char *dst, size_t *n);


/*
 * The documents of a bulk body, one at a time, without judging them (each
 * is judged by saveitem_json_check()): the elements of a top-level JSON
 * array, or the non-blank lines of NDJSON.
 */

typedef struct {
    const unsigned char  *start;
    size_t                len;
    size_t                pos;      /* next byte; of the error on -1, -2 */
    int                   lines;    /* NDJSON */
    int                   state;
} saveitem_docs_t;

int saveitem_docs_open(saveitem_docs_t *d, const unsigned char *p,
    size_t len, int lines);
int saveitem_docs_next(saveitem_docs_t *d, size_t *start, size_t *end);
int saveitem_content_type_is_ndjson(const unsigned char *p, size_t len);
int saveitem_json_is_array(const unsigned char *p, size_t len);
void saveitem_json_locate(saveitem_json_error_t *err, const unsigned char *p,
    size_t at);
int saveitem_key_equal(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen);
size_t saveitem_utf8_len_in(const unsigned char *p,
    const unsigned char *end);


#endif /* _NGX_HTTP_SAVEITEM_CHECK_H_INCLUDED_ */
