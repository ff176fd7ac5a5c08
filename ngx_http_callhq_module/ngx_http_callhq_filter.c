
/*
 * ngx_http_callhq_module: the body filter on our model subrequests.
 *
 * A streamed reply is framed into SSE events (an event may straddle
 * buffers), each delta translated into the client's event format and
 * flushed at once; a whole reply is collected, then read.  Either way the
 * text is kept for the recording, and the tool calls
 * (ngx_http_callhq_tools.c).  Other requests pass untouched.
 *
 * A stream goes no faster than its client reads: while a few frame
 * buffers wait to be sent, the model's buffers are held unframed, so the
 * upstream, its own buffer full, reads no more from the model until the
 * client's connection drains (and calls again).  A worker keeps the reply
 * and a fixed number of buffers per stream, whatever the client's speed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


static ngx_int_t ngx_http_callhq_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_callhq_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_callhq_stream(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_chain_t *in);
static ngx_int_t ngx_http_callhq_take(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_buf_t *b, ngx_chain_t ***last);
static ngx_uint_t ngx_http_callhq_frames(ngx_chain_t *cl);
static ngx_int_t ngx_http_callhq_sse(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, u_char *data, size_t len,
    ngx_chain_t ***last);
static ngx_int_t ngx_http_callhq_sse_event(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, u_char *p, u_char *end,
    ngx_chain_t ***last);


static void ngx_http_callhq_chat_usage(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_json_want_t *want);


/* frame buffers waiting to be sent, beyond which the model waits */
#define NGX_HTTP_CALLHQ_FRAMES_BUSY  8


/* what is read of the model's replies and stream events */
static ngx_str_t  ngx_http_callhq_reply_text[] = {
    ngx_string("choices"), NGX_HTTP_CALLHQ_JSON_FIRST, ngx_string("message"),
    ngx_string("content"), ngx_null_string
};

static ngx_str_t  ngx_http_callhq_delta_text[] = {
    ngx_string("choices"), NGX_HTTP_CALLHQ_JSON_FIRST, ngx_string("delta"),
    ngx_string("content"), ngx_null_string
};

static ngx_str_t  ngx_http_callhq_reply_tools[] = {
    ngx_string("choices"), NGX_HTTP_CALLHQ_JSON_FIRST, ngx_string("message"),
    ngx_string("tool_calls"), ngx_null_string
};

static ngx_str_t  ngx_http_callhq_delta_tools[] = {
    ngx_string("choices"), NGX_HTTP_CALLHQ_JSON_FIRST, ngx_string("delta"),
    ngx_string("tool_calls"), ngx_null_string
};

static ngx_str_t  ngx_http_callhq_finish_reason[] = {
    ngx_string("choices"), NGX_HTTP_CALLHQ_JSON_FIRST,
    ngx_string("finish_reason"), ngx_null_string
};

static ngx_str_t  ngx_http_callhq_prompt_tokens[] = {
    ngx_string("usage"), ngx_string("prompt_tokens"), ngx_null_string
};

static ngx_str_t  ngx_http_callhq_completion_tokens[] = {
    ngx_string("usage"), ngx_string("completion_tokens"), ngx_null_string
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_callhq_filter_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_callhq_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_callhq_body_filter;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_callhq_chat_precontent;

    return NGX_OK;
}


