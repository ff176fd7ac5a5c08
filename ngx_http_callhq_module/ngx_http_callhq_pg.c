
/*
 * ngx_http_callhq_module: PostgreSQL connection pool.
 *
 * libpq is used in non-blocking mode only.  Each connection's socket is
 * wrapped in an ngx_connection_t so that nginx's event loop drives the
 * connect, prepare, query and drain steps; a worker never waits on the
 * database.  The connect itself, a link, is shared with the webhook
 * listener's LISTEN connection (ngx_http_callhq_webhook_listen.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_callhq_pg.h"


typedef enum {
    ngx_http_callhq_pg_connecting = 0,
    ngx_http_callhq_pg_idle,
    ngx_http_callhq_pg_preparing,
    ngx_http_callhq_pg_querying
} ngx_http_callhq_pg_state_e;


struct ngx_http_callhq_pg_conn_s {
    ngx_queue_t                    queue;      /* in pool->idle or ->busy */
    ngx_http_callhq_pg_link_t      link;
    ngx_http_callhq_pg_pool_t     *pool;
    ngx_http_callhq_pg_query_t    *query;
    PGresult                      *result;
    ngx_http_callhq_pg_stmt_t     *stmt;       /* being prepared or run */
    ngx_http_callhq_pg_orphan_pt   orphan;     /* of a cancelled query */
    uint64_t                       prepared;   /* bit per statement index */
    ngx_http_callhq_pg_state_e     state;
};


struct ngx_http_callhq_pg_pool_s {
    ngx_http_callhq_pg_conf_t     *conf;
    ngx_log_t                     *log;
    ngx_pool_t                    *mem;
    const char                   **keywords;   /* for PQconnectStartParams */
    const char                   **values;
    ngx_queue_t                    idle;
    ngx_queue_t                    busy;       /* connecting or in use */
    ngx_queue_t                    waiting;    /* queries */
    ngx_uint_t                     nconns;
    ngx_uint_t                     nbusy;
    ngx_uint_t                     nconnecting;
    ngx_uint_t                     nwaiting;
    ngx_uint_t                     kept;       /* by the running handler */
};


static ngx_int_t ngx_http_callhq_pg_params(ngx_http_callhq_pg_pool_t *pool);
static ngx_int_t ngx_http_callhq_pg_connect(ngx_http_callhq_pg_pool_t *pool);
static void ngx_http_callhq_pg_connected(ngx_http_callhq_pg_link_t *link,
    ngx_int_t rc);
static void ngx_http_callhq_pg_event_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_callhq_pg_idle_lost(ngx_http_callhq_pg_conn_t *pc,
    ngx_event_t *ev);
static void ngx_http_callhq_pg_send(ngx_http_callhq_pg_conn_t *pc);
static void ngx_http_callhq_pg_read(ngx_http_callhq_pg_conn_t *pc);
static void ngx_http_callhq_pg_done(ngx_http_callhq_pg_conn_t *pc);
static void ngx_http_callhq_pg_enqueue(ngx_http_callhq_pg_pool_t *pool,
    ngx_http_callhq_pg_query_t *q, ngx_uint_t first);
static void ngx_http_callhq_pg_set_idle(ngx_http_callhq_pg_conn_t *pc);
static void ngx_http_callhq_pg_assign(ngx_http_callhq_pg_conn_t *pc,
    ngx_http_callhq_pg_query_t *q);
static void ngx_http_callhq_pg_dispatch(ngx_http_callhq_pg_pool_t *pool);
static void ngx_http_callhq_pg_grow(ngx_http_callhq_pg_pool_t *pool);
static void ngx_http_callhq_pg_fail(ngx_http_callhq_pg_conn_t *pc,
    ngx_uint_t reason);
static void ngx_http_callhq_pg_fail_waiting(ngx_http_callhq_pg_pool_t *pool,
    ngx_uint_t reason);
static void ngx_http_callhq_pg_close(ngx_http_callhq_pg_conn_t *pc);
static void ngx_http_callhq_pg_fail_query(ngx_http_callhq_pg_query_t *q,
    ngx_uint_t reason);
static void ngx_http_callhq_pg_wait_handler(ngx_event_t *ev);
static void ngx_http_callhq_pg_link_poll(ngx_http_callhq_pg_link_t *link);
static void ngx_http_callhq_pg_link_event(ngx_event_t *ev);
static void ngx_http_callhq_pg_notice(void *arg, const char *message);


/* q->error by q->reason (ngx_http_callhq_pg_reason_e) */
static const char  *ngx_http_callhq_pg_errors[] = {
    "database unavailable",
    "database gave no result",
    "worker is exiting",
    "database pool exhausted",
    "database connect timed out",
    "database query timed out"
};


