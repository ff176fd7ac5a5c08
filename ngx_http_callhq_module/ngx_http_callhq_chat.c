
/*
 * ngx_http_callhq_module: POST /chat and POST /chat/responses.
 *
 * A chat's way: one query resolves the context (session, assistant,
 * history) and takes the session's turn, either the two plain statements
 * of ngx_http_callhq_turn.c (a chat of a session) or callhq.chat_begin
 * (any other; callhq.sms_begin for a text, answered in TwiML by
 * ngx_http_callhq_sms.c); a subrequest to the operator's model location
 * sends it upstream; the body filter (ngx_http_callhq_filter.c) collects
 * the reply, or passes each delta to the client's answer
 * (ngx_http_callhq_answer.c); one transaction records it, and the
 * answer ends.  A chat waiting for its session's turn is woken by
 * ngx_http_callhq_wait.c.
 *
 * The context is never copied: the upstream body and the client's answer
 * are chains over the statement's result, which the chat keeps.  Replies
 * stay JSON-escaped as the model sent them, spliced into events and
 * records; PostgreSQL decodes the recorded text.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


/* the recording outlives its request: a client may leave mid-stream */
struct ngx_http_callhq_record_s {
    ngx_pool_t                    *pool;
    ngx_http_callhq_pg_query_t     query;
    ngx_http_request_t            *request;    /* NULL once it is gone */
    ngx_http_callhq_chat_t        *chat;
    ngx_str_t                      context;    /* sent if SQL asks for it */
    ngx_str_t                      record;     /* for callhq.chat_record */
    ngx_str_t                      session;    /* whose turn goes back */
    ngx_str_t                      chat_id;
    ngx_http_callhq_lease_t        lease;      /* renewed while it runs */
    ngx_event_t                    again;      /* the next try */
    ngx_msec_t                     start;
    ngx_msec_t                     limit;      /* tried for this long */
    ngx_uint_t                     tries;
    unsigned                       fast:1;     /* the record statement */
    unsigned                       general:1;  /* callhq.chat_record */
    unsigned                       release:1;  /* the turn only */
};


static ngx_http_callhq_chat_t *ngx_http_callhq_chat_create(
    ngx_http_request_t *r, ngx_http_callhq_ctx_t *ctx, ngx_str_t *body);
