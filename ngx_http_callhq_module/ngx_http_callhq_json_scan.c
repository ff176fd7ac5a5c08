
/*
 * ngx_http_callhq_module: a JSON scanner for the request path.  It checks
 * a text once and then finds values in place, so that a chat body, a
 * model reply or a stream event is never decoded into a tree only to read
 * three fields of it.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_callhq_json.h"

typedef struct {
    u_char                        *start;
    u_char                        *end;
    const char                    *err;
    u_char                        *at;
} ngx_http_callhq_scan_t;


static u_char *ngx_http_callhq_scan_value(ngx_http_callhq_scan_t *s,
    u_char *p, ngx_uint_t depth);
static u_char *ngx_http_callhq_scan_string(ngx_http_callhq_scan_t *s,
    u_char *p);
static u_char *ngx_http_callhq_scan_number(ngx_http_callhq_scan_t *s,
    u_char *p);
static u_char *ngx_http_callhq_scan_utf8(u_char *p, u_char *end);
static ngx_int_t ngx_http_callhq_scan_hex4(u_char *p, u_char *end,
    uint32_t *u);
static u_char *ngx_http_callhq_json_ws(u_char *p, u_char *end);
static u_char *ngx_http_callhq_json_skip(u_char *p, u_char *end);
static ngx_int_t ngx_http_callhq_json_key_is(u_char *p, u_char *end,
    const char *key);


#define ngx_http_callhq_scan_fail(s, p, msg)                                  \
    ((s)->err = (msg), (s)->at = (p), (u_char *) NULL)


const char *
ngx_http_callhq_json_check(u_char *p, u_char *end, u_char **at)
{
    ngx_http_callhq_scan_t  s;

    s.start = p;
    s.end = end;
    s.err = NULL;
    s.at = p;

    p = ngx_http_callhq_json_ws(p, end);

    if (p == end) {
        s.err = "no JSON text";

    } else if (*p != '{' && *p != '[') {
        s.err = "'{' or '[' expected";
        s.at = p;

    } else {
        p = ngx_http_callhq_scan_value(&s, p, 0);

        if (p != NULL) {
            p = ngx_http_callhq_json_ws(p, end);

            if (p != end) {
                s.err = "end of text expected after the JSON value";
                s.at = p;
            }
        }
    }

    if (at) {
        *at = s.at;
    }

    return s.err;
}


/* where p is in the text that starts at start, as "line L, column C" */

u_char *
ngx_http_callhq_json_where(u_char *buf, size_t len, u_char *start, u_char *p)
{
    ngx_uint_t   line;
    u_char      *bol;

    line = 1;
    bol = start;

    for ( /* void */ ; start < p; start++) {
        if (*start == '\n') {
            line++;
            bol = start + 1;
        }
    }

    return ngx_snprintf(buf, len, "line %ui, column %ui", line,
                        (ngx_uint_t) (p - bol) + 1);
}


