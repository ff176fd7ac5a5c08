
/*
 * ngx_http_callhq_module: a chat's answer to its client.
 *
 * A streamed chat answers as the deltas come (the body filter hands each
 * one here): CallHQ chat events, or OpenAI Responses events for
 * /chat/responses, framed as server-sent events; its end goes once the
 * chat is recorded.  A chat that is not streamed answers once, with the
 * chat as recorded and the context it was sent.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


static ngx_int_t ngx_http_callhq_answer_last(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);
static ngx_int_t ngx_http_callhq_answer_response(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, const char *status, ngx_str_t *out);
static ngx_int_t ngx_http_callhq_answer_start(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_chain_t ***last);
static ngx_int_t ngx_http_callhq_answer_event(ngx_http_request_t *r,
    ngx_str_t *event, ngx_str_t *parts, ngx_uint_t n, ngx_chain_t ***last);


static ngx_str_t  ngx_http_callhq_event_stream =
    ngx_string("text/event-stream");
static ngx_str_t  ngx_http_callhq_no_cache = ngx_string("no-cache");
static ngx_str_t  ngx_http_callhq_no = ngx_string("no");

static ngx_str_t  ngx_http_callhq_ev_created =
    ngx_string("response.created");
static ngx_str_t  ngx_http_callhq_ev_delta =
    ngx_string("response.output_text.delta");
static ngx_str_t  ngx_http_callhq_ev_done =
    ngx_string("response.output_text.done");
static ngx_str_t  ngx_http_callhq_ev_completed =
    ngx_string("response.completed");


ngx_int_t
ngx_http_callhq_answer(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat)
{
    ngx_int_t   rc;
    ngx_uint_t  i, n;
    ngx_str_t   parts[3 + NGX_HTTP_CALLHQ_CONTEXT_PARTS];

    if (chat->stream) {
        return ngx_http_callhq_answer_last(r, chat);
    }

    if (chat->responses) {
        rc = ngx_http_callhq_answer_response(r, chat, chat->chat_status,
                                             &parts[0]);
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_callhq_send_json(r, NGX_HTTP_OK, &parts[0]);
    }

    /* the recorded fields, then "messages": the context it holds */
    if (chat->result.len < 2
        || chat->result.data[chat->result.len - 1] != '}')
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: chat_record gave no object");
        return NGX_ERROR;
    }

    parts[0].data = chat->result.data;
    parts[0].len = chat->result.len - 1;
    ngx_str_set(&parts[1], ", \"messages\": ");
    n = 2;

    for (i = 0; i < chat->ncontext; i++) {
        parts[n++] = chat->context[i];
    }

    ngx_str_set(&parts[n], "}");

    return ngx_http_callhq_send_json_parts(r, NGX_HTTP_CREATED, parts, n + 1);
}

/* the stream ends: Responses events close it, chat events just stop */