static void ngx_http_callhq_chat_begin(ngx_http_request_t *r);
static void ngx_http_callhq_chat_begun(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_chat_orphan(PGresult *res);
static void ngx_http_callhq_chat_taken(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_chat_take_orphan(PGresult *res);
static void ngx_http_callhq_chat_general(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);
static void ngx_http_callhq_chat_log_failed(ngx_log_t *log, PGresult *res,
    char *what);
static void ngx_http_callhq_chat_setup(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_chat_history(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);
static void ngx_http_callhq_chat_reread(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_chat_go(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);
static ngx_int_t ngx_http_callhq_chat_busy(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, u_char *session, ngx_uint_t again);
static ngx_int_t ngx_http_callhq_chat_record_general(
    ngx_http_callhq_record_t *rec, ngx_http_callhq_chat_t *chat,
    ngx_str_t *record);
static void ngx_http_callhq_chat_retry(ngx_event_t *ev);
static ngx_int_t ngx_http_callhq_chat_subrequest(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);
static ngx_int_t ngx_http_callhq_chat_headers(ngx_http_request_t *r,
    ngx_http_request_t *sr);
static ngx_int_t ngx_http_callhq_chat_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_callhq_chat_finish(ngx_http_request_t *r);
static ngx_int_t ngx_http_callhq_chat_fail(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);
static ngx_int_t ngx_http_callhq_chat_record(ngx_http_callhq_chat_t *chat,
    ngx_http_request_t *r, ngx_uint_t release);
static void ngx_http_callhq_chat_recorded(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static ngx_int_t ngx_http_callhq_chat_record_again(
    ngx_http_callhq_record_t *rec, PGresult *res);
static void ngx_http_callhq_chat_record_retry(ngx_event_t *ev);
static void ngx_http_callhq_chat_record_cleanup(void *data);
static void ngx_http_callhq_chat_cleanup(void *data);
static void ngx_http_callhq_chat_str(PGresult *res, int col,
    ngx_str_t *out);
static ngx_int_t ngx_http_callhq_chat_keep_context(
    ngx_http_callhq_record_t *rec, ngx_http_callhq_chat_t *chat);


static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_chat_begin_stmt = {
    NGX_HTTP_CALLHQ_STMT_CHAT_BEGIN, "callhq_chat_begin",
    "select state, record, params, messages, chat_id, session_id, org_id, "
    "model from callhq.chat_begin($1::bytea, $2::jsonb, $3::jsonb)",
    3
};

/*
 * The reply comes as a JSON string, escaped as the model sent it, its tool
 * calls as JSON (or NULL)
 */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_chat_record_stmt = {
    NGX_HTTP_CALLHQ_STMT_CHAT_RECORD, "callhq_chat_record",
    "select status, body from callhq.chat_record($1::jsonb, $2::jsonb, "
    "$3::jsonb #>> '{}', $4::text, $5::jsonb, $6::jsonb)",
    6
};

static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_chat_release_stmt = {
    NGX_HTTP_CALLHQ_STMT_CHAT_RELEASE, "callhq_chat_release",
    "select 200, '' from callhq.chat_release($1::jsonb)",
    1
};


static ngx_str_t  ngx_http_callhq_json = ngx_string("application/json");


void
ngx_http_callhq_chat_handler(ngx_http_request_t *r,
    ngx_http_callhq_ctx_t *ctx, ngx_str_t *body,
    ngx_http_callhq_json_want_t *want)
{
    ngx_int_t                     rc;
    ngx_http_callhq_chat_t       *chat;
    ngx_http_callhq_loc_conf_t   *lcf;
    ngx_http_callhq_json_want_t  *stream;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);
    stream = &want[NGX_HTTP_CALLHQ_WANT_STREAM];

    chat = ngx_http_callhq_chat_create(r, ctx, body);
    if (chat == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (ctx->openai) {
        chat->responses = 1;
        chat->openai = 1;
        chat->nostore = ngx_http_callhq_openai_nostore(body);
    }

    if (ctx->id.len) {
        if (ctx->id.len != sizeof("responses") - 1
            || ngx_strncmp(ctx->id.data, "responses", ctx->id.len) != 0)
        {
            rc = ngx_http_callhq_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "Cannot POST %V", &r->uri);
            ngx_http_finalize_request(r, rc);
            return;
        }

        chat->responses = 1;
    }

    if (lcf->model_location.len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: chat needs \"callhq_model_location\"");
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "no model upstream is configured");
        ngx_http_finalize_request(r, rc);
        return;
    }

    /* /chat/responses streams unless told otherwise, as the original's */
    if (stream->value == NULL || ngx_http_callhq_json_is(stream, "null")) {
        chat->stream = chat->responses && !chat->openai;

    } else if (ngx_http_callhq_json_is(stream, "true")) {
        chat->stream = 1;

    } else if (ngx_http_callhq_json_is(stream, "false")) {
        chat->stream = 0;

    } else {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_BAD_REQUEST,
                                        "stream must be a boolean");
        ngx_http_finalize_request(r, rc);
        return;
    }

    chat->fast = !chat->openai
                 && ngx_http_callhq_turn_body(chat, want) == NGX_OK;

    ngx_http_callhq_chat_begin(r);
}


/* a text of the SMS webhook (ngx_http_callhq_sms.c), begun by sms_begin */

void
ngx_http_callhq_chat_sms(ngx_http_request_t *r, ngx_http_callhq_ctx_t *ctx,
    ngx_str_t *form)
{
    ngx_http_callhq_chat_t  *chat;

    chat = ngx_http_callhq_chat_create(r, ctx, form);
    if (chat == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    chat->sms = 1;

    ngx_http_callhq_chat_begin(r);
}


static ngx_http_callhq_chat_t *
ngx_http_callhq_chat_create(ngx_http_request_t *r, ngx_http_callhq_ctx_t *ctx,
    ngx_str_t *body)
{
    ngx_pool_cleanup_t      *cln;
    ngx_http_callhq_chat_t  *chat;

    chat = ngx_pcalloc(r->pool, sizeof(ngx_http_callhq_chat_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (chat == NULL || cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_callhq_chat_cleanup;
    cln->data = chat;

    chat->request = r;
    chat->conf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);
    chat->body = *body;
    ctx->chat = chat;

    chat->retry.handler = ngx_http_callhq_chat_retry;
    chat->retry.data = r;
    chat->retry.log = r->connection->log;
    chat->waiter.event = &chat->retry;

    return chat;
}


static void
ngx_http_callhq_chat_begin(ngx_http_request_t *r)
{
    ngx_http_callhq_ctx_t       *ctx;
    ngx_http_callhq_loc_conf_t  *lcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    /* a turn given back from now on may not be in the answer */
    ngx_http_callhq_wait_ask(&ctx->chat->waiter);

    if (ctx->chat->fast) {
        if (ngx_http_callhq_turn_take(r, ctx->chat, &ctx->query,
                                      ctx->key_hash)
            != NGX_OK)
        {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ctx->query.handler = ngx_http_callhq_chat_taken;
        ctx->query.orphan = ngx_http_callhq_chat_take_orphan;

        ngx_http_callhq_run_query(r, ctx);
        return;
    }

    if (ctx->chat->sms) {
        ctx->query.stmt = &ngx_http_callhq_sms_begin_stmt;
        ctx->query.values[0] = NULL;

    } else {
        ctx->query.stmt = ctx->chat->openai
                          ? &ngx_http_callhq_openai_begin_stmt
                          : &ngx_http_callhq_chat_begin_stmt;
        ctx->query.values[0] = (char *) ctx->key_hash;
    }

    ctx->query.values[1] = (char *) ctx->chat->body.data;
    ctx->query.values[2] = (char *) lcf->opts.data;
    ctx->query.handler = ngx_http_callhq_chat_begun;
    ctx->query.orphan = ngx_http_callhq_chat_orphan;

    ngx_http_callhq_run_query(r, ctx);
}


/* the client left while its chat began: give the session's turn back */

static void
ngx_http_callhq_chat_orphan(PGresult *res)
{
    ngx_http_callhq_chat_t  chat;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
        || PQnfields(res) != 8 || PQgetisnull(res, 0, 1))
    {
        return;
    }

    if (ngx_strcmp(PQgetvalue(res, 0, 0), "new") == 0) {
        ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_SESSIONS_CREATED);

    } else if (ngx_strcmp(PQgetvalue(res, 0, 0), "ok") != 0) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "callhq: client left as its chat began, "
                  "releasing the session's turn");

    ngx_memzero(&chat, sizeof(ngx_http_callhq_chat_t));
    chat.record.data = (u_char *) PQgetvalue(res, 0, 1);
    chat.record.len = PQgetlength(res, 0, 1);
    chat.session_id.data = (u_char *) PQgetvalue(res, 0, 5);
    chat.session_id.len = PQgetlength(res, 0, 5);

    (void) ngx_http_callhq_chat_record(&chat, NULL, 1);
}


static void
ngx_http_callhq_chat_begun(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_callhq_ctx_t       *ctx;
    ngx_http_callhq_chat_t      *chat;

    r = q->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    chat = ctx->chat;

    if (res == NULL) {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "%s", q->error);
        goto done;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
        || PQnfields(res) != 8)
    {
        rc = ngx_http_callhq_send_pg_error(r, res);
        goto done;
    }

    if (ngx_strcmp(PQgetvalue(res, 0, 0), "busy") == 0) {
        rc = ngx_http_callhq_chat_busy(r, chat,
                                       (u_char *) PQgetvalue(res, 0, 5), 0);
        if (rc == NGX_AGAIN) {
            return;
        }

        goto done;
    }

    if (chat->sms && ngx_strcmp(PQgetvalue(res, 0, 0), "done") == 0) {
        rc = ngx_http_callhq_sms_repeat(r, res);
        goto done;
    }

    /* a customer's first chat or text opened its session */
    if (ngx_strcmp(PQgetvalue(res, 0, 0), "new") == 0) {
        ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_SESSIONS_CREATED);
    }

    /* the input, texted as it is: recorded already, no model */
    if (ngx_strcmp(PQgetvalue(res, 0, 0), "recorded") == 0) {
        chat->result.len = PQgetlength(res, 0, 1);
        chat->result.data = ngx_pnalloc(r->pool, chat->result.len);

        if (chat->result.data == NULL) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            goto done;
        }

        ngx_memcpy(chat->result.data, PQgetvalue(res, 0, 1),
                   chat->result.len);

        rc = ngx_http_callhq_send_json(r, NGX_HTTP_CREATED, &chat->result);
        goto done;
    }

    /* the chat reads the context where libpq put it, until it ends */
    ngx_http_callhq_pg_keep(q);
    chat->begun = res;

    ngx_http_callhq_chat_str(res, 1, &chat->record);
    ngx_http_callhq_chat_str(res, 2, &chat->params);
    ngx_http_callhq_chat_str(res, 3, &chat->context[0]);
    ngx_http_callhq_chat_str(res, 4, &chat->chat_id);
    ngx_http_callhq_chat_str(res, 5, &chat->session_id);
    ngx_http_callhq_chat_str(res, 6, &chat->org_id);
    ngx_http_callhq_chat_str(res, 7, &chat->model);
    chat->ncontext = 1;

    ngx_http_callhq_chat_go(r, chat);
    return;

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the take statement answered (ngx_http_callhq_turn.c) */