static u_char *
ngx_http_callhq_scan_value(ngx_http_callhq_scan_t *s, u_char *p,
    ngx_uint_t depth)
{
    u_char  close;

    if (p == s->end) {
        return ngx_http_callhq_scan_fail(s, p, "unexpected end of text");
    }

    switch (*p) {

    case '"':
        return ngx_http_callhq_scan_string(s, p);

    case '{':
    case '[':
        if (depth == NGX_HTTP_CALLHQ_JSON_MAX_DEPTH) {
            return ngx_http_callhq_scan_fail(s, p, "nested too deeply");
        }

        close = (*p == '{') ? '}' : ']';
        p = ngx_http_callhq_json_ws(p + 1, s->end);

        if (p < s->end && *p == close) {
            return p + 1;
        }

        for ( ;; ) {
            if (close == '}') {
                if (p == s->end || *p != '"') {
                    return ngx_http_callhq_scan_fail(s, p,
                                                     "member name expected");
                }

                p = ngx_http_callhq_scan_string(s, p);
                if (p == NULL) {
                    return NULL;
                }

                p = ngx_http_callhq_json_ws(p, s->end);

                if (p == s->end || *p != ':') {
                    return ngx_http_callhq_scan_fail(s, p, "':' expected");
                }

                p = ngx_http_callhq_json_ws(p + 1, s->end);
            }

            p = ngx_http_callhq_scan_value(s, p, depth + 1);
            if (p == NULL) {
                return NULL;
            }

            p = ngx_http_callhq_json_ws(p, s->end);

            if (p < s->end && *p == ',') {
                p = ngx_http_callhq_json_ws(p + 1, s->end);
                continue;
            }

            if (p < s->end && *p == close) {
                return p + 1;
            }

            return ngx_http_callhq_scan_fail(s, p, close == '}'
                                                   ? "',' or '}' expected"
                                                   : "',' or ']' expected");
        }

    case 't':
        if (s->end - p >= 4 && ngx_strncmp(p, "true", 4) == 0) {
            return p + 4;
        }
        break;

    case 'f':
        if (s->end - p >= 5 && ngx_strncmp(p, "false", 5) == 0) {
            return p + 5;
        }
        break;

    case 'n':
        if (s->end - p >= 4 && ngx_strncmp(p, "null", 4) == 0) {
            return p + 4;
        }
        break;

    default:
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            return ngx_http_callhq_scan_number(s, p);
        }
    }

    return ngx_http_callhq_scan_fail(s, p, "invalid token");
}


/*
 * As PostgreSQL's jsonb takes them: UTF-8, escapes paired where they
 * encode surrogates, and no \u0000, which a text cannot hold.
 */

static u_char *
ngx_http_callhq_scan_string(ngx_http_callhq_scan_t *s, u_char *p)
{
    u_char    *q;
    uint32_t   u, lo;

    for (p++; p < s->end; /* void */ ) {

        if (*p == '"') {
            return p + 1;
        }

        if (*p < 0x20) {
            return ngx_http_callhq_scan_fail(s, p, "control character in "
                                                   "a string");
        }

        if (*p >= 0x80) {
            q = ngx_http_callhq_scan_utf8(p, s->end);
            if (q == NULL) {
                return ngx_http_callhq_scan_fail(s, p, "invalid UTF-8");
            }

            p = q;
            continue;
        }

        if (*p != '\\') {
            p++;
            continue;
        }

        if (s->end - p < 2) {
            break;
        }

        switch (p[1]) {
        case '"': case '\\': case '/': case 'b':
        case 'f': case 'n': case 'r': case 't':
            p += 2;
            continue;

        case 'u':
            if (ngx_http_callhq_scan_hex4(p + 2, s->end, &u) != NGX_OK) {
                return ngx_http_callhq_scan_fail(s, p, "invalid \\u escape");
            }

            if (u == 0) {
                return ngx_http_callhq_scan_fail(s, p, "\\u0000 is not "
                                                       "allowed");
            }

            if (u >= 0xdc00 && u <= 0xdfff) {
                return ngx_http_callhq_scan_fail(s, p, "lone surrogate in "
                                                       "a \\u escape");
            }

            if (u >= 0xd800 && u <= 0xdbff) {
                if (s->end - p < 12 || p[6] != '\\' || p[7] != 'u'
                    || ngx_http_callhq_scan_hex4(p + 8, s->end, &lo)
                       != NGX_OK
                    || lo < 0xdc00 || lo > 0xdfff)
                {
                    return ngx_http_callhq_scan_fail(s, p, "lone surrogate "
                                                       "in a \\u escape");
                }

                p += 6;
            }

            p += 6;
            continue;

        default:
            return ngx_http_callhq_scan_fail(s, p, "invalid escape");
        }
    }

    return ngx_http_callhq_scan_fail(s, p, "unterminated string");
}