ngx_http_callhq_pg_pool_t *
ngx_http_callhq_pg_pool_create(ngx_http_callhq_pg_conf_t *conf,
    ngx_log_t *log)
{
    ngx_http_callhq_pg_pool_t  *pool;

    pool = ngx_calloc(sizeof(ngx_http_callhq_pg_pool_t), log);
    if (pool == NULL) {
        return NULL;
    }

    pool->conf = conf;
    pool->log = log;
    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->busy);
    ngx_queue_init(&pool->waiting);

    pool->mem = ngx_create_pool(1024, log);
    if (pool->mem == NULL) {
        ngx_free(pool);
        return NULL;
    }

    if (ngx_http_callhq_pg_params(pool) != NGX_OK) {
        ngx_destroy_pool(pool->mem);
        ngx_free(pool);
        return NULL;
    }

    return pool;
}


/*
 * The operator's conninfo, plus a server-side statement_timeout equal to
 * the query time-out: a statement that outlives it is rolled back by
 * PostgreSQL instead of committing after its request got a 503.
 */

static ngx_int_t
ngx_http_callhq_pg_params(ngx_http_callhq_pg_pool_t *pool)
{
    char              *err;
    u_char            *p;
    size_t             len;
    ngx_uint_t         n;
    ngx_str_t          s;
    const char        *options;
    PQconninfoOption  *opts, *o;

    opts = PQconninfoParse((char *) pool->conf->conninfo.data, &err);
    if (opts == NULL) {
        ngx_log_error(NGX_LOG_EMERG, pool->log, 0,
                      "callhq: invalid \"callhq_postgres\": %s",
                      err ? err : "out of memory");
        if (err) {
            PQfreemem(err);
        }
        return NGX_ERROR;
    }

    n = 0;
    for (o = opts; o->keyword; o++) {
        n++;
    }

    pool->keywords = ngx_pcalloc(pool->mem, (n + 2) * sizeof(char *));
    pool->values = ngx_pcalloc(pool->mem, (n + 2) * sizeof(char *));
    if (pool->keywords == NULL || pool->values == NULL) {
        goto failed;
    }

    n = 0;
    options = NULL;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL) {
            continue;
        }

        if (ngx_strcmp(o->keyword, "options") == 0) {
            options = o->val;
            continue;
        }

        s.data = (u_char *) o->keyword;
        s.len = ngx_strlen(o->keyword) + 1;
        pool->keywords[n] = (char *) ngx_pstrdup(pool->mem, &s);

        s.data = (u_char *) o->val;
        s.len = ngx_strlen(o->val) + 1;
        pool->values[n] = (char *) ngx_pstrdup(pool->mem, &s);

        if (pool->keywords[n] == NULL || pool->values[n] == NULL) {
            goto failed;
        }

        n++;
    }

    /* PgBouncer refuses startup options: the role's settings apply */
    if (!pool->conf->prepare) {
        if (options) {
            pool->keywords[n] = "options";
            s.data = (u_char *) options;
            s.len = ngx_strlen(options) + 1;
            pool->values[n] = (char *) ngx_pstrdup(pool->mem, &s);
            if (pool->values[n] == NULL) {
                goto failed;
            }
        }

        PQconninfoFree(opts);
        return NGX_OK;
    }

    len = (options ? ngx_strlen(options) + 1 : 0)
          + sizeof("-c statement_timeout=") + NGX_INT_T_LEN;

    p = ngx_pnalloc(pool->mem, len);
    if (p == NULL) {
        goto failed;
    }

    pool->keywords[n] = "options";
    pool->values[n] = (char *) p;

    *ngx_sprintf(p, "%s%s-c statement_timeout=%M",
                 options ? options : "", options ? " " : "",
                 pool->conf->query_timeout) = '\0';

    PQconninfoFree(opts);

    return NGX_OK;

failed:

    PQconninfoFree(opts);
    return NGX_ERROR;
}


void
ngx_http_callhq_pg_pool_destroy(ngx_http_callhq_pg_pool_t *pool)
{
    ngx_queue_t                 *qu;
    ngx_http_callhq_pg_conn_t   *pc;
    ngx_http_callhq_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting)) {
        qu = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qu, ngx_http_callhq_pg_query_t, queue);
        ngx_http_callhq_pg_fail_query(q, NGX_HTTP_CALLHQ_PG_EXITING);
    }

    while (!ngx_queue_empty(&pool->busy)) {
        qu = ngx_queue_head(&pool->busy);
        pc = ngx_queue_data(qu, ngx_http_callhq_pg_conn_t, queue);
        ngx_http_callhq_pg_fail(pc, NGX_HTTP_CALLHQ_PG_EXITING);
    }

    while (!ngx_queue_empty(&pool->idle)) {
        qu = ngx_queue_head(&pool->idle);
        pc = ngx_queue_data(qu, ngx_http_callhq_pg_conn_t, queue);
        ngx_http_callhq_pg_close(pc);
    }

    ngx_destroy_pool(pool->mem);
    ngx_free(pool);
}


