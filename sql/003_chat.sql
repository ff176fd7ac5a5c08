-- 003_chat.sql: POST /chat (and /chat/responses), the model call's two ends.
--
-- The C module calls, per chat:
--
--   select state, record, params, messages, chat_id, session_id, org_id, model
--     from callhq.chat_begin($1::bytea, $2::jsonb, $3::jsonb)
--
-- (API key hash, client body, {"defaultExpirationSeconds", "contextMessages",
-- "contextBytes", "turnLeaseSeconds"}) which checks the body, resolves the
-- assistant and the context, and takes the session's turn; then, once the
-- model has answered, exactly one of
--
--   select status, body from callhq.chat_record($1::jsonb, $2::jsonb,
--                                               $3::text, $4::text, $5::jsonb)
--   select 200, '' from callhq.chat_release($1::jsonb)
--
-- with the record and messages that chat_begin returned. chat_record writes
-- the chat and the session's new turn in one transaction, once; chat_release
-- gives the turn back when the model failed before any output.
--
-- Turn order: a session runs one chat at a time. chat_begin leases the
-- session to the new chat (sessions.busy_chat until sessions.busy_until);
-- chat_record and chat_release end the lease. A lease left behind by a
-- crashed nginx runs out by itself after turnLeaseSeconds.


------------------------------------------------------------------------------
-- Schema
------------------------------------------------------------------------------

-- The chat that holds the session's turn, and until when.
alter table callhq.sessions
    add column busy_chat   uuid,
    add column busy_until  timestamptz;

-- metadata      the metadata the chat was posted with
-- prompt_count  how many leading entries of messages are the assistant's
--               system prompts (so that a chat continuing this one by
--               previousChatId does not repeat them)
alter table callhq.chats
    add column metadata      jsonb,
    add column prompt_count  int;

-- A customer's session with an assistant, most recently active first.
create index sessions_customer_number_chat_idx
    on callhq.sessions (org_id, assistant_id, (customer->>'number'), updated_at)
    where customer->>'number' is not null;
create index sessions_customer_external_chat_idx
    on callhq.sessions (org_id, assistant_id, (customer->>'externalId'), updated_at)
    where customer->>'externalId' is not null;


------------------------------------------------------------------------------
-- Chat as JSON: with metadata now (status and usage were already there).
------------------------------------------------------------------------------

create or replace function callhq.chat_json(c callhq.chats)
returns jsonb
language sql stable
as $$
    select callhq.strip_nulls(jsonb_build_object(
        'id',             c.id,
        'orgId',          c.org_id,
        'assistantId',    c.assistant_id,
        'assistant',      c.assistant,
        'sessionId',      c.session_id,
        'previousChatId', c.previous_chat_id,
        'name',           c.name,
        'input',          c.input,
        'messages',       c.messages,
        'output',         c.output,
        'status',         c.status,
        'usage',          c.usage,
        'metadata',       c.metadata,
        'createdAt',      callhq.ts(c.created_at),
        'updatedAt',      callhq.ts(c.updated_at)))
$$;


------------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------------

-- A non-negative whole number setting from p_opts; 0 when absent.
create or replace function callhq.opt_bigint(p_opts jsonb, p_key text)
returns bigint
language sql immutable
as $$
    select case when p_opts->>p_key ~ '^[0-9]{1,18}$'
                then (p_opts->>p_key)::bigint else 0 end
$$;


-- The body's input as messages: a string is one user message; an array
-- must hold at least one {role, content}.
create or replace function callhq.chat_input(p_value jsonb)
returns jsonb
language plpgsql
as $$
begin
    perform callhq.check_present(p_value, 'input', true);

    case jsonb_typeof(p_value)
    when 'string' then
        return jsonb_build_array(jsonb_build_object('role', 'user', 'content', p_value));
    when 'array' then
        if jsonb_array_length(p_value) = 0 then
            perform callhq.fail(400, 'input must not be empty');
        end if;
        return callhq.check_messages(p_value, 'input', true);
    else
        perform callhq.fail(400, 'input must be a string or an array of messages');
    end case;
    return null;
