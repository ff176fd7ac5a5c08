
/*
 * ngx_http_callhq_module: queries of one statement that wait for a
 * connection run together, as one execution of the statement's batch
 * form.  A statement costs PostgreSQL much the same whether it writes one
 * row or ten (its executor built, its tables and indexes opened, its
 * triggers' conditions read, its commit), so when the database is the
 * bound and chats queue for connections, the chats that queued record in
 * one statement: each parameter goes as an array of the queries' values,
 * and each row that comes back names its query (the last column, 1 for
 * the first).  Each query's handler then gets a result of its own rows,
 * as the single statement would have given it.  Should the batch fail,
 * its queries run again one by one, at the head of the queue: one of
 * them failing must not fail the others.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_callhq_pg.h"


#define NGX_HTTP_CALLHQ_PG_BATCH       16
#define NGX_HTTP_CALLHQ_PG_BATCH_SCAN  64


typedef struct {
    ngx_http_callhq_pg_query_t     q;          /* runs in the members' stead */
    ngx_http_callhq_pg_query_t    *member[NGX_HTTP_CALLHQ_PG_BATCH];
    ngx_http_callhq_pg_orphan_pt   orphan[NGX_HTTP_CALLHQ_PG_BATCH];
    ngx_uint_t                     n;
    u_char                        *buf;        /* the arrays' text */
} ngx_http_callhq_pg_batch_t;


static ngx_uint_t ngx_http_callhq_pg_batch_fits(ngx_http_callhq_pg_batch_t *b,
    ngx_http_callhq_pg_query_t *q);
static void ngx_http_callhq_pg_batch_sort(ngx_http_callhq_pg_batch_t *b);
static ngx_int_t ngx_http_callhq_pg_batch_values(
    ngx_http_callhq_pg_batch_t *b);
static void ngx_http_callhq_pg_batch_done(ngx_http_callhq_pg_query_t *q,
    PGresult *res);
static PGresult *ngx_http_callhq_pg_batch_result(PGresult *res,
    ngx_uint_t slot, PGresAttDesc *attrs, int nattrs);
static void ngx_http_callhq_pg_batch_free(ngx_http_callhq_pg_batch_t *b);


ngx_http_callhq_pg_query_t *
ngx_http_callhq_pg_batch(ngx_http_callhq_pg_query_t *q, ngx_queue_t *waiting,
    ngx_uint_t *taken)
{
    ngx_uint_t                   i, scanned;
    ngx_queue_t                 *qu, *next;
    ngx_http_callhq_pg_query_t  *m;
    ngx_http_callhq_pg_batch_t  *b;

    *taken = 0;

    b = ngx_calloc(sizeof(ngx_http_callhq_pg_batch_t), q->log);
    if (b == NULL) {
        return q;
    }

    b->member[0] = q;
    b->n = 1;
    scanned = 0;

    for (qu = ngx_queue_head(waiting);
         qu != ngx_queue_sentinel(waiting)
         && b->n < NGX_HTTP_CALLHQ_PG_BATCH
         && scanned++ < NGX_HTTP_CALLHQ_PG_BATCH_SCAN;
         qu = next)
    {
        next = ngx_queue_next(qu);
        m = ngx_queue_data(qu, ngx_http_callhq_pg_query_t, queue);

        if (ngx_http_callhq_pg_batch_fits(b, m)) {
            b->member[b->n++] = m;
        }
    }

    if (b->n == 1) {
        ngx_http_callhq_pg_batch_free(b);
        return q;
    }

    ngx_http_callhq_pg_batch_sort(b);

    if (ngx_http_callhq_pg_batch_values(b) != NGX_OK) {
        ngx_http_callhq_pg_batch_free(b);
        return q;
    }

    for (i = 0; i < b->n; i++) {
        m = b->member[i];

        if (m != q) {
            ngx_queue_remove(&m->queue);
            m->queued = 0;

            if (m->wait.timer_set) {
                ngx_del_timer(&m->wait);
            }
        }

        m->carrier = &b->q;
        m->slot = i;
    }

    *taken = b->n - 1;

    b->q.stmt = q->batch->batch;
    b->q.handler = ngx_http_callhq_pg_batch_done;
    b->q.data = b;
    b->q.log = ngx_cycle->log;     /* outlives any one request */
    b->q.start = ngx_current_msec;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, q->log, 0,
                   "callhq pg: %ui queries of \"%s\" in one batch",
                   b->n, q->stmt->name);

    return &b->q;
}


