
/*
 * ngx_http_callhq_module: a chat of a session in two plain statements.
 *
 * POST /chat {sessionId, input} is the hot path, and the database is the
 * bound: the body is checked here, in C, by the scanner that read it, and
 * PostgreSQL runs two prepared statements of plain SQL, no PL/pgSQL.  The
 * first takes the session's turn and returns what the model needs (the
 * assistant's settings and prompts, the history as ready JSON text); it
 * commits without waiting for a WAL flush, since losing it in a crash
 * only frees the turn.  The second appends the user turn and the reply,
 * writes the chat and gives the turn back, as durably as the server is
 * configured; it is idempotent on the chat id.
 *
 * Any other body, and any answer these statements cannot give (no such
 * key or session, a closed one, an assistant without a model, a session
 * whose history changed while the chat ran), goes the general way:
 * callhq.chat_begin and callhq.chat_record, which say exactly what is
 * wrong.  This file only fills in queries and reads their results; the
 * chat (ngx_http_callhq_chat.c) runs them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/rand.h>

#include "ngx_http_callhq_module.h"
#include "ngx_http_callhq_json.h"


/* an ngx_str_t as a libpq parameter */
#define ngx_http_callhq_turn_z(pool, s)                                       \
    ngx_http_callhq_param(pool, (s)->data, (s)->len, 0)


/* the columns of the take statement */
enum {
    NGX_HTTP_CALLHQ_TAKE_STATE = 0,
    NGX_HTTP_CALLHQ_TAKE_CHAT,
    NGX_HTTP_CALLHQ_TAKE_ORG,
    NGX_HTTP_CALLHQ_TAKE_ASSISTANT,
    NGX_HTTP_CALLHQ_TAKE_OWN,
    NGX_HTTP_CALLHQ_TAKE_NEXT_SEQ,
    NGX_HTTP_CALLHQ_TAKE_EPOCH,
    NGX_HTTP_CALLHQ_TAKE_HISTORY,
    NGX_HTTP_CALLHQ_TAKE_HFROM,
    NGX_HTTP_CALLHQ_TAKE_HTO,
    NGX_HTTP_CALLHQ_TAKE_VERSION,
    NGX_HTTP_CALLHQ_TAKE_SESSION,
    NGX_HTTP_CALLHQ_TAKE_CACHED,
    NGX_HTTP_CALLHQ_TAKE_COLUMNS
};


static ngx_int_t ngx_http_callhq_turn_members(ngx_str_t *body,
    ngx_http_callhq_json_want_t *want, ngx_uint_t n);
static ngx_int_t ngx_http_callhq_turn_uuid(ngx_str_t *s);
static void ngx_http_callhq_turn_remember(ngx_http_callhq_chat_t *chat,
    ngx_int_t next, ngx_int_t epoch);
static void ngx_http_callhq_turn_col(PGresult *res, int col, ngx_str_t *out);
static char *ngx_http_callhq_turn_new_id(ngx_pool_t *pool);
static ngx_uint_t ngx_http_callhq_turn_plain(ngx_http_callhq_chat_t *chat);
static ngx_uint_t ngx_http_callhq_turn_plain_string(u_char *p, size_t len);
static ngx_int_t ngx_http_callhq_turn_head(ngx_http_callhq_pg_query_t *q,
    ngx_pool_t *pool, ngx_str_t *head);


/*
 * The session's history as the model is sent it, newest messages kept
 * when callhq_context_messages ($m) or callhq_context_bytes ($b) bound
 * it; developer messages go as system.  Read below the seq the turn was
 * taken at ($n), and only if cond holds.
 */
#define NGX_HTTP_CALLHQ_HISTORY(from, s, n, m, b, cond)                       \
    "select string_agg(case when x.role = 'developer' "                       \
    "then callhq.message_raw('system', x.content) else x.raw end, ',' "       \
    "order by x.seq) as history, min(x.seq) as hfrom, max(x.seq) as hto "     \
    "from (select m.seq, m.role, m.raw, m.content, "                          \
    "sum(octet_length(m.raw)) over (order by m.seq desc "                     \
    "rows unbounded preceding) as total "                                     \
    "from " from "callhq.messages m "                                         \
    "where m.session_id = " s " and m.seq < " n cond " "                      \
    "order by m.seq desc limit nullif(" m ", 0)) x "                          \
    "where " b " = 0 or x.total <= " b


/* the same, unbounded: a concatenation in seq order, no window, no sort */
#define NGX_HTTP_CALLHQ_HISTORY_ALL(from, s, n, cond)                         \
    "select string_agg(case when m.role = 'developer' "                       \
    "then callhq.message_raw('system', m.content) else m.raw end, ',' "       \
    "order by m.seq) as history, min(m.seq) as hfrom, max(m.seq) as hto "     \
    "from " from "callhq.messages m "                                         \
    "where m.session_id = " s " and m.seq < " n cond


/* the node's history cache has the session at this version: $6, $7 */
#define NGX_HTTP_CALLHQ_UNCACHED                                              \
    " and (t.next_seq <> $6::int or t.history_epoch <> $7::int)"

/* the session's turn is free (or its holder's lease ran out) */
#define NGX_HTTP_CALLHQ_FREE                                                  \
    "s.busy_chat is null or s.busy_until < now()"


/*
 * The take's UPDATE, as CTE t: the chat (its id), the lease's seconds,
 * the key's hash and the session, as parameters or a batch's columns (the
 * batch's p, in from, and its more columns returned).  It either takes
 * the turn (the chat's id in busy_chat) or, when another chat has it,
 * marks the session as waited for, so that the chat holding it notifies
 * callhq_turn as it gives it back; PostgreSQL checks its conditions again
 * on the row a concurrent chat leaves behind.  What the model is sent
 * besides the history (its name, parameters and the prompts) is the
 * worker's, by the assistant's row version; a session with its own
 * assistant or variables (own) has it read by the setup statement.
 */
#define NGX_HTTP_CALLHQ_TAKE_T(chat, lease, key, session, from, more)        \
    "t as ("                                                                  \
    " update callhq.sessions s"                                               \
    " set busy_chat = case when " NGX_HTTP_CALLHQ_FREE                        \
    " then " chat " else s.busy_chat end,"                                    \
    " busy_until = case when " NGX_HTTP_CALLHQ_FREE                           \
    " then now() + make_interval(secs => " lease ") else s.busy_until end,"   \
    " turn_waiters = s.turn_waiters or not (" NGX_HTTP_CALLHQ_FREE ")"        \
    " from " from "callhq.api_keys k"                                         \
    " where k.key_hash = " key " and s.id = " session                         \
    " and s.org_id = k.org_id"                                                \
    " and s.status = 'active' and s.expires_at > now()"                       \
    " returning " more "s.id, s.org_id, s.busy_chat = " chat " as took,"      \
    " s.next_seq, s.history_epoch, s.assistant_id,"                           \
    " s.assistant is not null or coalesce(s.assistant_overrides"              \
    "->'variableValues', '{}') <> '{}' as own,"                               \
    " (select a.xmin::text from callhq.assistants a"                          \
    " where a.id = s.assistant_id) as version,"                               \
    " set_config('synchronous_commit', 'off', true))"


