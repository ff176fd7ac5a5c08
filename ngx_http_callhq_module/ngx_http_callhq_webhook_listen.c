
/*
 * ngx_http_callhq_module: the webhook listener, one libpq connection per
 * worker outside the pool that LISTENs on callhq_webhook (a committed
 * event wakes the dispatcher's claim at once) and on callhq_turn (a chat
 * that gives its session's turn back notifies it when chats wait for that
 * session, and the notification wakes this worker's first one,
 * ngx_http_callhq_wait.c).  Lost, it reconnects with back-off; polling at
 * callhq_webhook_interval goes on meanwhile.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_webhook.h"


static void ngx_http_callhq_webhook_listen_connected(
    ngx_http_callhq_pg_link_t *link, ngx_int_t rc);
static void ngx_http_callhq_webhook_listen_event(ngx_event_t *ev);
static void ngx_http_callhq_webhook_listen_read(
    ngx_http_callhq_webhook_t *wh);
static void ngx_http_callhq_webhook_listen_lost(ngx_http_callhq_webhook_t *wh,
    const char *reason);
static ngx_uint_t ngx_http_callhq_webhook_handed(
    ngx_http_callhq_webhook_delivery_t *d);


void
ngx_http_callhq_webhook_listen(ngx_http_callhq_webhook_t *wh)
{
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

    wh->link.log = wh->log;
    wh->link.data = wh;
    wh->link.connected = ngx_http_callhq_webhook_listen_connected;
    wh->link.handler = ngx_http_callhq_webhook_listen_event;
    wh->link.idle = 1;
    wh->listening = 0;

    /* may have called ngx_http_callhq_webhook_listen_connected() */
    if (ngx_http_callhq_pg_link_start(&wh->link, keywords, values, 1,
                                      wh->mcf->pg.connect_timeout)
        == NGX_OK)
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, wh->log, 0,
                  "callhq: webhook listener could not connect: %s",
                  wh->link.pgconn ? PQerrorMessage(wh->link.pgconn)
                                  : "out of memory");

    ngx_http_callhq_pg_link_close(&wh->link);

    ngx_add_timer(&wh->reconnect, wh->backoff);
}


static void
ngx_http_callhq_webhook_listen_connected(ngx_http_callhq_pg_link_t *link,
    ngx_int_t rc)
{
    ngx_http_callhq_webhook_t  *wh;

    wh = link->data;

    if (rc != NGX_OK) {
        ngx_http_callhq_webhook_listen_lost(wh, link->timedout
                                            ? "connect timed out"
                                            : PQerrorMessage(link->pgconn));
        return;
    }

    if (!PQsendQuery(link->pgconn,
                     "LISTEN " NGX_HTTP_CALLHQ_WEBHOOK_CHANNEL "; "
                     "LISTEN " NGX_HTTP_CALLHQ_TURN_CHANNEL)
        || PQflush(link->pgconn) == -1)
    {
        ngx_http_callhq_webhook_listen_lost(wh, PQerrorMessage(link->pgconn));
        return;
    }

    ngx_log_error(NGX_LOG_INFO, wh->log, 0,
                  "callhq: webhook listener connected");

    wh->listening = 1;
    wh->backoff = 1000;

    /* whatever was notified while nobody listened */
    ngx_post_event(&wh->tick, &ngx_posted_events);
    ngx_http_callhq_wait_wake_all(wh->log);
}


/* connected (ngx_http_callhq_pg.c's link connects) */

