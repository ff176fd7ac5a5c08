
/*
 * ngx_http_callhq_module: a JSON scanner for the request path.  One pass
 * checks a text and notes where the few values wanted of it are, so that
 * a chat body, a model reply or a stream event is never decoded into a
 * tree only to read three fields of it, nor read twice.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_callhq_json.h"

typedef struct {
    u_char                        *start;
    u_char                        *end;
    const char                    *err;
    u_char                        *at;
    ngx_http_callhq_json_want_t   *want;
} ngx_http_callhq_scan_t;


u_char  ngx_http_callhq_json_first[] = "[0]";


static u_char *ngx_http_callhq_scan_value(ngx_http_callhq_scan_t *s,
    u_char *p, ngx_uint_t depth, ngx_uint_t live);
static ngx_uint_t ngx_http_callhq_scan_member(ngx_http_callhq_scan_t *s,
    u_char *name, u_char *last, ngx_uint_t depth, ngx_uint_t live);
static u_char *ngx_http_callhq_scan_string(ngx_http_callhq_scan_t *s,
    u_char *p);
static u_char *ngx_http_callhq_scan_number(ngx_http_callhq_scan_t *s,
    u_char *p);
static u_char *ngx_http_callhq_scan_utf8(u_char *p, u_char *end);
static ngx_int_t ngx_http_callhq_scan_hex4(u_char *p, u_char *end,
    uint32_t *u);
static u_char *ngx_http_callhq_json_ws(u_char *p, u_char *end);
static ngx_int_t ngx_http_callhq_json_key_is(u_char *p, u_char *end,
    ngx_str_t *key);


#define ngx_http_callhq_json_space(c)                                         \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

#define ngx_http_callhq_scan_fail(s, p, msg)                                  \
    ((s)->err = (msg), (s)->at = (p), (u_char *) NULL)


const char *
ngx_http_callhq_json_check(u_char *p, u_char *end, u_char **at,
    ngx_http_callhq_json_want_t *want, ngx_uint_t n)
{
    ngx_uint_t              i;
    ngx_http_callhq_scan_t  s;

    s.start = p;
    s.end = end;
    s.err = NULL;
    s.at = p;
    s.want = want;

    for (i = 0; i < n; i++) {
        want[i].value = NULL;
        want[i].end = NULL;
    }

    p = ngx_http_callhq_json_ws(p, end);

    if (p == end) {
        s.err = "no JSON text";

    } else if (*p != '{' && *p != '[') {
        s.err = "'{' or '[' expected";
        s.at = p;

    } else {
        p = ngx_http_callhq_scan_value(&s, p, 0, ((ngx_uint_t) 1 << n) - 1);

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


/*
 * The path to the value at p, as the SQL checks name fields
 * ("model.messages[2].content"), for an error found there; [start, p) is
 * JSON that ngx_http_callhq_json_check() went through.  Names are
 * printed as they are written, escapes and all, cut at 64 bytes.
 */

u_char *
ngx_http_callhq_json_path(u_char *buf, size_t len, u_char *start, u_char *p)
{
    u_char      *q, *last, *name[NGX_HTTP_CALLHQ_JSON_MAX_DEPTH + 1];
    size_t       nlen[NGX_HTTP_CALLHQ_JSON_MAX_DEPTH + 1];
    ngx_uint_t   depth, i, index[NGX_HTTP_CALLHQ_JSON_MAX_DEPTH + 1];
    ngx_uint_t   key;

    depth = 0;
    key = 0;

    for (q = start; q < p; q++) {
        switch (*q) {

        case '{':
        case '[':
            if (depth == NGX_HTTP_CALLHQ_JSON_MAX_DEPTH) {
                break;
            }

            depth++;
            name[depth] = (*q == '{') ? q : NULL;
            nlen[depth] = 0;
            index[depth] = 0;
            key = (*q == '{');
            break;

        case '}':
        case ']':
            if (depth) {
                depth--;
            }

            key = 0;
            break;

        case ',':
            if (depth && name[depth] == NULL) {
                index[depth]++;

            } else {
                key = 1;
            }

            break;

        case '"':
            for (last = q + 1; last < p && *last != '"'; last++) {
                if (*last == '\\') {
                    last++;
                }
            }

            if (key && depth) {
                name[depth] = q + 1;
                nlen[depth] = ngx_min((size_t) (last - q - 1), 64);
                key = 0;
            }

            q = last;
            break;

        default:
            break;
        }
    }

    last = buf + len;
    q = buf;

    for (i = 1; i <= depth && q < last; i++) {
        if (name[i] == NULL) {
            q = ngx_snprintf(q, last - q, "[%ui]", index[i]);
            continue;
        }

        if (i > 1 && q < last) {
            *q++ = '.';
        }

        q = ngx_cpymem(q, name[i], ngx_min(nlen[i], (size_t) (last - q)));
    }

    return q;
}


