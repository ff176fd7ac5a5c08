
/*
 * ngx_http_callhq_module: persistent chat sessions for language model
 * assistants, served by nginx from PostgreSQL.
 */


#ifndef _NGX_HTTP_CALLHQ_MODULE_H_INCLUDED_
#define _NGX_HTTP_CALLHQ_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_callhq_pg.h"
#include "ngx_http_callhq_json.h"


/*
 * Every prepared statement's index, chosen here: each is a bit in a
 * connection's mask of the statements it has prepared (so below 64).
 */
typedef enum {
    /* the REST resources, ngx_http_callhq_api.c */
    NGX_HTTP_CALLHQ_STMT_ASSISTANT_CREATE = 0,
    NGX_HTTP_CALLHQ_STMT_ASSISTANT_LIST = 1,
    NGX_HTTP_CALLHQ_STMT_ASSISTANT_GET = 2,
    NGX_HTTP_CALLHQ_STMT_ASSISTANT_UPDATE = 3,
    NGX_HTTP_CALLHQ_STMT_ASSISTANT_DELETE = 4,
    NGX_HTTP_CALLHQ_STMT_SESSION_CREATE = 5,
    NGX_HTTP_CALLHQ_STMT_SESSION_LIST = 6,
    NGX_HTTP_CALLHQ_STMT_SESSION_GET = 7,
    NGX_HTTP_CALLHQ_STMT_SESSION_UPDATE = 8,
    NGX_HTTP_CALLHQ_STMT_SESSION_DELETE = 9,
    NGX_HTTP_CALLHQ_STMT_CHAT_LIST = 10,
    NGX_HTTP_CALLHQ_STMT_CHAT_GET = 11,
    NGX_HTTP_CALLHQ_STMT_CHAT_DELETE = 12,

    /* chats: the general way, ngx_http_callhq_chat.c */
    NGX_HTTP_CALLHQ_STMT_CHAT_BEGIN = 13,
    NGX_HTTP_CALLHQ_STMT_CHAT_RECORD = 14,
    NGX_HTTP_CALLHQ_STMT_CHAT_RELEASE = 15,

    /* chats of a session, ngx_http_callhq_turn.c */
    NGX_HTTP_CALLHQ_STMT_TURN_TAKE = 16,
    NGX_HTTP_CALLHQ_STMT_TURN_HISTORY = 17,
    NGX_HTTP_CALLHQ_STMT_TURN_RECORD = 18,
    NGX_HTTP_CALLHQ_STMT_TURN_RELEASE = 19,
    NGX_HTTP_CALLHQ_STMT_TURN_RECORD_HEAD = 30,
    NGX_HTTP_CALLHQ_STMT_TURN_TAKE_HIT = 31,   /* the node has the history */
    NGX_HTTP_CALLHQ_STMT_TURN_SETUP = 37,      /* ngx_http_callhq_setup.c */
    NGX_HTTP_CALLHQ_STMT_TURN_RECORD_BATCH = 38,
    NGX_HTTP_CALLHQ_STMT_TURN_TAKE_BATCH = 39,
    NGX_HTTP_CALLHQ_STMT_TURN_TAKE_ALL = 63,   /* whole histories */
    NGX_HTTP_CALLHQ_STMT_TURN_RENEW = 20,      /* ngx_http_callhq_lease.c */
    NGX_HTTP_CALLHQ_STMT_METRICS_OUTBOX = 21,  /* ngx_http_callhq_metrics.c */

    /* phone numbers, ngx_http_callhq_api.c */
    NGX_HTTP_CALLHQ_STMT_PHONE_CREATE = 22,
    NGX_HTTP_CALLHQ_STMT_PHONE_LIST = 23,
    NGX_HTTP_CALLHQ_STMT_PHONE_GET = 24,
    NGX_HTTP_CALLHQ_STMT_PHONE_UPDATE = 25,
    NGX_HTTP_CALLHQ_STMT_PHONE_DELETE = 26,

    /* the SMS webhook, ngx_http_callhq_sms.c */
    NGX_HTTP_CALLHQ_STMT_SMS_NUMBER = 27,
    NGX_HTTP_CALLHQ_STMT_SMS_BEGIN = 28,
    NGX_HTTP_CALLHQ_STMT_SMS_APOLOGY = 29,

    /* webhook delivery, ngx_http_callhq_webhook.c */
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_CLAIM = 32,
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_DONE = 33,
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_SWEEP = 34,
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_STATS = 35,
    NGX_HTTP_CALLHQ_STMT_WEBHOOK_STATE = 36,

    /* the OpenAI surface, ngx_http_callhq_openai.c */
    NGX_HTTP_CALLHQ_STMT_OPENAI_BEGIN = 40,
    NGX_HTTP_CALLHQ_STMT_OPENAI_GET = 41,
    NGX_HTTP_CALLHQ_STMT_OPENAI_DELETE = 42,

    /* conversations and input items, ngx_http_callhq_openai_conv.c */
    NGX_HTTP_CALLHQ_STMT_OPENAI_INPUT_ITEMS = 50,
    NGX_HTTP_CALLHQ_STMT_CONV_CREATE = 51,
    NGX_HTTP_CALLHQ_STMT_CONV_GET = 52,
    NGX_HTTP_CALLHQ_STMT_CONV_UPDATE = 53,
    NGX_HTTP_CALLHQ_STMT_CONV_DELETE = 54,
    NGX_HTTP_CALLHQ_STMT_CONV_ITEMS = 55,
    NGX_HTTP_CALLHQ_STMT_CONV_ITEMS_ADD = 56,
    NGX_HTTP_CALLHQ_STMT_CONV_ITEM_GET = 57,
    NGX_HTTP_CALLHQ_STMT_CONV_ITEM_DELETE = 58
} ngx_http_callhq_stmt_e;


