
/*
 * ngx_http_callhq_module: Prometheus metrics (callhq_metrics).
 *
 * Counters and histograms live in a shared memory zone, summed across
 * workers: the chat path only adds to them atomically, no lock.  Each
 * worker publishes its PostgreSQL pool's gauges there once a second.  A
 * scrape renders the text exposition format; the webhook outbox's
 * pending and dead events are read from the database at most once per
 * callhq_metrics_db_interval, by the worker being scraped.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"


#define NGX_HTTP_CALLHQ_M_STMTS     64
#define NGX_HTTP_CALLHQ_M_WORKERS   64
#define NGX_HTTP_CALLHQ_M_NAME      32
#define NGX_HTTP_CALLHQ_M_TIME_LEN  (NGX_ATOMIC_T_LEN + 5)


/* histogram bounds in milliseconds */
static ngx_msec_t  ngx_http_callhq_m_chat_le[] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000
};

static ngx_msec_t  ngx_http_callhq_m_query_le[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000
};

#define NGX_HTTP_CALLHQ_M_CHAT_B                                              \
    (sizeof(ngx_http_callhq_m_chat_le) / sizeof(ngx_msec_t) + 1)
#define NGX_HTTP_CALLHQ_M_QUERY_B                                             \
    (sizeof(ngx_http_callhq_m_query_le) / sizeof(ngx_msec_t) + 1)


typedef struct {
    ngx_atomic_t                   bucket[NGX_HTTP_CALLHQ_M_CHAT_B];
    ngx_atomic_t                   sum;        /* ms */
    ngx_atomic_t                   count;
} ngx_http_callhq_m_chat_hist_t;


typedef struct {
    ngx_atomic_t                   bucket[NGX_HTTP_CALLHQ_M_QUERY_B];
    ngx_atomic_t                   sum;        /* ms */
    ngx_atomic_t                   count;
    u_char                         name[NGX_HTTP_CALLHQ_M_NAME];
} ngx_http_callhq_m_query_hist_t;


typedef struct {
    ngx_atomic_t                   pid;
    ngx_atomic_t                   open;
    ngx_atomic_t                   busy;
    ngx_atomic_t                   waiting;
} ngx_http_callhq_m_worker_t;


typedef struct {
    ngx_atomic_t                   chats[4][4];    /* surface, status */
    ngx_atomic_t                   model[5];       /* 1xx .. 5xx */
    ngx_atomic_t                   event[NGX_HTTP_CALLHQ_M_EVENTS];
    ngx_http_callhq_m_chat_hist_t  first_delta;
    ngx_http_callhq_m_chat_hist_t  duration;
    ngx_http_callhq_m_chat_hist_t  webhook;
    ngx_http_callhq_m_query_hist_t query[NGX_HTTP_CALLHQ_M_STMTS];
    ngx_http_callhq_m_worker_t     worker[NGX_HTTP_CALLHQ_M_WORKERS];
    ngx_atomic_t                   outbox_pending;
    ngx_atomic_t                   outbox_dead;
    ngx_atomic_t                   outbox_read;    /* when, s; 0: never */
} ngx_http_callhq_metrics_sh_t;


typedef struct {
    ngx_http_callhq_pg_query_t     query;
    ngx_http_request_t            *request;
} ngx_http_callhq_metrics_ctx_t;


