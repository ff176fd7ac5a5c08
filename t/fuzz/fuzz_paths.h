
/*
 * The paths the module wants of its texts (as in ngx_http_callhq_api.c
 * and ngx_http_callhq_filter.c, where they are static), and generic ones
 * over the names "a", "b" and the first item, up to three steps, which
 * the fuzzers give ngx_http_callhq_json_check() as well.
 */


#ifndef _FUZZ_PATHS_H_INCLUDED_
#define _FUZZ_PATHS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_callhq_json.h"


/* the request body (api.c) */
static ngx_str_t  fuzz_stream[] = {
    ngx_string("stream"), ngx_null_string
};

/* a whole reply, a stream event (filter.c) */
static ngx_str_t  fuzz_reply_text[] = {
    ngx_string("choices"), NGX_HTTP_CALLHQ_JSON_FIRST, ngx_string("message"),
    ngx_string("content"), ngx_null_string
};

static ngx_str_t  fuzz_delta_text[] = {
    ngx_string("choices"), NGX_HTTP_CALLHQ_JSON_FIRST, ngx_string("delta"),
    ngx_string("content"), ngx_null_string
};

static ngx_str_t  fuzz_finish_reason[] = {
    ngx_string("choices"), NGX_HTTP_CALLHQ_JSON_FIRST,
    ngx_string("finish_reason"), ngx_null_string
};

static ngx_str_t  fuzz_prompt_tokens[] = {
    ngx_string("usage"), ngx_string("prompt_tokens"), ngx_null_string
};

static ngx_str_t  fuzz_completion_tokens[] = {
    ngx_string("usage"), ngx_string("completion_tokens"), ngx_null_string
};


#define FUZZ_MAX_WANTS  63      /* fewer than the bits of an ngx_uint_t */
#define FUZZ_MAX_STEPS  4


typedef struct {
    ngx_str_t   step[FUZZ_MAX_STEPS + 1];
} fuzz_path_t;


/*
 * Paths over "a", "b", "" and the first item: 4 + 16 + 64 would be too
 * many, so the empty name only at the first two steps.  Returns how many.
 */

static ngx_uint_t
fuzz_generic_paths(fuzz_path_t *path, ngx_uint_t max)
{
    ngx_uint_t        n, len, i, k, c, code, base;
    static ngx_str_t  seg[] = {
        ngx_string("a"), ngx_string("b"), NGX_HTTP_CALLHQ_JSON_FIRST,
        ngx_string("")
    };

    n = 0;

    for (len = 1; len <= 3; len++) {
        base = (len < 3) ? 4 : 3;

        for (k = 1, i = 0; i < len; i++) {
            k *= base;
        }

        for (code = 0; code < k && n < max; code++) {
            for (c = code, i = 0; i < len; i++, c /= base) {
                path[n].step[i] = seg[c % base];
            }

            path[n].step[len].len = 0;
            path[n].step[len].data = NULL;
            n++;
        }
    }

    return n;
}


#endif /* _FUZZ_PATHS_H_INCLUDED_ */
