
/*
 * ngx_http_callhq_module: a per-worker pool of non-blocking PostgreSQL
 * connections driven by nginx's event loop.
 */


#ifndef _NGX_HTTP_CALLHQ_PG_H_INCLUDED_
#define _NGX_HTTP_CALLHQ_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <libpq-fe.h>


#define NGX_HTTP_CALLHQ_PG_MAX_PARAMS  18


typedef struct ngx_http_callhq_pg_pool_s   ngx_http_callhq_pg_pool_t;
typedef struct ngx_http_callhq_pg_conn_s   ngx_http_callhq_pg_conn_t;
typedef struct ngx_http_callhq_pg_query_s  ngx_http_callhq_pg_query_t;
typedef struct ngx_http_callhq_pg_link_s   ngx_http_callhq_pg_link_t;

/*
 * res is the statement's result (valid only during the call), or NULL
 * when the database could not be reached in time; q->reason then says why
 * and q->error in words.
 */
typedef void (*ngx_http_callhq_pg_handler_pt)(ngx_http_callhq_pg_query_t *q,
    PGresult *res);

/* sees the result of a statement whose caller left before it finished */
typedef void (*ngx_http_callhq_pg_orphan_pt)(PGresult *res);

/* rc: NGX_OK connected, NGX_ERROR not (link->timedout, or PQerrorMessage) */
typedef void (*ngx_http_callhq_pg_link_pt)(ngx_http_callhq_pg_link_t *link,
    ngx_int_t rc);


/*
 * One non-blocking libpq connection whose socket nginx's event loop
 * watches (the pool's connections and the webhook listener's): the
 * socket's events drive PQconnectPoll() until connected() is called, then
 * go to handler.  c->data is the link, data its owner's.
 */
struct ngx_http_callhq_pg_link_s {
    PGconn                        *pgconn;
    ngx_connection_t              *c;
    ngx_log_t                     *log;
    void                          *data;
    ngx_http_callhq_pg_link_pt     connected;
    ngx_event_handler_pt           handler;

    unsigned                       idle:1;     /* closed by a graceful exit */
    unsigned                       connecting:1;
    unsigned                       timedout:1; /* the connect did */
};


/* why a statement got no result */
typedef enum {
    NGX_HTTP_CALLHQ_PG_UNAVAILABLE = 0,
    NGX_HTTP_CALLHQ_PG_NO_RESULT,
    NGX_HTTP_CALLHQ_PG_EXITING,
    NGX_HTTP_CALLHQ_PG_EXHAUSTED,
    NGX_HTTP_CALLHQ_PG_CONNECT_TIMEOUT,
    NGX_HTTP_CALLHQ_PG_QUERY_TIMEOUT
} ngx_http_callhq_pg_reason_e;


/* a statement prepared lazily, once per connection */
typedef struct {
    ngx_uint_t                     index;      /* ngx_http_callhq_stmt_e */
    const char                    *name;
    const char                    *sql;
    int                            nparams;
} ngx_http_callhq_pg_stmt_t;


/*
 * Queries of the statement single that wait for a connection may run as
 * one execution of batch (ngx_http_callhq_pg_batch.c): the same
 * parameters, each an array of the queries' values, but for the shared
 * one (-1: none), one value that they all have; no two of them with the
 * same distinct one.
 */
typedef struct {
    ngx_http_callhq_pg_stmt_t     *single;
    ngx_http_callhq_pg_stmt_t     *batch;
    int                            shared;
    int                            distinct;
} ngx_http_callhq_pg_batch_form_t;


typedef struct {
    ngx_str_t                      conninfo;
    ngx_str_t                      listen;     /* LISTEN's own, or empty */
    ngx_flag_t                     prepare;    /* off: PgBouncer */
    ngx_uint_t                     size;
    ngx_uint_t                     queue;
    ngx_msec_t                     connect_timeout;
    ngx_msec_t                     query_timeout;
    ngx_msec_t                     queue_timeout;
    ngx_msec_t                     idle_timeout;
} ngx_http_callhq_pg_conf_t;


struct ngx_http_callhq_pg_query_s {
    ngx_queue_t                    queue;      /* in pool->waiting */
    ngx_event_t                    wait;       /* queue time-out */

    ngx_http_callhq_pg_pool_t     *pool;
    ngx_http_callhq_pg_conn_t     *conn;
    ngx_http_callhq_pg_stmt_t     *stmt;