static ngx_int_t
ngx_http_callhq_answer_last(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat)
{
    ngx_buf_t    *b;
    ngx_int_t     rc;
    ngx_str_t     parts[5];
    ngx_chain_t  *out, **last;

    out = NULL;
    last = &out;

    if (!chat->sent_header) {
        if (ngx_http_callhq_answer_start(r, chat, &last) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (chat->responses) {
        ngx_str_set(&parts[0], "{\"type\":\"response.output_text.done\","
                               "\"item_id\":\"msg_");
        parts[1] = chat->chat_id;
        ngx_str_set(&parts[2], "\",\"output_index\":0,\"content_index\":0,"
                               "\"text\":\"");
        parts[3].data = chat->reply.data;
        parts[3].len = chat->reply.len;
        ngx_str_set(&parts[4], "\"}");

        if (ngx_http_callhq_answer_event(r, &ngx_http_callhq_ev_done, parts, 5,
                                         &last)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_str_set(&parts[0], "{\"type\":\"response.completed\","
                               "\"response\":");

        if (ngx_http_callhq_answer_response(r, chat, chat->chat_status,
                                            &parts[1])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_str_set(&parts[2], "}");

        if (ngx_http_callhq_answer_event(r, &ngx_http_callhq_ev_completed,
                                         parts, 3, &last)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last_buf = 1;
    b->last_in_chain = 1;

    *last = ngx_alloc_chain_link(r->pool);
    if (*last == NULL) {
        return NGX_ERROR;
    }

    (*last)->buf = b;
    (*last)->next = NULL;

    rc = ngx_http_output_filter(r, out);

    return rc == NGX_AGAIN ? NGX_OK : rc;
}

/* an OpenAI Responses object for the reply so far, into r->pool */

static ngx_int_t
ngx_http_callhq_answer_response(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, const char *status, ngx_str_t *out)
{
    u_char      *p;
    size_t       len, model;
    ngx_str_t    text;
    ngx_uint_t   progress;

    progress = (ngx_strcmp(status, "in_progress") == 0);
    model = chat->model.len
            + ngx_escape_json(NULL, chat->model.data, chat->model.len);

    len = sizeof("{\"id\":\"resp_\",\"object\":\"response\",\"created_at\":,"
                 "\"status\":\"\",\"error\":null,\"model\":\"\","
                 "\"output\":[],\"usage\":{\"input_tokens\":,"
                 "\"output_tokens\":}}")
          + sizeof("{\"id\":\"msg_\",\"type\":\"message\",\"role\":"
                   "\"assistant\",\"status\":\"\",\"content\":[{\"type\":"
                   "\"output_text\",\"text\":\"\",\"annotations\":[]}]}")
          + 2 * chat->chat_id.len + 2 * ngx_strlen(status) + model
          + chat->reply.len + NGX_TIME_T_LEN + 2 * NGX_INT_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    text.data = chat->reply.data;
    text.len = chat->reply.len;

    p = ngx_sprintf(p, "{\"id\":\"resp_%V\",\"object\":\"response\","
                    "\"created_at\":%T,\"status\":\"%s\",\"error\":null,"
                    "\"model\":\"", &chat->chat_id, ngx_time(), status);
    p = (u_char *) ngx_escape_json(p, chat->model.data, chat->model.len);

    if (progress) {
        p = ngx_cpymem(p, "\",\"output\":[]", sizeof("\",\"output\":[]") - 1);

    } else {
        p = ngx_sprintf(p, "\",\"output\":[{\"id\":\"msg_%V\",\"type\":"
                        "\"message\",\"role\":\"assistant\",\"status\":"
                        "\"%s\",\"content\":[{\"type\":\"output_text\","
                        "\"text\":\"%V\",\"annotations\":[]}]}]",
                        &chat->chat_id, status, &text);
    }

    p = ngx_sprintf(p, ",\"usage\":{\"input_tokens\":%i,"
                    "\"output_tokens\":%i}}",
                    chat->prompt_tokens, chat->completion_tokens);

    out->len = p - out->data;

    return NGX_OK;
}

/*
 * Called by the body filter for each delta of a streamed reply (escaped
 * as the model sent it): appends the client's event to *last.  The first
 * one sends the headers.
 */

ngx_int_t
ngx_http_callhq_answer_delta(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *delta, ngx_chain_t ***last)
{
    ngx_str_t  parts[7];

    if (!chat->sent_header) {
        chat->first_delta = ngx_current_msec;

        if (ngx_http_callhq_answer_start(r, chat, last) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (chat->responses) {
        ngx_str_set(&parts[0], "{\"type\":\"response.output_text.delta\","
                               "\"item_id\":\"msg_");
        parts[1] = chat->chat_id;
        ngx_str_set(&parts[2], "\",\"output_index\":0,\"content_index\":0,"
                               "\"delta\":\"");
        parts[3] = *delta;
        ngx_str_set(&parts[4], "\"}");

        return ngx_http_callhq_answer_event(r, &ngx_http_callhq_ev_delta,
                                            parts, 5, last);
    }

    ngx_str_set(&parts[0], "{\"id\":\"");
    parts[1] = chat->chat_id;

    if (chat->session_id.len) {
        ngx_str_set(&parts[2], "\",\"sessionId\":\"");
        parts[3] = chat->session_id;
        ngx_str_set(&parts[4], "\",\"path\":\"chat.output[0].content\","
                               "\"delta\":\"");

    } else {
        ngx_str_set(&parts[2], "\",\"sessionId\":null,"
                               "\"path\":\"chat.output[0].content\","
                               "\"delta\":\"");
        ngx_str_null(&parts[3]);
        ngx_str_null(&parts[4]);
    }

    parts[5] = *delta;
    ngx_str_set(&parts[6], "\"}");

    return ngx_http_callhq_answer_event(r, NULL, parts, 7, last);
}

static ngx_int_t
ngx_http_callhq_answer_start(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_chain_t ***last)
{
    ngx_int_t            rc;
    ngx_str_t            parts[3];
    ngx_table_elt_t     *h;
    ngx_http_request_t  *mr;

    mr = r->main;
    chat->sent_header = 1;

    mr->headers_out.status = NGX_HTTP_OK;
    mr->headers_out.content_type = ngx_http_callhq_event_stream;
    mr->headers_out.content_type_len = ngx_http_callhq_event_stream.len;
    mr->headers_out.content_length_n = -1;

    h = ngx_http_callhq_add_header(&mr->headers_out.headers, "Cache-Control",
                                   "cache-control", &ngx_http_callhq_no_cache);
    if (h == NULL) {
        return NGX_ERROR;
    }

    /* a proxy in front of us must pass each event on at once */
    h = ngx_http_callhq_add_header(&mr->headers_out.headers,
                                   "X-Accel-Buffering", "x-accel-buffering",
                                   &ngx_http_callhq_no);
    if (h == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(mr);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    if (!chat->responses) {
        return NGX_OK;
    }

    ngx_str_set(&parts[0], "{\"type\":\"response.created\",\"response\":");

    if (ngx_http_callhq_answer_response(r, chat, "in_progress", &parts[1])
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&parts[2], "}");

    return ngx_http_callhq_answer_event(r, &ngx_http_callhq_ev_created,
                                        parts, 3, last);
}

/* one SSE event, "event: <event>" if any, then the parts as data */

static ngx_int_t
ngx_http_callhq_answer_event(ngx_http_request_t *r, ngx_str_t *event,
    ngx_str_t *parts, ngx_uint_t n, ngx_chain_t ***last)
{
    u_char       *p;
    size_t        len;
    ngx_buf_t    *b;
    ngx_uint_t    i;
    ngx_chain_t  *cl;

    len = sizeof("data: \n\n") - 1;

    if (event) {
        len += sizeof("event: \n") - 1 + event->len;
    }

    for (i = 0; i < n; i++) {
        len += parts[i].len;
    }

    b = ngx_create_temp_buf(r->pool, len);
    cl = ngx_alloc_chain_link(r->pool);

    if (b == NULL || cl == NULL) {
        return NGX_ERROR;
    }

    p = b->last;

    if (event) {
        p = ngx_sprintf(p, "event: %V\n", event);
    }

    p = ngx_cpymem(p, "data: ", sizeof("data: ") - 1);

    for (i = 0; i < n; i++) {
        if (parts[i].len) {
            p = ngx_cpymem(p, parts[i].data, parts[i].len);
        }
    }

    *p++ = '\n';
    *p++ = '\n';
    b->last = p;

    cl->buf = b;
    cl->next = NULL;
    **last = cl;
    *last = &cl->next;

    return NGX_OK;
}
