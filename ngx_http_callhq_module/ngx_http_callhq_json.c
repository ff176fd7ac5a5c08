
/*
 * ngx_http_callhq_module: JSON helpers, and the responses the module
 * sends itself (JSON, or a text of another type).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


typedef struct {
    ngx_uint_t                     status;
    const char                    *reason;
} ngx_http_callhq_reason_t;


static ngx_int_t ngx_http_callhq_send_body(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_chain_t *out, size_t len);
static const char *ngx_http_callhq_reason(ngx_uint_t status);


static ngx_http_callhq_reason_t  ngx_http_callhq_reasons[] = {
    { 400, "Bad Request" },
    { 401, "Unauthorized" },
    { 403, "Forbidden" },
    { 404, "Not Found" },
    { 405, "Method Not Allowed" },
    { 408, "Request Timeout" },
    { 409, "Conflict" },
    { 410, "Gone" },
    { 413, "Payload Too Large" },
    { 415, "Unsupported Media Type" },
    { 422, "Unprocessable Entity" },
    { 429, "Too Many Requests" },
    { 500, "Internal Server Error" },
    { 501, "Not Implemented" },
    { 502, "Bad Gateway" },
    { 503, "Service Unavailable" },
    { 504, "Gateway Timeout" },
    { 0, NULL }
};


static ngx_str_t  ngx_http_callhq_json_type = ngx_string("application/json");


ngx_int_t
ngx_http_callhq_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    return ngx_http_callhq_send_json_parts(r, status, body, 1);
}


/* a body sent as it lies in memory, in n pieces: nothing is copied */

ngx_int_t
ngx_http_callhq_send_json_parts(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *parts, ngx_uint_t n)
{
    size_t        len;
    ngx_chain_t  *out, *cl;

    out = ngx_http_callhq_chain(r->pool, parts, n, &len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    for (cl = out; cl->next; cl = cl->next) { /* void */ }

    /* a subrequest's output goes on in its parent's */
    cl->buf->last_buf = (r == r->main) ? 1 : 0;

    return ngx_http_callhq_send_body(r, status, &ngx_http_callhq_json_type,
                                     out, len);
}


ngx_int_t
ngx_http_callhq_send_text(ngx_http_request_t *r, ngx_str_t *type,
    ngx_buf_t *b)
{
    ngx_chain_t  out;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_callhq_send_body(r, NGX_HTTP_OK, type, &out,
                                     b->last - b->pos);
}


static ngx_int_t
ngx_http_callhq_send_body(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_chain_t *out, size_t len)
{
    ngx_int_t  rc;

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_length_n = len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out);
}


/*
 * A chain of memory buffers over the parts (the empty ones left out, but
 * never all of them), ending the body; *len is its length.  It may be
 * sent more than once (a model subrequest's body, to the next upstream).
 */

ngx_chain_t *
ngx_http_callhq_chain(ngx_pool_t *pool, ngx_str_t *parts, ngx_uint_t n,
    size_t *len)
{
    ngx_buf_t    *b;
    ngx_uint_t    i;
    ngx_chain_t  *out, **ll, *cl;

    out = NULL;
    ll = &out;
    b = NULL;
    *len = 0;

    for (i = 0; i < n; i++) {
        if (parts[i].len == 0 && (out != NULL || i + 1 < n)) {
            continue;
        }

        b = ngx_calloc_buf(pool);
        cl = ngx_alloc_chain_link(pool);

        if (b == NULL || cl == NULL) {
            return NULL;
        }

        /* start: an upstream sending it again rewinds pos to it */
        b->start = parts[i].data;
        b->pos = b->start;
        b->last = parts[i].data + parts[i].len;
        b->end = b->last;
        b->memory = parts[i].len ? 1 : 0;

        cl->buf = b;
        cl->next = NULL;
        *ll = cl;
        ll = &cl->next;

        *len += parts[i].len;
    }

    if (b == NULL) {
        return NULL;
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    return out;
}


ngx_int_t
ngx_http_callhq_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *fmt, ...)
{
    u_char                 *p;
    va_list                 args;
    json_t                 *json;
    ngx_str_t               body;
    ngx_http_callhq_ctx_t  *ctx;
    u_char                  msg[NGX_MAX_ERROR_STR];

    va_start(args, fmt);
    p = ngx_vslprintf(msg, msg + sizeof(msg) - 1, fmt, args);
    va_end(args);
    *p = '\0';

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "callhq: error %ui \"%s\"", status, msg);

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);

    if (ctx && ctx->openai) {
        return ngx_http_callhq_openai_error(r, status, msg, p - msg, NULL,
                                            NULL);
    }

    /* a message from outside may be invalid UTF-8: jansson rejects it */
    json = json_pack("{s:i,s:s,s:s%}", "statusCode", (int) status,
                     "error", ngx_http_callhq_reason(status),
                     "message", msg, (size_t) (p - msg));
    if (json == NULL) {
        json = json_pack("{s:i,s:s,s:s}", "statusCode", (int) status,
                         "error", ngx_http_callhq_reason(status),
                         "message", ngx_http_callhq_reason(status));
        if (json == NULL) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_callhq_json_dump(r, json, &body) != NGX_OK) {
        json_decref(json);
        return NGX_ERROR;
    }

    json_decref(json);

    ngx_http_discard_request_body(r);

    return ngx_http_callhq_send_json(r, status, &body);
}


ngx_int_t
ngx_http_callhq_json_dump(ngx_http_request_t *r, json_t *json, ngx_str_t *out)
{
    char    *s;
    size_t   len;

    s = json_dumps(json, JSON_COMPACT);
    if (s == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(s);

    out->data = ngx_pnalloc(r->pool, len + 1);
    if (out->data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, len + 1);
    out->len = len;
    free(s);

    return NGX_OK;
}


ngx_table_elt_t *
ngx_http_callhq_add_header(ngx_list_t *headers, char *key,
    char *lowcase_key, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->lowcase_key = (u_char *) lowcase_key;
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


static const char *
ngx_http_callhq_reason(ngx_uint_t status)
{
    ngx_http_callhq_reason_t  *rs;

    for (rs = ngx_http_callhq_reasons; rs->status; rs++) {
        if (rs->status == status) {
            return rs->reason;
        }
    }

    return status >= 500 ? "Internal Server Error" : "Bad Request";
}


/* libpq parameters are NUL-terminated text; quote makes a JSON string */

char *
ngx_http_callhq_param(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_uint_t quote)
{
    u_char  *p, *s;

    s = ngx_pnalloc(pool, len + 3);
    if (s == NULL) {
        return NULL;
    }

    p = s;

    if (quote) {
        *p++ = '"';
    }

    if (len) {
        p = ngx_cpymem(p, data, len);
    }

    if (quote) {
        *p++ = '"';
    }

    *p = '\0';

    return (char *) s;
}