void
ngx_http_callhq_pg_run(ngx_http_callhq_pg_pool_t *pool,
    ngx_http_callhq_pg_query_t *q)
{
    ngx_queue_t  *qu;

    q->pool = pool;
    q->conn = NULL;
    q->carrier = NULL;
    q->error = NULL;
    q->start = ngx_current_msec;

    if (!ngx_queue_empty(&pool->idle)) {
        qu = ngx_queue_head(&pool->idle);
        ngx_http_callhq_pg_assign(
            ngx_queue_data(qu, ngx_http_callhq_pg_conn_t, queue), q);
        return;
    }

    /* a query waiting for a connection being opened is not queued */
    if (pool->nwaiting >= pool->conf->queue + pool->nconnecting
                          + (pool->conf->size - pool->nconns))
    {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "callhq: postgres wait queue is full (%ui queries)",
                      pool->nwaiting);
        q->reason = NGX_HTTP_CALLHQ_PG_EXHAUSTED;
        q->error = ngx_http_callhq_pg_errors[q->reason];
        ngx_http_callhq_metrics_query(q, NULL);
        q->handler(q, NULL);
        return;
    }

    ngx_http_callhq_pg_enqueue(pool, q, 0);

    ngx_http_callhq_pg_grow(pool);
}


void
ngx_http_callhq_pg_cancel(ngx_http_callhq_pg_query_t *q)
{
    ngx_http_callhq_pg_conn_t  *pc;

    if (q->carrier) {
        ngx_http_callhq_pg_batch_cancel(q);
        return;
    }

    if (q->queued) {
        ngx_queue_remove(&q->queue);
        q->pool->nwaiting--;
        q->queued = 0;

        if (q->wait.timer_set) {
            ngx_del_timer(&q->wait);
        }

        return;
    }

    pc = q->conn;
    if (pc == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "callhq pg: query cancelled, draining connection %p", pc);

    /*
     * PQcancel() would block on a new connection: let the statement
     * finish and hand its result to the orphan handler, if any; the query
     * time-out still bounds it.
     */
    pc->query = NULL;
    pc->orphan = q->orphan;
    q->conn = NULL;
}


void
ngx_http_callhq_pg_keep(ngx_http_callhq_pg_query_t *q)
{
    q->pool->kept = 1;
}


ngx_uint_t
ngx_http_callhq_pg_open(ngx_http_callhq_pg_pool_t *pool)
{
    return pool->nconns;
}


ngx_uint_t
ngx_http_callhq_pg_busy(ngx_http_callhq_pg_pool_t *pool)
{
    return pool->nbusy;
}


ngx_uint_t
ngx_http_callhq_pg_waiting(ngx_http_callhq_pg_pool_t *pool)
{
    return pool->nwaiting;
}


/* whether a PostgreSQL backend process serves one of the pool's connections */

