
/*
 * ngx_http_callhq_module: webhook delivery, what its files share: the
 * worker's dispatcher (claims and dispatch, ngx_http_callhq_webhook.c),
 * a delivery (ngx_http_callhq_webhook_delivery.c), the listener
 * (ngx_http_callhq_webhook_listen.c), the sweeper
 * (ngx_http_callhq_webhook_sweep.c) and where webhooks may go
 * (ngx_http_callhq_webhook_url.c).
 */


#ifndef _NGX_HTTP_CALLHQ_WEBHOOK_H_INCLUDED_
#define _NGX_HTTP_CALLHQ_WEBHOOK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


#define NGX_HTTP_CALLHQ_WEBHOOK_RESPONSE_SIZE  1024
#define NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN        36      /* a uuid, as text */
#define NGX_HTTP_CALLHQ_WEBHOOK_SWEEP_LIMIT    100
#define NGX_HTTP_CALLHQ_WEBHOOK_LISTEN_MAX     30000
#define NGX_HTTP_CALLHQ_WEBHOOK_CHANNEL        "callhq_webhook"
#define NGX_HTTP_CALLHQ_TURN_CHANNEL           "callhq_turn"


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
    ngx_str_t                      twilio_api_url;  /* no trailing '/' */
    ngx_str_t                      done_opts;  /* webhook_done()'s JSON */
    ngx_uint_t                     status;     /* a status location exists */
} ngx_http_callhq_webhook_main_conf_t;


/* one attempt's steps, in order */
typedef enum {
    ngx_http_callhq_webhook_resolving = 0,
    ngx_http_callhq_webhook_connecting,
    ngx_http_callhq_webhook_handshaking,
    ngx_http_callhq_webhook_sending,
    ngx_http_callhq_webhook_reading,
    ngx_http_callhq_webhook_recording
} ngx_http_callhq_webhook_state_e;


typedef struct ngx_http_callhq_webhook_s  ngx_http_callhq_webhook_t;


/* one attempt at one outbox row; its pool holds all of it */
typedef struct {
    ngx_queue_t                    queue;      /* in wh->deliveries */
    ngx_pool_t                    *pool;
    ngx_http_callhq_webhook_t     *wh;
    ngx_log_t                      log;

    u_char                        *id;         /* outbox row, for SQL */
    u_char                         org[NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN];
    ngx_str_t                      webhook_id; /* "msg_" + event id */
    ngx_str_t                      url;
    ngx_str_t                      log_url;    /* no user info, no query */
    ngx_str_t                      secret;
    ngx_str_t                      headers;    /* JSON object, or empty */
    ngx_str_t                      body;
    ngx_msec_t                     timeout;
    ngx_msec_t                     start;      /* of the attempt */
    ngx_int_t                      attempt;

    ngx_url_t                      u;
    ngx_str_t                      host;       /* no port, no brackets */
    ngx_str_t                      uri;
    ngx_resolver_ctx_t            *resolve;
    ngx_peer_connection_t          peer;
    ngx_buf_t                     *request;
    ngx_buf_t                     *response;
    ngx_event_t                    timer;      /* the whole attempt */

    ngx_http_callhq_pg_query_t     query;      /* webhook_done() */
    const char                    *error;      /* NULL: delivered */
    ngx_uint_t                     status;

    ngx_http_callhq_webhook_state_e  state;

    unsigned                       ssl:1;
    unsigned                       ip:1;       /* host is an IP literal */
    unsigned                       twilio:1;   /* a text, to Twilio's API */
} ngx_http_callhq_webhook_delivery_t;


/* this worker's dispatcher */
struct ngx_http_callhq_webhook_s {
    ngx_http_callhq_webhook_main_conf_t  *conf;
    ngx_http_callhq_main_conf_t          *mcf;
    ngx_log_t                            *log;

    ngx_event_t                    tick;       /* claim; posted on NOTIFY */
    ngx_event_t                    sweep;
    ngx_msec_t                     offset;     /* this worker's, random */

    ngx_http_callhq_pg_query_t     claim;
    ngx_http_callhq_pg_query_t     sweeping;
    u_char                         limit[NGX_INT_T_LEN + 1];
    u_char                         lease[NGX_INT_T_LEN + 1];
    u_char                         batch[NGX_INT_T_LEN + 1];
    u_char                        *busy;       /* {"<org>": n, ...} */
    u_char                         sweep_limit[NGX_INT_T_LEN + 1];
    u_char                         retention[NGX_INT_T_LEN + 1];

    ngx_queue_t                    deliveries;
    ngx_uint_t                     in_flight;
    ngx_uint_t                     attempts;
    ngx_uint_t                     failures;

    /* the LISTEN connection */
    ngx_http_callhq_pg_link_t      link;
    ngx_event_t                    reconnect;
    ngx_msec_t                     backoff;

    unsigned                       claiming:1;
    unsigned                       again:1;    /* claim once this one ends */
    unsigned                       sweep_busy:1;
    unsigned                       listening:1;
};


extern ngx_module_t  ngx_http_callhq_webhook_module;


/* ngx_http_callhq_webhook.c: the module, claims and dispatch */
ngx_uint_t ngx_http_callhq_webhook_exiting(void);

/* ngx_http_callhq_webhook_delivery.c: one delivery's HTTP exchange */
void ngx_http_callhq_webhook_start(ngx_http_callhq_webhook_t *wh,
    PGresult *res, int row);
void ngx_http_callhq_webhook_free(ngx_http_callhq_webhook_delivery_t *d);

/* ngx_http_callhq_webhook_listen.c: LISTEN callhq_webhook, callhq_turn */
void ngx_http_callhq_webhook_listen(ngx_http_callhq_webhook_t *wh);
void ngx_http_callhq_webhook_reconnect(ngx_event_t *ev);
void ngx_http_callhq_webhook_hand_back(ngx_http_callhq_webhook_t *wh);
void ngx_http_callhq_webhook_listen_close(ngx_http_callhq_webhook_t *wh);

/* ngx_http_callhq_webhook_sweep.c: expiry and purge */
void ngx_http_callhq_webhook_sweep_init(ngx_http_callhq_webhook_t *wh,
    ngx_cycle_t *cycle);


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