/* the same statement, the shared value, none of the distinct ones */

static ngx_uint_t
ngx_http_callhq_pg_batch_fits(ngx_http_callhq_pg_batch_t *b,
    ngx_http_callhq_pg_query_t *q)
{
    int                          d, s;
    ngx_uint_t                   i;
    const char                  *a, *v;
    ngx_http_callhq_pg_query_t  *first;

    first = b->member[0];

    if (q->stmt != first->stmt || q->batch != first->batch) {
        return 0;
    }

    s = first->batch->shared;

    if (s >= 0) {
        a = first->values[s];
        v = q->values[s];

        if ((a == NULL) != (v == NULL)
            || (a != NULL && ngx_strcmp(a, v) != 0))
        {
            return 0;
        }
    }

    d = first->batch->distinct;

    for (i = 0; i < b->n; i++) {
        a = b->member[i]->values[d];
        v = q->values[d];

        if (a == NULL || v == NULL || ngx_strcmp(a, v) == 0) {
            return 0;
        }
    }

    return 1;
}


/*
 * In the order of the distinct values (the sessions): batches of both
 * statements then lock their sessions' rows in one order (PostgreSQL's
 * plan joins the sessions to the arrays in their order), so that they do
 * not wait for each other in a circle; should they all the same, its
 * deadlock check fails one, whose chats run again one by one.
 */

static void
ngx_http_callhq_pg_batch_sort(ngx_http_callhq_pg_batch_t *b)
{
    int                          d;
    ngx_uint_t                   i, j;
    ngx_http_callhq_pg_query_t  *m;

    d = b->member[0]->batch->distinct;

    for (i = 1; i < b->n; i++) {
        m = b->member[i];

        for (j = i;
             j > 0 && ngx_strcmp(b->member[j - 1]->values[d], m->values[d]) > 0;
             j--)
        {
            b->member[j] = b->member[j - 1];
        }

        b->member[j] = m;
    }
}


/*
 * Each parameter as a PostgreSQL array literal of the members' values:
 * {"a","b",NULL}, each value quoted, its quotes and backslashes escaped.
 */

static ngx_int_t
ngx_http_callhq_pg_batch_values(ngx_http_callhq_pg_batch_t *b)
{
    int          j, nparams;
    size_t       len;
    u_char      *p;
    ngx_uint_t   i;
    const char  *v, *c;

    nparams = b->member[0]->stmt->nparams;
    len = 0;

    for (j = 0; j < nparams; j++) {
        if (j == b->member[0]->batch->shared) {
            continue;
        }

        len += 2;

        for (i = 0; i < b->n; i++) {
            v = b->member[i]->values[j];
            len += 5;

            for (c = v; c && *c; c++) {
                len += (*c == '"' || *c == '\\') ? 2 : 1;
            }
        }
    }

    b->buf = ngx_alloc(len + nparams, b->member[0]->log);
    if (b->buf == NULL) {
        return NGX_ERROR;
    }

    p = b->buf;

    for (j = 0; j < nparams; j++) {
        if (j == b->member[0]->batch->shared) {
            b->q.values[j] = b->member[0]->values[j];
            continue;
        }

        b->q.values[j] = (char *) p;
        *p++ = '{';

        for (i = 0; i < b->n; i++) {
            if (i > 0) {
                *p++ = ',';
            }

            v = b->member[i]->values[j];

            if (v == NULL) {
                p = ngx_cpymem(p, "NULL", 4);
                continue;
            }

            *p++ = '"';

            for (c = v; *c; c++) {
                if (*c == '"' || *c == '\\') {
                    *p++ = '\\';
                }

                *p++ = *c;
            }

            *p++ = '"';
        }

        *p++ = '}';
        *p++ = '\0';
    }

    return NGX_OK;
}


/* each member's rows to its handler (or to its orphan, if it left) */