/*
 * A method on a path (ngx_http_callhq_api.c): /<resource>, /<resource>/{id},
 * and, as resource "<resource>/<sub>", /<resource>/{id}/<sub> and
 * /<resource>/{id}/<sub>/{item}; item counts the ids.
 */
typedef struct {
    ngx_str_t                      resource;
    ngx_uint_t                     item;       /* ids in the path: 0-2 */
    ngx_uint_t                     method;
    ngx_http_callhq_pg_stmt_t      stmt;       /* no sql: a chat to run */
} ngx_http_callhq_route_t;


typedef struct {
    ngx_http_callhq_pg_conf_t      pg;
    ngx_http_callhq_pg_pool_t     *pool;       /* this worker's */
    ssize_t                        history_size;
    ngx_shm_zone_t                *history;    /* callhq_history_cache */
} ngx_http_callhq_main_conf_t;


typedef struct {
    ngx_flag_t                     api;
    ngx_flag_t                     openai;     /* callhq_openai */
    time_t                         session_expiration;
    size_t                         max_body_size;
    size_t                         max_reply_size;
    ngx_str_t                      model_location;
    ngx_msec_t                     turn_timeout;
    ngx_msec_t                     turn_recheck;   /* a waiter looks again */
    time_t                         turn_lease;
    ngx_msec_t                     record_retry;
    ngx_msec_t                     metrics_db_interval;
    ngx_uint_t                     context_messages;
    size_t                         context_bytes;
    ngx_uint_t                     max_variables;
    size_t                         max_variable_size;
    size_t                         max_prompt_size;
    size_t                         max_list_size;
    ngx_str_t                      opts;       /* settings, as JSON for SQL */
} ngx_http_callhq_loc_conf_t;


/* a growing byte string in a pool */
typedef struct {
    u_char                        *data;
    size_t                         len;
    size_t                         size;
} ngx_http_callhq_text_t;


#define NGX_HTTP_CALLHQ_CONTEXT_PARTS  8

/* the members of a chat's body noted by its one scan */
enum {
    NGX_HTTP_CALLHQ_WANT_SESSION = 0,
    NGX_HTTP_CALLHQ_WANT_INPUT,
    NGX_HTTP_CALLHQ_WANT_STREAM,
    NGX_HTTP_CALLHQ_WANT_NAME,
    NGX_HTTP_CALLHQ_WANT_METADATA,
    NGX_HTTP_CALLHQ_CHAT_WANTS
};
#define NGX_HTTP_CALLHQ_WAIT_ID_LEN    36      /* a session id, as text */


/* a chat waiting for its session's turn (ngx_http_callhq_wait.c) */
typedef struct {
    ngx_queue_t                    queue;
    ngx_event_t                   *event;      /* posted when woken */
    ngx_uint_t                     asked;      /* when the take was sent */
    ngx_uint_t                     ticket;     /* its place in line */
    u_char                         session[NGX_HTTP_CALLHQ_WAIT_ID_LEN];
    unsigned                       waiting:1;  /* in the list */
} ngx_http_callhq_waiter_t;


