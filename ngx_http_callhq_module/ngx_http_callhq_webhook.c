
/*
 * ngx_http_callhq_module: the webhook dispatcher.
 *
 * The outbox rows that sql/004_webhooks.sql writes in the transaction of
 * each change are delivered from nginx's workers, never blocking them:
 *
 *   a timer (and LISTEN/NOTIFY, to wake it early) claims a batch of due
 *   rows with callhq.webhook_claim(); each row becomes a delivery with a
 *   pool of its own: resolve (nginx's resolver), connect
 *   (ngx_event_connect_peer), TLS (ngx_ssl_*), POST the signed body, read
 *   the status line; callhq.webhook_done() then records the outcome and
 *   schedules a retry.
 *
 * Claims are leases: SQL hands a row to one dispatcher at a time (SKIP
 * LOCKED) for callhq_webhook_lease, so any number of workers and nodes
 * share the work, and a delivery abandoned by an exiting worker comes
 * back once its lease ends.  Per-session order is SQL's too.
 *
 * The listener's connection also LISTENs on callhq_turn: a chat that gives
 * its session's turn back notifies it when chats wait for that session,
 * and the notification wakes this worker's first one
 * (ngx_http_callhq_wait.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <ngx_http.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"
#include "ngx_http_callhq_webhook.h"


#define NGX_HTTP_CALLHQ_WEBHOOK_RESPONSE_SIZE  1024
#define NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN        36      /* a uuid, as text */
#define NGX_HTTP_CALLHQ_WEBHOOK_SWEEP_LIMIT    100
#define NGX_HTTP_CALLHQ_WEBHOOK_LISTEN_MAX     30000
#define NGX_HTTP_CALLHQ_WEBHOOK_CHANNEL        "callhq_webhook"
#define NGX_HTTP_CALLHQ_TURN_CHANNEL           "callhq_turn"


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
    PGconn                        *pgconn;
    ngx_connection_t              *c;
    ngx_event_t                    reconnect;
    ngx_msec_t                     backoff;

    unsigned                       claiming:1;
    unsigned                       again:1;    /* claim once this one ends */
    unsigned                       sweep_busy:1;
    unsigned                       listening:1;
};


typedef struct {
    ngx_http_callhq_pg_query_t     query;
} ngx_http_callhq_webhook_status_ctx_t;