/*
 * $1 key hash, $2 session, $3 lease seconds, $4 and $5 the context bounds,
 * $6 and $7 the version of the history the node has cached (0, 0: none),
 * $8 the chat's id.  No row comes back for a key or a session this path
 * does not serve (callhq.chat_begin says why).  The history is read with
 * the statement's snapshot: its last seq (hto) tells whether it saw all
 * of it (a chat that ended just before this one took the turn may be
 * newer).
 */
#define NGX_HTTP_CALLHQ_TAKE(h, history, from)                                \
    "with " NGX_HTTP_CALLHQ_TAKE_T("$8::uuid", "$3::int", "$1::bytea",        \
                                   "$2::uuid", "", "")                        \
    h                                                                         \
    " select case when t.took then 'ok' else 'busy' end,"                     \
    " $8::uuid, t.org_id, t.assistant_id, t.own, t.next_seq,"                 \
    " t.history_epoch, " history ", t.version, t.id,"                         \
    " not (true" NGX_HTTP_CALLHQ_UNCACHED ")"                                 \
    " from " from


/* the take that reads the history: its CTE, columns and join */
#define NGX_HTTP_CALLHQ_TAKE_READ(query)                                      \
    NGX_HTTP_CALLHQ_TAKE(", h as (" query ")", "h.history, h.hfrom, h.hto",   \
                         "t left join h on true")

static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_turn_take_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_TAKE, "callhq_turn_take",
    NGX_HTTP_CALLHQ_TAKE_READ(
        NGX_HTTP_CALLHQ_HISTORY("t, ", "$2::uuid", "t.next_seq", "$4::int",
                                "$5::int",
                                " and t.took" NGX_HTTP_CALLHQ_UNCACHED)),
    8
};


/* the same for a location whose context is the whole history */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_turn_take_all_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_TAKE_ALL, "callhq_turn_take_all",
    NGX_HTTP_CALLHQ_TAKE_READ(
        NGX_HTTP_CALLHQ_HISTORY_ALL("t, ", "$2::uuid", "t.next_seq",
                                    " and t.took" NGX_HTTP_CALLHQ_UNCACHED
                                    " and $4::int = 0 and $5::int = 0")),
    8
};


/*
 * The same when the node's history cache has the session: the history is
 * not read, nor planned for (a tenth of the take's cost); should the
 * session be at another version, the history statement reads it.
 */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_turn_take_hit_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_TAKE_HIT, "callhq_turn_take_hit",
    NGX_HTTP_CALLHQ_TAKE("",
        "case when $4::int = 0 and $5::int = 0 then null::text end,"
        " null::int, null::int", "t"),
    8
};


/*
 * The takes of chats that queued for a connection, when the node has
 * their histories (ngx_http_callhq_pg_batch.c): each parameter an array,
 * one element a chat, the sessions all different; the last column names
 * the chat a row is for.  The arrays go through a subquery that is not
 * pulled up, as the record's batch's do.
 */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_turn_take_batch_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_TAKE_BATCH, "callhq_turn_take_batch",
    "with p as (select p.* from (select $1::bytea[] a1, $2::uuid[] a2,"
    " $3::int[] a3, $4::int[] a4, $5::int[] a5, $6::int[] a6,"
    " $7::int[] a7, $8::uuid[] a8 offset 0) a,"
    " unnest(a1, a2, a3, a4, a5, a6, a7, a8) with ordinality"
    " as p(key, session, lease, m, b, cseq, cepoch, chat, ord)), "
    NGX_HTTP_CALLHQ_TAKE_T("p.chat", "p.lease", "p.key", "p.session", "p, ",
                           "p.ord, p.chat, p.m, p.b, p.cseq, p.cepoch, ")
    " select case when t.took then 'ok' else 'busy' end,"
    " t.chat, t.org_id, t.assistant_id, t.own, t.next_seq,"
    " t.history_epoch, case when t.m = 0 and t.b = 0 then null::text end,"
    " null::int, null::int, t.version, t.id,"
    " not (t.next_seq <> t.cseq or t.history_epoch <> t.cepoch), t.ord"
    " from t",
    8
};


/* takes queued for a connection: a session never twice in one */
static ngx_http_callhq_pg_batch_form_t  ngx_http_callhq_turn_take_form = {
    &ngx_http_callhq_turn_take_hit_stmt,
    &ngx_http_callhq_turn_take_batch_stmt, -1, 1
};


/* the history again, in a new snapshot: $1 session, $2 next seq, bounds */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_turn_history_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_HISTORY, "callhq_turn_history",
    NGX_HTTP_CALLHQ_HISTORY("", "$1::uuid", "$2::int", "$3::int", "$4::int",
                            ""),
    4
};


/*
 * The record's session UPDATE: the next seq past the turn's two
 * messages, the turn given back (its waiters notified, if any), on the
 * conditions that the chat still holds the turn and the history is the
 * one it was sent (a session, epoch and chat, as parameters or a batch's
 * columns from its p).
 */
#define NGX_HTTP_CALLHQ_RECORD_U(from, session, epoch, chat, more)          \
    " update callhq.sessions s"                                               \
    " set next_seq = s.next_seq + 2, updated_at = callhq.now_ms(),"           \
    " expires_at = case when s.renew_on_activity"                             \
    " then callhq.now_ms() + make_interval(secs => s.expiration_seconds)"     \
    " else s.expires_at end,"                                                 \
    " busy_chat = null, busy_until = null,"                                   \
    " turn_waiters = case when s.turn_waiters"                                \
    " then callhq.turn_notify(s.id) else false end"                           \
    from " where s.id = " session " and s.history_epoch = " epoch             \
    " and s.busy_chat = " chat                                                \
    " returning " more "s.next_seq - 2 as seq"


