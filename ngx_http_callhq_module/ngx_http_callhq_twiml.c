
/*
 * ngx_http_callhq_module: the SMS webhook's answer, in TwiML.
 *
 * <?xml ...?><Response><Message>text</Message></Response>, text/xml, the
 * text XML-escaped.  An SMS reply is at most 1600 characters: a longer
 * one goes as several <Message>, cut at the last blank before the limit
 * (or at the limit, in a word longer than a message).  Characters, not
 * bytes: a UTF-8 sequence is never cut.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"


#define NGX_HTTP_CALLHQ_SMS_MAX  1600

#define ngx_http_callhq_blank(c)                                              \
    ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')


static u_char *ngx_http_callhq_twiml_cut(u_char *p, u_char *end);
static u_char *ngx_http_callhq_twiml_escape(u_char *dst, u_char *p,
    u_char *end);


static ngx_str_t  ngx_http_callhq_twiml_type = ngx_string("text/xml");

static ngx_str_t  ngx_http_callhq_twiml_head = ngx_string(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
static ngx_str_t  ngx_http_callhq_twiml_tail = ngx_string("</Response>");


/* answers 200 with text in TwiML messages; no text: an empty <Response/> */

ngx_int_t
ngx_http_callhq_twiml_send(ngx_http_request_t *r, ngx_str_t *text)
{
    size_t      size;
    u_char     *p, *end, *cut, *next;
    ngx_buf_t  *b;

    p = text ? text->data : NULL;
    end = text ? text->data + text->len : NULL;

    /*
     * A byte escapes to 6 at most ("&quot;"); two messages in a row hold
     * more than the limit, so there are at most two per 1600 bytes.
     */
    size = ngx_http_callhq_twiml_head.len + ngx_http_callhq_twiml_tail.len;

    if (text && text->len) {
        size += 6 * text->len
                + 2 * (text->len / NGX_HTTP_CALLHQ_SMS_MAX + 1)
                  * sizeof("<Message></Message>");
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, ngx_http_callhq_twiml_head.data,
                         ngx_http_callhq_twiml_head.len);

    while (p < end) {
        while (p < end && ngx_http_callhq_blank(*p)) {
            p++;
        }

        if (p == end) {
            break;
        }

        cut = ngx_http_callhq_twiml_cut(p, end);
        next = cut;

        while (cut > p && ngx_http_callhq_blank(cut[-1])) {
            cut--;
        }

        b->last = ngx_cpymem(b->last, "<Message>", sizeof("<Message>") - 1);
        b->last = ngx_http_callhq_twiml_escape(b->last, p, cut);
        b->last = ngx_cpymem(b->last, "</Message>",
                             sizeof("</Message>") - 1);

        p = next;
    }

    if (b->last == b->pos + ngx_http_callhq_twiml_head.len) {
        /* nothing to say: <Response/> */
        b->last -= sizeof(">") - 1;
        b->last = ngx_cpymem(b->last, "/>", 2);

    } else {
        b->last = ngx_cpymem(b->last, ngx_http_callhq_twiml_tail.data,
                             ngx_http_callhq_twiml_tail.len);
    }

    return ngx_http_callhq_send_text(r, &ngx_http_callhq_twiml_type, b);
}


/*
 * An empty <Response/> now, while the model's subrequest is still the
 * connection's active request (callhq_sms_reply_timeout): its postpone
 * filter would hold our body until the model answered, so the body goes
 * straight to the write filter.  The connection closes once the chat
 * ends: Twilio may not send its next webhook on it meanwhile.
 */

ngx_int_t
ngx_http_callhq_twiml_early(ngx_http_request_t *r)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    static u_char  empty[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                             "<Response/>";

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = empty;
    b->last = empty + sizeof(empty) - 1;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;
    b->flush = 1;

    r->keepalive = 0;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type = ngx_http_callhq_twiml_type;
    r->headers_out.content_type_len = ngx_http_callhq_twiml_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_write_filter(r, &out);
}


/*
 * Where the message that starts at p ends: all of it when it fits, else
 * at the last blank within the limit, else at the limit.
 */

static u_char *
ngx_http_callhq_twiml_cut(u_char *p, u_char *end)
{
    u_char      *q, *blank;
    ngx_uint_t   n;

    blank = NULL;
    n = 0;

    for (q = p; q < end; q++) {
        /* a character starts at each byte that does not continue one */
        if ((*q & 0xc0) != 0x80) {
            if (n == NGX_HTTP_CALLHQ_SMS_MAX) {
                break;
            }

            n++;
        }

        if (ngx_http_callhq_blank(*q)) {
            blank = q;
        }
    }

    if (q == end || ngx_http_callhq_blank(*q) || blank == NULL) {
        return q;
    }

    return blank;
}


/*
 * XML's five; the control characters XML 1.0 cannot hold at all are
 * left out.
 */

static u_char *
ngx_http_callhq_twiml_escape(u_char *dst, u_char *p, u_char *end)
{
    for ( /* void */ ; p < end; p++) {
        switch (*p) {

        case '&':
            dst = ngx_cpymem(dst, "&amp;", sizeof("&amp;") - 1);
            break;

        case '<':
            dst = ngx_cpymem(dst, "&lt;", sizeof("&lt;") - 1);
            break;

        case '>':
            dst = ngx_cpymem(dst, "&gt;", sizeof("&gt;") - 1);
            break;

        case '"':
            dst = ngx_cpymem(dst, "&quot;", sizeof("&quot;") - 1);
            break;

        case '\'':
            dst = ngx_cpymem(dst, "&apos;", sizeof("&apos;") - 1);
            break;

        default:
            if (*p < 0x20 && !ngx_http_callhq_blank(*p)) {
                break;
            }

            *dst++ = *p;
        }
    }

    return dst;
}
