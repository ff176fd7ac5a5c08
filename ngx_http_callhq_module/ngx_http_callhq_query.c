
/*
 * ngx_http_callhq_module: running a request's statement, and the answer a
 * failed statement means.  The REST resources (ngx_http_callhq_api.c) and
 * the chats (ngx_http_callhq_chat.c) both run their statements here: the
 * request holds a reference while the database works, notices a client
 * that leaves, and cancels its query when it goes first.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


static void ngx_http_callhq_query_cleanup(void *data);


/*
 * Runs ctx->query for the request; its handler finalizes the request.
 * The query is cancelled if the request goes first.
 */

void
ngx_http_callhq_run_query(ngx_http_request_t *r, ngx_http_callhq_ctx_t *ctx)
{
    ngx_pool_cleanup_t           *cln;
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_callhq_module);

    ctx->query.data = r;
    ctx->query.log = r->connection->log;

    if (!ctx->cleanup_added) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        cln->handler = ngx_http_callhq_query_cleanup;
        cln->data = &ctx->query;
        ctx->cleanup_added = 1;
    }

    /* notice a client that leaves while the database works */
    r->read_event_handler = ngx_http_test_reading;

    ngx_http_callhq_pg_run(mcf->pool, &ctx->query);
}


/* maps a failed statement to the HTTP error it means */

ngx_int_t
ngx_http_callhq_send_pg_error(ngx_http_request_t *r, PGresult *res)
{
    char                   *state, *msg;
    ngx_int_t               status;
    ngx_http_callhq_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_callhq_module);

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    if (state == NULL || msg == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: unexpected postgres result: %s %s",
                      PQresStatus(PQresultStatus(res)),
                      PQresultErrorMessage(res));
        return ngx_http_callhq_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal error");
    }

    /* CQnnn: the SQL function's own answer, nnn is the HTTP status */
    if (state[0] == 'C' && state[1] == 'Q') {
        status = ngx_atoi((u_char *) state + 2, 3);
        if (status >= 400 && status < 600) {
            ctx->status = status;

            if (ctx->openai) {
                /* openai_fail() names the parameter and the code */
                return ngx_http_callhq_openai_error(r, status, (u_char *) msg,
                           ngx_strlen(msg),
                           PQresultErrorField(res, PG_DIAG_COLUMN_NAME),
                           PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME));
            }

            return ngx_http_callhq_send_error(r, status, "%s", msg);
        }
    }

    /* data exceptions: input the SQL checks did not catch */
    if (state[0] == '2' && state[1] == '2') {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "callhq: rejected input: %s %s", state, msg);
        return ngx_http_callhq_send_error(r, NGX_HTTP_BAD_REQUEST, "%s", msg);
    }

    /* statement_timeout: the query time-out, rolled back by the server */
    if (ngx_strcmp(state, "57014") == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: postgres query timed out: %s", msg);
        return ngx_http_callhq_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "database query timed out");
    }

    /* connection exceptions, server shutting down */
    if ((state[0] == '0' && state[1] == '8')
        || (state[0] == '5' && state[1] == '7'))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "callhq: postgres unavailable: %s %s", state, msg);
        return ngx_http_callhq_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "database unavailable");
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "callhq: postgres error %s: %s", state, msg);

    return ngx_http_callhq_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "internal error");
}


/*
 * Whether a failed statement may succeed if tried again: the database
 * was not reached (res is NULL), the connection broke, the server shuts
 * down or lacks resources, a time-out, a deadlock or a serialization
 * failure.  Its own answers (CQnnn) and bad input never will.
 */

ngx_uint_t
ngx_http_callhq_pg_transient(PGresult *res)
{
    char  *state;

    if (res == NULL) {
        return 1;
    }

    if (PQresultStatus(res) == PGRES_TUPLES_OK
        || PQresultStatus(res) == PGRES_COMMAND_OK)
    {
        return 0;
    }

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    /* libpq's own: the connection went mid-statement */
    if (state == NULL) {
        return 1;
    }

    return (state[0] == '0' && state[1] == '8')
           || (state[0] == '5' && state[1] == '3')
           || (state[0] == '5' && state[1] == '7')
           || ngx_strcmp(state, "40001") == 0
           || ngx_strcmp(state, "40P01") == 0
           || ngx_strcmp(state, "55P03") == 0;
}


static void
ngx_http_callhq_query_cleanup(void *data)
{
    ngx_http_callhq_pg_query_t  *q = data;

    ngx_http_callhq_pg_cancel(q);
}
