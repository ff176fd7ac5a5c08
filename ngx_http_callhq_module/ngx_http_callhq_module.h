
/*
 * ngx_http_callhq_module: persistent chat sessions for language model
 * assistants, served by nginx from PostgreSQL.
 */


#ifndef _NGX_HTTP_CALLHQ_MODULE_H_INCLUDED_
#define _NGX_HTTP_CALLHQ_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_pg.h"


typedef struct {
    ngx_http_callhq_pg_conf_t      pg;
    ngx_http_callhq_pg_pool_t     *pool;       /* this worker's */
} ngx_http_callhq_main_conf_t;


typedef struct {
    ngx_flag_t                     api;
    time_t                         session_expiration;
    size_t                         max_body_size;
    ngx_str_t                      opts;       /* settings, as JSON for SQL */
} ngx_http_callhq_loc_conf_t;


typedef struct {
    ngx_http_callhq_pg_query_t     query;
    ngx_str_t                      resource;
    ngx_str_t                      id;
    ngx_uint_t                     status;
    u_char                         key_hash[2 + 64 + 1];   /* \x + hex */
    unsigned                       cleanup_added:1;
} ngx_http_callhq_ctx_t;


ngx_int_t ngx_http_callhq_api_handler(ngx_http_request_t *r);


extern ngx_module_t  ngx_http_callhq_module;


#endif /* _NGX_HTTP_CALLHQ_MODULE_H_INCLUDED_ */