/*
 * The members of the object a checked text has where want w is: their
 * number (a repeated name counts each time), and the name and length as
 * written (a string with its quotes and escapes) of the longest value.
 */

void
ngx_http_callhq_json_members(ngx_http_callhq_json_want_t *w, ngx_uint_t *n,
    size_t *max, ngx_str_t *name)
{
    u_char      *p, *end, *start, *key, *kend, *value, *e;
    ngx_uint_t   depth;

    *n = 0;
    *max = 0;
    ngx_str_null(name);

    if (w->value == NULL || *w->value != '{') {
        return;
    }

    /* within the braces */
    p = w->value + 1;
    end = w->end - 1;

    depth = 0;
    key = NULL;
    kend = NULL;
    value = NULL;

    for ( /* void */ ; p <= end; p++) {

        if (p < end && *p == '"') {
            start = p + 1;

            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\') {
                    p++;
                }
            }

            if (depth == 0 && value == NULL) {
                key = start;
                kend = p;
                (*n)++;
            }

            continue;
        }

        if (p < end && depth == 0 && *p == ':') {
            value = p + 1;
            continue;
        }

        if (p < end && (*p == '{' || *p == '[')) {
            depth++;
            continue;
        }

        if (p < end && (*p == '}' || *p == ']')) {
            depth--;
            continue;
        }

        if ((p == end || (depth == 0 && *p == ',')) && value != NULL) {
            for (e = p; e > value && ngx_http_callhq_json_space(e[-1]); e--) {
                /* void */
            }

            while (value < e && ngx_http_callhq_json_space(*value)) {
                value++;
            }

            if ((size_t) (e - value) > *max) {
                *max = e - value;
                name->data = key;
                name->len = kend - key;
            }

            value = NULL;
        }
    }
}


/*
 * live: the wants whose paths lead to this value (a bit each); a member or
 * item on one's path passes it on, and a value at its end is noted.
 */

