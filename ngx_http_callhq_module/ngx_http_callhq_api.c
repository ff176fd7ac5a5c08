
/*
 * ngx_http_callhq_module: the REST resources (assistants, sessions, phone
 * numbers, the read side of chats).  Each call is routed here, checked, and answered
 * by one SQL function in one round trip; sql/ holds the functions.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"
#include "ngx_http_callhq_args.h"
#include "ngx_http_callhq_webhook.h"


#define NGX_HTTP_CALLHQ_SQL(fn)                                               \
    "select status, body from callhq." fn                                     \
    "($1::bytea, $2::text, $3::jsonb, $4::jsonb, $5::jsonb)"


/*
 * The SHA-256 of the keys seen last, in this worker: hashing a key costs
 * more than the rest of a chat's own work, and clients send the same few
 * keys again and again.  The database still checks every hash.
 */
#define NGX_HTTP_CALLHQ_KEYS      16
#define NGX_HTTP_CALLHQ_KEY_MAX   128

typedef struct {
    size_t                         len;
    u_char                         key[NGX_HTTP_CALLHQ_KEY_MAX];
    u_char                         hash[2 + 64 + 1];
} ngx_http_callhq_key_t;


static ngx_http_callhq_route_t *ngx_http_callhq_route(ngx_http_request_t *r,
    ngx_http_callhq_ctx_t *ctx);
static ngx_int_t ngx_http_callhq_parse_path(ngx_http_request_t *r,
    ngx_http_callhq_ctx_t *ctx);
static ngx_uint_t ngx_http_callhq_route_path(ngx_http_callhq_route_t *rt,
    ngx_http_callhq_ctx_t *ctx);
static ngx_int_t ngx_http_callhq_not_allowed(ngx_http_request_t *r,
    ngx_http_callhq_ctx_t *ctx);
static const char *ngx_http_callhq_authorize(ngx_http_request_t *r,
    ngx_http_callhq_ctx_t *ctx);
static void ngx_http_callhq_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_callhq_parse_body(ngx_http_request_t *r,
    ngx_str_t *body, ngx_http_callhq_json_want_t *want, ngx_uint_t n,
    ngx_int_t *rc);
static ngx_int_t ngx_http_callhq_check_variables(ngx_http_request_t *r,
    ngx_str_t *body, ngx_int_t *rc);
static void ngx_http_callhq_query(ngx_http_request_t *r,
    ngx_http_callhq_ctx_t *ctx, ngx_http_callhq_route_t *route,
    ngx_str_t *body);