static ngx_int_t ngx_http_callhq_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_callhq_metrics_handler(ngx_http_request_t *r);
static void ngx_http_callhq_metrics_read(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static void ngx_http_callhq_metrics_cleanup(void *data);
static ngx_int_t ngx_http_callhq_metrics_send(ngx_http_request_t *r);
static void ngx_http_callhq_metrics_publish(ngx_event_t *ev);
static ngx_int_t ngx_http_callhq_metrics_own(void);
static void ngx_http_callhq_metrics_observe(ngx_atomic_t *bucket,
    ngx_msec_t *le, ngx_uint_t n, ngx_msec_t ms);
static u_char *ngx_http_callhq_metrics_hist(u_char *p, u_char *last,
    const char *name, const char *labels, ngx_atomic_t *bucket,
    ngx_msec_t *le, ngx_uint_t n, ngx_atomic_t sum, ngx_atomic_t count);


static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_metrics_stmt = {
    NGX_HTTP_CALLHQ_STMT_METRICS_OUTBOX, "callhq_metrics_outbox",
    "select pending, dead from callhq.webhook_stats()",
    0
};


static ngx_str_t  ngx_http_callhq_metrics_zone_name =
    ngx_string("callhq_metrics");

static ngx_str_t  ngx_http_callhq_metrics_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");

/* POST /chat, POST /chat/responses, callhq_openai, callhq_sms_twilio */
static const char  *ngx_http_callhq_m_surface[] = {
    "chat", "responses", "openai", "sms"
};
static const char  *ngx_http_callhq_m_status[] = {
    "completed", "incomplete", "failed", "refused"
};

static const char  *ngx_http_callhq_m_events[][3] = {
    { "callhq_postgres_errors_total", "reason=\"unavailable\"",
      "Statements that failed: database unreachable, pool exhausted, "
      "time-out." },
    { "callhq_postgres_errors_total", "reason=\"exhausted\"", NULL },
    { "callhq_postgres_errors_total", "reason=\"timeout\"", NULL },
    { "callhq_turn_waits_total", NULL,
      "Chats that waited for their session's turn." },
    { "callhq_turn_conflicts_total", NULL,
      "Chats answered 409: the turn did not come in time." },
    { "callhq_record_retries_total", NULL,
      "Records of a chat tried again (callhq_record_retry)." },
    { "callhq_records_dropped_total", NULL,
      "Replies dropped: not recorded within callhq_record_retry." },
    { "callhq_sessions_created_total", NULL,
      "Sessions created: by POST /session or /conversations, and the "
      "customer sessions a chat or a text opened." },
    { "callhq_sessions_expired_total", NULL,
      "Sessions past expiresAt (customer sessions too) marked completed "
      "by the sweeper." },
    { "callhq_webhook_deliveries_total", "result=\"delivered\"",
      "Webhook delivery attempts by result." },
    { "callhq_webhook_deliveries_total", "result=\"failed\"", NULL },
    { "callhq_sms_received_total", NULL,
      "Texts received by callhq_sms_twilio, signed, for a known number." },
    { "callhq_sms_sent_total", "result=\"sent\"",
      "Texts sent with Twilio's REST API: attempts by result." },
    { "callhq_sms_sent_total", "result=\"failed\"", NULL },
    { "callhq_history_cache_total", "result=\"hit\"",
      "Chats that took their session's turn, by whether the history was "
      "in the node's cache (callhq_history_cache)." },
    { "callhq_history_cache_total", "result=\"miss\"", NULL },
    { "callhq_history_cache_evictions_total", NULL,
      "Histories the cache let go, least recently used first, to make "
      "room." }
};


static ngx_http_callhq_metrics_sh_t  *ngx_http_callhq_metrics_sh;
static ngx_event_t                    ngx_http_callhq_metrics_timer;
static ngx_connection_t               ngx_http_callhq_metrics_conn;


/* the zone: every configuration has one, so counting never checks */

ngx_int_t
ngx_http_callhq_metrics_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_callhq_metrics_zone_name,
                                     2 * ngx_pagesize
                                     + sizeof(ngx_http_callhq_metrics_sh_t),
                                     &ngx_http_callhq_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_callhq_metrics_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_callhq_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    /* a reload keeps counting where the old cycle was */
    if (data) {
        shm_zone->data = data;
        ngx_http_callhq_metrics_sh = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        ngx_http_callhq_metrics_sh = shpool->data;
        return NGX_OK;
    }

    ngx_http_callhq_metrics_sh = ngx_slab_calloc(shpool,
                                     sizeof(ngx_http_callhq_metrics_sh_t));
    if (ngx_http_callhq_metrics_sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = ngx_http_callhq_metrics_sh;
    shm_zone->data = ngx_http_callhq_metrics_sh;

    return NGX_OK;
}


/* a worker publishes its pool's gauges once a second */

void
ngx_http_callhq_metrics_worker(ngx_cycle_t *cycle)
{
    ngx_event_t  *ev;

    if (ngx_http_callhq_metrics_sh == NULL
        || ngx_worker >= NGX_HTTP_CALLHQ_M_WORKERS)
    {
        return;
    }

    ev = &ngx_http_callhq_metrics_timer;

    /* debug logs name a timer's event by ev->data's fd */
    ngx_http_callhq_metrics_conn.fd = (ngx_socket_t) -1;
    ev->data = &ngx_http_callhq_metrics_conn;
    ev->handler = ngx_http_callhq_metrics_publish;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_http_callhq_metrics_publish(ev);
}


void
ngx_http_callhq_metrics_worker_exit(void)
{
    ngx_http_callhq_m_worker_t  *w;

    if (ngx_http_callhq_metrics_sh == NULL
        || ngx_worker >= NGX_HTTP_CALLHQ_M_WORKERS)
    {
        return;
    }

    w = &ngx_http_callhq_metrics_sh->worker[ngx_worker];

    if (w->pid == (ngx_atomic_t) ngx_pid) {
        w->open = 0;
        w->busy = 0;
        w->waiting = 0;
    }
}


static void
ngx_http_callhq_metrics_publish(ngx_event_t *ev)
{
    if (ngx_http_callhq_metrics_own() == NGX_OK) {
        ngx_add_timer(ev, 1000);
    }
}


/* this worker's gauges, now: a scrape shows its own worker's fresh */

static ngx_int_t
ngx_http_callhq_metrics_own(void)
{
    ngx_http_callhq_m_worker_t   *w;
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_callhq_module);
    if (mcf == NULL || mcf->pool == NULL
        || ngx_http_callhq_metrics_sh == NULL
        || ngx_worker >= NGX_HTTP_CALLHQ_M_WORKERS)
    {
        return NGX_DECLINED;
    }

    w = &ngx_http_callhq_metrics_sh->worker[ngx_worker];

    w->pid = ngx_pid;
    w->open = ngx_http_callhq_pg_open(mcf->pool);
    w->busy = ngx_http_callhq_pg_busy(mcf->pool);
    w->waiting = ngx_http_callhq_pg_waiting(mcf->pool);

    return NGX_OK;
}