static u_char *
ngx_http_callhq_scan_value(ngx_http_callhq_scan_t *s, u_char *p,
    ngx_uint_t depth, ngx_uint_t live)
{
    u_char      close, *name, *start;
    ngx_uint_t  i, n, child;

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

        for (n = 0; /* void */; n++) {
            child = 0;

            if (close == '}') {
                if (p == s->end || *p != '"') {
                    return ngx_http_callhq_scan_fail(s, p,
                                                     "member name expected");
                }

                name = p;
                p = ngx_http_callhq_scan_string(s, p);
                if (p == NULL) {
                    return NULL;
                }

                if (live) {
                    child = ngx_http_callhq_scan_member(s, name + 1, p - 1,
                                                        depth, live);
                }

                p = ngx_http_callhq_json_ws(p, s->end);

                if (p == s->end || *p != ':') {
                    return ngx_http_callhq_scan_fail(s, p, "':' expected");
                }

                p = ngx_http_callhq_json_ws(p + 1, s->end);

            } else if (n == 0) {
                for (i = 0; live >> i; i++) {
                    if ((live >> i & 1)
                        && s->want[i].path[depth].data
                           == ngx_http_callhq_json_first)
                    {
                        child |= (ngx_uint_t) 1 << i;
                    }
                }
            }

            /* a repeated member: what the one before held is gone */
            for (i = 0; child >> i; i++) {
                if (child >> i & 1) {
                    s->want[i].value = NULL;
                    s->want[i].end = NULL;
                }
            }

            start = p;
            p = ngx_http_callhq_scan_value(s, p, depth + 1, child);
            if (p == NULL) {
                return NULL;
            }

            /* the end of a path: the last of repeated members counts */
            for (i = 0; child >> i; i++) {
                if ((child >> i & 1)
                    && s->want[i].path[depth + 1].data == NULL)
                {
                    s->want[i].value = start;
                    s->want[i].end = p;
                }
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


/* the wants of live whose paths go on through member name [name, last) */

static ngx_uint_t
ngx_http_callhq_scan_member(ngx_http_callhq_scan_t *s, u_char *name,
    u_char *last, ngx_uint_t depth, ngx_uint_t live)
{
    ngx_str_t   *seg;
    ngx_uint_t   i, child;

    child = 0;

    for (i = 0; live >> i; i++) {
        if (!(live >> i & 1)) {
            continue;
        }

        seg = &s->want[i].path[depth];

        if (seg->data != NULL && seg->data != ngx_http_callhq_json_first
            && ngx_http_callhq_json_key_is(name, last, seg))
        {
            child |= (ngx_uint_t) 1 << i;
        }
    }

    return child;
}


/*
 * Past a run of plain string bytes (printable ASCII but '"' and '\\'),
 * eight at a time: most of a chat's text is such runs.  In the mask of
 * special bytes, bits above the first one may be wrong; the first is not.
 */

#define NGX_HTTP_CALLHQ_ONES  0x0101010101010101ULL
#define NGX_HTTP_CALLHQ_HIGH  0x8080808080808080ULL

#define ngx_http_callhq_zero_bytes(w)                                         \
    (((w) - NGX_HTTP_CALLHQ_ONES) & ~(w) & NGX_HTTP_CALLHQ_HIGH)

static ngx_inline u_char *
ngx_http_callhq_scan_plain(u_char *p, u_char *end)
{
    uint64_t  w, m;

    while (end - p >= 8) {
        ngx_memcpy(&w, p, 8);

        m = ngx_http_callhq_zero_bytes(w ^ (0x22 * NGX_HTTP_CALLHQ_ONES))
            | ngx_http_callhq_zero_bytes(w ^ (0x5c * NGX_HTTP_CALLHQ_ONES))
            | (w & NGX_HTTP_CALLHQ_HIGH)
            | ((w - 0x20 * NGX_HTTP_CALLHQ_ONES) & ~w & NGX_HTTP_CALLHQ_HIGH);

        if (m) {
#if (NGX_HAVE_LITTLE_ENDIAN && (__GNUC__ || __clang__))
            return p + (__builtin_ctzll(m) >> 3);
#else
            break;
#endif
        }

        p += 8;
    }

    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
        p++;
    }

    return p;
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

        p = ngx_http_callhq_scan_plain(p, s->end);

        if (p == s->end) {
            break;
        }

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


/*
 * A number as JSON has it, and as PostgreSQL's numeric (jsonb's numbers)
 * holds it: at most 131072 digits before the decimal point and 16383
 * after, the exponent counted; past that jsonb refuses the whole text
 * with "value overflows numeric format", naming nothing.
 */

static u_char *
ngx_http_callhq_scan_number(ngx_http_callhq_scan_t *s, u_char *p)
{
    u_char     *start;
    int64_t     exp, ints, fracs, lead, weight;
    ngx_int_t   minus, nonzero;

    start = p;
    ints = 0;
    fracs = 0;
    lead = 0;
    exp = 0;
    nonzero = 0;

    if (*p == '-') {
        p++;
    }

    if (p == s->end || *p < '0' || *p > '9') {
        return ngx_http_callhq_scan_fail(s, start, "invalid number");
    }

    if (*p == '0') {
        p++;
        ints = 1;
        lead = 1;

    } else {
        nonzero = 1;

        while (p < s->end && *p >= '0' && *p <= '9') {
            p++;
            ints++;
        }
    }

    if (p < s->end && *p == '.') {
        p++;

        if (p == s->end || *p < '0' || *p > '9') {
            return ngx_http_callhq_scan_fail(s, start, "invalid number");
        }

        while (p < s->end && *p >= '0' && *p <= '9') {
            if (!nonzero) {
                if (*p == '0') {
                    lead++;

                } else {
                    nonzero = 1;
                }
            }

            p++;
            fracs++;
        }
    }

    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        minus = 0;

        if (p < s->end && (*p == '+' || *p == '-')) {
            minus = (*p == '-');
            p++;
        }

        if (p == s->end || *p < '0' || *p > '9') {
            return ngx_http_callhq_scan_fail(s, start, "invalid number");
        }

        while (p < s->end && *p >= '0' && *p <= '9') {
            /* far past either bound, it is only counted up to 10^9 */
            if (exp < 1000000000) {
                exp = exp * 10 + (*p - '0');
            }

            p++;
        }

        if (minus) {
            exp = -exp;
        }
    }

    /* the digits after the point, and the first nonzero digit's power */
    weight = ints - 1 - lead + exp;

    if (fracs - exp > NGX_HTTP_CALLHQ_JSON_MAX_SCALE
        || (nonzero && weight >= NGX_HTTP_CALLHQ_JSON_MAX_WEIGHT))
    {
        return ngx_http_callhq_scan_fail(s, start,
                                         NGX_HTTP_CALLHQ_JSON_RANGE);
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


/* the still escaped contents of a string found */

ngx_int_t
ngx_http_callhq_json_string(ngx_http_callhq_json_want_t *w, ngx_str_t *raw)
{
    if (w->value == NULL || *w->value != '"') {
        return NGX_DECLINED;
    }

    raw->data = w->value + 1;
    raw->len = w->end - w->value - 2;

    return NGX_OK;
}


/* a non-negative integer found, as token counts are; 0 otherwise */

ngx_int_t
ngx_http_callhq_json_count(ngx_http_callhq_json_want_t *w)
{
    u_char     *p;
    ngx_int_t   n;

    if (w->value == NULL) {
        return 0;
    }

    for (n = 0, p = w->value; p < w->end; p++) {
        if (*p < '0' || *p > '9' || n >= NGX_MAX_INT_T_VALUE / 10 - 1) {
            return 0;
        }

        n = n * 10 + (*p - '0');
    }

    return n;
}


/* whether the value found is the literal lit (true, false, null) */

ngx_int_t
ngx_http_callhq_json_is(ngx_http_callhq_json_want_t *w, const char *lit)
{
    size_t  len;

    len = ngx_strlen(lit);

    return w->value != NULL && (size_t) (w->end - w->value) == len
           && ngx_strncmp(w->value, lit, len) == 0;
}


/* whether the raw (escaped) member name [p, end) reads key */

static ngx_int_t
ngx_http_callhq_json_key_is(u_char *p, u_char *end, ngx_str_t *name)
{
    u_char    c, *key, *last;
    uint32_t  u;

    if ((size_t) (end - p) == name->len
        && ngx_memcmp(p, name->data, name->len) == 0)
    {
        return 1;
    }

    /* only an escaped name may read the same, longer */
    if ((size_t) (end - p) <= name->len || memchr(p, '\\', end - p) == NULL)
    {
        return 0;
    }

    key = name->data;
    last = name->data + name->len;

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

        if (key == last || c != *key++) {
            return 0;
        }
    }

    return key == last;
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
