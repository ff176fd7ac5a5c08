
/*
 * ngx_http_callhq_module: the tool calls of a model's reply.
 *
 * A reply's tool_calls (Chat Completions': {id, type, function: {name,
 * arguments}}) come whole in a reply that is not streamed, and as deltas
 * in a stream: the first of a call, by its index, with its id and name,
 * the next ones with pieces of its arguments.  Both are gathered here into
 * chat->calls, decoded (they are few and small, unlike the text, which
 * stays escaped); a stream's client is told of each as it comes
 * (ngx_http_callhq_answer_call()).  The recording gets them back as
 * Chat Completions' JSON, which callhq.chat_record keeps as the reply's
 * tool_calls.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


static ngx_http_callhq_call_t *ngx_http_callhq_tools_call(
    ngx_http_request_t *r, ngx_http_callhq_chat_t *chat, ngx_int_t index,
    json_t *e, ngx_uint_t *fresh);
static ngx_int_t ngx_http_callhq_tools_str(ngx_pool_t *pool, ngx_str_t *s,
    json_t *v);


/*
 * The tool_calls of a reply ([p, end), checked JSON), or of one stream
 * event (with last, where the client's events go).
 */

ngx_int_t
ngx_http_callhq_tools_add(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat,
    u_char *p, u_char *end, ngx_chain_t ***last)
{
    json_t                  *calls, *e, *v;
    size_t                   i;
    ngx_int_t                index;
    ngx_str_t                delta;
    ngx_uint_t               fresh;
    ngx_http_callhq_call_t  *call;

    calls = json_loadb((char *) p, end - p, 0, NULL);

    if (!json_is_array(calls)) {
        json_decref(calls);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "callhq: model sent tool_calls that are not an array");
        return NGX_OK;
    }

    json_array_foreach(calls, i, e) {

        /* a stream's deltas name their call; a whole reply lists them */
        v = json_object_get(e, "index");
        index = (last && json_is_integer(v)) ? (ngx_int_t) json_integer_value(v)
                                             : (ngx_int_t) i;

        call = ngx_http_callhq_tools_call(r, chat, index, e, &fresh);
        if (call == NULL) {
            goto failed;
        }

        if (fresh && last
            && ngx_http_callhq_answer_call(r, chat, call, NULL, last)
               != NGX_OK)
        {
            goto failed;
        }

        v = json_object_get(json_object_get(e, "function"), "arguments");

        if (!json_is_string(v) || json_string_length(v) == 0) {
            continue;
        }

        delta.data = (u_char *) json_string_value(v);
        delta.len = json_string_length(v);

        if (ngx_http_callhq_text_add(r->main->pool, &call->args, delta.data,
                                     delta.len)
            != NGX_OK)
        {
            goto failed;
        }

        chat->calls_size += delta.len;

        if (last
            && ngx_http_callhq_answer_call(r, chat, call, &delta, last)
               != NGX_OK)
        {
            goto failed;
        }
    }

    json_decref(calls);

    return NGX_OK;

failed:

    json_decref(calls);

    return NGX_ERROR;
}


/* the call of that index, a new one with its id and name if none */

static ngx_http_callhq_call_t *
ngx_http_callhq_tools_call(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_int_t index, json_t *e,
    ngx_uint_t *fresh)
{
    u_char                  *p;
    ngx_uint_t               i;
    ngx_pool_t              *pool;
    ngx_http_callhq_call_t  *call;

    pool = r->main->pool;
    *fresh = 0;

    if (chat->calls == NULL) {
        chat->calls = ngx_array_create(pool, 2,
                                       sizeof(ngx_http_callhq_call_t));
        if (chat->calls == NULL) {
            return NULL;
        }
    }

    call = chat->calls->elts;

    for (i = 0; i < chat->calls->nelts; i++) {
        if (call[i].index == index) {
            return &call[i];
        }
    }

    call = ngx_array_push(chat->calls);
    if (call == NULL) {
        return NULL;
    }

    ngx_memzero(call, sizeof(ngx_http_callhq_call_t));
    call->index = index;
    *fresh = 1;

    if (ngx_http_callhq_tools_str(pool, &call->id, json_object_get(e, "id"))
        != NGX_OK
        || ngx_http_callhq_tools_str(pool, &call->name,
               json_object_get(json_object_get(e, "function"), "name"))
           != NGX_OK)
    {
        return NULL;
    }

    /* a server that gives no id: one that the results can name */
    if (call->id.len == 0) {
        p = ngx_pnalloc(pool, sizeof("call__") + chat->chat_id.len
                              + NGX_INT_T_LEN);
        if (p == NULL) {
            return NULL;
        }

        call->id.data = p;
        call->id.len = ngx_sprintf(p, "call_%V_%ui", &chat->chat_id,
                                   chat->calls->nelts - 1)
                       - p;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "callhq: model calls tool \"%V\" (%V) at %i",
                   &call->name, &call->id, index);

    return call;
}


static ngx_int_t
ngx_http_callhq_tools_str(ngx_pool_t *pool, ngx_str_t *s, json_t *v)
{
    if (!json_is_string(v)) {
        ngx_str_null(s);
        return NGX_OK;
    }

    s->len = json_string_length(v);
    s->data = ngx_pnalloc(pool, s->len + 1);

    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, json_string_value(v), s->len);
    s->data[s->len] = '\0';

    return NGX_OK;
}


/*
 * The calls as Chat Completions has them, a libpq parameter in pool;
 * NULL without calls, and when out of memory (then *chat->calls is kept).
 */

char *
ngx_http_callhq_tools_json(ngx_http_callhq_chat_t *chat, ngx_pool_t *pool)
{
    char                    *s, *out;
    json_t                  *calls, *c;
    size_t                   len;
    ngx_uint_t               i;
    ngx_http_callhq_call_t  *call;

    if (!ngx_http_callhq_chat_called(chat)) {
        return NULL;
    }

    calls = json_array();
    if (calls == NULL) {
        return NULL;
    }

    call = chat->calls->elts;

    for (i = 0; i < chat->calls->nelts; i++) {
        c = json_pack("{s:s%,s:s,s:{s:s%,s:s%}}",
                      "id", call[i].id.data, call[i].id.len,
                      "type", "function",
                      "function",
                      "name", call[i].name.data ? (char *) call[i].name.data
                                                : "",
                      call[i].name.len,
                      "arguments", call[i].args.data
                                   ? (char *) call[i].args.data : "",
                      call[i].args.len);

        if (json_array_append_new(calls, c) != 0) {
            json_decref(calls);
            return NULL;
        }
    }

    s = json_dumps(calls, JSON_COMPACT);
    json_decref(calls);

    if (s == NULL) {
        return NULL;
    }

    len = ngx_strlen(s);

    out = ngx_pnalloc(pool, len + 1);
    if (out != NULL) {
        ngx_memcpy(out, s, len + 1);
    }

    free(s);

    return out;
}