ngx_uint_t
ngx_http_callhq_pg_own(ngx_http_callhq_pg_pool_t *pool, int pid)
{
    ngx_queue_t                *q;
    ngx_http_callhq_pg_conn_t  *pc;

    for (q = ngx_queue_head(&pool->busy);
         q != ngx_queue_sentinel(&pool->busy);
         q = ngx_queue_next(q))
    {
        pc = ngx_queue_data(q, ngx_http_callhq_pg_conn_t, queue);

        if (pc->link.pgconn && PQbackendPID(pc->link.pgconn) == pid) {
            return 1;
        }
    }

    for (q = ngx_queue_head(&pool->idle);
         q != ngx_queue_sentinel(&pool->idle);
         q = ngx_queue_next(q))
    {
        pc = ngx_queue_data(q, ngx_http_callhq_pg_conn_t, queue);

        if (pc->link.pgconn && PQbackendPID(pc->link.pgconn) == pid) {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_callhq_pg_connect(ngx_http_callhq_pg_pool_t *pool)
{
    ngx_http_callhq_pg_conn_t  *pc;

    if (ngx_add_conn == NULL) {
        ngx_log_error(NGX_LOG_ALERT, pool->log, 0,
                      "callhq: postgres connections need an event method "
                      "with connection events (epoll, kqueue)");
        goto failed;
    }

    pc = ngx_calloc(sizeof(ngx_http_callhq_pg_conn_t), pool->log);
    if (pc == NULL) {
        goto failed;
    }

    pc->pool = pool;
    pc->state = ngx_http_callhq_pg_connecting;
    pc->link.log = pool->log;
    pc->link.data = pc;
    pc->link.connected = ngx_http_callhq_pg_connected;
    pc->link.handler = ngx_http_callhq_pg_event_handler;

    ngx_queue_insert_tail(&pool->busy, &pc->queue);
    pool->nconns++;
    pool->nbusy++;
    pool->nconnecting++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "callhq pg: connecting %p", pc);

    if (ngx_http_callhq_pg_link_start(&pc->link, pool->keywords,
                                      pool->values, 0,
                                      pool->conf->connect_timeout)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "callhq: postgres connection failed: %s",
                      pc->link.pgconn ? PQerrorMessage(pc->link.pgconn)
                                      : "out of memory");
        ngx_http_callhq_pg_close(pc);
        goto failed;
    }

    return NGX_OK;

failed:

    ngx_http_callhq_pg_fail_waiting(pool, NGX_HTTP_CALLHQ_PG_UNAVAILABLE);

    return NGX_ERROR;
}


static void
ngx_http_callhq_pg_connected(ngx_http_callhq_pg_link_t *link, ngx_int_t rc)
{
    ngx_http_callhq_pg_conn_t  *pc;

    pc = link->data;

    if (rc != NGX_OK) {
        if (link->timedout) {
            ngx_log_error(NGX_LOG_ERR, pc->pool->log, NGX_ETIMEDOUT,
                          "callhq: postgres connect timed out");
            ngx_http_callhq_pg_fail(pc, NGX_HTTP_CALLHQ_PG_CONNECT_TIMEOUT);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "callhq: postgres connection failed: %s",
                      PQerrorMessage(link->pgconn));
        ngx_http_callhq_pg_fail(pc, NGX_HTTP_CALLHQ_PG_UNAVAILABLE);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, pc->pool->log, 0,
                  "callhq: postgres connection %p established (server %d)",
                  pc, PQserverVersion(link->pgconn));

    pc->pool->nconnecting--;
    ngx_http_callhq_pg_set_idle(pc);
    ngx_http_callhq_pg_dispatch(pc->pool);
}


static void
ngx_http_callhq_pg_event_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_callhq_pg_conn_t  *pc;
    ngx_http_callhq_pg_link_t  *link;

    c = ev->data;
    link = c->data;
    pc = link->data;

    if (c->close) {
        /* graceful shutdown closes idle connections */
        ngx_http_callhq_pg_close(pc);
        return;
    }

    if (ev->timedout) {
        ev->timedout = 0;

        switch (pc->state) {

        case ngx_http_callhq_pg_idle:
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->pool->log, 0,
                           "callhq pg: idle connection %p closed", pc);
            ngx_http_callhq_pg_close(pc);
            return;

        default:
            ngx_log_error(NGX_LOG_ERR, pc->pool->log, NGX_ETIMEDOUT,
                          "callhq: postgres query timed out");
            ngx_http_callhq_pg_fail(pc, NGX_HTTP_CALLHQ_PG_QUERY_TIMEOUT);
            return;
        }
    }

    switch (pc->state) {

    case ngx_http_callhq_pg_idle:
        if (!ev->write) {
            /*
             * An idle server speaks only to say goodbye (an error, then
             * EOF): its EOF may come with the same edge, so trust
             * pending_eof rather than wait for another read event.
             */
            if (ngx_http_callhq_pg_idle_lost(pc, ev)) {
                ngx_log_error(NGX_LOG_INFO, pc->pool->log, 0,
                              "callhq: idle postgres connection lost: %s",
                              PQerrorMessage(pc->link.pgconn));
                ngx_http_callhq_pg_close(pc);
            }
        }
        return;

    default:
        ngx_http_callhq_pg_read(pc);
        return;
    }
}


static ngx_int_t
ngx_http_callhq_pg_idle_lost(ngx_http_callhq_pg_conn_t *pc, ngx_event_t *ev)
{
    PGresult  *res;

    if (!PQconsumeInput(pc->link.pgconn)
        || PQstatus(pc->link.pgconn) != CONNECTION_OK
        || ev->pending_eof)
    {
        return 1;
    }

    if (PQisBusy(pc->link.pgconn)) {
        return 0;
    }

    res = PQgetResult(pc->link.pgconn);
    if (res == NULL) {
        return 0;
    }

    PQclear(res);

    return 1;
}


