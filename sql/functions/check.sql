-- check.sql: validation of request bodies.
--
-- Each check_* takes a member (SQL NULL when absent) and its path as the
-- client wrote it ('model.temperature', 'messages[2].role'), raises 400
-- naming that path when the value is wrong, and returns the value (SQL NULL
-- when absent or JSON null). With p_required, absent or null is an error.
-- path_id checks the {id} path segment.
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


create or replace function callhq.check_present(p_value jsonb, p_path text,
                                                p_required boolean)
returns boolean
language plpgsql
as $$
begin
    if p_value is not null and jsonb_typeof(p_value) <> 'null' then
        return true;
    end if;
    if p_required then
        perform callhq.fail(400, p_path || case when p_value is null
                                                then ' is required'
                                                else ' must not be null' end);
    end if;
    return false;
end
$$;


-- The request body: must be a JSON object.
create or replace function callhq.check_body(p_body jsonb)
returns jsonb
language plpgsql
as $$
begin
    if p_body is null or jsonb_typeof(p_body) <> 'object' then
        perform callhq.fail(400, 'body must be a JSON object');
    end if;
    return p_body;
end
$$;


-- Members of p_obj (an object) outside p_allowed: 400 naming the first.
create or replace function callhq.check_fields(p_obj jsonb, p_allowed text[],
                                               p_prefix text)
returns void
language plpgsql
as $$
declare
    v_key  text;
begin
    select e.key into v_key
      from jsonb_object_keys(p_obj) e(key)
     where e.key <> all (p_allowed)
     limit 1;

    if v_key is not null then
        perform callhq.fail(400, 'property ' || p_prefix || v_key || ' should not exist');
    end if;
end
$$;


create or replace function callhq.check_string(p_value jsonb, p_path text,
                                               p_max int default null,
                                               p_required boolean default false)
returns text
language plpgsql
as $$
declare
    v_text  text;
begin
    if not callhq.check_present(p_value, p_path, p_required) then
        return null;
    end if;
    if jsonb_typeof(p_value) <> 'string' then
        perform callhq.fail(400, p_path || ' must be a string');
    end if;

    v_text := p_value #>> '{}';
    if p_max is not null and char_length(v_text) > p_max then
        perform callhq.fail(400, p_path || ' must be at most ' || p_max || ' characters');
    end if;
    return v_text;
end
$$;


create or replace function callhq.check_int(p_value jsonb, p_path text,
                                            p_min int, p_max int,
                                            p_required boolean default false)
returns int
language plpgsql
as $$
declare
    v_num  numeric;
begin
    if not callhq.check_present(p_value, p_path, p_required) then
        return null;
    end if;
    if jsonb_typeof(p_value) = 'number' then
        v_num := p_value::numeric;
    end if;
    if v_num is null or v_num <> trunc(v_num) or v_num < p_min or v_num > p_max then
        perform callhq.fail(400, p_path || ' must be an integer between '
                                 || p_min || ' and ' || p_max);
    end if;
    return v_num::int;
end
$$;


create or replace function callhq.check_number(p_value jsonb, p_path text,
                                               p_min numeric, p_max numeric,
                                               p_required boolean default false)
returns numeric
language plpgsql
as $$
declare
    v_num  numeric;
begin
    if not callhq.check_present(p_value, p_path, p_required) then
        return null;
    end if;
    if jsonb_typeof(p_value) = 'number' then
        v_num := p_value::numeric;
    end if;
    if v_num is null or v_num < p_min or v_num > p_max then
        perform callhq.fail(400, p_path || ' must be a number between '
                                 || p_min || ' and ' || p_max);
    end if;
    return v_num;
end
$$;


create or replace function callhq.check_enum(p_value jsonb, p_path text,
                                             p_allowed text[],
                                             p_required boolean default false)
