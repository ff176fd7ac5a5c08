
/*
 * libFuzzer target 2: ngx_http_callhq_json_scan.c against jansson.  See
 * t/fuzz/README.
 *
 * json_loadb(data, size, 0) and ngx_http_callhq_json_check() must agree
 * on every input, but for these differences, which are counted and
 * reported once per run:
 *
 *   depth     we reject more than NGX_HTTP_CALLHQ_JSON_MAX_DEPTH (512)
 *             nested arrays and objects, jansson takes up to 2048;
 *   number    jansson rejects integers beyond int64 ("too big integer")
 *             and reals beyond double ("real number overflow"), which
 *             jsonb's numeric takes and so does the scanner;
 *   NUL       jansson skips a NUL byte right after a number or a literal
 *             ("[1\0]" is [1] to it), a jansson bug; the scanner rejects.
 *
 * Top-level scalars and \u0000 need no exception: jansson rejects both
 * without JSON_DECODE_ANY and JSON_ALLOW_NUL, as the scanner does.
 *
 * When both accept, the text is checked again with wants: the module's
 * paths, generic ones (fuzz_paths.h) and paths to values jansson has
 * (printable ASCII names; the first item of arrays).  Each want must be
 * noted exactly where jansson's tree, in which the last of repeated
 * members counts, has a value: [value, end) must load as that value;
 * json_string's raw contents, quoted again, as that string, with
 * text_len() equal to json_string_length(); json_count() and json_is()
 * must agree with it.  Where jansson has no value, nothing is noted.
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
        fprintf(stderr, "fuzz_jansson: " __VA_ARGS__);                        \
        fprintf(stderr, "\n");                                                \
        abort();                                                              \
    } while (0)


static u_char  *buf, *end;

static unsigned long  known_depth, known_number, known_nul, known_range;


static void
known(unsigned long *n, const char *what)
{
    if ((*n)++ == 0) {
        fprintf(stderr, "fuzz_jansson: known difference: %s "
                "(reported once)\n", what);
    }
}


/* the deepest nesting of arrays and objects, strings skipped */

static ngx_uint_t
depth_of(u_char *p, u_char *last)
{
    ngx_uint_t  d, max;

    d = 0;
    max = 0;

    for ( /* void */ ; p < last; p++) {
        if (*p == '"') {
            for (p++; p < last && *p != '"'; p++) {
                if (*p == '\\') {
                    p++;
                }
            }

        } else if (*p == '[' || *p == '{') {
            if (++d > max) {
                max = d;
            }

        } else if ((*p == ']' || *p == '}') && d) {
            d--;
        }
    }

    return max;
}


/*
 * jansson 2.14 drops a NUL byte it reads ahead and puts back (its stream
 * buffer is NUL-terminated, so an ungot NUL reads as "refill"): after a
 * number or true/false/null, a NUL is skipped.  That is the difference
 * if the text without its NULs is one the scanner takes.
 */

static int
nul_only(size_t size)
{
    int          ok;
    u_char      *q, *p, *last;
    const char  *err;

    q = malloc(size);
    if (q == NULL) {
        return 0;
    }

    for (p = buf, last = q; p < end; p++) {
        if (*p != '\0') {
            *last++ = *p;
        }
    }

    err = ngx_http_callhq_json_check(q, last, NULL, NULL, 0);

    ok = (err == NULL
          || (strcmp(err, "nested too deeply") == 0
              && depth_of(q, last) > NGX_HTTP_CALLHQ_JSON_MAX_DEPTH));

    free(q);

    return ok;
}


static int
printable(const char *key)
{
    for ( /* void */ ; *key; key++) {
        if ((u_char) *key < 0x20 || (u_char) *key > 0x7e) {
            return 0;
        }
    }

    return 1;
}


/* paths to values jansson has, breadth first */