static void ngx_http_callhq_webhook_tick(ngx_event_t *ev);
static void ngx_http_callhq_webhook_claimed(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_webhook_schedule(ngx_http_callhq_webhook_t *wh);
static void ngx_http_callhq_webhook_busy(ngx_http_callhq_webhook_t *wh);
static void ngx_http_callhq_webhook_sweep(ngx_event_t *ev);
static void ngx_http_callhq_webhook_swept(ngx_http_callhq_pg_query_t *q,
    PGresult *res);

static void ngx_http_callhq_webhook_start(ngx_http_callhq_webhook_t *wh,
    PGresult *res, int row);
static ngx_int_t ngx_http_callhq_webhook_copy(ngx_pool_t *pool,
    PGresult *res, int row, int col, ngx_str_t *out);
static const char *ngx_http_callhq_webhook_parse_url(
    ngx_http_callhq_webhook_delivery_t *d);
static ngx_int_t ngx_http_callhq_webhook_create_request(
    ngx_http_callhq_webhook_delivery_t *d);
static ngx_int_t ngx_http_callhq_webhook_sign(
    ngx_http_callhq_webhook_delivery_t *d, ngx_str_t *ts, ngx_str_t *sig);
static size_t ngx_http_callhq_webhook_add_headers(
    ngx_http_callhq_webhook_delivery_t *d, json_t *headers, u_char *p);
static void ngx_http_callhq_webhook_resolve(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_callhq_webhook_connect(
    ngx_http_callhq_webhook_delivery_t *d, struct sockaddr *sockaddr,
    socklen_t socklen);
static void ngx_http_callhq_webhook_event(ngx_event_t *ev);
static void ngx_http_callhq_webhook_connected(
    ngx_http_callhq_webhook_delivery_t *d);
#if (NGX_SSL)
static void ngx_http_callhq_webhook_ssl_handshake(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_ssl_handshaked(ngx_connection_t *c);
#endif
static void ngx_http_callhq_webhook_send(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_read(
    ngx_http_callhq_webhook_delivery_t *d);
static ngx_int_t ngx_http_callhq_webhook_parse_status(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_timeout(ngx_event_t *ev);
static void ngx_http_callhq_webhook_fail(
    ngx_http_callhq_webhook_delivery_t *d, const char *fmt, ...);
static void ngx_http_callhq_webhook_finish(
    ngx_http_callhq_webhook_delivery_t *d, const char *error);
static void ngx_http_callhq_webhook_recorded(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_webhook_checked(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_webhook_release(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_close(
    ngx_http_callhq_webhook_delivery_t *d);
static void ngx_http_callhq_webhook_free(
    ngx_http_callhq_webhook_delivery_t *d);
static u_char *ngx_http_callhq_webhook_log_error(ngx_log_t *log,
    u_char *buf, size_t len);
static void ngx_http_callhq_webhook_log_url(
    ngx_http_callhq_webhook_delivery_t *d);

static void ngx_http_callhq_webhook_listen(ngx_http_callhq_webhook_t *wh);
static void ngx_http_callhq_webhook_listen_poll(ngx_http_callhq_webhook_t *wh);
static void ngx_http_callhq_webhook_listen_event(ngx_event_t *ev);
static void ngx_http_callhq_webhook_listen_read(
    ngx_http_callhq_webhook_t *wh);
static void ngx_http_callhq_webhook_listen_lost(ngx_http_callhq_webhook_t *wh,
    const char *reason);
static void ngx_http_callhq_webhook_hand_back(ngx_http_callhq_webhook_t *wh);
static void ngx_http_callhq_webhook_listen_close(
    ngx_http_callhq_webhook_t *wh);
static void ngx_http_callhq_webhook_reconnect(ngx_event_t *ev);
static void ngx_http_callhq_webhook_notice(void *arg, const char *message);

static ngx_int_t ngx_http_callhq_webhook_status_handler(
    ngx_http_request_t *r);
static void ngx_http_callhq_webhook_status_done(
    ngx_http_callhq_pg_query_t *q, PGresult *res);
static void ngx_http_callhq_webhook_status_cleanup(void *data);

static ngx_uint_t ngx_http_callhq_webhook_exiting(void);
static void *ngx_http_callhq_webhook_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_callhq_webhook_init_main_conf(ngx_conf_t *cf,
    void *conf);
#if (NGX_SSL)
static ngx_int_t ngx_http_callhq_webhook_set_ssl(ngx_conf_t *cf,
    ngx_http_callhq_webhook_main_conf_t *wmcf);
#endif
static ngx_int_t ngx_http_callhq_webhook_postconfiguration(ngx_conf_t *cf);
static char *ngx_http_callhq_webhook_backoff(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_callhq_webhook_status(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_callhq_webhook_init_process(ngx_cycle_t *cycle);
static void ngx_http_callhq_webhook_exit_process(ngx_cycle_t *cycle);


/* indices 32..47 belong to this file */

static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_webhook_claim_stmt = {
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_CLAIM, "callhq_webhook_claim",
    "select id, event_id, url, secret, headers, timeout_ms, body, attempts, "
    "org_id from callhq.webhook_claim($1::int, $2::int, $3::int, $4::jsonb)",
    4
};

static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_webhook_done_stmt = {
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_DONE, "callhq_webhook_done",
    "select callhq.webhook_done($1::bigint, $2::boolean, $3::text, "
    "$4::jsonb)",
    4
};

/* after a failure: did webhook_done() give up on the event? */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_webhook_state_stmt = {
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_STATE, "callhq_webhook_state",
    "select state from callhq.webhook_outbox where id = $1::bigint",
    1
};

static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_webhook_sweep_stmt = {
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_SWEEP, "callhq_webhook_sweep",
    "select callhq.sweep_expired($1::int), "
    "callhq.webhook_purge($2::int, $1::int)",
    2
};

static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_webhook_stats_stmt = {
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_STATS, "callhq_webhook_stats",
    "select pending, delivered, dead from callhq.webhook_stats()",
    0
};


static ngx_conf_num_bounds_t  ngx_http_callhq_webhook_batch_bounds = {
    ngx_conf_check_num_bounds, 1, 1000
};


static ngx_command_t  ngx_http_callhq_webhook_commands[] = {

    { ngx_string("callhq_webhooks"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, enable),
      NULL },

    { ngx_string("callhq_webhook_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, interval),
      NULL },

    { ngx_string("callhq_webhook_batch"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, batch),
      &ngx_http_callhq_webhook_batch_bounds },

    { ngx_string("callhq_webhook_backoff"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_callhq_webhook_backoff,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("callhq_webhook_max_age"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, max_age),
      NULL },

    { ngx_string("callhq_webhook_lease"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, lease),
      NULL },

    { ngx_string("callhq_webhook_retention"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, retention),
      NULL },

    { ngx_string("callhq_webhook_sweep_interval"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, sweep_interval),
      NULL },

    { ngx_string("callhq_webhook_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, ssl_verify),
      NULL },

    { ngx_string("callhq_webhook_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, ssl_trusted_certificate),
      NULL },

    { ngx_string("callhq_webhook_allow"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_callhq_webhook_allow,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("callhq_webhook_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_callhq_webhook_status,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_callhq_webhook_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_callhq_webhook_postconfiguration, /* postconfiguration */

    ngx_http_callhq_webhook_create_main_conf, /* create main configuration */
    ngx_http_callhq_webhook_init_main_conf, /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_callhq_webhook_module = {
    NGX_MODULE_V1,
    &ngx_http_callhq_webhook_module_ctx,   /* module context */
    ngx_http_callhq_webhook_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_callhq_webhook_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_callhq_webhook_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* this worker's dispatcher, NULL when delivery is off */
static ngx_http_callhq_webhook_t  *ngx_http_callhq_webhook;


/* ------------------------------------------------------------ claiming */

static void
ngx_http_callhq_webhook_tick(ngx_event_t *ev)
{
    ngx_uint_t                  free;
    ngx_http_callhq_webhook_t  *wh;

    wh = ev->data;

    if (ngx_http_callhq_webhook_exiting()) {
        return;
    }

    if (wh->claiming) {
        wh->again = 1;
        return;
    }

    free = wh->conf->batch - wh->in_flight;

    if (free == 0) {
        /* a slot that frees up claims again */
        wh->again = 1;
        ngx_http_callhq_webhook_schedule(wh);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, wh->log, 0,
                   "callhq webhook: claim up to %ui, %ui in flight",
                   free, wh->in_flight);

    wh->claiming = 1;
    wh->again = 0;

    *ngx_sprintf(wh->limit, "%ui", free) = '\0';

    wh->claim.values[0] = (char *) wh->limit;
    wh->claim.values[1] = (char *) wh->lease;
    wh->claim.values[2] = (char *) wh->batch;
    wh->claim.values[3] = (char *) wh->busy;

    ngx_http_callhq_webhook_busy(wh);

    ngx_http_callhq_pg_run(wh->mcf->pool, &wh->claim);
}


static void
ngx_http_callhq_webhook_claimed(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    int                         n, i;
    ngx_int_t                   limit;
    ngx_http_callhq_webhook_t  *wh;

    wh = q->data;
    wh->claiming = 0;

    if (ngx_http_callhq_webhook_exiting()) {
        return;
    }

    if (res == NULL) {
        ngx_log_error(NGX_LOG_WARN, wh->log, 0,
                      "callhq: webhook claim failed: %s", q->error);
        ngx_http_callhq_webhook_schedule(wh);
        return;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 9) {
        ngx_log_error(NGX_LOG_ERR, wh->log, 0,
                      "callhq: webhook claim failed: %s %s",
                      PQresStatus(PQresultStatus(res)),
                      PQresultErrorMessage(res));
        ngx_http_callhq_webhook_schedule(wh);
        return;
    }

    n = PQntuples(res);
    limit = ngx_atoi(wh->limit, ngx_strlen(wh->limit));

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, wh->log, 0,
                   "callhq webhook: claimed %d", n);

    for (i = 0; i < n; i++) {
        ngx_http_callhq_webhook_start(wh, res, i);
    }

    if (n == limit) {
        /* a full batch: there may be more behind it */
        wh->again = 1;
    }

    ngx_http_callhq_webhook_schedule(wh);
}


/*
 * This worker's deliveries in flight per org, as JSON for the claim: an
 * org's fair share counts them (callhq.webhook_claim).  A batch is small:
 * counting by walking the queue once per delivery is cheap.
 */

static void
ngx_http_callhq_webhook_busy(ngx_http_callhq_webhook_t *wh)
{
    u_char                              *p;
    ngx_uint_t                           n;
    ngx_queue_t                         *q, *e;
    ngx_http_callhq_webhook_delivery_t  *d, *o;

    p = wh->busy;
    *p++ = '{';

    for (q = ngx_queue_head(&wh->deliveries);
         q != ngx_queue_sentinel(&wh->deliveries);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_callhq_webhook_delivery_t, queue);

        if (d->org[0] == '\0') {
            continue;
        }

        /* counted with the first of its org */
        for (e = ngx_queue_head(&wh->deliveries); e != q;
             e = ngx_queue_next(e))
        {
            o = ngx_queue_data(e, ngx_http_callhq_webhook_delivery_t, queue);

            if (ngx_memcmp(o->org, d->org, NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN)
                == 0)
            {
                break;
            }
        }

        if (e != q) {
            continue;
        }

        n = 0;

        for (e = q; e != ngx_queue_sentinel(&wh->deliveries);
             e = ngx_queue_next(e))
        {
            o = ngx_queue_data(e, ngx_http_callhq_webhook_delivery_t, queue);

            if (ngx_memcmp(o->org, d->org, NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN)
                == 0)
            {
                n++;
            }
        }

        if (p[-1] != '{') {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "\"%*s\":%ui",
                        (size_t) NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN, d->org, n);
    }

    *p++ = '}';
    *p = '\0';
}


/* the next claim: at the interval, or now if one is owed and a slot free */

static void
ngx_http_callhq_webhook_schedule(ngx_http_callhq_webhook_t *wh)
{
    if (ngx_http_callhq_webhook_exiting()) {
        return;
    }

    ngx_add_timer(&wh->tick, wh->conf->interval + wh->offset);

    if (wh->again && !wh->claiming && wh->in_flight < wh->conf->batch) {
        ngx_post_event(&wh->tick, &ngx_posted_events);
    }
}


static void
ngx_http_callhq_webhook_sweep(ngx_event_t *ev)
{
    ngx_http_callhq_webhook_t  *wh;

    wh = ev->data;

    if (wh->sweep_busy || ngx_http_callhq_webhook_exiting()) {
        return;
    }

    wh->sweep_busy = 1;
    wh->sweeping.values[0] = (char *) wh->sweep_limit;
    wh->sweeping.values[1] = (char *) wh->retention;

    ngx_http_callhq_pg_run(wh->mcf->pool, &wh->sweeping);
}


static void
ngx_http_callhq_webhook_swept(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_int_t                   n, purged;
    ngx_http_callhq_webhook_t  *wh;

    wh = q->data;
    wh->sweep_busy = 0;

    if (ngx_http_callhq_webhook_exiting()) {
        return;
    }

    n = 0;
    purged = 0;

    if (res == NULL) {
        ngx_log_error(NGX_LOG_WARN, wh->log, 0,
                      "callhq: expiry sweep failed: %s", q->error);

    } else if (PQresultStatus(res) != PGRES_TUPLES_OK
               || PQntuples(res) != 1 || PQnfields(res) != 2)
    {
        ngx_log_error(NGX_LOG_ERR, wh->log, 0,
                      "callhq: expiry sweep failed: %s %s",
                      PQresStatus(PQresultStatus(res)),
                      PQresultErrorMessage(res));

    } else {
        n = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                     PQgetlength(res, 0, 0));

        purged = ngx_atoi((u_char *) PQgetvalue(res, 0, 1),
                          PQgetlength(res, 0, 1));

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, wh->log, 0,
                       "callhq webhook: %i expired sessions completed, "
                       "%i settled events purged", n, purged);
    }

    if (n == NGX_HTTP_CALLHQ_WEBHOOK_SWEEP_LIMIT
        || purged == NGX_HTTP_CALLHQ_WEBHOOK_SWEEP_LIMIT)
    {
        /* a full sweep: go on at once, in bites */
        ngx_post_event(&wh->sweep, &ngx_posted_events);
        return;
    }

    ngx_add_timer(&wh->sweep, wh->conf->sweep_interval);
}


/* ----------------------------------------------------------- a delivery */

static void
ngx_http_callhq_webhook_start(ngx_http_callhq_webhook_t *wh, PGresult *res,
    int row)
{
    u_char                              *p;
    const char                          *err;
    ngx_str_t                            s;
    ngx_int_t                            n;
    ngx_msec_t                           max;
    ngx_pool_t                          *pool;
    ngx_http_callhq_webhook_delivery_t  *d;
    u_char                               why[256];

    pool = ngx_create_pool(2048, wh->log);
    if (pool == NULL) {
        return;
    }

    d = ngx_pcalloc(pool, sizeof(ngx_http_callhq_webhook_delivery_t));
    if (d == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    d->pool = pool;
    d->wh = wh;

    if (ngx_http_callhq_webhook_copy(pool, res, row, 0, &s) != NGX_OK) {
        ngx_destroy_pool(pool);
        return;
    }

    d->id = s.data;

    if (ngx_http_callhq_webhook_copy(pool, res, row, 1, &s) != NGX_OK
        || ngx_http_callhq_webhook_copy(pool, res, row, 2, &d->url) != NGX_OK
        || ngx_http_callhq_webhook_copy(pool, res, row, 3, &d->secret)
           != NGX_OK
        || ngx_http_callhq_webhook_copy(pool, res, row, 4, &d->headers)
           != NGX_OK
        || ngx_http_callhq_webhook_copy(pool, res, row, 6, &d->body)
           != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    d->webhook_id.len = sizeof("msg_") - 1 + s.len;
    d->webhook_id.data = ngx_pnalloc(pool, d->webhook_id.len);
    if (d->webhook_id.data == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    ngx_sprintf(d->webhook_id.data, "msg_%V", &s);

    if (PQgetlength(res, row, 8) == NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN) {
        ngx_memcpy(d->org, PQgetvalue(res, row, 8),
                   NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN);
    }

    n = ngx_atoi((u_char *) PQgetvalue(res, row, 5),
                 PQgetlength(res, row, 5));
    d->timeout = (n > 0) ? (ngx_msec_t) n : 20000;

    /* the attempt must end, and be recorded, before its lease does */
    max = wh->conf->lease - ngx_min(wh->conf->lease / 2, 5000);

    if (d->timeout > max) {
        d->timeout = max;
    }

    n = ngx_atoi((u_char *) PQgetvalue(res, row, 7),
                 PQgetlength(res, row, 7));
    d->attempt = (n >= 0) ? n + 1 : 1;

    ngx_http_callhq_webhook_log_url(d);

    /* every line about this attempt says which event and where */
    d->log = *wh->log;
    d->log.handler = ngx_http_callhq_webhook_log_error;
    d->log.data = d;
    d->log.action = NULL;

    ngx_queue_insert_tail(&wh->deliveries, &d->queue);
    wh->in_flight++;
    wh->attempts++;

    d->timer.handler = ngx_http_callhq_webhook_timeout;
    d->timer.data = d;
    d->timer.log = &d->log;
    d->timer.cancelable = 1;
    ngx_add_timer(&d->timer, d->timeout);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                   "callhq webhook: attempt %i, row %s, timeout %M",
                   d->attempt, d->id, d->timeout);

    /* rows written before the check, or with another callhq_webhook_allow */
    p = ngx_http_callhq_webhook_url_refused(wh->conf, d->url.data, d->url.len,
                                            why, why + sizeof(why));
    if (p) {
        ngx_http_callhq_webhook_fail(d, "the URL %*s", (size_t) (p - why),
                                     why);
        return;
    }

    err = ngx_http_callhq_webhook_parse_url(d);
    if (err) {
        ngx_http_callhq_webhook_finish(d, err);
        return;
    }

    if (ngx_http_callhq_webhook_create_request(d) != NGX_OK) {
        ngx_http_callhq_webhook_finish(d, "could not build the request");
        return;
    }

    if (d->u.naddrs) {
        ngx_http_callhq_webhook_connect(d, d->u.addrs[0].sockaddr,
                                        d->u.addrs[0].socklen);
        return;
    }

    ngx_http_callhq_webhook_resolve(d);
}


/* a column into the pool, NUL-terminated; NULL becomes the empty string */

static ngx_int_t
ngx_http_callhq_webhook_copy(ngx_pool_t *pool, PGresult *res, int row,
    int col, ngx_str_t *out)
{
    out->len = PQgetisnull(res, row, col) ? 0 : PQgetlength(res, row, col);

    out->data = ngx_pnalloc(pool, out->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    *ngx_cpymem(out->data, PQgetvalue(res, row, col), out->len) = '\0';

    return NGX_OK;
}


static const char *
ngx_http_callhq_webhook_parse_url(ngx_http_callhq_webhook_delivery_t *d)
{
    u_char     *p;
    ngx_url_t  *u;

    u = &d->u;

    if (d->url.len > 7 && ngx_strncasecmp(d->url.data, (u_char *) "http://", 7)
                          == 0)
    {
        u->url.data = d->url.data + 7;
        u->url.len = d->url.len - 7;
        u->default_port = 80;

    } else if (d->url.len > 8
               && ngx_strncasecmp(d->url.data, (u_char *) "https://", 8)
                  == 0)
    {
#if (NGX_SSL)
        u->url.data = d->url.data + 8;
        u->url.len = d->url.len - 8;
        u->default_port = 443;
        d->ssl = 1;
#else
        return "https is not supported by this nginx build";
#endif

    } else {
        return "the URL is not http:// or https://";
    }

    u->uri_part = 1;
    u->no_resolve = 1;

    /* "user:password@" would read as a host and a port */
    for (p = u->url.data; p < u->url.data + u->url.len; p++) {
        if (*p == '/' || *p == '?' || *p == '#') {
            break;
        }

        if (*p == '@') {
            return "user information in the URL is not supported";
        }
    }

    if (ngx_parse_url(d->pool, u) != NGX_OK) {
        return u->err ? u->err : "invalid URL";
    }

    /* the name for SNI and certificate checks */
    d->host = u->host;

    if (d->host.len > 2 && d->host.data[0] == '[') {
        d->host.data++;
        d->host.len -= 2;
        d->ip = 1;

    } else if (u->naddrs) {
        d->ip = 1;
    }

    p = ngx_pnalloc(d->pool, d->host.len + 1);
    if (p == NULL) {
        return "out of memory";
    }

    *ngx_cpymem(p, d->host.data, d->host.len) = '\0';
    d->host.data = p;

    /* "http://host?a=b" asks for "/?a=b" */
    if (u->uri.len == 0) {
        ngx_str_set(&d->uri, "/");

    } else if (u->uri.data[0] == '?') {
        d->uri.len = u->uri.len + 1;
        d->uri.data = ngx_pnalloc(d->pool, d->uri.len);
        if (d->uri.data == NULL) {
            return "out of memory";
        }

        d->uri.data[0] = '/';
        ngx_memcpy(d->uri.data + 1, u->uri.data, u->uri.len);

    } else {
        d->uri = u->uri;
    }

    /* a fragment is the client's own business */
    p = ngx_strlchr(d->uri.data, d->uri.data + d->uri.len, '#');
    if (p) {
        d->uri.len = p - d->uri.data;
    }

    return NULL;
}


static ngx_int_t
ngx_http_callhq_webhook_create_request(ngx_http_callhq_webhook_delivery_t *d)
{
    size_t      len;
    u_char     *p;
    json_t     *headers;
    ngx_buf_t  *b;
    ngx_str_t   ts, sig;
    u_char      tsbuf[NGX_TIME_T_LEN];

    ts.data = tsbuf;
    ts.len = ngx_sprintf(tsbuf, "%T", ngx_time()) - tsbuf;

    if (ngx_http_callhq_webhook_sign(d, &ts, &sig) != NGX_OK) {
        return NGX_ERROR;
    }

    headers = NULL;

    if (d->headers.len) {
        headers = json_loadb((char *) d->headers.data, d->headers.len, 0,
                             NULL);

        if (headers == NULL || !json_is_object(headers)) {
            ngx_log_error(NGX_LOG_WARN, &d->log, 0,
                          "callhq: webhook headers are not a JSON object, "
                          "ignored");
            json_decref(headers);
            headers = NULL;
        }
    }

    len = sizeof("POST  HTTP/1.1" CRLF) - 1 + d->uri.len
          + sizeof("Host: " CRLF) - 1 + d->u.host.len
          + sizeof(":65535") - 1
          + sizeof("Content-Type: application/json" CRLF) - 1
          + sizeof("Content-Length: " CRLF) - 1 + NGX_SIZE_T_LEN
          + sizeof("Connection: close" CRLF) - 1
          + sizeof("User-Agent: callhq-webhook" CRLF) - 1
          + sizeof("webhook-id: " CRLF) - 1 + d->webhook_id.len
          + sizeof("webhook-timestamp: " CRLF) - 1 + ts.len
          + sizeof("webhook-signature: " CRLF) - 1 + sig.len
          + ngx_http_callhq_webhook_add_headers(d, headers, NULL)
          + sizeof(CRLF) - 1
          + d->body.len;

    b = ngx_create_temp_buf(d->pool, len);
    if (b == NULL) {
        json_decref(headers);
        return NGX_ERROR;
    }

    p = ngx_sprintf(b->last, "POST %V HTTP/1.1" CRLF, &d->uri);

    if (d->u.no_port) {
        p = ngx_sprintf(p, "Host: %V" CRLF, &d->u.host);

    } else {
        p = ngx_sprintf(p, "Host: %V:%d" CRLF, &d->u.host, (int) d->u.port);
    }

    p = ngx_sprintf(p, "Content-Type: application/json" CRLF
                       "Content-Length: %uz" CRLF
                       "Connection: close" CRLF
                       "User-Agent: callhq-webhook" CRLF
                       "webhook-id: %V" CRLF
                       "webhook-timestamp: %V" CRLF,
                    d->body.len, &d->webhook_id, &ts);

    if (sig.len) {
        p = ngx_sprintf(p, "webhook-signature: %V" CRLF, &sig);
    }

    p += ngx_http_callhq_webhook_add_headers(d, headers, p);

    *p++ = CR; *p++ = LF;

    b->last = ngx_cpymem(p, d->body.data, d->body.len);

    json_decref(headers);

    d->request = b;

    return NGX_OK;
}


/*
 * Standard Webhooks: "v1," + base64(HMAC-SHA256(key, id.ts.body)); the key
 * is the base64 after "whsec_", or the raw secret without that prefix.
 * No secret, no signature.
 */

static ngx_int_t
ngx_http_callhq_webhook_sign(ngx_http_callhq_webhook_delivery_t *d,
    ngx_str_t *ts, ngx_str_t *sig)
{
    u_char        *p;
    ngx_str_t      key, src, mac, msg;
    unsigned int   maclen;
    u_char         md[EVP_MAX_MD_SIZE];

    ngx_str_null(sig);

    if (d->secret.len == 0) {
        return NGX_OK;
    }

    key = d->secret;

    if (key.len > 6 && ngx_strncmp(key.data, "whsec_", 6) == 0) {
        src.data = key.data + 6;
        src.len = key.len - 6;

        key.data = ngx_pnalloc(d->pool, ngx_base64_decoded_length(src.len));
        if (key.data == NULL) {
            return NGX_ERROR;
        }

        if (ngx_decode_base64(&key, &src) != NGX_OK) {
            ngx_log_error(NGX_LOG_WARN, &d->log, 0,
                          "callhq: webhook secret is \"whsec_\" with "
                          "invalid base64, used as raw bytes");
            key = d->secret;
        }
    }

    msg.len = d->webhook_id.len + 1 + ts->len + 1 + d->body.len;
    msg.data = ngx_pnalloc(d->pool, msg.len);
    if (msg.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(msg.data, d->webhook_id.data, d->webhook_id.len);
    *p++ = '.';
    p = ngx_cpymem(p, ts->data, ts->len);
    *p++ = '.';
    ngx_memcpy(p, d->body.data, d->body.len);

    if (HMAC(EVP_sha256(), key.data, (int) key.len, msg.data, msg.len,
             md, &maclen)
        == NULL)
    {
        ngx_log_error(NGX_LOG_ERR, &d->log, 0, "callhq: HMAC() failed");
        return NGX_ERROR;
    }

    mac.data = md;
    mac.len = maclen;

    sig->data = ngx_pnalloc(d->pool, 3 + ngx_base64_encoded_length(maclen));
    if (sig->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sig->data, "v1,", 3);

    src.data = sig->data + 3;
    ngx_encode_base64(&src, &mac);
    sig->len = 3 + src.len;

    return NGX_OK;
}


/*
 * The assistant's server.headers: sizes them when p is NULL, writes them
 * otherwise.  Names that are not tokens, values with control characters
 * and the headers the module owns are left out.
 */

static size_t
ngx_http_callhq_webhook_add_headers(ngx_http_callhq_webhook_delivery_t *d,
    json_t *headers, u_char *p)
{
    size_t       len, size, i, n;
    u_char       c, *start;
    json_t      *value;
    const char  *name, *v;

    static u_char  token[] = "!#$%&'*+-.^_`|~";
    static char   *own[] = {
        "host", "content-type", "content-length", "connection",
        "transfer-encoding", "webhook-id", "webhook-timestamp",
        "webhook-signature", "user-agent", NULL
    };

    if (headers == NULL) {
        return 0;
    }

    start = p;
    size = 0;

    json_object_foreach(headers, name, value) {

        len = ngx_strlen(name);

        if (len == 0 || !json_is_string(value)) {
            goto skip;
        }

        for (i = 0; i < len; i++) {
            c = (u_char) name[i];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9')
                  || ngx_strlchr(token, token + sizeof(token) - 1, c)))
            {
                goto skip;
            }
        }

        for (i = 0; own[i]; i++) {
            if (ngx_strcasecmp((u_char *) name, (u_char *) own[i]) == 0) {
                goto skip;
            }
        }

        v = json_string_value(value);
        n = json_string_length(value);

        for (i = 0; i < n; i++) {
            c = (u_char) v[i];

            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                goto skip;
            }
        }

        if (start == NULL) {
            size += len + sizeof(": " CRLF) - 1 + n;
            continue;
        }

        p = ngx_cpymem(p, name, len);
        *p++ = ':'; *p++ = ' ';
        p = ngx_cpymem(p, v, n);
        *p++ = CR; *p++ = LF;

        continue;

    skip:

        if (start == NULL) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                           "callhq webhook: header \"%s\" left out", name);
        }
    }

    return start ? (size_t) (p - start) : size;
}


static void
ngx_http_callhq_webhook_resolve(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_resolver_ctx_t                   *ctx;
    ngx_http_callhq_webhook_main_conf_t  *conf;

    conf = d->wh->conf;
    d->state = ngx_http_callhq_webhook_resolving;
    d->log.action = "resolving the webhook host";

    ctx = NGX_NO_RESOLVER;

    if (conf->resolver) {
        ctx = ngx_resolve_start(conf->resolver, NULL);
        if (ctx == NULL) {
            ngx_http_callhq_webhook_finish(d, "resolver failed");
            return;
        }
    }

    if (ctx == NGX_NO_RESOLVER) {
        ngx_http_callhq_webhook_fail(d, "no resolver defined to resolve %V "
                                     "(set \"resolver\" in the http block)",
                                     &d->host);
        return;
    }

    ctx->name = d->host;
    ctx->handler = ngx_http_callhq_webhook_resolved;
    ctx->data = d;
    ctx->timeout = ngx_min(conf->resolver_timeout, d->timeout);
    ctx->cancelable = 1;

    d->resolve = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* ngx_resolve_name() freed ctx */
        d->resolve = NULL;
        ngx_http_callhq_webhook_finish(d, "resolver failed");
    }
}


static void
ngx_http_callhq_webhook_resolved(ngx_resolver_ctx_t *ctx)
{
    socklen_t                            socklen;
    struct sockaddr                     *sockaddr;
    ngx_http_callhq_webhook_delivery_t  *d;

    d = ctx->data;

    if (ctx->state) {
        ngx_http_callhq_webhook_fail(d, "%V could not be resolved (%i: %s)",
                                     &ctx->name, ctx->state,
                                     ngx_resolver_strerror(ctx->state));
        return;
    }

    socklen = ctx->addrs[0].socklen;

    sockaddr = ngx_palloc(d->pool, socklen);
    if (sockaddr == NULL) {
        ngx_http_callhq_webhook_finish(d, "out of memory");
        return;
    }

    ngx_memcpy(sockaddr, ctx->addrs[0].sockaddr, socklen);
    ngx_inet_set_port(sockaddr, d->u.port);

    ngx_resolve_name_done(ctx);
    d->resolve = NULL;

    ngx_http_callhq_webhook_connect(d, sockaddr, socklen);
}


static void
ngx_http_callhq_webhook_connect(ngx_http_callhq_webhook_delivery_t *d,
    struct sockaddr *sockaddr, socklen_t socklen)
{
    ngx_int_t          rc;
    const char        *what;
    ngx_connection_t  *c;
    u_char             text[NGX_SOCKADDR_STRLEN];

    /* what a name resolves to now, not what it did when it was checked */
    what = ngx_http_callhq_webhook_addr_refused(d->wh->conf, sockaddr);

    if (what) {
        ngx_http_callhq_webhook_fail(d, "%V is %s (%*s), refused",
                                     &d->host, what,
                                     ngx_sock_ntop(sockaddr, socklen, text,
                                                   NGX_SOCKADDR_STRLEN, 0),
                                     text);
        return;
    }

    d->state = ngx_http_callhq_webhook_connecting;
    d->log.action = "connecting to the webhook receiver";

    d->peer.sockaddr = sockaddr;
    d->peer.socklen = socklen;
    d->peer.name = &d->u.host;
    d->peer.get = ngx_event_get_peer;
    d->peer.log = &d->log;
    d->peer.log_error = NGX_ERROR_INFO;

    rc = ngx_event_connect_peer(&d->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        d->peer.connection = NULL;
        ngx_http_callhq_webhook_finish(d, "connect() failed");
        return;
    }

    c = d->peer.connection;
    c->data = d;
    c->pool = d->pool;
    c->read->handler = ngx_http_callhq_webhook_event;
    c->write->handler = ngx_http_callhq_webhook_event;

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_callhq_webhook_connected(d);
}


static void
ngx_http_callhq_webhook_event(ngx_event_t *ev)
{
    ngx_connection_t                    *c;
    ngx_http_callhq_webhook_delivery_t  *d;

    c = ev->data;
    d = c->data;

    switch (d->state) {

    case ngx_http_callhq_webhook_connecting:
        ngx_http_callhq_webhook_connected(d);
        return;

    case ngx_http_callhq_webhook_sending:
        if (ev->write) {
            ngx_http_callhq_webhook_send(d);
        }

        return;

    case ngx_http_callhq_webhook_reading:
        if (!ev->write) {
            ngx_http_callhq_webhook_read(d);
        }

        return;

    default:
        return;
    }
}


static void
ngx_http_callhq_webhook_connected(ngx_http_callhq_webhook_delivery_t *d)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;
    u_char             text[NGX_MAX_ERROR_STR];

    c = d->peer.connection;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        *ngx_strerror(err, text, sizeof(text) - 1) = '\0';
        ngx_http_callhq_webhook_fail(d, "connect() failed (%d: %s)", err,
                                     text);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                   "callhq webhook: connected to %V", &d->u.host);

#if (NGX_SSL)
    if (d->ssl) {
        ngx_http_callhq_webhook_ssl_handshake(d);
        return;
    }
#endif

    ngx_http_callhq_webhook_send(d);
}


#if (NGX_SSL)

static void
ngx_http_callhq_webhook_ssl_handshake(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_int_t                            rc;
    ngx_connection_t                    *c;
    X509_VERIFY_PARAM                   *param;
    ngx_http_callhq_webhook_main_conf_t  *conf;

    c = d->peer.connection;
    conf = d->wh->conf;

    d->state = ngx_http_callhq_webhook_handshaking;
    d->log.action = "SSL handshaking to the webhook receiver";

    if (ngx_ssl_create_connection(conf->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        ngx_http_callhq_webhook_finish(d, "SSL connection failed");
        return;
    }

    /* RFC 6066: no IP literals in SNI */
    if (!d->ip
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) d->host.data)
           == 0)
    {
        ngx_ssl_error(NGX_LOG_ERR, &d->log, 0,
                      "SSL_set_tlsext_host_name(\"%s\") failed",
                      d->host.data);
        ngx_http_callhq_webhook_finish(d, "SSL connection failed");
        return;
    }

    if (conf->ssl_verify) {
        /* OpenSSL checks the name with the chain: one verify result */
        param = SSL_get0_param(c->ssl->connection);

        if ((d->ip ? X509_VERIFY_PARAM_set1_ip_asc(param,
                                                   (char *) d->host.data)
                   : X509_VERIFY_PARAM_set1_host(param,
                                                 (char *) d->host.data,
                                                 d->host.len))
            == 0)
        {
            ngx_ssl_error(NGX_LOG_ERR, &d->log, 0,
                          "X509_VERIFY_PARAM_set1_host(\"%s\") failed",
                          d->host.data);
            ngx_http_callhq_webhook_finish(d, "SSL connection failed");
            return;
        }
    }

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_http_callhq_webhook_ssl_handshaked;
        return;
    }

    ngx_http_callhq_webhook_ssl_handshaked(c);
}


static void
ngx_http_callhq_webhook_ssl_handshaked(ngx_connection_t *c)
{
    long                                 rc;
    ngx_http_callhq_webhook_delivery_t  *d;

    d = c->data;

    if (!c->ssl->handshaked) {
        ngx_http_callhq_webhook_finish(d, "SSL handshake failed");
        return;
    }

    if (d->wh->conf->ssl_verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_http_callhq_webhook_fail(d, "SSL certificate verify error: "
                                         "(%l:%s)", rc,
                                         X509_verify_cert_error_string(rc));
            return;
        }
    }

    c->read->handler = ngx_http_callhq_webhook_event;
    c->write->handler = ngx_http_callhq_webhook_event;

    ngx_http_callhq_webhook_send(d);
}

#endif


static void
ngx_http_callhq_webhook_send(ngx_http_callhq_webhook_delivery_t *d)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = d->peer.connection;
    b = d->request;

    d->state = ngx_http_callhq_webhook_sending;
    d->log.action = "sending the webhook";

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_callhq_webhook_finish(d, "send() failed");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_callhq_webhook_finish(d, "send() failed");
            return;
        }

        b->pos += n;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                   "callhq webhook: sent %uz bytes",
                   (size_t) (b->last - b->start));

    d->state = ngx_http_callhq_webhook_reading;
    d->log.action = "reading the webhook response";

    d->response = ngx_create_temp_buf(d->pool,
                                      NGX_HTTP_CALLHQ_WEBHOOK_RESPONSE_SIZE);
    if (d->response == NULL) {
        ngx_http_callhq_webhook_finish(d, "out of memory");
        return;
    }

    ngx_http_callhq_webhook_read(d);
}


/* only the status line matters: the connection closes after it */

static void
ngx_http_callhq_webhook_read(ngx_http_callhq_webhook_delivery_t *d)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = d->peer.connection;
    b = d->response;

    for ( ;; ) {
        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_callhq_webhook_finish(d, "recv() failed");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_callhq_webhook_finish(d, "recv() failed");
            return;
        }

        if (n == 0) {
            if (b->last > b->pos) {
                break;
            }

            ngx_http_callhq_webhook_finish(d, "the receiver closed the "
                                           "connection without a response");
            return;
        }

        b->last += n;

        if (ngx_strlchr(b->pos, b->last, LF) || b->last == b->end) {
            break;
        }
    }

    if (ngx_http_callhq_webhook_parse_status(d) != NGX_OK) {
        ngx_http_callhq_webhook_finish(d, "invalid response status line");
        return;
    }

    if (d->status >= 200 && d->status < 300) {
        ngx_http_callhq_webhook_finish(d, NULL);
        return;
    }

    ngx_http_callhq_webhook_fail(d, "the receiver answered %ui", d->status);
}


static ngx_int_t
ngx_http_callhq_webhook_parse_status(ngx_http_callhq_webhook_delivery_t *d)
{
    u_char  *p;

    p = d->response->pos;

    /* "HTTP/1.1 200" */
    if (d->response->last - p < 12
        || ngx_strncmp(p, "HTTP/", 5) != 0
        || p[5] < '0' || p[5] > '9' || p[6] != '.'
        || p[7] < '0' || p[7] > '9' || p[8] != ' '
        || p[9] < '1' || p[9] > '5'
        || p[10] < '0' || p[10] > '9'
        || p[11] < '0' || p[11] > '9')
    {
        return NGX_ERROR;
    }

    d->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

    return NGX_OK;
}


static void
ngx_http_callhq_webhook_timeout(ngx_event_t *ev)
{
    ngx_http_callhq_webhook_delivery_t  *d;

    d = ev->data;

    if (d->peer.connection) {
        d->peer.connection->timedout = 1;
    }

    ngx_http_callhq_webhook_fail(d, "timed out after %M ms", d->timeout);
}


static void
ngx_http_callhq_webhook_fail(ngx_http_callhq_webhook_delivery_t *d,
    const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;
    u_char    text[NGX_MAX_ERROR_STR];

    va_start(args, fmt);
    last = ngx_vslprintf(text, text + sizeof(text), fmt, args);
    va_end(args);

    p = ngx_pnalloc(d->pool, last - text + 1);
    if (p == NULL) {
        ngx_http_callhq_webhook_finish(d, "failed");
        return;
    }

    *ngx_cpymem(p, text, last - text) = '\0';

    ngx_http_callhq_webhook_finish(d, (char *) p);
}


/* the attempt is over, one way or the other: record it */

static void
ngx_http_callhq_webhook_finish(ngx_http_callhq_webhook_delivery_t *d,
    const char *error)
{
    ngx_http_callhq_webhook_t   *wh;
    ngx_http_callhq_pg_query_t  *q;

    wh = d->wh;

    ngx_http_callhq_webhook_close(d);

    d->error = error;
    d->log.action = NULL;

    if (error) {
        wh->failures++;
        ngx_log_error(NGX_LOG_WARN, &d->log, 0,
                      "callhq: webhook attempt %i failed: %s",
                      d->attempt, error);

    } else {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &d->log, 0,
                       "callhq webhook: delivered, attempt %i, status %ui",
                       d->attempt, d->status);
    }

    d->state = ngx_http_callhq_webhook_recording;

    q = &d->query;
    q->stmt = &ngx_http_callhq_webhook_done_stmt;
    q->values[0] = (char *) d->id;
    q->values[1] = error ? "false" : "true";
    q->values[2] = (char *) error;
    q->values[3] = (char *) wh->conf->done_opts.data;
    q->handler = ngx_http_callhq_webhook_recorded;
    q->data = d;
    q->log = &d->log;

    /* may call the handler, which frees d, before it returns */
    ngx_http_callhq_pg_run(wh->mcf->pool, q);
}


static void
ngx_http_callhq_webhook_recorded(ngx_http_callhq_pg_query_t *q,
    PGresult *res)
{
    ngx_http_callhq_webhook_delivery_t  *d;

    d = q->data;

    if (res == NULL) {
        /* the lease ends and the row comes back: at least once */
        if (!ngx_http_callhq_webhook_exiting()) {
            ngx_log_error(NGX_LOG_WARN, &d->log, 0,
                          "callhq: webhook attempt could not be recorded: %s",
                          q->error);
        }

    } else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_ERR, &d->log, 0,
                      "callhq: webhook attempt could not be recorded: %s %s",
                      PQresStatus(PQresultStatus(res)),
                      PQresultErrorMessage(res));

    } else if (d->error && !ngx_http_callhq_webhook_exiting()) {
        q->stmt = &ngx_http_callhq_webhook_state_stmt;
        q->handler = ngx_http_callhq_webhook_checked;

        ngx_http_callhq_pg_run(d->wh->mcf->pool, q);
        return;
    }

    ngx_http_callhq_webhook_release(d);
}