static void
ngx_http_callhq_chat_taken(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_int_t                rc;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_callhq_ctx_t   *ctx;
    ngx_http_callhq_chat_t  *chat;

    r = q->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    chat = ctx->chat;

    if (res == NULL) {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "%s", q->error);
        goto done;
    }

    ngx_http_callhq_chat_log_failed(c->log, res, "taking the turn");

    rc = ngx_http_callhq_turn_taken(chat, res, r->pool);

    if (rc == NGX_BUSY || rc == NGX_AGAIN) {
        rc = ngx_http_callhq_chat_busy(r, chat, (u_char *) chat->session_z,
                                       rc == NGX_AGAIN);
        if (rc == NGX_AGAIN) {
            return;
        }

        goto done;
    }

    if (rc == NGX_ERROR) {
        (void) ngx_http_callhq_chat_record(chat, NULL, 1);
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_callhq_chat_general(r, chat);
        return;
    }

    ngx_http_callhq_pg_keep(q);
    chat->begun = res;

    if (chat->setup) {
        ngx_http_callhq_setup_query(chat, q);
        q->handler = ngx_http_callhq_chat_setup;
        q->orphan = NULL;

        ngx_http_callhq_run_query(r, ctx);
        return;
    }

    ngx_http_callhq_chat_history(r, chat);
    return;

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * The take (or the setup statement) cannot serve this chat: the general
 * way says what is wrong, once the turn is back.
 */

static void
ngx_http_callhq_chat_general(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "callhq: chat goes the general way");

    if (chat->chat_id.len) {
        (void) ngx_http_callhq_chat_record(chat, NULL, 1);
    }

    chat->fast = 0;
    chat->state = NGX_HTTP_CALLHQ_CHAT_TAKING;
    ngx_str_null(&chat->chat_id);
    ngx_str_null(&chat->org_id);
    ngx_str_null(&chat->session_id);
    ngx_str_null(&chat->model);
    ngx_str_null(&chat->params);

    ngx_http_callhq_chat_begin(r);
}


/* a fast statement failed: the client's errors (CQnnn) are logged at info */

static void
ngx_http_callhq_chat_log_failed(ngx_log_t *log, PGresult *res, char *what)
{
    char        *state;
    ngx_uint_t   level;

    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        return;
    }

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    level = (state && state[0] == 'C' && state[1] == 'Q')
            ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, log, 0, "callhq: %s failed: %s", what,
                  PQresultErrorMessage(res));
}


/* the model, its parameters and the prompts read (ngx_http_callhq_setup.c) */

static void
ngx_http_callhq_chat_setup(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_int_t                rc;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_callhq_ctx_t   *ctx;
    ngx_http_callhq_chat_t  *chat;

    r = q->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    chat = ctx->chat;

    if (res == NULL) {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "%s", q->error);
        (void) ngx_http_callhq_chat_record(chat, NULL, 1);

        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_http_callhq_chat_log_failed(c->log, res, "reading the chat's prompts");

    if (ngx_http_callhq_setup_read(chat, res) != NGX_OK) {
        ngx_http_callhq_chat_general(r, chat);
        return;
    }

    ngx_http_callhq_pg_keep(q);
    chat->setup_res = res;

    ngx_http_callhq_chat_history(r, chat);
}


/* the history read again if the take's was stale, then the model called */

static void
ngx_http_callhq_chat_history(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat)
{
    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_http_callhq_ctx_t       *ctx;
    ngx_http_callhq_pg_query_t  *q;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    q = &ctx->query;

    if (chat->stale) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "callhq: reading the history again");

        ngx_http_callhq_turn_history(chat, q, r->pool);
        q->handler = ngx_http_callhq_chat_reread;
        q->orphan = NULL;

        if (q->values[1] == NULL) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            goto done;
        }

        ngx_http_callhq_run_query(r, ctx);
        return;
    }

    ngx_http_callhq_chat_go(r, chat);
    return;