static ngx_uint_t
tree_paths(json_t *root, fuzz_path_t *path, ngx_uint_t max)
{
    size_t       len;
    json_t      *j, *m;
    ngx_uint_t   n, i, k, d;
    const char  *key;

    n = 0;

    /* path[i] leads to a value; extend each in turn by one step */
    path[n++].step[0].data = NULL;

    for (i = 0; i < n && n < max; i++) {
        j = root;

        for (d = 0; path[i].step[d].data; d++) {
            j = (path[i].step[d].data == ngx_http_callhq_json_first)
                ? json_array_get(j, 0)
                : json_object_getn(j, (char *) path[i].step[d].data,
                                   path[i].step[d].len);
        }

        if (d == FUZZ_MAX_STEPS) {
            continue;
        }

        if (json_is_array(j) && json_array_size(j)) {
            path[n] = path[i];
            path[n].step[d].len = 0;
            path[n].step[d].data = ngx_http_callhq_json_first;
            path[n].step[d + 1].data = NULL;
            n++;
            continue;
        }

        k = 0;

        json_object_keylen_foreach(j, key, len, m) {
            if (n == max || k++ == 8) {
                break;
            }

            if (!printable(key)) {
                /* not a name the scanner matches escaped, nor the module */
                continue;
            }

            path[n] = path[i];
            path[n].step[d].len = len;
            path[n].step[d].data = (u_char *) key;
            path[n].step[d + 1].data = NULL;
            n++;
        }
    }

    /* the empty path wants nothing: drop it */
    path[0] = path[--n];

    return n;
}


static json_t *
follow(json_t *j, ngx_str_t *step)
{
    for ( /* void */ ; step->data && j; step++) {
        if (step->data == ngx_http_callhq_json_first) {
            j = json_is_array(j) ? json_array_get(j, 0) : NULL;

        } else {
            j = json_is_object(j)
                ? json_object_getn(j, (char *) step->data, step->len) : NULL;
        }
    }

    return j;
}


static void
path_text(ngx_str_t *step, char *out, size_t size)
{
    size_t  n;

    n = 0;
    out[0] = '\0';

    for ( /* void */ ; step->data && n < size; step++) {
        if (step->data == ngx_http_callhq_json_first) {
            n += snprintf(out + n, size - n, "[0]");

        } else {
            n += snprintf(out + n, size - n, ".%.*s", (int) step->len,
                          step->data);
        }
    }
}


static void
compare(ngx_http_callhq_json_want_t *w, json_t *root)
{
    char           p[256];
    u_char        *q;
    size_t         n;
    json_t        *j, *x;
    ngx_int_t      c;
    ngx_str_t      raw;
    json_int_t     i;
    json_error_t   e;

    j = follow(root, w->path);

    path_text(w->path, p, sizeof(p));

    if (j == NULL) {
        if (w->value != NULL) {
            fail("$%s: noted at [%ld, %ld), jansson has no such value", p,
                 (long) (w->value - buf), (long) (w->end - buf));
        }

        return;
    }

    if (w->value == NULL) {
        fail("$%s: not noted, jansson has a value (type %d)", p,
             (int) json_typeof(j));
    }

    if (w->value < buf || w->end <= w->value || w->end > end) {
        fail("$%s: [%p, %p) is not within the text", p, (void *) w->value,
             (void *) w->end);
    }

    x = json_loadb((char *) w->value, w->end - w->value, JSON_DECODE_ANY, &e);

    if (x == NULL || !json_equal(x, j)) {
        fail("$%s: [%ld, %ld) \"%.*s\" is not jansson's value (%s)", p,
             (long) (w->value - buf), (long) (w->end - buf),
             (int) (w->end - w->value), w->value, x ? "differs" : e.text);
    }

    json_decref(x);

    if (ngx_http_callhq_json_is(w, "true") != json_is_true(j)
        || ngx_http_callhq_json_is(w, "false") != json_is_false(j)
        || ngx_http_callhq_json_is(w, "null") != json_is_null(j))
    {
        fail("$%s: json_is disagrees with jansson's type %d", p,
             (int) json_typeof(j));
    }

    c = ngx_http_callhq_json_count(w);

    if (json_is_integer(j) && (i = json_integer_value(j)) >= 0) {
        /* json_count takes 18 digits at least; beyond, 0 is allowed */
        if (c != i && !(c == 0 && i > 999999999999999999LL)) {
            fail("$%s: json_count %ld, integer %lld", p, (long) c,
                 (long long) i);
        }

    } else if (c != 0) {
        fail("$%s: json_count %ld of a value not a non-negative integer", p,
             (long) c);
    }

    if (ngx_http_callhq_json_string(w, &raw) != NGX_OK) {
        if (json_is_string(j)) {
            fail("$%s: json_string declined a string", p);
        }

        return;
    }

    if (!json_is_string(j)) {
        fail("$%s: json_string took a value of type %d", p,
             (int) json_typeof(j));
    }

    n = ngx_http_callhq_json_text_len(raw.data, raw.len);

    if (n != json_string_length(j)) {
        fail("$%s: text_len %zu, json_string_length %zu", p, n,
             json_string_length(j));
    }

    /* the raw contents, quoted again, must load as jansson's string */
    q = malloc(raw.len + 2);
    if (q == NULL) {
        return;
    }

    q[0] = '"';
    memcpy(q + 1, raw.data, raw.len);
    q[raw.len + 1] = '"';

    x = json_loadb((char *) q, raw.len + 2, JSON_DECODE_ANY, &e);

    if (x == NULL || !json_equal(x, j)) {
        fail("$%s: json_string's raw contents \"%.*s\" are not the string "
             "jansson read (%s)", p, (int) raw.len, raw.data,
             x ? "differs" : e.text);
    }

    json_decref(x);
    free(q);
}