static void
ngx_http_callhq_webhook_checked(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_http_callhq_webhook_delivery_t  *d;

    d = q->data;

    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
        && ngx_strcmp(PQgetvalue(res, 0, 0), "dead") == 0)
    {
        ngx_log_error(NGX_LOG_INFO, &d->log, 0,
                      "callhq: webhook dead-lettered after %i attempts, "
                      "the last: %s", d->attempt, d->error);
    }

    ngx_http_callhq_webhook_release(d);
}


/* a slot is free: claim again if a claim is owed */

static void
ngx_http_callhq_webhook_release(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_http_callhq_webhook_t  *wh;

    wh = d->wh;

    ngx_http_callhq_webhook_free(d);

    if (wh->again && !wh->claiming && !ngx_http_callhq_webhook_exiting()) {
        ngx_post_event(&wh->tick, &ngx_posted_events);
    }
}


/* lets go of the network side: resolver, connection, timer */

static void
ngx_http_callhq_webhook_close(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_connection_t  *c;

    if (d->timer.timer_set) {
        ngx_del_timer(&d->timer);
    }

    if (d->resolve) {
        ngx_resolve_name_done(d->resolve);
        d->resolve = NULL;
    }

    c = d->peer.connection;

    if (c == NULL) {
        return;
    }

    d->peer.connection = NULL;

#if (NGX_SSL)
    if (c->ssl) {
        /* close_notify, if it can go at once; never wait for the peer's */
        c->ssl->no_wait_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            c->ssl->no_send_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
    }
#endif

    ngx_close_connection(c);
}


