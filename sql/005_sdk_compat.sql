-- 005_sdk_compat.sql: accept what the official @vapi-ai/server-sdk (2.0.1)
-- sends (clients/sdk-compat/sdk.test.mjs).
--
--   GET /chat      id and idAny filters, as GET /session; squadId accepted
--                  and ignored
--   GET /session   customer filters number, email, externalId (exact match
--                  on customer.number, .email, .externalId); the SDK's
--                  squadId, workflowId, phoneNumberId, phoneNumberIdAny,
--                  sipUri, extension, numberE164CheckEnabled,
--                  assistantOverrides and squadOverrides accepted and
--                  ignored: the module has no squads, workflows, phone
--                  numbers or SIP, so there is nothing to filter on (they
--                  do not narrow the list)
--   both lists     sortBy duration and cost, sorted as createdAt
--   messages       (session messages, chat input, assistant model.messages)
--                  role developer (stored as developer, sent upstream as
--                  system); name, metadata, tool_call_id, tool_calls,
--                  refusal and the SDK's call-log members (time, endTime,
--                  secondsFromStart, ...) accepted and ignored; "message"
--                  stands for a missing content; an assistant message may
--                  have no content (stored as ""). Stored as {role, content}.
--   assistants     (POST/PATCH /assistant, inline ones of sessions and
--                  chats) the other members of the SDK's CreateAssistantDto,
--                  model and server accepted and ignored: not stored; the
--                  SDK's serverMessages names accepted and stored, only the
--                  five session/chat events send webhooks
--   assistantOverrides  on POST /session (kept with the session) and
--                  POST /chat: variableValues fill {{name}} in the
--                  assistant's system prompts sent upstream; its other
--                  members are accepted and ignored
--
-- Only the functions that change are redefined; each is a copy of the one
-- in 002_api.sql or 003_chat.sql with the change.


------------------------------------------------------------------------------
-- Messages
------------------------------------------------------------------------------

-- A checked message as the module keeps it: {role, content}. content is
-- the message's content, else its "message" (the SDK's call-log shape of
-- user and system messages), else '' (an assistant message that only
-- carries tool_calls).
create or replace function callhq.message_clean(p_msg jsonb)
returns jsonb
language sql immutable parallel safe
as $$
    select jsonb_build_object('role', p_msg->'role',
                              'content', coalesce(callhq.jnull(p_msg->'content'),
                                                  callhq.jnull(p_msg->'message'),
                                                  '""'::jsonb))
$$;


-- The role a message has upstream: developer goes as system, since not
-- every OpenAI-compatible server knows "developer".
create or replace function callhq.upstream_role(p_role text)
returns text
language sql immutable parallel safe
as $$
    select case when p_role = 'developer' then 'system' else p_role end
$$;


-- [{role, content}]: role one of system, user, assistant, tool, developer;
-- content a string (see message_clean). Returns the messages as
-- message_clean makes them.
create or replace function callhq.check_messages(p_value jsonb, p_path text,
                                                 p_required boolean default false)
returns jsonb
language plpgsql
as $$
declare
    v_msg   jsonb;
    v_n     bigint;
    v_path  text;
    v_role  text;
    v_out   jsonb := '[]';
begin
    if callhq.check_array(p_value, p_path, p_required) is null then
        return null;
    end if;

    for v_msg, v_n in
        select e.value, e.n - 1 from jsonb_array_elements(p_value) with ordinality e(value, n)
    loop
        v_path := p_path || '[' || v_n || ']';
        perform callhq.check_object(v_msg, v_path, true);
        -- the members of the SDK's message types that the module has no use
        -- for are accepted and ignored (not stored)
        perform callhq.check_fields(v_msg, array['role', 'content', 'message',
                                                 'name', 'metadata', 'tool_call_id',
                                                 'tool_calls', 'refusal', 'time',
                                                 'endTime', 'secondsFromStart', 'duration',
                                                 'isFiltered', 'detectedThreats',
                                                 'originalMessage', 'speakerLabel'],
                                    v_path || '.');
        v_role := callhq.check_enum(v_msg->'role', v_path || '.role',
                                    array['system', 'user', 'assistant', 'tool',
                                          'developer'], true);
        -- content: required, but "message" stands for it, and an assistant
        -- message may have neither
        if callhq.check_string(v_msg->'content', v_path || '.content', null,
                               v_role <> 'assistant'
                               and callhq.jnull(v_msg->'message') is null) is null
        then
            perform callhq.check_string(v_msg->'message', v_path || '.message');
        end if;
        v_out := v_out || jsonb_build_array(callhq.message_clean(v_msg));
    end loop;
    return v_out;
