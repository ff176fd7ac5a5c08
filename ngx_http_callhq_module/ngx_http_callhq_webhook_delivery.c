
/*
 * ngx_http_callhq_module: one webhook delivery, one outbox row's attempt,
 * with a pool of its own: resolve (nginx's resolver), connect
 * (ngx_event_connect_peer), TLS (ngx_ssl_*), POST the signed body, read
 * the status line; callhq.webhook_done() then records the outcome and
 * schedules a retry.  The address is checked just before connecting
 * (ngx_http_callhq_webhook_url.c).
 *
 * A 'twilio.sms' row is a text (sms.sql): POSTed as a form to Twilio's
 * Messages resource under callhq_twilio_api_url, the operator's URL, not
 * checked as a tenant's is; HTTP Basic with the account SID and auth
 * token the claim read from the phone number.  Neither is logged.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"
#include "ngx_http_callhq_webhook.h"


static ngx_int_t ngx_http_callhq_webhook_copy(ngx_pool_t *pool,
    PGresult *res, int row, int col, ngx_str_t *out);
static const char *ngx_http_callhq_webhook_parse_url(
    ngx_http_callhq_webhook_delivery_t *d);
static ngx_int_t ngx_http_callhq_webhook_create_request(
    ngx_http_callhq_webhook_delivery_t *d);
static ngx_buf_t *ngx_http_callhq_webhook_request(
    ngx_http_callhq_webhook_delivery_t *d, size_t size);
static ngx_int_t ngx_http_callhq_webhook_twilio_url(
    ngx_http_callhq_webhook_delivery_t *d);
static ngx_int_t ngx_http_callhq_webhook_create_twilio(
    ngx_http_callhq_webhook_delivery_t *d);
static u_char *ngx_http_callhq_webhook_form(u_char *p, const char *name,
    json_t *value);
static ngx_int_t ngx_http_callhq_webhook_sign(
    ngx_http_callhq_webhook_delivery_t *d, ngx_str_t *ts, ngx_str_t *sig);
static size_t ngx_http_callhq_webhook_add_headers(
    ngx_http_callhq_webhook_delivery_t *d, json_t *headers, u_char *p);
static void ngx_http_callhq_webhook_resolve(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_callhq_webhook_connect(
    ngx_http_callhq_webhook_delivery_t *d, struct sockaddr *sockaddr,
    socklen_t socklen);
static void ngx_http_callhq_webhook_event(ngx_event_t *ev);
static void ngx_http_callhq_webhook_connected(
    ngx_http_callhq_webhook_delivery_t *d);
#if (NGX_SSL)
static void ngx_http_callhq_webhook_ssl_handshake(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_ssl_handshaked(ngx_connection_t *c);
#endif
static void ngx_http_callhq_webhook_send(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_read(
    ngx_http_callhq_webhook_delivery_t *d);
static ngx_int_t ngx_http_callhq_webhook_parse_status(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_timeout(ngx_event_t *ev);
static void ngx_http_callhq_webhook_fail(
    ngx_http_callhq_webhook_delivery_t *d, const char *fmt, ...);
static void ngx_http_callhq_webhook_finish(
    ngx_http_callhq_webhook_delivery_t *d, const char *error);
static void ngx_http_callhq_webhook_recorded(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_webhook_checked(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_webhook_release(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_close(
    ngx_http_callhq_webhook_delivery_t *d);
static u_char *ngx_http_callhq_webhook_log_error(ngx_log_t *log,
    u_char *buf, size_t len);
static void ngx_http_callhq_webhook_log_url(
    ngx_http_callhq_webhook_delivery_t *d);


static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_webhook_done_stmt = {
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_DONE, "callhq_webhook_done",
    "select callhq.webhook_done($1::bigint, $2::boolean, $3::text, "
    "$4::jsonb)",
    4
};

/* after a failure: did webhook_done() give up on the event? */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_webhook_state_stmt = {
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_STATE, "callhq_webhook_state",
    "select state from callhq.webhook_outbox where id = $1::bigint",
    1
};