static void
ngx_http_callhq_webhook_free(ngx_http_callhq_webhook_delivery_t *d)
{
    ngx_http_callhq_webhook_t  *wh;

    wh = d->wh;

    ngx_http_callhq_webhook_close(d);

    ngx_queue_remove(&d->queue);
    wh->in_flight--;

    ngx_destroy_pool(d->pool);
}


static u_char *
ngx_http_callhq_webhook_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                              *p;
    ngx_http_callhq_webhook_delivery_t  *d;

    d = log->data;
    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
    }

    return ngx_snprintf(p, len, ", webhook: %V, url: \"%V\"",
                        &d->webhook_id, &d->log_url);
}


/*
 * The URL as logs show it: a query string or user information may hold a
 * tenant's credentials ("?token=..."), so both are left out.
 */

static void
ngx_http_callhq_webhook_log_url(ngx_http_callhq_webhook_delivery_t *d)
{
    u_char  *p, *end, *host, *path, *at;

    p = d->url.data;
    end = p + d->url.len;

    for (path = p; path < end; path++) {
        if (*path == '?' || *path == '#') {
            end = path;
            break;
        }
    }

    host = ngx_strlcasestrn(p, end, (u_char *) "://", 3 - 1);
    host = host ? host + 3 : p;

    path = ngx_strlchr(host, end, '/');
    if (path == NULL) {
        path = end;
    }

    at = NULL;

    for (p = host; p < path; p++) {
        if (*p == '@') {
            at = p;
        }
    }

    d->log_url.data = d->url.data;
    d->log_url.len = end - d->url.data;

    if (at == NULL) {
        return;
    }

    p = ngx_pnalloc(d->pool, d->log_url.len);
    if (p == NULL) {
        d->log_url.len = host - d->url.data;
        return;
    }

    d->log_url.data = p;
    p = ngx_cpymem(p, d->url.data, host - d->url.data);
    p = ngx_cpymem(p, at + 1, end - (at + 1));
    d->log_url.len = p - d->log_url.data;
}