end
$$;


------------------------------------------------------------------------------
-- Assistants: the SDK's CreateAssistantDto / UpdateAssistantDto
--
-- Members the module has no use for (voice, transcriber, model.tools,
-- server.backoffPlan, ...) are accepted and ignored: they are not stored,
-- and GET /assistant does not show them. Unknown names still answer 400.
------------------------------------------------------------------------------

-- The model members of the SDK's model providers that are accepted and ignored.
create or replace function callhq.model_ignored()
returns text[]
language sql immutable
as $$
    select array['tools', 'toolIds', 'toolRefs', 'knowledgeBase', 'knowledgeBaseId',
                 'emotionRecognitionEnabled', 'numFastTurns', 'fallbackModels',
                 'toolStrictCompatibilityMode', 'promptCacheRetention', 'promptCacheKey',
                 'reasoningEffort', 'thinking', 'realtimeConfig', 'metadataSendMode',
                 'headers', 'url', 'wordLevelConfidenceEnabled', 'timeoutSeconds',
                 'version', 'workflow', 'workflowId']
$$;


-- The SDK's serverMessages event names: accepted; only the five
-- session.* / chat.* events do anything (004_webhooks.sql).
create or replace function callhq.server_message_names()
returns text[]
language sql immutable
as $$
    select array['assistant.started', 'assistant.speechStarted', 'conversation-update',
                 'end-of-call-report', 'function-call', 'hang', 'language-changed',
                 'language-change-detected', 'model-output', 'phone-call-control',
                 'speech-update', 'status-update', 'transcript',
                 'transcript[transcriptType="final"]', 'tool-calls',
                 'transfer-destination-request', 'handoff-destination-request',
                 'transfer-update', 'user-interrupted', 'voice-input', 'call.deleted',
                 'call.delete.failed', 'call.artifact.upload']
$$;


-- A checked model as stored: the members the module uses, messages as
-- message_clean makes them.
create or replace function callhq.model_clean(p_model jsonb)
returns jsonb
language sql immutable
as $$
    select case when jsonb_typeof(p_model) = 'object' then
               (select coalesce(jsonb_object_agg(e.key,
                           case when e.key = 'messages' and jsonb_typeof(e.value) = 'array'
                                then (select coalesce(jsonb_agg(callhq.message_clean(x.m)
                                                                order by x.n), '[]')
                                        from jsonb_array_elements(e.value)
                                             with ordinality x(m, n))
                                else e.value end), '{}')
                  from jsonb_each(p_model) e
                 where e.key in ('provider', 'model', 'messages', 'temperature', 'maxTokens'))
           else p_model end
$$;


-- A checked server as stored: url, secret, headers, timeoutSeconds.
create or replace function callhq.server_clean(p_server jsonb)
returns jsonb
language sql immutable
as $$
    select case when jsonb_typeof(p_server) = 'object' then
               (select coalesce(jsonb_object_agg(e.key, e.value), '{}')
                  from jsonb_each(p_server) e
                 where e.key in ('url', 'secret', 'headers', 'timeoutSeconds'))
           else p_server end
$$;


-- A checked inline assistant as stored: its members the module uses.
create or replace function callhq.assistant_clean(p_obj jsonb)
returns jsonb
language sql immutable
as $$
    select case when jsonb_typeof(p_obj) = 'object' then
               (select coalesce(jsonb_object_agg(e.key,
                           case e.key when 'model' then callhq.model_clean(e.value)
                                      when 'server' then callhq.server_clean(e.value)
                                      else e.value end), '{}')
                  from jsonb_each(p_obj) e
                 where e.key in ('name', 'model', 'firstMessage', 'server',
                                 'serverMessages', 'metadata'))
           else p_obj end
$$;


