
/*
 * libFuzzer target: the SSE framer of ngx_http_callhq_filter.c (a model's
 * stream cut into events, an event that straddles buffers carried over),
 * on arbitrary bytes as the model's stream.  See t/fuzz/README.
 *
 * filter.c is included whole, so that its static framer is called as the
 * body filter calls it, with nothing of filter.c changed; what it calls
 * outside itself is stubbed below (answer_delta writes down each delta,
 * ngx_log_error_core each warning) or comes from fuzz_pool.c (the pool:
 * exact-size blocks, ngx_pfree() frees at once) and json_scan.c.  The
 * stream is fed:
 *   - as one buffer;
 *   - one byte a buffer (the stream cut at every byte at once);
 *   - in two and in three buffers, cut where a hash of the input says
 *     (so that each input costs linear time; over the runs, every place
 *     is cut);
 * each buffer a block of exactly its size (ASan sees a read past it).
 * Every feeding must give what the reference gives: the stream with its
 * CRs taken out, cut at each blank line ("\n\n") in one pass, each whole
 * event handed to the framer's own event reader.  Checked: the deltas and
 * warnings in order, the reply kept, the end seen ([DONE] or a
 * finish_reason), the token counts, and the cut event carried over (the
 * bytes after the last blank line).
 */


#include "ngx_http_callhq_filter.c"

#include "fuzz_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define fail(...)                                                             \
    do {                                                                      \
        fprintf(stderr, "fuzz_sse: " __VA_ARGS__);                            \
        fprintf(stderr, "\n");                                                \
        abort();                                                              \
    } while (0)


/* what filter.c refers to outside itself */

ngx_module_t                      ngx_http_callhq_module;
ngx_module_t                      ngx_http_core_module;
ngx_http_output_header_filter_pt  ngx_http_top_header_filter;
ngx_http_output_body_filter_pt    ngx_http_top_body_filter;


typedef struct {
    u_char   *data;
    size_t    len;
    size_t    size;
} fuzz_log_t;

static fuzz_log_t  *fuzz_log;


static void
fuzz_log_add(const void *data, size_t len)
{
    u_char  *p;

    if (fuzz_log->len + len > fuzz_log->size) {
        fuzz_log->size = 2 * (fuzz_log->len + len) + 64;
        p = realloc(fuzz_log->data, fuzz_log->size);
        if (p == NULL) {
            abort();
        }

        fuzz_log->data = p;
    }

    memcpy(fuzz_log->data + fuzz_log->len, data, len);
    fuzz_log->len += len;
}


ngx_int_t
ngx_http_callhq_answer_delta(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *delta, ngx_chain_t ***last)
{
    char  n[32];

    snprintf(n, sizeof(n), "delta %zu:", delta->len);
    fuzz_log_add(n, strlen(n));
    fuzz_log_add(delta->data, delta->len);
    fuzz_log_add("\n", 1);

    return NGX_OK;
}


void ngx_cdecl
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    char  n[32];

    snprintf(n, sizeof(n), "log %lu\n", (unsigned long) level);
    fuzz_log_add(n, strlen(n));
}


void *
ngx_array_push(ngx_array_t *a)
{
    abort();
}


/* the body filter's backpressure, around the framer: not called here */

ngx_chain_t *
ngx_alloc_chain_link(ngx_pool_t *pool)
{
    abort();
}


void
ngx_chain_update_chains(ngx_pool_t *p, ngx_chain_t **free, ngx_chain_t **busy,
    ngx_chain_t **out, ngx_buf_tag_t tag)
{
    abort();
}


ngx_int_t
ngx_http_callhq_chat_precontent(ngx_http_request_t *r)
{
    abort();
}


typedef struct {
    fuzz_log_t               log;
    ngx_http_callhq_chat_t   chat;
} fuzz_run_t;


static ngx_log_t           fuzz_nlog;
static ngx_connection_t    fuzz_c;
static ngx_http_request_t  fuzz_r;


static void
run_start(fuzz_run_t *run)
{
    memset(run, 0, sizeof(fuzz_run_t));
    fuzz_log = &run->log;
}


/* the framer on one buffer of exactly len bytes */

static void
feed(fuzz_run_t *run, const u_char *data, size_t len)
{
    u_char        *b;
    ngx_chain_t   *out, **last;

    b = malloc(len ? len : 1);
    if (b == NULL) {
        abort();
    }

    memcpy(b, data, len);
    out = NULL;
    last = &out;

    if (ngx_http_callhq_sse(&fuzz_r, &run->chat, b, len, &last) != NGX_OK) {
        fail("the framer failed on %zu bytes", len);
    }

    free(b);
}