static void
ngx_http_callhq_pg_send(ngx_http_callhq_pg_conn_t *pc)
{
    int                          ok;
    ngx_http_callhq_pg_stmt_t   *stmt;
    ngx_http_callhq_pg_query_t  *q;

    q = pc->query;
    stmt = q->stmt;
    pc->stmt = stmt;

    if (!pc->pool->conf->prepare) {
        /* PgBouncer's transaction pooling keeps no named statement */
        ok = PQsendQueryParams(pc->link.pgconn, stmt->sql, stmt->nparams, NULL,
                               q->values, NULL, NULL, 0);
        pc->state = ngx_http_callhq_pg_querying;

    } else if (pc->prepared & ((uint64_t) 1 << stmt->index)) {
        ok = PQsendQueryPrepared(pc->link.pgconn, stmt->name, stmt->nparams,
                                 q->values, NULL, NULL, 0);
        pc->state = ngx_http_callhq_pg_querying;

    } else {
        ok = PQsendPrepare(pc->link.pgconn, stmt->name, stmt->sql,
                           stmt->nparams, NULL);
        pc->state = ngx_http_callhq_pg_preparing;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "callhq pg: %s \"%s\" on %p",
                   pc->state == ngx_http_callhq_pg_querying
                   ? "execute" : "prepare", stmt->name, pc);

    if (!ok) {
        ngx_log_error(NGX_LOG_ERR, q->log, 0,
                      "callhq: postgres send failed: %s",
                      PQerrorMessage(pc->link.pgconn));
        ngx_http_callhq_pg_fail(pc, NGX_HTTP_CALLHQ_PG_UNAVAILABLE);
        return;
    }

    if (!pc->link.c->read->timer_set) {
        /* a grace second: the server's statement_timeout comes first */
        ngx_add_timer(pc->link.c->read, pc->pool->conf->query_timeout + 1000);
    }

    /* the rest of the work happens on the socket's events */
    ngx_post_event(pc->link.c->write, &ngx_posted_events);
}


static void
ngx_http_callhq_pg_read(ngx_http_callhq_pg_conn_t *pc)
{
    PGresult  *res;

    if (PQflush(pc->link.pgconn) == -1) {
        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "callhq: postgres send failed: %s",
                      PQerrorMessage(pc->link.pgconn));
        ngx_http_callhq_pg_fail(pc, NGX_HTTP_CALLHQ_PG_UNAVAILABLE);
        return;
    }

    if (!PQconsumeInput(pc->link.pgconn)) {
        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "callhq: postgres connection lost: %s",
                      PQerrorMessage(pc->link.pgconn));
        ngx_http_callhq_pg_fail(pc, NGX_HTTP_CALLHQ_PG_UNAVAILABLE);
        return;
    }

    for ( ;; ) {
        if (PQisBusy(pc->link.pgconn)) {
            return;
        }

        res = PQgetResult(pc->link.pgconn);
        if (res == NULL) {
            break;
        }

        /* keep the first result: one statement gives one */
        if (pc->result == NULL) {
            pc->result = res;

        } else {
            PQclear(res);
        }
    }

    if (PQstatus(pc->link.pgconn) != CONNECTION_OK) {
        ngx_log_error(NGX_LOG_ERR, pc->pool->log, 0,
                      "callhq: postgres connection lost: %s",
                      PQerrorMessage(pc->link.pgconn));
        ngx_http_callhq_pg_fail(pc, NGX_HTTP_CALLHQ_PG_UNAVAILABLE);
        return;
    }

    ngx_http_callhq_pg_done(pc);
}


