
/*
 * ngx_http_callhq_module: webhook delivery, what its files share.
 */


#ifndef _NGX_HTTP_CALLHQ_WEBHOOK_H_INCLUDED_
#define _NGX_HTTP_CALLHQ_WEBHOOK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_json.h"


typedef struct {
    ngx_flag_t                     enable;
    ngx_msec_t                     interval;
    ngx_uint_t                     batch;
    ngx_msec_t                     backoff_base;
    ngx_msec_t                     backoff_max;
    time_t                         max_age;
    ngx_msec_t                     lease;
    ngx_msec_t                     sweep_interval;
    time_t                         retention;  /* of settled rows */
    ngx_flag_t                     ssl_verify;
    ngx_str_t                      ssl_trusted_certificate;
#if (NGX_SSL)
    ngx_ssl_t                     *ssl;
#endif
    ngx_resolver_t                *resolver;
    ngx_msec_t                     resolver_timeout;
    ngx_array_t                   *allow;      /* of ngx_cidr_t, or NULL */
    ngx_str_t                      done_opts;  /* webhook_done()'s JSON */
    ngx_uint_t                     status;     /* a status location exists */
} ngx_http_callhq_webhook_main_conf_t;


extern ngx_module_t  ngx_http_callhq_webhook_module;


/* ngx_http_callhq_webhook_url.c: where webhooks may go */

/*
 * NULL if webhooks may go to this URL; else the end of why not, written
 * to [buf, last) as "must not point to a loopback address (127.0.0.1)".
 * A URL that is not http:// or https:// is left to SQL's check.
 */
u_char *ngx_http_callhq_webhook_url_refused(
    ngx_http_callhq_webhook_main_conf_t *conf, u_char *url, size_t len,
    u_char *buf, u_char *last);

/* NULL if webhooks may connect to this address; else what it is */
const char *ngx_http_callhq_webhook_addr_refused(
    ngx_http_callhq_webhook_main_conf_t *conf, struct sockaddr *sa);

/*
 * A body's server.url, noted by its scan (w): NGX_OK, or NGX_DECLINED
 * with the 400 naming field sent and *rc what to finalize with.
 */
ngx_int_t ngx_http_callhq_webhook_url_body(ngx_http_request_t *r,
    ngx_http_callhq_json_want_t *w, const char *field, ngx_int_t *rc);

/* "callhq_webhook_allow CIDR ...;" */
char *ngx_http_callhq_webhook_allow(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_CALLHQ_WEBHOOK_H_INCLUDED_ */
