
/*
 * ngx_http_callhq_module: what a chat of a session sends the model besides
 * its history and input: the model's name, its parameters and the
 * assistant's prompts, as the take statement (ngx_http_callhq_turn.c)
 * used to build them on every chat.
 *
 * They change only when the assistant does, so each worker keeps them by
 * assistant, valid for one version of its row (xmin, which every UPDATE
 * changes): the take returns the version, and only a version the worker
 * has not seen, or a session with an inline assistant or variables of its
 * own, costs the setup statement below.  Building them was a fifth of
 * the take's instructions even when no chat ever changed them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


#define NGX_HTTP_CALLHQ_SETUPS  64      /* assistants kept by a worker */


/* the columns of the setup statement, the first five as the chat's */
enum {
    NGX_HTTP_CALLHQ_SETUP_MODEL = 0,
    NGX_HTTP_CALLHQ_SETUP_PARAMS,
    NGX_HTTP_CALLHQ_SETUP_PROMPTS,
    NGX_HTTP_CALLHQ_SETUP_PROMPTS_JSON,
    NGX_HTTP_CALLHQ_SETUP_PROMPT_COUNT,
    NGX_HTTP_CALLHQ_SETUP_QUIET,
    NGX_HTTP_CALLHQ_SETUP_FIELDS,
    NGX_HTTP_CALLHQ_SETUP_INLINE = NGX_HTTP_CALLHQ_SETUP_FIELDS,
    NGX_HTTP_CALLHQ_SETUP_VERSION,
    NGX_HTTP_CALLHQ_SETUP_SHARED,
    NGX_HTTP_CALLHQ_SETUP_ASSISTANT,
    NGX_HTTP_CALLHQ_SETUP_COLUMNS
};


typedef struct {
    ngx_pool_t                    *pool;       /* NULL: a free slot */
    ngx_str_t                      assistant;
    ngx_str_t                      version;
    ngx_str_t                      field[NGX_HTTP_CALLHQ_SETUP_FIELDS];
} ngx_http_callhq_setup_t;


static ngx_str_t *ngx_http_callhq_setup_field(ngx_http_callhq_chat_t *chat,
    ngx_uint_t i);
static void ngx_http_callhq_setup_put(PGresult *res);


static ngx_http_callhq_setup_t  ngx_http_callhq_setups[NGX_HTTP_CALLHQ_SETUPS];
static ngx_uint_t               ngx_http_callhq_setup_next;


/*
 * $1 session, $2 callhq_max_prompt_size (the session's variables fill the
 * prompts).  The assistant's model, or the session's inline one; the
 * prompts as upstream messages (developer sent as system) and as stored
 * with the chat; shared says they are the assistant's alone.
 */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_setup_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_SETUP, "callhq_turn_setup",
    "with a as ("
    " select case when a.id is not null then a.model"
    " else s.assistant->'model' end as model, a.id, a.xmin::text as version,"
    " case when a.id is null then s.assistant end as inline,"
    " coalesce(s.assistant_overrides->'variableValues', '{}') as vars,"
    " case when coalesce(s.assistant->'server'->>'url', '') <> ''"
    " or coalesce(a.server->>'url', '') <> '' then 'off' else 'on' end"
    " as quiet"
    " from callhq.sessions s"
    " left join callhq.assistants a on a.id = s.assistant_id"
    " where s.id = $1::uuid),"
    " p as ("
    " select case when jsonb_typeof(a.model->'messages') is distinct from"
    " 'array' then '[]'::jsonb when a.vars = '{}' then a.model->'messages'"
    " else callhq.fill_messages(a.model->'messages', a.vars, $2::bigint)"
    " end as filled"
    " from a)"
    " select a.model->>'model', callhq.chat_params(a.model),"
    " (select string_agg('{\"role\":'"
    " || to_jsonb(callhq.upstream_role(e.m->>'role'))::text"
    " || ',\"content\":' || case"
    " when jsonb_typeof(e.m->'content') = 'string'"
    " then (e.m->'content')::text"
    " else coalesce(callhq.json_compact(e.m->'content'), 'null') end"
    " || '}', ',' order by e.n)"
    " from jsonb_array_elements(p.filled) with ordinality e(m, n)),"
    " p.filled::text, jsonb_array_length(p.filled), a.quiet,"
    " a.inline::text,"
    " a.version, a.id is not null and a.inline is null and a.vars = '{}',"
    " a.id"
    " from a, p",
    2
};


