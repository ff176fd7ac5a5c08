
/*
 * ngx_http_callhq_module: the OpenAI surface (callhq_openai).
 *
 * GET and DELETE /responses/{id} are the REST resources' way: one SQL
 * function each (sql/functions/openai.sql), run by ngx_http_callhq_api.c.
 *
 * POST /responses is a chat: callhq.openai_begin (sql/functions/openai.sql)
 * checks the Responses body and makes it the body of POST /chat, and the
 * chat goes its usual way (ngx_http_callhq_chat.c) with chat->openai set,
 * which changes three things: the statement that begins it, a response
 * with "store": false that is not recorded, and the answer, a Response
 * object as OpenAI's, built here.  Every error on this surface is
 * OpenAI's {"error": {"message", "type", "param", "code"}}.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


/* as the REST resources' (ngx_http_callhq_api.c) */
#define NGX_HTTP_CALLHQ_OPENAI_SQL(fn)                                        \
    "select status, body from callhq." fn                                     \
    "($1::bytea, $2::text, $3::jsonb, $4::jsonb, $5::jsonb)"


static json_t *ngx_http_callhq_openai_output(ngx_http_callhq_chat_t *chat,
    const char *status);
static const char *ngx_http_callhq_openai_param(u_char *msg, size_t len);


ngx_http_callhq_route_t  ngx_http_callhq_openai_routes[] = {

    /* goes upstream: no SQL function */
    { ngx_string("responses"), 0, NGX_HTTP_POST, { 0, NULL, NULL, 0 } },

    { ngx_string("responses"), 1, NGX_HTTP_GET,
      { NGX_HTTP_CALLHQ_STMT_OPENAI_GET, "callhq_api_openai_response_get",
        NGX_HTTP_CALLHQ_OPENAI_SQL("api_openai_response_get"), 5 } },

    { ngx_string("responses"), 1, NGX_HTTP_DELETE,
      { NGX_HTTP_CALLHQ_STMT_OPENAI_DELETE,
        "callhq_api_openai_response_delete",
        NGX_HTTP_CALLHQ_OPENAI_SQL("api_openai_response_delete"), 5 } },

    { ngx_null_string, 0, 0, { 0, NULL, NULL, 0 } }
};


ngx_http_callhq_pg_stmt_t  ngx_http_callhq_openai_begin_stmt = {
    NGX_HTTP_CALLHQ_STMT_OPENAI_BEGIN, "callhq_openai_begin",
    "select state, record, params, messages, chat_id, session_id, org_id, "
    "model from callhq.openai_begin($1::bytea, $2::jsonb, $3::jsonb)",
    3
};


/*
 * the top-level parameters an error message may begin with: the bodies'
 * and the lists' query strings (?limit=1%00: "limit must not contain...")
 */
static char  *ngx_http_callhq_openai_params[] = {
    "model", "input", "instructions", "previous_response_id", "store",
    "stream", "metadata", "temperature", "top_p", "max_output_tokens",
    "conversation", "items", "after", "limit", "order", "include", "tools",
    "tool_choice", "parallel_tool_calls", NULL
};


/*
 * OpenAI's error object: param and code as SQL named them, or, for the
 * module's own messages, param the parameter the message begins with.
 */

ngx_int_t
ngx_http_callhq_openai_error(ngx_http_request_t *r, ngx_uint_t status,
    u_char *msg, size_t len, const char *param, const char *code)
{
    json_t      *json;
    ngx_str_t    body;
    const char  *type;

    if (param == NULL) {
        param = ngx_http_callhq_openai_param(msg, len);
    }

    if (code == NULL) {
        code = (status == NGX_HTTP_UNAUTHORIZED) ? "invalid_api_key" : "";
    }

    /* as OpenAI's: a bad key is an invalid request, code invalid_api_key */
    type = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) ? "server_error"
           : (status == NGX_HTTP_TOO_MANY_REQUESTS) ? "rate_limit_error"
           : "invalid_request_error";

    /* a message from outside may be invalid UTF-8: jansson rejects it */
    json = json_pack("{s:{s:s%,s:s,s:s?,s:s?}}", "error", "message", msg, len,
                     "type", type, "param", param[0] ? param : NULL,
                     "code", code[0] ? code : NULL);
    if (json == NULL) {
        json = json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message",
                         "error", "type", type, "param", "code");
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


static const char *
ngx_http_callhq_openai_param(u_char *msg, size_t len)
{
    size_t      n;
    ngx_uint_t  i;

    for (n = 0; n < len; n++) {
        if (!(msg[n] == '_' || (msg[n] >= 'a' && msg[n] <= 'z'))) {
            break;
        }
    }

    for (i = 0; ngx_http_callhq_openai_params[i]; i++) {
        if (ngx_strlen(ngx_http_callhq_openai_params[i]) == n
            && ngx_strncmp(msg, ngx_http_callhq_openai_params[i], n) == 0)
        {
            return ngx_http_callhq_openai_params[i];
        }
    }

    return "";
}