/*
 * $1 chat, $2 org, $3 session, $4 assistant, $5 history epoch, $6 name,
 * $7 input (a JSON string), $8 reply (a JSON string), $9 status,
 * $10 and $11 tokens, $12 metadata, $13 prompts, $14 their count,
 * $15 and $16 the history sent, $17 whether nobody listens for the
 * assistant's webhooks ("on", as the chat's setup read it); the chat's
 * row gives back what the answer needs (returned).
 *
 * Nothing is written unless the chat still holds the session's turn and
 * its history is the one sent: otherwise (a twin call, a PATCH, a lapsed
 * lease, a deleted session) no row comes back, and callhq.chat_record
 * sorts it out (a twin sent at the same moment fails on the chat's key
 * instead, the same way).  The messages go at the seq the statement's
 * snapshot shows (no other chat appends while this one holds the turn).
 * The session is updated after the chat is written (the main query reads
 * the chat first), so that chat.created is queued before session.updated,
 * on the same conditions, which PostgreSQL checks again on the newest
 * row: should the row have changed or gone since the snapshot, the
 * statement fails (callhq.record_lost) and nothing of it stays, the same
 * way; the chat needs no foreign key to its session.  The input and the
 * reply are parsed once, for the chat and its messages.  Webhook triggers
 * are told whether anyone listens (callhq.quiet), so that a chat costs
 * them nothing then (a server.url set while the chat ran counts from the
 * next chat on).  Chats waiting for the turn (another worker's, another
 * node's) are notified as it goes back, only if there are any.
 */
#define NGX_HTTP_CALLHQ_RECORD(returned)                                      \
    "with w as ("                                                             \
    " select set_config('callhq.quiet', $17::text, true) as quiet,"           \
    " s.assistant, s.next_seq,"                                               \
    " $7::jsonb as input, $8::jsonb as reply"                                 \
    " from callhq.sessions s where s.id = $3::uuid"                           \
    " and s.history_epoch = $5::int and s.busy_chat = $1::uuid),"             \
    " c as ("                                                                 \
    " insert into callhq.chats as c"                                          \
    " (id, org_id, assistant_id, assistant, session_id, name, input,"         \
    " messages, output, status, usage, metadata, prompt_count,"               \
    " history_from, history_to, created_at, updated_at)"                      \
    " select $1::uuid, $2::uuid,"                                             \
    " (select a.id from callhq.assistants a where a.id = $4::uuid),"          \
    " case when $4::uuid is null then w.assistant end,"                       \
    " $3::uuid, $6::text, w.input,"                                           \
    " $13::jsonb || jsonb_build_array(jsonb_build_object('role', 'user',"     \
    " 'content', w.input)),"                                                  \
    " jsonb_build_array(jsonb_build_object('role', 'assistant',"              \
    " 'content', w.reply)),"                                                  \
    " $9::text,"                                                              \
    " case when $10::int <> 0 or $11::int <> 0 then"                          \
    " jsonb_build_object('promptTokens', $10::int,"                           \
    " 'completionTokens', $11::int) end,"                                     \
    " $12::jsonb, $14::int, $15::int, $16::int,"                              \
    " callhq.now_ms(), callhq.now_ms()"                                       \
    " from w"                                                                 \
    " returning " returned "),"                                               \
    " u as (" NGX_HTTP_CALLHQ_RECORD_U("", "$3::uuid", "$5::int",             \
                                       "$1::uuid", "") "),"                   \
    " m as ("                                                                 \
    " insert into callhq.messages (session_id, seq, role, content, raw,"      \
    " tokens)"                                                                \
    " select $3::uuid, w.next_seq + v.n, v.role, v.content, v.raw, v.tokens"  \
    " from w, lateral (values (0, 'user', w.input,"                           \
    " '{\"role\":\"user\",\"content\":' || $7::text || '}', null::int),"      \
    " (1, 'assistant', w.reply,"                                              \
    " '{\"role\":\"assistant\",\"content\":' || $8::text || '}',"             \
    " nullif($11::int, 0))) v(n, role, content, raw, tokens))"                \
    " select c.returned, coalesce(u.seq, callhq.record_lost($3::uuid))"       \
    " from c left join u on true"


/* what the record returns of the chat: see ngx_http_callhq_turn_head() */
#define NGX_HTTP_CALLHQ_RECORD_RETURNED                                       \
    "callhq.ts(c.created_at) || ' ' || coalesce(c.assistant_id::text, '')"    \
    " as returned"


/*
 * The records of chats that queued for a connection, in one statement
 * (ngx_http_callhq_pg_batch.c): each parameter an array, one element a
 * chat, but for $17, which they share (only chats nobody listens to are
 * batched: their webhook events would not keep their order); the last
 * column names the chat a row is for.  Each chat is written on the same
 * conditions as alone; one whose session changed fails the batch, and its
 * chats record one by one.  The arrays go through a subquery that is not
 * pulled up (offset 0), so that the planner does not know how long they
 * are: knowing it, it planned each batch anew (1.7 ms, more than the
 * batch's execution), rather than the once that serves every batch.
 */
