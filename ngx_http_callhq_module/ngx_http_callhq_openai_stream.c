
/*
 * ngx_http_callhq_module: POST /responses with "stream": true, as OpenAI
 * streams it.
 *
 * The reply is a message with one output_text part, then a function_call
 * item per tool call, so the events are these, each numbered by
 * sequence_number from 0: response.created and response.in_progress; for
 * the text response.output_item.added and response.content_part.added, a
 * response.output_text.delta per delta of the model, then
 * response.output_text.done, response.content_part.done and
 * response.output_item.done; for each call response.output_item.added,
 * a response.function_call_arguments.delta per piece of its arguments,
 * response.function_call_arguments.done and response.output_item.done;
 * and response.completed (response.incomplete for a cut stream).  An item
 * is done as the next one begins, the last once the chat is recorded, with
 * its status.  OpenAI's SDKs rebuild the Response from them and check
 * each step.
 *
 * The deltas stay as the model escaped them, spliced in; the other events
 * are few, built with jansson.  All are written into the stream's frame
 * buffers (ngx_http_callhq_answer.c), which the body filter's
 * backpressure bounds.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


static ngx_int_t ngx_http_callhq_openai_begin(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_chain_t ***last);
static ngx_int_t ngx_http_callhq_openai_open(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_chain_t ***last);
static ngx_int_t ngx_http_callhq_openai_close(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, const char *status, ngx_chain_t ***last);
static ngx_int_t ngx_http_callhq_openai_done(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, json_t *item, ngx_uint_t index,
    ngx_chain_t ***last);
static ngx_int_t ngx_http_callhq_openai_event(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, const char *type, json_t *ev,
    ngx_chain_t ***last);
static json_t *ngx_http_callhq_openai_part(ngx_http_callhq_chat_t *chat,
    ngx_uint_t done);


/* the deltas, called by the body filter through the answer */