/* ---------------------------------- LISTEN callhq_webhook, callhq_turn */

static void
ngx_http_callhq_webhook_listen(ngx_http_callhq_webhook_t *wh)
{
    int                fd;
    PGconn            *pgconn;
    ngx_connection_t  *c;

    /* our own session, named so that operators can find it */
    static const char  *keywords[] = {
        "dbname", "fallback_application_name", NULL
    };
    const char         *values[3];

    /*
     * Behind PgBouncer (callhq_postgres_prepare off) a LISTEN goes on a
     * direct connection (callhq_webhook_listen), or nowhere: then the
     * dispatcher's tick and a waiting chat's re-check find the work.
     */
    if (wh->mcf->pg.listen.len) {
        values[0] = (char *) wh->mcf->pg.listen.data;

    } else if (wh->mcf->pg.prepare) {
        values[0] = (char *) wh->mcf->pg.conninfo.data;

    } else {
        ngx_log_error(NGX_LOG_INFO, wh->log, 0,
                      "callhq: no LISTEN behind PgBouncer without "
                      "\"callhq_webhook_listen\": polling");
        return;
    }

    values[1] = "callhq_webhook_listen";
    values[2] = NULL;

    pgconn = PQconnectStartParams(keywords, values, 1);

    if (pgconn == NULL || PQstatus(pgconn) == CONNECTION_BAD) {
        ngx_log_error(NGX_LOG_WARN, wh->log, 0,
                      "callhq: webhook listener could not connect: %s",
                      pgconn ? PQerrorMessage(pgconn) : "out of memory");
        goto failed;
    }

    if (PQsetnonblocking(pgconn, 1) == -1) {
        ngx_log_error(NGX_LOG_WARN, wh->log, 0,
                      "callhq: PQsetnonblocking() failed: %s",
                      PQerrorMessage(pgconn));
        goto failed;
    }

    PQsetNoticeProcessor(pgconn, ngx_http_callhq_webhook_notice, wh);

    fd = PQsocket(pgconn);

    c = ngx_get_connection(fd, wh->log);
    if (c == NULL) {
        goto failed;
    }

    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->data = wh;
    c->log_error = NGX_ERROR_INFO;
    c->read->handler = ngx_http_callhq_webhook_listen_event;
    c->write->handler = ngx_http_callhq_webhook_listen_event;
    c->read->log = wh->log;
    c->write->log = wh->log;

    /* a graceful shutdown closes it, as an idle keepalive connection */
    c->idle = 1;

    if (ngx_add_conn(c) != NGX_OK) {
        c->fd = (ngx_socket_t) -1;
        ngx_free_connection(c);
        goto failed;
    }

    wh->pgconn = pgconn;
    wh->c = c;
    wh->listening = 0;

    c->read->cancelable = 1;
    ngx_add_timer(c->read, wh->mcf->pg.connect_timeout);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, wh->log, 0,
                   "callhq webhook: listener connecting fd:%d", fd);

    ngx_http_callhq_webhook_listen_poll(wh);

    return;