static void
ngx_http_callhq_pg_batch_done(ngx_http_callhq_pg_query_t *q, PGresult *res)
{
    int                          nattrs, col;
    ngx_uint_t                   i;
    PGresult                    *own;
    PGresAttDesc                 attrs[32];
    ngx_http_callhq_pg_query_t  *m;
    ngx_http_callhq_pg_batch_t  *b;

    b = q->data;

    if (res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_INFO, q->log, 0,
                      "callhq: a batch of %ui \"%s\" failed, "
                      "running them one by one: %s",
                      b->n, q->stmt->name,
                      PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));

        /* in reverse: each goes to the head of the queue */
        for (i = b->n; i-- > 0; /* void */) {
            if (b->member[i] != NULL) {
                ngx_http_callhq_pg_requeue(q->pool, b->member[i]);
            }
        }

        ngx_http_callhq_pg_batch_free(b);
        return;
    }

    nattrs = 0;

    if (res != NULL) {
        nattrs = PQnfields(res) - 1;    /* the last one names the member */

        if (nattrs < 0 || nattrs > 32) {
            nattrs = 0;
        }

        for (col = 0; col < nattrs; col++) {
            attrs[col].name = PQfname(res, col);
            attrs[col].tableid = PQftable(res, col);
            attrs[col].columnid = PQftablecol(res, col);
            attrs[col].format = PQfformat(res, col);
            attrs[col].typid = PQftype(res, col);
            attrs[col].typlen = PQfsize(res, col);
            attrs[col].atttypmod = PQfmod(res, col);
        }
    }

    for (i = 0; i < b->n; i++) {
        m = b->member[i];

        own = res ? ngx_http_callhq_pg_batch_result(res, i, attrs, nattrs)
                  : NULL;

        if (m == NULL) {
            if (own != NULL) {
                if (b->orphan[i]) {
                    b->orphan[i](own);
                }

                PQclear(own);
            }

            continue;
        }

        m->carrier = NULL;

        if (own == NULL) {
            if (res == NULL) {
                m->reason = q->reason;
                m->error = q->error;

            } else {
                /* out of memory: as if the database had not answered */
                m->reason = NGX_HTTP_CALLHQ_PG_NO_RESULT;
                m->error = "out of memory";
            }

            ngx_http_callhq_metrics_query(m, NULL);
            m->handler(m, NULL);
            continue;
        }

        ngx_http_callhq_pg_deliver(m, own);
    }

    ngx_http_callhq_pg_batch_free(b);
}


/* the rows of member slot, as the single statement would return them */

static PGresult *
ngx_http_callhq_pg_batch_result(PGresult *res, ngx_uint_t slot,
    PGresAttDesc *attrs, int nattrs)
{
    int        row, col, n;
    char      *v;
    PGresult  *own;

    own = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    if (own == NULL) {
        return NULL;
    }

    if (!PQsetResultAttrs(own, nattrs, attrs)) {
        PQclear(own);
        return NULL;
    }

    n = 0;

    for (row = 0; row < PQntuples(res); row++) {
        if ((ngx_uint_t) ngx_atoi((u_char *) PQgetvalue(res, row, nattrs),
                                  PQgetlength(res, row, nattrs))
            != slot + 1)
        {
            continue;
        }

        for (col = 0; col < nattrs; col++) {
            v = PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);

            if (!PQsetvalue(own, n, col, v,
                            v ? PQgetlength(res, row, col) : -1))
            {
                PQclear(own);
                return NULL;
            }
        }

        n++;
    }

    return own;
}


/* a member leaves: its rows go to its orphan handler, if it has one */

void
ngx_http_callhq_pg_batch_cancel(ngx_http_callhq_pg_query_t *q)
{
    ngx_http_callhq_pg_batch_t  *b;

    b = q->carrier->data;

    b->member[q->slot] = NULL;
    b->orphan[q->slot] = q->orphan;
    q->carrier = NULL;
}


static void
ngx_http_callhq_pg_batch_free(ngx_http_callhq_pg_batch_t *b)
{
    if (b->buf) {
        ngx_free(b->buf);
    }

    ngx_free(b);
}