static u_char *
ngx_http_callhq_scan_number(ngx_http_callhq_scan_t *s, u_char *p)
{
    u_char  *start;

    start = p;

    if (*p == '-') {
        p++;
    }

    if (p == s->end || *p < '0' || *p > '9') {
        return ngx_http_callhq_scan_fail(s, start, "invalid number");
    }

    if (*p == '0') {
        p++;

    } else {
        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < s->end && *p == '.') {
        p++;

        if (p == s->end || *p < '0' || *p > '9') {
            return ngx_http_callhq_scan_fail(s, start, "invalid number");
        }

        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < s->end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == s->end || *p < '0' || *p > '9') {
            return ngx_http_callhq_scan_fail(s, start, "invalid number");
        }

        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    return p;
}


/* one UTF-8 sequence, shortest form, no surrogates, at most U+10FFFF */

static u_char *
ngx_http_callhq_scan_utf8(u_char *p, u_char *end)
{
    size_t    n, i;
    uint32_t  u, min;

    if (*p >= 0xc2 && *p <= 0xdf) {
        n = 1; u = *p & 0x1f; min = 0x80;

    } else if (*p >= 0xe0 && *p <= 0xef) {
        n = 2; u = *p & 0x0f; min = 0x800;

    } else if (*p >= 0xf0 && *p <= 0xf4) {
        n = 3; u = *p & 0x07; min = 0x10000;

    } else {
        return NULL;
    }

    if ((size_t) (end - p) <= n) {
        return NULL;
    }

    for (i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return NULL;
        }

        u = (u << 6) | (p[i] & 0x3f);
    }

    if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return NULL;
    }

    return p + n + 1;
}


static ngx_int_t
ngx_http_callhq_scan_hex4(u_char *p, u_char *end, uint32_t *u)
{
    u_char      c;
    ngx_uint_t  i;

    if (end - p < 4) {
        return NGX_ERROR;
    }

    *u = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            c = (c | 0x20) - 'a' + 10;

        } else {
            return NGX_ERROR;
        }

        *u = (*u << 4) | c;
    }

    return NGX_OK;
}


static u_char *
ngx_http_callhq_json_ws(u_char *p, u_char *end)
{
    while (p < end
           && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    {
        p++;
    }

    return p;
}


/*
 * The lookups below read text that ngx_http_callhq_json_check() passed:
 * they only stay within [p, end) on anything else.
 */

/* past the value at p; NULL if it does not end */

static u_char *
ngx_http_callhq_json_skip(u_char *p, u_char *end)
{
    ngx_uint_t  depth;

    if (p == end) {
        return NULL;
    }

    if (*p != '"' && *p != '{' && *p != '[') {
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ':'
               && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
        {
            p++;
        }

        return p;
    }

    depth = 0;

    for ( /* void */ ; p < end; p++) {

        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < end) {
                    p++;
                }
            }

            if (p == end) {
                return NULL;
            }

            if (depth == 0) {
                return p + 1;
            }

        } else if (*p == '{' || *p == '[') {
            depth++;

        } else if (*p == '}' || *p == ']') {
            if (--depth == 0) {
                return p + 1;
            }
        }
    }

    return NULL;
}


/* the value of the object's member key (the last, if it repeats) */

u_char *
ngx_http_callhq_json_get(u_char *p, u_char *end, const char *key)
{
    u_char  *k, *found;

    found = NULL;

    p = (p == NULL) ? NULL : ngx_http_callhq_json_ws(p, end);

    if (p == NULL || p == end || *p != '{') {
        return NULL;
    }

    for (p++; /* void */; p++) {
        p = ngx_http_callhq_json_ws(p, end);

        if (p == end || *p != '"') {
            return found;
        }

        k = p;
        p = ngx_http_callhq_json_skip(p, end);
        if (p == NULL) {
            return found;
        }

        k = ngx_http_callhq_json_key_is(k + 1, p - 1, key) ? p : NULL;

        p = ngx_http_callhq_json_ws(p, end);
        if (p == end || *p != ':') {
            return found;
        }

        p = ngx_http_callhq_json_ws(p + 1, end);

        if (k) {
            found = p;
        }

        p = ngx_http_callhq_json_skip(p, end);
        if (p == NULL) {
            return found;
        }

        p = ngx_http_callhq_json_ws(p, end);
        if (p == end || *p != ',') {
            return found;
        }
    }
}