ngx_int_t
ngx_http_callhq_openai_delta(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *delta, ngx_chain_t ***last)
{
    u_char  *p;
    u_char   head[sizeof("event: response.output_text.delta\ndata: "
                         "{\"type\":\"response.output_text.delta\","
                         "\"sequence_number\":,\"item_id\":\"msg_\","
                         "\"output_index\":0,\"content_index\":0,"
                         "\"delta\":\"")
                  + NGX_INT_T_LEN + NGX_HTTP_CALLHQ_WAIT_ID_LEN];

    if (!chat->sent_header) {
        chat->first_delta = ngx_current_msec;

        if (ngx_http_callhq_openai_begin(r, chat, last) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /* text after the calls is recorded, and in the Response, not streamed */
    if (!chat->openai_msg_open) {
        if (chat->openai_msg || ngx_http_callhq_chat_called(chat)) {
            return NGX_OK;
        }

        if (ngx_http_callhq_openai_open(r, chat, last) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (chat->chat_id.len > NGX_HTTP_CALLHQ_WAIT_ID_LEN) {
        return NGX_ERROR;
    }

    /* into the stream's frame buffers, reused once sent */
    p = ngx_sprintf(head, "event: response.output_text.delta\ndata: "
                    "{\"type\":\"response.output_text.delta\","
                    "\"sequence_number\":%ui,\"item_id\":\"msg_%V\","
                    "\"output_index\":0,\"content_index\":0,\"delta\":\"",
                    chat->openai_seq++, &chat->chat_id);

    if (ngx_http_callhq_answer_write(r, chat, head, p - head, last) != NGX_OK
        || ngx_http_callhq_answer_write(r, chat, delta->data, delta->len,
                                        last)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_callhq_answer_write(r, chat,
                                        (u_char *) "\",\"logprobs\":[]}\n\n",
                                        sizeof("\",\"logprobs\":[]}\n\n") - 1,
                                        last);
}


/* the stream ends, once the chat is recorded */

ngx_int_t
ngx_http_callhq_openai_last(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat)
{
    json_t       *ev, *res;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *out, **last;
    const char   *status;

    out = NULL;
    last = &out;
    status = chat->chat_status ? chat->chat_status : "incomplete";

    /* the frame written last went with the model's stream */
    chat->frame = NULL;

    if (!chat->sent_header
        && ngx_http_callhq_openai_begin(r, chat, &last) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a reply without text or calls still has its message */
    if (!chat->openai_msg && !ngx_http_callhq_chat_called(chat)
        && ngx_http_callhq_openai_open(r, chat, &last) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_callhq_openai_close(r, chat, status, &last) != NGX_OK) {
        return NGX_ERROR;
    }

    res = ngx_http_callhq_openai_response(r, chat, status);
    ev = res ? json_pack("{s:o}", "response", res) : NULL;

    if (ngx_http_callhq_openai_event(r, chat,
                                     ngx_strcmp(status, "completed") == 0
                                     ? "response.completed"
                                     : "response.incomplete", ev, &last)
        != NGX_OK)
    {
        return NGX_ERROR;
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


/* the headers, then the events before the first item */

static ngx_int_t
ngx_http_callhq_openai_begin(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_chain_t ***last)
{
    json_t  *ev, *res;

    if (ngx_http_callhq_answer_start(r, chat, last) != NGX_OK) {
        return NGX_ERROR;
    }

    res = ngx_http_callhq_openai_response(r, chat, "in_progress");
    ev = res ? json_pack("{s:O}", "response", res) : NULL;

    if (ngx_http_callhq_openai_event(r, chat, "response.created", ev, last)
        != NGX_OK)
    {
        json_decref(res);
        return NGX_ERROR;
    }

    ev = res ? json_pack("{s:o}", "response", res) : NULL;

    return ngx_http_callhq_openai_event(r, chat, "response.in_progress", ev,
                                        last);
}


/* the message item begins, the first of the output */

static ngx_int_t
ngx_http_callhq_openai_open(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_chain_t ***last)
{
    json_t  *ev;
    u_char   id[sizeof("msg_") + NGX_HTTP_CALLHQ_WAIT_ID_LEN];

    chat->openai_msg = 1;
    chat->openai_msg_open = 1;
    chat->openai_items++;

    *ngx_snprintf(id, sizeof(id) - 1, "msg_%V", &chat->chat_id) = '\0';

    ev = json_pack("{s:i,s:{s:s,s:s,s:s,s:[],s:s}}", "output_index", 0,
                   "item", "id", id, "type", "message", "status",
                   "in_progress", "content", "role", "assistant");

    if (ngx_http_callhq_openai_event(r, chat, "response.output_item.added",
                                     ev, last)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ev = json_pack("{s:s,s:i,s:i,s:o}", "item_id", id, "output_index", 0,
                   "content_index", 0,
                   "part", ngx_http_callhq_openai_part(chat, 0));

    return ngx_http_callhq_openai_event(r, chat, "response.content_part.added",
                                        ev, last);
}


/*
 * A tool call of the reply: its item begins (delta NULL; the item open
 * before it is done), then each piece of its arguments (decoded).
 */

ngx_int_t
ngx_http_callhq_openai_call_delta(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_http_callhq_call_t *call,
    ngx_str_t *delta, ngx_chain_t ***last)
{
    json_t  *ev, *item;

    if (!chat->sent_header) {
        chat->first_delta = ngx_current_msec;

        if (ngx_http_callhq_openai_begin(r, chat, last) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (delta) {
        item = ngx_http_callhq_openai_call(chat, call, "in_progress");

        ev = item ? json_pack("{s:O,s:I,s:s%}", "item_id",
                              json_object_get(item, "id"), "output_index",
                              (json_int_t) call->output_index, "delta",
                              delta->data, delta->len)
                  : NULL;

        json_decref(item);

        return ngx_http_callhq_openai_event(r, chat,
                                   "response.function_call_arguments.delta",
                                   ev, last);
    }

    if (ngx_http_callhq_openai_close(r, chat, "completed", last) != NGX_OK) {
        return NGX_ERROR;
    }

    call->output_index = chat->openai_items++;
    call->open = 1;

    item = ngx_http_callhq_openai_call(chat, call, "in_progress");
    ev = item ? json_pack("{s:I,s:o}", "output_index",
                          (json_int_t) call->output_index, "item", item)
              : NULL;

    return ngx_http_callhq_openai_event(r, chat, "response.output_item.added",
                                        ev, last);
}


/* the item open, if any, is done, with this status */

static ngx_int_t
ngx_http_callhq_openai_close(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, const char *status, ngx_chain_t ***last)
{
    json_t                  *ev, *item;
    ngx_uint_t               i;
    ngx_http_callhq_call_t  *call;
    u_char                   id[sizeof("msg_") + NGX_HTTP_CALLHQ_WAIT_ID_LEN];

    if (chat->openai_msg_open) {
        chat->openai_msg_open = 0;

        *ngx_snprintf(id, sizeof(id) - 1, "msg_%V", &chat->chat_id) = '\0';

        ev = json_pack("{s:s,s:i,s:i,s:o,s:[]}", "item_id", id,
                       "output_index", 0, "content_index", 0,
                       "text", ngx_http_callhq_openai_text(chat), "logprobs");

        if (ngx_http_callhq_openai_event(r, chat, "response.output_text.done",
                                         ev, last)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ev = json_pack("{s:s,s:i,s:i,s:o}", "item_id", id, "output_index", 0,
                       "content_index", 0,
                       "part", ngx_http_callhq_openai_part(chat, 1));

        if (ngx_http_callhq_openai_event(r, chat, "response.content_part.done",
                                         ev, last)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_http_callhq_openai_done(r, chat,
                   ngx_http_callhq_openai_message(chat, status), 0, last);
    }

    if (!ngx_http_callhq_chat_called(chat)) {
        return NGX_OK;
    }

    call = chat->calls->elts;

    for (i = 0; i < chat->calls->nelts; i++) {
        if (!call[i].open) {
            continue;
        }

        call[i].open = 0;

        item = ngx_http_callhq_openai_call(chat, &call[i], status);
        ev = item ? json_pack("{s:O,s:I,s:O,s:O}",
                              "item_id", json_object_get(item, "id"),
                              "output_index",
                              (json_int_t) call[i].output_index,
                              "name", json_object_get(item, "name"),
                              "arguments", json_object_get(item, "arguments"))
                  : NULL;

        if (ngx_http_callhq_openai_event(r, chat,
                                   "response.function_call_arguments.done",
                                   ev, last)
            != NGX_OK)
        {
            json_decref(item);
            return NGX_ERROR;
        }

        if (ngx_http_callhq_openai_done(r, chat, item, call[i].output_index,
                                        last)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* response.output_item.done with the item (taken) */

static ngx_int_t
ngx_http_callhq_openai_done(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, json_t *item, ngx_uint_t index,
    ngx_chain_t ***last)
{
    json_t  *ev;

    ev = item ? json_pack("{s:I,s:o}", "output_index", (json_int_t) index,
                          "item", item)
              : NULL;

    return ngx_http_callhq_openai_event(r, chat, "response.output_item.done",
                                        ev, last);
}


/* the output_text part: empty as it begins, the whole reply when done */

static json_t *
ngx_http_callhq_openai_part(ngx_http_callhq_chat_t *chat, ngx_uint_t done)
{
    return json_pack("{s:s,s:[],s:[],s:o}", "type", "output_text",
                     "annotations", "logprobs",
                     "text", done ? ngx_http_callhq_openai_text(chat)
                                  : json_string(""));
}


/*
 * One event: "type" and "sequence_number" first, then the members of ev
 * (taken: a NULL ev is a failed allocation).
 */

static ngx_int_t
ngx_http_callhq_openai_event(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, const char *type, json_t *ev,
    ngx_chain_t ***last)
{
    u_char     *p, *end;
    json_t     *e;
    ngx_str_t   data;
    ngx_int_t   rc;

    if (ev == NULL) {
        return NGX_ERROR;
    }

    e = json_pack("{s:s,s:I}", "type", type,
                  "sequence_number", (json_int_t) chat->openai_seq++);

    if (e == NULL || json_object_update(e, ev) != 0) {
        json_decref(e);
        json_decref(ev);
        return NGX_ERROR;
    }

    json_decref(ev);

    rc = ngx_http_callhq_openai_dump(r, e, &data);
    json_decref(e);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, sizeof("event: \ndata: ") + ngx_strlen(type));
    if (p == NULL) {
        return NGX_ERROR;
    }

    end = ngx_sprintf(p, "event: %s\ndata: ", type);

    if (ngx_http_callhq_answer_write(r, chat, p, end - p, last) != NGX_OK
        || ngx_http_callhq_answer_write(r, chat, data.data, data.len, last)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_callhq_answer_write(r, chat, (u_char *) "\n\n", 2, last);
}
