
/*
 * ngx_http_callhq_module: the SMS channel's inbound texts, Twilio's
 * Messaging webhook (location directive callhq_sms_twilio).
 *
 * A text's way: the form body is read into memory (api.c's request body
 * filter), parsed, and the number texted (To) is looked up; its auth
 * token checks X-Twilio-Signature (base64 HMAC-SHA1 of the URL Twilio
 * called and each parameter's name and value, sorted by name) before
 * anything else is done.  Then the text is a chat like any other
 * (ngx_http_callhq_chat.c), begun by callhq.sms_begin in the customer's
 * session of (number, From), and answered in TwiML
 * (ngx_http_callhq_twiml.c).  sms_begin keeps each MessageSid's chat: a
 * webhook sent again answers with the reply already made, and waits for
 * it while it is being made.  A model that fails is an apology, and
 * nothing recorded.
 *
 * Twilio waits 15 s for an answer.  A model still busy after
 * callhq_sms_reply_timeout is answered for with an empty <Response/>;
 * the chat goes on, and is recorded with "smsSend": true, which queues
 * its reply in the webhook outbox for Twilio's REST API
 * (ngx_http_callhq_webhook_delivery.c sends it).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


typedef struct {
    ngx_flag_t                     enable;
    ngx_http_complex_value_t      *public_url;
    ngx_http_complex_value_t      *port_url;   /* with the Host's port */
    ngx_str_t                      error_message;
    ngx_str_t                      fallback_message;
    ngx_msec_t                     reply_timeout;
} ngx_http_callhq_sms_loc_conf_t;


typedef struct {
    ngx_array_t                    params;     /* of ngx_keyval_t, sorted */
    ngx_str_t                      form;       /* To, From, .. as JSON */
    ngx_event_t                    timer;      /* callhq_sms_reply_timeout */
} ngx_http_callhq_sms_ctx_t;


static ngx_int_t ngx_http_callhq_sms_handler(ngx_http_request_t *r);
static void ngx_http_callhq_sms_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_callhq_sms_parse(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx, ngx_str_t *body);
static ngx_int_t ngx_http_callhq_sms_cmp(const void *one, const void *two);
static ngx_str_t *ngx_http_callhq_sms_param(ngx_http_callhq_sms_ctx_t *sctx,
    char *name);