void
ngx_http_callhq_webhook_start(ngx_http_callhq_webhook_t *wh, PGresult *res,
    int row)
{
    u_char                              *p;
    const char                          *err;
    ngx_str_t                            s;
    ngx_int_t                            n;
    ngx_msec_t                           max;
    ngx_pool_t                          *pool;
    ngx_http_callhq_webhook_delivery_t  *d;
    u_char                               why[256];

    pool = ngx_create_pool(2048, wh->log);
    if (pool == NULL) {
        return;
    }

    d = ngx_pcalloc(pool, sizeof(ngx_http_callhq_webhook_delivery_t));
    if (d == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    d->pool = pool;
    d->wh = wh;

    if (ngx_http_callhq_webhook_copy(pool, res, row, 0, &s) != NGX_OK) {
        ngx_destroy_pool(pool);
        return;
    }

    d->id = s.data;

    if (ngx_http_callhq_webhook_copy(pool, res, row, 1, &s) != NGX_OK
        || ngx_http_callhq_webhook_copy(pool, res, row, 2, &d->url) != NGX_OK
        || ngx_http_callhq_webhook_copy(pool, res, row, 3, &d->secret)
           != NGX_OK
        || ngx_http_callhq_webhook_copy(pool, res, row, 4, &d->headers)
           != NGX_OK
        || ngx_http_callhq_webhook_copy(pool, res, row, 6, &d->body)
           != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    d->webhook_id.len = sizeof("msg_") - 1 + s.len;
    d->webhook_id.data = ngx_pnalloc(pool, d->webhook_id.len);
    if (d->webhook_id.data == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    ngx_sprintf(d->webhook_id.data, "msg_%V", &s);

    if (ngx_strcmp(PQgetvalue(res, row, 9), "twilio.sms") == 0) {
        d->twilio = 1;

        if (ngx_http_callhq_webhook_twilio_url(d) != NGX_OK) {
            ngx_destroy_pool(pool);
            return;
        }
    }

    if (PQgetlength(res, row, 8) == NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN) {
        ngx_memcpy(d->org, PQgetvalue(res, row, 8),
                   NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN);
    }

    n = ngx_atoi((u_char *) PQgetvalue(res, row, 5),
                 PQgetlength(res, row, 5));
    d->timeout = (n > 0) ? (ngx_msec_t) n : 20000;

    /* the attempt must end, and be recorded, before its lease does */
    max = wh->conf->lease - ngx_min(wh->conf->lease / 2, 5000);

    if (d->timeout > max) {
        d->timeout = max;
    }

    n = ngx_atoi((u_char *) PQgetvalue(res, row, 7),
                 PQgetlength(res, row, 7));
    d->attempt = (n >= 0) ? n + 1 : 1;

    ngx_http_callhq_webhook_log_url(d);

    /* every line about this attempt says which event and where */
    d->log = *wh->log;
    d->log.handler = ngx_http_callhq_webhook_log_error;
    d->log.data = d;
    d->log.action = NULL;

    ngx_queue_insert_tail(&wh->deliveries, &d->queue);
    wh->in_flight++;
    wh->attempts++;
    d->start = ngx_current_msec;

    d->timer.handler = ngx_http_callhq_webhook_timeout;
    d->timer.data = d;
    d->timer.log = &d->log;
    d->timer.cancelable = 1;
    ngx_add_timer(&d->timer, d->timeout);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                   "callhq webhook: attempt %i, row %s, timeout %M",
                   d->attempt, d->id, d->timeout);

    /* rows written before the check, or with another callhq_webhook_allow */
    p = d->twilio ? NULL
                  : ngx_http_callhq_webhook_url_refused(wh->conf, d->url.data,
                                                        d->url.len, why,
                                                        why + sizeof(why));
    if (p) {
        ngx_http_callhq_webhook_fail(d, "the URL %*s", (size_t) (p - why),
                                     why);
        return;
    }

    err = ngx_http_callhq_webhook_parse_url(d);
    if (err) {
        ngx_http_callhq_webhook_finish(d, err);
        return;
    }

    if ((d->twilio ? ngx_http_callhq_webhook_create_twilio(d)
                   : ngx_http_callhq_webhook_create_request(d))
        != NGX_OK)
    {
        ngx_http_callhq_webhook_finish(d, "could not build the request");
        return;
    }

    if (d->u.naddrs) {
        ngx_http_callhq_webhook_connect(d, d->u.addrs[0].sockaddr,
                                        d->u.addrs[0].socklen);
        return;
    }

    ngx_http_callhq_webhook_resolve(d);
}


/* a column into the pool, NUL-terminated; NULL becomes the empty string */

static ngx_int_t
ngx_http_callhq_webhook_copy(ngx_pool_t *pool, PGresult *res, int row,
    int col, ngx_str_t *out)
{
    out->len = PQgetisnull(res, row, col) ? 0 : PQgetlength(res, row, col);

    out->data = ngx_pnalloc(pool, out->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    *ngx_cpymem(out->data, PQgetvalue(res, row, col), out->len) = '\0';

    return NGX_OK;
}


static const char *
ngx_http_callhq_webhook_parse_url(ngx_http_callhq_webhook_delivery_t *d)
{
    u_char     *p;
    ngx_url_t  *u;

    u = &d->u;

    if (d->url.len > 7 && ngx_strncasecmp(d->url.data, (u_char *) "http://", 7)
                          == 0)
    {
        u->url.data = d->url.data + 7;
        u->url.len = d->url.len - 7;
        u->default_port = 80;

    } else if (d->url.len > 8
               && ngx_strncasecmp(d->url.data, (u_char *) "https://", 8)
                  == 0)
    {
#if (NGX_SSL)
        u->url.data = d->url.data + 8;
        u->url.len = d->url.len - 8;
        u->default_port = 443;
        d->ssl = 1;
#else
        return "https is not supported by this nginx build";
#endif

    } else {
        return "the URL is not http:// or https://";
    }

    u->uri_part = 1;
    u->no_resolve = 1;

    /* "user:password@" would read as a host and a port */
    for (p = u->url.data; p < u->url.data + u->url.len; p++) {
        if (*p == '/' || *p == '?' || *p == '#') {
            break;
        }

        if (*p == '@') {
            return "user information in the URL is not supported";
        }
    }

    if (ngx_parse_url(d->pool, u) != NGX_OK) {
        return u->err ? u->err : "invalid URL";
    }

    /* the name for SNI and certificate checks */
    d->host = u->host;

    if (d->host.len > 2 && d->host.data[0] == '[') {
        d->host.data++;
        d->host.len -= 2;
        d->ip = 1;

    } else if (u->naddrs) {
        d->ip = 1;
    }

    p = ngx_pnalloc(d->pool, d->host.len + 1);
    if (p == NULL) {
        return "out of memory";
    }

    *ngx_cpymem(p, d->host.data, d->host.len) = '\0';
    d->host.data = p;

    /* "http://host?a=b" asks for "/?a=b" */
    if (u->uri.len == 0) {
        ngx_str_set(&d->uri, "/");

    } else if (u->uri.data[0] == '?') {
        d->uri.len = u->uri.len + 1;
        d->uri.data = ngx_pnalloc(d->pool, d->uri.len);
        if (d->uri.data == NULL) {
            return "out of memory";
        }

        d->uri.data[0] = '/';
        ngx_memcpy(d->uri.data + 1, u->uri.data, u->uri.len);

    } else {
        d->uri = u->uri;
    }

    /* a fragment is the client's own business */
    p = ngx_strlchr(d->uri.data, d->uri.data + d->uri.len, '#');
    if (p) {
        d->uri.len = p - d->uri.data;
    }

    return NULL;
}


static ngx_int_t
ngx_http_callhq_webhook_create_request(ngx_http_callhq_webhook_delivery_t *d)
{
    size_t      len;
    u_char     *p;
    json_t     *headers;
    ngx_buf_t  *b;
    ngx_str_t   ts, sig;
    u_char      tsbuf[NGX_TIME_T_LEN];

    ts.data = tsbuf;
    ts.len = ngx_sprintf(tsbuf, "%T", ngx_time()) - tsbuf;

    if (ngx_http_callhq_webhook_sign(d, &ts, &sig) != NGX_OK) {
        return NGX_ERROR;
    }

    headers = NULL;

    if (d->headers.len) {
        headers = json_loadb((char *) d->headers.data, d->headers.len, 0,
                             NULL);

        if (headers == NULL || !json_is_object(headers)) {
            ngx_log_error(NGX_LOG_WARN, &d->log, 0,
                          "callhq: webhook headers are not a JSON object, "
                          "ignored");
            json_decref(headers);
            headers = NULL;
        }
    }

    len = sizeof("Content-Type: application/json" CRLF) - 1
          + sizeof("Content-Length: " CRLF) - 1 + NGX_SIZE_T_LEN
          + sizeof("Connection: close" CRLF) - 1
          + sizeof("User-Agent: callhq-webhook" CRLF) - 1
          + sizeof("webhook-id: " CRLF) - 1 + d->webhook_id.len
          + sizeof("webhook-timestamp: " CRLF) - 1 + ts.len
          + sizeof("webhook-signature: " CRLF) - 1 + sig.len
          + ngx_http_callhq_webhook_add_headers(d, headers, NULL)
          + sizeof(CRLF) - 1
          + d->body.len;

    b = ngx_http_callhq_webhook_request(d, len);
    if (b == NULL) {
        json_decref(headers);
        return NGX_ERROR;
    }

    p = ngx_sprintf(b->last, "Content-Type: application/json" CRLF
                             "Content-Length: %uz" CRLF
                             "Connection: close" CRLF
                             "User-Agent: callhq-webhook" CRLF
                             "webhook-id: %V" CRLF
                             "webhook-timestamp: %V" CRLF,
                    d->body.len, &d->webhook_id, &ts);

    if (sig.len) {
        p = ngx_sprintf(p, "webhook-signature: %V" CRLF, &sig);
    }

    p += ngx_http_callhq_webhook_add_headers(d, headers, p);

    *p++ = CR; *p++ = LF;

    b->last = ngx_cpymem(p, d->body.data, d->body.len);

    json_decref(headers);

    d->request = b;

    return NGX_OK;
}


/* a request's buffer: its request line and Host, and size bytes more */

static ngx_buf_t *
ngx_http_callhq_webhook_request(ngx_http_callhq_webhook_delivery_t *d,
    size_t size)
{
    ngx_buf_t  *b;

    b = ngx_create_temp_buf(d->pool, sizeof("POST  HTTP/1.1" CRLF) - 1
                                     + d->uri.len
                                     + sizeof("Host: :65535" CRLF) - 1
                                     + d->u.host.len + size);
    if (b == NULL) {
        return NULL;
    }

    b->last = ngx_sprintf(b->last, "POST %V HTTP/1.1" CRLF, &d->uri);

    if (d->u.no_port) {
        b->last = ngx_sprintf(b->last, "Host: %V" CRLF, &d->u.host);

    } else {
        b->last = ngx_sprintf(b->last, "Host: %V:%d" CRLF, &d->u.host,
                              (int) d->u.port);
    }

    return b;
}


/* callhq_twilio_api_url and the row's path under it */

static ngx_int_t
ngx_http_callhq_webhook_twilio_url(ngx_http_callhq_webhook_delivery_t *d)
{
    u_char     *p, *url;
    ngx_str_t  *api;

    api = &d->wh->conf->twilio_api_url;

    url = ngx_pnalloc(d->pool, api->len + d->url.len + 1);
    if (url == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(url, api->data, api->len);
    p = ngx_cpymem(p, d->url.data, d->url.len);
    *p = '\0';

    d->url.data = url;
    d->url.len = p - url;

    return NGX_OK;
}


/*
 * POST .../Messages.json: From, To and Body as a form (every byte but the
 * unreserved ones escaped), HTTP Basic with "<account SID>:<auth token>".
 */

static ngx_int_t
ngx_http_callhq_webhook_create_twilio(ngx_http_callhq_webhook_delivery_t *d)
{
    size_t        len;
    u_char       *p, *form;
    json_t       *body, *from, *to, *text;
    ngx_buf_t    *b;
    ngx_str_t     auth;
    json_error_t  err;

    body = json_loadb((char *) d->body.data, d->body.len, 0, &err);

    from = json_object_get(body, "From");
    to = json_object_get(body, "To");
    text = json_object_get(body, "Body");

    if (!json_is_string(from) || !json_is_string(to) || !json_is_string(text))
    {
        ngx_log_error(NGX_LOG_ERR, &d->log, 0,
                      "callhq: a text without From, To or Body");
        json_decref(body);
        return NGX_ERROR;
    }

    /* an escaped byte is 3 */
    len = sizeof("From=&To=&Body=") - 1
          + 3 * (json_string_length(from) + json_string_length(to)
                 + json_string_length(text));

    form = ngx_pnalloc(d->pool, len);
    if (form == NULL) {
        json_decref(body);
        return NGX_ERROR;
    }

    p = ngx_http_callhq_webhook_form(form, "From=", from);
    p = ngx_http_callhq_webhook_form(p, "&To=", to);
    p = ngx_http_callhq_webhook_form(p, "&Body=", text);
    len = p - form;

    json_decref(body);

    auth.len = ngx_base64_encoded_length(d->secret.len);
    auth.data = ngx_pnalloc(d->pool, auth.len);
    if (auth.data == NULL) {
        return NGX_ERROR;
    }

    ngx_encode_base64(&auth, &d->secret);

    b = ngx_http_callhq_webhook_request(d,
              sizeof("Content-Type: application/x-www-form-urlencoded"
                     CRLF) - 1
              + sizeof("Content-Length: " CRLF) - 1 + NGX_SIZE_T_LEN
              + sizeof("Connection: close" CRLF) - 1
              + sizeof("User-Agent: callhq-sms" CRLF) - 1
              + sizeof("Accept: application/json" CRLF) - 1
              + sizeof("Authorization: Basic " CRLF) - 1 + auth.len
              + sizeof(CRLF) - 1 + len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(b->last,
                    "Content-Type: application/x-www-form-urlencoded" CRLF
                    "Content-Length: %uz" CRLF
                    "Connection: close" CRLF
                    "User-Agent: callhq-sms" CRLF
                    "Accept: application/json" CRLF
                    "Authorization: Basic %V" CRLF CRLF,
                    len, &auth);

    b->last = ngx_cpymem(p, form, len);

    d->request = b;

    return NGX_OK;
}


static u_char *
ngx_http_callhq_webhook_form(u_char *p, const char *name, json_t *value)
{
    p = ngx_cpymem(p, name, ngx_strlen(name));

    return (u_char *) ngx_escape_uri(p, (u_char *) json_string_value(value),
                                     json_string_length(value),
                                     NGX_ESCAPE_URI_COMPONENT);
}


/*
 * Standard Webhooks: "v1," + base64(HMAC-SHA256(key, id.ts.body)); the key
 * is the base64 after "whsec_", or the raw secret without that prefix.
 * No secret, no signature.
 */

static ngx_int_t
ngx_http_callhq_webhook_sign(ngx_http_callhq_webhook_delivery_t *d,
    ngx_str_t *ts, ngx_str_t *sig)
{
    u_char        *p;
    ngx_str_t      key, src, mac, msg;
    unsigned int   maclen;
    u_char         md[EVP_MAX_MD_SIZE];

    ngx_str_null(sig);

    if (d->secret.len == 0) {
        return NGX_OK;
    }

    key = d->secret;

    if (key.len > 6 && ngx_strncmp(key.data, "whsec_", 6) == 0) {
        src.data = key.data + 6;
        src.len = key.len - 6;

        key.data = ngx_pnalloc(d->pool, ngx_base64_decoded_length(src.len));
        if (key.data == NULL) {
            return NGX_ERROR;
        }

        if (ngx_decode_base64(&key, &src) != NGX_OK) {
            ngx_log_error(NGX_LOG_WARN, &d->log, 0,
                          "callhq: webhook secret is \"whsec_\" with "
                          "invalid base64, used as raw bytes");
            key = d->secret;
        }
    }

    msg.len = d->webhook_id.len + 1 + ts->len + 1 + d->body.len;
    msg.data = ngx_pnalloc(d->pool, msg.len);
    if (msg.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(msg.data, d->webhook_id.data, d->webhook_id.len);
    *p++ = '.';
    p = ngx_cpymem(p, ts->data, ts->len);
    *p++ = '.';
    ngx_memcpy(p, d->body.data, d->body.len);

    if (HMAC(EVP_sha256(), key.data, (int) key.len, msg.data, msg.len,
             md, &maclen)
        == NULL)
    {
        ngx_log_error(NGX_LOG_ERR, &d->log, 0, "callhq: HMAC() failed");
        return NGX_ERROR;
    }

    mac.data = md;
    mac.len = maclen;

    sig->data = ngx_pnalloc(d->pool, 3 + ngx_base64_encoded_length(maclen));
    if (sig->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sig->data, "v1,", 3);

    src.data = sig->data + 3;
    ngx_encode_base64(&src, &mac);
    sig->len = 3 + src.len;

    return NGX_OK;
}


/*
 * The assistant's server.headers: sizes them when p is NULL, writes them
 * otherwise.  Names that are not tokens, values with control characters
 * and the headers the module owns are left out.
 */

static size_t
ngx_http_callhq_webhook_add_headers(ngx_http_callhq_webhook_delivery_t *d,
    json_t *headers, u_char *p)
{
    size_t       len, size, i, n;
    u_char       c, *start;
    json_t      *value;
    const char  *name, *v;

    static u_char  token[] = "!#$%&'*+-.^_`|~";
    static char   *own[] = {
        "host", "content-type", "content-length", "connection",
        "transfer-encoding", "webhook-id", "webhook-timestamp",
        "webhook-signature", "user-agent", NULL
    };

    if (headers == NULL) {
        return 0;
    }

    start = p;
    size = 0;

    json_object_foreach(headers, name, value) {

        len = ngx_strlen(name);

        if (len == 0 || !json_is_string(value)) {
            goto skip;
        }

        for (i = 0; i < len; i++) {
            c = (u_char) name[i];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9')
                  || ngx_strlchr(token, token + sizeof(token) - 1, c)))
            {
                goto skip;
            }
        }

        for (i = 0; own[i]; i++) {
            if (ngx_strcasecmp((u_char *) name, (u_char *) own[i]) == 0) {
                goto skip;
            }
        }

        v = json_string_value(value);
        n = json_string_length(value);

        for (i = 0; i < n; i++) {
            c = (u_char) v[i];

            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                goto skip;
            }
        }

        if (start == NULL) {
            size += len + sizeof(": " CRLF) - 1 + n;
            continue;
        }

        p = ngx_cpymem(p, name, len);
        *p++ = ':'; *p++ = ' ';
        p = ngx_cpymem(p, v, n);
        *p++ = CR; *p++ = LF;

        continue;

    skip:

        if (start == NULL) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                           "callhq webhook: header \"%s\" left out", name);
        }
    }

    return start ? (size_t) (p - start) : size;
}


static void
ngx_http_callhq_webhook_resolve(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_resolver_ctx_t                   *ctx;
    ngx_http_callhq_webhook_main_conf_t  *conf;

    conf = d->wh->conf;
    d->state = ngx_http_callhq_webhook_resolving;
    d->log.action = "resolving the webhook host";

    ctx = NGX_NO_RESOLVER;

    if (conf->resolver) {
        ctx = ngx_resolve_start(conf->resolver, NULL);
        if (ctx == NULL) {
            ngx_http_callhq_webhook_finish(d, "resolver failed");
            return;
        }
    }

    if (ctx == NGX_NO_RESOLVER) {
        ngx_http_callhq_webhook_fail(d, "no resolver defined to resolve %V "
                                     "(set \"resolver\" in the http block)",
                                     &d->host);
        return;
    }

    ctx->name = d->host;
    ctx->handler = ngx_http_callhq_webhook_resolved;
    ctx->data = d;
    ctx->timeout = ngx_min(conf->resolver_timeout, d->timeout);
    ctx->cancelable = 1;

    d->resolve = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* ngx_resolve_name() freed ctx */
        d->resolve = NULL;
        ngx_http_callhq_webhook_finish(d, "resolver failed");
    }
}