static void
ngx_http_callhq_pg_done(ngx_http_callhq_pg_conn_t *pc)
{
    PGresult                    *res;
    ngx_http_callhq_pg_pool_t   *pool;
    ngx_http_callhq_pg_query_t  *q;

    res = pc->result;
    pc->result = NULL;
    q = pc->query;
    pool = pc->pool;

    if (pc->state == ngx_http_callhq_pg_preparing
        && res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
    {
        PQclear(res);
        pc->prepared |= (uint64_t) 1 << pc->stmt->index;

        if (q != NULL) {
            ngx_http_callhq_pg_send(pc);
            return;
        }

    } else if (q != NULL && res != NULL) {

        /* free the connection first: the handler may run a new query */
        pc->query = NULL;
        q->conn = NULL;
        ngx_http_callhq_pg_set_idle(pc);

        ngx_http_callhq_pg_deliver(q, res);

        ngx_http_callhq_pg_dispatch(pool);
        return;

    } else if (res != NULL) {
        if (q == NULL && pc->orphan
            && pc->state == ngx_http_callhq_pg_querying)
        {
            pc->orphan(res);
        }

        PQclear(res);
    }

    pc->orphan = NULL;
    ngx_http_callhq_pg_set_idle(pc);

    if (q != NULL) {
        /* a statement without any result: not expected from libpq */
        ngx_http_callhq_pg_fail_query(q, NGX_HTTP_CALLHQ_PG_NO_RESULT);
    }

    ngx_http_callhq_pg_dispatch(pool);
}


void
ngx_http_callhq_pg_deliver(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_uint_t                  kept;
    ngx_http_callhq_pg_pool_t  *pool;

    pool = q->pool;

    kept = pool->kept;
    pool->kept = 0;

    ngx_http_callhq_metrics_query(q, res);

    q->handler(q, res);

    if (!pool->kept) {
        PQclear(res);
    }

    pool->kept = kept;
}


/* a batch failed: its queries run again, one by one, first in line */

void
ngx_http_callhq_pg_requeue(ngx_http_callhq_pg_pool_t *pool,
    ngx_http_callhq_pg_query_t *q)
{
    q->carrier = NULL;
    q->batch = NULL;

    ngx_http_callhq_pg_enqueue(pool, q, 1);
}


/* q waits for a connection, first or last in line, for queue_timeout */

static void
ngx_http_callhq_pg_enqueue(ngx_http_callhq_pg_pool_t *pool,
    ngx_http_callhq_pg_query_t *q, ngx_uint_t first)
{
    if (first) {
        ngx_queue_insert_head(&pool->waiting, &q->queue);

    } else {
        ngx_queue_insert_tail(&pool->waiting, &q->queue);
    }

    pool->nwaiting++;
    q->queued = 1;

    ngx_memzero(&q->wait, sizeof(ngx_event_t));
    q->wait.handler = ngx_http_callhq_pg_wait_handler;
    q->wait.data = q;
    q->wait.log = q->log;
    ngx_add_timer(&q->wait, pool->conf->queue_timeout);
}


static void
ngx_http_callhq_pg_set_idle(ngx_http_callhq_pg_conn_t *pc)
{
    ngx_http_callhq_pg_pool_t  *pool;

    pool = pc->pool;

    if (pc->link.c->read->timer_set) {
        ngx_del_timer(pc->link.c->read);
    }

    if (pc->state != ngx_http_callhq_pg_idle) {
        ngx_queue_remove(&pc->queue);
        pool->nbusy--;
        ngx_queue_insert_head(&pool->idle, &pc->queue);
        pc->state = ngx_http_callhq_pg_idle;
    }

    pc->query = NULL;

    /* idle connections must not hold up a graceful shutdown */
    pc->link.c->idle = 1;
    pc->link.c->read->cancelable = 1;
    ngx_add_timer(pc->link.c->read, pool->conf->idle_timeout);
}


static void
ngx_http_callhq_pg_assign(ngx_http_callhq_pg_conn_t *pc,
    ngx_http_callhq_pg_query_t *q)
{
    ngx_http_callhq_pg_pool_t  *pool;

    pool = pc->pool;

    ngx_queue_remove(&pc->queue);
    ngx_queue_insert_tail(&pool->busy, &pc->queue);
    pool->nbusy++;

    if (pc->link.c->read->timer_set) {
        ngx_del_timer(pc->link.c->read);
    }

    pc->link.c->idle = 0;
    pc->link.c->read->cancelable = 0;
    pc->query = q;
    pc->orphan = NULL;
    q->conn = pc;

    ngx_http_callhq_pg_send(pc);
}


static void
ngx_http_callhq_pg_dispatch(ngx_http_callhq_pg_pool_t *pool)
{
    ngx_uint_t                   taken;
    ngx_queue_t                 *qu;
    ngx_http_callhq_pg_query_t  *q;

    while (!ngx_queue_empty(&pool->waiting)
           && !ngx_queue_empty(&pool->idle))
    {
        qu = ngx_queue_head(&pool->waiting);
        q = ngx_queue_data(qu, ngx_http_callhq_pg_query_t, queue);

        ngx_queue_remove(&q->queue);
        pool->nwaiting--;
        q->queued = 0;

        if (q->wait.timer_set) {
            ngx_del_timer(&q->wait);
        }

        if (q->batch && q->batch->single == q->stmt && pool->nwaiting) {
            q = ngx_http_callhq_pg_batch(q, &pool->waiting, &taken);
            pool->nwaiting -= taken;
            q->pool = pool;
        }

        qu = ngx_queue_head(&pool->idle);
        ngx_http_callhq_pg_assign(
            ngx_queue_data(qu, ngx_http_callhq_pg_conn_t, queue), q);
    }

    ngx_http_callhq_pg_grow(pool);
}


/* open connections for waiting queries, up to the pool's size */

static void
ngx_http_callhq_pg_grow(ngx_http_callhq_pg_pool_t *pool)
{
    while (pool->nwaiting > pool->nconnecting
           && pool->nconns < pool->conf->size)
    {
        if (ngx_http_callhq_pg_connect(pool) != NGX_OK) {
            return;
        }
    }
}


/* the connection is broken: fail its query and drop it */

static void
ngx_http_callhq_pg_fail(ngx_http_callhq_pg_conn_t *pc, ngx_uint_t reason)
{
    ngx_uint_t                   connecting;
    ngx_http_callhq_pg_pool_t   *pool;
    ngx_http_callhq_pg_query_t  *q;

    pool = pc->pool;
    q = pc->query;
    connecting = (pc->state == ngx_http_callhq_pg_connecting);

    pc->query = NULL;
    ngx_http_callhq_pg_close(pc);

    if (q != NULL) {
        q->conn = NULL;
        q->reason = reason;
        q->error = ngx_http_callhq_pg_errors[reason];
        ngx_http_callhq_metrics_query(q, NULL);
        q->handler(q, NULL);
    }

    /*
     * A failed connect says the database is unreachable: nobody waits in
     * vain.  One broken or timed-out connection says nothing about the
     * next: open another for the queries waiting.
     */
    if (connecting) {
        ngx_http_callhq_pg_fail_waiting(pool, reason);

    } else {
        ngx_http_callhq_pg_grow(pool);
    }
}


/* no connection left: the waiting queries would wait in vain */

static void
ngx_http_callhq_pg_fail_waiting(ngx_http_callhq_pg_pool_t *pool,
    ngx_uint_t reason)
{
    if (pool->nconns) {
        return;
    }

    while (!ngx_queue_empty(&pool->waiting)) {
        ngx_http_callhq_pg_fail_query(
            ngx_queue_data(ngx_queue_head(&pool->waiting),
                           ngx_http_callhq_pg_query_t, queue),
            reason);
    }
}


static void
ngx_http_callhq_pg_close(ngx_http_callhq_pg_conn_t *pc)
{
    ngx_http_callhq_pg_pool_t  *pool;

    pool = pc->pool;

    ngx_queue_remove(&pc->queue);
    pool->nconns--;

    if (pc->state != ngx_http_callhq_pg_idle) {
        pool->nbusy--;
    }

    if (pc->state == ngx_http_callhq_pg_connecting) {
        pool->nconnecting--;
    }

    if (pc->result) {
        PQclear(pc->result);
    }

    ngx_http_callhq_pg_link_close(&pc->link);
    ngx_free(pc);
}


ngx_int_t
ngx_http_callhq_pg_link_start(ngx_http_callhq_pg_link_t *link,
    const char *const *keywords, const char *const *values,
    int expand_dbname, ngx_msec_t timeout)
{
    int                fd;
    ngx_connection_t  *c;

    link->c = NULL;
    link->connecting = 0;
    link->timedout = 0;

    link->pgconn = PQconnectStartParams(keywords, values, expand_dbname);

    if (link->pgconn == NULL || PQstatus(link->pgconn) == CONNECTION_BAD
        || PQsetnonblocking(link->pgconn, 1) == -1)
    {
        return NGX_ERROR;
    }

    /* server notices go to error_log, not to stderr */
    PQsetNoticeProcessor(link->pgconn, ngx_http_callhq_pg_notice, link);

    fd = PQsocket(link->pgconn);

    c = ngx_get_connection(fd, link->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->data = link;
    c->log_error = NGX_ERROR_INFO;
    c->read->handler = ngx_http_callhq_pg_link_event;
    c->write->handler = ngx_http_callhq_pg_link_event;
    c->read->log = link->log;
    c->write->log = link->log;

    /* edge-triggered: libpq does the I/O, nginx only says when */
    if (ngx_add_conn(c) != NGX_OK) {
        c->fd = (ngx_socket_t) -1;
        ngx_free_connection(c);
        return NGX_ERROR;
    }

    link->c = c;
    link->connecting = 1;

    if (link->idle) {
        /* a graceful shutdown closes it and waits for none of its timers */
        c->idle = 1;
        c->read->cancelable = 1;
    }

    ngx_add_timer(c->read, timeout);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, link->log, 0,
                   "callhq pg: link %p connecting fd:%d", link, fd);

    /* libpq may already have data to send, or the connect may be done */
    ngx_http_callhq_pg_link_poll(link);

    return NGX_OK;
}


static void
ngx_http_callhq_pg_link_poll(ngx_http_callhq_pg_link_t *link)
{
    ngx_uint_t                 n;
    PostgresPollingStatusType  rc;

    /*
     * With edge-triggered events no new edge may come once the socket is
     * writable (e.g. after CONNECTION_MADE libpq only wants to write the
     * startup packet), so poll again while the write side is ready.
     */
    for (n = 0; n < 8; n++) {
        rc = PQconnectPoll(link->pgconn);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, link->log, 0,
                       "callhq pg: link %p connect poll rc:%d", link,
                       (int) rc);

        switch (rc) {

        case PGRES_POLLING_WRITING:
            if (link->c->write->ready) {
                continue;
            }
            return;

        case PGRES_POLLING_READING:
            return;

        case PGRES_POLLING_OK:
            link->connecting = 0;

            if (link->c->read->timer_set) {
                ngx_del_timer(link->c->read);
            }

            link->connected(link, NGX_OK);
            return;

        default: /* PGRES_POLLING_FAILED */
            link->connecting = 0;
            link->connected(link, NGX_ERROR);
            return;
        }
    }
}


