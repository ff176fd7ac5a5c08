
/*
 * ngx_http_callhq_module: the turns this worker holds, kept alive.
 *
 * A chat holds its session's turn as a short lease (sessions.busy_until,
 * callhq_turn_lease, 30s by default), so that a worker or node that dies
 * without giving turns back frees them soon.  While a chat is in flight
 * (the model answers, the record is retried) its lease is renewed every
 * third of its length: one statement per worker for all the turns due,
 * without waiting for a WAL flush (losing a renewal in a crash only ends
 * the lease sooner), skipping a session whose row is locked (the next
 * tick renews it; no lock waits, so no lock order to keep).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"


#define NGX_HTTP_CALLHQ_LEASE_TICK  1000


static void ngx_http_callhq_lease_tick(ngx_event_t *ev);
static void ngx_http_callhq_lease_renewed(ngx_http_callhq_pg_query_t *q,
    PGresult *res);


/* $1 sessions, $2 chats, $3 lease seconds: arrays of the turns due */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_lease_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_RENEW, "callhq_turn_renew",
    "with l as ("
    " select s.id, h.lease from callhq.sessions s,"
    " unnest($1::uuid[], $2::uuid[], $3::int[]) h(id, chat, lease)"
    " where s.id = h.id and s.busy_chat = h.chat"
    " for no key update of s skip locked)"
    " update callhq.sessions s"
    " set busy_until = now() + make_interval(secs => l.lease)"
    " from l where s.id = l.id"
    " returning set_config('synchronous_commit', 'off', true)",
    3
};


static ngx_queue_t                  ngx_http_callhq_leases;
static ngx_event_t                  ngx_http_callhq_lease_event;
static ngx_connection_t             ngx_http_callhq_lease_conn; /* for logs */
static ngx_http_callhq_pg_query_t   ngx_http_callhq_lease_query;
static ngx_pool_t                  *ngx_http_callhq_lease_pool;
static ngx_uint_t                   ngx_http_callhq_lease_init;


void
ngx_http_callhq_lease_hold(ngx_http_callhq_lease_t *l, ngx_str_t *session,
    ngx_str_t *chat, time_t lease)
{
    ngx_event_t  *ev;

    if (l->held || session->len != NGX_HTTP_CALLHQ_WAIT_ID_LEN
        || chat->len != NGX_HTTP_CALLHQ_WAIT_ID_LEN || lease <= 0)
    {
        return;
    }

    if (!ngx_http_callhq_lease_init) {
        ngx_queue_init(&ngx_http_callhq_leases);
        ngx_http_callhq_lease_init = 1;
    }

    ngx_memcpy(l->session, session->data, NGX_HTTP_CALLHQ_WAIT_ID_LEN);
    ngx_memcpy(l->chat, chat->data, NGX_HTTP_CALLHQ_WAIT_ID_LEN);
    l->lease = lease;
    l->due = ngx_current_msec + (ngx_msec_t) lease * 1000 / 3;
    l->held = 1;

    ngx_queue_insert_tail(&ngx_http_callhq_leases, &l->queue);

    ev = &ngx_http_callhq_lease_event;

    if (!ev->timer_set) {
        /* debug logs name a timer's event by ev->data's fd */
        ngx_http_callhq_lease_conn.fd = (ngx_socket_t) -1;
        ev->data = &ngx_http_callhq_lease_conn;
        ev->handler = ngx_http_callhq_lease_tick;
        ev->log = ngx_cycle->log;
        ev->cancelable = 1;
        ngx_add_timer(ev, NGX_HTTP_CALLHQ_LEASE_TICK);
    }
}


/* the turn goes elsewhere (a recording that outlives its request) */

void
ngx_http_callhq_lease_move(ngx_http_callhq_lease_t *from,
    ngx_http_callhq_lease_t *to)
{
    if (!from->held) {
        return;
    }

    ngx_queue_remove(&from->queue);
    from->held = 0;

    *to = *from;
    to->held = 1;
    ngx_queue_insert_tail(&ngx_http_callhq_leases, &to->queue);
}


void
ngx_http_callhq_lease_drop(ngx_http_callhq_lease_t *l)
{
    if (!l->held) {
        return;
    }

    ngx_queue_remove(&l->queue);
    l->held = 0;

    if (ngx_queue_empty(&ngx_http_callhq_leases)
        && ngx_http_callhq_lease_event.timer_set)
    {
        ngx_del_timer(&ngx_http_callhq_lease_event);
    }
}


/* the turns held when a worker exits run out by themselves */