static void
ngx_http_callhq_webhook_resolved(ngx_resolver_ctx_t *ctx)
{
    socklen_t                            socklen;
    struct sockaddr                     *sockaddr;
    ngx_http_callhq_webhook_delivery_t  *d;

    d = ctx->data;

    if (ctx->state) {
        ngx_http_callhq_webhook_fail(d, "%V could not be resolved (%i: %s)",
                                     &ctx->name, ctx->state,
                                     ngx_resolver_strerror(ctx->state));
        return;
    }

    socklen = ctx->addrs[0].socklen;

    sockaddr = ngx_palloc(d->pool, socklen);
    if (sockaddr == NULL) {
        ngx_http_callhq_webhook_finish(d, "out of memory");
        return;
    }

    ngx_memcpy(sockaddr, ctx->addrs[0].sockaddr, socklen);
    ngx_inet_set_port(sockaddr, d->u.port);

    ngx_resolve_name_done(ctx);
    d->resolve = NULL;

    ngx_http_callhq_webhook_connect(d, sockaddr, socklen);
}


static void
ngx_http_callhq_webhook_connect(ngx_http_callhq_webhook_delivery_t *d,
    struct sockaddr *sockaddr, socklen_t socklen)
{
    ngx_int_t          rc;
    const char        *what;
    ngx_connection_t  *c;
    u_char             text[NGX_SOCKADDR_STRLEN];

