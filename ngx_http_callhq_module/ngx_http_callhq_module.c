
/*
 * ngx_http_callhq_module: directives, configuration and worker set-up.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"


static void *ngx_http_callhq_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_callhq_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_callhq_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_callhq_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_callhq_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_callhq_init_process(ngx_cycle_t *cycle);
static void ngx_http_callhq_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_callhq_pool_size_bounds = {
    ngx_conf_check_num_bounds, 1, 63
};


static ngx_command_t  ngx_http_callhq_commands[] = {

    { ngx_string("callhq_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.conninfo),
      NULL },

    { ngx_string("callhq_postgres_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.size),
      &ngx_http_callhq_pool_size_bounds },

    { ngx_string("callhq_postgres_queue"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.queue),
      NULL },

    { ngx_string("callhq_postgres_queue_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.queue_timeout),
      NULL },

    { ngx_string("callhq_postgres_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.connect_timeout),
      NULL },

    { ngx_string("callhq_postgres_query_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.query_timeout),
      NULL },

    { ngx_string("callhq_postgres_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.idle_timeout),
      NULL },

    { ngx_string("callhq_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_callhq_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("callhq_session_expiration"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, session_expiration),
      NULL },

    { ngx_string("callhq_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, max_body_size),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_callhq_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_callhq_create_main_conf,      /* create main configuration */
    ngx_http_callhq_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_callhq_create_loc_conf,       /* create location configuration */
    ngx_http_callhq_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_callhq_module = {
    NGX_MODULE_V1,
    &ngx_http_callhq_module_ctx,           /* module context */
    ngx_http_callhq_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_callhq_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_callhq_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_callhq_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_callhq_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->pg.conninfo = { 0, NULL };
     *     mcf->pool = NULL;
     */

    mcf->pg.size = NGX_CONF_UNSET_UINT;
    mcf->pg.queue = NGX_CONF_UNSET_UINT;
    mcf->pg.connect_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.query_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.queue_timeout = NGX_CONF_UNSET_MSEC;
    mcf->pg.idle_timeout = NGX_CONF_UNSET_MSEC;

    return mcf;
}


static char *
ngx_http_callhq_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_callhq_main_conf_t  *mcf = conf;

    ngx_conf_init_uint_value(mcf->pg.size, 16);
    ngx_conf_init_uint_value(mcf->pg.queue, 1024);
    ngx_conf_init_msec_value(mcf->pg.connect_timeout, 5000);
    ngx_conf_init_msec_value(mcf->pg.query_timeout, 30000);
    ngx_conf_init_msec_value(mcf->pg.queue_timeout, 5000);
    ngx_conf_init_msec_value(mcf->pg.idle_timeout, 60000);

    return NGX_CONF_OK;
}


static void *
ngx_http_callhq_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_callhq_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_callhq_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     lcf->opts = { 0, NULL };
     */

    lcf->api = NGX_CONF_UNSET;
    lcf->session_expiration = NGX_CONF_UNSET;
    lcf->max_body_size = NGX_CONF_UNSET_SIZE;

    return lcf;
}


static char *
ngx_http_callhq_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_callhq_loc_conf_t *prev = parent;
    ngx_http_callhq_loc_conf_t *conf = child;

    u_char                       *p;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_callhq_main_conf_t  *mcf;

    ngx_conf_merge_value(conf->api, prev->api, 0);
    ngx_conf_merge_sec_value(conf->session_expiration,
                             prev->session_expiration, 86400);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              1024 * 1024);

    if (conf->session_expiration < 60 || conf->session_expiration > 2592000)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_session_expiration\" must be "
                           "between 60s and 30d");
        return NGX_CONF_ERROR;
    }

    /* settings the SQL functions need, passed as one JSON parameter */
    p = ngx_pnalloc(cf->pool, sizeof("{\"defaultExpirationSeconds\":}")
                              + NGX_TIME_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->opts.data = p;
    p = ngx_sprintf(p, "{\"defaultExpirationSeconds\":%T}",
                    conf->session_expiration);
    *p = '\0';
    conf->opts.len = p - conf->opts.data;

    if (!conf->api) {
        return NGX_CONF_OK;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_callhq_module);

    if (mcf->pg.conninfo.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_api\" needs \"callhq_postgres\" "
                           "in the http block");
        return NGX_CONF_ERROR;
    }

    /*
     * The module answers an oversized body itself, in JSON, by
     * callhq_max_body_size; nginx's own check would answer in HTML first.
     */
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->client_max_body_size = 0;

    return NGX_CONF_OK;
}


static char *
ngx_http_callhq_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_callhq_loc_conf_t *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->api != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    lcf->api = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_callhq_api_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_callhq_init_process(ngx_cycle_t *cycle)
{
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_callhq_module);

    if (mcf == NULL || mcf->pg.conninfo.len == 0) {
        return NGX_OK;
    }

    mcf->pool = ngx_http_callhq_pg_pool_create(&mcf->pg, cycle->log);
    if (mcf->pool == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_callhq_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_callhq_module);

    if (mcf == NULL || mcf->pool == NULL) {
        return;
    }

    ngx_http_callhq_pg_pool_destroy(mcf->pool);
    mcf->pool = NULL;
}