static void ngx_http_callhq_query_done(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static ngx_int_t ngx_http_callhq_send_result(ngx_http_request_t *r,
    PGresult *res);
static ngx_int_t ngx_http_callhq_request_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;


#define ngx_http_callhq_route_entry(res, item, method, stmt, fn)              \
    { ngx_string(res), item, method,                                          \
      { NGX_HTTP_CALLHQ_STMT_ ## stmt, "callhq_" fn, NGX_HTTP_CALLHQ_SQL(fn),  \
        5 } }

static ngx_http_callhq_route_t  ngx_http_callhq_routes[] = {

    ngx_http_callhq_route_entry("assistant", 0, NGX_HTTP_POST, ASSISTANT_CREATE,
                                "api_assistant_create"),
    ngx_http_callhq_route_entry("assistant", 0, NGX_HTTP_GET, ASSISTANT_LIST,
                                "api_assistant_list"),
    ngx_http_callhq_route_entry("assistant", 1, NGX_HTTP_GET, ASSISTANT_GET,
                                "api_assistant_get"),
    ngx_http_callhq_route_entry("assistant", 1, NGX_HTTP_PATCH,
                                ASSISTANT_UPDATE, "api_assistant_update"),
    ngx_http_callhq_route_entry("assistant", 1, NGX_HTTP_DELETE,
                                ASSISTANT_DELETE, "api_assistant_delete"),

    ngx_http_callhq_route_entry("session", 0, NGX_HTTP_POST, SESSION_CREATE,
                                "api_session_create"),
    ngx_http_callhq_route_entry("session", 0, NGX_HTTP_GET, SESSION_LIST,
                                "api_session_list"),
    ngx_http_callhq_route_entry("session", 1, NGX_HTTP_GET, SESSION_GET,
                                "api_session_get"),
    ngx_http_callhq_route_entry("session", 1, NGX_HTTP_PATCH, SESSION_UPDATE,
                                "api_session_update"),
    ngx_http_callhq_route_entry("session", 1, NGX_HTTP_DELETE, SESSION_DELETE,
                                "api_session_delete"),

    ngx_http_callhq_route_entry("phone-number", 0, NGX_HTTP_POST, PHONE_CREATE,
                                "api_phone_number_create"),
    ngx_http_callhq_route_entry("phone-number", 0, NGX_HTTP_GET, PHONE_LIST,
                                "api_phone_number_list"),
    ngx_http_callhq_route_entry("phone-number", 1, NGX_HTTP_GET, PHONE_GET,
                                "api_phone_number_get"),
    ngx_http_callhq_route_entry("phone-number", 1, NGX_HTTP_PATCH,
                                PHONE_UPDATE, "api_phone_number_update"),
    ngx_http_callhq_route_entry("phone-number", 1, NGX_HTTP_DELETE,
                                PHONE_DELETE, "api_phone_number_delete"),

    /* POST /chat and /chat/responses go upstream: no SQL function */
    { ngx_string("chat"), 0, NGX_HTTP_POST, { 0, NULL, NULL, 0 } },
    { ngx_string("chat"), 1, NGX_HTTP_POST, { 0, NULL, NULL, 0 } },
    ngx_http_callhq_route_entry("chat", 0, NGX_HTTP_GET, CHAT_LIST,
                                "api_chat_list"),
    ngx_http_callhq_route_entry("chat", 1, NGX_HTTP_GET, CHAT_GET,
                                "api_chat_get"),
    ngx_http_callhq_route_entry("chat", 1, NGX_HTTP_DELETE, CHAT_DELETE,
                                "api_chat_delete"),

    { ngx_null_string, 0, 0, { 0, NULL, NULL, 0 } }
};


/* the routes of each surface, table by table */
static ngx_http_callhq_route_t  *ngx_http_callhq_api_tables[] = {
    ngx_http_callhq_routes, NULL
};

static ngx_http_callhq_route_t  *ngx_http_callhq_openai_tables[] = {
    ngx_http_callhq_openai_routes, ngx_http_callhq_openai_conv_routes, NULL
};


/* where a body names a webhook URL: an assistant's, an inline one's */
static ngx_str_t  ngx_http_callhq_server_url_paths[][4] = {
    { ngx_string("server"), ngx_string("url"), ngx_null_string,
      ngx_null_string },
    { ngx_string("assistant"), ngx_string("server"), ngx_string("url"),
      ngx_null_string }
};


static ngx_str_t  ngx_http_callhq_variables[] = {
    ngx_string("assistantOverrides"), ngx_string("variableValues"),
    ngx_null_string
};


static ngx_http_callhq_key_t  ngx_http_callhq_keys[NGX_HTTP_CALLHQ_KEYS];
static ngx_uint_t             ngx_http_callhq_keys_next;


static ngx_str_t  ngx_http_callhq_methods[] = {
    ngx_string("GET"), ngx_string("POST"), ngx_string("PATCH"),
    ngx_string("DELETE")
};

static ngx_uint_t  ngx_http_callhq_method_bits[] = {
    NGX_HTTP_GET, NGX_HTTP_POST, NGX_HTTP_PATCH, NGX_HTTP_DELETE
};


ngx_int_t
ngx_http_callhq_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    const char                  *err;
    ngx_str_t                    body;
    ngx_http_callhq_ctx_t       *ctx;
    ngx_http_callhq_route_t     *route;
    ngx_http_callhq_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_callhq_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_callhq_module);
    ctx->openai = lcf->openai;

    if (ngx_http_callhq_parse_path(r, ctx) != NGX_OK) {
        return ngx_http_callhq_send_error(r, NGX_HTTP_NOT_FOUND,
                                          "Cannot %V %V", &r->method_name,
                                          &r->uri);
    }

    route = ngx_http_callhq_route(r, ctx);
    if (route == NULL) {
        return ngx_http_callhq_not_allowed(r, ctx);
    }

    err = ngx_http_callhq_authorize(r, ctx);
    if (err != NULL) {
        return ngx_http_callhq_send_error(r, NGX_HTTP_UNAUTHORIZED, "%s",
                                          err);
    }

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PATCH))) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        ngx_str_null(&body);

        /* held until the query's handler finalizes the request */
        r->main->count++;

        ngx_http_callhq_query(r, ctx, route, &body);

        return NGX_DONE;
    }

    if (r->headers_in.content_type) {
        if (ngx_strlcasestrn(r->headers_in.content_type->value.data,
                             r->headers_in.content_type->value.data
                             + r->headers_in.content_type->value.len,
                             (u_char *) "json", 4 - 1)
            == NULL)
        {
            return ngx_http_callhq_send_error(r,
                       NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                       "Content-Type must be application/json, not \"%V\"",
                       &r->headers_in.content_type->value);
        }
    }

    if (r->headers_in.content_length_n > (off_t) lcf->max_body_size) {
        return ngx_http_callhq_send_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                   "request body is %O bytes, the limit is %uz",
                   r->headers_in.content_length_n, lcf->max_body_size);
    }

    /*
     * the body is kept in memory as it comes (the request body filter),
     * where a chunked one is counted too
     */
    ctx->body_limit = lcf->max_body_size;
    ctx->body_reading = 1;

    /*
     * ctx->body grows as the body comes (doubling), not to Content-Length
     * at once: a client that announces 1m and sends slowly holds what it
     * sent, as with nginx's own client_body_buffer_size
     */

    rc = ngx_http_read_client_request_body(r, ngx_http_callhq_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_callhq_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     body;
    ngx_uint_t                    n;
    const char                   *field;
    ngx_http_callhq_ctx_t        *ctx;
    ngx_http_callhq_route_t      *route;
    ngx_http_callhq_loc_conf_t   *lcf;
    ngx_http_callhq_json_want_t   want[NGX_HTTP_CALLHQ_CHAT_WANTS + 1];

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    if (ctx->body_too_large) {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "request body is %O bytes, "
                                        "the limit is %uz",
                                        ctx->body_size, lcf->max_body_size);
        ngx_http_finalize_request(r, rc);
        return;
    }

    /* NUL-terminated by ngx_http_callhq_text_add(), or empty */
    body.data = ctx->body.data;
    body.len = ctx->body.len;

    /* a chunked body has no Content-Length to check up front */
    if (body.len > lcf->max_body_size) {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "request body is %uz bytes, "
                                        "the limit is %uz",
                                        body.len, lcf->max_body_size);
        ngx_http_finalize_request(r, rc);
        return;
    }

    route = ngx_http_callhq_route(r, ctx);

    if (route->stmt.sql == NULL) {
        /* POST /chat, POST /chat/responses */
        ngx_http_callhq_turn_wants(want);

        /* an inline assistant's webhooks go where its server.url says */
        want[NGX_HTTP_CALLHQ_CHAT_WANTS].path =
                                         ngx_http_callhq_server_url_paths[1];

        if (ngx_http_callhq_parse_body(r, &body, want,
                                       NGX_HTTP_CALLHQ_CHAT_WANTS + 1, &rc)
            != NGX_OK
            || ngx_http_callhq_webhook_url_body(r,
                                          &want[NGX_HTTP_CALLHQ_CHAT_WANTS],
                                          "assistant.server.url", &rc)
               != NGX_OK)
        {
            ngx_http_finalize_request(r, rc);
            return;
        }

        ngx_http_callhq_chat_handler(r, ctx, &body, want);
        return;
    }

    /* server.url is checked here: callhq_webhook_allow is not SQL's */
    n = 0;

    if (route->stmt.index == NGX_HTTP_CALLHQ_STMT_ASSISTANT_CREATE
        || route->stmt.index == NGX_HTTP_CALLHQ_STMT_ASSISTANT_UPDATE)
    {
        want[0].path = ngx_http_callhq_server_url_paths[0];
        field = "server.url";
        n = 1;

    } else if (route->stmt.index == NGX_HTTP_CALLHQ_STMT_SESSION_CREATE) {
        want[0].path = ngx_http_callhq_server_url_paths[1];
        field = "assistant.server.url";
        n = 1;
    }

    if (ngx_http_callhq_parse_body(r, &body, want, n, &rc) != NGX_OK
        || (n && ngx_http_callhq_webhook_url_body(r, &want[0], field, &rc)
                 != NGX_OK))
    {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_http_callhq_query(r, ctx, route, &body);
}