/* "store": false, in a body the scanner has checked */

ngx_uint_t
ngx_http_callhq_openai_nostore(ngx_str_t *body)
{
    ngx_str_t                     path[2];
    ngx_http_callhq_json_want_t   want;

    ngx_str_set(&path[0], "store");
    ngx_str_null(&path[1]);
    want.path = path;

    if (ngx_http_callhq_json_check(body->data, body->data + body->len, NULL,
                                   &want, 1)
        != NULL)
    {
        return 0;
    }

    return ngx_http_callhq_json_is(&want, "false");
}


/*
 * The Response object of a chat: what the request asked for as OpenAI
 * echoes it, then the output.  A progress of "in_progress" has no
 * output yet.
 */

json_t *
ngx_http_callhq_openai_response(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, const char *status)
{
    json_t      *req, *res, *v, *output, *choice, *tools;
    ngx_uint_t   progress, incomplete;
    u_char       id[sizeof("resp_") + NGX_HTTP_CALLHQ_WAIT_ID_LEN];

    progress = (ngx_strcmp(status, "in_progress") == 0);
    incomplete = (ngx_strcmp(status, "incomplete") == 0);

    req = json_loadb((char *) chat->body.data, chat->body.len, 0, NULL);
    if (req == NULL || !json_is_object(req)) {
        json_decref(req);
        return NULL;
    }

    *ngx_snprintf(id, sizeof(id) - 1, "resp_%V", &chat->chat_id) = '\0';

    output = progress ? json_array()
                      : ngx_http_callhq_openai_output(chat, status);

    /* echoed as the request had them (taken by json_pack) */
    v = json_object_get(req, "tool_choice");
    choice = v ? json_incref(v) : json_string("auto");
    v = json_object_get(req, "tools");
    tools = json_is_array(v) ? json_incref(v) : json_array();

    res = json_pack("{s:s,s:s,s:I,s:s,s:b,s:n,s:o,s:O,s:O,s:O,s:o,s:o,"
                    "s:O,s:{s:n,s:n},s:b,s:O,s:{s:{s:s}},s:o,s:o,s:O,"
                    "s:s,s:n}",
                    "id", id,
                    "object", "response",
                    "created_at", (json_int_t) r->main->start_sec,
                    "status", status,
                    "background", 0,
                    "error",
                    "incomplete_details", incomplete
                        ? json_pack("{s:s}", "reason", "max_output_tokens")
                        : json_null(),
                    "instructions", json_object_get(req, "instructions")
                        ? json_object_get(req, "instructions") : json_null(),
                    "max_output_tokens",
                    json_object_get(req, "max_output_tokens")
                        ? json_object_get(req, "max_output_tokens")
                        : json_null(),
                    "model", json_object_get(req, "model")
                        ? json_object_get(req, "model") : json_null(),
                    "output", output,
                    "parallel_tool_calls",
                    json_is_false(json_object_get(req, "parallel_tool_calls"))
                        ? json_false() : json_true(),
                    "previous_response_id",
                    json_object_get(req, "previous_response_id")
                        ? json_object_get(req, "previous_response_id")
                        : json_null(),
                    "reasoning", "effort", "summary",
                    "store", !chat->nostore,
                    "temperature", json_object_get(req, "temperature")
                        ? json_object_get(req, "temperature") : json_null(),
                    "text", "format", "type", "text",
                    "tool_choice", choice,
                    "tools", tools,
                    "top_p", json_object_get(req, "top_p")
                        ? json_object_get(req, "top_p") : json_null(),
                    "truncation", "disabled",
                    "user");

    if (res == NULL) {
        json_decref(req);
        return NULL;
    }

    /* set_new takes the reference: the request's is counted up first */
    v = json_object_get(req, "metadata");
    if (json_object_set_new(res, "metadata",
                            json_is_object(v) ? json_incref(v) : json_object())
        != 0)
    {
        goto failed;
    }

    /* a conversation, as an id or {"id": ...}, is echoed as {"id": ...} */
    v = json_object_get(req, "conversation");
    v = json_is_object(v) ? json_object_get(v, "id") : v;

    if (json_object_set_new(res, "conversation",
                            json_is_string(v)
                            ? json_pack("{s:O}", "id", v) : json_null())
        != 0)
    {
        goto failed;
    }

    if (progress) {
        v = json_null();

    } else {
        v = json_pack("{s:I,s:{s:i},s:I,s:{s:i},s:I}",
                      "input_tokens", (json_int_t) chat->prompt_tokens,
                      "input_tokens_details", "cached_tokens", 0,
                      "output_tokens", (json_int_t) chat->completion_tokens,
                      "output_tokens_details", "reasoning_tokens", 0,
                      "total_tokens", (json_int_t) (chat->prompt_tokens
                                                    + chat->completion_tokens));
    }

    if (v == NULL || json_object_set_new(res, "usage", v) != 0) {
        goto failed;
    }

    json_decref(req);
    return res;

failed:

    json_decref(req);
    json_decref(res);
    return NULL;
}