    const char                    *values[NGX_HTTP_CALLHQ_PG_MAX_PARAMS];

    ngx_http_callhq_pg_handler_pt  handler;
    ngx_http_callhq_pg_orphan_pt   orphan;     /* optional */
    void                          *data;
    ngx_log_t                     *log;

    const char                    *error;      /* set when res is NULL */
    ngx_uint_t                     reason;     /* with error */
    ngx_msec_t                     start;      /* when it was run */

    /* may run in a batch, if its statement is form->single */
    ngx_http_callhq_pg_batch_form_t  *batch;
    ngx_http_callhq_pg_query_t    *carrier;    /* the batch it runs in */
    ngx_uint_t                     slot;       /* in it */

    unsigned                       queued:1;
};


ngx_http_callhq_pg_pool_t *ngx_http_callhq_pg_pool_create(
    ngx_http_callhq_pg_conf_t *conf, ngx_log_t *log);
void ngx_http_callhq_pg_pool_destroy(ngx_http_callhq_pg_pool_t *pool);

/* NGX_ERROR, logged, when a worker would resolve the host: a name */
ngx_int_t ngx_http_callhq_pg_check_conninfo(ngx_conf_t *cf,
    ngx_str_t *conninfo);

/*
 * Runs q->stmt with q->values and calls q->handler exactly once with the
 * outcome, unless ngx_http_callhq_pg_cancel() comes first.  The handler
 * may be called before this returns (pool exhausted, database down), so
 * a request must hold a reference (r->main->count) across the call.
 */
void ngx_http_callhq_pg_run(ngx_http_callhq_pg_pool_t *pool,
    ngx_http_callhq_pg_query_t *q);

/*
 * Called by a handler: res stays valid after the handler returns, and the
 * caller PQclear()s it when done with it (no copy of a large result).
 */
void ngx_http_callhq_pg_keep(ngx_http_callhq_pg_query_t *q);

/* the caller is gone: its handler is never called */
void ngx_http_callhq_pg_cancel(ngx_http_callhq_pg_query_t *q);

/*
 * Starts link's connect (link->log, ->data, ->connected, ->handler,
 * ->idle set): NGX_OK, and link->connected() is called once, maybe before
 * this returns; or NGX_ERROR at once, PQerrorMessage() (or "out of
 * memory" without link->pgconn) saying why, and the caller closes it.
 */
ngx_int_t ngx_http_callhq_pg_link_start(ngx_http_callhq_pg_link_t *link,
    const char *const *keywords, const char *const *values,
    int expand_dbname, ngx_msec_t timeout);

/* whatever is open of it; a closed link may start again */
void ngx_http_callhq_pg_link_close(ngx_http_callhq_pg_link_t *link);

/*
 * For ngx_http_callhq_pg_batch.c: q's outcome to its handler (metrics
 * counted, res freed unless kept); q back at the head of the queue.
 */
void ngx_http_callhq_pg_deliver(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
void ngx_http_callhq_pg_requeue(ngx_http_callhq_pg_pool_t *pool,
    ngx_http_callhq_pg_query_t *q);

/* the queries of q's batch taken from the queue: a query to run, or q */
ngx_http_callhq_pg_query_t *ngx_http_callhq_pg_batch(
    ngx_http_callhq_pg_query_t *q, ngx_queue_t *waiting, ngx_uint_t *taken);
void ngx_http_callhq_pg_batch_cancel(ngx_http_callhq_pg_query_t *q);

/* statistics for variables and status */
ngx_uint_t ngx_http_callhq_pg_open(ngx_http_callhq_pg_pool_t *pool);
ngx_uint_t ngx_http_callhq_pg_busy(ngx_http_callhq_pg_pool_t *pool);
ngx_uint_t ngx_http_callhq_pg_waiting(ngx_http_callhq_pg_pool_t *pool);
ngx_uint_t ngx_http_callhq_pg_own(ngx_http_callhq_pg_pool_t *pool, int pid);


/* each outcome is counted (ngx_http_callhq_metrics.c) */
void ngx_http_callhq_metrics_query(ngx_http_callhq_pg_query_t *q,
    PGresult *res);


#endif /* _NGX_HTTP_CALLHQ_PG_H_INCLUDED_ */
