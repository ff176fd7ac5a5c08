
/*
 * ngx_http_callhq_module: JSON helpers, and the responses the module
 * sends itself (JSON, or a text of another type).
 */


#ifndef _NGX_HTTP_CALLHQ_JSON_H_INCLUDED_
#define _NGX_HTTP_CALLHQ_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>


ngx_int_t ngx_http_callhq_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body);
ngx_int_t ngx_http_callhq_send_json_parts(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *parts, ngx_uint_t n);
/* 200 with the body in b, of another type (TwiML, the metrics scrape) */
ngx_int_t ngx_http_callhq_send_text(ngx_http_request_t *r, ngx_str_t *type,
    ngx_buf_t *b);
ngx_int_t ngx_http_callhq_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *fmt, ...);

ngx_chain_t *ngx_http_callhq_chain(ngx_pool_t *pool, ngx_str_t *parts,
    ngx_uint_t n, size_t *len);

/* appends a header (key and value must outlive the request) */
ngx_table_elt_t *ngx_http_callhq_add_header(ngx_list_t *headers,
    char *key, char *lowcase_key, ngx_str_t *value);

/* a libpq parameter (NUL-terminated) in pool; quote makes a JSON string */
char *ngx_http_callhq_param(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_uint_t quote);

/* json_dumps() into r->pool, NUL-terminated */
ngx_int_t ngx_http_callhq_json_dump(ngx_http_request_t *r, json_t *json,
    ngx_str_t *out);


/* ngx_http_callhq_json_scan.c */

#define NGX_HTTP_CALLHQ_JSON_MAX_DEPTH  512

/*
 * A value wanted of a text: path names the members on the way to it, and
 * NGX_HTTP_CALLHQ_JSON_FIRST an array's first item; ngx_null_string ends
 * it.  The check notes where the value is (the last, if a member repeats).
 */
typedef struct {
    ngx_str_t                     *path;
    u_char                        *value;      /* NULL if there is none */
    u_char                        *end;
} ngx_http_callhq_json_want_t;

extern u_char  ngx_http_callhq_json_first[];

#define NGX_HTTP_CALLHQ_JSON_FIRST  { 0, ngx_http_callhq_json_first }

/*
 * NULL if [p, end) is one JSON object or array as PostgreSQL's jsonb takes
 * it (UTF-8, no \u0000, no lone surrogates, numbers numeric holds); else
 * why not, *at where.
 * Fills in the n wants (fewer than the bits of an ngx_uint_t) on the way.
 */
const char *ngx_http_callhq_json_check(u_char *p, u_char *end, u_char **at,
    ngx_http_callhq_json_want_t *want, ngx_uint_t n);
u_char *ngx_http_callhq_json_where(u_char *buf, size_t len, u_char *start,
    u_char *p);
u_char *ngx_http_callhq_json_path(u_char *buf, size_t len, u_char *start,
    u_char *p);

/* the check's verdict on a number jsonb cannot hold (numeric's bounds) */
#define NGX_HTTP_CALLHQ_JSON_RANGE       "number out of range"
#define NGX_HTTP_CALLHQ_JSON_MAX_WEIGHT  131072     /* digits before . */
#define NGX_HTTP_CALLHQ_JSON_MAX_SCALE   16383      /* digits after . */

/* a string's still escaped contents: NGX_OK, or NGX_DECLINED */
ngx_int_t ngx_http_callhq_json_string(ngx_http_callhq_json_want_t *w,
    ngx_str_t *raw);
ngx_int_t ngx_http_callhq_json_count(ngx_http_callhq_json_want_t *w);
ngx_int_t ngx_http_callhq_json_is(ngx_http_callhq_json_want_t *w,
    const char *lit);
size_t ngx_http_callhq_json_text_len(u_char *p, size_t len);
void ngx_http_callhq_json_members(ngx_http_callhq_json_want_t *w,
    ngx_uint_t *n, size_t *max, ngx_str_t *name);


#endif /* _NGX_HTTP_CALLHQ_JSON_H_INCLUDED_ */
