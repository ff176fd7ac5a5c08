
/*
 * libFuzzer target: the query-string parser (ngx_http_callhq_args.c), on
 * arbitrary bytes as the query string.  See t/fuzz/README.
 *
 * The input is copied into a block of exactly its size (ASan sees a read
 * past it) and parsed from a pool of exact-size blocks (fuzz_pool.c).
 * Checked against a reference written the plain way (each parameter split
 * and decoded on its own, a repeated name joined by appending, as the
 * parser did before it was made linear):
 *   - the parser refuses (NGX_DECLINED, with one of its messages) exactly
 *     when a decoded name or value holds a NUL byte or is not UTF-8;
 *   - otherwise its text loads with jansson as an object with the names
 *     and joined values of the reference, nothing more;
 *   - what it allocates is linear in the input: at most 80 bytes a byte
 *     of query string, plus 256 (a repeated name joined again each time,
 *     the old way, allocates quadratically and fails this).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_callhq_args.h"
#include "fuzz_pool.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define fail(...)                                                             \
    do {                                                                      \
        fprintf(stderr, "fuzz_args: " __VA_ARGS__);                           \
        fprintf(stderr, "\n");                                                \
        abort();                                                              \
    } while (0)


static size_t
ref_decode(const u_char *p, size_t n, u_char *d)
{
    size_t  i, o;
    char    hex[3];

    for (i = 0, o = 0; i < n; /* void */) {
        if (p[i] == '+') {
            d[o++] = ' ';
            i++;

        } else if (p[i] == '%' && i + 3 <= n
                   && isxdigit(p[i + 1]) && isxdigit(p[i + 2]))
        {
            hex[0] = p[i + 1];
            hex[1] = p[i + 2];
            hex[2] = '\0';
            d[o++] = (u_char) strtol(hex, NULL, 16);
            i += 3;

        } else {
            d[o++] = p[i++];
        }
    }

    return o;
}


static int
utf8(const u_char *p, size_t n)
{
    json_t  *s;

    s = json_stringn((const char *) p, n);
    if (s == NULL) {
        return 0;
    }

    json_decref(s);
    return 1;
}


/* the expected object, or NULL when the parser must refuse */

static json_t *
reference(const u_char *q, size_t size)
{
    u_char        *k, *v, *joined;
    size_t         i, j, e, kn, vn, pn;
    json_t        *obj, *prev;
    const u_char  *eq;

    obj = json_object();
    k = malloc(size + 1);
    v = malloc(size + 1);

    if (obj == NULL || k == NULL || v == NULL) {
        abort();
    }

    for (i = 0; i <= size; i = j + 1) {
        for (j = i; j < size && q[j] != '&'; j++) { /* void */ }

        if (j == i) {
            continue;
        }

        eq = memchr(q + i, '=', j - i);
        e = eq ? (size_t) (eq - q) : j;

        kn = ref_decode(q + i, e - i, k);
        vn = (e < j) ? ref_decode(q + e + 1, j - e - 1, v) : 0;

        if (memchr(k, '\0', kn) || memchr(v, '\0', vn)
            || !utf8(k, kn) || !utf8(v, vn))
        {
            json_decref(obj);
            obj = NULL;
            break;
        }

        k[kn] = '\0';
        prev = json_object_get(obj, (char *) k);

        if (prev == NULL) {
            json_object_set_new(obj, (char *) k,
                                json_stringn((char *) v, vn));
            continue;
        }

        pn = json_string_length(prev);
        joined = malloc(pn + 1 + vn);
        if (joined == NULL) {
            abort();
        }

        memcpy(joined, json_string_value(prev), pn);
        joined[pn] = ',';
        memcpy(joined + pn + 1, v, vn);
        json_object_set_new(obj, (char *) k,
                            json_stringn((char *) joined, pn + 1 + vn));
        free(joined);
    }

    free(k);
    free(v);

    return obj;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char        *q;
    size_t         len;
    json_t        *want, *got, *value;
    ngx_int_t      rc;
    ngx_str_t      args, out, error;
    const char    *key;
    json_error_t   jerr;

    q = malloc(size ? size : 1);
    if (q == NULL) {
        return 0;
    }

    memcpy(q, data, size);
    args.data = size ? q : NULL;
    args.len = size;

    ngx_str_null(&out);
    ngx_str_null(&error);

    rc = ngx_http_callhq_args_json(NULL, &args, &out, &error);

    if (fuzz_pool_bytes > 80 * size + 256) {
        fail("%zu bytes allocated for %zu bytes of query string",
             fuzz_pool_bytes, size);
    }

    want = reference(q, size);

    if (want == NULL) {
        if (rc != NGX_DECLINED || error.len == 0) {
            fail("accepted what the reference refuses (rc %ld)", (long) rc);
        }

        if (!(error.len == sizeof("query string is not valid UTF-8") - 1
              && memcmp(error.data, "query string is not valid UTF-8",
                        error.len) == 0)
            && !(error.len >= sizeof("NUL byte (%00)") - 1
                 && memcmp(error.data + error.len
                           - (sizeof("NUL byte (%00)") - 1),
                           "NUL byte (%00)", sizeof("NUL byte (%00)") - 1)
                    == 0))
        {
            fail("refused with \"%.*s\"", (int) error.len, error.data);
        }

        goto done;
    }

    if (rc != NGX_OK) {
        fail("refused what the reference takes (rc %ld: \"%.*s\")",
             (long) rc, (int) error.len, error.data);
    }

    if (out.data == NULL || out.data[out.len] != '\0'
        || strlen((char *) out.data) != out.len)
    {
        fail("the text is not NUL-terminated at its length");
    }

    got = json_loads((char *) out.data, 0, &jerr);
    if (got == NULL || !json_is_object(got)) {
        fail("the text does not load as an object: %s", jerr.text);
    }

    if (json_object_size(got) != json_object_size(want)) {
        fail("%zu names, the reference has %zu", json_object_size(got),
             json_object_size(want));
    }

    json_object_foreach(want, key, value) {
        len = json_string_length(value);

        if (!json_is_string(json_object_get(got, key))
            || json_string_length(json_object_get(got, key)) != len
            || memcmp(json_string_value(json_object_get(got, key)),
                      json_string_value(value), len) != 0)
        {
            fail("\"%s\" differs from the reference", key);
        }
    }

    json_decref(got);

done:

    json_decref(want);
    fuzz_pool_reset();
    free(q);

    return 0;
}