static void
wants(json_t *j, fuzz_path_t *path, ngx_uint_t n)
{
    u_char                       *at;
    ngx_uint_t                    i;
    const char                   *err;
    ngx_http_callhq_json_want_t   want[FUZZ_MAX_WANTS];

    for (i = 0; i < n; i++) {
        want[i].path = path[i].step;
    }

    err = ngx_http_callhq_json_check(buf, end, &at, want, n);

    if (err != NULL) {
        fail("json_check with %lu wants: \"%s\" at %ld, without: OK",
             (unsigned long) n, err, (long) (at - buf));
    }

    for (i = 0; i < n; i++) {
        compare(&want[i], j);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char        *at;
    json_t        *j;
    ngx_uint_t     n;
    const char    *err;
    fuzz_path_t    path[FUZZ_MAX_WANTS];
    json_error_t   e;

    buf = malloc(size);
    if (buf == NULL) {
        return 0;
    }

    memcpy(buf, data, size);
    end = buf + size;

    err = ngx_http_callhq_json_check(buf, end, &at, NULL, 0);
    j = json_loadb((char *) buf, size, 0, &e);

    if (err == NULL && j == NULL) {
        if (strstr(e.text, "too big integer") != NULL
            || strstr(e.text, "too big negative integer") != NULL
            || strstr(e.text, "real number overflow") != NULL)
        {
            known(&known_number, "a number beyond int64/double: "
                  "jansson rejects, the scanner accepts");

        } else {
            fail("we accept, jansson rejects: %s (line %d, column %d, "
                 "position %d)", e.text, e.line, e.column, e.position);
        }

    } else if (err != NULL && j != NULL) {
        if (strcmp(err, "nested too deeply") == 0
            && depth_of(buf, end) > NGX_HTTP_CALLHQ_JSON_MAX_DEPTH)
        {
            known(&known_depth, "nesting deeper than 512: the scanner "
                  "rejects, jansson accepts");

        } else if (strcmp(err, NGX_HTTP_CALLHQ_JSON_RANGE) == 0) {
            known(&known_range, "a number PostgreSQL's numeric cannot hold "
                  "(over 16383 digits after the point, as jansson's "
                  "double underflows): the scanner rejects, jansson "
                  "accepts");

        } else if (memchr(buf, '\0', size) != NULL && nul_only(size)) {
            known(&known_nul, "a NUL byte right after a number or literal: "
                  "jansson skips it and accepts, the scanner rejects");

        } else {
            fail("we reject (%s at offset %ld), jansson accepts", err,
                 (long) (at - buf));
        }

    } else if (err == NULL) {
        /* the module's paths and generic ones */
        n = fuzz_generic_paths(path, FUZZ_MAX_WANTS - 6);

        path[n].step[0] = fuzz_stream[0];
        path[n++].step[1].data = NULL;
        ngx_memcpy(path[n++].step, fuzz_reply_text, sizeof(fuzz_reply_text));
        ngx_memcpy(path[n++].step, fuzz_delta_text, sizeof(fuzz_delta_text));
        ngx_memcpy(path[n++].step, fuzz_finish_reason,
                   sizeof(fuzz_finish_reason));
        ngx_memcpy(path[n++].step, fuzz_prompt_tokens,
                   sizeof(fuzz_prompt_tokens));
        ngx_memcpy(path[n++].step, fuzz_completion_tokens,
                   sizeof(fuzz_completion_tokens));

        wants(j, path, n);

        /* paths to what jansson has */
        n = tree_paths(j, path, FUZZ_MAX_WANTS);

        if (n) {
            wants(j, path, n);
        }
    }

    json_decref(j);
    free(buf);

    return 0;
}