/* the worker's copy for this version of the assistant, into pool */

ngx_int_t
ngx_http_callhq_setup_get(ngx_str_t *assistant, ngx_str_t *version,
    ngx_http_callhq_chat_t *chat, ngx_pool_t *pool)
{
    ngx_uint_t                i, n;
    ngx_str_t                *f;
    ngx_http_callhq_setup_t  *s;

    if (assistant->len == 0 || version->len == 0) {
        return NGX_DECLINED;
    }

    for (n = 0; n < NGX_HTTP_CALLHQ_SETUPS; n++) {
        s = &ngx_http_callhq_setups[n];

        if (s->pool == NULL
            || s->assistant.len != assistant->len
            || ngx_strncmp(s->assistant.data, assistant->data,
                           assistant->len) != 0)
        {
            continue;
        }

        if (s->version.len != version->len
            || ngx_strncmp(s->version.data, version->data, version->len) != 0)
        {
            return NGX_DECLINED;
        }

        /* copied: a newer version may replace the entry as the chat runs */
        for (i = 0; i < NGX_HTTP_CALLHQ_SETUP_FIELDS; i++) {
            f = ngx_http_callhq_setup_field(chat, i);
            f->len = s->field[i].len;
            f->data = ngx_pnalloc(pool, f->len + 1);
            if (f->data == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(f->data, s->field[i].data, f->len + 1);
        }

        ngx_str_null(&chat->assistant_inline);

        return NGX_OK;
    }

    return NGX_DECLINED;
}


void
ngx_http_callhq_setup_query(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_pg_query_t *q)
{
    q->stmt = &ngx_http_callhq_setup_stmt;
    q->values[0] = chat->session_z;
    q->values[1] = chat->max_prompt_z;
}


/*
 * The setup statement's answer into the chat (pointing into res, which
 * the chat keeps), and into the worker's copies when it is the
 * assistant's alone.  NGX_DECLINED: no model to call, or an error (the
 * prompts too big): callhq.chat_begin says what is wrong.
 */

ngx_int_t
ngx_http_callhq_setup_read(ngx_http_callhq_chat_t *chat, PGresult *res)
{
    ngx_uint_t  i;
    ngx_str_t  *f;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
        || PQnfields(res) != NGX_HTTP_CALLHQ_SETUP_COLUMNS)
    {
        return NGX_DECLINED;
    }

    for (i = 0; i < NGX_HTTP_CALLHQ_SETUP_FIELDS; i++) {
        f = ngx_http_callhq_setup_field(chat, i);

        if (PQgetisnull(res, 0, i)) {
            ngx_str_null(f);

        } else {
            f->data = (u_char *) PQgetvalue(res, 0, i);
            f->len = PQgetlength(res, 0, i);
        }
    }

    if (PQgetisnull(res, 0, NGX_HTTP_CALLHQ_SETUP_INLINE)) {
        ngx_str_null(&chat->assistant_inline);

    } else {
        chat->assistant_inline.data =
                 (u_char *) PQgetvalue(res, 0, NGX_HTTP_CALLHQ_SETUP_INLINE);
        chat->assistant_inline.len =
                 PQgetlength(res, 0, NGX_HTTP_CALLHQ_SETUP_INLINE);
    }

    /* a model to call is needed; else chat_begin names what is missing */
    if (chat->model.len == 0 || chat->params.len == 0) {
        return NGX_DECLINED;
    }

    if (PQgetvalue(res, 0, NGX_HTTP_CALLHQ_SETUP_SHARED)[0] == 't') {
        ngx_http_callhq_setup_put(res);
    }

    return NGX_OK;
}


