-- base.sql: small helpers that every other file uses.
--
-- The SQL functions behind the HTTP API (assistant.sql, session.sql,
-- chat.sql) and the admin functions (org.sql) follow one convention.
--
-- The C module calls exactly one function per HTTP operation, in one round
-- trip, as a prepared statement:
--
--   select status, body
--     from callhq.api_<resource>_<op>($1::bytea, $2::text, $3::jsonb,
--                                     $4::jsonb, $5::jsonb)
--
--   p_key   SHA-256 of the API key the client sent (Bearer token)
--   p_id    the {id} path segment; NULL on collection routes
--   p_args  the query string as a flat object of strings ({} when empty)
--   p_body  the request body (a JSON object) for POST/PATCH, else NULL
--   p_opts  module settings from nginx directives, e.g.
--           {"defaultExpirationSeconds": 86400}
--
-- and gets one row: the HTTP status (201 for create, 200 otherwise) and the
-- response body as JSON text. Every failure is an exception with SQLSTATE
-- 'CQ' followed by the HTTP status ('CQ400', 'CQ401', 'CQ404') and a message
-- that names the field, parameter or id at fault; the statement, and so
-- everything it wrote, is rolled back. Any other SQLSTATE is a server fault.
--
-- Every name is schema-qualified: nothing depends on search_path.
--
-- Lock order. A transaction that locks rows of several tables takes them
-- parent first: org, assistant, session, chat (and a session's messages).
-- DELETE /assistant locks the assistant, then its sessions (on delete set
-- null), then their chats (assistant_chats_unlink); chat_record takes its
-- assistant (key share) before its session; PATCH and DELETE /session
-- lock the session before its chats and messages. Several rows of one
-- table are locked in id order, or with skip locked (lease renewals).
-- The chat path of ngx_http_callhq_turn.c locks only its session.
--
-- Each function of the schema is defined once, in one file of
-- sql/functions/, as it is now: change it here, in place. sql/migrate.sh
-- re-applies every file of sql/functions/ (create or replace) after the
-- numbered migrations, on every run, in one transaction with
-- check_function_bodies off, so that the order of files and functions
-- does not matter. A change of arguments or result type needs a migration
-- that drops the old function first (drop function if exists).


-- Raise the error that the C module turns into HTTP p_status with p_message.
-- Volatile on purpose: the planner must never fold a call to it.
create or replace function callhq.fail(p_status int, p_message text)
returns void
language plpgsql
as $$
begin
    raise exception using
        errcode = 'CQ' || lpad(p_status::text, 3, '0'),
        message = p_message;
end
$$;


-- now() to the millisecond: what createdAt, updatedAt and expiresAt are
-- stored as (see 001_schema.sql: a client filters on values it was given).
create or replace function callhq.now_ms()
returns timestamptz
language sql stable parallel safe
as $$
    select date_trunc('milliseconds', now())
$$;


-- A timestamp as the API shows it: ISO 8601, UTC, milliseconds.
create or replace function callhq.ts(p timestamptz)
returns text
language sql stable strict parallel safe
as $$
    select to_char(p at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;


-- An object without its top-level null members (nested values are kept
-- as they are: user metadata may hold nulls on purpose).
create or replace function callhq.strip_nulls(p jsonb)
returns jsonb
language sql immutable strict parallel safe
as $$
    select coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
      from jsonb_each(p) e
     where jsonb_typeof(e.value) <> 'null'
$$;


-- SQL NULL for an absent member and for a JSON null.
create or replace function callhq.jnull(p jsonb)
returns jsonb
language sql immutable parallel safe
as $$
    select case when jsonb_typeof(p) = 'null' then null else p end
$$;


-- JSON text without the blanks that jsonb's output puts after ':' and ','.
create or replace function callhq.json_compact(p jsonb)
returns text
language plpgsql immutable strict parallel safe
as $$
declare
    v_text  text;
begin
    case jsonb_typeof(p)
    when 'object' then
        select '{' || coalesce(string_agg(to_jsonb(e.key)::text || ':'
                                          || callhq.json_compact(e.value), ','), '')
               || '}'
          into v_text
          from jsonb_each(p) e;
    when 'array' then
        select '[' || coalesce(string_agg(callhq.json_compact(e.value), ','
                                          order by e.n), '')
               || ']'
          into v_text
          from jsonb_array_elements(p) with ordinality e(value, n);
    else
        v_text := p::text;      -- scalars print compact and escaped
    end case;
    return v_text;
end
$$;


-- A history message as stored in callhq.messages.raw.
-- Stable, not immutable: to_jsonb is only stable, and PostgreSQL inlines
-- a SQL function into its caller only when its body is no more volatile
-- than it is declared (an immutable one calling to_jsonb never inlines).
create or replace function callhq.message_raw(p_role text, p_content jsonb)
returns text
language sql stable parallel safe
as $$
    select '{"role":' || to_jsonb(p_role)::text
           || ',"content":' || coalesce(callhq.json_compact(p_content), 'null')
           || '}'
$$;


-- A message ({role, content}, a tool result's tool_call_id, an
-- assistant's tool_calls: message_clean's) as the model is sent it, with
-- p_role for its role; without the tool members, as message_raw.
create or replace function callhq.message_raw_of(p_role text, p_msg jsonb)
returns text
language sql stable parallel safe
as $$
    select '{"role":' || to_jsonb(p_role)::text
           || ',"content":' || coalesce(callhq.json_compact(p_msg->'content'), 'null')
           || case when jsonb_typeof(p_msg->'tool_calls') = 'array'
                   then ',"tool_calls":' || callhq.json_compact(p_msg->'tool_calls')
                   else '' end
           || case when jsonb_typeof(p_msg->'tool_call_id') = 'string'
                   then ',"tool_call_id":' || (p_msg->'tool_call_id')::text
                   else '' end
           || '}'
$$;


-- A function's name as models take it: 1 to 64 of a-z A-Z 0-9 _ -.
create or replace function callhq.is_tool_name(p text)
returns boolean
language sql immutable parallel safe
as $$
    select p ~ '^[a-zA-Z0-9_-]{1,64}$'
$$;


create or replace function callhq.is_uuid(p text)
returns boolean
language sql immutable parallel safe
as $$
    select p ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
$$;


-- A whole number setting from p_opts (a directive's value), else NULL.
create or replace function callhq.opt_int(p_opts jsonb, p_key text)
returns int
language sql immutable
as $$
    select case when p_opts->>p_key ~ '^[0-9]{1,9}$' then (p_opts->>p_key)::int end
$$;


-- A non-negative whole number setting from p_opts; 0 when absent.
create or replace function callhq.opt_bigint(p_opts jsonb, p_key text)
returns bigint
language sql immutable
as $$
    select case when p_opts->>p_key ~ '^[0-9]{1,18}$'
                then (p_opts->>p_key)::bigint else 0 end
$$;


-- A whole number setting from p_opts, else p_default.
create or replace function callhq.opt_bigint_or(p_opts jsonb, p_key text, p_default bigint)
returns bigint
language sql immutable
as $$
    select case when p_opts->>p_key ~ '^[0-9]{1,15}$'
                then (p_opts->>p_key)::bigint else p_default end
$$;