-- {provider, model, messages, temperature, maxTokens}; model.model required;
-- the members of model_ignored() accepted and ignored.
create or replace function callhq.check_model(p_value jsonb, p_path text)
returns jsonb
language plpgsql
as $$
begin
    if callhq.check_object(p_value, p_path) is null then
        return null;
    end if;

    perform callhq.check_fields(p_value, array['provider', 'model', 'messages',
                                               'temperature', 'maxTokens']
                                         || callhq.model_ignored(), p_path || '.');
    perform callhq.check_string(p_value->'provider', p_path || '.provider', 100);
    perform callhq.check_string(p_value->'model', p_path || '.model', 200, true);
    perform callhq.check_messages(p_value->'messages', p_path || '.messages');
    perform callhq.check_number(p_value->'temperature', p_path || '.temperature', 0, 2);
    perform callhq.check_int(p_value->'maxTokens', p_path || '.maxTokens', 1, 1000000);
    return p_value;
end
$$;


-- {url, secret, headers, timeoutSeconds}: where webhooks go; the SDK's
-- credentialId, backoffPlan, staticIpAddressesEnabled, encryptedPaths are
-- accepted and ignored.
create or replace function callhq.check_server(p_value jsonb, p_path text)
returns jsonb
language plpgsql
as $$
declare
    v_url    text;
    v_name   text;
    v_value  jsonb;
begin
    if callhq.check_object(p_value, p_path) is null then
        return null;
    end if;

    perform callhq.check_fields(p_value, array['url', 'secret', 'headers',
                                               'timeoutSeconds',
                                               -- the SDK's, accepted and ignored
                                               'credentialId', 'backoffPlan',
                                               'staticIpAddressesEnabled',
                                               'encryptedPaths'], p_path || '.');

    v_url := callhq.check_string(p_value->'url', p_path || '.url', 2048, true);
    if v_url !~* '^https?://[^[:space:][:cntrl:]]+$' then
        perform callhq.fail(400, p_path || '.url must be an http:// or https:// URL');
    end if;

    perform callhq.check_string(p_value->'secret', p_path || '.secret', 1000);

    if callhq.check_object(p_value->'headers', p_path || '.headers') is not null then
        for v_name, v_value in select e.key, e.value from jsonb_each(p_value->'headers') e
        loop
            if v_name !~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]+$' then
                perform callhq.fail(400, p_path || '.headers.' || v_name
                                         || ' is not a valid header name');
            end if;
            if callhq.check_string(v_value, p_path || '.headers.' || v_name, 8192, true)
               ~ '[[:cntrl:]]'
            then
                perform callhq.fail(400, p_path || '.headers.' || v_name
                                         || ' must not contain control characters');
            end if;
        end loop;
    end if;

    perform callhq.check_int(p_value->'timeoutSeconds', p_path || '.timeoutSeconds', 1, 300);
    return p_value;
end
$$;


-- Event names an assistant's server receives (all five when absent); the
-- SDK's other names (server_message_names()) are accepted, and ignored.
create or replace function callhq.check_server_messages(p_value jsonb, p_path text)
returns jsonb
language plpgsql
as $$
declare
    v_event  jsonb;
    v_n      bigint;