void
ngx_http_callhq_metrics_add(ngx_uint_t event, ngx_uint_t n)
{
    if (ngx_http_callhq_metrics_sh && event < NGX_HTTP_CALLHQ_M_EVENTS) {
        (void) ngx_atomic_fetch_add(&ngx_http_callhq_metrics_sh->event[event],
                                    n);
    }
}


/* a webhook delivery attempt is over */

void
ngx_http_callhq_metrics_webhook(ngx_uint_t delivered, ngx_msec_t ms)
{
    ngx_http_callhq_metrics_sh_t  *m;

    m = ngx_http_callhq_metrics_sh;
    if (m == NULL) {
        return;
    }

    ngx_http_callhq_metrics_event(delivered
                                  ? NGX_HTTP_CALLHQ_M_WEBHOOKS_DELIVERED
                                  : NGX_HTTP_CALLHQ_M_WEBHOOKS_FAILED);

    ngx_http_callhq_metrics_observe(m->webhook.bucket,
                                    ngx_http_callhq_m_chat_le,
                                    NGX_HTTP_CALLHQ_M_CHAT_B - 1, ms);
    (void) ngx_atomic_fetch_add(&m->webhook.sum, ms);
    (void) ngx_atomic_fetch_add(&m->webhook.count, 1);
}


void
ngx_http_callhq_metrics_event(ngx_uint_t event)
{
    if (ngx_http_callhq_metrics_sh && event < NGX_HTTP_CALLHQ_M_EVENTS) {
        (void) ngx_atomic_fetch_add(&ngx_http_callhq_metrics_sh->event[event],
                                    1);
    }
}


/* a statement's outcome, as the pool hands it to its caller */