static ngx_int_t ngx_http_callhq_sms_form(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx);
static void ngx_http_callhq_sms_number(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static ngx_int_t ngx_http_callhq_sms_start_timer(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx);
static void ngx_http_callhq_sms_late(ngx_event_t *ev);
static void ngx_http_callhq_sms_cleanup(void *data);
static void ngx_http_callhq_sms_apology(ngx_http_callhq_chat_t *chat,
    ngx_str_t *text);
static void ngx_http_callhq_sms_apologized(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static ngx_int_t ngx_http_callhq_sms_signed(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx, char *token);
static ngx_int_t ngx_http_callhq_sms_signed_url(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx, char *token,
    ngx_http_complex_value_t *cv, ngx_str_t *got);
static ngx_http_complex_value_t *ngx_http_callhq_sms_url(ngx_conf_t *cf,
    ngx_str_t *value);
static void *ngx_http_callhq_sms_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_callhq_sms_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_callhq_sms_twilio(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_sms_number_stmt = {
    NGX_HTTP_CALLHQ_STMT_SMS_NUMBER, "callhq_sms_number",
    "select id, auth_token, sms_enabled, assistant_id, fallback_message "
    "from callhq.sms_number($1::text)",
    1
};

/* as callhq.chat_begin's, which chat.c reads */
ngx_http_callhq_pg_stmt_t  ngx_http_callhq_sms_begin_stmt = {
    NGX_HTTP_CALLHQ_STMT_SMS_BEGIN, "callhq_sms_begin",
    "select state, record, params, messages, chat_id, session_id, org_id, "
    "model from callhq.sms_begin($1::bytea, $2::jsonb, $3::jsonb)",
    3
};

/* a late chat's apology, texted as its reply would have been */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_sms_apology_stmt = {
    NGX_HTTP_CALLHQ_STMT_SMS_APOLOGY, "callhq_sms_apology",
    "select callhq.sms_reply($1::jsonb, ($1::jsonb->>'sessionId')::uuid, "
    "$2::text)",
    2
};


static ngx_command_t  ngx_http_callhq_sms_commands[] = {

    { ngx_string("callhq_sms_twilio"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_callhq_sms_twilio,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("callhq_sms_public_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_sms_loc_conf_t, public_url),
      NULL },

    { ngx_string("callhq_sms_error_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_sms_loc_conf_t, error_message),
      NULL },

    { ngx_string("callhq_sms_fallback_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_sms_loc_conf_t, fallback_message),
      NULL },

    { ngx_string("callhq_sms_reply_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_sms_loc_conf_t, reply_timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_callhq_sms_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_callhq_sms_create_loc_conf,   /* create location configuration */
    ngx_http_callhq_sms_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_callhq_sms_module = {
    NGX_MODULE_V1,
    &ngx_http_callhq_sms_module_ctx,       /* module context */
    ngx_http_callhq_sms_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_callhq_sms_signature =
    ngx_string("X-Twilio-Signature");


static ngx_int_t
ngx_http_callhq_sms_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_callhq_ctx_t       *ctx;
    ngx_http_callhq_loc_conf_t  *lcf;

    if (r->method != NGX_HTTP_POST) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    if (r->headers_in.content_length_n > (off_t) lcf->max_body_size) {
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_callhq_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_callhq_module);

    /* read into memory by api.c's request body filter, never to a file */
    ctx->body_limit = lcf->max_body_size;
    ctx->body_reading = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_callhq_sms_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_callhq_sms_body(ngx_http_request_t *r)
{
    ngx_str_t                  body, *to;
    ngx_http_callhq_ctx_t     *ctx;
    ngx_http_callhq_sms_ctx_t *sctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);

    if (ctx->body_too_large) {
        ngx_http_finalize_request(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);
        return;
    }

    sctx = ngx_pcalloc(r->pool, sizeof(ngx_http_callhq_sms_ctx_t));
    if (sctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_set_ctx(r, sctx, ngx_http_callhq_sms_module);

    body.data = ctx->body.data;
    body.len = ctx->body.len;

    if (ngx_http_callhq_sms_parse(r, sctx, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    to = ngx_http_callhq_sms_param(sctx, "To");

    if (to == NULL || ngx_http_callhq_sms_param(sctx, "From") == NULL
        || ngx_http_callhq_sms_param(sctx, "MessageSid") == NULL)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "callhq: SMS webhook without To, From or MessageSid");
        ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);
        return;
    }

    ctx->query.stmt = &ngx_http_callhq_sms_number_stmt;
    ctx->query.values[0] = ngx_http_callhq_param(r->pool, to->data, to->len,
                                                 0);
    ctx->query.handler = ngx_http_callhq_sms_number;

    if (ctx->query.values[0] == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_callhq_run_query(r, ctx);
}


/*
 * name=value&..., form-encoded: '+' is a blank, %XX a byte.  The pairs
 * are kept sorted by name (then value), the order the signature needs.
 */

static ngx_int_t
ngx_http_callhq_sms_parse(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx, ngx_str_t *body)
{
    u_char        *p, *end, *amp, *eq, *q, *src, *dst;
    ngx_str_t     *s;
    ngx_uint_t     i;
    ngx_keyval_t  *kv;

    if (ngx_array_init(&sctx->params, r->pool, 16, sizeof(ngx_keyval_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = body->data;
    end = p + body->len;

    while (p < end) {
        amp = ngx_strlchr(p, end, '&');
        if (amp == NULL) {
            amp = end;
        }

        if (amp == p) {
            p++;
            continue;
        }

        kv = ngx_array_push(&sctx->params);
        if (kv == NULL) {
            return NGX_ERROR;
        }

        eq = ngx_strlchr(p, amp, '=');

        kv->key.data = p;
        kv->key.len = (eq ? eq : amp) - p;
        kv->value.data = eq ? eq + 1 : amp;
        kv->value.len = eq ? amp - eq - 1 : 0;

        for (i = 0; i < 2; i++) {
            s = i ? &kv->value : &kv->key;

            dst = ngx_pnalloc(r->pool, s->len + 1);
            if (dst == NULL) {
                return NGX_ERROR;
            }

            for (q = s->data; q < s->data + s->len; q++) {
                if (*q == '+') {
                    *q = ' ';
                }
            }

            src = s->data;
            q = dst;
            ngx_unescape_uri(&q, &src, s->len, 0);
            *q = '\0';

            s->data = dst;
            s->len = q - dst;
        }

        p = amp + 1;
    }

    ngx_sort(sctx->params.elts, sctx->params.nelts, sizeof(ngx_keyval_t),
             ngx_http_callhq_sms_cmp);

    return NGX_OK;
}


static ngx_int_t
ngx_http_callhq_sms_cmp(const void *one, const void *two)
{
    ngx_int_t            rc;
    const ngx_keyval_t  *a = one, *b = two;

    rc = ngx_memn2cmp(a->key.data, b->key.data, a->key.len, b->key.len);

    if (rc == 0) {
        rc = ngx_memn2cmp(a->value.data, b->value.data, a->value.len,
                          b->value.len);
    }

    return rc;
}


static ngx_str_t *
ngx_http_callhq_sms_param(ngx_http_callhq_sms_ctx_t *sctx, char *name)
{
    size_t         len;
    ngx_uint_t     i;
    ngx_keyval_t  *kv;

    kv = sctx->params.elts;
    len = ngx_strlen(name);

    for (i = 0; i < sctx->params.nelts; i++) {
        if (kv[i].key.len == len
            && ngx_strncmp(kv[i].key.data, name, len) == 0)
        {
            return &kv[i].value;
        }
    }

    return NULL;
}


/* the number is known: the signature, then the chat */

static void
ngx_http_callhq_sms_number(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_int_t                        rc;
    ngx_str_t                        text;
    ngx_connection_t                *c;
    ngx_http_request_t              *r;
    ngx_http_callhq_ctx_t           *ctx;
    ngx_http_callhq_sms_ctx_t       *sctx;
    ngx_http_callhq_sms_loc_conf_t  *slcf;

    r = q->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    sctx = ngx_http_get_module_ctx(r, ngx_http_callhq_sms_module);
    slcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_sms_module);

    if (res == NULL) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "callhq: SMS webhook: %s", q->error);
        rc = NGX_HTTP_SERVICE_UNAVAILABLE;
        goto done;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 5) {
        rc = ngx_http_callhq_send_pg_error(r, res);
        goto done;
    }

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 1)
        || ngx_strcmp(PQgetvalue(res, 0, 2), "t") != 0)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "callhq: SMS webhook for %s: no such number, "
                      "or SMS disabled", q->values[0]);
        rc = NGX_HTTP_NOT_FOUND;
        goto done;
    }

    if (ngx_http_callhq_sms_signed(r, sctx, PQgetvalue(res, 0, 1)) != NGX_OK)
    {
        rc = NGX_HTTP_FORBIDDEN;
        goto done;
    }

    ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_SMS_RECEIVED);

    /* no assistant (deleted, say): the number's polite fixed reply */
    if (PQgetisnull(res, 0, 3)) {
        if (PQgetisnull(res, 0, 4)) {
            text = slcf->fallback_message;

        } else {
            text.len = PQgetlength(res, 0, 4);
            text.data = ngx_pnalloc(r->pool, text.len);
            if (text.data == NULL) {
                rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
                goto done;
            }

            ngx_memcpy(text.data, PQgetvalue(res, 0, 4), text.len);
        }

        rc = ngx_http_callhq_twiml_send(r, &text);
        goto done;
    }

    if (ngx_http_callhq_sms_form(r, sctx) != NGX_OK) {
        rc = NGX_HTTP_BAD_REQUEST;
        goto done;
    }

    if (ngx_http_callhq_sms_start_timer(r, sctx) != NGX_OK) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    ngx_http_callhq_chat_sms(r, ctx, &sctx->form);
    return;

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* Twilio's 15 s count from its request: so does callhq_sms_reply_timeout */

static ngx_int_t
ngx_http_callhq_sms_start_timer(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx)
{
    ngx_time_t                      *tp;
    ngx_msec_t                       spent;
    ngx_pool_cleanup_t              *cln;
    ngx_http_callhq_sms_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_sms_module);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_callhq_sms_cleanup;
    cln->data = sctx;

    sctx->timer.handler = ngx_http_callhq_sms_late;
    sctx->timer.data = r;
    sctx->timer.log = r->connection->log;

    tp = ngx_timeofday();
    spent = (ngx_msec_t) ((tp->sec - r->start_sec) * 1000
                          + (tp->msec - r->start_msec));

    ngx_add_timer(&sctx->timer, slcf->reply_timeout > spent
                                ? slcf->reply_timeout - spent : 1);

    return NGX_OK;
}


/*
 * The reply is late: Twilio is answered now, with nothing, and the chat
 * goes on to be recorded with its reply texted (chat->sms_late).  Only
 * while the model runs: before that the chat waits for its turn, after
 * it the reply is being recorded and answers in a moment.
 */

static void
ngx_http_callhq_sms_late(ngx_event_t *ev)
{
    ngx_int_t                rc;
    ngx_connection_t        *c;
    ngx_http_request_t      *r, *sr;
    ngx_http_callhq_ctx_t   *ctx;
    ngx_http_callhq_chat_t  *chat;

    r = ev->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    chat = ctx->chat;

    if (chat == NULL || chat->sms_late || r->header_sent
        || chat->state > NGX_HTTP_CALLHQ_CHAT_UPSTREAM)
    {
        return;
    }

    if (chat->state != NGX_HTTP_CALLHQ_CHAT_UPSTREAM || chat->sr == NULL) {
        ngx_add_timer(ev, 100);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "callhq: SMS chat %V still waits for the model: answering "
                  "empty, the reply goes by Twilio's REST API",
                  &chat->chat_id);

    chat->sms_late = 1;
    chat->sent_header = 1;     /* whatever comes next has no answer to give */

    /*
     * Twilio may close the connection now: that must not stop the model,
     * as it would a client's that left (the upstream's broken-connection
     * checks are the subrequest's event handlers).
     */
    sr = chat->sr;
    sr->read_event_handler = ngx_http_block_reading;
    sr->write_event_handler = ngx_http_request_empty_handler;

    rc = ngx_http_callhq_twiml_early(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "callhq: the empty answer to an SMS webhook could not "
                      "be sent, the reply goes by the REST API anyway");
    }
}


static void
ngx_http_callhq_sms_cleanup(void *data)
{
    ngx_http_callhq_sms_ctx_t  *sctx = data;

    if (sctx->timer.timer_set) {
        ngx_del_timer(&sctx->timer);
    }
}


/*
 * X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL . name1 . value1
 * . name2 . value2 ...)), the names sorted; compared in constant time.
 * Without callhq_sms_public_url the URL is $scheme://$host$request_uri,
 * or, as Twilio's own validators allow, with the port the Host header had.
 */

static ngx_int_t
ngx_http_callhq_sms_signed(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx, char *token)
{
    ngx_int_t                        rc;
    ngx_str_t                        got;
    ngx_uint_t                       i;
    ngx_list_part_t                 *part;
    ngx_table_elt_t                 *h;
    ngx_http_callhq_sms_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_sms_module);

    ngx_str_null(&got);

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == ngx_http_callhq_sms_signature.len
            && ngx_strncasecmp(h[i].key.data,
                               ngx_http_callhq_sms_signature.data,
                               h[i].key.len) == 0)
        {
            got = h[i].value;
            break;
        }
    }

    if (got.len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "callhq: SMS webhook without X-Twilio-Signature");
        return NGX_DECLINED;
    }

    rc = ngx_http_callhq_sms_signed_url(r, sctx, token, slcf->public_url,
                                        &got);

    if (rc == NGX_DECLINED && slcf->port_url
        && r->headers_in.host
        && ngx_strlchr(r->headers_in.host->value.data,
                       r->headers_in.host->value.data
                       + r->headers_in.host->value.len, ':'))
    {
        rc = ngx_http_callhq_sms_signed_url(r, sctx, token, slcf->port_url,
                                            &got);
    }

    return rc;
}


static ngx_int_t
ngx_http_callhq_sms_signed_url(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx, char *token,
    ngx_http_complex_value_t *cv, ngx_str_t *got)
{
    u_char        *p;
    size_t         len;
    ngx_str_t      url, data, sig, md_str;
    ngx_uint_t     i;
    unsigned int   mdlen;
    ngx_keyval_t  *kv;
    u_char         md[EVP_MAX_MD_SIZE];
    u_char         b64[64];

    if (ngx_http_complex_value(r, cv, &url) != NGX_OK) {
        return NGX_ERROR;
    }

    kv = sctx->params.elts;
    len = url.len;

    for (i = 0; i < sctx->params.nelts; i++) {
        len += kv[i].key.len + kv[i].value.len;
    }

    data.data = ngx_pnalloc(r->pool, len);
    if (data.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(data.data, url.data, url.len);

    for (i = 0; i < sctx->params.nelts; i++) {
        p = ngx_cpymem(p, kv[i].key.data, kv[i].key.len);
        p = ngx_cpymem(p, kv[i].value.data, kv[i].value.len);
    }

    data.len = p - data.data;

    if (HMAC(EVP_sha1(), token, ngx_strlen(token), data.data, data.len,
             md, &mdlen)
        == NULL)
    {
        return NGX_ERROR;
    }

    md_str.data = md;
    md_str.len = mdlen;
    sig.data = b64;
    ngx_encode_base64(&sig, &md_str);

    if (got->len != sig.len
        || CRYPTO_memcmp(got->data, sig.data, sig.len) != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "callhq: SMS webhook signature does not match "
                      "for URL \"%V\"", &url);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* {"To":..,"From":..,"Body":..,"MessageSid":..} for callhq.sms_begin */

static ngx_int_t
ngx_http_callhq_sms_form(ngx_http_request_t *r,
    ngx_http_callhq_sms_ctx_t *sctx)
{
    json_t      *form, *v;
    ngx_int_t    rc;
    ngx_str_t   *s;
    ngx_uint_t   i;

    static char  *names[] = { "To", "From", "Body", "MessageSid" };

    form = json_object();
    if (form == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        s = ngx_http_callhq_sms_param(sctx, names[i]);
        if (s == NULL) {
            continue;
        }

        /* not UTF-8, or a NUL: not a text Twilio sends */
        v = json_stringn((char *) s->data, s->len);
        if (v == NULL || ngx_strlchr(s->data, s->data + s->len, '\0')
            || json_object_set_new(form, names[i], v) != 0)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "callhq: SMS webhook's %s is not UTF-8 text",
                          names[i]);
            json_decref(form);
            return NGX_ERROR;
        }
    }

    rc = ngx_http_callhq_json_dump(r, form, &sctx->form);
    json_decref(form);

    return rc;
}


static void *
ngx_http_callhq_sms_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_callhq_sms_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_callhq_sms_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->port_url = NULL;
     *     conf->error_message = { 0, NULL };
     *     conf->fallback_message = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->public_url = NGX_CONF_UNSET_PTR;
    conf->reply_timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_callhq_sms_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_callhq_sms_loc_conf_t *prev = parent;
    ngx_http_callhq_sms_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_callhq_loc_conf_t   *lcf;
    ngx_http_callhq_main_conf_t  *mcf;

    static ngx_str_t  url = ngx_string("$scheme://$host$request_uri");
    static ngx_str_t  port_url =
                          ngx_string("$scheme://$http_host$request_uri");

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_ptr_value(conf->public_url, prev->public_url, NULL);
    ngx_conf_merge_str_value(conf->error_message, prev->error_message,
                             "Sorry, something went wrong on our side. "
                             "Please try again in a moment.");
    ngx_conf_merge_str_value(conf->fallback_message, prev->fallback_message,
                             "Sorry, nobody can answer messages to this "
                             "number right now.");
    ngx_conf_merge_msec_value(conf->reply_timeout, prev->reply_timeout,
                              10000);

    if (conf->reply_timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_sms_reply_timeout\" must be more "
                           "than 0");
        return NGX_CONF_ERROR;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_callhq_module);
    lcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_callhq_module);

    if (mcf->pg.conninfo.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_sms_twilio\" needs \"callhq_postgres\" "
                           "in the http block");
        return NGX_CONF_ERROR;
    }

    if (lcf->model_location.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_sms_twilio\" needs "
                           "\"callhq_model_location\"");
        return NGX_CONF_ERROR;
    }

    if (conf->public_url == NULL) {
        conf->public_url = ngx_http_callhq_sms_url(cf, &url);
        conf->port_url = ngx_http_callhq_sms_url(cf, &port_url);

        if (conf->public_url == NULL || conf->port_url == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    /* the body is bounded by callhq_max_body_size, read into memory */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->client_max_body_size = 0;

    return NGX_CONF_OK;
}


static ngx_http_complex_value_t *
ngx_http_callhq_sms_url(ngx_conf_t *cf, ngx_str_t *value)
{
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NULL;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NULL;
    }

    return cv;
}