/* a session's turn this worker holds (ngx_http_callhq_lease.c) */
typedef struct {
    ngx_queue_t                    queue;
    ngx_msec_t                     due;        /* its next renewal */
    time_t                         lease;
    u_char                         session[NGX_HTTP_CALLHQ_WAIT_ID_LEN];
    u_char                         chat[NGX_HTTP_CALLHQ_WAIT_ID_LEN];
    unsigned                       held:1;
} ngx_http_callhq_lease_t;

typedef struct ngx_http_callhq_chat_s    ngx_http_callhq_chat_t;


/* a tool call of the model's reply (ngx_http_callhq_tools.c) */
typedef struct {
    ngx_int_t                      index;      /* the model's, in a stream */
    ngx_uint_t                     output_index;   /* its Response item's */
    ngx_str_t                      id;         /* UTF-8, as all three */
    ngx_str_t                      name;
    ngx_http_callhq_text_t         args;
    unsigned                       open:1;     /* streamed, not done yet */
} ngx_http_callhq_call_t;

#define ngx_http_callhq_chat_called(chat)                                     \
    ((chat)->calls != NULL && (chat)->calls->nelts != 0)


/* a chat's way, in order; an early end skips to the last */
typedef enum {
    NGX_HTTP_CALLHQ_CHAT_TAKING = 0,   /* taking the turn, or waiting */
    NGX_HTTP_CALLHQ_CHAT_UPSTREAM,     /* the model's subrequest runs */
    NGX_HTTP_CALLHQ_CHAT_ANSWERED,     /* it is done: reply and status */
    NGX_HTTP_CALLHQ_CHAT_ENDED         /* recorded or turn given back */
} ngx_http_callhq_chat_state_e;
typedef struct ngx_http_callhq_record_s  ngx_http_callhq_record_t;


typedef struct {
    ngx_http_callhq_pg_query_t     query;
    ngx_str_t                      resource;
    ngx_str_t                      id;
    ngx_str_t                      sub;        /* /{id}/<sub>/{item} */
    ngx_str_t                      item;
    ngx_uint_t                     status;
    ngx_http_callhq_chat_t        *chat;
    u_char                         key_hash[2 + 64 + 1];   /* \x + hex */
    size_t                         body_limit;
    off_t                          body_size;
    ngx_http_callhq_text_t         body;       /* kept in memory, as read */
    unsigned                       body_reading:1;     /* by our filter */
    unsigned                       body_too_large:1;
    unsigned                       cleanup_added:1;
    unsigned                       subrequest:1;           /* our model call */
    unsigned                       openai:1;   /* callhq_openai's */
} ngx_http_callhq_ctx_t;


struct ngx_http_callhq_chat_s {
    ngx_http_callhq_chat_state_e   state;
    ngx_http_request_t            *request;    /* NULL once it is gone */
    ngx_http_request_t            *sr;
    ngx_http_callhq_loc_conf_t    *conf;
    ngx_str_t                      body;       /* the client's JSON */

    /* a chat of a session in two statements (ngx_http_callhq_turn.c) */
    ngx_str_t                      session_arg;    /* in the body */
    ngx_str_t                      input;          /* its JSON string */
    ngx_str_t                      name;           /* text, or NULL */
    ngx_str_t                      metadata;       /* JSON, or NULL */
    char                          *session_z;
    char                          *lease_z;
    char                          *max_msgs_z;
    char                          *max_bytes_z;
    char                          *max_prompt_z;
    char                          *cached_z;   /* the version cached */
    char                          *turn_z;     /* the chat's id, taking */

    /* from the take statement or callhq.chat_begin(), in their results */
    PGresult                      *begun;
    PGresult                      *reread;     /* the history read again */
    PGresult                      *setup_res;  /* the model and prompts */
    ngx_str_t                      record;     /* JSON, given back to SQL */
    ngx_str_t                      params;     /* "model":..,"temperature":.. */
    ngx_str_t                      assistant_id;
    ngx_str_t                      assistant_inline;
    ngx_str_t                      next_seq;
    ngx_str_t                      epoch;
    ngx_str_t                      history;
    ngx_str_t                      hfrom;
    ngx_str_t                      hto;
    ngx_str_t                      prompts;
    ngx_str_t                      prompts_json;
    ngx_str_t                      prompt_count;
    ngx_str_t                      quiet;      /* "on": no webhook wanted */
    ngx_str_t                      context[NGX_HTTP_CALLHQ_CONTEXT_PARTS];
    ngx_uint_t                     ncontext;   /* the JSON array, in parts */
    ngx_str_t                      chat_id;
    ngx_str_t                      session_id;
    ngx_str_t                      org_id;
    ngx_str_t                      model;

