-- chat.sql: POST /chat (and /chat/responses), the model call's two ends;
-- GET and DELETE /chat; a chat's context.
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
--                                               $3::jsonb #>> '{}', ...)
--   select 200, '' from callhq.chat_release($1::jsonb)
--
-- with the record that chat_begin returned ($2, the context, only for a
-- chat without a session, or when chat_record answered (100, '') because
-- the session's history went while the chat ran). chat_record writes
-- the chat and the session's new turn in one transaction, once; chat_release
-- gives the turn back when the model failed before any output.
--
-- Turn order: a session runs one chat at a time. chat_begin leases the
-- session to the new chat (sessions.busy_chat until sessions.busy_until);
-- chat_record and chat_release end the lease. A lease left behind by a
-- crashed nginx runs out by itself after turnLeaseSeconds. A chat that
-- finds the session busy marks it (sessions.turn_waiters), and the chat
-- that gives the turn back then notifies callhq_turn with the session id
-- (turn_notify), which wakes the waiting chats of every nginx; with
-- nobody waiting, nobody is notified (NOTIFY takes a lock at commit).
--
-- A chat of a session keeps its context by reference: its prompts and its
-- input in chats.messages, and the range of the session's history it was
-- sent (history_from..history_to, seqs of callhq.messages); chat_context
-- puts the three together again, byte for byte as the model got them.
-- Other chats, and those recorded before 007_chat_context, keep their
-- whole context in messages (history_to is NULL).
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


-- As jsonb, for webhook events.
create or replace function callhq.chat_json(c callhq.chats)
returns jsonb
language sql stable
as $$
    select callhq.chat_text(c)::jsonb
$$;


-- GET /chat: {results, metadata}, as GET /session; the rows as chat_text
-- (each chat with its context last).
create or replace function callhq.api_chat_list(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org     uuid := callhq.auth(p_key);
    v_q       callhq.list_query := callhq.parse_list(
                  p_args, array['page', 'limit', 'sortOrder', 'sortBy', 'id', 'idAny',
                                'assistantId', 'assistantIdAny', 'sessionId',
                                'previousChatId',
                                -- the SDK's, accepted and ignored (no squads here)
                                'squadId']
                          || callhq.time_params());
    v_offset  bigint := (v_q.page - 1)::bigint * v_q.lim;
    v_total   bigint;
    v_rows    text;
begin
    select count(*) into v_total from callhq.chats_matching(v_org, v_q);

    -- bounded by callhq_max_list_size (list_page)
    if v_q.sort_asc then
        v_rows := callhq.list_page('chats', array(
            select c.id from callhq.chats_matching(v_org, v_q) c
             order by c.created_at, c.id
             limit v_q.lim offset v_offset),
            callhq.opt_bigint_or(p_opts, 'maxListSize', 8388608));
    else
        v_rows := callhq.list_page('chats', array(
            select c.id from callhq.chats_matching(v_org, v_q) c
             order by c.created_at desc, c.id desc
             limit v_q.lim offset v_offset),
            callhq.opt_bigint_or(p_opts, 'maxListSize', 8388608));
    end if;

    return query select 200, '{"results": [' || coalesce(v_rows, '')
                             || '], "metadata": '
                             || callhq.list_metadata(v_q, v_total)::text || '}';
end
$$;


-- GET /chat/{id}
create or replace function callhq.api_chat_get(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_id   uuid := callhq.path_id(p_id, 'Chat');
    v_c    callhq.chats;
begin
    perform callhq.check_args(p_args, '{}');

    select c.* into v_c from callhq.chats c where c.id = v_id and c.org_id = v_org;
    if not found then
        perform callhq.fail(404, 'Chat ' || p_id || ' not found');
    end if;

    return query select 200, callhq.chat_text(v_c);
end
$$;


-- DELETE /chat/{id}: answers with the deleted chat (its context is still
-- in the session's history, which stays).
create or replace function callhq.api_chat_delete(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_id   uuid := callhq.path_id(p_id, 'Chat');
    v_c    callhq.chats;
begin
    perform callhq.check_args(p_args, '{}');

    delete from callhq.chats c
     where c.id = v_id and c.org_id = v_org
    returning c.* into v_c;

    if not found then
        perform callhq.fail(404, 'Chat ' || p_id || ' not found');
    end if;

    return query select 200, callhq.chat_text(v_c);
end
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
-- [,"tools":..] (model.tools, checked by check_tools: as Chat Completions
-- takes them).
-- Stable, not immutable, so that it inlines (to_jsonb is only stable).
create or replace function callhq.chat_params(p_model jsonb)
returns text
language sql stable
as $$
    select '"model":' || to_jsonb(p_model->>'model')::text
           || case when jsonb_typeof(p_model->'temperature') = 'number'
                   then ',"temperature":' || (p_model->'temperature')::text
                   else '' end
           || case when jsonb_typeof(p_model->'maxTokens') = 'number'
                   then ',"max_tokens":' || (p_model->'maxTokens')::text
                   else '' end
           || case when jsonb_typeof(p_model->'tools') = 'array'
                        and p_model->'tools' <> '[]'
                   then ',"tools":' || callhq.json_compact(p_model->'tools')
                   else '' end
$$;


-- The messages of a JSON array ({role, content} each) as compact JSON
-- joined by ',', without brackets, developer as system; NULL when there
-- are none.
create or replace function callhq.chat_raws(p_msgs jsonb)
returns text
language plpgsql stable
as $$
begin
    if jsonb_typeof(p_msgs) is distinct from 'array' then
        return null;
    end if;

    return (select string_agg(callhq.message_raw_of(callhq.upstream_role(e.m->>'role'),
                                                    e.m), ',' order by e.n)
              from jsonb_array_elements(p_msgs) with ordinality e(m, n));
end
$$;


-- A session's history as sent upstream: the raw messages joined by ',',
-- oldest first, bounded to the p_max_msgs most recent (0: all) and to the
-- most recent whose raw lengths in bytes sum to at most p_max_bytes (0: no
-- bound); NULL when nothing is left. Walks the primary key backwards from
-- the newest message and stops at p_max_msgs. Developer messages go as
-- system: those are decoded and encoded again, the others spliced as
-- stored.
create or replace function callhq.chat_history(p_session uuid, p_max_msgs bigint,
                                               p_max_bytes bigint)
returns text
language sql stable
as $$
    select string_agg(case when h.role = 'developer'
                           then callhq.message_raw('system', h.content)
                           else h.raw end, ',' order by h.seq)
      from (select m.seq, m.raw, m.role, m.content,
                   sum(octet_length(m.raw)) over (order by m.seq desc
                                                  rows unbounded preceding) as total
              from callhq.messages m
             where m.session_id = p_session
             order by m.seq desc
             limit nullif(p_max_msgs, 0)) h
     where p_max_bytes = 0 or h.total <= p_max_bytes
$$;


-- The history that a chat hands on to the chat that names it as
-- previousChatId: its context (wherever that is kept, see chat_messages)
-- without its leading system prompts, then its output; developer as
-- system; bounded as chat_history.
create or replace function callhq.chat_previous_history(p_chat callhq.chats,
                                                        p_max_msgs bigint,
                                                        p_max_bytes bigint)
returns text
language sql stable
as $$
    with ctx as (
        select callhq.chat_messages(p_chat) as m
    ),
    skip as (
        -- the system prompts at the head of its context: as recorded, or
        -- for a chat recorded without the count, its leading system messages
        select coalesce(p_chat.prompt_count,
                        (select coalesce(min(e.n) - 1, jsonb_array_length(ctx.m))
                           from jsonb_array_elements(ctx.m) with ordinality e(m, n)
                          where e.m->>'role' is distinct from 'system'),
                        0) as n
          from ctx
    ),
    h as (
        select e.n, callhq.message_raw_of(callhq.upstream_role(e.m->>'role'),
                                          e.m) as raw
          from ctx, skip,
               jsonb_array_elements(ctx.m || coalesce(p_chat.output, '[]'))
               with ordinality e(m, n)
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


-- POST /chat, before the model: one row.
--   state 'ok'    record    JSON object text for chat_record / chat_release;
--                           for a chat of a session it carries what
--                           chat_record keeps of it: the prompts sent
--                           (prompts) and the seqs of the history sent
--                           (historyFrom, historyTo)
--                 params    "model":..,"temperature":..,"max_tokens":..
--                 messages  the context as JSON array text: the assistant's
--                           system prompts, the (bounded) history, the input
--                 chat_id, session_id (NULL without session), org_id, model
--   state 'new'   as 'ok', for a chat that opened a customer session (the
--                 module counts it in callhq_sessions_created_total)
--   state 'busy'  the session runs another chat; only session_id is set.
--                 Nothing was written: call again a little later.
--   state 'recorded'  transport twilio.sms with
--                 useLLMGeneratedMessageForOutbound false: the input was
--                 recorded as the assistant's message and queued as texts;
--                 record is the chat as the API shows it (chat_text).
-- A chat with transport twilio.sms (phoneNumberId, customer.number) runs in
-- the customer's SMS session; its record carries "smsSend": true and
-- "sms": {phoneNumberId, to}, and chat_record queues its reply as texts.
-- Failures raise CQ400, CQ401, CQ404, CQ410; nothing is written then.
-- assistantOverrides: its variableValues, over those stored with the
-- session, fill {{name}} in the contents of the assistant's model.messages
-- sent upstream; a customer session that this chat opens keeps them.
-- Developer messages go upstream as system (chat_raws).
create or replace function callhq.chat_begin(p_key bytea, p_body jsonb, p_opts jsonb)
returns table (state text, record text, params text, messages text,
               chat_id uuid, session_id uuid, org_id uuid, model text)
language plpgsql
as $$
begin
    return query select * from callhq.chat_begin_org(callhq.auth(p_key), p_body, p_opts);
end
$$;


-- chat_begin for an org known already: the SMS webhook's (sms.sql).
create or replace function callhq.chat_begin_org(p_org uuid, p_body jsonb,
                                                 p_opts jsonb)
returns table (state text, record text, params text, messages text,
               chat_id uuid, session_id uuid, org_id uuid, model text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_org           uuid := p_org;
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
    v_hfrom         int;
    v_hto           int;
    v_filled        jsonb;      -- the assistant's prompts, variables filled
    v_prompts       text;
    v_record        jsonb;
    v_overrides     jsonb;      -- the body's assistantOverrides
    v_vars          jsonb;      -- the variables of the assistant's prompts
    v_state         text := 'ok';
    v_transport     jsonb;      -- the body's transport: an SMS customer's
    v_number_id     uuid;       -- chat on this phone number, texted
    v_p             callhq.phone_numbers;
    v_literal       boolean := false;   -- the input is texted, no model
begin
    v_body := callhq.check_body(p_body);

    -- the body, field by field
    perform callhq.check_fields(v_body, array['input', 'sessionId', 'previousChatId',
                                              'assistantId', 'assistant', 'customer',
                                              'name', 'stream', 'metadata',
                                              'assistantOverrides', 'phoneNumberId',
                                              'transport'], '');
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
    v_overrides := callhq.check_overrides(v_body->'assistantOverrides', 'assistantOverrides');
    v_number_id := callhq.check_uuid(v_body->'phoneNumberId', 'phoneNumberId');
    v_transport := callhq.check_object(v_body->'transport', 'transport');

    -- an SMS customer's chat (transport twilio.sms): its session is the
    -- one the customer's texts go to, with the number's assistant, and the
    -- reply is texted to the customer (sms.sql)
    if v_transport is not null or v_number_id is not null then
        if v_transport is null then
            perform callhq.fail(400, 'transport is required with phoneNumberId');
        end if;
        perform callhq.check_fields(v_transport,
                                    array['type', 'useLLMGeneratedMessageForOutbound'],
                                    'transport.');
        if jsonb_typeof(v_transport->'type') is distinct from 'string'
           or v_transport->>'type' <> 'twilio.sms'
        then
            perform callhq.fail(400, 'transport.type must be "twilio.sms"');
        end if;
        if jsonb_typeof(v_transport->'useLLMGeneratedMessageForOutbound')
           not in ('boolean', 'null')
        then
            perform callhq.fail(400, 'transport.useLLMGeneratedMessageForOutbound '
                                     'must be a boolean');
        end if;
        v_literal := v_transport->'useLLMGeneratedMessageForOutbound' = 'false';
        if v_session_id is not null then
            perform callhq.fail(400, 'transport cannot be used with sessionId; '
                                     'a session already has its channel');
        end if;
        if v_prev_id is not null then
            perform callhq.fail(400, 'transport cannot be used with previousChatId');
        end if;
        if v_inline is not null then
            perform callhq.fail(400, 'assistant cannot be used with transport; '
                                     'the phone number''s assistant answers');
        end if;
        if v_number_id is null then
            perform callhq.fail(400, 'phoneNumberId is required with transport');
        end if;
        if v_customer is null or jsonb_typeof(v_customer->'number') is distinct from 'string'
        then
            perform callhq.fail(400, 'customer.number is required with transport');
        end if;
        if v_customer->>'number' !~ '^\+[1-9][0-9]{1,14}$' then
            perform callhq.fail(400, 'customer.number must be an E.164 phone number '
                                     '(+15551234567) with transport');
        end if;
        if v_literal and (jsonb_typeof(v_body->'input') is distinct from 'string'
                          or btrim(v_body->>'input') = '')
        then
            perform callhq.fail(400, 'input must be a non-empty string with '
                                     'transport.useLLMGeneratedMessageForOutbound false');
        end if;
        if v_literal and v_body->'stream' = 'true' then
            perform callhq.fail(400, 'stream cannot be used with '
                                     'transport.useLLMGeneratedMessageForOutbound false; '
                                     'no model answers');
        end if;

        select p.* into v_p from callhq.phone_numbers p
         where p.id = v_number_id and p.org_id = v_org;
        if not found then
            perform callhq.fail(404, 'Phone number ' || (v_body->>'phoneNumberId')
                                     || ' not found');
        end if;
        if not v_p.sms_enabled then
            perform callhq.fail(400, 'phoneNumberId: phone number ' || v_p.id
                                     || ' has SMS disabled');
        end if;
        if v_p.assistant_id is null then
            perform callhq.fail(400, 'phoneNumberId: phone number ' || v_p.id
                                     || ' has no assistant');
        end if;
        if v_assistant_id is not null and v_assistant_id <> v_p.assistant_id then
            perform callhq.fail(400, 'assistantId must be the phone number''s '
                                     'assistant with transport');
        end if;
        v_assistant_id := v_p.assistant_id;
    end if;

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
        v_inline := jsonb_strip_nulls(callhq.assistant_clean(v_inline));
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

    elsif v_p.id is not null then
        -- the customer's SMS session, as callhq.sms_begin finds it
        v_s := callhq.sms_session(v_p, v_customer->>'number');

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
            -- the chat giving the turn back notifies; a mark, not worth a
            -- WAL flush
            if not v_s.turn_waiters then
                update callhq.sessions s set turn_waiters = true
                 where s.id = v_s.id;
                perform set_config('synchronous_commit', 'off', true);
            end if;
            return query select 'busy'::text, null::text, null::text, null::text,
                                null::uuid, v_s.id, null::uuid, null::text;
            return;
        end if;

        update callhq.sessions s
           set busy_chat = v_chat,
               busy_until = now() + make_interval(secs => v_lease)
         where s.id = v_s.id;

        select h.history, h.first_seq, h.last_seq
          into v_history, v_hfrom, v_hto
          from callhq.chat_history_range(v_s.id, v_max_msgs, v_max_bytes) h;

    elsif v_customer is not null and v_prev_id is null and v_session_id is null then
        -- none yet: a session that lives as long as the customer talks
        insert into callhq.sessions (org_id, assistant_id, expiration_seconds, expires_at,
                                     customer, renew_on_activity, busy_chat, busy_until,
                                     assistant_overrides, phone_number_id)
        values (v_org, v_use_id, v_expiration,
                callhq.now_ms() + make_interval(secs => v_expiration),
                callhq.strip_nulls(v_customer), true,
                v_chat, now() + make_interval(secs => v_lease),
                v_overrides, v_p.id)
        returning * into v_s;
        v_state := 'new';

    elsif v_prev.id is not null then
        v_history := callhq.chat_previous_history(v_prev, v_max_msgs, v_max_bytes);
    end if;

    -- the session's variables, and over them the chat's own
    v_vars := coalesce(v_s.assistant_overrides->'variableValues', '{}')
              || coalesce(v_overrides->'variableValues', '{}');
    v_filled := callhq.fill_messages(v_model->'messages', v_vars,
                                     callhq.opt_bigint_or(p_opts, 'maxPromptSize',
                                                          1048576));
    if jsonb_typeof(v_filled) is distinct from 'array' then
        v_filled := '[]';
    end if;
    v_prompts := callhq.chat_raws(v_filled);

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
        'promptCount',    jsonb_array_length(v_filled),
        'prompts',        v_filled,
        'historyFrom',    v_hfrom,
        'historyTo',      v_hto,
        'historyEpoch',   v_s.history_epoch);

    if v_p.id is not null then
        v_record := v_record || jsonb_build_object(
            'smsSend', true,
            'sms', jsonb_build_object('phoneNumberId', v_p.id,
                                      'to', v_customer->>'number'));
    end if;

    -- the input is the assistant's message, texted: recorded now, and the
    -- turn just taken goes back with it
    if v_literal then
        perform callhq.chat_record(v_record || jsonb_build_object(
                                       'inputMessages', '[]'::jsonb,
                                       'prompts', '[]'::jsonb,
                                       'promptCount', 0,
                                       'historyFrom', null, 'historyTo', null),
                                   '[]'::jsonb, v_body->>'input', 'completed', null);
        return query select 'recorded'::text,
                            (select callhq.chat_text(c) from callhq.chats c
                              where c.id = v_chat),
                            null::text, null::text, v_chat, v_s.id, v_org, null::text;
        return;
    end if;

    return query select
        v_state,
        v_record::text,
        callhq.chat_params(v_model),
        '[' || concat_ws(',', v_prompts, v_history, callhq.chat_raws(v_input)) || ']',
        v_chat,
        v_s.id,
        v_org,
        v_model->>'model';
end
$$;


-- POST /chat, after the model: in one transaction, the chat (p_reply the
-- reply, p_status 'completed' or 'incomplete', p_usage {promptTokens,
-- completionTokens}, both 0 when unknown, p_tool_calls the model's tool
-- calls as Chat Completions gives them, or NULL) and, when the chat has a session
-- that still exists, the input and the reply appended to its history; the
-- turn is given back. p_messages, the context chat_begin returned, is NULL
-- for a chat of a session, whose context is kept by reference (the
-- record's prompts, historyFrom, historyTo). Returns (201, the chat
-- without its context: chat_head); (100, '') when the session's history
-- went while the chat ran, and the caller must call again with
-- p_messages. Called again for the same chat it writes nothing and
-- returns the chat as recorded: twin calls are told apart by the insert
-- alone.
create or replace function callhq.chat_record(p_record jsonb, p_messages jsonb,
                                              p_reply text, p_status text,
                                              p_usage jsonb,
                                              p_tool_calls jsonb default null)
returns table (status int, body text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_chat        uuid := (p_record->>'chatId')::uuid;
    v_session_id  uuid := (p_record->>'sessionId')::uuid;
    v_output      jsonb := callhq.chat_reply(p_reply, p_tool_calls);
    v_prompt      bigint;
    v_completion  bigint;
    v_usage       jsonb;
    v_turn        jsonb;
    v_now         timestamptz := callhq.now_ms();
    v_messages    jsonb := p_messages;
    v_hfrom       int := (p_record->>'historyFrom')::int;
    v_hto         int := (p_record->>'historyTo')::int;
    v_s           callhq.sessions;
    v_c           callhq.chats;
begin
    if v_chat is null or p_record->>'orgId' is null then
        raise exception 'callhq.chat_record: the record has no chatId or orgId';
    end if;

    -- Lock order (see base.sql): the assistant before the session, as
    -- DELETE /assistant takes them (its sessions' assistant set null).
    if p_record->>'assistantId' is not null then
        perform 1 from callhq.assistants a
         where a.id = (p_record->>'assistantId')::uuid for key share;
    end if;

    -- Twin calls for one chat take turns on the session's lock; the
    -- second finds the chat inserted (on conflict below) and writes nothing.
    if v_session_id is not null then
        select s.* into v_s from callhq.sessions s where s.id = v_session_id for update;
        if not found then
            v_session_id := null;       -- deleted meanwhile: the chat stays alone
        end if;
    end if;

    -- the history it was sent is no longer there to point at: ask for it
    if v_messages is null and v_hto is not null
       and (v_session_id is null
            or v_s.history_epoch is distinct from (p_record->>'historyEpoch')::int)
    then
        return query select 100, ''::text;
        return;
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

    -- a chat of a session: its prompts and input, and where its history is
    if v_messages is null then
        v_messages := coalesce(p_record->'prompts', '[]')
                      || coalesce(p_record->'inputMessages', '[]');
    else
        v_hfrom := null;
        v_hto := null;
    end if;

    -- the assistant and the previous chat may have gone meanwhile: then the
    -- chat keeps no link to them (key share: they cannot go before this commits)
    insert into callhq.chats (id, org_id, assistant_id, assistant, session_id,
                              previous_chat_id, name, input, messages, output, status,
                              usage, metadata, prompt_count, history_from, history_to,
                              response_model, created_at, updated_at)
    values (v_chat,
            (p_record->>'orgId')::uuid,
            case when p_record->>'assistantId' is not null then
                (select a.id from callhq.assistants a
                  where a.id = (p_record->>'assistantId')::uuid for key share) end,
            callhq.jnull(p_record->'assistant'),
            v_session_id,
            -- (only when there is one: a cached plan for "id = NULL" may
            -- be a scan of the whole table)
            case when p_record->>'previousChatId' is not null then
                (select c.id from callhq.chats c
                  where c.id = (p_record->>'previousChatId')::uuid for key share) end,
            p_record->>'name',
            callhq.jnull(p_record->'input'),
            v_messages,
            jsonb_build_array(v_output),
            coalesce(p_status, 'completed'),
            v_usage,
            callhq.jnull(p_record->'metadata'),
            (p_record->>'promptCount')::int,
            v_hfrom, v_hto,
            p_record->>'responseModel',
            v_now, v_now)
    on conflict (id) do nothing
    returning * into v_c;

    if not found then
        -- a twin call got there first: the chat as it recorded it
        select c.* into v_c from callhq.chats c where c.id = v_chat;
        return query select 201, callhq.chat_head(v_c)::text;
        return;
    end if;

    -- its reply goes to the customer by SMS (sms.sql)
    if p_record->>'smsSend' = 'true' then
        perform callhq.sms_reply(p_record, v_session_id, coalesce(p_reply, ''));
    end if;

    if v_session_id is not null then
        v_turn := coalesce(p_record->'inputMessages', '[]')
                  || jsonb_build_array(v_output);

        insert into callhq.messages (session_id, seq, role, content, raw, tokens)
        select v_session_id, v_s.next_seq + e.n - 1, e.m->>'role', e.m->'content',
               callhq.message_raw_of(e.m->>'role', e.m),
               case when e.n = jsonb_array_length(v_turn) then nullif(v_completion, 0)::int end
          from jsonb_array_elements(v_turn) with ordinality e(m, n);

        update callhq.sessions s
           set next_seq   = s.next_seq + jsonb_array_length(v_turn),
               updated_at = v_now,
               expires_at = case when s.renew_on_activity
                                 then v_now + make_interval(secs => s.expiration_seconds)
                                 else s.expires_at end,
               busy_chat  = case when s.busy_chat = v_chat then null else s.busy_chat end,
               busy_until = case when s.busy_chat = v_chat then null else s.busy_until end,
               turn_waiters = case when s.busy_chat = v_chat and s.turn_waiters
                                   then callhq.turn_notify(s.id) else s.turn_waiters end
         where s.id = v_session_id;
    end if;

    return query select 201, callhq.chat_head(v_c)::text;
end
$$;


-- The reply as recorded, the chat's output[0]: {role: "assistant",
-- content} and the model's tool_calls, if it made any (content null
-- when it said nothing besides).
create or replace function callhq.chat_reply(p_reply text, p_tool_calls jsonb)
returns jsonb
language sql stable
as $$
    select case when jsonb_typeof(p_tool_calls) = 'array' and p_tool_calls <> '[]'
                then jsonb_build_object('role', 'assistant',
                                        'content', to_jsonb(nullif(p_reply, '')),
                                        'tool_calls', p_tool_calls)
                else jsonb_build_object('role', 'assistant',
                                        'content', coalesce(p_reply, ''))
           end
$$;


-- POST /chat whose model failed before any output: the session's turn goes
-- back, if this chat still holds it. Writes nothing else.
create or replace function callhq.chat_release(p_record jsonb)
returns void
language sql
as $$
    update callhq.sessions s
       set busy_chat = null, busy_until = null,
           turn_waiters = case when s.turn_waiters then callhq.turn_notify(s.id)
                               else false end
     where s.id = (p_record->>'sessionId')::uuid
       and s.busy_chat = (p_record->>'chatId')::uuid
$$;


-- A chat's record (ngx_http_callhq_turn.c) wrote the chat but could not
-- update its session (deleted, its history reset or its turn lost since
-- the statement's snapshot): the whole statement fails, nothing stays
-- written, and callhq.chat_record, which locks the session, records it.
create or replace function callhq.record_lost(p_session uuid)
returns int
language plpgsql
as $$
begin
    raise exception 'session % changed as the chat was recorded', p_session
        using errcode = 'serialization_failure';
end
$$;


-- The session's turn is back and chats wait for it: they are told, on
-- channel callhq_turn with the session id as the payload (at commit), and
-- the mark is cleared: the value is sessions.turn_waiters' new one. Called
-- from an UPDATE's SET, so it sees the row as the UPDATE does.
create or replace function callhq.turn_notify(p_session uuid)
returns boolean
language sql volatile
as $$
    select false from pg_notify('callhq_turn', p_session::text)
$$;


-- The role a message has upstream: developer goes as system, since not
-- every OpenAI-compatible server knows "developer".
create or replace function callhq.upstream_role(p_role text)
returns text
language sql immutable parallel safe
as $$
    select case when p_role = 'developer' then 'system' else p_role end
$$;


-- p_text with {{name}} (or {{ name }}) replaced by each variable of p_vars
-- that has a value; other {{...}} stay as they are. One pass: a value is
-- never filled in turn (a value "{{b}}{{b}}" stays as it is), so the text
-- grows by the values alone, and fill_size() tells by how much before it
-- is built. Names hold no braces.
create or replace function callhq.fill_vars(p_text text, p_vars jsonb)
returns text
language plpgsql immutable
as $$
declare
    v_rest  text[];
begin
    if p_text is null or jsonb_typeof(p_vars) is distinct from 'object'
       or position('{{' in p_text) = 0
    then
        return p_text;
    end if;

    -- the text between the placeholders, and each placeholder's value
    v_rest := regexp_split_to_array(p_text, '\{\{[^{}]*\}\}');

    return v_rest[1] || coalesce(
        (select string_agg(coalesce(callhq.fill_value(m.m[1], p_vars),
                                    '{{' || m.m[1] || '}}')
                           || v_rest[m.n + 1], '' order by m.n)
           from regexp_matches(p_text, '\{\{([^{}]*)\}\}', 'g')
                with ordinality m(m, n)), '');
end
$$;


-- The value of the variable {{p_name}} (or {{ name }}) as text, or NULL.
create or replace function callhq.fill_value(p_name text, p_vars jsonb)
returns text
language sql immutable
as $$
    select case when jsonb_typeof(v) = 'string' then v #>> '{}' else v::text end
      from (select coalesce(callhq.jnull(p_vars->p_name),
                            case when p_name ~ '^ .+ $'
                                 then callhq.jnull(p_vars->substr(p_name, 2,
                                                                  length(p_name) - 2))
                            end) v) x
$$;


-- The bytes of the contents of p_msgs once fill_messages() has filled
-- them, counted without building them.
create or replace function callhq.fill_size(p_msgs jsonb, p_vars jsonb)
returns bigint
language sql immutable
as $$
    select coalesce(sum(octet_length(e.m->>'content')
                        + coalesce((select sum(octet_length(callhq.fill_value(x.m[1], p_vars))
                                               - octet_length(x.m[1]) - 4)
                                      from regexp_matches(e.m->>'content',
                                                          '\{\{([^{}]*)\}\}', 'g') x(m)
                                     where callhq.fill_value(x.m[1], p_vars) is not null),
                                   0)), 0)
      from jsonb_array_elements(case when jsonb_typeof(p_msgs) = 'array'
                                     then p_msgs else '[]' end) e(m)
     where jsonb_typeof(e.m->'content') = 'string'
$$;


-- Messages ({role, content}) with fill_vars applied to each string
-- content; without variables, the messages as they are. The contents
-- filled are counted first (fill_size): past p_max bytes
-- (callhq_max_prompt_size, both for chat_begin and for a chat of a
-- session in two statements, ngx_http_callhq_turn.c) nothing is built and
-- the chat answers 400.
create or replace function callhq.fill_messages(p_msgs jsonb, p_vars jsonb,
                                                p_max bigint)
returns jsonb
language plpgsql stable
as $$
declare
    v_size  bigint;
    v_max   bigint := coalesce(p_max, 1048576);
begin
    if jsonb_typeof(p_msgs) is distinct from 'array'
       or jsonb_typeof(p_vars) is distinct from 'object' or p_vars = '{}'
    then
        return p_msgs;
    end if;

    v_size := callhq.fill_size(p_msgs, p_vars);
    if v_size > v_max then
        perform callhq.fail(400, 'assistantOverrides.variableValues would make the '
                                 'system prompts ' || v_size || ' bytes, more than '
                                 || v_max || ' (callhq_max_prompt_size)');
    end if;

    return (select coalesce(jsonb_agg(
                       case when jsonb_typeof(e.m->'content') = 'string'
                            then jsonb_set(e.m, '{content}',
                                           to_jsonb(callhq.fill_vars(e.m->>'content', p_vars)))
                            else e.m end order by e.n), '[]')
              from jsonb_array_elements(p_msgs) with ordinality e(m, n));
end
$$;


-- The context a chat was sent, as JSON array text: compact messages, the
-- roles as they went upstream (developer as system).
create or replace function callhq.chat_context(c callhq.chats)
returns text
language sql stable
as $$
    select '[' || coalesce(concat_ws(',',
        (select string_agg(callhq.message_raw_of(callhq.upstream_role(e.m->>'role'),
                                                 e.m), ',' order by e.n)
           from jsonb_array_elements(coalesce(c.messages, '[]'))
                with ordinality e(m, n)
          where c.history_to is null or e.n <= coalesce(c.prompt_count, 0)),
        (select string_agg(case when m.role = 'developer'
                                then callhq.message_raw('system', m.content)
                                else m.raw end, ',' order by m.seq)
           from callhq.messages m
          where c.history_to is not null
            and m.session_id = c.session_id
            and m.seq between c.history_from and c.history_to),
        (select string_agg(callhq.message_raw_of(callhq.upstream_role(e.m->>'role'),
                                                 e.m), ',' order by e.n)
           from jsonb_array_elements(coalesce(c.messages, '[]'))
                with ordinality e(m, n)
          where c.history_to is not null and e.n > coalesce(c.prompt_count, 0))),
        '') || ']'
$$;


-- The same as jsonb (webhook events, previousChatId).
create or replace function callhq.chat_messages(c callhq.chats)
returns jsonb
language sql stable
as $$
    select callhq.chat_context(c)::jsonb
$$;


-- A chat without its context: what chat_record answers the C module, as
-- the text jsonb would print (members ordered by the length of their name,
-- then bytewise; ", " and ": " between them; NULL members, and members
-- that are JSON null, left out; nested values as jsonb prints them), but
-- built as text in one expression that PostgreSQL inlines: building the
-- jsonb and printing it cost a fifth of a chat's database time.
create or replace function callhq.chat_head(c callhq.chats)
returns text
language sql stable
as $$
    select '{"id": "' || c.id || '"'
           || coalesce(', "name": ' || to_json(c.name)::text, '')
           || case when jsonb_typeof(c.input) <> 'null'
                   then ', "input": ' || c.input::text else '' end
           || ', "orgId": "' || c.org_id || '"'
           || case when jsonb_typeof(c.usage) <> 'null'
                   then ', "usage": ' || c.usage::text else '' end
           || case when jsonb_typeof(c.output) <> 'null'
                   then ', "output": ' || c.output::text else '' end
           || coalesce(', "status": ' || to_json(c.status::text)::text, '')
           || case when jsonb_typeof(c.metadata) <> 'null'
                   then ', "metadata": ' || c.metadata::text else '' end
           || case when jsonb_typeof(c.assistant) <> 'null'
                   then ', "assistant": '
                        || callhq.assistant_shown(c.assistant)::text
                   else '' end
           || coalesce(', "createdAt": "' || callhq.ts(c.created_at) || '"', '')
           || coalesce(', "sessionId": "' || c.session_id || '"', '')
           || coalesce(', "updatedAt": "' || callhq.ts(c.updated_at) || '"', '')
           || coalesce(', "assistantId": "' || c.assistant_id || '"', '')
           || coalesce(', "previousChatId": "' || c.previous_chat_id || '"',
                       '')
           || '}'
$$;


-- A chat as the API answers it: its members as jsonb prints them, then
-- "messages", its context.
create or replace function callhq.chat_text(c callhq.chats)
returns text
language sql stable
as $$
    select left(callhq.chat_head(c)::text, -1)
           || ', "messages": ' || callhq.chat_context(c) || '}'
$$;


-- A session's history as chat_history gives it, with the seqs of its
-- first and last message. Without bounds (0, 0), no window over it.
-- Its query is a range of the messages' primary key, always, so it runs
-- with a generic plan: with histories of unequal lengths the planner
-- judged each custom plan cheaper and planned it anew for every chat.
create or replace function callhq.chat_history_range(p_session uuid,
                                                     p_max_msgs bigint,
                                                     p_max_bytes bigint,
                                                     out history text,
                                                     out first_seq int,
                                                     out last_seq int)
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
begin
    if coalesce(p_max_msgs, 0) = 0 and coalesce(p_max_bytes, 0) = 0 then
        select string_agg(case when m.role = 'developer'
                               then callhq.message_raw('system', m.content)
                               else m.raw end, ',' order by m.seq),
               min(m.seq), max(m.seq)
          into history, first_seq, last_seq
          from callhq.messages m
         where m.session_id = p_session;
        return;
    end if;

    select string_agg(case when h.role = 'developer'
                           then callhq.message_raw('system', h.content)
                           else h.raw end, ',' order by h.seq),
           min(h.seq), max(h.seq)
      into history, first_seq, last_seq
      from (select m.seq, m.raw, m.role, m.content,
                   sum(octet_length(m.raw)) over (order by m.seq desc
                                                  rows unbounded preceding) as total
              from callhq.messages m
             where m.session_id = p_session
             order by m.seq desc
             limit nullif(p_max_msgs, 0)) h
     where p_max_bytes = 0 or h.total <= p_max_bytes;
end
$$;