returns text
language plpgsql
as $$
begin
    if not callhq.check_present(p_value, p_path, p_required) then
        return null;
    end if;
    if jsonb_typeof(p_value) <> 'string' or (p_value #>> '{}') <> all (p_allowed) then
        perform callhq.fail(400, p_path || ' must be one of '
                                 || array_to_string(p_allowed, ', '));
    end if;
    return p_value #>> '{}';
end
$$;


create or replace function callhq.check_uuid(p_value jsonb, p_path text,
                                             p_required boolean default false)
returns uuid
language plpgsql
as $$
begin
    if not callhq.check_present(p_value, p_path, p_required) then
        return null;
    end if;
    if jsonb_typeof(p_value) <> 'string' or not callhq.is_uuid(p_value #>> '{}') then
        perform callhq.fail(400, p_path || ' must be a UUID');
    end if;
    return (p_value #>> '{}')::uuid;
end
$$;


create or replace function callhq.check_object(p_value jsonb, p_path text,
                                               p_required boolean default false)
returns jsonb
language plpgsql
as $$
begin
    if not callhq.check_present(p_value, p_path, p_required) then
        return null;
    end if;
    if jsonb_typeof(p_value) <> 'object' then
        perform callhq.fail(400, p_path || ' must be an object');
    end if;
    return p_value;
end
$$;


create or replace function callhq.check_array(p_value jsonb, p_path text,
                                              p_required boolean default false)
returns jsonb
language plpgsql
as $$
begin
    if not callhq.check_present(p_value, p_path, p_required) then
        return null;
    end if;
    if jsonb_typeof(p_value) <> 'array' then
        perform callhq.fail(400, p_path || ' must be an array');
    end if;
    return p_value;
end
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
        -- a tool's result answers one call; an assistant's calls go back
        -- upstream as they came
        if v_role = 'tool' then
            perform callhq.check_string(v_msg->'tool_call_id', v_path || '.tool_call_id',
                                        200, true);
        end if;
        perform callhq.check_tool_calls(v_msg->'tool_calls', v_path || '.tool_calls',
                                        v_role);
        v_out := v_out || jsonb_build_array(callhq.message_clean(v_msg));
    end loop;
    return v_out;
end
$$;


-- An assistant message's tool_calls, as Chat Completions has them:
-- [{id, type: "function", function: {name, arguments}}].
create or replace function callhq.check_tool_calls(p_value jsonb, p_path text,
                                                   p_role text)
returns jsonb
language plpgsql
as $$
declare
    v_call  jsonb;
    v_n     bigint;
    v_path  text;
begin
    if callhq.check_array(p_value, p_path) is null then
        return null;
    end if;
    if p_role <> 'assistant' then
        perform callhq.fail(400, p_path || ' is only allowed in an assistant message');
    end if;

    for v_call, v_n in
        select e.value, e.n - 1 from jsonb_array_elements(p_value) with ordinality e(value, n)
    loop
        v_path := p_path || '[' || v_n || ']';
        perform callhq.check_object(v_call, v_path, true);
        perform callhq.check_fields(v_call, array['id', 'type', 'function'], v_path || '.');
        perform callhq.check_string(v_call->'id', v_path || '.id', 200, true);
        perform callhq.check_enum(v_call->'type', v_path || '.type', array['function']);
        perform callhq.check_object(v_call->'function', v_path || '.function', true);
        perform callhq.check_fields(v_call->'function', array['name', 'arguments'],
                                    v_path || '.function.');
        perform callhq.check_tool_name(v_call->'function'->'name', v_path || '.function.name');
        perform callhq.check_string(v_call->'function'->'arguments',
                                    v_path || '.function.arguments', null, true);
    end loop;
    return p_value;
end
$$;


-- A function's name (callhq.is_tool_name).
create or replace function callhq.check_tool_name(p_value jsonb, p_path text)
returns text
language plpgsql
as $$
begin
    if not callhq.is_tool_name(callhq.check_string(p_value, p_path, null, true)) then
        perform callhq.fail(400, p_path || ' must be 1 to 64 letters, digits, _ or -');
    end if;
    return p_value #>> '{}';
end
$$;


-- An assistant's model.tools: function tools as Chat Completions takes
-- them, [{type: "function", function: {name, description, parameters,
-- strict}}]; the SDK's other tool types have nothing to run them here.
create or replace function callhq.check_tools(p_value jsonb, p_path text)
returns jsonb
language plpgsql
as $$
declare
    v_tool  jsonb;
    v_n     bigint;
    v_path  text;
    v_fn    text;
begin
    if callhq.check_array(p_value, p_path) is null then
        return null;
    end if;
    if jsonb_array_length(p_value) > 128 then
        perform callhq.fail(400, p_path || ' must have at most 128 tools');
    end if;

    for v_tool, v_n in
        select e.value, e.n - 1 from jsonb_array_elements(p_value) with ordinality e(value, n)
    loop
        v_path := p_path || '[' || v_n || ']';
        perform callhq.check_object(v_tool, v_path, true);
        if callhq.check_string(v_tool->'type', v_path || '.type', null, true) <> 'function'
        then
            perform callhq.fail(400, v_path || '.type must be function (the only '
                                     'tools a chat can call here)');
        end if;
        v_fn := v_path || '.function';
        perform callhq.check_object(v_tool->'function', v_fn, true);
        perform callhq.check_fields(v_tool->'function',
                                    array['name', 'description', 'parameters', 'strict'],
                                    v_fn || '.');
        perform callhq.check_tool_name(v_tool->'function'->'name', v_fn || '.name');
        perform callhq.check_string(v_tool->'function'->'description',
                                    v_fn || '.description', 1024);
        perform callhq.check_object(v_tool->'function'->'parameters', v_fn || '.parameters');
        if jsonb_typeof(v_tool->'function'->'strict') not in ('boolean', 'null') then
            perform callhq.fail(400, v_fn || '.strict must be a boolean');
        end if;
    end loop;
    return p_value;
end
$$;


-- {provider, model, messages, tools, temperature, maxTokens}; model.model required;
-- the members of model_ignored() accepted and ignored.
create or replace function callhq.check_model(p_value jsonb, p_path text)
returns jsonb
language plpgsql
as $$
begin
    if callhq.check_object(p_value, p_path) is null then
        return null;
    end if;

    perform callhq.check_fields(p_value, array['provider', 'model', 'messages', 'tools',
                                               'temperature', 'maxTokens']
                                         || callhq.model_ignored(), p_path || '.');
    perform callhq.check_string(p_value->'provider', p_path || '.provider', 100);
    perform callhq.check_string(p_value->'model', p_path || '.model', 200, true);
    perform callhq.check_messages(p_value->'messages', p_path || '.messages');
    perform callhq.check_tools(p_value->'tools', p_path || '.tools');
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


-- {number, name, email, externalId}, all strings.
create or replace function callhq.check_customer(p_value jsonb, p_path text)
returns jsonb
language plpgsql
as $$
begin
    if callhq.check_object(p_value, p_path) is null then
        return null;
    end if;

    perform callhq.check_fields(p_value, array['number', 'name', 'email',
                                               'externalId'], p_path || '.');
    perform callhq.check_string(p_value->'number', p_path || '.number', 100);
    perform callhq.check_string(p_value->'name', p_path || '.name', 200);
    perform callhq.check_string(p_value->'email', p_path || '.email', 320);
    perform callhq.check_string(p_value->'externalId', p_path || '.externalId', 200);
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


-- The {id} of an item route: 400 unless it is a UUID.  A session's may
-- be a conversation's id too (conv_<id>, callhq_openai's).
create or replace function callhq.path_id(p_id text, p_kind text)
returns uuid
language plpgsql
as $$
begin
    if p_kind = 'Session' and p_id like 'conv\_%' then
        p_id := substr(p_id, 6);
    end if;
    if p_id is null then
        perform callhq.fail(400, p_kind || ' id is required');
    end if;
    if not callhq.is_uuid(p_id) then
        perform callhq.fail(400, p_kind || ' id "' || left(p_id, 100) || '" must be a UUID');
    end if;
    return p_id::uuid;
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