void
ngx_http_callhq_lease_exit(ngx_log_t *log)
{
    ngx_uint_t    n;
    ngx_queue_t  *q;

    if (!ngx_http_callhq_lease_init) {
        return;
    }

    n = 0;

    for (q = ngx_queue_head(&ngx_http_callhq_leases);
         q != ngx_queue_sentinel(&ngx_http_callhq_leases);
         q = ngx_queue_next(q))
    {
        n++;
    }

    if (n) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "callhq: exiting with %ui session turns held, "
                      "their leases run out by themselves", n);
    }

    if (ngx_http_callhq_lease_pool) {
        ngx_http_callhq_pg_cancel(&ngx_http_callhq_lease_query);
        ngx_destroy_pool(ngx_http_callhq_lease_pool);
        ngx_http_callhq_lease_pool = NULL;
    }
}


static void
ngx_http_callhq_lease_tick(ngx_event_t *ev)
{
    u_char                       *p[3];
    size_t                        len;
    ngx_uint_t                    n;
    ngx_msec_t                    soon;
    ngx_pool_t                   *pool;
    ngx_queue_t                  *q;
    ngx_http_callhq_lease_t      *l;
    ngx_http_callhq_main_conf_t  *mcf;

    if (ngx_queue_empty(&ngx_http_callhq_leases)) {
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_CALLHQ_LEASE_TICK);

    /* one renewal at a time: a slow database gets no pile of them */
    if (ngx_http_callhq_lease_pool != NULL) {
        return;
    }

    soon = ngx_current_msec + NGX_HTTP_CALLHQ_LEASE_TICK;
    n = 0;

    for (q = ngx_queue_head(&ngx_http_callhq_leases);
         q != ngx_queue_sentinel(&ngx_http_callhq_leases);
         q = ngx_queue_next(q))
    {
        l = ngx_queue_data(q, ngx_http_callhq_lease_t, queue);

        if ((ngx_msec_int_t) (l->due - soon) <= 0) {
            n++;
        }
    }

    if (n == 0) {
        return;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    len = n * (NGX_HTTP_CALLHQ_WAIT_ID_LEN + 1) + 3;

    p[0] = ngx_pnalloc(pool, len);
    p[1] = ngx_pnalloc(pool, len);
    p[2] = ngx_pnalloc(pool, n * (NGX_TIME_T_LEN + 1) + 3);

    if (p[0] == NULL || p[1] == NULL || p[2] == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    ngx_http_callhq_lease_query.values[0] = (char *) p[0];
    ngx_http_callhq_lease_query.values[1] = (char *) p[1];
    ngx_http_callhq_lease_query.values[2] = (char *) p[2];

    *p[0]++ = '{';
    *p[1]++ = '{';
    *p[2]++ = '{';

    for (q = ngx_queue_head(&ngx_http_callhq_leases);
         q != ngx_queue_sentinel(&ngx_http_callhq_leases);
         q = ngx_queue_next(q))
    {
        l = ngx_queue_data(q, ngx_http_callhq_lease_t, queue);

        if ((ngx_msec_int_t) (l->due - soon) > 0) {
            continue;
        }

        l->due = ngx_current_msec + (ngx_msec_t) l->lease * 1000 / 3;

        p[0] = ngx_cpymem(p[0], l->session, NGX_HTTP_CALLHQ_WAIT_ID_LEN);
        p[1] = ngx_cpymem(p[1], l->chat, NGX_HTTP_CALLHQ_WAIT_ID_LEN);
        p[2] = ngx_sprintf(p[2], "%T", l->lease);

        if (--n) {
            *p[0]++ = ',';
            *p[1]++ = ',';
            *p[2]++ = ',';
        }
    }

    *p[0]++ = '}'; *p[0] = '\0';
    *p[1]++ = '}'; *p[1] = '\0';
    *p[2]++ = '}'; *p[2] = '\0';

    ngx_http_callhq_lease_pool = pool;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_callhq_module);

    ngx_http_callhq_lease_query.stmt = &ngx_http_callhq_lease_stmt;
    ngx_http_callhq_lease_query.handler = ngx_http_callhq_lease_renewed;
    ngx_http_callhq_lease_query.log = ngx_cycle->log;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "callhq: renewing turn leases: %s",
                   ngx_http_callhq_lease_query.values[0]);

    ngx_http_callhq_pg_run(mcf->pool, &ngx_http_callhq_lease_query);
}


static void
ngx_http_callhq_lease_renewed(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    ngx_queue_t              *qu;
    ngx_http_callhq_lease_t  *l;

    ngx_destroy_pool(ngx_http_callhq_lease_pool);
    ngx_http_callhq_lease_pool = NULL;

    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, q->log, 0,
                  "callhq: session turn leases not renewed: %s",
                  res ? PQresultErrorMessage(res) : q->error);

    /* all tried again a tick later: the leases still run meanwhile */
    for (qu = ngx_queue_head(&ngx_http_callhq_leases);
         qu != ngx_queue_sentinel(&ngx_http_callhq_leases);
         qu = ngx_queue_next(qu))
    {
        l = ngx_queue_data(qu, ngx_http_callhq_lease_t, queue);
        l->due = ngx_current_msec;
    }
}