    /* what a name resolves to now, not what it did when it was checked */
    what = d->twilio ? NULL
                     : ngx_http_callhq_webhook_addr_refused(d->wh->conf,
                                                            sockaddr);

    if (what) {
        ngx_http_callhq_webhook_fail(d, "%V is %s (%*s), refused",
                                     &d->host, what,
                                     ngx_sock_ntop(sockaddr, socklen, text,
                                                   NGX_SOCKADDR_STRLEN, 0),
                                     text);
        return;
    }

    d->state = ngx_http_callhq_webhook_connecting;
    d->log.action = "connecting to the webhook receiver";

    d->peer.sockaddr = sockaddr;
    d->peer.socklen = socklen;
    d->peer.name = &d->u.host;
    d->peer.get = ngx_event_get_peer;
    d->peer.log = &d->log;
    d->peer.log_error = NGX_ERROR_INFO;

    rc = ngx_event_connect_peer(&d->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        d->peer.connection = NULL;
        ngx_http_callhq_webhook_finish(d, "connect() failed");
        return;
    }

    c = d->peer.connection;
    c->data = d;
    c->pool = d->pool;
    c->read->handler = ngx_http_callhq_webhook_event;
    c->write->handler = ngx_http_callhq_webhook_event;

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_callhq_webhook_connected(d);
}


