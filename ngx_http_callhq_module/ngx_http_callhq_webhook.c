
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
 * share the work.  A worker that exits gracefully (a reload) hands its
 * deliveries in flight back at once; one that dies leaves its claims to
 * their leases.
 * Per-session order is SQL's too, and each org's fair share of the
 * worker's slots.
 *
 * This file: the module, its directives, the claims and the status
 * location; one delivery is ngx_http_callhq_webhook_delivery.c, the
 * LISTEN connection ngx_http_callhq_webhook_listen.c (it also LISTENs on
 * callhq_turn for ngx_http_callhq_wait.c), the expiry and purge sweeper
 * ngx_http_callhq_webhook_sweep.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_webhook.h"


typedef struct {
    ngx_http_callhq_pg_query_t     query;
} ngx_http_callhq_webhook_status_ctx_t;


static void ngx_http_callhq_webhook_tick(ngx_event_t *ev);
static void ngx_http_callhq_webhook_claimed(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_webhook_schedule(ngx_http_callhq_webhook_t *wh);
static void ngx_http_callhq_webhook_busy(ngx_http_callhq_webhook_t *wh);
static ngx_int_t ngx_http_callhq_webhook_status_handler(
    ngx_http_request_t *r);
static void ngx_http_callhq_webhook_status_done(
    ngx_http_callhq_pg_query_t *q, PGresult *res);
static void ngx_http_callhq_webhook_status_cleanup(void *data);
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


/* indices 32..47 belong to the webhook files */

static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_webhook_claim_stmt = {
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_CLAIM, "callhq_webhook_claim",
    "select id, event_id, url, secret, headers, timeout_ms, body, attempts, "
    "org_id, type "
    "from callhq.webhook_claim($1::int, $2::int, $3::int, $4::jsonb)",
    4
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

    { ngx_string("callhq_twilio_api_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_webhook_main_conf_t, twilio_api_url),
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

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 10) {
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

ngx_uint_t
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
     *     wmcf->twilio_api_url = { 0, NULL };
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

    /* texts go there (sms.sql): the operator's, never checked as a tenant's */
    if (wmcf->twilio_api_url.len == 0) {
        ngx_str_set(&wmcf->twilio_api_url, "https://api.twilio.com");
    }

    if (ngx_strncasecmp(wmcf->twilio_api_url.data, (u_char *) "http://", 7)
        != 0
        && ngx_strncasecmp(wmcf->twilio_api_url.data,
                           (u_char *) "https://", 8)
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_twilio_api_url\" must be an http:// "
                           "or https:// URL");
        return NGX_CONF_ERROR;
    }

    while (wmcf->twilio_api_url.len
           && wmcf->twilio_api_url.data[wmcf->twilio_api_url.len - 1] == '/')
    {
        wmcf->twilio_api_url.len--;
    }

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

    /* none of the timers may hold up a graceful shutdown */
    wh->tick.handler = ngx_http_callhq_webhook_tick;
    wh->tick.data = wh;
    wh->tick.log = cycle->log;
    wh->tick.cancelable = 1;

    wh->reconnect.handler = ngx_http_callhq_webhook_reconnect;
    wh->reconnect.data = wh;
    wh->reconnect.log = cycle->log;
    wh->reconnect.cancelable = 1;

    wh->backoff = 1000;

    ngx_http_callhq_webhook = wh;

    /* the backlog goes out soon after start, LISTEN or not */
    ngx_add_timer(&wh->tick, wh->offset + 1);

    ngx_http_callhq_webhook_sweep_init(wh, cycle);

    ngx_http_callhq_webhook_listen(wh);

    return NGX_OK;
}


/*
 * In-flight deliveries not handed back as the listener closed (a fast
 * exit, no listener) are abandoned: they come back after their leases.  The PostgreSQL pool is gone already (ngx_http_callhq_module exits first and
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