done:

    (void) ngx_http_callhq_chat_record(chat, NULL, 1);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_callhq_chat_reread(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_int_t                rc;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_callhq_ctx_t   *ctx;
    ngx_http_callhq_chat_t  *chat;

    r = q->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    chat = ctx->chat;

    if (res == NULL) {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "%s", q->error);
        goto failed;
    }

    if (ngx_http_callhq_turn_history_read(chat, res) != NGX_OK) {
        rc = ngx_http_callhq_send_pg_error(r, res);
        goto failed;
    }

    ngx_http_callhq_pg_keep(q);
    chat->reread = res;

    ngx_http_callhq_chat_go(r, chat);
    return;

failed:

    (void) ngx_http_callhq_chat_record(chat, NULL, 1);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the client left as its chat took the turn: give it back */

static void
ngx_http_callhq_chat_take_orphan(PGresult *res)
{
    ngx_http_callhq_chat_t  chat;

    ngx_memzero(&chat, sizeof(ngx_http_callhq_chat_t));

    if (ngx_http_callhq_turn_taken(&chat, res, NULL) == NGX_BUSY
        || chat.chat_id.len == 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "callhq: client left as its chat began, "
                  "releasing the session's turn");

    chat.fast = 1;

    (void) ngx_http_callhq_chat_record(&chat, NULL, 1);
}


/*
 * Another chat of this session runs: wait for its turn, woken when it is
 * given back (ngx_http_callhq_wait.c), looking again on a slow timer all
 * the same; with again, the session changed as the chat looked: look
 * again at once.  NGX_AGAIN while waiting; else the response to finalize
 * with (409 after the time-out).
 */

static ngx_int_t
ngx_http_callhq_chat_busy(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat,
    u_char *session, ngx_uint_t again)
{
    ngx_msec_t                   waited;
    ngx_http_callhq_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    if (!chat->waited) {
        chat->waited = 1;
        chat->wait_start = ngx_current_msec;
        ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_TURN_WAITS);
    }

    waited = ngx_current_msec - chat->wait_start;

    if (waited >= lcf->turn_timeout) {
        ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_TURN_CONFLICTS);
        return ngx_http_callhq_send_error(r, NGX_HTTP_CONFLICT,
                                          "Session %s is busy with "
                                          "another chat", session);
    }

    if (again
        || ngx_http_callhq_wait_add(&chat->waiter, session,
                                    ngx_strlen(session), &chat->retry,
                                    r->connection->log)
           == NGX_DECLINED)
    {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "callhq: session changed, taking the turn again");

        ngx_post_event(&chat->retry, &ngx_posted_events);
        return NGX_AGAIN;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "callhq: session busy, waiting, at most %M ms",
                   ngx_min(lcf->turn_recheck, lcf->turn_timeout - waited));

    ngx_add_timer(&chat->retry, ngx_min(lcf->turn_recheck,
                                        lcf->turn_timeout - waited));

    return NGX_AGAIN;
}


/* the context is ready: the model is called */