/* the link's own events while it connects, then its owner's */

static void
ngx_http_callhq_pg_link_event(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_callhq_pg_link_t  *link;

    c = ev->data;
    link = c->data;

    if (!link->connecting || c->close) {
        link->handler(ev);
        return;
    }

    if (ev->timedout) {
        ev->timedout = 0;
        link->connecting = 0;
        link->timedout = 1;
        link->connected(link, NGX_ERROR);
        return;
    }

    ngx_http_callhq_pg_link_poll(link);
}


void
ngx_http_callhq_pg_link_close(ngx_http_callhq_pg_link_t *link)
{
    ngx_connection_t  *c;

    c = link->c;
    link->c = NULL;
    link->connecting = 0;

    if (c == NULL) {
        goto finish;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* PQfinish() closes the socket: take it out of the event loop first */
    if (ngx_del_conn) {
        ngx_del_conn(c, NGX_CLOSE_EVENT);

    } else {
        if (c->read->active) {
            ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->write->active) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
        }
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

finish:

    if (link->pgconn) {
        PQfinish(link->pgconn);
        link->pgconn = NULL;
    }
}


static void
ngx_http_callhq_pg_fail_query(ngx_http_callhq_pg_query_t *q,
    ngx_uint_t reason)
{
    if (q->queued) {
        ngx_queue_remove(&q->queue);
        q->pool->nwaiting--;
        q->queued = 0;
    }

    if (q->wait.timer_set) {
        ngx_del_timer(&q->wait);
    }

    q->reason = reason;
    q->error = ngx_http_callhq_pg_errors[reason];
    ngx_http_callhq_metrics_query(q, NULL);
    q->handler(q, NULL);
}


static void
ngx_http_callhq_pg_wait_handler(ngx_event_t *ev)
{
    ngx_http_callhq_pg_query_t  *q;

    q = ev->data;

    ngx_log_error(NGX_LOG_ERR, q->log, 0,
                  "callhq: no postgres connection became free in time");

    ngx_http_callhq_pg_fail_query(q, NGX_HTTP_CALLHQ_PG_EXHAUSTED);
}


static void
ngx_http_callhq_pg_notice(void *arg, const char *message)
{
    ngx_http_callhq_pg_link_t  *link = arg;

    ngx_log_error(NGX_LOG_NOTICE, link->log, 0, "callhq: postgres: %s",
                  message);
}


/*
 * libpq resolves a host name with getaddrinfo(), a blocking call, in the
 * worker, each time it connects: a host given by name (or by PGHOST) is
 * refused here, at start-up.  hostaddr= (which libpq connects to without
 * resolving), IP addresses and Unix socket paths pass.
 */

ngx_int_t
ngx_http_callhq_pg_check_conninfo(ngx_conf_t *cf, ngx_str_t *conninfo)
{
    u_char              *p, *last, *comma;
    char                *err, *host, *env;
    size_t               len;
    ngx_int_t            rc;
    ngx_str_t            name;
    ngx_addr_t           addr;
    PQconninfoOption    *opts, *o;

    opts = PQconninfoParse((char *) conninfo->data, &err);

    if (opts == NULL) {
        len = err ? ngx_strlen(err) : 0;

        /* libpq's message ends in a newline */
        while (len && (err[len - 1] == '\n' || err[len - 1] == ' ')) {
            len--;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_postgres\" is not a valid libpq "
                           "connection string: %*s",
                           err ? len : sizeof("out of memory") - 1,
                           err ? err : "out of memory");
        if (err) {
            PQfreemem(err);
        }

        return NGX_ERROR;
    }

    host = NULL;
    rc = NGX_OK;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            goto done;
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o->val;
        }
    }

    if (host == NULL) {
        env = getenv("PGHOSTADDR");
        if (env && env[0]) {
            goto done;
        }

        host = getenv("PGHOST");
        if (host == NULL) {
            goto done;
        }
    }

    p = (u_char *) host;
    last = p + ngx_strlen(host);

    for ( /* void */ ; p < last; p = comma + 1) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        len = comma - p;

        /* empty: the default socket; '/' or '@': a Unix socket */
        if (len == 0 || *p == '/' || *p == '@') {
            continue;
        }

        name.data = p;
        name.len = len;

        if (ngx_parse_addr(cf->pool, &addr, p, len) == NGX_OK) {
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_postgres\" host \"%V\" is a name: "
                           "libpq would resolve it with a blocking lookup "
                           "in the worker; use its IP address "
                           "(host=<address>, or hostaddr=<address> with "
                           "host=\"%V\" kept for TLS) or a Unix socket path",
                           &name, &name);
        rc = NGX_ERROR;
        break;
    }

done:

    PQconninfoFree(opts);

    return rc;
}
