
/*
 * ngx_http_callhq_module: a chat's answer to its client.
 *
 * A streamed chat answers as the deltas come (the body filter hands each
 * one here): CallHQ chat events, or OpenAI Responses events for
 * /chat/responses, framed as server-sent events; its end goes once the
 * chat is recorded.  A chat that is not streamed answers once, with the
 * chat as recorded and the context it was sent.
 *
 * Events are written into the stream's frame buffers, of one size, reused
 * once sent: with the body filter's backpressure a stream holds a few of
 * them, however long its reply.
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
static ngx_int_t ngx_http_callhq_answer_event(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *event, ngx_str_t *parts,
    ngx_uint_t n, ngx_uint_t link, ngx_chain_t ***last);
static ngx_int_t ngx_http_callhq_answer_link(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *part, ngx_chain_t ***last);
static ngx_int_t ngx_http_callhq_answer_text(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *path, ngx_str_t *text,
    ngx_chain_t ***last);
static ngx_int_t ngx_http_callhq_answer_path(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *path, ngx_str_t *delta,
    ngx_chain_t ***last);


#define NGX_HTTP_CALLHQ_FRAME_SIZE  4096


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
        return chat->openai ? ngx_http_callhq_openai_last(r, chat)
                            : ngx_http_callhq_answer_last(r, chat);
    }

    if (chat->openai) {
        return ngx_http_callhq_openai_answer(r, chat);
    }

    if (chat->responses) {
        rc = ngx_http_callhq_answer_response(r, chat, chat->chat_status,
                                             &parts[0]);
        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_callhq_send_json_parts(r, NGX_HTTP_OK, parts, 3);
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

    /* the frame written last went with the model's stream */
    chat->frame = NULL;

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

        /* the reply is not copied again: it stays until the answer ends */
        if (ngx_http_callhq_answer_event(r, chat, &ngx_http_callhq_ev_done,
                                         parts, 5, 1 << 3, &last)
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

        ngx_str_set(&parts[4], "}");

        if (ngx_http_callhq_answer_event(r, chat,
                                         &ngx_http_callhq_ev_completed,
                                         parts, 5, 1 << 2, &last)
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

/*
 * An OpenAI Responses object for the reply so far, in three parts: what
 * comes before the text (in r->pool), the reply itself (where it is), and
 * what follows it (the last two empty while in progress).
 */

static ngx_int_t
ngx_http_callhq_answer_response(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, const char *status, ngx_str_t *out)
{
    u_char      *p;
    size_t       len, model;
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
          + NGX_TIME_T_LEN + 2 * NGX_INT_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out[0].data = p;

    p = ngx_sprintf(p, "{\"id\":\"resp_%V\",\"object\":\"response\","
                    "\"created_at\":%T,\"status\":\"%s\",\"error\":null,"
                    "\"model\":\"", &chat->chat_id, ngx_time(), status);
    p = (u_char *) ngx_escape_json(p, chat->model.data, chat->model.len);

    if (progress) {
        p = ngx_sprintf(p, "\",\"output\":[],\"usage\":{\"input_tokens\":%i,"
                        "\"output_tokens\":%i}}",
                        chat->prompt_tokens, chat->completion_tokens);

        out[0].len = p - out[0].data;
        ngx_str_null(&out[1]);
        ngx_str_null(&out[2]);

        return NGX_OK;
    }

    p = ngx_sprintf(p, "\",\"output\":[{\"id\":\"msg_%V\",\"type\":"
                    "\"message\",\"role\":\"assistant\",\"status\":"
                    "\"%s\",\"content\":[{\"type\":\"output_text\","
                    "\"text\":\"", &chat->chat_id, status);

    out[0].len = p - out[0].data;

    out[1].data = chat->reply.data;
    out[1].len = chat->reply.len;

    out[2].data = p;

    p = ngx_sprintf(p, "\",\"annotations\":[]}]}],\"usage\":{"
                    "\"input_tokens\":%i,\"output_tokens\":%i}}",
                    chat->prompt_tokens, chat->completion_tokens);

    out[2].len = p - out[2].data;

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
    ngx_str_t  path, parts[5];

    if (chat->openai) {
        return ngx_http_callhq_openai_delta(r, chat, delta, last);
    }

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

        return ngx_http_callhq_answer_event(r, chat,
                                            &ngx_http_callhq_ev_delta,
                                            parts, 5, 0, last);
    }

    ngx_str_set(&path, "chat.output[0].content");

    return ngx_http_callhq_answer_path(r, chat, &path, delta, last);
}


/*
 * A tool call of a streamed reply: as it begins (delta NULL), then each
 * piece of its arguments (decoded).  Chat events name the member of the
 * chat's output that each delta adds to, as for the text; Responses
 * events are OpenAI's (ngx_http_callhq_openai_stream.c); /chat/responses
 * streams the text alone.
 */

ngx_int_t
ngx_http_callhq_answer_call(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_http_callhq_call_t *call,
    ngx_str_t *delta, ngx_chain_t ***last)
{
    ngx_str_t    path;
    ngx_uint_t   n;
    u_char       buf[sizeof("chat.output[0].tool_calls[].function.arguments")
                     + NGX_INT_T_LEN];

    if (chat->openai) {
        return ngx_http_callhq_openai_call_delta(r, chat, call, delta, last);
    }

    if (chat->responses) {
        return NGX_OK;
    }

    if (!chat->sent_header) {
        chat->first_delta = ngx_current_msec;

        if (ngx_http_callhq_answer_start(r, chat, last) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    n = call - (ngx_http_callhq_call_t *) chat->calls->elts;
    path.data = buf;

    if (delta) {
        path.len = ngx_sprintf(buf, "chat.output[0].tool_calls[%ui]"
                               ".function.arguments", n)
                   - buf;

        return ngx_http_callhq_answer_text(r, chat, &path, delta, last);
    }

    path.len = ngx_sprintf(buf, "chat.output[0].tool_calls[%ui].id", n) - buf;

    if (ngx_http_callhq_answer_text(r, chat, &path, &call->id, last)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    path.len = ngx_sprintf(buf, "chat.output[0].tool_calls[%ui].function.name",
                           n)
               - buf;

    return ngx_http_callhq_answer_text(r, chat, &path, &call->name, last);
}


/* a delta of decoded text: escaped first */

static ngx_int_t
ngx_http_callhq_answer_text(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *path, ngx_str_t *text,
    ngx_chain_t ***last)
{
    ngx_str_t  delta;

    delta.len = text->len + ngx_escape_json(NULL, text->data, text->len);
    delta.data = ngx_pnalloc(r->pool, delta.len + 1);

    if (delta.data == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_escape_json(delta.data, text->data, text->len);

    return ngx_http_callhq_answer_path(r, chat, path, &delta, last);
}


/* a chat event: the delta (escaped) to the member at path */

static ngx_int_t
ngx_http_callhq_answer_path(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *path, ngx_str_t *delta,
    ngx_chain_t ***last)
{
    ngx_str_t  parts[9];

    ngx_str_set(&parts[0], "{\"id\":\"");
    parts[1] = chat->chat_id;

    if (chat->session_id.len) {
        ngx_str_set(&parts[2], "\",\"sessionId\":\"");
        parts[3] = chat->session_id;
        ngx_str_set(&parts[4], "\",\"path\":\"");

    } else {
        ngx_str_set(&parts[2], "\",\"sessionId\":null,\"path\":\"");
        ngx_str_null(&parts[3]);
        ngx_str_null(&parts[4]);
    }

    parts[5] = *path;
    ngx_str_set(&parts[6], "\",\"delta\":\"");
    parts[7] = *delta;
    ngx_str_set(&parts[8], "\"}");

    return ngx_http_callhq_answer_event(r, chat, NULL, parts, 9, 0, last);
}

/* the headers of a stream, and the first event of /chat/responses' */

ngx_int_t
ngx_http_callhq_answer_start(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_chain_t ***last)
{
    ngx_int_t            rc;
    ngx_str_t            parts[5];
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

    if (!chat->responses || chat->openai) {
        return NGX_OK;
    }

    ngx_str_set(&parts[0], "{\"type\":\"response.created\",\"response\":");

    if (ngx_http_callhq_answer_response(r, chat, "in_progress", &parts[1])
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&parts[4], "}");

    return ngx_http_callhq_answer_event(r, chat, &ngx_http_callhq_ev_created,
                                        parts, 5, 0, last);
}

/*
 * One SSE event, "event: <event>" if any, then the parts as data: copied
 * into frames, but those with their bit set in link, linked as they are.
 */

static ngx_int_t
ngx_http_callhq_answer_event(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *event, ngx_str_t *parts,
    ngx_uint_t n, ngx_uint_t link, ngx_chain_t ***last)
{
    ngx_uint_t  i;

    if (event) {
        if (ngx_http_callhq_answer_write(r, chat, (u_char *) "event: ",
                                         sizeof("event: ") - 1, last)
            != NGX_OK
            || ngx_http_callhq_answer_write(r, chat, event->data, event->len,
                                            last)
               != NGX_OK
            || ngx_http_callhq_answer_write(r, chat, (u_char *) "\n", 1, last)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_callhq_answer_write(r, chat, (u_char *) "data: ",
                                     sizeof("data: ") - 1, last)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (link & (1 << i)) {
            if (ngx_http_callhq_answer_link(r, chat, &parts[i], last)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (ngx_http_callhq_answer_write(r, chat, parts[i].data, parts[i].len,
                                         last)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_callhq_answer_write(r, chat, (u_char *) "\n\n", 2, last);
}


/*
 * Appends bytes to the frame buffer being written, taking the next one,
 * sent and free or else new, when it is full; each new one goes on *last.
 * The body filter puts them back once sent (ngx_chain_update_chains()).
 */

ngx_int_t
ngx_http_callhq_answer_write(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, u_char *data, size_t len,
    ngx_chain_t ***last)
{
    size_t        size;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    while (len) {
        b = chat->frame;

        if (b == NULL || b->last == b->end) {
            cl = ngx_chain_get_free_buf(r->pool, &chat->free);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            b = cl->buf;

            if (b->start == NULL) {
                b->start = ngx_palloc(r->pool, NGX_HTTP_CALLHQ_FRAME_SIZE);
                if (b->start == NULL) {
                    return NGX_ERROR;
                }

                b->end = b->start + NGX_HTTP_CALLHQ_FRAME_SIZE;
                b->temporary = 1;
                b->tag = (ngx_buf_tag_t) &ngx_http_callhq_module;
            }

            b->pos = b->start;
            b->last = b->start;
            b->flush = 0;

            **last = cl;
            *last = &cl->next;

            chat->frame = b;
        }

        size = ngx_min(len, (size_t) (b->end - b->last));

        b->last = ngx_cpymem(b->last, data, size);
        data += size;
        len -= size;
    }

    return NGX_OK;
}


/* bytes that stay where they are until the answer ends: not copied */

static ngx_int_t
ngx_http_callhq_answer_link(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *part, ngx_chain_t ***last)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (part->len == 0) {
        return NGX_OK;
    }

    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);

    if (b == NULL || cl == NULL) {
        return NGX_ERROR;
    }

    b->start = part->data;
    b->pos = b->start;
    b->last = part->data + part->len;
    b->end = b->last;
    b->memory = 1;

    cl->buf = b;
    cl->next = NULL;
    **last = cl;
    *last = &cl->next;

    /* what follows it goes into a frame after it */
    chat->frame = NULL;

    return NGX_OK;
}