static void
ngx_http_callhq_webhook_listen_event(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_callhq_pg_link_t  *link;
    ngx_http_callhq_webhook_t  *wh;

    c = ev->data;
    link = c->data;
    wh = link->data;

    if (c->close) {
        /* graceful shutdown */
        ngx_http_callhq_webhook_hand_back(wh);
        ngx_http_callhq_webhook_listen_close(wh);
        return;
    }

    if (ev->write) {
        if (PQflush(link->pgconn) == -1) {
            ngx_http_callhq_webhook_listen_lost(wh,
                                                PQerrorMessage(link->pgconn));
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

    if (!PQconsumeInput(wh->link.pgconn)) {
        ngx_http_callhq_webhook_listen_lost(wh,
                                            PQerrorMessage(wh->link.pgconn));
        return;
    }

    /* the LISTEN command's own result */
    while (!PQisBusy(wh->link.pgconn)) {
        res = PQgetResult(wh->link.pgconn);
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

    while ((notify = PQnotifies(wh->link.pgconn)) != NULL) {

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

    if (PQstatus(wh->link.pgconn) != CONNECTION_OK) {
        ngx_http_callhq_webhook_listen_lost(wh,
                                            PQerrorMessage(wh->link.pgconn));
        return;
    }

    /*
     * A server that goes says so (FATAL, as a notice) and closes: both may
     * come with one edge, and libpq reads the message only, so no other
     * event would ever tell of the end.
     */
    if (wh->link.c->read->pending_eof) {
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
 * A graceful shutdown (a reload) gives the deliveries in flight that have
 * no answer yet back at once rather than after their leases: one
 * statement on the listener's connection, sent as it closes (PostgreSQL
 * runs it before the connection's end), and they stop here, so that the
 * worker exits at once and the new workers' attempts are the only ones.
 * A receiver that holds a request as the reload comes gets it again, with
 * the same webhook-id (at least once).  Those being recorded finish, and
 * so do texts already sent to Twilio (a text sent twice is read twice).
 */

static ngx_uint_t
ngx_http_callhq_webhook_handed(ngx_http_callhq_webhook_delivery_t *d)
{
    if (d->state == ngx_http_callhq_webhook_recording) {
        return 0;
    }

    return !d->twilio || d->state < ngx_http_callhq_webhook_sending;
}


void
ngx_http_callhq_webhook_hand_back(ngx_http_callhq_webhook_t *wh)
{
    int                                  rc;
    u_char                              *p, *last;
    size_t                               len;
    ngx_uint_t                           n, i;
    ngx_queue_t                         *q, *next;
    const char                          *values[1];
    ngx_http_callhq_webhook_delivery_t  *d;

    if (wh->link.pgconn == NULL || !wh->listening) {
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

        if (!ngx_http_callhq_webhook_handed(d)) {
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

    if (PQsendQueryParams(wh->link.pgconn,
                          "select callhq.webhook_release($1::bigint[])",
                          1, NULL, values, NULL, NULL, 0)
        == 1)
    {
        /* a few bytes on an idle connection: they go at once, or never */
        for (i = 0; i < 8; i++) {
            rc = PQflush(wh->link.pgconn);
            if (rc != 1) {
                break;
            }
        }
    }

    ngx_log_error(NGX_LOG_INFO, wh->log, 0,
                  "callhq: %ui webhook deliveries in flight %s back", n,
                  (rc == 0) ? "handed" : "could not be handed");

    ngx_free(p);

    if (rc != 0) {
        return;
    }

    for (q = ngx_queue_head(&wh->deliveries);
         q != ngx_queue_sentinel(&wh->deliveries);
         q = next)
    {
        next = ngx_queue_next(q);
        d = ngx_queue_data(q, ngx_http_callhq_webhook_delivery_t, queue);

        if (!ngx_http_callhq_webhook_handed(d)) {
            continue;
        }

        if (d->peer.connection && d->peer.connection->ssl) {
            d->peer.connection->ssl->no_send_shutdown = 1;
        }

        ngx_http_callhq_webhook_free(d);
    }
}


void
ngx_http_callhq_webhook_listen_close(ngx_http_callhq_webhook_t *wh)
{
    ngx_http_callhq_pg_link_close(&wh->link);
    wh->listening = 0;
}


void
ngx_http_callhq_webhook_reconnect(ngx_event_t *ev)
{
    ngx_http_callhq_webhook_t  *wh;

    wh = ev->data;

    if (ngx_http_callhq_webhook_exiting() || wh->link.c) {
        return;
    }

    ngx_http_callhq_webhook_listen(wh);
}