failed:

    if (pgconn) {
        PQfinish(pgconn);
    }

    ngx_add_timer(&wh->reconnect, wh->backoff);
}


static void
ngx_http_callhq_webhook_listen_poll(ngx_http_callhq_webhook_t *wh)
{
    ngx_uint_t                 n;
    PostgresPollingStatusType  rc;

    /* edge-triggered: poll again while the socket stays writable */
    for (n = 0; n < 8; n++) {
        rc = PQconnectPoll(wh->pgconn);

        switch (rc) {

        case PGRES_POLLING_WRITING:
            if (wh->c->write->ready) {
                continue;
            }

            return;

        case PGRES_POLLING_READING:
            return;

        case PGRES_POLLING_OK:
            if (wh->c->read->timer_set) {
                ngx_del_timer(wh->c->read);
            }

            if (!PQsendQuery(wh->pgconn,
                             "LISTEN " NGX_HTTP_CALLHQ_WEBHOOK_CHANNEL "; "
                             "LISTEN " NGX_HTTP_CALLHQ_TURN_CHANNEL)
                || PQflush(wh->pgconn) == -1)
            {
                ngx_http_callhq_webhook_listen_lost(wh,
                                                    PQerrorMessage(wh->pgconn));
                return;
            }

            ngx_log_error(NGX_LOG_INFO, wh->log, 0,
                          "callhq: webhook listener connected");

            wh->listening = 1;
            wh->backoff = 1000;

            /* whatever was notified while nobody listened */
            ngx_post_event(&wh->tick, &ngx_posted_events);
            ngx_http_callhq_wait_wake_all(wh->log);
            return;

        default: /* PGRES_POLLING_FAILED */
            ngx_http_callhq_webhook_listen_lost(wh,
                                                PQerrorMessage(wh->pgconn));
            return;
        }
    }
}


static void
ngx_http_callhq_webhook_listen_event(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_callhq_webhook_t  *wh;

    c = ev->data;
    wh = c->data;

    if (c->close) {
        /* graceful shutdown */
        ngx_http_callhq_webhook_hand_back(wh);
        ngx_http_callhq_webhook_listen_close(wh);
        return;
    }

    if (ev->timedout) {
        ev->timedout = 0;
        ngx_http_callhq_webhook_listen_lost(wh, "connect timed out");
        return;
    }

    if (!wh->listening) {
        ngx_http_callhq_webhook_listen_poll(wh);
        return;
    }

    if (ev->write) {
        if (PQflush(wh->pgconn) == -1) {
            ngx_http_callhq_webhook_listen_lost(wh,
                                                PQerrorMessage(wh->pgconn));
        }

        return;
    }

    ngx_http_callhq_webhook_listen_read(wh);
}


static void
ngx_http_callhq_webhook_listen_read(ngx_http_callhq_webhook_t *wh)
{
    PGnotify    *notify;
    PGresult    *res;
    ngx_uint_t   notified;

    if (!PQconsumeInput(wh->pgconn)) {
        ngx_http_callhq_webhook_listen_lost(wh, PQerrorMessage(wh->pgconn));
        return;
    }

    /* the LISTEN command's own result */
    while (!PQisBusy(wh->pgconn)) {
        res = PQgetResult(wh->pgconn);
        if (res == NULL) {
            break;
        }

        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ngx_log_error(NGX_LOG_ERR, wh->log, 0,
                          "callhq: webhook LISTEN failed: %s",
                          PQresultErrorMessage(res));
        }

        PQclear(res);
    }

    notified = 0;

    while ((notify = PQnotifies(wh->pgconn)) != NULL) {

        if (ngx_strcmp(notify->relname, NGX_HTTP_CALLHQ_TURN_CHANNEL) == 0) {
            ngx_http_callhq_wait_notified(notify->extra, notify->be_pid);

        } else {
            notified = 1;
        }

        PQfreemem(notify);
    }

    if (notified) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, wh->log, 0,
                       "callhq webhook: notified");

        ngx_post_event(&wh->tick, &ngx_posted_events);
    }

    if (PQstatus(wh->pgconn) != CONNECTION_OK) {
        ngx_http_callhq_webhook_listen_lost(wh, PQerrorMessage(wh->pgconn));
        return;
    }

    /*
     * A server that goes says so (FATAL, as a notice) and closes: both may
     * come with one edge, and libpq reads the message only, so no other
     * event would ever tell of the end.
     */
    if (wh->c->read->pending_eof) {
        ngx_http_callhq_webhook_listen_lost(wh, "the server closed the "
                                            "connection");
    }
}