static void
ngx_http_callhq_chat_go(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = r->connection;

    if (chat->fast) {
        ngx_http_callhq_turn_context(chat);
    }

    chat->state = NGX_HTTP_CALLHQ_CHAT_UPSTREAM;

    /* renewed until the chat is recorded: a dead worker's runs out soon */
    ngx_http_callhq_lease_hold(&chat->lease, &chat->session_id,
                               &chat->chat_id, chat->conf->turn_lease);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "callhq: chat %V session \"%V\" goes upstream",
                   &chat->chat_id, &chat->session_id);

    if (ngx_http_callhq_chat_subrequest(r, chat) == NGX_OK) {
        /* the subrequest is posted; ngx_http_callhq_chat_finish() goes on */
        ngx_http_run_posted_requests(c);
        return;
    }

    (void) ngx_http_callhq_chat_record(chat, NULL, 1);

    rc = ngx_http_callhq_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    "could not call the model");

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_callhq_chat_retry(ngx_event_t *ev)
{
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_callhq_ctx_t  *ctx;

    r = ev->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);

    /* woken, or its timer ran out: it looks again */
    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    ngx_http_callhq_wait_remove(&ctx->chat->waiter);

    ngx_http_callhq_chat_begin(r);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_callhq_chat_subrequest(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat)
{
    ngx_uint_t                      i, n;
    ngx_str_t                       parts[4 + NGX_HTTP_CALLHQ_CONTEXT_PARTS];
    ngx_chain_t                    *cl;
    ngx_http_request_t             *sr;
    ngx_http_callhq_ctx_t          *sctx;
    ngx_http_request_body_t        *rb;
    ngx_http_callhq_loc_conf_t     *lcf;
    ngx_http_post_subrequest_t     *ps;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    /* {<params>,"messages":<context>,"stream":..}: spliced, not re-encoded */
    ngx_str_set(&parts[0], "{");
    parts[1] = chat->params;
    ngx_str_set(&parts[2], ",\"messages\":");
    n = 3;

    for (i = 0; i < chat->ncontext; i++) {
        parts[n++] = chat->context[i];
    }

    if (chat->stream) {
        ngx_str_set(&parts[n], ",\"stream\":true,\"stream_options\":"
                               "{\"include_usage\":true}}");

    } else {
        ngx_str_set(&parts[n], ",\"stream\":false}");
    }

    cl = ngx_http_callhq_chain(r->pool, parts, n + 1, &chat->upstream);

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    sctx = ngx_pcalloc(r->pool, sizeof(ngx_http_callhq_ctx_t));
    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));

    if (cl == NULL || ps == NULL || sctx == NULL || rb == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_callhq_chat_done;
    ps->data = chat;

    if (ngx_http_subrequest(r, &lcf->model_location, NULL, &sr, ps, 0)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rb->bufs = cl;
    rb->rest = 0;

    sr->request_body = rb;
    sr->method = NGX_HTTP_POST;
    ngx_str_set(&sr->method_name, "POST");
    sr->header_only = 0;

    if (ngx_http_callhq_chat_headers(r, sr) != NGX_OK) {
        return NGX_ERROR;
    }

    sctx->subrequest = 1;
    sctx->chat = chat;
    ngx_http_set_ctx(sr, sctx, ngx_http_callhq_module);

    chat->sr = sr;
    chat->start = ngx_current_msec;

    return NGX_OK;
}


/*
 * The subrequest would inherit the client's headers: none of them (its
 * API key, cookies, its Content-Length) may reach the model.  The model
 * location adds what the model needs with proxy_set_header.
 */

static ngx_int_t
ngx_http_callhq_chat_headers(ngx_http_request_t *r, ngx_http_request_t *sr)
{
    ngx_table_elt_t  *h;

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 2,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    h = ngx_http_callhq_add_header(&sr->headers_in.headers, "Content-Type",
                                   "content-type", &ngx_http_callhq_json);
    if (h == NULL) {
        return NGX_ERROR;
    }

    sr->headers_in.content_type = h;
    sr->headers_in.authorization = NULL;
    sr->headers_in.content_length = NULL;
    sr->headers_in.transfer_encoding = NULL;
    sr->headers_in.chunked = 0;

    /*
     * Set for real in the precontent phase: here it would subject our
     * body to the model location's client_max_body_size.
     */
    sr->headers_in.content_length_n = -1;

    return NGX_OK;
}


ngx_int_t
ngx_http_callhq_chat_precontent(ngx_http_request_t *r)
{
    ngx_http_callhq_ctx_t  *ctx;

    if (r == r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);

    if (ctx && ctx->subrequest) {
        r->headers_in.content_length_n = ctx->chat->upstream;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_callhq_chat_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_callhq_chat_t  *chat = data;

    if (chat->state >= NGX_HTTP_CALLHQ_CHAT_ANSWERED) {
        return NGX_OK;
    }

    chat->state = NGX_HTTP_CALLHQ_CHAT_ANSWERED;
    chat->sr_rc = rc;
    chat->upstream_time = ngx_current_msec - chat->start;

    if (chat->upstream_status == 0) {
        chat->upstream_status = sr->headers_out.status;
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        chat->upstream_status = rc;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "callhq: model subrequest done rc:%i status:%ui "
                   "reply:%uz", rc, chat->upstream_status, chat->reply.len);

    sr->parent->write_event_handler = ngx_http_callhq_chat_finish;

    if (sr->connection->error) {
        return rc;
    }

    /* the model failed: this request answers for it, in JSON */
    return NGX_OK;
}


static void
ngx_http_callhq_chat_finish(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_http_callhq_ctx_t   *ctx;
    ngx_http_callhq_chat_t  *chat;

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);
    chat = ctx->chat;

    if (chat->state < NGX_HTTP_CALLHQ_CHAT_ANSWERED) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    if (!chat->stream && chat->upstream_status == NGX_HTTP_OK
        && !chat->too_big)
    {
        (void) ngx_http_callhq_reply_parse(r, chat);
    }

    if ((chat->reply.len == 0 && !ngx_http_callhq_chat_called(chat))
        || (!chat->stream && !chat->upstream_done))
    {
        rc = ngx_http_callhq_chat_fail(r, chat);
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (chat->sr_rc == NGX_ERROR || chat->upstream_status != NGX_HTTP_OK) {
        chat->upstream_done = 0;
    }

    chat->chat_status = chat->upstream_done ? "completed" : "incomplete";

    if (!chat->upstream_done) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "callhq: model stream for chat %V ended early, "
                      "recording %uz bytes as incomplete (%ui tool calls)",
                      &chat->chat_id,
                      ngx_http_callhq_json_text_len(chat->reply.data,
                                                    chat->reply.len),
                      chat->calls ? chat->calls->nelts : 0);
    }

    /* "store": false: the turn goes back, nothing is written */
    if (ngx_http_callhq_chat_record(chat, r, chat->nostore) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
}


/* the model failed before any output: nothing is recorded */

static ngx_int_t
ngx_http_callhq_chat_fail(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat)
{
    ngx_uint_t  status;

    (void) ngx_http_callhq_chat_record(chat, NULL, 1);

    if (chat->sms) {
        return ngx_http_callhq_sms_fail(r, chat);
    }

    status = chat->upstream_status;

    if (status == NGX_HTTP_GATEWAY_TIME_OUT) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: model timed out for chat %V", &chat->chat_id);

        return ngx_http_callhq_send_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                          "model upstream timed out");
    }

    if (chat->too_big) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: model reply exceeds callhq_max_reply_size");

        return ngx_http_callhq_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                          "model reply is too large");
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "callhq: model failed for chat %V with status %ui",
                  &chat->chat_id, status);

    if (status == NGX_HTTP_OK) {
        return ngx_http_callhq_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                          "model upstream gave no reply");
    }

    if (status < NGX_HTTP_BAD_GATEWAY || status > NGX_HTTP_GATEWAY_TIME_OUT) {
        return ngx_http_callhq_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                          "model upstream answered %ui",
                                          status);
    }

    return ngx_http_callhq_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                      "model upstream failed");
}


/*
 * Records the turn (or only releases the session when release is set) in
 * one transaction, from a pool of its own.  With r, the response goes on
 * once it is recorded; without, nobody waits.  A chat of a session does
 * not send its context back: the database has it, as the session's turns.
 */