/* the n-th item of the array */

u_char *
ngx_http_callhq_json_item(u_char *p, u_char *end, ngx_uint_t n)
{
    p = (p == NULL) ? NULL : ngx_http_callhq_json_ws(p, end);

    if (p == NULL || p == end || *p != '[') {
        return NULL;
    }

    p = ngx_http_callhq_json_ws(p + 1, end);

    if (p == end || *p == ']') {
        return NULL;
    }

    while (n--) {
        p = ngx_http_callhq_json_skip(p, end);
        p = (p == NULL) ? NULL : ngx_http_callhq_json_ws(p, end);

        if (p == NULL || p == end || *p != ',') {
            return NULL;
        }

        p = ngx_http_callhq_json_ws(p + 1, end);
    }

    return p;
}


/* the raw (still escaped) contents of the string at p */

ngx_int_t
ngx_http_callhq_json_string(u_char *p, u_char *end, ngx_str_t *raw)
{
    u_char  *q;

    if (p == NULL || p == end || *p != '"') {
        return NGX_DECLINED;
    }

    q = ngx_http_callhq_json_skip(p, end);

    if (q == NULL) {
        return NGX_DECLINED;
    }

    raw->data = p + 1;
    raw->len = q - p - 2;

    return NGX_OK;
}


/* a non-negative integer, as token counts are; 0 otherwise */

ngx_int_t
ngx_http_callhq_json_count(u_char *p, u_char *end)
{
    ngx_int_t  n;

    if (p == NULL) {
        return 0;
    }

    for (n = 0; p < end && *p >= '0' && *p <= '9'; p++) {
        if (n >= NGX_MAX_INT_T_VALUE / 10 - 1) {
            return 0;
        }

        n = n * 10 + (*p - '0');
    }

    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) {
        return 0;
    }

    return n;
}


/* whether the value at p is the literal lit (true, false, null) */

ngx_int_t
ngx_http_callhq_json_is(u_char *p, u_char *end, const char *lit)
{
    size_t  len;

    if (p == NULL) {
        return 0;
    }

    len = ngx_strlen(lit);

    return (size_t) (end - p) >= len && ngx_strncmp(p, lit, len) == 0
           && (p + len == end || !((p[len] | 0x20) >= 'a'
                                   && (p[len] | 0x20) <= 'z'));
}


/* whether the raw (escaped) member name [p, end) reads key */

static ngx_int_t
ngx_http_callhq_json_key_is(u_char *p, u_char *end, const char *key)
{
    u_char    c;
    uint32_t   u;

    while (p < end) {
        c = *p++;

        if (c == '\\') {
            if (p == end) {
                return 0;
            }

            c = *p++;

            if (c == 'u') {
                if (ngx_http_callhq_scan_hex4(p, end, &u) != NGX_OK
                    || u >= 0x80)
                {
                    /* our names are ASCII */
                    return 0;
                }

                c = (u_char) u;
                p += 4;

            } else if (c != '"' && c != '\\' && c != '/') {
                return 0;
            }
        }

        if (*key == '\0' || c != (u_char) *key++) {
            return 0;
        }
    }

    return *key == '\0';
}


/* the length in bytes of the text a string's escaped contents stand for */

size_t
ngx_http_callhq_json_text_len(u_char *p, size_t len)
{
    u_char    *end;
    size_t     n;
    uint32_t   u;

    end = p + len;

    for (n = 0; p < end; n++) {
        if (*p != '\\' || end - p < 2) {
            p++;
            continue;
        }

        if (p[1] != 'u' || ngx_http_callhq_scan_hex4(p + 2, end, &u)
                           != NGX_OK)
        {
            p += 2;
            continue;
        }

        p += 6;

        if (u >= 0xd800 && u <= 0xdbff) {
            /* a pair: four bytes of UTF-8 in all */
            p += 6;
            n += 3;

        } else if (u >= 0x800) {
            n += 2;

        } else if (u >= 0x80) {
            n += 1;
        }
    }

    return n;
}
