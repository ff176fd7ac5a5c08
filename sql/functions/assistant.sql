-- assistant.sql: /assistant, and how an assistant is shown and stored.
--
-- Members of the official SDK's CreateAssistantDto / UpdateAssistantDto
-- that the module has no use for (voice, transcriber, model.tools,
-- server.backoffPlan, ...) are accepted and ignored: they are not stored,
-- and GET /assistant does not show them. Unknown names still answer 400.
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


create or replace function callhq.assistant_json(a callhq.assistants)
returns jsonb
language sql stable
as $$
    select callhq.strip_nulls(jsonb_build_object(
        'id',             a.id,
        'orgId',          a.org_id,
        'name',           a.name,
        'model',          a.model,
        'firstMessage',   a.first_message,
        'server',         callhq.server_shown(a.server),
        'serverMessages', a.server_messages,
        'metadata',       a.metadata,
        'createdAt',      callhq.ts(a.created_at),
        'updatedAt',      callhq.ts(a.updated_at)))
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


-- GET /assistant: a plain array, newest first.
create or replace function callhq.api_assistant_list(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org   uuid := callhq.auth(p_key);
    v_q     callhq.list_query := callhq.parse_list(
                p_args, array['limit'] || callhq.time_params());
begin
    -- bounded by callhq_max_list_size (list_page)
    return query select 200, '[' || callhq.list_page('assistants', array(
        select a.id from callhq.assistants_matching(v_org, v_q) a
         order by a.created_at desc, a.id desc
         limit v_q.lim), callhq.opt_bigint_or(p_opts, 'maxListSize', 8388608)) || ']';
end
$$;


-- GET /assistant/{id}
create or replace function callhq.api_assistant_get(
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

    select a.* into v_a from callhq.assistants a where a.id = v_id and a.org_id = v_org;
    if not found then
        perform callhq.fail(404, 'Assistant ' || p_id || ' not found');
    end if;

    return query select 200, callhq.assistant_json(v_a)::text;
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
                                  then callhq.server_keep_secret(
                                           jsonb_strip_nulls(callhq.server_clean(callhq.jnull(p_body->'server'))),
                                           a.server)
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


-- DELETE /assistant/{id}: its sessions and chats stay, without assistantId.
create or replace function callhq.api_assistant_delete(
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

    delete from callhq.assistants a
     where a.id = v_id and a.org_id = v_org
    returning a.* into v_a;

    if not found then
        perform callhq.fail(404, 'Assistant ' || p_id || ' not found');
    end if;

    return query select 200, callhq.assistant_json(v_a)::text;
end
$$;


-- A checked message as the module keeps it: {role, content}, and a tool
-- result's tool_call_id, an assistant's tool_calls. content is the
-- message's content, else its "message" (the SDK's call-log shape of
-- user and system messages), else null for an assistant message that only
-- carries tool_calls, else ''.
-- Stable, not immutable, as message_raw (base.sql): jsonb_build_object is
-- only stable, and a SQL function is inlined only when declared no
-- stricter than its body.
create or replace function callhq.message_clean(p_msg jsonb)
returns jsonb
language sql stable parallel safe
as $$
    select jsonb_build_object('role', p_msg->'role',
                              'content', coalesce(callhq.jnull(p_msg->'content'),
                                                  callhq.jnull(p_msg->'message'),
                                                  case when jsonb_typeof(p_msg->'tool_calls')
                                                            = 'array'
                                                       then 'null'::jsonb end,
                                                  '""'::jsonb))
           || case when p_msg->>'role' = 'tool'
                        and jsonb_typeof(p_msg->'tool_call_id') = 'string'
                   then jsonb_build_object('tool_call_id', p_msg->'tool_call_id')
                   else '{}' end
           || case when p_msg->>'role' = 'assistant'
                        and jsonb_typeof(p_msg->'tool_calls') = 'array'
                   then jsonb_build_object('tool_calls', p_msg->'tool_calls')
                   else '{}' end
$$;


-- The model members of the SDK's model providers that are accepted and ignored.
create or replace function callhq.model_ignored()
returns text[]
language sql immutable
as $$
    select array['toolIds', 'toolRefs', 'knowledgeBase', 'knowledgeBaseId',
                 'emotionRecognitionEnabled', 'numFastTurns', 'fallbackModels',
                 'toolStrictCompatibilityMode', 'promptCacheRetention', 'promptCacheKey',
                 'reasoningEffort', 'thinking', 'realtimeConfig', 'metadataSendMode',
                 'headers', 'url', 'wordLevelConfidenceEnabled', 'timeoutSeconds',
                 'version', 'workflow', 'workflowId']
$$;


-- The SDK's serverMessages event names: accepted; only the five
-- session.* / chat.* events do anything (webhook.sql).
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
                 where e.key in ('provider', 'model', 'messages', 'tools', 'temperature',
                                 'maxTokens'))
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


-- A server's secret as answers show it: "whsec_…" and its last four
-- characters (none of a short one), as an API key is never shown twice.
-- The receiver that verifies the signatures knows the whole.
create or replace function callhq.secret_hint(p_secret text)
returns text
language sql immutable
as $$
    select case when p_secret like 'whsec\_%' then 'whsec_' else '' end
           || '…'
           || case when length(p_secret)
                        - case when p_secret like 'whsec\_%' then 6 else 0 end >= 16
                   then right(p_secret, 4) else '' end
$$;


-- A server (stored, or an inline assistant's) as answers show it.
create or replace function callhq.server_shown(p_server jsonb)
returns jsonb
language sql immutable
as $$
    select case when jsonb_typeof(p_server->'secret') = 'string'
                then jsonb_set(p_server, '{secret}',
                               to_jsonb(callhq.secret_hint(p_server->>'secret')))
                else p_server end
$$;


-- An inline assistant (of a session or a chat) as answers show it.
create or replace function callhq.assistant_shown(p_assistant jsonb)
returns jsonb
language sql immutable
as $$
    select case when jsonb_typeof(p_assistant->'server'->'secret') = 'string'
                then jsonb_set(p_assistant, '{server}',
                               callhq.server_shown(p_assistant->'server'))
                else p_assistant end
$$;


-- PATCH with the server a GET showed: its secret's hint keeps the secret.
create or replace function callhq.server_keep_secret(p_new jsonb, p_old jsonb)
returns jsonb
language sql immutable
as $$
    select case when jsonb_typeof(p_new->'secret') = 'string'
                     and jsonb_typeof(p_old->'secret') = 'string'
                     and p_new->>'secret' = callhq.secret_hint(p_old->>'secret')
                then jsonb_set(p_new, '{secret}', p_old->'secret')
                else p_new end
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


-- Chats made with a deleted assistant keep no link to it (chats.assistant_id
-- is not a foreign key: a key's check on every chat would lock the
-- assistant's row). A chat recorded while its assistant is being deleted
-- may keep the id.
create or replace function callhq.assistant_chats_unlink()
returns trigger
language plpgsql
as $$
begin
    update callhq.chats c set assistant_id = null where c.assistant_id = old.id;
    return null;
end
$$;

drop trigger if exists assistant_chats_unlink on callhq.assistants;
create trigger assistant_chats_unlink
    after delete on callhq.assistants
    for each row execute function callhq.assistant_chats_unlink();