static void
ngx_http_callhq_webhook_listen_lost(ngx_http_callhq_webhook_t *wh,
    const char *reason)
{
    size_t  len;

    /* the first line of libpq's message: the rest explains it at length */
    for (len = 0; reason[len] && reason[len] != '\n'; len++) {
        /* void */
    }

    ngx_log_error(NGX_LOG_WARN, wh->log, 0,
                  "callhq: webhook listener lost: %*s, reconnecting in %M ms",
                  len, reason, wh->backoff);

    ngx_http_callhq_webhook_listen_close(wh);

    if (ngx_http_callhq_webhook_exiting()) {
        return;
    }

    ngx_add_timer(&wh->reconnect, wh->backoff);

    wh->backoff = ngx_min(wh->backoff * 2, NGX_HTTP_CALLHQ_WEBHOOK_LISTEN_MAX);
}


/*
 * A graceful shutdown abandons the deliveries in flight.  Those that sent
 * nothing yet (resolving, connecting, handshaking) are given back at once
 * rather than after their leases: one statement on the listener's
 * connection, sent as it closes (PostgreSQL runs it before the
 * connection's end).  Those that sent their request may have been
 * received: they come back after their leases, as before.
 */

static void
ngx_http_callhq_webhook_hand_back(ngx_http_callhq_webhook_t *wh)
{
    int                                  rc;
    u_char                              *p, *last;
    size_t                               len;
    ngx_uint_t                           n, i;
    ngx_queue_t                         *q;
    const char                          *values[1];
    ngx_http_callhq_webhook_delivery_t  *d;

    if (wh->pgconn == NULL || !wh->listening) {
        return;
    }

    len = sizeof("{}");

    for (q = ngx_queue_head(&wh->deliveries);
         q != ngx_queue_sentinel(&wh->deliveries);
         q = ngx_queue_next(q))
    {
        len += NGX_INT64_LEN + 1;
    }

    p = ngx_alloc(len, wh->log);
    if (p == NULL) {
        return;
    }

    last = p;
    *last++ = '{';
    n = 0;

    for (q = ngx_queue_head(&wh->deliveries);
         q != ngx_queue_sentinel(&wh->deliveries);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_http_callhq_webhook_delivery_t, queue);

        if (d->state > ngx_http_callhq_webhook_handshaking) {
            continue;
        }

        if (n++) {
            *last++ = ',';
        }

        last = ngx_sprintf(last, "%s", d->id);
    }

    *last++ = '}';
    *last = '\0';

    if (n == 0) {
        ngx_free(p);
        return;
    }

    values[0] = (char *) p;

    rc = -1;

    if (PQsendQueryParams(wh->pgconn,
                          "select callhq.webhook_release($1::bigint[])",
                          1, NULL, values, NULL, NULL, 0)
        == 1)
    {
        /* a few bytes on an idle connection: they go at once, or never */
        for (i = 0; i < 8; i++) {
            rc = PQflush(wh->pgconn);
            if (rc != 1) {
                break;
            }
        }
    }

    ngx_log_error(NGX_LOG_INFO, wh->log, 0,
                  "callhq: %ui unsent webhook deliveries %s back", n,
                  (rc == 0) ? "handed" : "could not be handed");

    ngx_free(p);
}


static void
ngx_http_callhq_webhook_listen_close(ngx_http_callhq_webhook_t *wh)
{
    ngx_connection_t  *c;

    c = wh->c;

    if (c == NULL) {
        return;
    }

    ngx_http_callhq_pg_finish(c, wh->pgconn);

    wh->c = NULL;
    wh->pgconn = NULL;
    wh->listening = 0;
}


static void
ngx_http_callhq_webhook_reconnect(ngx_event_t *ev)
{
    ngx_http_callhq_webhook_t  *wh;

    wh = ev->data;

    if (ngx_http_callhq_webhook_exiting() || wh->c) {
        return;
    }

    ngx_http_callhq_webhook_listen(wh);
}


static void
ngx_http_callhq_webhook_notice(void *arg, const char *message)
{
    ngx_http_callhq_webhook_t  *wh = arg;

    ngx_log_error(NGX_LOG_NOTICE, wh->log, 0, "callhq: postgres: %s",
                  message);
}


/* ------------------------------------------------ callhq_webhook_status */

static ngx_int_t
ngx_http_callhq_webhook_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                              rc;
    ngx_pool_cleanup_t                    *cln;
    ngx_http_callhq_main_conf_t           *mcf;
    ngx_http_callhq_webhook_status_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_callhq_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_callhq_webhook_status_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_callhq_webhook_status_cleanup;
    cln->data = &ctx->query;

    ctx->query.stmt = &ngx_http_callhq_webhook_stats_stmt;
    ctx->query.handler = ngx_http_callhq_webhook_status_done;
    ctx->query.data = r;
    ctx->query.log = r->connection->log;

    r->main->count++;

    ngx_http_callhq_pg_run(mcf->pool, &ctx->query);

    return NGX_DONE;
}


static void
ngx_http_callhq_webhook_status_done(ngx_http_callhq_pg_query_t *q,
    PGresult *res)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_str_t                   body;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_callhq_webhook_t  *wh;

    r = q->data;
    c = r->connection;
    wh = ngx_http_callhq_webhook;

    if (res == NULL) {
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "%s", q->error);
        goto done;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1 || PQnfields(res) != 3)
    {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "callhq: webhook_stats() failed: %s %s",
                      PQresStatus(PQresultStatus(res)),
                      PQresultErrorMessage(res));
        rc = ngx_http_callhq_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal error");
        goto done;
    }

    p = ngx_pnalloc(r->pool, sizeof("{\"pending\":,\"delivered\":,\"dead\":,"
                                    "\"worker\":{\"inFlight\":,"
                                    "\"attempts\":,\"failures\":}}")
                             + 6 * NGX_INT64_LEN);
    if (p == NULL) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    /* counts come as bigint text: digits only, spliced in as numbers */
    body.data = p;
    p = ngx_sprintf(p, "{\"pending\":%s,\"delivered\":%s,\"dead\":%s,"
                    "\"worker\":{\"inFlight\":%ui,\"attempts\":%ui,"
                    "\"failures\":%ui}}",
                    PQgetisnull(res, 0, 0) ? "0" : PQgetvalue(res, 0, 0),
                    PQgetisnull(res, 0, 1) ? "0" : PQgetvalue(res, 0, 1),
                    PQgetisnull(res, 0, 2) ? "0" : PQgetvalue(res, 0, 2),
                    wh ? wh->in_flight : 0, wh ? wh->attempts : 0,
                    wh ? wh->failures : 0);
    body.len = p - body.data;

    rc = ngx_http_callhq_send_json(r, NGX_HTTP_OK, &body);

done:

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_callhq_webhook_status_cleanup(void *data)
{
    ngx_http_callhq_pg_query_t  *q = data;

    ngx_http_callhq_pg_cancel(q);
}


/* ------------------------------------------------------- configuration */

static ngx_uint_t
ngx_http_callhq_webhook_exiting(void)
{
    return ngx_exiting || ngx_quit || ngx_terminate;
}


static void *
ngx_http_callhq_webhook_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_callhq_webhook_main_conf_t  *wmcf;

    wmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_callhq_webhook_main_conf_t));
    if (wmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     wmcf->ssl_trusted_certificate = { 0, NULL };
     *     wmcf->ssl = NULL;
     *     wmcf->resolver = NULL;
     *     wmcf->done_opts = { 0, NULL };
     *     wmcf->status = 0;
     */

    wmcf->enable = NGX_CONF_UNSET;
    wmcf->interval = NGX_CONF_UNSET_MSEC;
    wmcf->batch = NGX_CONF_UNSET_UINT;
    wmcf->backoff_base = NGX_CONF_UNSET_MSEC;
    wmcf->backoff_max = NGX_CONF_UNSET_MSEC;
    wmcf->max_age = NGX_CONF_UNSET;
    wmcf->lease = NGX_CONF_UNSET_MSEC;
    wmcf->sweep_interval = NGX_CONF_UNSET_MSEC;
    wmcf->retention = NGX_CONF_UNSET;
    wmcf->ssl_verify = NGX_CONF_UNSET;
    wmcf->resolver_timeout = NGX_CONF_UNSET_MSEC;

    return wmcf;
}