static char *
ngx_http_callhq_sms_twilio(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_callhq_sms_loc_conf_t *slcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (slcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    slcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_callhq_sms_handler;

    return NGX_CONF_OK;
}


/* a webhook sent again: the reply made for its MessageSid */

ngx_int_t
ngx_http_callhq_sms_repeat(ngx_http_request_t *r, PGresult *res)
{
    ngx_str_t  text;

    if (PQgetisnull(res, 0, 1)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "callhq: SMS webhook sent again, the reply of chat %s "
                      "goes by the REST API: answering empty",
                      PQgetvalue(res, 0, 4));

        return ngx_http_callhq_twiml_send(r, NULL);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "callhq: SMS webhook sent again, answering with the "
                  "reply of chat %s", PQgetvalue(res, 0, 4));

    text.len = PQgetlength(res, 0, 1);
    text.data = ngx_pnalloc(r->pool, text.len + 1);
    if (text.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(text.data, PQgetvalue(res, 0, 1), text.len);

    return ngx_http_callhq_twiml_send(r, &text);
}


/* the chat is recorded: its reply, from the recorded chat */

ngx_int_t
ngx_http_callhq_sms_answer(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat)
{
    json_t        *head, *content;
    ngx_int_t      rc;
    ngx_str_t      text;
    json_error_t   err;

    /* Twilio has had its answer; the reply is in the outbox */
    if (chat->sms_late) {
        return NGX_OK;
    }

    head = json_loadb((char *) chat->result.data, chat->result.len, 0, &err);

    content = json_object_get(json_array_get(json_object_get(head, "output"),
                                             0),
                              "content");

    if (!json_is_string(content)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: SMS chat %V recorded without a reply",
                      &chat->chat_id);
        json_decref(head);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    text.len = json_string_length(content);
    text.data = ngx_pnalloc(r->pool, text.len + 1);

    if (text.data == NULL) {
        json_decref(head);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(text.data, json_string_value(content), text.len);
    json_decref(head);

    rc = ngx_http_callhq_twiml_send(r, &text);

    return rc;
}


/* the model failed before any reply (nothing recorded): an apology */

ngx_int_t
ngx_http_callhq_sms_fail(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat)
{
    ngx_http_callhq_sms_loc_conf_t  *slcf;

    slcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_sms_module);

    if (chat->sms_late) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: model failed for SMS chat %V with status %ui, "
                      "after Twilio had its answer: texting "
                      "callhq_sms_error_message", &chat->chat_id,
                      chat->upstream_status);

        ngx_http_callhq_sms_apology(chat, &slcf->error_message);
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "callhq: model failed for SMS chat %V with status %ui, "
                  "answering with callhq_sms_error_message",
                  &chat->chat_id, chat->upstream_status);

    return ngx_http_callhq_twiml_send(r, &slcf->error_message);
}


/* the query outlives the request: a pool of its own, freed by its handler */

static void
ngx_http_callhq_sms_apology(ngx_http_callhq_chat_t *chat, ngx_str_t *text)
{
    ngx_pool_t                   *pool;
    ngx_http_callhq_pg_query_t   *q;
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_callhq_module);

    pool = ngx_create_pool(512, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    q = ngx_pcalloc(pool, sizeof(ngx_http_callhq_pg_query_t));
    if (q == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    q->stmt = &ngx_http_callhq_sms_apology_stmt;
    q->values[0] = ngx_http_callhq_param(pool, chat->record.data,
                                         chat->record.len, 0);
    q->values[1] = ngx_http_callhq_param(pool, text->data, text->len, 0);
    q->handler = ngx_http_callhq_sms_apologized;
    q->data = pool;
    q->log = ngx_cycle->log;

    if (q->values[0] == NULL || q->values[1] == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    ngx_http_callhq_pg_run(mcf->pool, q);
}


static void
ngx_http_callhq_sms_apologized(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "callhq: the apology of a late SMS chat could not be "
                      "queued: %s",
                      res ? PQresultErrorMessage(res) : q->error);
    }

    ngx_destroy_pool(q->data);
}