#define NGX_HTTP_CALLHQ_RECORD_BATCH                                          \
    "with p as (select p.* from (select $1::uuid[] a1, $2::uuid[] a2,"       \
    " $3::uuid[] a3, $4::uuid[] a4, $5::int[] a5, $6::text[] a6,"             \
    " $7::text[] a7, $8::text[] a8, $9::text[] a9, $10::int[] a10,"           \
    " $11::int[] a11, $12::jsonb[] a12, $13::jsonb[] a13, $14::int[] a14,"    \
    " $15::int[] a15, $16::int[] a16 offset 0) a,"                            \
    " unnest(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14,"    \
    " a15, a16) with ordinality"                                              \
    " as p(chat, org, session, assistant, epoch, name, input, reply,"         \
    " status, pt, ct, metadata, prompts, prompt_count, hfrom, hto, ord)),"    \
    " w as ("                                                                 \
    " select set_config('callhq.quiet', $17::text, true) as quiet, p.*,"      \
    " s.assistant as inline, s.next_seq,"                                     \
    " p.input::jsonb as ij, p.reply::jsonb as rj"                             \
    " from p join callhq.sessions s on s.id = p.session"                      \
    " and s.history_epoch = p.epoch and s.busy_chat = p.chat),"               \
    " c as ("                                                                 \
    " insert into callhq.chats as c"                                          \
    " (id, org_id, assistant_id, assistant, session_id, name, input,"         \
    " messages, output, status, usage, metadata, prompt_count,"               \
    " history_from, history_to, created_at, updated_at)"                      \
    " select w.chat, w.org,"                                                  \
    " (select a.id from callhq.assistants a where a.id = w.assistant),"       \
    " case when w.assistant is null then w.inline end,"                       \
    " w.session, w.name, w.ij,"                                               \
    " w.prompts || jsonb_build_array(jsonb_build_object('role', 'user',"      \
    " 'content', w.ij)),"                                                     \
    " jsonb_build_array(jsonb_build_object('role', 'assistant',"              \
    " 'content', w.rj)),"                                                     \
    " w.status,"                                                              \
    " case when w.pt <> 0 or w.ct <> 0 then"                                  \
    " jsonb_build_object('promptTokens', w.pt,"                               \
    " 'completionTokens', w.ct) end,"                                         \
    " w.metadata, w.prompt_count, w.hfrom, w.hto,"                            \
    " callhq.now_ms(), callhq.now_ms()"                                       \
    " from w"                                                                 \
    " returning c.id, " NGX_HTTP_CALLHQ_RECORD_RETURNED "),"                  \
    " u as (" NGX_HTTP_CALLHQ_RECORD_U(" from p", "p.session", "p.epoch",     \
                                       "p.chat", "s.id, ") "),"               \
    " m as ("                                                                 \
    " insert into callhq.messages (session_id, seq, role, content, raw,"      \
    " tokens)"                                                                \
    " select w.session, w.next_seq + v.n, v.role, v.content, v.raw,"          \
    " v.tokens"                                                               \
    " from w, lateral (values (0, 'user', w.ij,"                              \
    " '{\"role\":\"user\",\"content\":' || w.input || '}', null::int),"       \
    " (1, 'assistant', w.rj,"                                                 \
    " '{\"role\":\"assistant\",\"content\":' || w.reply || '}',"            \
    " nullif(w.ct, 0))) v(n, role, content, raw, tokens))"                    \
    " select c.returned, coalesce(u.seq, callhq.record_lost(w.session)),"     \
    " w.ord from w join c on c.id = w.chat left join u on u.id = w.session"

static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_turn_record_batch_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_RECORD_BATCH, "callhq_turn_record_batch",
    NGX_HTTP_CALLHQ_RECORD_BATCH, 17
};


/*
 * The chat's creation time and assistant: its JSON is built here
 * (ngx_http_callhq_turn_head()), as chat_head would print it; building
 * it in PostgreSQL, one large expression, was a tenth of a chat's cost.
 */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_turn_record_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_RECORD, "callhq_turn_record",
    NGX_HTTP_CALLHQ_RECORD(NGX_HTTP_CALLHQ_RECORD_RETURNED),
    17
};


/* chats queued for a connection: $17 shared, a session never twice */
static ngx_http_callhq_pg_batch_form_t  ngx_http_callhq_turn_record_form = {
    &ngx_http_callhq_turn_record_stmt,
    &ngx_http_callhq_turn_record_batch_stmt, 16, 2
};


/* the chat's JSON from PostgreSQL: what this file cannot print the same */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_turn_record_head_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_RECORD_HEAD, "callhq_turn_record_head",
    NGX_HTTP_CALLHQ_RECORD("callhq.chat_head(c)::text as returned"),
    17
};


/*
 * $1 session, $2 chat: the turn back, without waiting for a WAL flush,
 * and chats waiting for it notified
 */
static ngx_http_callhq_pg_stmt_t  ngx_http_callhq_turn_release_stmt = {
    NGX_HTTP_CALLHQ_STMT_TURN_RELEASE, "callhq_turn_release",
    "update callhq.sessions set busy_chat = null, busy_until = null,"
    " turn_waiters = case when turn_waiters then callhq.turn_notify(id)"
    " else false end"
    " where id = $1::uuid and busy_chat = $2::uuid"
    " returning set_config('synchronous_commit', 'off', true)",
    2
};


/* the members of a chat's body this file reads, in want order */
static ngx_str_t  ngx_http_callhq_turn_paths[][2] = {
    { ngx_string("sessionId"), ngx_null_string },
    { ngx_string("input"), ngx_null_string },
    { ngx_string("stream"), ngx_null_string },
    { ngx_string("name"), ngx_null_string },
    { ngx_string("metadata"), ngx_null_string }
};


/* what the one scan of a chat's body (ngx_http_callhq_api.c) notes */

void
ngx_http_callhq_turn_wants(ngx_http_callhq_json_want_t *want)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_CALLHQ_CHAT_WANTS; i++) {
        want[i].path = ngx_http_callhq_turn_paths[i];
    }
}


/*
 * Whether the body is one this file serves: {sessionId, input[, stream]
 * [, name][, metadata]} with a plain session id, a string input, a short
 * name without escapes and an object (or null) metadata.  Anything else
 * is NGX_DECLINED: callhq.chat_begin checks it and says what is wrong.
 */