static char *
ngx_http_callhq_webhook_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_callhq_webhook_main_conf_t  *wmcf = conf;

    u_char                       *p;
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_callhq_module);

    if (wmcf->enable == NGX_CONF_UNSET) {
        wmcf->enable = (mcf->pg.conninfo.len != 0);

    } else if (wmcf->enable && mcf->pg.conninfo.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_webhooks on\" needs \"callhq_postgres\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_msec_value(wmcf->interval, 1000);
    ngx_conf_init_uint_value(wmcf->batch, 32);
    ngx_conf_init_msec_value(wmcf->backoff_base, 1000);
    ngx_conf_init_msec_value(wmcf->backoff_max, 3600000);
    ngx_conf_init_value(wmcf->max_age, 86400);
    ngx_conf_init_msec_value(wmcf->lease, 360000);
    ngx_conf_init_msec_value(wmcf->sweep_interval, 30000);
    ngx_conf_init_value(wmcf->retention, 7 * 86400);

    /* SQL takes it in seconds, as an int */
    if (wmcf->retention <= 0 || wmcf->retention > 0x7fffffff) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_webhook_retention\" must be more "
                           "than 0");
        return NGX_CONF_ERROR;
    }
    ngx_conf_init_value(wmcf->ssl_verify, 1);

    if (wmcf->interval == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_webhook_interval\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    /* SQL takes the lease in milliseconds, as an int */
    if (wmcf->lease < 2000 || wmcf->lease > 86400000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_webhook_lease\" must be between 2s "
                           "and 24h");
        return NGX_CONF_ERROR;
    }

    if (wmcf->max_age <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_webhook_max_age\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    /* the retry policy, for callhq.webhook_done() */
    p = ngx_pnalloc(cf->pool, sizeof("{\"backoffBaseMs\":,\"backoffMaxMs\":,"
                                     "\"maxAgeSeconds\":}")
                              + 3 * NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    wmcf->done_opts.data = p;
    p = ngx_sprintf(p, "{\"backoffBaseMs\":%M,\"backoffMaxMs\":%M,"
                    "\"maxAgeSeconds\":%T}",
                    wmcf->backoff_base, wmcf->backoff_max, wmcf->max_age);
    *p = '\0';
    wmcf->done_opts.len = p - wmcf->done_opts.data;

#if (NGX_SSL)
    if (wmcf->enable && ngx_http_callhq_webhook_set_ssl(cf, wmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }
#endif

    return NGX_CONF_OK;
}


#if (NGX_SSL)

static ngx_int_t
ngx_http_callhq_webhook_set_ssl(ngx_conf_t *cf,
    ngx_http_callhq_webhook_main_conf_t *wmcf)
{
    ngx_pool_cleanup_t  *cln;

    wmcf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (wmcf->ssl == NULL) {
        return NGX_ERROR;
    }

    wmcf->ssl->log = cf->log;

    if (ngx_ssl_create(wmcf->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(wmcf->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = wmcf->ssl;

    if (!wmcf->ssl_verify) {
        return NGX_OK;
    }

    if (wmcf->ssl_trusted_certificate.len) {
        return ngx_ssl_trusted_certificate(cf, wmcf->ssl,
                                           &wmcf->ssl_trusted_certificate, 9);
    }

    /* receivers are public services: the system's CAs by default */
    if (SSL_CTX_set_default_verify_paths(wmcf->ssl->ctx) != 1) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "SSL_CTX_set_default_verify_paths() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}

#endif


static ngx_int_t
ngx_http_callhq_webhook_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_core_loc_conf_t             *clcf;
    ngx_http_callhq_main_conf_t          *mcf;
    ngx_http_callhq_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_callhq_webhook_module);
    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_callhq_module);

    if (wmcf->status && mcf->pg.conninfo.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_webhook_status\" needs "
                           "\"callhq_postgres\" in the http block");
        return NGX_ERROR;
    }

    /* the http block's "resolver", merged by now */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    wmcf->resolver = clcf->resolver;
    wmcf->resolver_timeout = (clcf->resolver_timeout == NGX_CONF_UNSET_MSEC)
                             ? 30000 : clcf->resolver_timeout;

    return NGX_OK;
}


static char *
ngx_http_callhq_webhook_backoff(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_callhq_webhook_main_conf_t  *wmcf = conf;

    ngx_int_t   base, max;
    ngx_str_t  *value;

    if (wmcf->backoff_base != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    base = ngx_parse_time(&value[1], 0);
    max = ngx_parse_time(&value[2], 0);

    if (base == NGX_ERROR || max == NGX_ERROR) {
        return "has an invalid time";
    }

    if (base == 0 || max < base) {
        return "must be \"base max\" with 0 < base <= max";
    }

    wmcf->backoff_base = (ngx_msec_t) base;
    wmcf->backoff_max = (ngx_msec_t) max;

    return NGX_CONF_OK;
}


static char *
ngx_http_callhq_webhook_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t             *clcf;
    ngx_http_callhq_webhook_main_conf_t  *wmcf;

    wmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_callhq_webhook_module);
    wmcf->status = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_callhq_webhook_status_handler;

    return NGX_CONF_OK;
}


/* ------------------------------------------------------ worker lifetime */

static ngx_int_t
ngx_http_callhq_webhook_init_process(ngx_cycle_t *cycle)
{
    ngx_http_callhq_webhook_t            *wh;
    ngx_http_callhq_main_conf_t          *mcf;
    ngx_http_callhq_webhook_main_conf_t  *wmcf;

    /* not in cache managers and other helpers */
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    wmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_callhq_webhook_module);
    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_callhq_module);

    if (wmcf == NULL || !wmcf->enable || mcf == NULL || mcf->pool == NULL) {
        return NGX_OK;
    }

    if (ngx_add_conn == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "callhq: webhooks need an event method with "
                      "connection events (epoll, kqueue)");
        return NGX_OK;
    }

    wh = ngx_calloc(sizeof(ngx_http_callhq_webhook_t), cycle->log);
    if (wh == NULL) {
        return NGX_ERROR;
    }

    wh->conf = wmcf;
    wh->mcf = mcf;
    wh->log = cycle->log;
    ngx_queue_init(&wh->deliveries);

    /* workers and nodes started together should not claim in step */
    wh->offset = ngx_random() % (wmcf->interval / 10 + 1);

    *ngx_sprintf(wh->lease, "%M", wmcf->lease) = '\0';
    *ngx_sprintf(wh->batch, "%ui", wmcf->batch) = '\0';
    *ngx_sprintf(wh->sweep_limit, "%d",
                 NGX_HTTP_CALLHQ_WEBHOOK_SWEEP_LIMIT) = '\0';
    *ngx_sprintf(wh->retention, "%T", wmcf->retention) = '\0';

    /* one member per delivery in flight, at most */
    wh->busy = ngx_alloc(sizeof("{}") + wmcf->batch
                         * (sizeof("\"\":,") - 1
                            + NGX_HTTP_CALLHQ_WEBHOOK_ORG_LEN + NGX_INT_T_LEN),
                         cycle->log);
    if (wh->busy == NULL) {
        ngx_free(wh);
        return NGX_ERROR;
    }

    wh->claim.stmt = &ngx_http_callhq_webhook_claim_stmt;
    wh->claim.handler = ngx_http_callhq_webhook_claimed;
    wh->claim.data = wh;
    wh->claim.log = cycle->log;

    wh->sweeping.stmt = &ngx_http_callhq_webhook_sweep_stmt;
    wh->sweeping.handler = ngx_http_callhq_webhook_swept;
    wh->sweeping.data = wh;
    wh->sweeping.log = cycle->log;

    /* none of the timers may hold up a graceful shutdown */
    wh->tick.handler = ngx_http_callhq_webhook_tick;
    wh->tick.data = wh;
    wh->tick.log = cycle->log;
    wh->tick.cancelable = 1;

    wh->sweep.handler = ngx_http_callhq_webhook_sweep;
    wh->sweep.data = wh;
    wh->sweep.log = cycle->log;
    wh->sweep.cancelable = 1;

    wh->reconnect.handler = ngx_http_callhq_webhook_reconnect;
    wh->reconnect.data = wh;
    wh->reconnect.log = cycle->log;
    wh->reconnect.cancelable = 1;

    wh->backoff = 1000;

    ngx_http_callhq_webhook = wh;

    /* the backlog goes out soon after start, LISTEN or not */
    ngx_add_timer(&wh->tick, wh->offset + 1);

    if (wmcf->sweep_interval) {
        ngx_add_timer(&wh->sweep,
                      ngx_random() % (wmcf->sweep_interval / 10 + 1) + 1);
    }

    ngx_http_callhq_webhook_listen(wh);

    return NGX_OK;
}


/*
 * In-flight deliveries are abandoned: those that sent nothing are handed
 * back, the others come back after their leases.  The
 * PostgreSQL pool is gone already (ngx_http_callhq_module exits first and
 * calls the handlers of its queries, which free what they own).
 */

static void
ngx_http_callhq_webhook_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                           n;
    ngx_queue_t                         *q;
    ngx_http_callhq_webhook_t           *wh;
    ngx_http_callhq_webhook_delivery_t  *d;

    wh = ngx_http_callhq_webhook;

    if (wh == NULL) {
        return;
    }

    if (wh->claiming) {
        ngx_http_callhq_pg_cancel(&wh->claim);
    }

    if (wh->sweep_busy) {
        ngx_http_callhq_pg_cancel(&wh->sweeping);
    }

    /* done already when a graceful shutdown closed the listener */
    ngx_http_callhq_webhook_hand_back(wh);

    n = 0;

    while (!ngx_queue_empty(&wh->deliveries)) {
        q = ngx_queue_head(&wh->deliveries);
        d = ngx_queue_data(q, ngx_http_callhq_webhook_delivery_t, queue);

        if (d->state == ngx_http_callhq_webhook_recording) {
            ngx_http_callhq_pg_cancel(&d->query);
        }

        if (d->peer.connection && d->peer.connection->ssl) {
            d->peer.connection->ssl->no_send_shutdown = 1;
        }

        ngx_http_callhq_webhook_free(d);
        n++;
    }

    if (n) {
        ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                      "callhq: worker exits with %ui webhook deliveries "
                      "in flight, their leases bring them back", n);
    }

    ngx_http_callhq_webhook_listen_close(wh);

    if (wh->tick.timer_set) {
        ngx_del_timer(&wh->tick);
    }

    if (wh->tick.posted) {
        ngx_delete_posted_event(&wh->tick);
    }

    if (wh->sweep.timer_set) {
        ngx_del_timer(&wh->sweep);
    }

    if (wh->sweep.posted) {
        ngx_delete_posted_event(&wh->sweep);
    }

    if (wh->reconnect.timer_set) {
        ngx_del_timer(&wh->reconnect);
    }

    ngx_free(wh->busy);
    ngx_free(wh);
    ngx_http_callhq_webhook = NULL;
}