static ngx_int_t
ngx_http_callhq_chat_record(ngx_http_callhq_chat_t *chat,
    ngx_http_request_t *r, ngx_uint_t release)
{
    ngx_int_t                     rc;
    ngx_pool_t                   *pool;
    ngx_pool_cleanup_t           *cln;
    ngx_http_callhq_record_t     *rec;
    ngx_http_callhq_main_conf_t  *mcf;

    if (chat->state == NGX_HTTP_CALLHQ_CHAT_ENDED
        || (chat->fast ? chat->chat_id.len : chat->record.len) == 0)
    {
        return NGX_OK;
    }

    chat->state = NGX_HTTP_CALLHQ_CHAT_ENDED;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_callhq_module);

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rec = ngx_pcalloc(pool, sizeof(ngx_http_callhq_record_t));
    cln = ngx_pool_cleanup_add(pool, 0);
    if (rec == NULL || cln == NULL) {
        goto failed;
    }

    cln->handler = ngx_http_callhq_chat_record_cleanup;
    cln->data = rec;

    rec->pool = pool;
    rec->request = r;
    rec->start = ngx_current_msec;

    rec->chat_id.data = ngx_pstrdup(pool, &chat->chat_id);
    if (rec->chat_id.data == NULL) {
        goto failed;
    }

    rec->chat_id.len = chat->chat_id.len;

    rec->again.handler = ngx_http_callhq_chat_record_retry;
    rec->again.data = rec;
    rec->again.log = ngx_cycle->log;

    /*
     * A record is retried while the database fails for a reason that
     * passes, holding the turn; a turn given back is retried until its
     * lease would have run out anyway.
     */
    if (release) {
        ngx_http_callhq_lease_drop(&chat->lease);
        rec->release = 1;

        /* an orphaned take has no location: the default lease */
        rec->limit = (ngx_msec_t) (chat->conf ? chat->conf->turn_lease : 30)
                     * 1000;

    } else {
        ngx_http_callhq_lease_move(&chat->lease, &rec->lease);
        rec->limit = chat->conf->record_retry;
    }

    /* chats waiting here for the turn are woken once it is back */
    if (chat->session_id.len) {
        rec->session.data = ngx_pstrdup(pool, &chat->session_id);
        if (rec->session.data == NULL) {
            goto failed;
        }

        rec->session.len = chat->session_id.len;
    }
    rec->query.handler = ngx_http_callhq_chat_recorded;
    rec->query.data = rec;
    rec->query.log = ngx_cycle->log;

    if (chat->fast && !release && ngx_http_callhq_chat_called(chat)) {
        /* the record statement keeps text alone: tool calls go this way */
        if (ngx_http_callhq_turn_record_json(chat, pool, &rec->record)
            != NGX_OK
            || ngx_http_callhq_chat_record_general(rec, chat, &rec->record)
               != NGX_OK)
        {
            goto failed;
        }

    } else if (chat->fast) {
        if (release) {
            rc = ngx_http_callhq_turn_release(chat, &rec->query, pool);

        } else {
            rec->fast = 1;
            rc = ngx_http_callhq_turn_record(chat, &rec->query, pool,
                                             r && !chat->stream
                                             && !chat->responses);

            /* nobody to ask later, should the general way be needed */
            if (rc == NGX_OK && r == NULL) {
                rc = ngx_http_callhq_chat_keep_context(rec, chat);
            }
        }

        if (rc != NGX_OK) {
            goto failed;
        }

    } else if (release) {
        rec->query.stmt = &ngx_http_callhq_chat_release_stmt;
        rec->query.values[0] = ngx_http_callhq_param(pool,
                                                        chat->record.data,
                                                        chat->record.len, 0);
        if (rec->query.values[0] == NULL) {
            goto failed;
        }

    } else if (ngx_http_callhq_chat_record_general(rec, chat, &chat->record)
               != NGX_OK)
    {
        goto failed;
    }

    if (r) {
        rec->chat = chat;
        chat->rec = rec;
    }

    ngx_http_callhq_pg_run(mcf->pool, &rec->query);

    return NGX_OK;

failed:

    ngx_destroy_pool(pool);
    return NGX_ERROR;
}


/*
 * callhq.chat_record with the record as chat_begin gave it, the reply and
 * usage from the chat.
 */

