
/*
 * ngx_http_callhq_module: JSON helpers and JSON responses.
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
ngx_int_t ngx_http_callhq_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *fmt, ...);

ngx_chain_t *ngx_http_callhq_chain(ngx_pool_t *pool, ngx_str_t *parts,
    ngx_uint_t n, size_t *len);

/* the query string as a JSON object of strings (NUL-terminated) */
ngx_int_t ngx_http_callhq_args_json(ngx_http_request_t *r, ngx_str_t *out);

/* the whole body in one NUL-terminated piece (reads a temp file) */
ngx_int_t ngx_http_callhq_request_body(ngx_http_request_t *r, ngx_str_t *out);

/* appends a header (key and value must outlive the request) */
ngx_table_elt_t *ngx_http_callhq_add_header(ngx_list_t *headers,
    char *key, char *lowcase_key, ngx_str_t *value);

/* json_dumps() into r->pool, NUL-terminated */
ngx_int_t ngx_http_callhq_json_dump(ngx_http_request_t *r, json_t *json,
    ngx_str_t *out);


/* ngx_http_callhq_json_scan.c */

#define NGX_HTTP_CALLHQ_JSON_MAX_DEPTH  512

/*
 * NULL if [p, end) is one JSON object or array as PostgreSQL's jsonb takes
 * it (UTF-8, no \u0000, no lone surrogates); else why not, *at where.
 */
const char *ngx_http_callhq_json_check(u_char *p, u_char *end, u_char **at);
u_char *ngx_http_callhq_json_where(u_char *buf, size_t len, u_char *start,
    u_char *p);

/*
 * Lookups in a text that passed ngx_http_callhq_json_check(); each takes
 * the value at p (NULL for none) and returns the value found, or NULL.
 */
u_char *ngx_http_callhq_json_get(u_char *p, u_char *end, const char *key);
u_char *ngx_http_callhq_json_item(u_char *p, u_char *end, ngx_uint_t n);

/* the still escaped contents of a string: NGX_OK, or NGX_DECLINED */
ngx_int_t ngx_http_callhq_json_string(u_char *p, u_char *end,
    ngx_str_t *raw);
size_t ngx_http_callhq_json_text_len(u_char *p, size_t len);
ngx_int_t ngx_http_callhq_json_count(u_char *p, u_char *end);
ngx_int_t ngx_http_callhq_json_is(u_char *p, u_char *end, const char *lit);


#endif /* _NGX_HTTP_CALLHQ_JSON_H_INCLUDED_ */