    size_t                         upstream;   /* request body sent up */
    ngx_http_callhq_text_t         reply;      /* escaped JSON text (stream)
                                                  or the whole body */
    ngx_http_callhq_text_t         event;      /* SSE bytes of a cut event */
    ngx_chain_t                   *held;       /* the model's, not framed */
    ngx_chain_t                   *free;       /* frame buffers, sent */
    ngx_chain_t                   *busy;       /* frame buffers, sending */
    ngx_buf_t                     *frame;      /* the one being written */
    ngx_array_t                   *calls;      /* ngx_http_callhq_call_t */
    size_t                         calls_size; /* their arguments' bytes */
    ngx_int_t                      prompt_tokens;
    ngx_int_t                      completion_tokens;
    ngx_uint_t                     upstream_status;
    ngx_int_t                      sr_rc;
    ngx_msec_t                     start;
    ngx_msec_t                     upstream_time;
    ngx_msec_t                     first_delta;    /* when it went out */
    ngx_uint_t                     openai_seq;     /* its next event's */
    ngx_uint_t                     openai_items;   /* output items begun */

    ngx_event_t                    retry;      /* waiting for the turn */
    ngx_http_callhq_waiter_t       waiter;
    ngx_msec_t                     wait_start;

    ngx_http_callhq_lease_t        lease;      /* the turn, renewed */
    ngx_http_callhq_record_t      *rec;        /* recording in flight */
    ngx_str_t                      result;     /* the recorded chat */
    const char                    *chat_status;

    unsigned                       stream:1;
    unsigned                       responses:1;
    unsigned                       sms:1;      /* answered in TwiML */
    unsigned                       sms_late:1; /* ... empty: texted later */
    unsigned                       openai:1;   /* POST /responses */
    unsigned                       nostore:1;  /* "store": false */
    unsigned                       fast:1;     /* two statements */
    unsigned                       stale:1;    /* history to read again */
    unsigned                       cacheable:1;
    unsigned                       take_hit:1; /* took without the history */
    unsigned                       setup:1;    /* model and prompts to read */
    unsigned                       sent_header:1;
    unsigned                       upstream_done:1;
    unsigned                       too_big:1;
    unsigned                       waited:1;   /* wait_start is set */
    unsigned                       openai_msg:1;   /* its message streamed */
    unsigned                       openai_msg_open:1;
};


/* ngx_http_callhq_query.c */
void ngx_http_callhq_run_query(ngx_http_request_t *r,
    ngx_http_callhq_ctx_t *ctx);
ngx_int_t ngx_http_callhq_send_pg_error(ngx_http_request_t *r,
    PGresult *res);
ngx_uint_t ngx_http_callhq_pg_transient(PGresult *res);

/* ngx_http_callhq_api.c */
ngx_int_t ngx_http_callhq_api_init(ngx_conf_t *cf);
ngx_int_t ngx_http_callhq_api_handler(ngx_http_request_t *r);

/* ngx_http_callhq_chat.c */
void ngx_http_callhq_chat_handler(ngx_http_request_t *r,
    ngx_http_callhq_ctx_t *ctx, ngx_str_t *body,
    ngx_http_callhq_json_want_t *want);
ngx_int_t ngx_http_callhq_chat_precontent(ngx_http_request_t *r);
void ngx_http_callhq_chat_sms(ngx_http_request_t *r,
    ngx_http_callhq_ctx_t *ctx, ngx_str_t *form);

/* ngx_http_callhq_sms.c */
ngx_int_t ngx_http_callhq_sms_repeat(ngx_http_request_t *r, PGresult *res);
ngx_int_t ngx_http_callhq_sms_answer(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);
ngx_int_t ngx_http_callhq_sms_fail(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);

/* ngx_http_callhq_twiml.c */
ngx_int_t ngx_http_callhq_twiml_send(ngx_http_request_t *r, ngx_str_t *text);
ngx_int_t ngx_http_callhq_twiml_early(ngx_http_request_t *r);

/* ngx_http_callhq_answer.c */
ngx_int_t ngx_http_callhq_answer(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);
ngx_int_t ngx_http_callhq_answer_delta(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *delta, ngx_chain_t ***last);
ngx_int_t ngx_http_callhq_answer_call(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_http_callhq_call_t *call,
    ngx_str_t *delta, ngx_chain_t ***last);
