
/*
 * libFuzzer target 1: memory safety of ngx_http_callhq_json_scan.c on
 * arbitrary bytes.  See t/fuzz/README.
 *
 * The input is copied into a malloc'ed block of exactly its size, so that
 * AddressSanitizer reports any read at or past end.  It is checked as the
 * module checks its three kinds of text (a request body wanting "stream",
 * a reply, a stream event: fuzz_paths.h), then with 63 wants at once (47
 * generic paths and the module's), and with none; every want must be
 * reset, every value noted lie within the text and look like a whole
 * value, and the verdict and *at must not depend on the wants.  Whether the check passed or not, json_string/_count/_is and
 * text_len run on every want, json_where on *at, text_len on the input.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_callhq_json.h"
#include "fuzz_paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define fail(...)                                                             \
    do {                                                                      \
        fprintf(stderr, "fuzz_scan: " __VA_ARGS__);                           \
        fprintf(stderr, "\n");                                                \
        abort();                                                              \
    } while (0)


static u_char  *buf, *end;


static void
where(u_char *at)
{
    u_char      w[sizeof("line , column ") + 2 * NGX_INT_T_LEN], *last;
    char        want[sizeof(w)];
    u_char     *p, *bol;
    ngx_uint_t  line;

    /* as ngx_http_callhq_api.c calls it */
    last = ngx_http_callhq_json_where(w, sizeof(w) - 1, buf, at);

    if (last < w || last > w + sizeof(w) - 1) {
        fail("json_where returned %p outside its buffer", (void *) last);
    }

    *last = '\0';

    line = 1;
    bol = buf;

    for (p = buf; p < at; p++) {
        if (*p == '\n') {
            line++;
            bol = p + 1;
        }
    }

    snprintf(want, sizeof(want), "line %lu, column %lu",
             (unsigned long) line, (unsigned long) (at - bol) + 1);

    if (strcmp((char *) w, want) != 0) {
        fail("json_where: \"%s\", expected \"%s\"", w, want);
    }

    /* as ngx_http_callhq_api.c calls it on a number out of range */
    last = ngx_http_callhq_json_path(w, sizeof(w) - 1, buf, at);

    if (last < w || last > w + sizeof(w) - 1) {
        fail("json_path returned %p outside its buffer", (void *) last);
    }
}