/*
 * The output: the message, the reply (kept escaped, decoded here), unless
 * the model only called tools; then a function_call item per call.
 */

static json_t *
ngx_http_callhq_openai_output(ngx_http_callhq_chat_t *chat,
    const char *status)
{
    json_t                  *out;
    ngx_uint_t               i;
    ngx_http_callhq_call_t  *call;

    out = json_array();
    if (out == NULL) {
        return NULL;
    }

    if ((chat->reply.len || !ngx_http_callhq_chat_called(chat))
        && json_array_append_new(out,
                                 ngx_http_callhq_openai_message(chat, status))
           != 0)
    {
        goto failed;
    }

    if (!ngx_http_callhq_chat_called(chat)) {
        return out;
    }

    call = chat->calls->elts;

    for (i = 0; i < chat->calls->nelts; i++) {
        if (json_array_append_new(out,
                                  ngx_http_callhq_openai_call(chat, &call[i],
                                                              status))
            != 0)
        {
            goto failed;
        }
    }

    return out;

failed:

    json_decref(out);
    return NULL;
}


/* the reply's message item */

json_t *
ngx_http_callhq_openai_message(ngx_http_callhq_chat_t *chat,
    const char *status)
{
    json_t  *text;
    u_char   id[sizeof("msg_") + NGX_HTTP_CALLHQ_WAIT_ID_LEN];

    text = ngx_http_callhq_openai_text(chat);
    if (text == NULL) {
        return NULL;
    }

    *ngx_snprintf(id, sizeof(id) - 1, "msg_%V", &chat->chat_id) = '\0';

    return json_pack("{s:s,s:s,s:s,s:s,s:[{s:s,s:o,s:[],s:[]}]}",
                     "id", id, "type", "message", "status", status,
                     "role", "assistant",
                     "content", "type", "output_text", "text", text,
                     "annotations", "logprobs");
}


/*
 * A tool call's function_call item: fc_<chat id>_<n>, n its place among
 * the calls, as GET /responses/{id} names it (callhq.openai_output).
 */

json_t *
ngx_http_callhq_openai_call(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_call_t *call, const char *status)
{
    u_char  *p;
    u_char   id[sizeof("fc__") + NGX_HTTP_CALLHQ_WAIT_ID_LEN + NGX_INT_T_LEN];

    p = ngx_snprintf(id, sizeof(id) - 1, "fc_%V_%ui", &chat->chat_id,
                     (ngx_uint_t) (call - (ngx_http_callhq_call_t *)
                                          chat->calls->elts));
    *p = '\0';

    return json_pack("{s:s,s:s,s:s,s:s%,s:s%,s:s%}",
                     "id", id, "type", "function_call", "status", status,
                     "arguments", call->args.data ? (char *) call->args.data
                                                  : "", call->args.len,
                     "call_id", call->id.data, call->id.len,
                     "name", call->name.data ? (char *) call->name.data : "",
                     call->name.len);
}


/* the reply as a JSON string: it is kept as the model escaped it */

json_t *
ngx_http_callhq_openai_text(ngx_http_callhq_chat_t *chat)
{
    u_char  *p;
    json_t  *text;
    size_t   len;

    len = chat->reply.len + 2;

    p = ngx_alloc(len, ngx_cycle->log);
    if (p == NULL) {
        return NULL;
    }

    p[0] = '"';

    if (chat->reply.len) {
        ngx_memcpy(p + 1, chat->reply.data, chat->reply.len);
    }

    p[len - 1] = '"';

    text = json_loadb((char *) p, len, JSON_DECODE_ANY, NULL);

    ngx_free(p);

    return text ? text : json_string("");
}


/* a chat's answer that is not streamed: 200 with the Response */

ngx_int_t
ngx_http_callhq_openai_answer(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat)
{
    json_t     *res;
    ngx_int_t   rc;
    ngx_str_t   body;

    res = ngx_http_callhq_openai_response(r, chat, chat->chat_status);
    if (res == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_callhq_openai_dump(r, res, &body);
    json_decref(res);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_callhq_send_json(r, NGX_HTTP_OK, &body);
}


/* as the client wrote them: 0.7, not jansson's 0.69999999999999996 */

ngx_int_t
ngx_http_callhq_openai_dump(ngx_http_request_t *r, json_t *json,
    ngx_str_t *out)
{
    char  *s;

    s = json_dumps(json, JSON_COMPACT|JSON_REAL_PRECISION(15));
    if (s == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_strlen(s);
    out->data = ngx_pnalloc(r->pool, out->len);

    if (out->data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, out->len);
    free(s);

    return NGX_OK;
}