ngx_int_t ngx_http_callhq_answer_start(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_chain_t ***last);
ngx_int_t ngx_http_callhq_answer_write(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, u_char *data, size_t len,
    ngx_chain_t ***last);

/* ngx_http_callhq_openai.c */
extern ngx_http_callhq_route_t    ngx_http_callhq_openai_routes[];
extern ngx_http_callhq_pg_stmt_t  ngx_http_callhq_openai_begin_stmt;
ngx_int_t ngx_http_callhq_openai_error(ngx_http_request_t *r,
    ngx_uint_t status, u_char *msg, size_t len, const char *param,
    const char *code);
ngx_uint_t ngx_http_callhq_openai_nostore(ngx_str_t *body);
json_t *ngx_http_callhq_openai_response(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, const char *status);
json_t *ngx_http_callhq_openai_text(ngx_http_callhq_chat_t *chat);
ngx_int_t ngx_http_callhq_openai_answer(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);
ngx_int_t ngx_http_callhq_openai_dump(ngx_http_request_t *r, json_t *json,
    ngx_str_t *out);

json_t *ngx_http_callhq_openai_message(ngx_http_callhq_chat_t *chat,
    const char *status);
json_t *ngx_http_callhq_openai_call(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_call_t *call, const char *status);

/* ngx_http_callhq_openai_conv.c */
extern ngx_http_callhq_route_t    ngx_http_callhq_openai_conv_routes[];

/* ngx_http_callhq_openai_stream.c */
ngx_int_t ngx_http_callhq_openai_delta(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_str_t *delta, ngx_chain_t ***last);
ngx_int_t ngx_http_callhq_openai_call_delta(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_http_callhq_call_t *call,
    ngx_str_t *delta, ngx_chain_t ***last);

/* ngx_http_callhq_tools.c */
ngx_int_t ngx_http_callhq_tools_add(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, u_char *p, u_char *end,
    ngx_chain_t ***last);
char *ngx_http_callhq_tools_json(ngx_http_callhq_chat_t *chat,
    ngx_pool_t *pool);
ngx_int_t ngx_http_callhq_openai_last(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);

/* ngx_http_callhq_turn.c */
void ngx_http_callhq_turn_wants(ngx_http_callhq_json_want_t *want);
ngx_int_t ngx_http_callhq_turn_body(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_json_want_t *want);
ngx_int_t ngx_http_callhq_turn_take(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat, ngx_http_callhq_pg_query_t *q,
    u_char *key_hash);
ngx_int_t ngx_http_callhq_turn_taken(ngx_http_callhq_chat_t *chat,
    PGresult *res, ngx_pool_t *pool);
void ngx_http_callhq_turn_history(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_pg_query_t *q, ngx_pool_t *pool);
ngx_int_t ngx_http_callhq_turn_history_read(ngx_http_callhq_chat_t *chat,
    PGresult *res);
void ngx_http_callhq_turn_context(ngx_http_callhq_chat_t *chat);
ngx_int_t ngx_http_callhq_turn_record(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_pg_query_t *q, ngx_pool_t *pool, ngx_uint_t want_chat);
ngx_int_t ngx_http_callhq_turn_recorded(PGresult *res,
    ngx_http_callhq_pg_query_t *q, ngx_pool_t *pool, ngx_str_t *head);

/* ngx_http_callhq_setup.c */
ngx_int_t ngx_http_callhq_setup_get(ngx_str_t *assistant, ngx_str_t *version,
    ngx_http_callhq_chat_t *chat, ngx_pool_t *pool);
void ngx_http_callhq_setup_query(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_pg_query_t *q);
ngx_int_t ngx_http_callhq_setup_read(ngx_http_callhq_chat_t *chat,
    PGresult *res);
void ngx_http_callhq_setup_exit(void);

/* ngx_http_callhq_history.c */
ngx_int_t ngx_http_callhq_history_zone(ngx_conf_t *cf, size_t size);
ngx_uint_t ngx_http_callhq_history_enabled(void);
ngx_int_t ngx_http_callhq_history_peek(ngx_str_t *session,
    ngx_int_t *next_seq, ngx_int_t *epoch);
ngx_int_t ngx_http_callhq_history_get(ngx_str_t *session,
    ngx_int_t next_seq, ngx_int_t epoch, ngx_pool_t *pool, ngx_str_t *out);