ngx_int_t
ngx_http_callhq_turn_body(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_json_want_t *want)
{
    u_char                       *p;
    ngx_uint_t                    chars;
    ngx_http_callhq_json_want_t  *w;

    if (ngx_http_callhq_turn_members(&chat->body, want,
                                     NGX_HTTP_CALLHQ_CHAT_WANTS)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* sessionId */
    if (ngx_http_callhq_json_string(&want[NGX_HTTP_CALLHQ_WANT_SESSION],
                                    &chat->session_arg)
        != NGX_OK
        || ngx_http_callhq_turn_uuid(&chat->session_arg) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* input, as the client wrote it: a JSON string */
    w = &want[NGX_HTTP_CALLHQ_WANT_INPUT];

    if (w->value == NULL || w->value[0] != '"') {
        return NGX_DECLINED;
    }

    chat->input.data = w->value;
    chat->input.len = w->end - w->value;

    /* name: at most 40 characters, as text */
    w = &want[NGX_HTTP_CALLHQ_WANT_NAME];

    if (w->value && !ngx_http_callhq_json_is(w, "null")) {

        if (ngx_http_callhq_json_string(w, &chat->name) != NGX_OK
            || ngx_strlchr(chat->name.data,
                           chat->name.data + chat->name.len, '\\')
               != NULL)
        {
            return NGX_DECLINED;
        }

        chars = 0;

        for (p = chat->name.data; p < chat->name.data + chat->name.len; p++) {
            if ((*p & 0xc0) != 0x80) {
                chars++;
            }
        }

        if (chars > 40) {
            return NGX_DECLINED;
        }
    }

    /* metadata: an object */
    w = &want[NGX_HTTP_CALLHQ_WANT_METADATA];

    if (w->value && !ngx_http_callhq_json_is(w, "null")) {

        if (w->value[0] != '{') {
            return NGX_DECLINED;
        }

        chat->metadata.data = w->value;
        chat->metadata.len = w->end - w->value;
    }

    return NGX_OK;
}


/*
 * The object's members are the wanted ones and no others, each once:
 * walks "name": value pairs from one wanted value's end to the next.
 */

static ngx_int_t
ngx_http_callhq_turn_members(ngx_str_t *body,
    ngx_http_callhq_json_want_t *want, ngx_uint_t n)
{
    u_char      *p, *last;
    ngx_uint_t   i;

    p = body->data;
    last = body->data + body->len;

    while (p < last && *p != '{') {
        p++;
    }

    for ( ;; ) {

        /* '{' or ',' */
        for (p++; p < last && (*p == ' ' || *p == '\t' || *p == '\r'
                               || *p == '\n'); p++) { /* void */ }

        if (p == last) {
            return NGX_DECLINED;
        }

        if (*p == '}') {
            return NGX_OK;
        }

        for (i = 0; i < n; i++) {
            if (want[i].value
                && (size_t) (last - p) > want[i].path[0].len + 2
                && p[0] == '"'
                && ngx_strncmp(p + 1, want[i].path[0].data,
                               want[i].path[0].len)
                   == 0
                && p[want[i].path[0].len + 1] == '"')
            {
                break;
            }
        }

        if (i == n) {
            return NGX_DECLINED;
        }

        /* the value after the name must be the one the scanner noted */
        for (p += want[i].path[0].len + 2;
             p < last && (*p == ' ' || *p == '\t' || *p == '\r'
                          || *p == '\n' || *p == ':');
             p++)
        { /* void */ }

        if (p != want[i].value) {
            return NGX_DECLINED;
        }

        for (p = want[i].end; p < last && (*p == ' ' || *p == '\t'
                                           || *p == '\r' || *p == '\n');
             p++)
        { /* void */ }

        if (p == last) {
            return NGX_DECLINED;
        }

        if (*p == '}') {
            return NGX_OK;
        }

        if (*p != ',') {
            return NGX_DECLINED;
        }
    }
}


/* 8-4-4-4-12 hex digits, as PostgreSQL prints a uuid */

static ngx_int_t
ngx_http_callhq_turn_uuid(ngx_str_t *s)
{
    u_char      c;
    ngx_uint_t  i;

    if (s->len != 36) {
        return NGX_DECLINED;
    }

    for (i = 0; i < 36; i++) {
        c = s->data[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return NGX_DECLINED;
            }

            continue;
        }

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
              || (c >= 'A' && c <= 'F')))
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* the take statement for a chat whose body ngx_http_callhq_turn_body() took */

ngx_int_t
ngx_http_callhq_turn_take(ngx_http_request_t *r, ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_pg_query_t *q, u_char *key_hash)
{
    u_char                      *p;
    ngx_int_t                    seq, epoch;
    ngx_http_callhq_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_callhq_module);

    /* a bounded context is a window: only whole histories are cached */
    chat->cacheable = (lcf->context_messages == 0 && lcf->context_bytes == 0);

    if (chat->cached_z == NULL) {
        chat->cached_z = ngx_pnalloc(r->pool, 2 * (NGX_INT_T_LEN + 1));
        if (chat->cached_z == NULL) {
            return NGX_ERROR;
        }
    }

    /* the version this node has (asked again at each try) */
    if (!chat->cacheable
        || ngx_http_callhq_history_peek(&chat->session_arg, &seq, &epoch)
           != NGX_OK)
    {
        seq = 0;
        epoch = 0;
    }

    p = ngx_sprintf((u_char *) chat->cached_z, "%i", seq);
    *p++ = '\0';
    *ngx_sprintf(p, "%i", epoch) = '\0';

    q->values[5] = chat->cached_z;
    q->values[6] = (char *) p;

    if (chat->session_z == NULL) {
        chat->session_z = ngx_http_callhq_turn_z(r->pool, &chat->session_arg);
        p = ngx_pnalloc(r->pool, 4 * (NGX_INT_T_LEN + 1));

        if (chat->session_z == NULL || p == NULL) {
            return NGX_ERROR;
        }

        chat->lease_z = (char *) p;
        p = ngx_sprintf(p, "%T", lcf->turn_lease);
        *p++ = '\0';

        chat->max_msgs_z = (char *) p;
        p = ngx_sprintf(p, "%ui", lcf->context_messages);
        *p++ = '\0';

        chat->max_bytes_z = (char *) p;
        p = ngx_sprintf(p, "%uz", lcf->context_bytes);
        *p++ = '\0';

        chat->max_prompt_z = (char *) p;
        p = ngx_sprintf(p, "%uz", lcf->max_prompt_size);
        *p = '\0';
    }

    if (chat->turn_z == NULL) {
        chat->turn_z = ngx_http_callhq_turn_new_id(r->pool);
        if (chat->turn_z == NULL) {
            return NGX_ERROR;
        }
    }

    chat->take_hit = (seq != 0);

    q->stmt = chat->take_hit ? &ngx_http_callhq_turn_take_hit_stmt
              : chat->cacheable ? &ngx_http_callhq_turn_take_all_stmt
              : &ngx_http_callhq_turn_take_stmt;
    q->batch = &ngx_http_callhq_turn_take_form;
    q->values[7] = chat->turn_z;
    q->values[0] = (char *) key_hash;
    q->values[1] = chat->session_z;
    q->values[2] = chat->lease_z;
    q->values[3] = chat->max_msgs_z;
    q->values[4] = chat->max_bytes_z;

    return NGX_OK;
}


/*
 * Reads the take statement's answer into the chat (pointing into res,
 * which the chat keeps).  NGX_OK: the turn is the chat's, and the
 * context is ready unless chat->stale says the history must be read
 * again (ngx_http_callhq_turn_history()); NGX_BUSY: another chat has the
 * turn; NGX_AGAIN: the session changed as the statement looked at it,
 * which is to run again; NGX_DECLINED: this path cannot tell,
 * callhq.chat_begin will (when chat->chat_id is set, the turn was taken
 * and must go back first).
 */

