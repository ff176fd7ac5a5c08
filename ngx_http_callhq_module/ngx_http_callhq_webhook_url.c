
/*
 * ngx_http_callhq_module: where webhooks may go.
 *
 * A tenant's server.url must not make nginx reach what only nginx can
 * reach: loopback, private and link-local networks (a cloud's metadata
 * service among them), CGNAT, multicast.  The check runs twice: on the
 * URL when an assistant is written (ngx_http_callhq_api.c answers 400
 * naming server.url), and on the address a delivery is about to connect
 * to (ngx_http_callhq_webhook.c), since a name may resolve elsewhere by
 * then (DNS rebinding).  "callhq_webhook_allow CIDR ...;" opens ranges.
 *
 * Host names cannot be resolved when an assistant is written (that
 * would block, or wait on DNS): only IP literals and "localhost" are
 * judged then, and every other spelling of an address is refused, since
 * resolvers and HTTP stacks disagree on what "2130706433" or "0x7f.1"
 * mean.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_webhook.h"


typedef struct {
    char                          *text;
    char                          *what;
    ngx_cidr_t                     cidr;
} ngx_http_callhq_webhook_range_t;


static ngx_int_t ngx_http_callhq_webhook_cidr_match(ngx_cidr_t *cidr,
    struct sockaddr *sa);
static ngx_int_t ngx_http_callhq_webhook_port(u_char *p, u_char *last);
static ngx_int_t ngx_http_callhq_webhook_numeric(u_char *p, u_char *last);


/* the first that matches says what an address is: order matters */
static ngx_http_callhq_webhook_range_t  ngx_http_callhq_webhook_ranges[] = {
    { "0.0.0.0/8", "an unspecified address", { 0 } },
    { "10.0.0.0/8", "a private address", { 0 } },
    { "100.64.0.0/10", "a shared (CGNAT) address", { 0 } },
    { "127.0.0.0/8", "a loopback address", { 0 } },
    { "169.254.0.0/16", "a link-local address", { 0 } },
    { "172.16.0.0/12", "a private address", { 0 } },
    { "192.0.0.0/24", "a reserved address", { 0 } },
    { "192.0.2.0/24", "a reserved address", { 0 } },
    { "192.168.0.0/16", "a private address", { 0 } },
    { "198.18.0.0/15", "a reserved address", { 0 } },
    { "198.51.100.0/24", "a reserved address", { 0 } },
    { "203.0.113.0/24", "a reserved address", { 0 } },
    { "224.0.0.0/4", "a multicast address", { 0 } },
    { "255.255.255.255/32", "a broadcast address", { 0 } },
    { "240.0.0.0/4", "a reserved address", { 0 } },
#if (NGX_HAVE_INET6)
    { "::/128", "an unspecified address", { 0 } },
    { "::1/128", "a loopback address", { 0 } },
    { "::ffff:0:0/96", "an IPv4-mapped IPv6 address", { 0 } },
    { "::/96", "an IPv4-compatible IPv6 address", { 0 } },
    { "64:ff9b::/96", "an IPv4-translated (NAT64) address", { 0 } },
    { "100::/64", "a reserved address", { 0 } },
    { "2001:db8::/32", "a reserved address", { 0 } },
    { "fc00::/7", "a private address", { 0 } },
    { "fe80::/10", "a link-local address", { 0 } },
    { "fec0::/10", "a site-local address", { 0 } },
    { "ff00::/8", "a multicast address", { 0 } },
#endif
    { NULL, NULL, { 0 } }
};

static ngx_uint_t  ngx_http_callhq_webhook_ranges_ready;


