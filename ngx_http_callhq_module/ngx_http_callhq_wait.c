
/*
 * ngx_http_callhq_module: chats waiting for their session's turn.
 *
 * A chat runs only while it holds its session's turn (a lease in
 * PostgreSQL, ngx_http_callhq_turn.c).  One that finds the session busy
 * waits here, in this worker's memory, and is woken when the turn comes
 * back, instead of asking PostgreSQL again and again:
 *
 *   a chat of this worker gives the turn back (its record or release
 *   statement completed): the first chat waiting for that session here
 *   takes its turn at once;
 *
 *   a chat of another worker or node gives it back: its statement saw
 *   sessions.turn_waiters, which a waiting chat's take statement set, and
 *   notified callhq_turn with the session id; the worker's listener
 *   (ngx_http_callhq_webhook.c) wakes the first waiter of that session
 *   (a notification from this worker's own connections is left to the
 *   first case);
 *
 *   the listener connects again: notifications went missing meanwhile,
 *   every waiter looks again.
 *
 * A woken chat runs its take statement again; one that loses the race to
 * another worker's chat waits again, in its place.  Whatever goes
 * missing, a waiter still looks again on a slow timer of its own (the
 * chat's), and the chat answers 409 after callhq_turn_timeout.
 *
 * The list is a small hash of queues, keyed by the session id (hex, in
 * any case), each queue in the order the chats first waited (a ticket
 * each, kept when a chat looks again and waits anew).  A turn given back
 * while nobody here waited for it is remembered in its bucket: a chat
 * whose take statement was sent before and answered "busy" after it may
 * have seen the session as it was, and looks again at once.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"


#define NGX_HTTP_CALLHQ_WAIT_BUCKETS  64


typedef struct {
    ngx_queue_t                    waiters;
    u_char                         given[NGX_HTTP_CALLHQ_WAIT_ID_LEN];
    ngx_uint_t                     given_at;   /* the worker's sequence */
} ngx_http_callhq_wait_bucket_t;


static ngx_http_callhq_wait_bucket_t *ngx_http_callhq_wait_bucket(
    u_char *session);
static ngx_uint_t ngx_http_callhq_wait_wake(u_char *session, size_t len,
    const char *why);
static void ngx_http_callhq_wait_post(ngx_http_callhq_waiter_t *w);


/* this worker's: a waiter belongs to a request of this process */
static ngx_http_callhq_wait_bucket_t
    ngx_http_callhq_wait_buckets[NGX_HTTP_CALLHQ_WAIT_BUCKETS];
static ngx_uint_t  ngx_http_callhq_wait_init;
static ngx_uint_t  ngx_http_callhq_wait_seq;    /* turns given back */
static ngx_uint_t  ngx_http_callhq_wait_tickets;


/* a take statement is sent: a turn given back after it counts */

void
ngx_http_callhq_wait_ask(ngx_http_callhq_waiter_t *w)
{
    w->asked = ngx_http_callhq_wait_seq;
}


/*
 * The chat's take statement answered "busy": it waits for the session.
 * NGX_DECLINED when the turn was given back here while the statement ran:
 * the chat looks again at once instead.
 */

ngx_int_t
ngx_http_callhq_wait_add(ngx_http_callhq_waiter_t *w, u_char *session,
    size_t len, ngx_event_t *ev, ngx_log_t *log)
{
    ngx_queue_t                    *q;
    ngx_http_callhq_waiter_t       *other;
    ngx_http_callhq_wait_bucket_t  *b;

    if (len != NGX_HTTP_CALLHQ_WAIT_ID_LEN) {
        /* not a session id as we know them: the timer alone, then */
        return NGX_OK;
    }

    ngx_http_callhq_wait_remove(w);

    b = ngx_http_callhq_wait_bucket(session);

    if (b->given_at > w->asked
        && ngx_strncasecmp(b->given, session, len) == 0)
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                       "callhq: session %*s was given back as the chat "
                       "looked, looking again", len, session);
        return NGX_DECLINED;
    }

    ngx_memcpy(w->session, session, len);
    w->event = ev;

    /*
     * In the order the chats first waited: one that looked again (its
     * timer ran out, or it was woken and lost the race) keeps its place.
     */
    if (w->ticket == 0) {
        w->ticket = ++ngx_http_callhq_wait_tickets;
    }

    for (q = ngx_queue_last(&b->waiters);
         q != ngx_queue_sentinel(&b->waiters);
         q = ngx_queue_prev(q))
    {
        other = ngx_queue_data(q, ngx_http_callhq_waiter_t, queue);

        if (other->ticket < w->ticket) {
            break;
        }
    }

    ngx_queue_insert_after(q, &w->queue);
    w->waiting = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "callhq: chat waits for session %*s", len, session);

    return NGX_OK;
}