static ngx_int_t
ngx_http_callhq_header_filter(ngx_http_request_t *r)
{
    ngx_http_callhq_ctx_t  *ctx;

    if (r == r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);

    if (ctx == NULL || !ctx->subrequest) {
        return ngx_http_next_header_filter(r);
    }

    ctx->chat->upstream_status = r->headers_out.status;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "callhq: model answered %ui", r->headers_out.status);

    /* proxy temp files must come to the body filter as memory */
    r->filter_need_in_memory = 1;

    /*
     * A stream's backpressure is the upstream's own buffer, held until
     * framed: as with "X-Accel-Buffering: no", so that proxy_buffering
     * does not read on into temporary files while the client lags.
     */
    if (ctx->chat->stream && r->upstream) {
        r->upstream->buffering = 0;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_callhq_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t             *cl;
    ngx_http_callhq_ctx_t   *ctx;
    ngx_http_callhq_chat_t  *chat;

    if (r == r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);

    if (ctx == NULL || !ctx->subrequest) {
        return ngx_http_next_body_filter(r, in);
    }

    chat = ctx->chat;

    if (chat->stream) {
        return ngx_http_callhq_stream(r, chat, in);
    }

    if (in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        if (ngx_http_callhq_take(r, chat, cl->buf, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The model's buffers with bytes wait in chat->held; they are framed in
 * order while fewer than NGX_HTTP_CALLHQ_FRAMES_BUSY frame buffers wait to
 * be sent, and given back (consumed) as they are.  Called again by the
 * upstream, without input, when the client's connection can take more.
 */

static ngx_int_t
ngx_http_callhq_stream(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat,
    ngx_chain_t *in)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl, *out, **last, **ll;

    for (ll = &chat->held; *ll; ll = &(*ll)->next) { /* void */ }

    for ( /* void */ ; in; in = in->next) {
        if (!ngx_buf_in_memory(in->buf)) {
            /* special buffers carry no reply bytes */
            in->buf->file_pos = in->buf->file_last;
            continue;
        }

        if (in->buf->pos == in->buf->last) {
            continue;
        }

        cl = ngx_alloc_chain_link(r->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = in->buf;
        cl->next = NULL;
        *ll = cl;
        ll = &cl->next;
    }

    for ( ;; ) {
        out = NULL;
        last = &out;

        while (chat->held
               && ngx_http_callhq_frames(chat->busy)
                  + ngx_http_callhq_frames(out)
                  < NGX_HTTP_CALLHQ_FRAMES_BUSY)
        {
            cl = chat->held;

            if (ngx_http_callhq_take(r, chat, cl->buf, &last) != NGX_OK) {
                return NGX_ERROR;
            }

            chat->held = cl->next;
            ngx_free_chain(r->pool, cl);
        }

        if (out) {
            /* what came together goes on together, at once */
            for (cl = out; cl->next; cl = cl->next) { /* void */ }
            cl->buf->flush = 1;
        }

        /* without output, what waits below is sent */
        rc = ngx_http_next_body_filter(r, out);

        chat->frame = NULL;

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        ngx_chain_update_chains(r->pool, &chat->free, &chat->busy, &out,
                                (ngx_buf_tag_t) &ngx_http_callhq_module);

        if (chat->held == NULL
            || ngx_http_callhq_frames(chat->busy)
               >= NGX_HTTP_CALLHQ_FRAMES_BUSY)
        {
            break;
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "callhq: stream %s, %ui frames busy",
                   chat->held ? "waits for the client" : "goes on",
                   ngx_http_callhq_frames(chat->busy));

    return NGX_OK;
}


/*
 * One of the model's buffers, consumed: framed (with last), or kept for
 * the whole reply (without).
 */

static ngx_int_t
ngx_http_callhq_take(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat,
    ngx_buf_t *b, ngx_chain_t ***last)
{
    size_t                       len;
    ngx_http_callhq_loc_conf_t  *lcf;

    if (!ngx_buf_in_memory(b)) {
        /* special buffers carry no reply bytes */
        b->file_pos = b->file_last;
        return NGX_OK;
    }

    lcf = ngx_http_get_module_loc_conf(r->main, ngx_http_callhq_module);

    len = b->last - b->pos;

    /* an error page or a model's error answer is not a reply */
    if (chat->upstream_status != NGX_HTTP_OK || chat->too_big) {
        b->pos = b->last;
        return NGX_OK;
    }

    if (chat->reply.len + chat->event.len + chat->calls_size + len
        > lcf->max_reply_size)
    {
        chat->too_big = 1;
        b->pos = b->last;
        return NGX_OK;
    }

    if (last) {
        if (ngx_http_callhq_sse(r, chat, b->pos, len, last) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (ngx_http_callhq_text_add(r->main->pool, &chat->reply,
                                        b->pos, len)
               != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* consumed: the upstream may reuse the buffer */
    b->pos = b->last;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_callhq_frames(ngx_chain_t *cl)
{
    ngx_uint_t  n;

    for (n = 0; cl; cl = cl->next) {
        n++;
    }

    return n;
}


/*
 * Frames events, in the upstream's buffer where they are whole (it is
 * consumed here: no one else reads it); a cut one is carried over.
 */

static ngx_int_t
ngx_http_callhq_sse(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat,
    u_char *data, size_t len, ngx_chain_t ***last)
{
    u_char  *p, *end, *start, *q;

    /* SSE lines may end in CR LF: JSON payloads escape raw CRs */
    q = memchr(data, '\r', len);

    if (q) {
        for (p = q; p < data + len; p++) {
            if (*p != '\r') {
                *q++ = *p;
            }
        }

        len = q - data;
    }

    if (chat->event.len) {
        if (ngx_http_callhq_text_add(r->main->pool, &chat->event, data, len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        start = chat->event.data;
        end = start + chat->event.len;

    } else {
        start = data;
        end = data + len;
    }

    for (p = start; /* void */; p++) {
        p = memchr(p, '\n', end - p);

        if (p == NULL || p + 1 == end) {
            break;
        }

        if (p[1] != '\n') {
            continue;
        }

        if (ngx_http_callhq_sse_event(r, chat, start, p, last) != NGX_OK) {
            return NGX_ERROR;
        }

        start = p + 2;
        p++;

        if (start == end) {
            break;
        }
    }

    if (end - start == 0) {
        chat->event.len = 0;
        return NGX_OK;
    }

    if (chat->event.len) {
        chat->event.len = end - start;
        ngx_memmove(chat->event.data, start, chat->event.len);
        return NGX_OK;
    }

    return ngx_http_callhq_text_add(r->main->pool, &chat->event, start,
                                    end - start);
}


/* one upstream event: data lines of a Chat Completions chunk */

static ngx_int_t
ngx_http_callhq_sse_event(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, u_char *p, u_char *end,
    ngx_chain_t ***last)
{
    u_char                       *nl, *data;
    ngx_int_t                     rc;
    ngx_str_t                     delta;
    const char                   *err;
    ngx_http_callhq_json_want_t   want[5];

    data = NULL;

    for ( /* void */ ; p < end; p = nl + 1) {
        nl = ngx_strlchr(p, end, '\n');
        if (nl == NULL) {
            nl = end;
        }

        if (nl - p >= 5 && ngx_strncmp(p, "data:", 5) == 0) {
            data = p + 5;
            if (data < nl && *data == ' ') {
                data++;
            }

            /* OpenAI-compatible servers put one JSON per data line */
            break;
        }
    }

    if (data == NULL) {
        return NGX_OK;
    }

    if (nl - data == 6 && ngx_strncmp(data, "[DONE]", 6) == 0) {
        chat->upstream_done = 1;
        return NGX_OK;
    }

    want[0].path = ngx_http_callhq_delta_text;
    want[1].path = ngx_http_callhq_finish_reason;
    want[2].path = ngx_http_callhq_prompt_tokens;
    want[3].path = ngx_http_callhq_completion_tokens;
    want[4].path = ngx_http_callhq_delta_tools;

    err = ngx_http_callhq_json_check(data, nl, NULL, want, 5);
    if (err) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "callhq: model sent an event that is not JSON: %s",
                      err);
        return NGX_OK;
    }

    rc = NGX_OK;

    /* checked JSON: the escaped text goes on as it is */
    if (ngx_http_callhq_json_string(&want[0], &delta) == NGX_OK && delta.len) {
        if (ngx_http_callhq_text_add(r->main->pool, &chat->reply,
                                     delta.data, delta.len)
            != NGX_OK)
        {
            rc = NGX_ERROR;

        } else {
            rc = ngx_http_callhq_answer_delta(r, chat, &delta, last);
        }
    }

    if (rc == NGX_OK && want[4].value && want[4].value[0] == '[') {
        rc = ngx_http_callhq_tools_add(r, chat, want[4].value, want[4].end,
                                       last);
    }

    if (want[1].value && !ngx_http_callhq_json_is(&want[1], "null")) {
        chat->upstream_done = 1;
    }

    ngx_http_callhq_chat_usage(chat, &want[2]);

    return rc;
}


/*
 * A non-streamed reply: one Chat Completions object.  Its text stays in
 * the reply buffer, escaped as it came: from here on chat->reply is that.
 */

ngx_int_t
ngx_http_callhq_reply_parse(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat)
{
    u_char                       *p, *end;
    ngx_str_t                     text;
    const char                   *err;
    ngx_http_callhq_json_want_t   want[4];

    p = chat->reply.data;
    end = p + chat->reply.len;

    chat->reply.len = 0;

    if (p == NULL) {
        return NGX_ERROR;
    }

    want[0].path = ngx_http_callhq_reply_text;
    want[1].path = ngx_http_callhq_prompt_tokens;
    want[2].path = ngx_http_callhq_completion_tokens;
    want[3].path = ngx_http_callhq_reply_tools;

    err = ngx_http_callhq_json_check(p, end, NULL, want, 4);
    if (err) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: model reply is not JSON: %s", err);
        return NGX_ERROR;
    }

    if (want[3].value && want[3].value[0] == '['
        && ngx_http_callhq_tools_add(r, chat, want[3].value, want[3].end,
                                     NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a reply that calls tools may say nothing: its content is null */
    if (ngx_http_callhq_json_string(&want[0], &text) != NGX_OK) {

        if (!ngx_http_callhq_chat_called(chat)) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "callhq: model reply has no choices[0].message."
                          "content");
            return NGX_ERROR;
        }

        text.data = p;
        text.len = 0;
    }

    ngx_http_callhq_chat_usage(chat, &want[1]);

    /* the text lies within the buffer, after where it is moved to */
    ngx_memmove(chat->reply.data, text.data, text.len);
    chat->reply.len = text.len;
    chat->reply.data[text.len] = '\0';

    chat->upstream_done = 1;

    return NGX_OK;
}


/* token usage (want[0] prompt, want[1] completion), when reported */

static void
ngx_http_callhq_chat_usage(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_json_want_t *want)
{
    if (want[0].value || want[1].value) {
        chat->prompt_tokens = ngx_http_callhq_json_count(&want[0]);
        chat->completion_tokens = ngx_http_callhq_json_count(&want[1]);
    }
}


ngx_int_t
ngx_http_callhq_text_add(ngx_pool_t *pool, ngx_http_callhq_text_t *t,
    u_char *data, size_t len)
{
    u_char  *p;
    size_t   size;

    if (t->len + len + 1 > t->size) {
        size = ngx_max(2 * t->size, t->len + len + 1);
        size = ngx_max(size, 256);

        p = ngx_pnalloc(pool, size);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (t->len) {
            ngx_memcpy(p, t->data, t->len);
        }

        if (t->data) {
            (void) ngx_pfree(pool, t->data);
        }

        t->data = p;
        t->size = size;
    }

    ngx_memcpy(t->data + t->len, data, len);
    t->len += len;
    t->data[t->len] = '\0';

    return NGX_OK;
}
