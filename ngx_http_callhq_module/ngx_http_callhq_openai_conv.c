
/*
 * ngx_http_callhq_module: the OpenAI surface's conversations, and the
 * input items of a response (callhq_openai).
 *
 * A conversation is a session: conv_<session id> and the session id name
 * the same thing, and its items are the session's messages.  Every route
 * here is one SQL function (sql/functions/openai_conv.sql) run by
 * ngx_http_callhq_api.c, which answers its failures in OpenAI's error
 * shape; a path with two ids gives the function "{id}/{item}".
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"


#define ngx_http_callhq_conv_route(res, item, method, stmt, fn)               \
    { ngx_string(res), item, method,                                          \
      { NGX_HTTP_CALLHQ_STMT_ ## stmt, "callhq_" fn,                          \
        "select status, body from callhq." fn                                 \
        "($1::bytea, $2::text, $3::jsonb, $4::jsonb, $5::jsonb)", 5 } }


/* "conversations/items": /conversations/{id}/items[/{item}] */
ngx_http_callhq_route_t  ngx_http_callhq_openai_conv_routes[] = {

    ngx_http_callhq_conv_route("responses/input_items", 1, NGX_HTTP_GET,
                               OPENAI_INPUT_ITEMS, "api_openai_input_items"),

    ngx_http_callhq_conv_route("conversations", 0, NGX_HTTP_POST,
                               CONV_CREATE, "api_openai_conv_create"),
    ngx_http_callhq_conv_route("conversations", 1, NGX_HTTP_GET,
                               CONV_GET, "api_openai_conv_get"),
    ngx_http_callhq_conv_route("conversations", 1, NGX_HTTP_POST,
                               CONV_UPDATE, "api_openai_conv_update"),
    ngx_http_callhq_conv_route("conversations", 1, NGX_HTTP_DELETE,
                               CONV_DELETE, "api_openai_conv_delete"),

    ngx_http_callhq_conv_route("conversations/items", 1, NGX_HTTP_GET,
                               CONV_ITEMS, "api_openai_conv_items"),
    ngx_http_callhq_conv_route("conversations/items", 1, NGX_HTTP_POST,
                               CONV_ITEMS_ADD, "api_openai_conv_items_add"),
    ngx_http_callhq_conv_route("conversations/items", 2, NGX_HTTP_GET,
                               CONV_ITEM_GET, "api_openai_conv_item_get"),
    ngx_http_callhq_conv_route("conversations/items", 2, NGX_HTTP_DELETE,
                               CONV_ITEM_DELETE, "api_openai_conv_item_delete"),

    { ngx_null_string, 0, 0, { 0, NULL, NULL, 0 } }
};