void
ngx_http_callhq_metrics_query(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    char                            *state;
    ngx_msec_t                       ms;
    ngx_http_callhq_m_query_hist_t  *h;

    if (ngx_http_callhq_metrics_sh == NULL || q->stmt == NULL) {
        return;
    }

    if (res == NULL) {
        switch (q->reason) {

        case NGX_HTTP_CALLHQ_PG_EXHAUSTED:
            ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_PG_EXHAUSTED);
            break;

        case NGX_HTTP_CALLHQ_PG_CONNECT_TIMEOUT:
        case NGX_HTTP_CALLHQ_PG_QUERY_TIMEOUT:
            ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_PG_TIMEOUT);
            break;

        default:
            ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_PG_UNAVAILABLE);
        }

        return;
    }

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (state && ngx_strcmp(state, "57014") == 0) {
        ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_PG_TIMEOUT);
    }

    if (q->stmt->index >= NGX_HTTP_CALLHQ_M_STMTS) {
        return;
    }

    h = &ngx_http_callhq_metrics_sh->query[q->stmt->index];

    /* the same name from every worker: a race writes the same bytes */
    if (h->name[0] == '\0') {
        ngx_cpystrn(h->name, (u_char *) q->stmt->name,
                    NGX_HTTP_CALLHQ_M_NAME);
    }

    ms = ngx_current_msec - q->start;

    ngx_http_callhq_metrics_observe(h->bucket, ngx_http_callhq_m_query_le,
                                    NGX_HTTP_CALLHQ_M_QUERY_B - 1, ms);
    (void) ngx_atomic_fetch_add(&h->sum, ms);
    (void) ngx_atomic_fetch_add(&h->count, 1);
}


/* a chat is over: how it ended, how long it took */

void
ngx_http_callhq_metrics_chat(ngx_http_callhq_chat_t *chat, ngx_msec_t ms)
{
    ngx_uint_t                     surface, status, cls;
    ngx_http_callhq_metrics_sh_t  *m;

    m = ngx_http_callhq_metrics_sh;
    if (m == NULL) {
        return;
    }

    surface = chat->sms ? 3 : (chat->openai ? 2 : chat->responses);

    if (chat->state < NGX_HTTP_CALLHQ_CHAT_UPSTREAM) {
        status = 3;

    } else if (chat->chat_status == NULL) {
        status = 2;

    } else {
        status = (chat->chat_status[0] == 'c') ? 0 : 1;
    }

    (void) ngx_atomic_fetch_add(&m->chats[surface][status], 1);

    if (status == 3) {
        return;
    }

    cls = chat->upstream_status / 100;
    if (cls >= 1 && cls <= 5) {
        (void) ngx_atomic_fetch_add(&m->model[cls - 1], 1);
    }

    ngx_http_callhq_metrics_observe(m->duration.bucket,
                                    ngx_http_callhq_m_chat_le,
                                    NGX_HTTP_CALLHQ_M_CHAT_B - 1, ms);
    (void) ngx_atomic_fetch_add(&m->duration.sum, ms);
    (void) ngx_atomic_fetch_add(&m->duration.count, 1);

    if (chat->stream && chat->first_delta) {
        ms = chat->first_delta - chat->start;

        ngx_http_callhq_metrics_observe(m->first_delta.bucket,
                                        ngx_http_callhq_m_chat_le,
                                        NGX_HTTP_CALLHQ_M_CHAT_B - 1, ms);
        (void) ngx_atomic_fetch_add(&m->first_delta.sum, ms);
        (void) ngx_atomic_fetch_add(&m->first_delta.count, 1);
    }
}


static void
ngx_http_callhq_metrics_observe(ngx_atomic_t *bucket, ngx_msec_t *le,
    ngx_uint_t n, ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (ms <= le[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&bucket[i], 1);
}


char *
ngx_http_callhq_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_callhq_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_callhq_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_pool_cleanup_t             *cln;
    ngx_http_callhq_loc_conf_t     *lcf;
    ngx_http_callhq_main_conf_t    *mcf;
    ngx_http_callhq_metrics_ctx_t  *ctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_callhq_metrics_sh == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_callhq_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    /* the outbox is counted in the database, not on every scrape */
    if (mcf->pool == NULL
        || (ngx_msec_t) (ngx_time()
                         - ngx_http_callhq_metrics_sh->outbox_read) * 1000
           < lcf->metrics_db_interval)
    {
        return ngx_http_callhq_metrics_send(r);
    }

    ngx_http_callhq_metrics_sh->outbox_read = ngx_time();

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_callhq_metrics_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (ctx == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_callhq_metrics_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->query.stmt = &ngx_http_callhq_metrics_stmt;
    ctx->query.handler = ngx_http_callhq_metrics_read;
    ctx->query.data = ctx;
    ctx->query.log = r->connection->log;

    r->main->count++;

    ngx_http_callhq_pg_run(mcf->pool, &ctx->query);

    return NGX_DONE;
}


static void
ngx_http_callhq_metrics_read(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_callhq_metrics_ctx_t  *ctx;

    ctx = q->data;
    r = ctx->request;
    c = r->connection;
    ctx->request = NULL;

    /* the last values stay when the database does not answer */
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
        && PQnfields(res) == 2)
    {
        ngx_http_callhq_metrics_sh->outbox_pending =
            ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                     PQgetlength(res, 0, 0));
        ngx_http_callhq_metrics_sh->outbox_dead =
            ngx_atoi((u_char *) PQgetvalue(res, 0, 1),
                     PQgetlength(res, 0, 1));

    } else {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "callhq: metrics could not read the outbox: %s",
                      res ? PQresultErrorMessage(res) : q->error);
    }

    ngx_http_finalize_request(r, ngx_http_callhq_metrics_send(r));
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_callhq_metrics_cleanup(void *data)
{
    ngx_http_callhq_metrics_ctx_t  *ctx = data;

    if (ctx->request) {
        ngx_http_callhq_pg_cancel(&ctx->query);
    }
}