static void
ngx_http_callhq_webhook_event(ngx_event_t *ev)
{
    ngx_connection_t                    *c;
    ngx_http_callhq_webhook_delivery_t  *d;

    c = ev->data;
    d = c->data;

    switch (d->state) {

    case ngx_http_callhq_webhook_connecting:
        ngx_http_callhq_webhook_connected(d);
        return;

    case ngx_http_callhq_webhook_sending:
        if (ev->write) {
            ngx_http_callhq_webhook_send(d);
        }

        return;

    case ngx_http_callhq_webhook_reading:
        if (!ev->write) {
            ngx_http_callhq_webhook_read(d);
        }

        return;

    default:
        return;
    }
}


static void
ngx_http_callhq_webhook_connected(ngx_http_callhq_webhook_delivery_t *d)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;
    u_char             text[NGX_MAX_ERROR_STR];

    c = d->peer.connection;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        *ngx_strerror(err, text, sizeof(text) - 1) = '\0';
        ngx_http_callhq_webhook_fail(d, "connect() failed (%d: %s)", err,
                                     text);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                   "callhq webhook: connected to %V", &d->u.host);

#if (NGX_SSL)
    if (d->ssl) {
        ngx_http_callhq_webhook_ssl_handshake(d);
        return;
    }
#endif

    ngx_http_callhq_webhook_send(d);
}