/* a worker that exits frees its copies (the module may be unloaded next) */

void
ngx_http_callhq_setup_exit(void)
{
    ngx_uint_t  n;

    for (n = 0; n < NGX_HTTP_CALLHQ_SETUPS; n++) {
        if (ngx_http_callhq_setups[n].pool) {
            ngx_destroy_pool(ngx_http_callhq_setups[n].pool);
            ngx_http_callhq_setups[n].pool = NULL;
        }
    }
}


/* the chat's member for a column */

static ngx_str_t *
ngx_http_callhq_setup_field(ngx_http_callhq_chat_t *chat, ngx_uint_t i)
{
    switch (i) {

    case NGX_HTTP_CALLHQ_SETUP_MODEL:
        return &chat->model;

    case NGX_HTTP_CALLHQ_SETUP_PARAMS:
        return &chat->params;

    case NGX_HTTP_CALLHQ_SETUP_PROMPTS:
        return &chat->prompts;

    case NGX_HTTP_CALLHQ_SETUP_PROMPTS_JSON:
        return &chat->prompts_json;

    case NGX_HTTP_CALLHQ_SETUP_QUIET:
        return &chat->quiet;

    default: /* NGX_HTTP_CALLHQ_SETUP_PROMPT_COUNT */
        return &chat->prompt_count;
    }
}


/* a copy of the statement's answer, in place of the assistant's older one */

static void
ngx_http_callhq_setup_put(PGresult *res)
{
    u_char                   *p;
    size_t                    len;
    ngx_str_t                 id;
    ngx_uint_t                i, n;
    ngx_pool_t               *pool;
    ngx_http_callhq_setup_t  *s;

    id.data = (u_char *) PQgetvalue(res, 0, NGX_HTTP_CALLHQ_SETUP_ASSISTANT);
    id.len = PQgetlength(res, 0, NGX_HTTP_CALLHQ_SETUP_ASSISTANT);

    len = id.len
          + PQgetlength(res, 0, NGX_HTTP_CALLHQ_SETUP_VERSION);

    for (i = 0; i < NGX_HTTP_CALLHQ_SETUP_FIELDS; i++) {
        len += PQgetlength(res, 0, i) + 1;
    }

    /* the assistant's slot, else the next one in turn */
    s = NULL;

    for (n = 0; n < NGX_HTTP_CALLHQ_SETUPS; n++) {
        if (ngx_http_callhq_setups[n].pool
            && ngx_http_callhq_setups[n].assistant.len == id.len
            && ngx_strncmp(ngx_http_callhq_setups[n].assistant.data, id.data,
                           id.len) == 0)
        {
            s = &ngx_http_callhq_setups[n];
            break;
        }
    }

    if (s == NULL) {
        s = &ngx_http_callhq_setups[ngx_http_callhq_setup_next];
        ngx_http_callhq_setup_next = (ngx_http_callhq_setup_next + 1)
                                     % NGX_HTTP_CALLHQ_SETUPS;
    }

    pool = ngx_create_pool(ngx_max(len + 256, NGX_MIN_POOL_SIZE),
                           ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    if (s->pool) {
        ngx_destroy_pool(s->pool);
    }

    s->pool = pool;

    s->assistant.data = p;
    s->assistant.len = id.len;
    p = ngx_cpymem(p, id.data, id.len);

    s->version.data = p;
    s->version.len = PQgetlength(res, 0, NGX_HTTP_CALLHQ_SETUP_VERSION);
    p = ngx_cpymem(p, PQgetvalue(res, 0, NGX_HTTP_CALLHQ_SETUP_VERSION),
                   s->version.len);

    for (i = 0; i < NGX_HTTP_CALLHQ_SETUP_FIELDS; i++) {
        s->field[i].data = p;
        s->field[i].len = PQgetlength(res, 0, i);
        p = ngx_cpymem(p, PQgetvalue(res, 0, i), s->field[i].len);
        *p++ = '\0';
    }
}
