
/*
 * ngx_http_callhq_module: the query string as one JSON object of strings.
 */


#ifndef _NGX_HTTP_CALLHQ_ARGS_H_INCLUDED_
#define _NGX_HTTP_CALLHQ_ARGS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>


/*
 * args as {"name": "value", ...} (NUL-terminated, in pool); a repeated
 * name reads "a,b".  NGX_DECLINED: *error says why the client is wrong.
 */
ngx_int_t ngx_http_callhq_args_json(ngx_pool_t *pool, ngx_str_t *args,
    ngx_str_t *out, ngx_str_t *error);


#endif /* _NGX_HTTP_CALLHQ_ARGS_H_INCLUDED_ */