end
$$;


-- An assistant's model, checked for chatting: model.model is needed to
-- call the model upstream.
create or replace function callhq.chat_model(p_model jsonb)
returns jsonb
language plpgsql
as $$
begin
    if p_model is null or jsonb_typeof(p_model) <> 'object' then
        perform callhq.fail(400, 'assistant model is required to chat');
    end if;
    if jsonb_typeof(p_model->'model') is distinct from 'string'
       or p_model->>'model' = ''
    then
        perform callhq.fail(400, 'assistant model.model is required to chat');
    end if;
    return p_model;
end
$$;


-- The upstream request's members that come from the model, as a JSON
-- fragment without braces: "model":..[,"temperature":..][,"max_tokens":..]
create or replace function callhq.chat_params(p_model jsonb)
returns text
language sql immutable
as $$
    select '"model":' || to_jsonb(p_model->>'model')::text
           || case when jsonb_typeof(p_model->'temperature') = 'number'
                   then ',"temperature":' || (p_model->'temperature')::text
                   else '' end
           || case when jsonb_typeof(p_model->'maxTokens') = 'number'
                   then ',"max_tokens":' || (p_model->'maxTokens')::text
                   else '' end
$$;


-- The messages of a JSON array ({role, content} each) as compact JSON
-- joined by ',', without brackets; NULL when there are none.
create or replace function callhq.chat_raws(p_msgs jsonb)
returns text
language sql immutable
as $$
    select string_agg(callhq.message_raw(e.m->>'role', e.m->'content'), ','
                      order by e.n)
      from jsonb_array_elements(case when jsonb_typeof(p_msgs) = 'array'
                                     then p_msgs else '[]' end)
           with ordinality e(m, n)
$$;


-- A session's history as sent upstream: the raw messages joined by ',',
-- oldest first, bounded to the p_max_msgs most recent (0: all) and to the
-- most recent whose raw lengths in bytes sum to at most p_max_bytes (0: no
-- bound); NULL when nothing is left. Walks the primary key backwards from
-- the newest message and stops at p_max_msgs; the stored raw text is
-- spliced, never decoded.
create or replace function callhq.chat_history(p_session uuid, p_max_msgs bigint,
                                               p_max_bytes bigint)
returns text
language sql stable
as $$
    select string_agg(h.raw, ',' order by h.seq)
      from (select m.seq, m.raw,
                   sum(octet_length(m.raw)) over (order by m.seq desc
                                                  rows unbounded preceding) as total
              from callhq.messages m
             where m.session_id = p_session
             order by m.seq desc
             limit nullif(p_max_msgs, 0)) h
     where p_max_bytes = 0 or h.total <= p_max_bytes
$$;


-- The history that a chat hands on to the chat that names it as
-- previousChatId: its messages without its leading system prompts, then
-- its output; bounded as chat_history.
create or replace function callhq.chat_previous_history(p_chat callhq.chats,
                                                        p_max_msgs bigint,
                                                        p_max_bytes bigint)
returns text
language sql stable
as $$
    with skip as (
        -- the system prompts at the head of its context: as recorded, or
        -- for a chat recorded without the count, its leading system messages
        select coalesce(p_chat.prompt_count,
                        (select coalesce(min(e.n) - 1,
                                         jsonb_array_length(coalesce(p_chat.messages, '[]')))
                           from jsonb_array_elements(coalesce(p_chat.messages, '[]'))
                                with ordinality e(m, n)
                          where e.m->>'role' is distinct from 'system'),
                        0) as n
    ),
    h as (
        select e.n, callhq.message_raw(e.m->>'role', e.m->'content') as raw
          from jsonb_array_elements(coalesce(p_chat.messages, '[]')
                                    || coalesce(p_chat.output, '[]'))
               with ordinality e(m, n), skip
         where e.n > skip.n
    )
    select string_agg(t.raw, ',' order by t.n)
      from (select h.n, h.raw,
                   sum(octet_length(h.raw)) over (order by h.n desc
                                                  rows unbounded preceding) as total
              from h
             order by h.n desc
             limit nullif(p_max_msgs, 0)) t
     where p_max_bytes = 0 or t.total <= p_max_bytes