static void
use(ngx_http_callhq_json_want_t *w, ngx_uint_t i, int checked)
{
    u_char      c;
    size_t      n;
    ngx_int_t   rc, t, f, z;
    ngx_str_t   raw;
    ngx_uint_t  members;

    if ((w->value == NULL) != (w->end == NULL)) {
        fail("want %lu: value %p, end %p", (unsigned long) i,
             (void *) w->value, (void *) w->end);
    }

    if (w->value == NULL) {
        goto lookups;
    }

    if (w->value < buf || w->end <= w->value || w->end > end) {
        fail("want %lu: [%p, %p) is not within the text [%p, %p)",
             (unsigned long) i, (void *) w->value, (void *) w->end,
             (void *) buf, (void *) end);
    }

    /* a value noted is one the scan went past, so whole even on failure */
    c = *w->value;

    if (!(c == '{' || c == '[' || c == '"' || c == '-'
          || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n'))
    {
        fail("want %lu: offset %ld is no value's start (%s)",
             (unsigned long) i, (long) (w->value - buf),
             checked ? "checked" : "not checked");
    }

    if ((c == '"' && (w->end - w->value < 2 || w->end[-1] != '"'))
        || (c == '{' && w->end[-1] != '}')
        || (c == '[' && w->end[-1] != ']'))
    {
        fail("want %lu: [%ld, %ld) does not end as it starts",
             (unsigned long) i, (long) (w->value - buf),
             (long) (w->end - buf));
    }

lookups:

    /* as ngx_http_callhq_api.c calls it on a checked body */
    if (checked) {
        ngx_http_callhq_json_members(w, &members, &n, &raw);

        if (w->value == NULL || *w->value != '{') {
            if (members || n || raw.data) {
                fail("want %lu: members of no object", (unsigned long) i);
            }

        } else if (n > (size_t) (w->end - w->value)
                   || (raw.data
                       && (raw.data <= w->value
                           || raw.data + raw.len >= w->end)))
        {
            fail("want %lu: json_members outside the object",
                 (unsigned long) i);
        }
    }

    rc = ngx_http_callhq_json_string(w, &raw);

    if (rc == NGX_OK) {
        if (w->value == NULL || raw.data != w->value + 1
            || raw.data + raw.len + 1 != w->end)
        {
            fail("want %lu: json_string gave [%p, +%zu)", (unsigned long) i,
                 (void *) raw.data, raw.len);
        }

        n = ngx_http_callhq_json_text_len(raw.data, raw.len);

        if (n > raw.len) {
            fail("want %lu: text_len %zu > escaped length %zu",
                 (unsigned long) i, n, raw.len);
        }

    } else if (rc != NGX_DECLINED
               || (w->value != NULL && *w->value == '"'))
    {
        fail("want %lu: json_string returned %ld", (unsigned long) i,
             (long) rc);
    }

    if (ngx_http_callhq_json_count(w) < 0) {
        fail("want %lu: json_count < 0", (unsigned long) i);
    }

    t = ngx_http_callhq_json_is(w, "true");
    f = ngx_http_callhq_json_is(w, "false");
    z = ngx_http_callhq_json_is(w, "null");

    if (t < 0 || f < 0 || z < 0 || t + f + z > 1
        || ((t || f || z) && w->value == NULL))
    {
        fail("want %lu: json_is true %ld, false %ld, null %ld",
             (unsigned long) i, (long) t, (long) f, (long) z);
    }
}


static const char *
check(ngx_http_callhq_json_want_t *want, ngx_uint_t n, u_char **at)
{
    ngx_uint_t   i;
    const char  *err;

    for (i = 0; i < n; i++) {
        /* the check must reset what it did not find */
        want[i].value = (u_char *) "stale";
        want[i].end = (u_char *) "stale" + 5;
    }

    *at = (u_char *) 1;

    err = ngx_http_callhq_json_check(buf, end, at, want, n);

    if (*at < buf || *at > end) {
        fail("json_check: at %p outside [%p, %p]", (void *) *at,
             (void *) buf, (void *) end);
    }

    for (i = 0; i < n; i++) {
        use(&want[i], i, err == NULL);
    }

    return err;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                       *at, *at0;
    ngx_uint_t                    i, n;
    const char                   *err, *err0;
    fuzz_path_t                   path[FUZZ_MAX_WANTS];
    ngx_http_callhq_json_want_t   want[FUZZ_MAX_WANTS];

    /* exactly size bytes: a read at end is a heap-buffer-overflow */
    buf = malloc(size);
    if (buf == NULL) {
        return 0;
    }

    memcpy(buf, data, size);
    end = buf + size;

    /* no wants: the verdict the others must repeat */
    err0 = ngx_http_callhq_json_check(buf, end, &at0, NULL, 0);

    if (at0 < buf || at0 > end) {
        fail("json_check: at %p outside [%p, %p]", (void *) at0,
             (void *) buf, (void *) end);
    }

    if (err0 != NULL) {
        where(at0);
    }

    if (ngx_http_callhq_json_check(buf, end, NULL, NULL, 0) != err0) {
        fail("json_check without at gave another verdict");
    }

    /* ngx_http_callhq_api.c: a request body */
    want[0].path = fuzz_stream;
    err = check(want, 1, &at);

    if (err != err0 || at != at0) {
        goto verdict;
    }

    /* ngx_http_callhq_filter.c: a stream event */
    want[0].path = fuzz_delta_text;
    want[1].path = fuzz_finish_reason;
    want[2].path = fuzz_prompt_tokens;
    want[3].path = fuzz_completion_tokens;
    err = check(want, 4, &at);

    if (err != err0 || at != at0) {
        goto verdict;
    }

    /* ngx_http_callhq_filter.c: a whole reply */
    want[0].path = fuzz_reply_text;
    want[1].path = fuzz_prompt_tokens;
    want[2].path = fuzz_completion_tokens;
    err = check(want, 3, &at);

    if (err != err0 || at != at0) {
        goto verdict;
    }

    /* generic wants, and the module's, as many as may be */
    n = fuzz_generic_paths(path, FUZZ_MAX_WANTS);

    for (i = 0; i < n; i++) {
        want[i].path = path[i].step;
    }

    want[n++].path = fuzz_stream;
    want[n++].path = fuzz_delta_text;
    want[n++].path = fuzz_finish_reason;
    want[n++].path = fuzz_reply_text;
    want[n++].path = fuzz_prompt_tokens;
    want[n++].path = fuzz_completion_tokens;

    while (n < FUZZ_MAX_WANTS) {
        want[n].path = want[n % 8].path;
        n++;
    }

    err = check(want, n, &at);

    if (err != err0 || at != at0) {
        goto verdict;
    }

    /* text_len on bytes that are not a checked string's contents */
    (void) ngx_http_callhq_json_text_len(buf, size);

    free(buf);

    return 0;

verdict:

    fail("json_check with wants: \"%s\" at %ld, without: \"%s\" at %ld",
         err ? err : "OK", (long) (at - buf), err0 ? err0 : "OK",
         (long) (at0 - buf));
}