static ngx_int_t
ngx_http_callhq_chat_record_general(ngx_http_callhq_record_t *rec,
    ngx_http_callhq_chat_t *chat, ngx_str_t *record)
{
    u_char      *p;
    ngx_pool_t  *pool;

    pool = rec->pool;

    if (chat->sms_late && record->len > 1) {
        /* Twilio had an empty answer: the reply is texted (sms.sql) */
        p = ngx_pnalloc(pool, sizeof("{\"smsSend\":true,") + record->len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        rec->query.values[0] = (char *) p;
        p = ngx_cpymem(p, "{\"smsSend\":true,",
                       sizeof("{\"smsSend\":true,") - 1);
        *ngx_cpymem(p, record->data + 1, record->len - 1) = '\0';

    } else {
        rec->query.values[0] = ngx_http_callhq_param(pool, record->data,
                                                        record->len, 0);
    }

    if (rec->query.values[0] == NULL) {
        return NGX_ERROR;
    }

    rec->query.stmt = &ngx_http_callhq_chat_record_stmt;
    rec->general = 1;

    if (chat->session_id.len == 0 && chat->ncontext) {
        rec->query.values[1] = ngx_http_callhq_param(pool,
                                   chat->context[0].data,
                                   chat->context[0].len, 0);
        if (rec->query.values[1] == NULL) {
            return NGX_ERROR;
        }
    }

    rec->query.values[2] = ngx_http_callhq_param(pool, chat->reply.data,
                                                    chat->reply.len, 1);
    rec->query.values[3] = (char *) chat->chat_status;
    rec->query.values[5] = ngx_http_callhq_tools_json(chat, pool);

    if (rec->query.values[5] == NULL && ngx_http_callhq_chat_called(chat)) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(pool, sizeof("{\"promptTokens\":,"
                                 "\"completionTokens\":}")
                          + 2 * NGX_INT_T_LEN);

    if (rec->query.values[2] == NULL || p == NULL) {
        return NGX_ERROR;
    }

    rec->query.values[4] = (char *) p;
    *ngx_sprintf(p, "{\"promptTokens\":%i,\"completionTokens\":%i}",
                 chat->prompt_tokens, chat->completion_tokens) = '\0';

    return NGX_OK;
}


static void
ngx_http_callhq_chat_recorded(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    size_t                    len;
    ngx_int_t                 rc;
    ngx_str_t                 head;
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_callhq_chat_t   *chat;
    ngx_http_callhq_record_t *rec;

    rec = q->data;
    r = rec->request;
    ngx_str_null(&head);

    if (rec->fast) {
        rec->fast = 0;

        if (res && ngx_http_callhq_turn_recorded(res, q, rec->pool, &head)
            == NGX_OK)
        {
            goto recorded;
        }

        /* a twin, a changed session, an error: the general way decides */
        ngx_log_error(NGX_LOG_INFO, q->log, 0,
                      "callhq: chat %s recorded by callhq.chat_record%s%s",
                      q->values[0], res ? ": " : "",
                      res ? PQresultErrorMessage(res) : "");

        if (r && ngx_http_callhq_chat_keep_context(rec, rec->chat) != NGX_OK) {
            goto failed;
        }

        if (rec->record.len == 0) {
            goto failed;
        }

        /* the reply, status and tokens as the record statement had them */
        q->values[2] = q->values[7];
        q->values[3] = q->values[8];
        q->values[4] = ngx_pnalloc(rec->pool,
                                   sizeof("{\"promptTokens\":,"
                                          "\"completionTokens\":}")
                                   + 2 * NGX_INT_T_LEN);
        if (q->values[4] == NULL) {
            goto failed;
        }

        *ngx_sprintf((u_char *) q->values[4],
                     "{\"promptTokens\":%s,\"completionTokens\":%s}",
                     q->values[9], q->values[10]) = '\0';

        q->values[0] = (char *) rec->record.data;
        q->values[1] = NULL;
        q->values[5] = NULL;    /* tool calls never go the fast way */
        q->stmt = &ngx_http_callhq_chat_record_stmt;
        rec->general = 1;

        ngx_http_callhq_pg_run(q->pool, q);
        return;
    }

    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
        && ngx_strcmp(PQgetvalue(res, 0, 0), "100") == 0
        && q->values[1] == NULL)
    {
        /* the history it points to went while it ran: send the context */
        ngx_log_error(NGX_LOG_INFO, q->log, 0,
                      "callhq: session history changed during a chat, "
                      "recording its context in full");

        if (r && ngx_http_callhq_chat_keep_context(rec, rec->chat) != NGX_OK) {
            goto failed;
        }

        q->values[1] = ngx_http_callhq_param(rec->pool, rec->context.data,
                                                rec->context.len, 0);
        if (rec->context.len && q->values[1] != NULL) {
            ngx_http_callhq_pg_run(q->pool, q);
            return;
        }
    }

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        if (ngx_http_callhq_chat_record_again(rec, res) == NGX_OK) {
            return;
        }

        r = rec->request;

        if (rec->release) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "callhq: the turn of session %V could not be "
                          "given back: %s", &rec->session,
                          res ? PQresultErrorMessage(res) : q->error);

        } else {
            ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_RECORDS_DROPPED);
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "callhq: chat %V could not be recorded, "
                          "its reply is dropped: %s", &rec->chat_id,
                          res ? PQresultErrorMessage(res) : q->error);
        }
    }

    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
        && PQnfields(res) == 2)
    {
        head.data = (u_char *) PQgetvalue(res, 0, 1);
        head.len = PQgetlength(res, 0, 1);
    }

recorded:

    ngx_http_callhq_wait_given(&rec->session);

    /* not recorded: its turn goes back, however long that takes */
    if (!rec->release && (res == NULL || PQresultStatus(res)
                                         != PGRES_TUPLES_OK
                          || PQntuples(res) != 1)
        && rec->general)
    {
        rec->release = 1;
        rec->tries = 0;
        rec->start = ngx_current_msec;
        rec->limit = (ngx_msec_t) rec->lease.lease * 1000;
        ngx_http_callhq_lease_drop(&rec->lease);

        /* values[0] is the record chat_release needs too */
        rec->query.stmt = &ngx_http_callhq_chat_release_stmt;

        if (r) {
            /* the client is told now; the turn goes back without it */
            rec->request = NULL;
            rec->chat->rec = NULL;
            c = r->connection;

            rc = rec->chat->sent_header
                 ? NGX_ERROR
                 : (res ? ngx_http_callhq_send_pg_error(r, res)
                        : ngx_http_callhq_send_error(r,
                                  NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "%s", q->error));

            ngx_http_callhq_pg_run(q->pool, q);

            ngx_http_finalize_request(r, rc);
            ngx_http_run_posted_requests(c);
            return;
        }

        ngx_http_callhq_pg_run(q->pool, q);
        return;
    }

    if (r == NULL) {
        ngx_destroy_pool(rec->pool);
        return;
    }

    c = r->connection;
    chat = rec->chat;
    chat->rec = NULL;

    if (res == NULL) {
        rc = chat->sent_header
             ? NGX_ERROR
             : ngx_http_callhq_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "%s", q->error);

    } else if (PQresultStatus(res) != PGRES_TUPLES_OK
               || PQntuples(res) != 1)
    {
        rc = chat->sent_header ? NGX_ERROR
                               : ngx_http_callhq_send_pg_error(r, res);

    } else {
        /* the chat without its context, a small object */
        len = head.len;

        chat->result.data = ngx_pnalloc(r->pool, len + 1);
        if (chat->result.data == NULL) {
            rc = NGX_ERROR;

        } else {
            if (len) {
                ngx_memcpy(chat->result.data, head.data, len);
            }

            chat->result.data[len] = '\0';
            chat->result.len = len;

            rc = chat->sms ? ngx_http_callhq_sms_answer(r, chat)
                           : ngx_http_callhq_answer(r, chat);
        }
    }

    ngx_destroy_pool(rec->pool);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
    return;

failed:

    ngx_log_error(NGX_LOG_ERR, r ? r->connection->log : ngx_cycle->log, 0,
                  "callhq: chat could not be recorded");

    ngx_http_callhq_wait_given(&rec->session);

    if (r == NULL) {
        ngx_destroy_pool(rec->pool);
        return;
    }

    c = r->connection;
    rec->chat->rec = NULL;
    ngx_destroy_pool(rec->pool);

    ngx_http_finalize_request(r, rec->chat->sent_header
                                 ? NGX_ERROR
                                 : NGX_HTTP_INTERNAL_SERVER_ERROR);
    ngx_http_run_posted_requests(c);
}