/*
 * The body must be one JSON object; SQL functions check its fields.
 * Checked here, it never costs the database a round trip when it is not.
 * NGX_DECLINED: the error is sent, *rc is what to finalize with.
 */

static ngx_int_t
ngx_http_callhq_parse_body(ngx_http_request_t *r, ngx_str_t *body,
    ngx_http_callhq_json_want_t *want, ngx_uint_t n, ngx_int_t *rc)
{
    u_char      *at, *p, *last;
    const char  *err;
    u_char       where[sizeof("line , column ") + 2 * NGX_INT_T_LEN];
    u_char       path[256];

    if (body->len == 0) {
        ngx_str_set(body, "{}");
    }

    p = body->data;
    last = body->data + body->len;

    err = ngx_http_callhq_json_check(p, last, &at, want, n);

    if (err != NULL && ngx_strcmp(err, NGX_HTTP_CALLHQ_JSON_RANGE) == 0) {
        /* jsonb would refuse the whole body, naming nothing */
        *ngx_http_callhq_json_path(path, sizeof(path) - 1, p, at) = '\0';

        if (path[0] != '\0') {
            *rc = ngx_http_callhq_send_error(r, NGX_HTTP_BAD_REQUEST,
                      "%s is a number out of range: at most %d digits "
                      "before the decimal point and %d after",
                      path, NGX_HTTP_CALLHQ_JSON_MAX_WEIGHT,
                      NGX_HTTP_CALLHQ_JSON_MAX_SCALE);
            return NGX_DECLINED;
        }
    }

    if (err != NULL) {
        *ngx_http_callhq_json_where(where, sizeof(where) - 1, p, at) = '\0';

        *rc = ngx_http_callhq_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "body is not valid JSON: %s (%s)",
                                         err, where);
        return NGX_DECLINED;
    }

    while (*p != '{' && *p != '[') {
        p++;
    }

    if (*p != '{') {
        *rc = ngx_http_callhq_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "body must be a JSON object");
        return NGX_DECLINED;
    }

    /* a second scan only for the bodies that may have some */
    if (ngx_strstrn(body->data, "variableValues",
                    sizeof("variableValues") - 2)
        != NULL)
    {
        return ngx_http_callhq_check_variables(r, body, rc);
    }

    return NGX_OK;
}