$$;


-- An assistant of the org by id; 404 naming p_text (the id as the client
-- wrote it) when there is none.
create or replace function callhq.chat_assistant(p_org uuid, p_id uuid, p_text text)
returns callhq.assistants
language plpgsql stable
as $$
declare
    v_a  callhq.assistants;
begin
    select a.* into v_a from callhq.assistants a where a.id = p_id and a.org_id = p_org;
    if not found then
        perform callhq.fail(404, 'Assistant ' || p_text || ' not found');
    end if;
    return v_a;
end
$$;


-- A session can take a chat: not completed, not expired; else 410.
create or replace function callhq.chat_session_open(s callhq.sessions)
returns void
language plpgsql
as $$
begin
    if s.status = 'completed' or s.expires_at <= now() then
        perform callhq.fail(410, 'Session ' || s.id || ' is completed; create a new session');
    end if;
end
$$;


------------------------------------------------------------------------------
-- chat_begin
------------------------------------------------------------------------------

-- POST /chat, before the model: one row.
--   state 'ok'    record    JSON object text for chat_record / chat_release
--                 params    "model":..,"temperature":..,"max_tokens":..
--                 messages  the context as JSON array text: the assistant's
--                           system prompts, the (bounded) history, the input
--                 chat_id, session_id (NULL without session), org_id, model
--   state 'busy'  the session runs another chat; only session_id is set.
--                 Nothing was written: call again a little later.
-- Failures raise CQ400, CQ401, CQ404, CQ410; nothing is written then.
create or replace function callhq.chat_begin(p_key bytea, p_body jsonb, p_opts jsonb)
returns table (state text, record text, params text, messages text,
               chat_id uuid, session_id uuid, org_id uuid, model text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_org           uuid := callhq.auth(p_key);
    v_body          jsonb;
    v_chat          uuid := gen_random_uuid();
    v_max_msgs      bigint := callhq.opt_bigint(p_opts, 'contextMessages');
    v_max_bytes     bigint := callhq.opt_bigint(p_opts, 'contextBytes');
    v_lease         bigint := coalesce(nullif(callhq.opt_bigint(p_opts, 'turnLeaseSeconds'), 0),
                                       600);
    v_expiration    int := coalesce(nullif(callhq.opt_int(p_opts, 'defaultExpirationSeconds'), 0),
                                    86400);
    v_input         jsonb;      -- the input as messages
    v_session_id    uuid;
    v_prev_id       uuid;
    v_assistant_id  uuid;       -- the body's assistantId
    v_inline        jsonb;      -- the body's assistant
    v_customer      jsonb;
    v_number        text;
    v_external      text;
    v_a             callhq.assistants;
    v_s             callhq.sessions;
    v_prev          callhq.chats;
    v_use_id        uuid;       -- the assistant the chat is made with: a row
    v_use_inline    jsonb;      -- or an inline one
    v_model         jsonb;
    v_history       text;
    v_prompts       text;
    v_record        jsonb;
begin
    v_body := callhq.check_body(p_body);

    -- the body, field by field
    perform callhq.check_fields(v_body, array['input', 'sessionId', 'previousChatId',
                                              'assistantId', 'assistant', 'customer',
                                              'name', 'stream', 'metadata'], '');
    v_input := callhq.chat_input(v_body->'input');
    v_session_id := callhq.check_uuid(v_body->'sessionId', 'sessionId');
    v_prev_id := callhq.check_uuid(v_body->'previousChatId', 'previousChatId');
    v_assistant_id := callhq.check_uuid(v_body->'assistantId', 'assistantId');
    v_inline := callhq.check_object(v_body->'assistant', 'assistant');
    v_customer := callhq.check_customer(v_body->'customer', 'customer');
    perform callhq.check_string(v_body->'name', 'name', 40);
    if jsonb_typeof(v_body->'stream') not in ('boolean', 'null') then
        perform callhq.fail(400, 'stream must be a boolean');
    end if;
    perform callhq.check_object(v_body->'metadata', 'metadata');

    -- the context, exactly one way
    if v_session_id is not null and v_prev_id is not null then
        perform callhq.fail(400, 'sessionId and previousChatId cannot be used together');
    end if;
    if v_session_id is not null and v_assistant_id is not null then
        perform callhq.fail(400, 'assistantId cannot be used with sessionId; '
                                 'a session is tied to its assistant');
    end if;
    if v_session_id is not null and v_inline is not null then
        perform callhq.fail(400, 'assistant cannot be used with sessionId; '
                                 'a session is tied to its assistant');
    end if;

    -- the inline assistant (ignored when assistantId is given, as in POST /session)
    if v_assistant_id is not null then
        v_inline := null;
    elsif v_inline is not null then
        perform callhq.check_assistant(v_inline, 'assistant.');
        v_inline := jsonb_strip_nulls(v_inline);
    end if;

    if v_session_id is null and v_prev_id is null then
        if v_assistant_id is null and v_inline is null then
            perform callhq.fail(400, 'assistantId or assistant is required');
        end if;
        if v_customer is not null then
            v_number := nullif(v_customer->>'number', '');
            v_external := nullif(v_customer->>'externalId', '');
            if v_number is null and v_external is null then
                perform callhq.fail(400, 'customer.number or customer.externalId is required');
            end if;
            if v_assistant_id is null then
                perform callhq.fail(400, 'assistantId is required with customer');
            end if;
        end if;
    end if;

    -- the assistant given in the body
    if v_assistant_id is not null then
        v_a := callhq.chat_assistant(v_org, v_assistant_id, v_body->>'assistantId');
        v_use_id := v_a.id;
        v_model := v_a.model;
    elsif v_inline is not null then
        v_use_inline := v_inline;
        v_model := v_inline->'model';
    end if;

    if v_session_id is not null then
        -- a session of the org, open, with its assistant
        select s.* into v_s
          from callhq.sessions s
         where s.id = v_session_id and s.org_id = v_org
           for update;
        if not found then
            perform callhq.fail(404, 'Session ' || (v_body->>'sessionId') || ' not found');
        end if;
        perform callhq.chat_session_open(v_s);

        if v_s.assistant_id is not null then
            select a.* into v_a from callhq.assistants a where a.id = v_s.assistant_id;
        end if;
        if v_s.assistant_id is not null and v_a.id is not null then
            v_use_id := v_a.id;
            v_model := v_a.model;
        elsif v_s.assistant is not null then
            v_use_inline := v_s.assistant;
            v_model := v_s.assistant->'model';
        else
            perform callhq.fail(400, 'Session ' || v_s.id || ' has no assistant to chat with');
        end if;

    elsif v_prev_id is not null then
        select c.* into v_prev
          from callhq.chats c
         where c.id = v_prev_id and c.org_id = v_org;
        if not found then
            perform callhq.fail(404, 'Chat ' || (v_body->>'previousChatId') || ' not found');
        end if;

        -- the previous chat's assistant, unless the body names one
        if v_use_id is null and v_use_inline is null then
            if v_prev.assistant_id is not null then
                select a.* into v_a from callhq.assistants a where a.id = v_prev.assistant_id;
            end if;
            if v_prev.assistant_id is not null and v_a.id is not null then
                v_use_id := v_a.id;
                v_model := v_a.model;
            elsif v_prev.assistant is not null then
                v_use_inline := v_prev.assistant;
                v_model := v_prev.assistant->'model';
            else
                perform callhq.fail(400, 'assistantId or assistant is required; the assistant of Chat '
                                         || v_prev.id || ' no longer exists');
            end if;
        end if;

    elsif v_customer is not null then
        -- the customer's session with this assistant: one at a time per
        -- customer, so that two first messages do not open two sessions
        perform pg_advisory_xact_lock(hashtextextended(
            'callhq.customer:' || v_org || ':' || v_use_id || ':'
            || coalesce('n:' || v_number, 'x:' || v_external), 0));

        if v_number is not null then
            select s.* into v_s
              from callhq.sessions s
             where s.org_id = v_org and s.assistant_id = v_use_id
               and s.customer->>'number' = v_number
               and s.status = 'active' and s.expires_at > now()
             order by s.updated_at desc
             limit 1
               for update;
        else
            select s.* into v_s
              from callhq.sessions s
             where s.org_id = v_org and s.assistant_id = v_use_id
               and s.customer->>'externalId' = v_external
               and s.status = 'active' and s.expires_at > now()
             order by s.updated_at desc
             limit 1
               for update;
        end if;
    end if;

    v_model := callhq.chat_model(v_model);

    -- the session's turn
    if v_s.id is not null then
        if v_s.busy_chat is not null and v_s.busy_until >= now() then
            return query select 'busy'::text, null::text, null::text, null::text,
                                null::uuid, v_s.id, null::uuid, null::text;
            return;
        end if;

        update callhq.sessions s
           set busy_chat = v_chat,
               busy_until = now() + make_interval(secs => v_lease)
         where s.id = v_s.id;

        v_history := callhq.chat_history(v_s.id, v_max_msgs, v_max_bytes);

    elsif v_customer is not null and v_prev_id is null and v_session_id is null then
        -- none yet: a session that lives as long as the customer talks
        insert into callhq.sessions (org_id, assistant_id, expiration_seconds, expires_at,
                                     customer, renew_on_activity, busy_chat, busy_until)
        values (v_org, v_use_id, v_expiration,
                callhq.now_ms() + make_interval(secs => v_expiration),
                callhq.strip_nulls(v_customer), true,
                v_chat, now() + make_interval(secs => v_lease))
        returning * into v_s;

    elsif v_prev.id is not null then
        v_history := callhq.chat_previous_history(v_prev, v_max_msgs, v_max_bytes);
    end if;

    v_prompts := callhq.chat_raws(v_model->'messages');

    v_record := jsonb_build_object(
        'chatId',         v_chat,
        'orgId',          v_org,
        'sessionId',      v_s.id,
        'assistantId',    v_use_id,
        'assistant',      v_use_inline,
        'previousChatId', v_prev.id,
        'name',           v_body->'name',
        'input',          v_body->'input',
        'inputMessages',  v_input,
        'metadata',       v_body->'metadata',
        'promptCount',    case when jsonb_typeof(v_model->'messages') = 'array'
                               then jsonb_array_length(v_model->'messages') else 0 end);

    return query select
        'ok'::text,
        v_record::text,
        callhq.chat_params(v_model),
        '[' || concat_ws(',', v_prompts, v_history, callhq.chat_raws(v_input)) || ']',
        v_chat,
        v_s.id,
        v_org,
        v_model->>'model';
end
$$;


------------------------------------------------------------------------------
-- chat_record, chat_release
------------------------------------------------------------------------------

-- POST /chat, after the model: in one transaction, the chat (p_messages the
-- context chat_begin returned, p_reply the reply, p_status 'completed' or
-- 'incomplete', p_usage {promptTokens, completionTokens}, both 0 when
-- unknown) and, when the chat has a session that still exists, the input
-- and the reply appended to its history; the turn is given back. Returns
-- (201, the Chat). Called again for the same chat it writes nothing and
-- returns the chat as recorded.
create or replace function callhq.chat_record(p_record jsonb, p_messages jsonb,
                                              p_reply text, p_status text,
                                              p_usage jsonb)
returns table (status int, body text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_chat        uuid := (p_record->>'chatId')::uuid;
    v_session_id  uuid := (p_record->>'sessionId')::uuid;
    v_reply       text := coalesce(p_reply, '');
    v_prompt      bigint;
    v_completion  bigint;
    v_usage       jsonb;
    v_turn        jsonb;
    v_now         timestamptz := callhq.now_ms();
    v_s           callhq.sessions;
    v_c           callhq.chats;
begin
    if v_chat is null or p_record->>'orgId' is null then
        raise exception 'callhq.chat_record: the record has no chatId or orgId';
    end if;

    -- recorded already
    select c.* into v_c from callhq.chats c where c.id = v_chat;
    if found then
        return query select 201, callhq.chat_json(v_c)::text;
        return;
    end if;

    if v_session_id is not null then
        select s.* into v_s from callhq.sessions s where s.id = v_session_id for update;
        if not found then
            v_session_id := null;       -- deleted meanwhile: the chat stays alone
        end if;

        -- a twin call that held the lock before us has recorded it
        select c.* into v_c from callhq.chats c where c.id = v_chat;
        if found then
            return query select 201, callhq.chat_json(v_c)::text;
            return;
        end if;
    end if;

    if jsonb_typeof(p_usage->'promptTokens') = 'number' then
        v_prompt := (p_usage->>'promptTokens')::numeric::bigint;
    end if;
    if jsonb_typeof(p_usage->'completionTokens') = 'number' then
        v_completion := (p_usage->>'completionTokens')::numeric::bigint;
    end if;
    if coalesce(v_prompt, 0) <> 0 or coalesce(v_completion, 0) <> 0 then
        v_usage := jsonb_build_object('promptTokens', coalesce(v_prompt, 0),
                                      'completionTokens', coalesce(v_completion, 0));
    end if;

    -- the assistant and the previous chat may have gone meanwhile: then the
    -- chat keeps no link to them (key share: they cannot go before this commits)
    insert into callhq.chats (id, org_id, assistant_id, assistant, session_id,
                              previous_chat_id, name, input, messages, output, status,
                              usage, metadata, prompt_count, created_at, updated_at)
    values (v_chat,
            (p_record->>'orgId')::uuid,
            (select a.id from callhq.assistants a
              where a.id = (p_record->>'assistantId')::uuid for key share),
            callhq.jnull(p_record->'assistant'),
            v_session_id,
            (select c.id from callhq.chats c
              where c.id = (p_record->>'previousChatId')::uuid for key share),
            p_record->>'name',
            callhq.jnull(p_record->'input'),
            p_messages,
            jsonb_build_array(jsonb_build_object('role', 'assistant', 'content', v_reply)),
            coalesce(p_status, 'completed'),
            v_usage,
            callhq.jnull(p_record->'metadata'),
            (p_record->>'promptCount')::int,
            v_now, v_now)
    on conflict (id) do nothing
    returning * into v_c;

    if not found then
        -- a twin call (chat without session) got there first
        select c.* into v_c from callhq.chats c where c.id = v_chat;
        return query select 201, callhq.chat_json(v_c)::text;
        return;
    end if;

    if v_session_id is not null then
        v_turn := coalesce(p_record->'inputMessages', '[]')
                  || jsonb_build_array(jsonb_build_object('role', 'assistant',
                                                          'content', v_reply));

        insert into callhq.messages (session_id, seq, role, content, raw, tokens)
        select v_session_id, v_s.next_seq + e.n - 1, e.m->>'role', e.m->'content',
               callhq.message_raw(e.m->>'role', e.m->'content'),
               case when e.n = jsonb_array_length(v_turn) then nullif(v_completion, 0)::int end
          from jsonb_array_elements(v_turn) with ordinality e(m, n);

        update callhq.sessions s
           set next_seq   = s.next_seq + jsonb_array_length(v_turn),
               updated_at = v_now,
               expires_at = case when s.renew_on_activity
                                 then v_now + make_interval(secs => s.expiration_seconds)
                                 else s.expires_at end,
               busy_chat  = case when s.busy_chat = v_chat then null else s.busy_chat end,
               busy_until = case when s.busy_chat = v_chat then null else s.busy_until end
         where s.id = v_session_id;
    end if;

    return query select 201, callhq.chat_json(v_c)::text;
end
$$;


-- POST /chat whose model failed before any output: the session's turn goes
-- back, if this chat still holds it. Writes nothing else.
create or replace function callhq.chat_release(p_record jsonb)
returns void
language sql
as $$
    update callhq.sessions s
       set busy_chat = null, busy_until = null
     where s.id = (p_record->>'sessionId')::uuid
       and s.busy_chat = (p_record->>'chatId')::uuid
$$;
