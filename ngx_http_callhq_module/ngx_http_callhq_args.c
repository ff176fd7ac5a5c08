
/*
 * ngx_http_callhq_module: the query string as one JSON object of strings,
 * the SQL functions' p_args.
 *
 * One pass splits and decodes the parameters, noting each under its name
 * (a hash, jansson's); a second joins each name's values: a repeated
 * name (?k=a&k=b, as clients send arrays) reads "a,b".  Every value is
 * copied once and every join is done once, so the work and the memory are
 * linear in the query string however often a name repeats.  A NUL byte
 * (%00) is refused here, naming the parameter: PostgreSQL's jsonb takes
 * no \u0000.  The file needs only a pool and jansson, so that t/fuzz/
 * runs it as it is.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_callhq_args.h"


typedef struct {
    u_char                        *key;        /* NUL-terminated */
    u_char                        *value;
    size_t                         len;
    ngx_uint_t                     next;       /* the name's next, or 0 */
} ngx_http_callhq_arg_t;


typedef struct {
    ngx_http_callhq_arg_t         *first;
    ngx_uint_t                     last;
    size_t                         len;        /* the values joined */
} ngx_http_callhq_arg_name_t;


static size_t ngx_http_callhq_args_decode(u_char *dst, u_char *p,
    u_char *last);
static ngx_int_t ngx_http_callhq_args_fail(ngx_pool_t *pool, ngx_str_t *error,
    u_char *key, const char *why);


static ngx_str_t  ngx_http_callhq_args_utf8 =
    ngx_string("query string is not valid UTF-8");


ngx_int_t
ngx_http_callhq_args_json(ngx_pool_t *pool, ngx_str_t *args, ngx_str_t *out,
    ngx_str_t *error)
{
    u_char                      *p, *last, *amp, *eq, *v, *d;
    char                        *s;
    size_t                       len;
    json_t                      *json, *names, *value, *idx;
    ngx_int_t                    rc;
    ngx_uint_t                   n, nargs, nnames, i, j;
    ngx_http_callhq_arg_t       *arg, *a;
    ngx_http_callhq_arg_name_t  *name, *nm;

    /* after an internal redirect, args.data may be unset when empty */
    p = NULL;
    last = NULL;

    if (args->len) {
        p = args->data;
        last = p + args->len;
    }

    n = 1;
    for (v = p; v < last; v++) {
        if (*v == '&') {
            n++;
        }
    }

    arg = ngx_palloc(pool, n * sizeof(ngx_http_callhq_arg_t));
    name = ngx_palloc(pool, n * sizeof(ngx_http_callhq_arg_name_t));
    json = json_object();
    names = json_object();

    rc = NGX_ERROR;

    if (arg == NULL || name == NULL || json == NULL || names == NULL) {
        goto done;
    }

    nargs = 0;
    nnames = 0;

    for ( /* void */ ; p < last; p = amp + 1) {
        amp = ngx_strlchr(p, last, '&');
        if (amp == NULL) {
            amp = last;
        }

        if (amp == p) {
            continue;
        }

        eq = ngx_strlchr(p, amp, '=');
        if (eq == NULL) {
            eq = amp;
        }

        /* decoded text is never longer than the encoded one */
        a = &arg[nargs];

        a->key = ngx_pnalloc(pool, amp - p + 2);
        if (a->key == NULL) {
            goto done;
        }

        len = ngx_http_callhq_args_decode(a->key, p, eq);
        a->key[len] = '\0';

        a->value = a->key + len + 1;
        a->len = (eq < amp) ? ngx_http_callhq_args_decode(a->value, eq + 1,
                                                          amp)
                            : 0;
        a->next = 0;

        if (ngx_strlen(a->key) != len) {
            rc = ngx_http_callhq_args_fail(pool, error, NULL,
                                           "a query parameter name must not "
                                           "contain a NUL byte (%00)");
            goto done;
        }

        idx = json_object_get(names, (char *) a->key);

        if (idx == NULL) {
            /* jansson refuses a name that is not UTF-8 */
            if (json_object_set_new(names, (char *) a->key,
                                    json_integer(nnames))
                != 0)
            {
                *error = ngx_http_callhq_args_utf8;
                rc = NGX_DECLINED;
                goto done;
            }

            nm = &name[nnames++];
            nm->first = a;
            nm->last = nargs;
            nm->len = a->len;

        } else {
            nm = &name[json_integer_value(idx)];
            arg[nm->last].next = nargs;
            nm->last = nargs;
            nm->len += 1 + a->len;
        }

        if (ngx_strlchr(a->value, a->value + a->len, '\0') != NULL) {
            rc = ngx_http_callhq_args_fail(pool, error, a->key,
                                           " must not contain a NUL byte "
                                           "(%00)");
            goto done;
        }

        nargs++;
    }

    for (i = 0; i < nnames; i++) {
        nm = &name[i];
        a = nm->first;

        if (a->next == 0) {
            v = a->value;

        } else {
            v = ngx_pnalloc(pool, nm->len);
            if (v == NULL) {
                goto done;
            }

            d = ngx_cpymem(v, a->value, a->len);

            for (j = a->next; j; j = arg[j].next) {
                *d++ = ',';
                d = ngx_cpymem(d, arg[j].value, arg[j].len);
            }
        }

        value = json_stringn((char *) v, nm->len);
        if (value == NULL) {
            *error = ngx_http_callhq_args_utf8;
            rc = NGX_DECLINED;
            goto done;
        }

        if (json_object_set_new(json, (char *) a->key, value) != 0) {
            goto done;
        }
    }

    s = json_dumps(json, JSON_COMPACT);
    if (s == NULL) {
        goto done;
    }

    len = ngx_strlen(s);

    out->data = ngx_pnalloc(pool, len + 1);
    if (out->data != NULL) {
        ngx_memcpy(out->data, s, len + 1);
        out->len = len;
        rc = NGX_OK;
    }

    free(s);

done:

    json_decref(json);
    json_decref(names);

    return rc;
}


/* %XX and '+' decoded; a '%' without two hex digits stays as it is */

static size_t
ngx_http_callhq_args_decode(u_char *dst, u_char *p, u_char *last)
{
    u_char      *d, c;
    ngx_uint_t   i, n[2];

    d = dst;

    while (p < last) {
        c = *p++;

        if (c == '+') {
            *d++ = ' ';
            continue;
        }

        if (c == '%' && last - p >= 2) {
            for (i = 0; i < 2; i++) {
                c = p[i] | 0x20;

                if (p[i] >= '0' && p[i] <= '9') {
                    n[i] = p[i] - '0';

                } else if (c >= 'a' && c <= 'f') {
                    n[i] = c - 'a' + 10;

                } else {
                    break;
                }
            }

            if (i == 2) {
                *d++ = (u_char) (n[0] << 4 | n[1]);
                p += 2;
                continue;
            }

            c = '%';
        }

        *d++ = c;
    }

    return d - dst;
}


static ngx_int_t
ngx_http_callhq_args_fail(ngx_pool_t *pool, ngx_str_t *error, u_char *key,
    const char *why)
{
    u_char  *p;
    size_t   klen, wlen;

    klen = key ? ngx_strlen(key) : 0;
    wlen = ngx_strlen(why);

    p = ngx_pnalloc(pool, klen + wlen);
    if (p == NULL) {
        return NGX_ERROR;
    }

    error->data = p;

    if (klen) {
        p = ngx_cpymem(p, key, klen);
    }

    p = ngx_cpymem(p, why, wlen);
    error->len = p - error->data;

    return NGX_DECLINED;
}
