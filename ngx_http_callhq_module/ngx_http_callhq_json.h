
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
ngx_int_t ngx_http_callhq_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *fmt, ...);

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


#endif /* _NGX_HTTP_CALLHQ_JSON_H_INCLUDED_ */