#if (NGX_SSL)

static void
ngx_http_callhq_webhook_ssl_handshake(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_int_t                            rc;
    ngx_connection_t                    *c;
    X509_VERIFY_PARAM                   *param;
    ngx_http_callhq_webhook_main_conf_t  *conf;

    c = d->peer.connection;
    conf = d->wh->conf;

    d->state = ngx_http_callhq_webhook_handshaking;
    d->log.action = "SSL handshaking to the webhook receiver";

    if (ngx_ssl_create_connection(conf->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        ngx_http_callhq_webhook_finish(d, "SSL connection failed");
        return;
    }

    /* RFC 6066: no IP literals in SNI */
    if (!d->ip
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) d->host.data)
           == 0)
    {
        ngx_ssl_error(NGX_LOG_ERR, &d->log, 0,
                      "SSL_set_tlsext_host_name(\"%s\") failed",
                      d->host.data);
        ngx_http_callhq_webhook_finish(d, "SSL connection failed");
        return;
    }

    if (conf->ssl_verify) {
        /* OpenSSL checks the name with the chain: one verify result */
        param = SSL_get0_param(c->ssl->connection);

        if ((d->ip ? X509_VERIFY_PARAM_set1_ip_asc(param,
                                                   (char *) d->host.data)
                   : X509_VERIFY_PARAM_set1_host(param,
                                                 (char *) d->host.data,
                                                 d->host.len))
            == 0)
        {
            ngx_ssl_error(NGX_LOG_ERR, &d->log, 0,
                          "X509_VERIFY_PARAM_set1_host(\"%s\") failed",
                          d->host.data);
            ngx_http_callhq_webhook_finish(d, "SSL connection failed");
            return;
        }
    }

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_http_callhq_webhook_ssl_handshaked;
        return;
    }

    ngx_http_callhq_webhook_ssl_handshaked(c);
}


static void
ngx_http_callhq_webhook_ssl_handshaked(ngx_connection_t *c)
{
    long                                 rc;
    ngx_http_callhq_webhook_delivery_t  *d;

    d = c->data;

    if (!c->ssl->handshaked) {
        ngx_http_callhq_webhook_finish(d, "SSL handshake failed");
        return;
    }

    if (d->wh->conf->ssl_verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_http_callhq_webhook_fail(d, "SSL certificate verify error: "
                                         "(%l:%s)", rc,
                                         X509_verify_cert_error_string(rc));
            return;
        }
    }

    c->read->handler = ngx_http_callhq_webhook_event;
    c->write->handler = ngx_http_callhq_webhook_event;

    ngx_http_callhq_webhook_send(d);
}

#endif