ngx_int_t
ngx_http_callhq_turn_taken(ngx_http_callhq_chat_t *chat, PGresult *res,
    ngx_pool_t *pool)
{
    u_char     *p;
    ngx_int_t   next, hto, epoch;
    ngx_str_t   state, s, version;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
        || PQnfields(res) != NGX_HTTP_CALLHQ_TAKE_COLUMNS)
    {
        return NGX_DECLINED;
    }

    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_STATE, &state);

    if (state.len == 4 && ngx_strncmp(state.data, "busy", 4) == 0) {
        return NGX_BUSY;
    }

    if (state.len == 5 && ngx_strncmp(state.data, "again", 5) == 0) {
        return NGX_AGAIN;
    }

    if (state.len != 2 || ngx_strncmp(state.data, "ok", 2) != 0) {
        return NGX_DECLINED;
    }

    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_CHAT, &chat->chat_id);
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_ORG, &chat->org_id);
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_ASSISTANT,
                             &chat->assistant_id);
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_NEXT_SEQ,
                             &chat->next_seq);
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_EPOCH, &chat->epoch);
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_HISTORY,
                             &chat->history);
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_HFROM, &chat->hfrom);
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_HTO, &chat->hto);
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_SESSION,
                             &chat->session_id);

    if (pool == NULL) {
        /* a client that left: only the turn to give back */
        return NGX_OK;
    }

    /* the model's name, parameters and prompts: the worker's, or to read */
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_OWN, &s);
    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_VERSION, &version);

    chat->setup = (s.len != 1 || s.data[0] != 'f'
                   || ngx_http_callhq_setup_get(&chat->assistant_id, &version,
                                                chat, pool)
                      != NGX_OK);

    next = ngx_atoi(chat->next_seq.data, chat->next_seq.len);
    epoch = ngx_atoi(chat->epoch.data, chat->epoch.len);

    if (next == NGX_ERROR || epoch == NGX_ERROR) {
        return NGX_DECLINED;
    }

    ngx_http_callhq_turn_col(res, NGX_HTTP_CALLHQ_TAKE_CACHED, &s);

    if (s.len == 1 && s.data[0] == 't') {

        /* no rows were read: the node has the history at this version */
        if (ngx_http_callhq_history_get(&chat->session_id, next, epoch, pool,
                                        &chat->history)
            != NGX_OK)
        {
            ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_HISTORY_MISSES);
            chat->stale = 1;
            return NGX_OK;
        }

        ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_HISTORY_HITS);

        ngx_str_null(&chat->hfrom);
        ngx_str_null(&chat->hto);

        if (next > 1) {
            p = ngx_pnalloc(pool, NGX_INT_T_LEN);
            if (p == NULL) {
                return NGX_ERROR;
            }

            ngx_str_set(&chat->hfrom, "1");
            chat->hto.data = p;
            chat->hto.len = ngx_sprintf(p, "%i", next - 1) - p;
        }

        return NGX_OK;
    }

    if (chat->cacheable && ngx_http_callhq_history_enabled()) {
        ngx_http_callhq_metrics_event(NGX_HTTP_CALLHQ_M_HISTORY_MISSES);
    }

    if (chat->take_hit) {
        /* the node's copy is of another version: read it now */
        chat->stale = 1;
        return NGX_OK;
    }

    hto = chat->hto.len ? ngx_atoi(chat->hto.data, chat->hto.len) : 0;

    if (hto == NGX_ERROR) {
        return NGX_DECLINED;
    }

    /*
     * A chat that ended as this one took the turn is not in the snapshot:
     * the newest message read is not the one before the turn's seq.  (An
     * empty window, as a context bound smaller than the newest message
     * makes, is read again too: the same answer, a statement later.)
     */
    chat->stale = (hto != next - 1);

    if (!chat->stale) {
        ngx_http_callhq_turn_remember(chat, next, epoch);
    }

    return NGX_OK;
}


void
ngx_http_callhq_turn_history(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_pg_query_t *q, ngx_pool_t *pool)
{
    q->stmt = &ngx_http_callhq_turn_history_stmt;
    q->values[0] = chat->session_z;
    q->values[1] = ngx_http_callhq_turn_z(pool, &chat->next_seq);
    q->values[2] = chat->max_msgs_z;
    q->values[3] = chat->max_bytes_z;
}


ngx_int_t
ngx_http_callhq_turn_history_read(ngx_http_callhq_chat_t *chat,
    PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
        || PQnfields(res) != 3)
    {
        return NGX_DECLINED;
    }

    ngx_http_callhq_turn_col(res, 0, &chat->history);
    ngx_http_callhq_turn_col(res, 1, &chat->hfrom);
    ngx_http_callhq_turn_col(res, 2, &chat->hto);

    chat->stale = 0;

    ngx_http_callhq_turn_remember(chat,
                                  ngx_atoi(chat->next_seq.data,
                                           chat->next_seq.len),
                                  ngx_atoi(chat->epoch.data,
                                           chat->epoch.len));

    return NGX_OK;
}


/*
 * The context the model is sent, as parts over the take's result and the
 * client's body: [prompts, history, {"role":"user","content":input}].
 */

void
ngx_http_callhq_turn_context(ngx_http_callhq_chat_t *chat)
{
    ngx_str_t  *part;

    part = chat->context;

    ngx_str_set(part, "[");
    part++;

    if (chat->prompts.len) {
        *part++ = chat->prompts;
        ngx_str_set(part, ",");
        part++;
    }

    if (chat->history.len) {
        *part++ = chat->history;
        ngx_str_set(part, ",");
        part++;
    }

    ngx_str_set(part, "{\"role\":\"user\",\"content\":");
    part++;
    *part++ = chat->input;
    ngx_str_set(part, "}]");
    part++;

    chat->ncontext = part - chat->context;
}


/*
 * The record statement, its values copied into pool (the recording may
 * outlive the request).  The reply is the JSON string's escaped contents.
 */