/*
 * A statement failed for a reason that passes (the database restarts,
 * the pool is full, a time-out, a deadlock): it is tried again, backing
 * off, until rec->limit.  A streamed chat's client has had the reply: its
 * stream ends now, and the record goes on without it.
 */

static ngx_int_t
ngx_http_callhq_chat_record_again(ngx_http_callhq_record_t *rec,
    PGresult *res)
{
    ngx_int_t                rc;
    ngx_msec_t               delay, spent;
    ngx_uint_t               level;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_callhq_chat_t  *chat;

    if (!ngx_http_callhq_pg_transient(res)) {
        return NGX_DECLINED;
    }

    spent = ngx_current_msec - rec->start;

    if (spent >= rec->limit) {
        return NGX_DECLINED;
    }

    delay = ngx_min((ngx_msec_t) 100 << ngx_min(rec->tries, 6), 5000);
    delay = ngx_min(delay, rec->limit - spent);
    rec->tries++;

    if (!rec->release) {
        ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_RECORD_RETRIES);
    }

    level = (rec->tries == 1) ? NGX_LOG_WARN : NGX_LOG_INFO;

    ngx_log_error(level, ngx_cycle->log, 0,
                  "callhq: %s %V failed (%s), try %ui again in %M ms",
                  rec->release ? "giving back the turn of chat"
                               : "recording chat",
                  &rec->chat_id,
                  res ? PQresultErrorMessage(res) : rec->query.error,
                  rec->tries + 1, delay);

    /*
     * A graceful exit waits for a record (the reply is not lost), not for
     * a turn given back: its lease runs out by itself.
     */
    rec->again.cancelable = rec->release;
    ngx_add_timer(&rec->again, delay);

    r = rec->request;

    if (r == NULL || rec->release || !rec->chat->stream) {
        return NGX_OK;
    }

    chat = rec->chat;

    if (ngx_http_callhq_chat_keep_context(rec, chat) != NGX_OK) {
        return NGX_OK;
    }

    rec->request = NULL;
    chat->rec = NULL;
    c = r->connection;

    rc = ngx_http_callhq_answer(r, chat);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);

    return NGX_OK;
}


static void
ngx_http_callhq_chat_record_retry(ngx_event_t *ev)
{
    ngx_http_callhq_record_t     *rec = ev->data;
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_callhq_module);

    ngx_http_callhq_pg_run(mcf->pool, &rec->query);
}


static void
ngx_http_callhq_chat_record_cleanup(void *data)
{
    ngx_http_callhq_record_t  *rec = data;

    if (rec->again.timer_set) {
        ngx_del_timer(&rec->again);
    }

    ngx_http_callhq_lease_drop(&rec->lease);
}


static void
ngx_http_callhq_chat_cleanup(void *data)
{
    ngx_http_callhq_chat_t  *chat = data;

    ngx_time_t          *tp;
    ngx_http_request_t  *r;

    r = chat->request;

    if (r) {
        tp = ngx_timeofday();
        ngx_http_callhq_metrics_chat(chat,
            (ngx_msec_t) ((tp->sec - r->start_sec) * 1000
                          + (tp->msec - r->start_msec)));
    }

    if (chat->retry.timer_set) {
        ngx_del_timer(&chat->retry);
    }

    ngx_http_callhq_wait_remove(&chat->waiter);

    if (chat->rec) {
        /* the recording in flight goes on without us, and the context */
        (void) ngx_http_callhq_chat_keep_context(chat->rec, chat);
        chat->rec->request = NULL;
        chat->rec = NULL;
    }

    chat->request = NULL;

    if (chat->state != NGX_HTTP_CALLHQ_CHAT_ENDED) {
        /* the client left: keep what the model said, or free the turn */
        chat->chat_status = "incomplete";

        (void) ngx_http_callhq_chat_record(chat, NULL,
                   (chat->reply.len == 0 && !ngx_http_callhq_chat_called(chat))
                   || !chat->stream || chat->nostore);
    }

    ngx_http_callhq_lease_drop(&chat->lease);

    /* the recording has its own copies: the context can go */
    if (chat->begun) {
        PQclear(chat->begun);
        chat->begun = NULL;
    }

    if (chat->reread) {
        PQclear(chat->reread);
        chat->reread = NULL;
    }

    if (chat->setup_res) {
        PQclear(chat->setup_res);
        chat->setup_res = NULL;
    }
}


/* a column of chat_begin's result, where it is (libpq ends it with NUL) */

static void
ngx_http_callhq_chat_str(PGresult *res, int col, ngx_str_t *out)
{
    if (PQgetisnull(res, 0, col)) {
        ngx_str_null(out);
        return;
    }

    out->data = (u_char *) PQgetvalue(res, 0, col);
    out->len = PQgetlength(res, 0, col);
}


/* a copy of a session chat's context for a recording that outlives it */

static ngx_int_t
ngx_http_callhq_chat_keep_context(ngx_http_callhq_record_t *rec,
    ngx_http_callhq_chat_t *chat)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    /* the record callhq.chat_record would need, should it be asked */
    if (chat->fast && rec->record.len == 0 && chat->chat_id.len
        && ngx_http_callhq_turn_record_json(chat, rec->pool, &rec->record)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a chat without a session sends its context in full anyway */
    if (chat->ncontext == 0 || rec->context.len
        || chat->session_id.len == 0)
    {
        return NGX_OK;
    }

    len = 0;

    for (i = 0; i < chat->ncontext; i++) {
        len += chat->context[i].len;
    }

    p = ngx_pnalloc(rec->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    rec->context.data = p;
    rec->context.len = len;

    for (i = 0; i < chat->ncontext; i++) {
        p = ngx_cpymem(p, chat->context[i].data, chat->context[i].len);
    }

    return NGX_OK;
}
