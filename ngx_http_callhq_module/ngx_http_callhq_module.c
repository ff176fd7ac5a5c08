
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
static char *ngx_http_callhq_history_cache(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_callhq_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_callhq_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_callhq_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_callhq_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_callhq_init_process(ngx_cycle_t *cycle);
static void ngx_http_callhq_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_callhq_pool_size_bounds = {
    ngx_conf_check_num_bounds, 1, 63
};


static ngx_command_t  ngx_http_callhq_commands[] = {

    { ngx_string("callhq_history_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_callhq_history_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("callhq_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.conninfo),
      NULL },

    { ngx_string("callhq_postgres_prepare"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.prepare),
      NULL },

    { ngx_string("callhq_webhook_listen"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_callhq_main_conf_t, pg.listen),
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

    { ngx_string("callhq_openai"),
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

    { ngx_string("callhq_model_location"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, model_location),
      NULL },

    { ngx_string("callhq_max_reply_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, max_reply_size),
      NULL },

    { ngx_string("callhq_turn_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, turn_timeout),
      NULL },

    { ngx_string("callhq_turn_recheck"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, turn_recheck),
      NULL },

    { ngx_string("callhq_turn_lease"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, turn_lease),
      NULL },

    { ngx_string("callhq_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_callhq_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("callhq_metrics_db_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, metrics_db_interval),
      NULL },

    { ngx_string("callhq_record_retry"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, record_retry),
      NULL },

    { ngx_string("callhq_context_messages"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, context_messages),
      NULL },

    { ngx_string("callhq_max_variables"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, max_variables),
      NULL },

    { ngx_string("callhq_max_variable_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, max_variable_size),
      NULL },

    { ngx_string("callhq_max_prompt_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, max_prompt_size),
      NULL },

    { ngx_string("callhq_max_list_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, max_list_size),
      NULL },

    { ngx_string("callhq_context_bytes"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_callhq_loc_conf_t, context_bytes),
      NULL },

      ngx_null_command
};


enum {
    NGX_HTTP_CALLHQ_VAR_CHAT_ID = 0,
    NGX_HTTP_CALLHQ_VAR_SESSION_ID,
    NGX_HTTP_CALLHQ_VAR_ORG_ID,
    NGX_HTTP_CALLHQ_VAR_MODEL,
    NGX_HTTP_CALLHQ_VAR_CHAT_STATUS,
    NGX_HTTP_CALLHQ_VAR_UPSTREAM_STATUS,
    NGX_HTTP_CALLHQ_VAR_UPSTREAM_TIME,
    NGX_HTTP_CALLHQ_VAR_PROMPT_TOKENS,
    NGX_HTTP_CALLHQ_VAR_COMPLETION_TOKENS
};


static ngx_http_variable_t  ngx_http_callhq_vars[] = {

    { ngx_string("callhq_chat_id"), NULL, ngx_http_callhq_variable,
      NGX_HTTP_CALLHQ_VAR_CHAT_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("callhq_session_id"), NULL, ngx_http_callhq_variable,
      NGX_HTTP_CALLHQ_VAR_SESSION_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("callhq_org_id"), NULL, ngx_http_callhq_variable,
      NGX_HTTP_CALLHQ_VAR_ORG_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("callhq_model"), NULL, ngx_http_callhq_variable,
      NGX_HTTP_CALLHQ_VAR_MODEL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("callhq_chat_status"), NULL, ngx_http_callhq_variable,
      NGX_HTTP_CALLHQ_VAR_CHAT_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("callhq_upstream_status"), NULL, ngx_http_callhq_variable,
      NGX_HTTP_CALLHQ_VAR_UPSTREAM_STATUS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("callhq_upstream_time"), NULL, ngx_http_callhq_variable,
      NGX_HTTP_CALLHQ_VAR_UPSTREAM_TIME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("callhq_prompt_tokens"), NULL, ngx_http_callhq_variable,
      NGX_HTTP_CALLHQ_VAR_PROMPT_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("callhq_completion_tokens"), NULL, ngx_http_callhq_variable,
      NGX_HTTP_CALLHQ_VAR_COMPLETION_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_http_module_t  ngx_http_callhq_module_ctx = {
    ngx_http_callhq_add_variables,         /* preconfiguration */
    ngx_http_callhq_postconfiguration,     /* postconfiguration */

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
    mcf->pg.prepare = NGX_CONF_UNSET;
    mcf->history_size = NGX_CONF_UNSET;

    return mcf;
}


static char *
ngx_http_callhq_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_callhq_main_conf_t  *mcf = conf;

    ngx_conf_init_uint_value(mcf->pg.size, 2);
    ngx_conf_init_uint_value(mcf->pg.queue, 1024);
    ngx_conf_init_msec_value(mcf->pg.connect_timeout, 5000);
    ngx_conf_init_msec_value(mcf->pg.query_timeout, 30000);
    ngx_conf_init_msec_value(mcf->pg.queue_timeout, 5000);
    ngx_conf_init_msec_value(mcf->pg.idle_timeout, 60000);
    ngx_conf_init_value(mcf->pg.prepare, 1);

    if (mcf->history_size == NGX_CONF_UNSET) {
        mcf->history_size = 32 * 1024 * 1024;
    }

    if (mcf->pg.conninfo.len
        && ngx_http_callhq_pg_check_conninfo(cf, &mcf->pg.conninfo)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (mcf->pg.listen.len
        && ngx_http_callhq_pg_check_conninfo(cf, &mcf->pg.listen) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (mcf->pg.conninfo.len && mcf->history_size > 0
        && ngx_http_callhq_history_zone(cf, mcf->history_size) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* callhq_history_cache <size> | off */

static char *
ngx_http_callhq_history_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_callhq_main_conf_t *mcf = conf;

    ngx_str_t  *value;

    if (mcf->history_size != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        mcf->history_size = 0;
        return NGX_CONF_OK;
    }

    mcf->history_size = ngx_parse_size(&value[1]);

    if (mcf->history_size == NGX_ERROR
        || mcf->history_size < (ssize_t) (8 * ngx_pagesize))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be \"off\" or a size of %uzk "
                           "at least", &cmd->name, 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

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
     *     lcf->model_location = { 0, NULL };
     *     lcf->opts = { 0, NULL };
     */

    lcf->api = NGX_CONF_UNSET;
    lcf->openai = NGX_CONF_UNSET;
    lcf->session_expiration = NGX_CONF_UNSET;
    lcf->max_body_size = NGX_CONF_UNSET_SIZE;
    lcf->max_reply_size = NGX_CONF_UNSET_SIZE;
    lcf->turn_timeout = NGX_CONF_UNSET_MSEC;
    lcf->turn_recheck = NGX_CONF_UNSET_MSEC;
    lcf->turn_lease = NGX_CONF_UNSET;
    lcf->record_retry = NGX_CONF_UNSET_MSEC;
    lcf->metrics_db_interval = NGX_CONF_UNSET_MSEC;
    lcf->context_messages = NGX_CONF_UNSET_UINT;
    lcf->context_bytes = NGX_CONF_UNSET_SIZE;
    lcf->max_variables = NGX_CONF_UNSET_UINT;
    lcf->max_variable_size = NGX_CONF_UNSET_SIZE;
    lcf->max_prompt_size = NGX_CONF_UNSET_SIZE;
    lcf->max_list_size = NGX_CONF_UNSET_SIZE;

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
    ngx_conf_merge_value(conf->openai, prev->openai, 0);
    ngx_conf_merge_sec_value(conf->session_expiration,
                             prev->session_expiration, 86400);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              1024 * 1024);
    ngx_conf_merge_size_value(conf->max_reply_size, prev->max_reply_size,
                              8 * 1024 * 1024);
    ngx_conf_merge_str_value(conf->model_location, prev->model_location, "");
    ngx_conf_merge_msec_value(conf->turn_timeout, prev->turn_timeout, 30000);
    ngx_conf_merge_msec_value(conf->turn_recheck, prev->turn_recheck, 1000);
    ngx_conf_merge_sec_value(conf->turn_lease, prev->turn_lease, 30);
    ngx_conf_merge_msec_value(conf->record_retry, prev->record_retry, 60000);
    ngx_conf_merge_msec_value(conf->metrics_db_interval,
                              prev->metrics_db_interval, 15000);

    /* renewed every third of it: shorter is a renewal per request */
    if (conf->turn_lease < 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_turn_lease\" must be at least 3s");
        return NGX_CONF_ERROR;
    }

    /* 0 would have a waiting chat ask the database in a loop */
    if (conf->turn_recheck < 100) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_turn_recheck\" must be at least 100ms");
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_uint_value(conf->context_messages,
                              prev->context_messages, 0);
    ngx_conf_merge_size_value(conf->context_bytes, prev->context_bytes, 0);
    ngx_conf_merge_uint_value(conf->max_variables, prev->max_variables, 64);
    ngx_conf_merge_size_value(conf->max_variable_size,
                              prev->max_variable_size, 8192);
    ngx_conf_merge_size_value(conf->max_prompt_size, prev->max_prompt_size,
                              1024 * 1024);
    ngx_conf_merge_size_value(conf->max_list_size, prev->max_list_size,
                              8 * 1024 * 1024);

    if (conf->session_expiration < 60 || conf->session_expiration > 2592000)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"callhq_session_expiration\" must be "
                           "between 60s and 30d");
        return NGX_CONF_ERROR;
    }

    /* settings the SQL functions need, passed as one JSON parameter */
    p = ngx_pnalloc(cf->pool, sizeof("{\"defaultExpirationSeconds\":,"
                                     "\"contextMessages\":,"
                                     "\"contextBytes\":,"
                                     "\"turnLeaseSeconds\":,"
                                     "\"maxPromptSize\":,"
                                     "\"maxListSize\":}")
                              + 6 * NGX_OFF_T_LEN);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    conf->opts.data = p;
    p = ngx_sprintf(p, "{\"defaultExpirationSeconds\":%T,"
                    "\"contextMessages\":%ui,\"contextBytes\":%uz,"
                    "\"turnLeaseSeconds\":%T,"
                    "\"maxPromptSize\":%uz,\"maxListSize\":%uz}",
                    conf->session_expiration, conf->context_messages,
                    conf->context_bytes, conf->turn_lease,
                    conf->max_prompt_size, conf->max_list_size);
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

    /* the same API, its OpenAI surface: paths, shapes, errors */
    lcf->openai = (cmd->name.len == sizeof("callhq_openai") - 1);

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_callhq_api_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_callhq_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_callhq_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_callhq_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_callhq_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_callhq_module);

    if (mcf->pg.conninfo.len
        && ngx_http_callhq_metrics_zone(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_callhq_api_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_callhq_filter_init(cf);
}


static ngx_int_t
ngx_http_callhq_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                  *p;
    ngx_str_t               *s;
    ngx_int_t                n;
    ngx_http_callhq_ctx_t   *ctx;
    ngx_http_callhq_chat_t  *chat;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_callhq_module);

    if (ctx == NULL || ctx->chat == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    chat = ctx->chat;
    s = NULL;
    n = -1;

    switch (data) {

    case NGX_HTTP_CALLHQ_VAR_CHAT_ID:
        s = &chat->chat_id;
        break;

    case NGX_HTTP_CALLHQ_VAR_SESSION_ID:
        s = &chat->session_id;
        break;

    case NGX_HTTP_CALLHQ_VAR_ORG_ID:
        s = &chat->org_id;
        break;

    case NGX_HTTP_CALLHQ_VAR_MODEL:
        s = &chat->model;
        break;

    case NGX_HTTP_CALLHQ_VAR_CHAT_STATUS:
        if (chat->chat_status == NULL) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = (u_char *) chat->chat_status;
        v->len = ngx_strlen(chat->chat_status);
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;
        return NGX_OK;

    case NGX_HTTP_CALLHQ_VAR_UPSTREAM_STATUS:
        if (chat->sr == NULL) {
            /* the chat never went upstream: "-", like $upstream_status */
            v->not_found = 1;
            return NGX_OK;
        }

        n = chat->upstream_status;
        break;

    case NGX_HTTP_CALLHQ_VAR_UPSTREAM_TIME:
        if (chat->state < NGX_HTTP_CALLHQ_CHAT_ANSWERED) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 4);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%T.%03M",
                             (time_t) chat->upstream_time / 1000,
                             chat->upstream_time % 1000) - p;
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;
        return NGX_OK;

    case NGX_HTTP_CALLHQ_VAR_PROMPT_TOKENS:
        n = chat->prompt_tokens;
        break;

    default: /* NGX_HTTP_CALLHQ_VAR_COMPLETION_TOKENS */
        n = chat->completion_tokens;
        break;
    }

    if (s) {
        if (s->len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = s->data;
        v->len = s->len;

    } else {
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%i", n) - p;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
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

    ngx_http_callhq_metrics_worker(cycle);

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

    ngx_http_callhq_lease_exit(cycle->log);
    ngx_http_callhq_metrics_worker_exit();
    ngx_http_callhq_setup_exit();

    ngx_http_callhq_pg_pool_destroy(mcf->pool);
    mcf->pool = NULL;
}