void ngx_http_callhq_history_put(ngx_str_t *session, ngx_int_t epoch,
    ngx_int_t from, ngx_int_t next_seq, ngx_str_t *parts, ngx_uint_t n);
ngx_int_t ngx_http_callhq_turn_release(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_pg_query_t *q, ngx_pool_t *pool);
ngx_int_t ngx_http_callhq_turn_record_json(ngx_http_callhq_chat_t *chat,
    ngx_pool_t *pool, ngx_str_t *out);

/* ngx_http_callhq_wait.c */
void ngx_http_callhq_wait_ask(ngx_http_callhq_waiter_t *w);
ngx_int_t ngx_http_callhq_wait_add(ngx_http_callhq_waiter_t *w,
    u_char *session, size_t len, ngx_event_t *ev, ngx_log_t *log);
void ngx_http_callhq_wait_remove(ngx_http_callhq_waiter_t *w);
void ngx_http_callhq_wait_given(ngx_str_t *session);
void ngx_http_callhq_wait_notified(const char *payload, int pid);
void ngx_http_callhq_wait_wake_all(ngx_log_t *log);

/* ngx_http_callhq_lease.c */
void ngx_http_callhq_lease_hold(ngx_http_callhq_lease_t *l,
    ngx_str_t *session, ngx_str_t *chat, time_t lease);
void ngx_http_callhq_lease_move(ngx_http_callhq_lease_t *from,
    ngx_http_callhq_lease_t *to);
void ngx_http_callhq_lease_drop(ngx_http_callhq_lease_t *l);
void ngx_http_callhq_lease_exit(ngx_log_t *log);

/* ngx_http_callhq_metrics.c: counters of these events */
enum {
    NGX_HTTP_CALLHQ_M_PG_UNAVAILABLE = 0,
    NGX_HTTP_CALLHQ_M_PG_EXHAUSTED,
    NGX_HTTP_CALLHQ_M_PG_TIMEOUT,
    NGX_HTTP_CALLHQ_M_TURN_WAITS,
    NGX_HTTP_CALLHQ_M_TURN_CONFLICTS,
    NGX_HTTP_CALLHQ_M_RECORD_RETRIES,
    NGX_HTTP_CALLHQ_M_RECORDS_DROPPED,
    NGX_HTTP_CALLHQ_M_SESSIONS_CREATED,
    NGX_HTTP_CALLHQ_M_SESSIONS_EXPIRED,
    NGX_HTTP_CALLHQ_M_WEBHOOKS_DELIVERED,
    NGX_HTTP_CALLHQ_M_WEBHOOKS_FAILED,
    NGX_HTTP_CALLHQ_M_SMS_RECEIVED,
    NGX_HTTP_CALLHQ_M_SMS_SENT,
    NGX_HTTP_CALLHQ_M_SMS_FAILED,
    NGX_HTTP_CALLHQ_M_HISTORY_HITS,
    NGX_HTTP_CALLHQ_M_HISTORY_MISSES,
    NGX_HTTP_CALLHQ_M_HISTORY_EVICTED,
    NGX_HTTP_CALLHQ_M_EVENTS
};

ngx_int_t ngx_http_callhq_metrics_zone(ngx_conf_t *cf);
char *ngx_http_callhq_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_callhq_metrics_worker(ngx_cycle_t *cycle);
void ngx_http_callhq_metrics_worker_exit(void);
void ngx_http_callhq_metrics_event(ngx_uint_t event);
void ngx_http_callhq_metrics_add(ngx_uint_t event, ngx_uint_t n);
void ngx_http_callhq_metrics_webhook(ngx_uint_t delivered, ngx_msec_t ms);
void ngx_http_callhq_metrics_chat(ngx_http_callhq_chat_t *chat,
    ngx_msec_t ms);

/* ngx_http_callhq_filter.c */
ngx_int_t ngx_http_callhq_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_callhq_text_add(ngx_pool_t *pool,
    ngx_http_callhq_text_t *t, u_char *data, size_t len);
ngx_int_t ngx_http_callhq_reply_parse(ngx_http_request_t *r,
    ngx_http_callhq_chat_t *chat);


extern ngx_module_t  ngx_http_callhq_module;
extern ngx_module_t  ngx_http_callhq_sms_module;

extern ngx_http_callhq_pg_stmt_t  ngx_http_callhq_sms_begin_stmt;


#endif /* _NGX_HTTP_CALLHQ_MODULE_H_INCLUDED_ */