static ngx_int_t
ngx_http_callhq_metrics_send(ngx_http_request_t *r)
{
    u_char                          *p, *last;
    size_t                           size;
    ngx_buf_t                       *b;
    ngx_uint_t                       i, j;
    ngx_http_callhq_m_worker_t      *w;
    ngx_http_callhq_metrics_sh_t    *m;
    ngx_http_callhq_m_query_hist_t  *h;
    u_char                           labels[64];

    m = ngx_http_callhq_metrics_sh;
    size = 64 * 1024;

    (void) ngx_http_callhq_metrics_own();

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->pos;
    last = b->end;

    p = ngx_slprintf(p, last,
            "# HELP callhq_chats_total Chats by surface and how they ended."
            "\n# TYPE callhq_chats_total counter\n");

    for (i = 0; i < 4; i++) {
        for (j = 0; j < 4; j++) {
            p = ngx_slprintf(p, last,
                             "callhq_chats_total{surface=\"%s\",status=\"%s\"}"
                             " %uA\n", ngx_http_callhq_m_surface[i],
                             ngx_http_callhq_m_status[j], m->chats[i][j]);
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP callhq_model_responses_total Model answers by status "
            "class.\n# TYPE callhq_model_responses_total counter\n");

    for (i = 0; i < 5; i++) {
        p = ngx_slprintf(p, last,
                         "callhq_model_responses_total{class=\"%uixx\"} %uA\n",
                         i + 1, m->model[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP callhq_chat_first_delta_seconds Time from the call to "
            "the model to a streamed chat's first delta.\n"
            "# TYPE callhq_chat_first_delta_seconds histogram\n");

    p = ngx_http_callhq_metrics_hist(p, last,
            "callhq_chat_first_delta_seconds", NULL,
            m->first_delta.bucket, ngx_http_callhq_m_chat_le,
            NGX_HTTP_CALLHQ_M_CHAT_B, m->first_delta.sum,
            m->first_delta.count);

    p = ngx_slprintf(p, last,
            "# HELP callhq_chat_duration_seconds Time from a chat's request "
            "to its end, for chats that called the model.\n"
            "# TYPE callhq_chat_duration_seconds histogram\n");

    p = ngx_http_callhq_metrics_hist(p, last,
            "callhq_chat_duration_seconds", NULL,
            m->duration.bucket, ngx_http_callhq_m_chat_le,
            NGX_HTTP_CALLHQ_M_CHAT_B, m->duration.sum, m->duration.count);

    p = ngx_slprintf(p, last,
            "# HELP callhq_webhook_delivery_seconds A webhook delivery "
            "attempt, from its start to its answer or failure.\n"
            "# TYPE callhq_webhook_delivery_seconds histogram\n");

    p = ngx_http_callhq_metrics_hist(p, last,
            "callhq_webhook_delivery_seconds", NULL,
            m->webhook.bucket, ngx_http_callhq_m_chat_le,
            NGX_HTTP_CALLHQ_M_CHAT_B, m->webhook.sum, m->webhook.count);

    p = ngx_slprintf(p, last,
            "# HELP callhq_postgres_query_duration_seconds Time from a "
            "statement's start (queueing included) to its result.\n"
            "# TYPE callhq_postgres_query_duration_seconds histogram\n");

    for (i = 0; i < NGX_HTTP_CALLHQ_M_STMTS; i++) {
        h = &m->query[i];

        if (h->name[0] == '\0') {
            continue;
        }

        *ngx_snprintf(labels, sizeof(labels) - 1, "statement=\"%s\"",
                      h->name) = '\0';

        p = ngx_http_callhq_metrics_hist(p, last,
                "callhq_postgres_query_duration_seconds", (char *) labels,
                h->bucket, ngx_http_callhq_m_query_le,
                NGX_HTTP_CALLHQ_M_QUERY_B, h->sum, h->count);
    }

    for (i = 0; i < NGX_HTTP_CALLHQ_M_EVENTS; i++) {
        if (ngx_http_callhq_m_events[i][2]) {
            p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s counter\n",
                             ngx_http_callhq_m_events[i][0],
                             ngx_http_callhq_m_events[i][2],
                             ngx_http_callhq_m_events[i][0]);
        }

        p = ngx_slprintf(p, last, "%s%s%s%s %uA\n",
                         ngx_http_callhq_m_events[i][0],
                         ngx_http_callhq_m_events[i][1] ? "{" : "",
                         ngx_http_callhq_m_events[i][1]
                         ? ngx_http_callhq_m_events[i][1] : "",
                         ngx_http_callhq_m_events[i][1] ? "}" : "",
                         m->event[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP callhq_postgres_connections A worker's PostgreSQL "
            "connections.\n# TYPE callhq_postgres_connections gauge\n");

    for (i = 0; i < NGX_HTTP_CALLHQ_M_WORKERS; i++) {
        w = &m->worker[i];

        if (w->pid == 0) {
            continue;
        }

        p = ngx_slprintf(p, last,
                         "callhq_postgres_connections{worker=\"%ui\","
                         "state=\"open\"} %uA\n"
                         "callhq_postgres_connections{worker=\"%ui\","
                         "state=\"busy\"} %uA\n",
                         i, w->open, i, w->busy);
    }

    p = ngx_slprintf(p, last,
            "# HELP callhq_postgres_waiting_queries Statements waiting for "
            "a connection of a worker.\n"
            "# TYPE callhq_postgres_waiting_queries gauge\n");

    for (i = 0; i < NGX_HTTP_CALLHQ_M_WORKERS; i++) {
        w = &m->worker[i];

        if (w->pid) {
            p = ngx_slprintf(p, last,
                             "callhq_postgres_waiting_queries{worker=\"%ui\"}"
                             " %uA\n", i, w->waiting);
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP callhq_webhook_outbox_events Webhook events in the "
            "outbox, read from the database.\n"
            "# TYPE callhq_webhook_outbox_events gauge\n"
            "callhq_webhook_outbox_events{state=\"pending\"} %uA\n"
            "callhq_webhook_outbox_events{state=\"dead\"} %uA\n",
            m->outbox_pending, m->outbox_dead);

    if (p == last) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "callhq: metrics exceed %uz bytes", size);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = p;

    return ngx_http_callhq_send_text(r, &ngx_http_callhq_metrics_type, b);
}


static u_char *
ngx_http_callhq_metrics_hist(u_char *p, u_char *last, const char *name,
    const char *labels, ngx_atomic_t *bucket, ngx_msec_t *le, ngx_uint_t n,
    ngx_atomic_t sum, ngx_atomic_t count)
{
    ngx_uint_t    i;
    ngx_atomic_t  total;

    total = 0;

    for (i = 0; i < n; i++) {
        total += bucket[i];

        if (i + 1 < n) {
            p = ngx_slprintf(p, last, "%s_bucket{%s%sle=\"%M.%03M\"} %uA\n",
                             name, labels ? labels : "", labels ? "," : "",
                             le[i] / 1000, le[i] % 1000, total);

        } else {
            p = ngx_slprintf(p, last, "%s_bucket{%s%sle=\"+Inf\"} %uA\n",
                             name, labels ? labels : "", labels ? "," : "",
                             total);
        }
    }

    return ngx_slprintf(p, last, "%s_sum%s%s%s %uA.%03uA\n"
                        "%s_count%s%s%s %uA\n",
                        name, labels ? "{" : "", labels ? labels : "",
                        labels ? "}" : "", sum / 1000, sum % 1000,
                        name, labels ? "{" : "", labels ? labels : "",
                        labels ? "}" : "", count);
}