ngx_int_t
ngx_http_callhq_turn_record(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_pg_query_t *q, ngx_pool_t *pool, ngx_uint_t want_chat)
{
    u_char     *p;
    ngx_str_t   null;

    ngx_str_null(&null);

    q->stmt = &ngx_http_callhq_turn_record_stmt;

    q->values[0] = ngx_http_callhq_turn_z(pool, &chat->chat_id);
    q->values[1] = ngx_http_callhq_turn_z(pool, &chat->org_id);
    q->values[2] = ngx_http_callhq_turn_z(pool, &chat->session_id);
    q->values[3] = chat->assistant_id.len
                   ? ngx_http_callhq_turn_z(pool, &chat->assistant_id)
                   : NULL;
    q->values[4] = ngx_http_callhq_turn_z(pool, &chat->epoch);
    q->values[5] = chat->name.data
                   ? ngx_http_callhq_turn_z(pool, &chat->name) : NULL;
    q->values[6] = ngx_http_callhq_turn_z(pool, &chat->input);

    q->values[7] = ngx_http_callhq_param(pool, chat->reply.data,
                                         chat->reply.len, 1);
    if (q->values[7] == NULL) {
        return NGX_ERROR;
    }

    q->values[8] = (char *) chat->chat_status;

    p = ngx_pnalloc(pool, 2 * (NGX_INT_T_LEN + 1));
    if (p == NULL) {
        return NGX_ERROR;
    }

    q->values[9] = (char *) p;
    p = ngx_sprintf(p, "%i", chat->prompt_tokens);
    *p++ = '\0';
    q->values[10] = (char *) p;
    p = ngx_sprintf(p, "%i", chat->completion_tokens);
    *p = '\0';

    q->values[11] = chat->metadata.data
                    ? ngx_http_callhq_turn_z(pool, &chat->metadata) : NULL;
    q->values[12] = ngx_http_callhq_turn_z(pool, &chat->prompts_json);
    q->values[13] = ngx_http_callhq_turn_z(pool, &chat->prompt_count);
    q->values[14] = chat->hfrom.len
                    ? ngx_http_callhq_turn_z(pool, &chat->hfrom) : NULL;
    q->values[15] = chat->hto.len
                    ? ngx_http_callhq_turn_z(pool, &chat->hto) : NULL;
    q->values[16] = chat->quiet.len ? (char *) chat->quiet.data : "off";
    q->values[17] = want_chat ? "true" : "false";

    if (want_chat && !ngx_http_callhq_turn_plain(chat)) {
        q->stmt = &ngx_http_callhq_turn_record_head_stmt;
    }

    /* a listener's events keep their order only statement by statement */
    q->batch = ngx_strcmp(q->values[16], "on") == 0
               ? &ngx_http_callhq_turn_record_form : NULL;

    if (q->values[0] == NULL || q->values[1] == NULL || q->values[2] == NULL
        || q->values[4] == NULL || q->values[6] == NULL
        || q->values[12] == NULL || q->values[13] == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * whether the record statement wrote the chat; *head is its JSON then
 * (in pool), if it was wanted
 */

ngx_int_t
ngx_http_callhq_turn_recorded(PGresult *res, ngx_http_callhq_pg_query_t *q,
    ngx_pool_t *pool, ngx_str_t *head)
{
    ngx_int_t  seq, epoch;
    ngx_str_t  s, session, parts[8];

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
        || PQnfields(res) != 2)
    {
        return NGX_DECLINED;
    }

    ngx_http_callhq_turn_col(res, 0, head);
    ngx_http_callhq_turn_col(res, 1, &s);

    if (q->stmt == &ngx_http_callhq_turn_record_stmt) {
        if (q->values[17][0] == 't') {
            if (ngx_http_callhq_turn_head(q, pool, head) != NGX_OK) {
                return NGX_ERROR;
            }

        } else {
            ngx_str_null(head);
        }
    }

    /* the node's copy of the history, if it has it, gains the turn */
    seq = ngx_atoi(s.data, s.len);
    epoch = ngx_atoi((u_char *) q->values[4], ngx_strlen(q->values[4]));

    if (seq == NGX_ERROR || epoch == NGX_ERROR) {
        return NGX_OK;
    }

    session.data = (u_char *) q->values[2];
    session.len = ngx_strlen(q->values[2]);

    ngx_str_set(&parts[0], ",");
    ngx_str_set(&parts[1], "{\"role\":\"user\",\"content\":");
    parts[2].data = (u_char *) q->values[6];
    parts[2].len = ngx_strlen(q->values[6]);
    ngx_str_set(&parts[3], "},{\"role\":\"assistant\",\"content\":");
    parts[4].data = (u_char *) q->values[7];
    parts[4].len = ngx_strlen(q->values[7]);
    ngx_str_set(&parts[5], "}");

    if (seq == 1) {
        /* nothing before it: the version (epoch, 1) is never cached */
        return NGX_OK;
    }

    ngx_http_callhq_history_put(&session, epoch, seq, seq + 2, parts, 6);

    return NGX_OK;
}


/*
 * Whether the chat's JSON can be printed here exactly as chat_head would
 * (jsonb's printing): no metadata to normalize, no inline assistant to
 * show, and strings that jsonb prints as written.
 */

static ngx_uint_t
ngx_http_callhq_turn_plain(ngx_http_callhq_chat_t *chat)
{
    return chat->metadata.data == NULL && chat->assistant_id.len
           && ngx_http_callhq_turn_plain_string(chat->input.data,
                                                chat->input.len)
           && ngx_http_callhq_turn_plain_string(chat->reply.data,
                                                chat->reply.len)
           && (chat->name.data == NULL
               || ngx_http_callhq_turn_plain_string(chat->name.data,
                                                    chat->name.len));
}


/*
 * A JSON string's bytes that jsonb prints unchanged: its escapes are those
 * jsonb writes (\" \\ \b \f \n \r \t), not \/ or \u, and no raw control
 * characters, which it would escape.
 */

static ngx_uint_t
ngx_http_callhq_turn_plain_string(u_char *p, size_t len)
{
    u_char  *last;

    for (last = p + len; p < last; p++) {

        if (*p < 0x20) {
            return 0;
        }

        if (*p == '\\') {
            if (++p == last || *p == '/' || *p == 'u') {
                return 0;
            }
        }
    }

    return 1;
}


/*
 * The chat's JSON as callhq.chat_head prints it (members ordered as jsonb
 * orders them: by the length of their name, then bytewise), from the
 * record statement's values and its "createdAt assistantId" result.
 */

static ngx_int_t
ngx_http_callhq_turn_head(ngx_http_callhq_pg_query_t *q, ngx_pool_t *pool,
    ngx_str_t *head)
{
    u_char     *p, *sp;
    size_t      len;
    ngx_str_t   ts, assistant;

    ts = *head;

    sp = ngx_strlchr(ts.data, ts.data + ts.len, ' ');
    if (sp == NULL) {
        return NGX_ERROR;
    }

    assistant.data = sp + 1;
    assistant.len = ts.data + ts.len - assistant.data;
    ts.len = sp - ts.data;

    len = sizeof("{\"id\": \"\", \"name\": \"\", \"input\": , \"orgId\": \"\","
                 " \"usage\": {\"promptTokens\": , \"completionTokens\": },"
                 " \"output\": [{\"role\": \"assistant\", \"content\": \"\"}],"
                 " \"status\": \"\", \"createdAt\": \"\", \"sessionId\": \"\","
                 " \"updatedAt\": \"\", \"assistantId\": \"\"}")
          + ngx_strlen(q->values[0]) + ngx_strlen(q->values[1])
          + ngx_strlen(q->values[2]) + ngx_strlen(q->values[6])
          + ngx_strlen(q->values[7]) + ngx_strlen(q->values[8])
          + ngx_strlen(q->values[9]) + ngx_strlen(q->values[10])
          + (q->values[5] ? ngx_strlen(q->values[5]) : 0)
          + 2 * ts.len + assistant.len;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    head->data = p;

    p = ngx_sprintf(p, "{\"id\": \"%s\"", q->values[0]);

    if (q->values[5]) {
        p = ngx_sprintf(p, ", \"name\": \"%s\"", q->values[5]);
    }

    p = ngx_sprintf(p, ", \"input\": %s, \"orgId\": \"%s\"",
                    q->values[6], q->values[1]);

    /* tokens: the record statement's condition for a usage */
    if (ngx_strcmp(q->values[9], "0") != 0
        || ngx_strcmp(q->values[10], "0") != 0)
    {
        p = ngx_sprintf(p, ", \"usage\": {\"promptTokens\": %s,"
                        " \"completionTokens\": %s}",
                        q->values[9], q->values[10]);
    }

    p = ngx_sprintf(p, ", \"output\": [{\"role\": \"assistant\","
                    " \"content\": %s}], \"status\": \"%s\","
                    " \"createdAt\": \"%V\", \"sessionId\": \"%s\","
                    " \"updatedAt\": \"%V\"",
                    q->values[7], q->values[8], &ts, q->values[2], &ts);

    if (assistant.len) {
        p = ngx_sprintf(p, ", \"assistantId\": \"%V\"", &assistant);
    }

    *p++ = '}';

    head->len = p - head->data;

    return NGX_OK;
}


/* the history just read, for the node's cache */

static void
ngx_http_callhq_turn_remember(ngx_http_callhq_chat_t *chat, ngx_int_t next,
    ngx_int_t epoch)
{
    if (!chat->cacheable || next == NGX_ERROR || epoch == NGX_ERROR
        || next <= 1 || chat->history.len == 0)
    {
        return;
    }

    ngx_http_callhq_history_put(&chat->session_id, epoch, 0, next,
                                &chat->history, 1);
}


ngx_int_t
ngx_http_callhq_turn_release(ngx_http_callhq_chat_t *chat,
    ngx_http_callhq_pg_query_t *q, ngx_pool_t *pool)
{
    q->stmt = &ngx_http_callhq_turn_release_stmt;
    q->values[0] = ngx_http_callhq_turn_z(pool, &chat->session_id);
    q->values[1] = ngx_http_callhq_turn_z(pool, &chat->chat_id);

    if (q->values[0] == NULL || q->values[1] == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * What callhq.chat_record takes as the record of a chat: for the general
 * path when this one cannot record it (a changed or deleted session, a
 * twin call, an error), into pool.
 */

ngx_int_t
ngx_http_callhq_turn_record_json(ngx_http_callhq_chat_t *chat,
    ngx_pool_t *pool, ngx_str_t *out)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   name, meta, hfrom, hto, assistant, inline_a;

    ngx_str_set(&name, "null");
    ngx_str_set(&meta, "null");
    ngx_str_set(&hfrom, "null");
    ngx_str_set(&hto, "null");
    ngx_str_set(&assistant, "null");
    ngx_str_set(&inline_a, "null");

    if (chat->name.data) {
        name.data = chat->name.data - 1;    /* with its quotes */
        name.len = chat->name.len + 2;
    }

    if (chat->metadata.data) {
        meta = chat->metadata;
    }

    if (chat->hfrom.len) {
        hfrom = chat->hfrom;
        hto = chat->hto;
    }

    if (chat->assistant_inline.len) {
        inline_a = chat->assistant_inline;
    }

    len = sizeof("{\"chatId\":\"\",\"orgId\":\"\",\"sessionId\":\"\","
                 "\"assistantId\":\"\",\"assistant\":,"
                 "\"previousChatId\":null,\"name\":,\"input\":,"
                 "\"inputMessages\":[{\"role\":\"user\",\"content\":}],"
                 "\"metadata\":,\"promptCount\":,\"prompts\":,"
                 "\"historyFrom\":,\"historyTo\":,\"historyEpoch\":}")
          + chat->chat_id.len + chat->org_id.len + chat->session_id.len
          + chat->assistant_id.len + inline_a.len + name.len
          + 2 * chat->input.len + meta.len + chat->prompt_count.len
          + chat->prompts_json.len + hfrom.len + hto.len + chat->epoch.len
          + sizeof("null");

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    p = ngx_sprintf(p, "{\"chatId\":\"%V\",\"orgId\":\"%V\","
                    "\"sessionId\":\"%V\",\"assistantId\":",
                    &chat->chat_id, &chat->org_id, &chat->session_id);

    if (chat->assistant_id.len) {
        p = ngx_sprintf(p, "\"%V\"", &chat->assistant_id);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_sprintf(p, ",\"assistant\":%V,\"previousChatId\":null,"
                    "\"name\":%V,\"input\":%V,\"inputMessages\":"
                    "[{\"role\":\"user\",\"content\":%V}],"
                    "\"metadata\":%V,\"promptCount\":%V,\"prompts\":%V,"
                    "\"historyFrom\":%V,\"historyTo\":%V,"
                    "\"historyEpoch\":%V}",
                    &inline_a, &name, &chat->input, &chat->input, &meta,
                    &chat->prompt_count, &chat->prompts_json, &hfrom, &hto,
                    &chat->epoch);
    *p = '\0';

    out->len = p - out->data;

    return NGX_OK;
}


/* a column where libpq put it, NUL-terminated; empty when NULL */

static void
ngx_http_callhq_turn_col(PGresult *res, int col, ngx_str_t *out)
{
    if (PQgetisnull(res, 0, col)) {
        ngx_str_null(out);
        return;
    }

    out->data = (u_char *) PQgetvalue(res, 0, col);
    out->len = PQgetlength(res, 0, col);
}


/* a random (version 4) uuid for a chat, as text */

static char *
ngx_http_callhq_turn_new_id(ngx_pool_t *pool)
{
    u_char      *p, *id;
    ngx_uint_t   i;
    u_char       b[16];

    if (RAND_bytes(b, sizeof(b)) != 1) {
        return NULL;
    }

    b[6] = (u_char) ((b[6] & 0x0f) | 0x40);
    b[8] = (u_char) ((b[8] & 0x3f) | 0x80);

    id = ngx_pnalloc(pool, 37);
    if (id == NULL) {
        return NULL;
    }

    p = id;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *p++ = '-';
        }

        p = ngx_sprintf(p, "%02xd", b[i]);
    }

    *p = '\0';

    return (char *) id;
}