/*
 * assistantOverrides.variableValues (POST /session, POST /chat) fill
 * {{name}} in the system prompts: their number and sizes are bounded
 * here, before PostgreSQL builds anything of them.  The SQL checks say
 * what else is wrong with them.
 */

static ngx_int_t
ngx_http_callhq_check_variables(ngx_http_request_t *r, ngx_str_t *body,
    ngx_int_t *rc)
{
    size_t                        max;
    ngx_str_t                     name;
    ngx_uint_t                    n;
    ngx_http_callhq_loc_conf_t   *lcf;
    ngx_http_callhq_json_want_t   want;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    want.path = ngx_http_callhq_variables;

    if (ngx_http_callhq_json_check(body->data, body->data + body->len, NULL,
                                   &want, 1)
        != NULL)
    {
        return NGX_OK;
    }

    ngx_http_callhq_json_members(&want, &n, &max, &name);

    if (n > lcf->max_variables) {
        *rc = ngx_http_callhq_send_error(r, NGX_HTTP_BAD_REQUEST,
                  "assistantOverrides.variableValues has %ui variables, "
                  "more than %ui (callhq_max_variables)",
                  n, lcf->max_variables);
        return NGX_DECLINED;
    }

    if (max > lcf->max_variable_size) {
        *rc = ngx_http_callhq_send_error(r, NGX_HTTP_BAD_REQUEST,
                  "assistantOverrides.variableValues.%V is %uz bytes, "
                  "more than %uz (callhq_max_variable_size)",
                  &name, max, lcf->max_variable_size);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_http_callhq_query(ngx_http_request_t *r, ngx_http_callhq_ctx_t *ctx,
    ngx_http_callhq_route_t *route, ngx_str_t *body)
{
    u_char                      *id, *p;
    ngx_int_t                    rc;
    ngx_str_t                    args, error;
    ngx_http_callhq_pg_query_t  *q;
    ngx_http_callhq_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    rc = ngx_http_callhq_args_json(r->pool, &r->args, &args, &error);

    if (rc == NGX_DECLINED) {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_BAD_REQUEST, "%V",
                                        &error);
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    q = &ctx->query;
    q->stmt = &route->stmt;
    q->values[0] = (char *) ctx->key_hash;
    q->values[1] = NULL;
    q->values[2] = (char *) args.data;
    q->values[3] = (char *) body->data;
    q->values[4] = (char *) lcf->opts.data;
    q->handler = ngx_http_callhq_query_done;

    /*
     * libpq wants NUL-terminated text; the rest is terminated already.
     * A path with two ids gives "{id}/{item}".
     */
    if (ctx->id.len) {
        id = ngx_pnalloc(r->pool, ctx->id.len + 1 + ctx->item.len + 1);
        if (id == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        p = ngx_cpymem(id, ctx->id.data, ctx->id.len);

        if (ctx->item.len) {
            *p++ = '/';
            p = ngx_cpymem(p, ctx->item.data, ctx->item.len);
        }

        *p = '\0';
        q->values[1] = (char *) id;
    }

    ngx_http_callhq_run_query(r, ctx);
}


static void
ngx_http_callhq_query_done(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = q->data;
    c = r->connection;

    if (res == NULL) {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "%s", q->error);

    } else {
        rc = ngx_http_callhq_send_result(r, res);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_callhq_send_result(ngx_http_request_t *r, PGresult *res)
{
    ngx_int_t               status;
    ngx_str_t               body;
    ngx_http_callhq_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);

    if (PQresultStatus(res) == PGRES_TUPLES_OK
        && PQntuples(res) == 1 && PQnfields(res) == 2)
    {
        status = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                          PQgetlength(res, 0, 0));

        body.len = PQgetlength(res, 0, 1);
        body.data = ngx_pnalloc(r->pool, body.len);
        if (status == NGX_ERROR || body.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(body.data, PQgetvalue(res, 0, 1), body.len);
        ctx->status = status;

        /* POST /session, and callhq_openai's POST /conversations */
        if ((status == NGX_HTTP_CREATED
             && ctx->query.stmt->index == NGX_HTTP_CALLHQ_STMT_SESSION_CREATE)
            || (status == NGX_HTTP_OK
                && ctx->query.stmt->index == NGX_HTTP_CALLHQ_STMT_CONV_CREATE))
        {
            ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_SESSIONS_CREATED);
        }

        return ngx_http_callhq_send_json(r, status, &body);
    }

    return ngx_http_callhq_send_pg_error(r, res);
}


/*
 * "/<resource>", "/<resource>/<id>", "/<resource>/<id>/<sub>" or
 * "/<resource>/<id>/<sub>/<item>", relative to a prefix location;
 * regular expression locations see the whole URI.
 */

static ngx_int_t
ngx_http_callhq_parse_path(ngx_http_request_t *r, ngx_http_callhq_ctx_t *ctx)
{
    u_char                    *p, *last, *slash;
    ngx_str_t                 *seg[4];
    ngx_uint_t                 n;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->uri.data;
    last = p + r->uri.len;

#if (NGX_PCRE)
    if (clcf->regex == NULL)
#endif
    {
        if (clcf->name.len <= r->uri.len
            && ngx_strncmp(p, clcf->name.data, clcf->name.len) == 0)
        {
            p += clcf->name.len;
        }
    }

    while (p < last && *p == '/') {
        p++;
    }

    while (last > p && last[-1] == '/') {
        last--;
    }

    if (p == last) {
        return NGX_DECLINED;
    }

    seg[0] = &ctx->resource;
    seg[1] = &ctx->id;
    seg[2] = &ctx->sub;
    seg[3] = &ctx->item;

    for (n = 0; /* void */; n++) {
        if (n == 4) {
            return NGX_DECLINED;
        }

        slash = ngx_strlchr(p, last, '/');

        seg[n]->data = p;
        seg[n]->len = (slash ? slash : last) - p;

        /* "a//b" names nothing */
        if (seg[n]->len == 0) {
            return NGX_DECLINED;
        }

        if (slash == NULL) {
            return NGX_OK;
        }

        p = slash + 1;
    }
}


/* the route's path is the request's: method aside */

static ngx_uint_t
ngx_http_callhq_route_path(ngx_http_callhq_route_t *rt,
    ngx_http_callhq_ctx_t *ctx)
{
    size_t      len;
    ngx_uint_t  item;

    item = (ctx->id.len ? 1 : 0) + (ctx->item.len ? 1 : 0);
    len = ctx->resource.len + (ctx->sub.len ? 1 + ctx->sub.len : 0);

    /* "<resource>/<sub>" for /<resource>/{id}/<sub>[/{item}] */
    return rt->item == item
           && rt->resource.len == len
           && ngx_strncmp(rt->resource.data, ctx->resource.data,
                          ctx->resource.len) == 0
           && (ctx->sub.len == 0
               || (rt->resource.data[ctx->resource.len] == '/'
                   && ngx_strncmp(rt->resource.data + ctx->resource.len + 1,
                                  ctx->sub.data, ctx->sub.len) == 0));
}


static ngx_http_callhq_route_t *
ngx_http_callhq_route(ngx_http_request_t *r, ngx_http_callhq_ctx_t *ctx)
{
    ngx_http_callhq_route_t   *rt, **table;

    for (table = ctx->openai ? ngx_http_callhq_openai_tables
                             : ngx_http_callhq_api_tables;
         *table; table++)
    {
        for (rt = *table; rt->resource.len; rt++) {
            if (rt->method == r->method
                && ngx_http_callhq_route_path(rt, ctx))
            {
                return rt;
            }
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_callhq_not_allowed(ngx_http_request_t *r, ngx_http_callhq_ctx_t *ctx)
{
    u_char                   *p;
    ngx_str_t                 value;
    ngx_uint_t                i, allowed;
    ngx_table_elt_t          *h;
    ngx_http_callhq_route_t  *rt, **table;

    allowed = 0;

    for (table = ctx->openai ? ngx_http_callhq_openai_tables
                             : ngx_http_callhq_api_tables;
         *table; table++)
    {
        for (rt = *table; rt->resource.len; rt++) {
            if (ngx_http_callhq_route_path(rt, ctx)) {
                allowed |= rt->method;
            }
        }
    }

    if (allowed == 0) {
        return ngx_http_callhq_send_error(r, NGX_HTTP_NOT_FOUND,
                                          "Cannot %V %V", &r->method_name,
                                          &r->uri);
    }

    p = ngx_pnalloc(r->pool, sizeof("GET, POST, PATCH, DELETE") - 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value.data = p;

    for (i = 0; i < sizeof(ngx_http_callhq_method_bits)
                    / sizeof(ngx_uint_t); i++)
    {
        if (allowed & ngx_http_callhq_method_bits[i]) {
            if (p != value.data) {
                *p++ = ',';
                *p++ = ' ';
            }

            p = ngx_cpymem(p, ngx_http_callhq_methods[i].data,
                           ngx_http_callhq_methods[i].len);
        }
    }

    value.len = p - value.data;

    h = ngx_http_callhq_add_header(&r->headers_out.headers, "Allow", "allow",
                                   &value);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_callhq_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                      "%V is not allowed on %V (allowed: %V)",
                                      &r->method_name, &r->uri, &h->value);
}


/*
 * Authorization: Bearer <key>; the SQL function looks up its SHA-256.
 * Returns NULL, or why the request is not authorized.
 *
 * Timing: the keys cached here are compared in constant time
 * (CRYPTO_memcmp: only the length shows), so how long a guess takes
 * tells nothing of how much of it is right.  PostgreSQL finds the hash
 * by an index, a comparison that stops at the first byte that differs:
 * that could show how many leading bytes of SHA-256(guess) some stored
 * hash shares, which brings a guess no nearer to a key (a key is 160
 * random bits, and a hash gives no way back to it).
 */

static const char *
ngx_http_callhq_authorize(ngx_http_request_t *r, ngx_http_callhq_ctx_t *ctx)
{
    u_char                 *p, *last;
    unsigned int            len;
    ngx_uint_t              i;
    ngx_table_elt_t        *h;
    ngx_http_callhq_key_t  *k;
    u_char                  md[EVP_MAX_MD_SIZE];

    h = r->headers_in.authorization;

    if (h == NULL) {
        return "Authorization header with \"Bearer <api key>\" is required";
    }

    p = h->value.data;
    last = p + h->value.len;

    if (h->value.len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(p, (u_char *) "Bearer ", sizeof("Bearer ") - 1)
           != 0)
    {
        return "Authorization must be \"Bearer <api key>\"";
    }

    p += sizeof("Bearer ") - 1;

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    if (p == last) {
        return "API key is empty";
    }

    for (i = 0; i < NGX_HTTP_CALLHQ_KEYS; i++) {
        k = &ngx_http_callhq_keys[i];

        if (k->len == (size_t) (last - p)
            && CRYPTO_memcmp(k->key, p, k->len) == 0)
        {
            ngx_memcpy(ctx->key_hash, k->hash, sizeof(k->hash));
            return NULL;
        }
    }

    if (EVP_Digest(p, last - p, md, &len, EVP_sha256(), NULL) != 1) {
        return "API key could not be checked";
    }

    ctx->key_hash[0] = '\\';
    ctx->key_hash[1] = 'x';
    *ngx_hex_dump(ctx->key_hash + 2, md, len) = '\0';

    if (last - p <= NGX_HTTP_CALLHQ_KEY_MAX) {
        k = &ngx_http_callhq_keys[ngx_http_callhq_keys_next++
                                  % NGX_HTTP_CALLHQ_KEYS];
        k->len = last - p;
        ngx_memcpy(k->key, p, k->len);
        ngx_memcpy(k->hash, ctx->key_hash, sizeof(k->hash));
    }

    return NULL;
}


ngx_int_t
ngx_http_callhq_api_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_callhq_request_body_filter;

    return NGX_OK;
}


/*
 * Keeps the body in memory as it is read (ctx->body), and passes nothing
 * of it on to nginx's save filter, so that it is never spooled to a
 * temporary file, which would then be read back with a blocking read,
 * whatever client_body_buffer_size is: callhq_max_body_size bounds it.
 * Past that size the rest is read and dropped, and the body handler
 * answers 413 in JSON.
 */

static ngx_int_t
ngx_http_callhq_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t              *cl, *out, **ll;
    ngx_http_callhq_ctx_t    *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);

    if (ctx == NULL || !ctx->body_reading) {
        return ngx_http_next_request_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        ctx->body_size += ngx_buf_size(cl->buf);
    }

    if (ctx->body_size > (off_t) ctx->body_limit && !ctx->body_too_large) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "callhq: request body is over callhq_max_body_size "
                      "%uz, dropping the rest", ctx->body_limit);

        ctx->body_too_large = 1;

        /* what was kept goes too: nothing of this body is used */
        ctx->body.len = 0;
    }

    out = NULL;
    ll = &out;

    for (cl = in; cl; cl = cl->next) {
        if (!ctx->body_too_large && ngx_buf_size(cl->buf)) {
            if (ngx_http_callhq_text_add(r->pool, &ctx->body, cl->buf->pos,
                                         cl->buf->last - cl->buf->pos)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        /* consumed: nginx may read the next part into the buffer */
        cl->buf->pos = cl->buf->last;

        if (cl->buf->last_buf) {
            /* the end still goes on: it ends the reading */
            *ll = cl;
            ll = &cl->next;
        }
    }

    *ll = NULL;

    return ngx_http_next_request_body_filter(r, out);
}