static void
ngx_http_callhq_webhook_send(ngx_http_callhq_webhook_delivery_t *d)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = d->peer.connection;
    b = d->request;

    d->state = ngx_http_callhq_webhook_sending;
    d->log.action = "sending the webhook";

    /*
     * A text sent twice reaches a phone twice: a graceful exit does not
     * hand it back once it is sent (ngx_http_callhq_webhook_hand_back())
     * but waits for Twilio's answer, and records it.
     */
    if (d->twilio) {
        d->timer.cancelable = 0;
    }

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_callhq_webhook_finish(d, "send() failed");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_callhq_webhook_finish(d, "send() failed");
            return;
        }

        b->pos += n;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                   "callhq webhook: sent %uz bytes",
                   (size_t) (b->last - b->start));

    d->state = ngx_http_callhq_webhook_reading;
    d->log.action = "reading the webhook response";

    d->response = ngx_create_temp_buf(d->pool,
                                      NGX_HTTP_CALLHQ_WEBHOOK_RESPONSE_SIZE);
    if (d->response == NULL) {
        ngx_http_callhq_webhook_finish(d, "out of memory");
        return;
    }

    ngx_http_callhq_webhook_read(d);
}


/* only the status line matters: the connection closes after it */

static void
ngx_http_callhq_webhook_read(ngx_http_callhq_webhook_delivery_t *d)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = d->peer.connection;
    b = d->response;

    for ( ;; ) {
        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_callhq_webhook_finish(d, "recv() failed");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_callhq_webhook_finish(d, "recv() failed");
            return;
        }

        if (n == 0) {
            if (b->last > b->pos) {
                break;
            }

            ngx_http_callhq_webhook_finish(d, "the receiver closed the "
                                           "connection without a response");
            return;
        }

        b->last += n;

        if (ngx_strlchr(b->pos, b->last, LF) || b->last == b->end) {
            break;
        }
    }

    if (ngx_http_callhq_webhook_parse_status(d) != NGX_OK) {
        ngx_http_callhq_webhook_finish(d, "invalid response status line");
        return;
    }

    if (d->status >= 200 && d->status < 300) {
        ngx_http_callhq_webhook_finish(d, NULL);
        return;
    }

    ngx_http_callhq_webhook_fail(d, "%s answered %ui",
                                 d->twilio ? "Twilio" : "the receiver",
                                 d->status);
}


static ngx_int_t
ngx_http_callhq_webhook_parse_status(ngx_http_callhq_webhook_delivery_t *d)
{
    u_char  *p;

    p = d->response->pos;

    /* "HTTP/1.1 200" */
    if (d->response->last - p < 12
        || ngx_strncmp(p, "HTTP/", 5) != 0
        || p[5] < '0' || p[5] > '9' || p[6] != '.'
        || p[7] < '0' || p[7] > '9' || p[8] != ' '
        || p[9] < '1' || p[9] > '5'
        || p[10] < '0' || p[10] > '9'
        || p[11] < '0' || p[11] > '9')
    {
        return NGX_ERROR;
    }

    d->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

    return NGX_OK;
}


static void
ngx_http_callhq_webhook_timeout(ngx_event_t *ev)
{
    ngx_http_callhq_webhook_delivery_t  *d;

    d = ev->data;

    if (d->peer.connection) {
        d->peer.connection->timedout = 1;
    }

    ngx_http_callhq_webhook_fail(d, "timed out after %M ms", d->timeout);
}


static void
ngx_http_callhq_webhook_fail(ngx_http_callhq_webhook_delivery_t *d,
    const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;
    u_char    text[NGX_MAX_ERROR_STR];

    va_start(args, fmt);
    last = ngx_vslprintf(text, text + sizeof(text), fmt, args);
    va_end(args);

    p = ngx_pnalloc(d->pool, last - text + 1);
    if (p == NULL) {
        ngx_http_callhq_webhook_finish(d, "failed");
        return;
    }

    *ngx_cpymem(p, text, last - text) = '\0';

    ngx_http_callhq_webhook_finish(d, (char *) p);
}


/* the attempt is over, one way or the other: record it */

static void
ngx_http_callhq_webhook_finish(ngx_http_callhq_webhook_delivery_t *d,
    const char *error)
{
    ngx_http_callhq_webhook_t   *wh;
    ngx_http_callhq_pg_query_t  *q;

    wh = d->wh;

    ngx_http_callhq_webhook_close(d);

    d->error = error;
    d->log.action = NULL;

    if (d->twilio) {
        ngx_http_callhq_metrics_event(error ? NGX_HTTP_CALLHQ_M_SMS_FAILED
                                            : NGX_HTTP_CALLHQ_M_SMS_SENT);

    } else {
        ngx_http_callhq_metrics_webhook(error == NULL,
                                        ngx_current_msec - d->start);
    }

    if (error) {
        wh->failures++;
        ngx_log_error(NGX_LOG_WARN, &d->log, 0,
                      "callhq: webhook attempt %i failed: %s",
                      d->attempt, error);

    } else {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                       "callhq webhook: delivered, attempt %i, status %ui",
                       d->attempt, d->status);
    }

    d->state = ngx_http_callhq_webhook_recording;

    q = &d->query;
    q->stmt = &ngx_http_callhq_webhook_done_stmt;
    q->values[0] = (char *) d->id;
    q->values[1] = error ? "false" : "true";
    q->values[2] = (char *) error;
    q->values[3] = (char *) wh->conf->done_opts.data;

    /*
     * Twilio refuses a text for good with a 4xx but 429 (a number that
     * cannot take it, a customer who texted STOP, wrong credentials): it
     * goes dead now, and does not hold its session's next texts back.
     */
    if (d->twilio && error && d->status >= 400 && d->status < 500
        && d->status != 429)
    {
        q->values[3] = "{\"maxAgeSeconds\":0}";
    }

    q->handler = ngx_http_callhq_webhook_recorded;
    q->data = d;
    q->log = &d->log;

    /* may call the handler, which frees d, before it returns */
    ngx_http_callhq_pg_run(wh->mcf->pool, q);
}