const char *
ngx_http_callhq_webhook_addr_refused(
    ngx_http_callhq_webhook_main_conf_t *conf, struct sockaddr *sa)
{
    ngx_str_t                         text;
    ngx_uint_t                        i;
    ngx_cidr_t                       *cidr;
    ngx_http_callhq_webhook_range_t  *r;

    if (sa->sa_family != AF_INET
#if (NGX_HAVE_INET6)
        && sa->sa_family != AF_INET6
#endif
       )
    {
        return "a non-IP address";
    }

    if (conf->allow) {
        cidr = conf->allow->elts;

        for (i = 0; i < conf->allow->nelts; i++) {
            if (ngx_http_callhq_webhook_cidr_match(&cidr[i], sa) == NGX_OK) {
                return NULL;
            }
        }
    }

    if (!ngx_http_callhq_webhook_ranges_ready) {
        for (r = ngx_http_callhq_webhook_ranges; r->text; r++) {
            text.data = (u_char *) r->text;
            text.len = ngx_strlen(r->text);

            /* ngx_inet_addr() cannot tell 255.255.255.255 from an error */
            if (ngx_ptocidr(&text, &r->cidr) != NGX_OK) {
                r->cidr.family = AF_INET;
                r->cidr.u.in.addr = 0xffffffff;
                r->cidr.u.in.mask = 0xffffffff;
            }
        }

        ngx_http_callhq_webhook_ranges_ready = 1;
    }

    for (r = ngx_http_callhq_webhook_ranges; r->text; r++) {
        if (ngx_http_callhq_webhook_cidr_match(&r->cidr, sa) == NGX_OK) {
            return r->what;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_callhq_webhook_cidr_match(ngx_cidr_t *cidr, struct sockaddr *sa)
{
    in_addr_t    a;
#if (NGX_HAVE_INET6)
    u_char      *p;
    ngx_uint_t   i;
#endif

    if (cidr->family != sa->sa_family) {
        return NGX_DECLINED;
    }

    switch (sa->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        p = ((struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;

        for (i = 0; i < 16; i++) {
            if ((p[i] & cidr->u.in6.mask.s6_addr[i])
                != cidr->u.in6.addr.s6_addr[i])
            {
                return NGX_DECLINED;
            }
        }

        return NGX_OK;
#endif

    default: /* AF_INET */
        a = ((struct sockaddr_in *) sa)->sin_addr.s_addr;

        return ((a & cidr->u.in.mask) == cidr->u.in.addr) ? NGX_OK
                                                          : NGX_DECLINED;
    }
}


u_char *
ngx_http_callhq_webhook_url_refused(
    ngx_http_callhq_webhook_main_conf_t *conf, u_char *url, size_t len,
    u_char *buf, u_char *last)
{
    u_char               c, *p, *end, *host, *host_end, *label;
    size_t               n;
    ngx_uint_t           labels;
    const char          *what;
    struct sockaddr_in   sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  sin6;
#endif

    end = url + len;

    /* callhq.check_server() refuses these, and says so */
    for (p = url; p < end; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            return NULL;
        }
    }

    if (len > 7 && ngx_strncasecmp(url, (u_char *) "http://", 7) == 0) {
        p = url + 7;

    } else if (len > 8
               && ngx_strncasecmp(url, (u_char *) "https://", 8) == 0)
    {
        p = url + 8;

    } else {
        /* callhq.check_server() says what is wrong */
        return NULL;
    }

    /* nginx's own URL parser reads "unix:" as a socket path */
    if (end - p >= 5 && ngx_strncasecmp(p, (u_char *) "unix:", 5) == 0) {
        return ngx_slprintf(buf, last, "must not name a unix socket");
    }

    /* the authority; "#" does not end it for nginx's parser */
    for (host = p; p < end && *p != '/' && *p != '?'; p++) {
        if (*p == '@') {
            return ngx_slprintf(buf, last,
                                "must not contain user information");
        }
    }

    end = ngx_strlchr(host, p, '#');
    if (end == NULL) {
        end = p;
    }

    if (host == end) {
        return ngx_slprintf(buf, last, "has no host");
    }

#if (NGX_HAVE_INET6)
    if (*host == '[') {
        host_end = ngx_strlchr(host, end, ']');

        ngx_memzero(&sin6, sizeof(struct sockaddr_in6));
        sin6.sin6_family = AF_INET6;

        if (host_end == NULL
            || ngx_inet6_addr(host + 1, host_end - host - 1,
                              sin6.sin6_addr.s6_addr)
               != NGX_OK
            || ngx_http_callhq_webhook_port(host_end + 1, end) != NGX_OK)
        {
            return ngx_slprintf(buf, last, "has an invalid host or port");
        }

        what = ngx_http_callhq_webhook_addr_refused(conf,
                                                    (struct sockaddr *) &sin6);
        if (what) {
            return ngx_slprintf(buf, last, "must not point to %s (%*s)",
                                what, (size_t) (host_end + 1 - host), host);
        }

        return NULL;
    }
#endif

    host_end = ngx_strlchr(host, end, ':');
    if (host_end == NULL) {
        host_end = end;
    }

    if (ngx_http_callhq_webhook_port(host_end, end) != NGX_OK) {
        return ngx_slprintf(buf, last, "has an invalid host or port");
    }

    /* "example.com." is "example.com" */
    n = host_end - host;

    if (n > 1 && host[n - 1] == '.') {
        n--;
    }

    if (n > 253) {
        return ngx_slprintf(buf, last, "has an invalid host or port");
    }

    /* letters, digits, "-", "_" in non-empty labels: no escapes, no IDN */
    label = host;
    labels = 1;

    for (p = host; p < host + n; p++) {
        c = ngx_tolower(*p);

        if (c == '.') {
            if (p == label) {
                break;
            }

            label = p + 1;
            labels++;
            continue;
        }

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_'))
        {
            break;
        }
    }

    if (p != host + n || label == host + n) {
        return ngx_slprintf(buf, last, "has an invalid host or port");
    }

    /* a name that ends in a number is an IPv4 address to URL parsers */
    if (ngx_http_callhq_webhook_numeric(label, host + n) == NGX_OK) {

        if (labels != 4) {
            goto spelling;
        }

        for (label = host; label < host + n; label = p + 1) {
            p = ngx_strlchr(label, host + n, '.');
            if (p == NULL) {
                p = host + n;
            }

            if (p - label > 3 || (p - label > 1 && *label == '0')
                || ngx_atoi(label, p - label) == NGX_ERROR)
            {
                goto spelling;
            }
        }

        ngx_memzero(&sin, sizeof(struct sockaddr_in));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = ngx_inet_addr(host, n);

        if (sin.sin_addr.s_addr == INADDR_NONE
            && !(n == 15 && ngx_strncmp(host, "255.255.255.255", 15) == 0))
        {
            goto spelling;
        }

        what = ngx_http_callhq_webhook_addr_refused(conf,
                                                    (struct sockaddr *) &sin);
        if (what) {
            return ngx_slprintf(buf, last, "must not point to %s (%*s)",
                                what, n, host);
        }

        return NULL;
    }

    /* RFC 6761: localhost and its subdomains are loopback */
    if ((n == 9 && ngx_strncasecmp(host, (u_char *) "localhost", 9) == 0)
        || (n > 10
            && ngx_strncasecmp(host + n - 10, (u_char *) ".localhost", 10)
               == 0))
    {
        ngx_memzero(&sin, sizeof(struct sockaddr_in));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

        what = ngx_http_callhq_webhook_addr_refused(conf,
                                                    (struct sockaddr *) &sin);
        if (what) {
            return ngx_slprintf(buf, last, "must not point to %s (%*s)",
                                what, n, host);
        }
    }

    return NULL;

spelling:

    return ngx_slprintf(buf, last, "must write an IPv4 address as four "
                        "decimal numbers (a.b.c.d), not \"%*s\"", n, host);
}


/* empty, or ":" and a port from 1 to 65535 */

static ngx_int_t
ngx_http_callhq_webhook_port(u_char *p, u_char *last)
{
    ngx_int_t  port;

    if (p == last) {
        return NGX_OK;
    }

    if (*p != ':' || last - p > 6) {
        return NGX_ERROR;
    }

    port = ngx_atoi(p + 1, last - p - 1);

    return (port >= 1 && port <= 65535) ? NGX_OK : NGX_ERROR;
}


/* a label that URL parsers read as a number: decimal, or "0x" and hex */

static ngx_int_t
ngx_http_callhq_webhook_numeric(u_char *p, u_char *last)
{
    u_char  c;

    if (last - p >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        for (p += 2; p < last; p++) {
            c = ngx_tolower(*p);

            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
                return NGX_DECLINED;
            }
        }

        return NGX_OK;
    }

    for ( /* void */ ; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_callhq_webhook_url_body(ngx_http_request_t *r,
    ngx_http_callhq_json_want_t *w, const char *field, ngx_int_t *rc)
{
    u_char                               *p, *url;
    size_t                                len;
    json_t                               *json;
    ngx_http_callhq_webhook_main_conf_t  *conf;
    u_char                                why[256];

    /* not a string: callhq.check_server() says so */
    if (w->value == NULL || w->value[0] != '"') {
        return NGX_OK;
    }

    url = w->value + 1;
    len = w->end - w->value - 2;
    json = NULL;

    if (ngx_strlchr(url, url + len, '\\')) {
        json = json_loadb((char *) w->value, w->end - w->value,
                          JSON_DECODE_ANY, NULL);

        if (!json_is_string(json)) {
            json_decref(json);
            return NGX_OK;
        }

        url = (u_char *) json_string_value(json);
        len = json_string_length(json);
    }

    conf = ngx_http_get_module_main_conf(r, ngx_http_callhq_webhook_module);

    p = ngx_http_callhq_webhook_url_refused(conf, url, len, why,
                                            why + sizeof(why));

    json_decref(json);

    if (p == NULL) {
        return NGX_OK;
    }

    *rc = ngx_http_callhq_send_error(r, NGX_HTTP_BAD_REQUEST, "%s %*s",
                                     field, (size_t) (p - why), why);

    return NGX_DECLINED;
}


char *
ngx_http_callhq_webhook_allow(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_callhq_webhook_main_conf_t  *wmcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_uint_t   i;
    ngx_cidr_t  *cidr;

    if (wmcf->allow == NULL) {
        wmcf->allow = ngx_array_create(cf->pool, 4, sizeof(ngx_cidr_t));
        if (wmcf->allow == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        cidr = ngx_array_push(wmcf->allow);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = ngx_ptocidr(&value[i], cidr);

        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address or network \"%V\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[i]);
        }
    }

    return NGX_CONF_OK;
}