static void
reference(fuzz_run_t *run, const u_char *data, size_t size)
{
    u_char        *s, *start, *p, *end;
    size_t         i, n;
    ngx_chain_t   *out, **last;

    s = malloc(size ? size : 1);
    if (s == NULL) {
        abort();
    }

    for (i = 0, n = 0; i < size; i++) {
        if (data[i] != '\r') {
            s[n++] = data[i];
        }
    }

    start = s;
    end = s + n;
    out = NULL;
    last = &out;

    for (p = s; p + 1 < end; p++) {
        if (p[0] == '\n' && p[1] == '\n') {
            if (ngx_http_callhq_sse_event(&fuzz_r, &run->chat, start, p,
                                          &last)
                != NGX_OK)
            {
                fail("the event reader failed");
            }

            start = p + 2;
            p++;
        }
    }

    /* the reply out of the pool, which each feeding resets */
    if (run->chat.reply.len) {
        p = malloc(run->chat.reply.len);
        if (p == NULL) {
            abort();
        }

        memcpy(p, run->chat.reply.data, run->chat.reply.len);
        run->chat.reply.data = p;
    }

    /* what is left: the cut event the framer must carry */
    run->chat.event.data = start;
    run->chat.event.len = end - start;
    run->chat.event.size = 0;

    fuzz_log_add("end\n", 4);
    fuzz_log = NULL;

    /* s stays until the comparisons are done: see LLVMFuzzerTestOneInput */
    run->chat.sr = (ngx_http_request_t *) s;
}


static void
compare(fuzz_run_t *want, fuzz_run_t *got, const char *how, size_t cut)
{
    ngx_http_callhq_chat_t  *w, *g;

    fuzz_log = &got->log;
    fuzz_log_add("end\n", 4);
    fuzz_log = NULL;

    w = &want->chat;
    g = &got->chat;

    if (got->log.len != want->log.len
        || memcmp(got->log.data, want->log.data, want->log.len) != 0)
    {
        fail("%s (cut %zu): the deltas differ from the reference:\n"
             "%.*s\n-- expected --\n%.*s", how, cut,
             (int) got->log.len, got->log.data,
             (int) want->log.len, want->log.data);
    }

    if (g->reply.len != w->reply.len
        || (w->reply.len
            && memcmp(g->reply.data, w->reply.data, w->reply.len) != 0))
    {
        fail("%s (cut %zu): the reply kept differs", how, cut);
    }

    if (g->upstream_done != w->upstream_done
        || g->prompt_tokens != w->prompt_tokens
        || g->completion_tokens != w->completion_tokens)
    {
        fail("%s (cut %zu): end %u/%u, tokens %ld/%ld %ld/%ld", how, cut,
             g->upstream_done, w->upstream_done,
             (long) g->prompt_tokens, (long) w->prompt_tokens,
             (long) g->completion_tokens, (long) w->completion_tokens);
    }

    if (g->event.len != w->event.len
        || (w->event.len
            && memcmp(g->event.data, w->event.data, w->event.len) != 0))
    {
        fail("%s (cut %zu): %zu bytes carried over, expected %zu", how, cut,
             g->event.len, w->event.len);
    }

    free(got->log.data);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t      i, cut, cut2;
    uint32_t    h;
    fuzz_run_t  want, got;

    fuzz_nlog.log_level = NGX_LOG_DEBUG;
    fuzz_c.log = &fuzz_nlog;
    fuzz_r.connection = &fuzz_c;
    fuzz_r.main = &fuzz_r;
    fuzz_r.pool = NULL;

    run_start(&want);
    reference(&want, data, size);
    fuzz_pool_reset();

    /* whole */
    run_start(&got);
    feed(&got, data, size);
    compare(&want, &got, "whole", size);
    fuzz_pool_reset();

    /* one byte a buffer */
    run_start(&got);
    for (i = 0; i < size; i++) {
        feed(&got, data + i, 1);
    }
    compare(&want, &got, "bytewise", 1);
    fuzz_pool_reset();

    /*
     * two and three buffers, cut where the input's hash says: over the
     * runs every place is cut, and each input costs linear time
     */
    if (size > 1) {
        h = 2166136261u;
        for (i = 0; i < size; i++) {
            h = (h ^ data[i]) * 16777619u;
        }

        cut = 1 + h % (size - 1);

        run_start(&got);
        feed(&got, data, cut);
        feed(&got, data + cut, size - cut);
        compare(&want, &got, "two", cut);
        fuzz_pool_reset();

        cut2 = cut + (h >> 16) % (size - cut);

        run_start(&got);
        feed(&got, data, cut);
        feed(&got, data + cut, cut2 - cut);
        feed(&got, data + cut2, size - cut2);
        compare(&want, &got, "three", cut2);
        fuzz_pool_reset();
    }

    free(want.log.data);
    free(want.chat.sr);

    if (want.chat.reply.len) {
        free(want.chat.reply.data);
    }

    fuzz_pool_reset();

    return 0;
}