static void
ngx_http_callhq_webhook_recorded(ngx_http_callhq_pg_query_t *q,
    PGresult *res)
{
    ngx_http_callhq_webhook_delivery_t  *d;

    d = q->data;

    if (res == NULL) {
        /* the lease ends and the row comes back: at least once */
        if (!ngx_http_callhq_webhook_exiting()) {
            ngx_log_error(NGX_LOG_WARN, &d->log, 0,
                          "callhq: webhook attempt could not be recorded: %s",
                          q->error);
        }

    } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_ERR, &d->log, 0,
                      "callhq: webhook attempt could not be recorded: %s %s",
                      PQresStatus(PQresultStatus(res)),
                      PQresultErrorMessage(res));

    } else if (d->error && !ngx_http_callhq_webhook_exiting()) {
        q->stmt = &ngx_http_callhq_webhook_state_stmt;
        q->handler = ngx_http_callhq_webhook_checked;

        ngx_http_callhq_pg_run(d->wh->mcf->pool, q);
        return;
    }

    ngx_http_callhq_webhook_release(d);
}


static void
ngx_http_callhq_webhook_checked(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_http_callhq_webhook_delivery_t  *d;

    d = q->data;

    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
        && ngx_strcmp(PQgetvalue(res, 0, 0), "dead") == 0)
    {
        ngx_log_error(NGX_LOG_INFO, &d->log, 0,
                      "callhq: webhook dead-lettered after %i attempts, "
                      "the last: %s", d->attempt, d->error);
    }

    ngx_http_callhq_webhook_release(d);
}


/* a slot is free: claim again if a claim is owed */

static void
ngx_http_callhq_webhook_release(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_http_callhq_webhook_t  *wh;

    wh = d->wh;

    ngx_http_callhq_webhook_free(d);

    if (wh->again && !wh->claiming && !ngx_http_callhq_webhook_exiting()) {
        ngx_post_event(&wh->tick, &ngx_posted_events);
    }
}


/* lets go of the network side: resolver, connection, timer */

static void
ngx_http_callhq_webhook_close(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_connection_t  *c;

    if (d->timer.timer_set) {
        ngx_del_timer(&d->timer);
    }

    if (d->resolve) {
        ngx_resolve_name_done(d->resolve);
        d->resolve = NULL;
    }

    c = d->peer.connection;

    if (c == NULL) {
        return;
    }

    d->peer.connection = NULL;

#if (NGX_SSL)
    if (c->ssl) {
        /* close_notify, if it can go at once; never wait for the peer's */
        c->ssl->no_wait_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            c->ssl->no_send_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
    }
#endif

    ngx_close_connection(c);
}


void
ngx_http_callhq_webhook_free(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_http_callhq_webhook_t  *wh;

    wh = d->wh;

    ngx_http_callhq_webhook_close(d);

    ngx_queue_remove(&d->queue);
    wh->in_flight--;

    ngx_destroy_pool(d->pool);
}


static u_char *
ngx_http_callhq_webhook_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                              *p;
    ngx_http_callhq_webhook_delivery_t  *d;

    d = log->data;
    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
    }

    return ngx_snprintf(p, len, ", webhook: %V, url: \"%V\"",
                        &d->webhook_id, &d->log_url);
}


/*
 * The URL as logs show it: a query string or user information may hold a
 * tenant's credentials ("?token=..."), so both are left out.
 */

static void
ngx_http_callhq_webhook_log_url(ngx_http_callhq_webhook_delivery_t *d)
{
    u_char  *p, *end, *host, *path, *at;

    p = d->url.data;
    end = p + d->url.len;

    for (path = p; path < end; path++) {
        if (*path == '?' || *path == '#') {
            end = path;
            break;
        }
    }

    host = ngx_strlcasestrn(p, end, (u_char *) "://", 3 - 1);
    host = host ? host + 3 : p;

    path = ngx_strlchr(host, end, '/');
    if (path == NULL) {
        path = end;
    }

    at = NULL;

    for (p = host; p < path; p++) {
        if (*p == '@') {
            at = p;
        }
    }

    d->log_url.data = d->url.data;
    d->log_url.len = end - d->url.data;

    if (at == NULL) {
        return;
    }

    p = ngx_pnalloc(d->pool, d->log_url.len);
    if (p == NULL) {
        d->log_url.len = host - d->url.data;
        return;
    }

    d->log_url.data = p;
    p = ngx_cpymem(p, d->url.data, host - d->url.data);
    p = ngx_cpymem(p, at + 1, end - (at + 1));
    d->log_url.len = p - d->log_url.data;
}