/* the chat no longer waits: it looks again, or its request went */

void
ngx_http_callhq_wait_remove(ngx_http_callhq_waiter_t *w)
{
    if (w->waiting) {
        ngx_queue_remove(&w->queue);
        w->waiting = 0;
    }

    if (w->event && w->event->posted) {
        ngx_delete_posted_event(w->event);
    }
}


/* a chat of this worker gave the session's turn back */

void
ngx_http_callhq_wait_given(ngx_str_t *session)
{
    if (session->len) {
        (void) ngx_http_callhq_wait_wake(session->data, session->len,
                                         "given back here");
    }
}


/*
 * A NOTIFY on callhq_turn: another worker or node gave the turn back.
 * One that a connection of this worker's pool sent is this worker's own
 * chat: it wakes its waiter when its statement's result comes, and one
 * waiter woken per turn is enough.
 */

void
ngx_http_callhq_wait_notified(const char *payload, int pid)
{
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_callhq_module);

    if (mcf && mcf->pool && ngx_http_callhq_pg_own(mcf->pool, pid)) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "callhq: turn of session %s notified by this worker",
                       payload);
        return;
    }

    (void) ngx_http_callhq_wait_wake((u_char *) payload,
                                     ngx_strlen(payload),
                                     "notified on callhq_turn");
}


/* notifications may have been lost (the listener connected again) */

void
ngx_http_callhq_wait_wake_all(ngx_log_t *log)
{
    ngx_uint_t                 i, n;
    ngx_queue_t               *q;
    ngx_http_callhq_waiter_t  *w;

    if (!ngx_http_callhq_wait_init) {
        return;
    }

    n = 0;

    for (i = 0; i < NGX_HTTP_CALLHQ_WAIT_BUCKETS; i++) {
        while (!ngx_queue_empty(&ngx_http_callhq_wait_buckets[i].waiters)) {
            q = ngx_queue_head(&ngx_http_callhq_wait_buckets[i].waiters);
            w = ngx_queue_data(q, ngx_http_callhq_waiter_t, queue);

            ngx_http_callhq_wait_post(w);
            n++;
        }
    }

    if (n) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "callhq: turn listener connected, %ui waiting chats "
                      "look again", n);
    }
}


/*
 * Wakes the first chat waiting for the session, if any, and remembers
 * the turn given back for a chat whose take statement is under way.
 */

static ngx_uint_t
ngx_http_callhq_wait_wake(u_char *session, size_t len, const char *why)
{
    ngx_queue_t                    *q;
    ngx_http_callhq_waiter_t       *w;
    ngx_http_callhq_wait_bucket_t  *b;

    if (len != NGX_HTTP_CALLHQ_WAIT_ID_LEN) {
        return 0;
    }

    b = ngx_http_callhq_wait_bucket(session);

    ngx_memcpy(b->given, session, len);
    b->given_at = ++ngx_http_callhq_wait_seq;

    for (q = ngx_queue_head(&b->waiters);
         q != ngx_queue_sentinel(&b->waiters);
         q = ngx_queue_next(q))
    {
        w = ngx_queue_data(q, ngx_http_callhq_waiter_t, queue);

        if (ngx_strncasecmp(w->session, session, len) != 0) {
            continue;
        }

        ngx_log_error(NGX_LOG_INFO, w->event->log, 0,
                      "callhq: turn of session %*s %s, waking a waiting chat",
                      len, session, why);

        ngx_http_callhq_wait_post(w);

        return 1;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "callhq: turn of session %*s back, nobody waits here",
                   len, session);

    return 0;
}


/* the waiter's event runs its take statement again, in this cycle */

static void
ngx_http_callhq_wait_post(ngx_http_callhq_waiter_t *w)
{
    ngx_queue_remove(&w->queue);
    w->waiting = 0;

    if (w->event->timer_set) {
        ngx_del_timer(w->event);
    }

    ngx_post_event(w->event, &ngx_posted_events);
}


static ngx_http_callhq_wait_bucket_t *
ngx_http_callhq_wait_bucket(u_char *session)
{
    u_char      low[NGX_HTTP_CALLHQ_WAIT_ID_LEN];
    ngx_uint_t  i;

    if (!ngx_http_callhq_wait_init) {
        for (i = 0; i < NGX_HTTP_CALLHQ_WAIT_BUCKETS; i++) {
            ngx_queue_init(&ngx_http_callhq_wait_buckets[i].waiters);
        }

        ngx_http_callhq_wait_init = 1;
    }

    i = ngx_hash_strlow(low, session, NGX_HTTP_CALLHQ_WAIT_ID_LEN);

    return &ngx_http_callhq_wait_buckets[i % NGX_HTTP_CALLHQ_WAIT_BUCKETS];
}
