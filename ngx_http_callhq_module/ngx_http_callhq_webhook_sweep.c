
/*
 * ngx_http_callhq_module: the webhook sweeper.  Every
 * callhq_webhook_sweep_interval one statement completes the sessions past
 * their expiresAt (each sends one session.updated) and deletes delivered
 * and dead events older than callhq_webhook_retention (and the texts
 * received, sms_inbound, as old), in bites of
 * NGX_HTTP_CALLHQ_WEBHOOK_SWEEP_LIMIT; SKIP LOCKED shares the work among
 * workers and nodes.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_webhook.h"


static void ngx_http_callhq_webhook_sweep(ngx_event_t *ev);
static void ngx_http_callhq_webhook_swept(ngx_http_callhq_pg_query_t *q,
    PGresult *res);


static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_webhook_sweep_stmt = {
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_SWEEP, "callhq_webhook_sweep",
    "select callhq.sweep_expired($1::int), "
    "callhq.webhook_purge($2::int, $1::int)",
    2
};


void
ngx_http_callhq_webhook_sweep_init(ngx_http_callhq_webhook_t *wh,
    ngx_cycle_t *cycle)
{
    *ngx_sprintf(wh->sweep_limit, "%d",
                 NGX_HTTP_CALLHQ_WEBHOOK_SWEEP_LIMIT) = '\0';
    *ngx_sprintf(wh->retention, "%T", wh->conf->retention) = '\0';

    wh->sweeping.stmt = &ngx_http_callhq_webhook_sweep_stmt;
    wh->sweeping.handler = ngx_http_callhq_webhook_swept;
    wh->sweeping.data = wh;
    wh->sweeping.log = cycle->log;

    /* it may not hold up a graceful shutdown */
    wh->sweep.handler = ngx_http_callhq_webhook_sweep;
    wh->sweep.data = wh;
    wh->sweep.log = cycle->log;
    wh->sweep.cancelable = 1;

    if (wh->conf->sweep_interval) {
        ngx_add_timer(&wh->sweep,
                      ngx_random() % (wh->conf->sweep_interval / 10 + 1) + 1);
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

        if (n > 0) {
            ngx_http_callhq_metrics_add(NGX_HTTP_CALLHQ_M_SESSIONS_EXPIRED,
                                        n);
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, wh->log, 0,
                       "callhq webhook: %i expired sessions completed, "
                       "%i settled events purged", n, purged);
    }

    if (n == NGX_HTTP_CALLHQ_WEBHOOK_SWEEP_LIMIT
        || purged >= NGX_HTTP_CALLHQ_WEBHOOK_SWEEP_LIMIT)
    {
        /* a full sweep: go on at once, in bites */
        ngx_post_event(&wh->sweep, &ngx_posted_events);
        return;
    }

    ngx_add_timer(&wh->sweep, wh->conf->sweep_interval);
}