begin
    if callhq.check_array(p_value, p_path) is null then
        return null;
    end if;

    for v_event, v_n in
        select e.value, e.n - 1 from jsonb_array_elements(p_value) with ordinality e(value, n)
    loop
        -- the SDK's other event names are accepted and stored (and send
        -- nothing); the error names the five that do something
        if not (jsonb_typeof(v_event) = 'string'
                and (v_event #>> '{}') = any (callhq.server_message_names()))
        then
            perform callhq.check_enum(v_event, p_path || '[' || v_n || ']',
                                      array['session.created', 'session.updated',
                                            'session.deleted', 'chat.created',
                                            'chat.deleted'], true);
        end if;
    end loop;
    return p_value;
end
$$;


-- The fields of an assistant (POST/PATCH /assistant, or a session's or a
-- chat's inline assistant with p_prefix 'assistant.'); p_obj is an object.
create or replace function callhq.check_assistant(p_obj jsonb, p_prefix text)
returns jsonb
language plpgsql
as $$
begin
    perform callhq.check_fields(p_obj, array['name', 'model', 'firstMessage', 'server',
                                             'serverMessages', 'metadata',
                                             -- the SDK's CreateAssistantDto, accepted
                                             -- and ignored (not stored)
                                             'transcriber', 'voice',
                                             'firstMessageInterruptionsEnabled',
                                             'firstMessageMode', 'voicemailDetection',
                                             'clientMessages', 'maxDurationSeconds',
                                             'backgroundSound',
                                             'modelOutputInMessagesEnabled',
                                             'transportConfigurations',
                                             'observabilityPlan', 'credentials', 'hooks',
                                             'voicemailMessage', 'endCallMessage',
                                             'endCallPhrases', 'compliancePlan',
                                             'backgroundSpeechDenoisingPlan',
                                             'analysisPlan', 'artifactPlan',
                                             'startSpeakingPlan', 'stopSpeakingPlan',
                                             'monitorPlan', 'credentialIds',
                                             'keypadInputPlan',
                                             -- ... and of earlier SDK versions
                                             'silenceTimeoutSeconds',
                                             'backgroundDenoisingEnabled'], p_prefix);
    perform callhq.check_string(p_obj->'name', p_prefix || 'name', 40);
    perform callhq.check_model(p_obj->'model', p_prefix || 'model');
    perform callhq.check_string(p_obj->'firstMessage', p_prefix || 'firstMessage');
    perform callhq.check_server(p_obj->'server', p_prefix || 'server');
    perform callhq.check_server_messages(p_obj->'serverMessages', p_prefix || 'serverMessages');
    perform callhq.check_object(p_obj->'metadata', p_prefix || 'metadata');
    return p_obj;
end
$$;


-- assistantOverrides of POST /session and POST /chat: an object; of its
-- members only variableValues is used ({name: value}, values strings,
-- numbers or booleans; null ones are skipped), the others are accepted and
-- ignored. Returns {"variableValues": ...}, or NULL when there are none.
create or replace function callhq.check_overrides(p_value jsonb, p_path text)
returns jsonb
language plpgsql
as $$
declare
    v_vars   jsonb;
    v_name   text;
    v_value  jsonb;
begin
    if callhq.check_object(p_value, p_path) is null then
        return null;
    end if;
    v_vars := callhq.check_object(p_value->'variableValues', p_path || '.variableValues');
    if v_vars is null then
        return null;
    end if;

    for v_name, v_value in select e.key, e.value from jsonb_each(v_vars) e
    loop
        if jsonb_typeof(v_value) not in ('string', 'number', 'boolean', 'null') then
            perform callhq.fail(400, p_path || '.variableValues.' || v_name
                                     || ' must be a string, number or boolean');
        end if;
    end loop;
    v_vars := callhq.strip_nulls(v_vars);
    if v_vars = '{}' then
        return null;
    end if;
    return jsonb_build_object('variableValues', v_vars);
end
$$;


-- p_text with {{name}} (or {{ name }}) replaced by each variable of p_vars
-- that has a value; other {{...}} stay as they are.
create or replace function callhq.fill_vars(p_text text, p_vars jsonb)
returns text
language plpgsql immutable
as $$
declare
    v_text   text := p_text;
    v_name   text;
    v_value  text;
begin
    if p_text is null or jsonb_typeof(p_vars) is distinct from 'object'
       or position('{{' in p_text) = 0
    then
        return p_text;
    end if;

    for v_name, v_value in
        select e.key, case when jsonb_typeof(e.value) = 'string'
                           then e.value #>> '{}' else e.value::text end
          from jsonb_each(p_vars) e
         where jsonb_typeof(e.value) <> 'null'
    loop
        v_text := replace(replace(v_text, '{{' || v_name || '}}', v_value),
                          '{{ ' || v_name || ' }}', v_value);
    end loop;
    return v_text;
end
$$;


-- Messages ({role, content}) with fill_vars applied to each string content.
create or replace function callhq.fill_messages(p_msgs jsonb, p_vars jsonb)
returns jsonb
language sql immutable
as $$
    select case when jsonb_typeof(p_msgs) = 'array' and jsonb_typeof(p_vars) = 'object'
                     and p_vars <> '{}'
                then (select coalesce(jsonb_agg(
                                 case when jsonb_typeof(e.m->'content') = 'string'
                                      then jsonb_set(e.m, '{content}',
                                                     to_jsonb(callhq.fill_vars(e.m->>'content',
                                                                               p_vars)))
                                      else e.m end order by e.n), '[]')
                        from jsonb_array_elements(p_msgs) with ordinality e(m, n))
                else p_msgs end
$$;


------------------------------------------------------------------------------
-- Schema
------------------------------------------------------------------------------

-- assistant_overrides  {"variableValues": {...}} given with POST /session
--                      (or the POST /chat that opened a customer's session):
--                      the variables of every chat of the session
alter table callhq.sessions add column assistant_overrides jsonb;

-- The customer filters of GET /session (number, email, externalId).
alter type callhq.list_query
    add attribute customer_number    text,
    add attribute customer_email     text,
    add attribute customer_external  text;


-- Parse a list's query string; p_allowed names the parameters it takes.
create or replace function callhq.parse_list(p_args jsonb, p_allowed text[])
returns callhq.list_query
language plpgsql stable
as $$
declare
    v_args   jsonb := callhq.check_args(p_args, p_allowed);
    v_order  text  := v_args->>'sortOrder';
    q        callhq.list_query;
begin
    q.page := coalesce(callhq.param_int(v_args, 'page', 1, 1000000), 1);
    q.lim  := coalesce(callhq.param_int(v_args, 'limit', 1, 1000), 100);

    if v_order is not null and upper(v_order) not in ('ASC', 'DESC') then
        perform callhq.fail(400, 'sortOrder must be one of ASC, DESC');
    end if;
    q.sort_asc := coalesce(upper(v_order) = 'ASC', false);

    -- duration and cost (the SDK's) sort as createdAt
    if v_args->>'sortBy' not in ('createdAt', 'duration', 'cost') then
        perform callhq.fail(400, 'sortBy must be one of createdAt, duration, cost');
    end if;

    q.id               := callhq.param_uuid(v_args, 'id');
    q.ids              := callhq.param_uuid_list(v_args, 'idAny');
    q.name             := v_args->>'name';
    q.assistant_id     := callhq.param_uuid(v_args, 'assistantId');
    q.assistant_ids    := callhq.param_uuid_list(v_args, 'assistantIdAny');
    q.customer_numbers := callhq.param_list(v_args, 'customerNumberAny');
    q.customer_number  := v_args->>'number';
    q.customer_email   := v_args->>'email';
    q.customer_external := v_args->>'externalId';
    q.session_id       := callhq.param_uuid(v_args, 'sessionId');
    q.previous_chat_id := callhq.param_uuid(v_args, 'previousChatId');
    q.created_gt       := callhq.param_ts(v_args, 'createdAtGt');
    q.created_lt       := callhq.param_ts(v_args, 'createdAtLt');
    q.created_ge       := callhq.param_ts(v_args, 'createdAtGe');
    q.created_le       := callhq.param_ts(v_args, 'createdAtLe');
    q.updated_gt       := callhq.param_ts(v_args, 'updatedAtGt');
    q.updated_lt       := callhq.param_ts(v_args, 'updatedAtLt');
    q.updated_ge       := callhq.param_ts(v_args, 'updatedAtGe');
    q.updated_le       := callhq.param_ts(v_args, 'updatedAtLe');
    return q;
end
$$;


create or replace function callhq.sessions_matching(p_org uuid, q callhq.list_query)
returns setof callhq.sessions
language sql stable
as $$
    select s.*
      from callhq.sessions s
     where s.org_id = p_org
       and ((q).id is null or s.id = (q).id)
       and ((q).ids is null or s.id = any ((q).ids))
       and ((q).name is null or s.name = (q).name)
       and ((q).assistant_id is null or s.assistant_id = (q).assistant_id)
       and ((q).assistant_ids is null or s.assistant_id = any ((q).assistant_ids))
       and ((q).customer_numbers is null
            or s.customer->>'number' = any ((q).customer_numbers))
       and ((q).customer_number is null or s.customer->>'number' = (q).customer_number)
       and ((q).customer_email is null or s.customer->>'email' = (q).customer_email)
       and ((q).customer_external is null
            or s.customer->>'externalId' = (q).customer_external)
       and ((q).created_gt is null or s.created_at >  (q).created_gt)
       and ((q).created_lt is null or s.created_at <  (q).created_lt)
       and ((q).created_ge is null or s.created_at >= (q).created_ge)
       and ((q).created_le is null or s.created_at <= (q).created_le)
       and ((q).updated_gt is null or s.updated_at >  (q).updated_gt)
       and ((q).updated_lt is null or s.updated_at <  (q).updated_lt)
       and ((q).updated_ge is null or s.updated_at >= (q).updated_ge)
       and ((q).updated_le is null or s.updated_at <= (q).updated_le)
$$;


create or replace function callhq.chats_matching(p_org uuid, q callhq.list_query)
returns setof callhq.chats
language sql stable
as $$
    select c.*
      from callhq.chats c
     where c.org_id = p_org
       and ((q).id is null or c.id = (q).id)
       and ((q).ids is null or c.id = any ((q).ids))
       and ((q).assistant_id is null or c.assistant_id = (q).assistant_id)
       and ((q).assistant_ids is null or c.assistant_id = any ((q).assistant_ids))
       and ((q).session_id is null or c.session_id = (q).session_id)
       and ((q).previous_chat_id is null or c.previous_chat_id = (q).previous_chat_id)
       and ((q).created_gt is null or c.created_at >  (q).created_gt)
       and ((q).created_lt is null or c.created_at <  (q).created_lt)
       and ((q).created_ge is null or c.created_at >= (q).created_ge)
       and ((q).created_le is null or c.created_at <= (q).created_le)
       and ((q).updated_gt is null or c.updated_at >  (q).updated_gt)
       and ((q).updated_lt is null or c.updated_at <  (q).updated_lt)
       and ((q).updated_ge is null or c.updated_at >= (q).updated_ge)
       and ((q).updated_le is null or c.updated_at <= (q).updated_le)
$$;


-- GET /session: {results, metadata}; rows without messages.
create or replace function callhq.api_session_list(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org     uuid := callhq.auth(p_key);
    v_q       callhq.list_query := callhq.parse_list(
                  p_args, array['page', 'limit', 'sortOrder', 'sortBy', 'id', 'idAny',
                                'name', 'assistantId', 'assistantIdAny',
                                'customerNumberAny', 'number', 'email', 'externalId',
                                -- the SDK's, accepted and ignored: the module
                                -- has no squads, workflows, phone numbers or
                                -- SIP, and sessions no overrides to filter on
                                'squadId', 'workflowId', 'phoneNumberId',
                                'phoneNumberIdAny', 'sipUri', 'extension',
                                'numberE164CheckEnabled', 'assistantOverrides',
                                'squadOverrides'] || callhq.time_params());
    v_offset  bigint := (v_q.page - 1)::bigint * v_q.lim;
    v_total   bigint;
    v_rows    jsonb;
begin
    select count(*) into v_total from callhq.sessions_matching(v_org, v_q);

    if v_q.sort_asc then
        select coalesce(jsonb_agg(callhq.session_json(x) order by t.created_at, t.id), '[]')
          into v_rows
          from (select s.id, s.created_at
                  from callhq.sessions_matching(v_org, v_q) s
                 order by s.created_at, s.id
                 limit v_q.lim offset v_offset) t
          join callhq.sessions x on x.id = t.id;
    else
        select coalesce(jsonb_agg(callhq.session_json(x) order by t.created_at desc, t.id desc), '[]')
          into v_rows
          from (select s.id, s.created_at
                  from callhq.sessions_matching(v_org, v_q) s
                 order by s.created_at desc, s.id desc
                 limit v_q.lim offset v_offset) t
          join callhq.sessions x on x.id = t.id;
    end if;

    return query select 200, jsonb_build_object(
        'results',  v_rows,
        'metadata', callhq.list_metadata(v_q, v_total))::text;
end
$$;


-- GET /chat: {results, metadata}, as GET /session.
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
    v_rows    jsonb;
begin
    select count(*) into v_total from callhq.chats_matching(v_org, v_q);

    if v_q.sort_asc then
        select coalesce(jsonb_agg(callhq.chat_json(x) order by t.created_at, t.id), '[]')
          into v_rows
          from (select c.id, c.created_at
                  from callhq.chats_matching(v_org, v_q) c
                 order by c.created_at, c.id
                 limit v_q.lim offset v_offset) t
          join callhq.chats x on x.id = t.id;
    else
        select coalesce(jsonb_agg(callhq.chat_json(x) order by t.created_at desc, t.id desc), '[]')
          into v_rows
          from (select c.id, c.created_at
                  from callhq.chats_matching(v_org, v_q) c
                 order by c.created_at desc, c.id desc
                 limit v_q.lim offset v_offset) t
          join callhq.chats x on x.id = t.id;
    end if;

    return query select 200, jsonb_build_object(
        'results',  v_rows,
        'metadata', callhq.list_metadata(v_q, v_total))::text;
end
$$;


-- A session without its messages (list rows); with assistantOverrides now.
create or replace function callhq.session_json(s callhq.sessions)
returns jsonb
language sql stable
as $$
    select callhq.strip_nulls(jsonb_build_object(
        'id',                s.id,
        'orgId',             s.org_id,
        'name',              s.name,
        'status',            callhq.session_status(s),
        'expirationSeconds', s.expiration_seconds,
        'expiresAt',         callhq.ts(s.expires_at),
        'assistantId',       s.assistant_id,
        'assistant',         s.assistant,
        'assistantOverrides', s.assistant_overrides,
        'customer',          s.customer,
        'metadata',          s.metadata,
        'createdAt',         callhq.ts(s.created_at),
        'updatedAt',         callhq.ts(s.updated_at)))
$$;


-- POST /assistant
create or replace function callhq.api_assistant_create(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_a    callhq.assistants;
begin
    perform callhq.check_args(p_args, '{}');
    perform callhq.check_assistant(callhq.check_body(p_body), '');

    insert into callhq.assistants (org_id, name, model, first_message, server,
                                   server_messages, metadata)
    values (v_org,
            p_body->>'name',
            jsonb_strip_nulls(callhq.model_clean(callhq.jnull(p_body->'model'))),
            p_body->>'firstMessage',
            jsonb_strip_nulls(callhq.server_clean(callhq.jnull(p_body->'server'))),
            callhq.jnull(p_body->'serverMessages'),
            callhq.jnull(p_body->'metadata'))
    returning * into v_a;

    return query select 201, callhq.assistant_json(v_a)::text;
end
$$;


-- PATCH /assistant/{id}: the given members replace the stored ones (null
-- clears one); model and server are replaced whole, not merged.
create or replace function callhq.api_assistant_update(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_id   uuid := callhq.path_id(p_id, 'Assistant');
    v_a    callhq.assistants;
begin
    perform callhq.check_args(p_args, '{}');
    perform callhq.check_assistant(callhq.check_body(p_body), '');

    update callhq.assistants a
       set name            = case when p_body ? 'name'
                                  then p_body->>'name' else a.name end,
           model           = case when p_body ? 'model'
                                  then jsonb_strip_nulls(callhq.model_clean(callhq.jnull(p_body->'model')))
                                  else a.model end,
           first_message   = case when p_body ? 'firstMessage'
                                  then p_body->>'firstMessage' else a.first_message end,
           server          = case when p_body ? 'server'
                                  then jsonb_strip_nulls(callhq.server_clean(callhq.jnull(p_body->'server')))
                                  else a.server end,
           server_messages = case when p_body ? 'serverMessages'
                                  then callhq.jnull(p_body->'serverMessages')
                                  else a.server_messages end,
           metadata        = case when p_body ? 'metadata'
                                  then callhq.jnull(p_body->'metadata') else a.metadata end,
           updated_at      = callhq.now_ms()
     where a.id = v_id and a.org_id = v_org
    returning a.* into v_a;

    if not found then
        perform callhq.fail(404, 'Assistant ' || p_id || ' not found');
    end if;

    return query select 200, callhq.assistant_json(v_a)::text;
end
$$;


-- POST /session: with assistantOverrides (its variableValues kept for the
-- session's chats).
create or replace function callhq.api_session_create(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org           uuid := callhq.auth(p_key);
    v_body          jsonb;
    v_assistant_id  uuid;
    v_assistant     jsonb;
    v_expiration    int;
    v_status        text;
    v_msgs          jsonb;
    v_overrides     jsonb;
    v_s             callhq.sessions;
begin
    perform callhq.check_args(p_args, '{}');
    v_body := callhq.check_body(p_body);

    perform callhq.check_fields(v_body, array['name', 'assistantId', 'assistant',
                                              'expirationSeconds', 'status', 'messages',
                                              'customer', 'metadata',
                                              'assistantOverrides'], '');
    perform callhq.check_string(v_body->'name', 'name', 40);
    v_assistant_id := callhq.check_uuid(v_body->'assistantId', 'assistantId');
    if v_assistant_id is null then
        v_assistant := callhq.check_object(v_body->'assistant', 'assistant');
        if v_assistant is not null then
            perform callhq.check_assistant(v_assistant, 'assistant.');
            v_assistant := callhq.assistant_clean(v_assistant);
        end if;
    end if;
    v_expiration := coalesce(
        callhq.check_int(v_body->'expirationSeconds', 'expirationSeconds', 60, 2592000),
        callhq.opt_int(p_opts, 'defaultExpirationSeconds'),
        86400);
    v_status := coalesce(callhq.check_enum(v_body->'status', 'status',
                                           array['active', 'completed']), 'active');
    v_msgs := callhq.check_messages(v_body->'messages', 'messages');
    perform callhq.check_customer(v_body->'customer', 'customer');
    perform callhq.check_object(v_body->'metadata', 'metadata');
    v_overrides := callhq.check_overrides(v_body->'assistantOverrides', 'assistantOverrides');

    -- key share: the assistant cannot be deleted before this commits
    if v_assistant_id is not null then
        perform 1 from callhq.assistants a
         where a.id = v_assistant_id and a.org_id = v_org
           for key share;
        if not found then
            perform callhq.fail(404, 'Assistant ' || (v_body->>'assistantId') || ' not found');
        end if;
    end if;

    insert into callhq.sessions (org_id, assistant_id, assistant, name, status,
                                 expiration_seconds, expires_at, customer, metadata,
                                 next_seq, assistant_overrides)
    values (v_org, v_assistant_id, v_assistant, v_body->>'name', v_status,
            v_expiration, callhq.now_ms() + make_interval(secs => v_expiration),
            jsonb_strip_nulls(callhq.jnull(v_body->'customer')),
            callhq.jnull(v_body->'metadata'),
            1 + coalesce(jsonb_array_length(v_msgs), 0),
            v_overrides)
    returning * into v_s;

    perform callhq.messages_insert(v_s.id, v_msgs, 1);

    return query select 201, callhq.session_body(v_s);
end
$$;


------------------------------------------------------------------------------
-- Chat: developer messages go upstream as system; assistantOverrides
------------------------------------------------------------------------------

-- The messages of a JSON array ({role, content} each) as compact JSON
-- joined by ',', without brackets, developer as system; NULL when there
-- are none.
create or replace function callhq.chat_raws(p_msgs jsonb)
returns text
language sql immutable
as $$
    select string_agg(callhq.message_raw(callhq.upstream_role(e.m->>'role'), e.m->'content'), ','
                      order by e.n)
      from jsonb_array_elements(case when jsonb_typeof(p_msgs) = 'array'
                                     then p_msgs else '[]' end)
           with ordinality e(m, n)
$$;


-- A session's history as sent upstream (as in 003_chat.sql), developer
-- messages as system: those are decoded and encoded again, the others
-- spliced as stored.
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
-- previousChatId (as in 003_chat.sql), developer as system.
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
        select e.n, callhq.message_raw(callhq.upstream_role(e.m->>'role'), e.m->'content') as raw
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


-- POST /chat, before the model: as in 003_chat.sql, and
--   assistantOverrides  accepted; its variableValues, over those stored with
--                       the session, fill {{name}} in the contents of the
--                       assistant's model.messages sent upstream. A customer
--                       session that this chat opens keeps them.
--   developer           messages go upstream as system (chat_raws).
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
    v_overrides     jsonb;      -- the body's assistantOverrides
    v_vars          jsonb;      -- the variables of the assistant's prompts
begin
    v_body := callhq.check_body(p_body);

    -- the body, field by field
    perform callhq.check_fields(v_body, array['input', 'sessionId', 'previousChatId',
                                              'assistantId', 'assistant', 'customer',
                                              'name', 'stream', 'metadata',
                                              'assistantOverrides'], '');
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
                                     customer, renew_on_activity, busy_chat, busy_until,
                                     assistant_overrides)
        values (v_org, v_use_id, v_expiration,
                callhq.now_ms() + make_interval(secs => v_expiration),
                callhq.strip_nulls(v_customer), true,
                v_chat, now() + make_interval(secs => v_lease),
                v_overrides)
        returning * into v_s;

    elsif v_prev.id is not null then
        v_history := callhq.chat_previous_history(v_prev, v_max_msgs, v_max_bytes);
    end if;

    -- the session's variables, and over them the chat's own
    v_vars := coalesce(v_s.assistant_overrides->'variableValues', '{}')
              || coalesce(v_overrides->'variableValues', '{}');
    v_prompts := callhq.chat_raws(callhq.fill_messages(v_model->'messages', v_vars));

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

