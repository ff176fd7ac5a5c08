-- The OpenAI surface (callhq_openai): POST /responses made a chat.
--
-- A Responses body is checked here, field by field, translated into the
-- body of POST /chat and given to chat_begin: a response is a chat, its
-- id resp_<chat id>.  Every failure names the OpenAI parameter at fault
-- in the error's COLUMN field, which the module puts in "param".


-- Fails as callhq.fail does, naming p_param (OpenAI's "param") and p_code.
create or replace function callhq.openai_fail(p_status int, p_message text,
                                              p_param text,
                                              p_code text default null)
returns void
language plpgsql
as $$
begin
    raise exception using
        errcode = 'CQ' || lpad(p_status::text, 3, '0'),
        message = p_message,
        column = coalesce(p_param, ''),
        constraint = coalesce(p_code, '');
end
$$;


-- A message's content as one text: a string, or input_text/output_text
-- parts joined.
create or replace function callhq.openai_content(p_value jsonb, p_path text)
returns text
language plpgsql
as $$
declare
    v_part  jsonb;
    v_n     bigint;
    v_path  text;
    v_out   text := '';
begin
    if jsonb_typeof(p_value) = 'string' then
        return p_value #>> '{}';
    end if;
    if jsonb_typeof(p_value) is distinct from 'array' then
        perform callhq.openai_fail(400, 'Invalid type for ''' || p_path
                                        || ''': expected a string or an array '
                                        || 'of content parts.', p_path,
                                   'invalid_type');
    end if;

    for v_part, v_n in
        select e.value, e.n - 1 from jsonb_array_elements(p_value) with ordinality e(value, n)
    loop
        v_path := p_path || '[' || v_n || ']';
        if jsonb_typeof(v_part) is distinct from 'object'
           or v_part->>'type' not in ('input_text', 'output_text', 'text')
        then
            perform callhq.openai_fail(400, 'Invalid value for ''' || v_path
                                            || '.type'': only input_text and '
                                            || 'output_text parts are supported.',
                                       v_path || '.type', 'invalid_value');
        end if;
        if jsonb_typeof(v_part->'text') is distinct from 'string' then
            perform callhq.openai_fail(400, 'Missing required parameter: '''
                                            || v_path || '.text''.',
                                       v_path || '.text',
                                       'missing_required_parameter');
        end if;
        v_out := v_out || (v_part->>'text');
    end loop;
    return v_out;
end
$$;


-- input: a string, or message items ({role, content}, type "message")
-- made the {role, content} messages of POST /chat; function_call_output
-- and function_call items as openai_tool_item makes them.
create or replace function callhq.openai_input(p_value jsonb)
returns jsonb
language plpgsql
as $$
declare
    v_item  jsonb;
    v_n     bigint;
    v_path  text;
    v_out   jsonb := '[]';
begin
    if p_value is null then
        perform callhq.openai_fail(400, 'Missing required parameter: ''input''.',
                                   'input', 'missing_required_parameter');
    end if;
    if jsonb_typeof(p_value) = 'string' then
        return p_value;
    end if;
    if jsonb_typeof(p_value) is distinct from 'array'
       or jsonb_array_length(p_value) = 0
    then
        perform callhq.openai_fail(400, 'Invalid value for ''input'': expected '
                                        || 'a string or a non-empty array of items.',
                                   'input', 'invalid_value');
    end if;

    for v_item, v_n in
        select e.value, e.n - 1 from jsonb_array_elements(p_value) with ordinality e(value, n)
    loop
        v_path := 'input[' || v_n || ']';
        if jsonb_typeof(v_item) is distinct from 'object' then
            perform callhq.openai_fail(400, 'Invalid type for ''' || v_path
                                            || ''': expected an object.', v_path,
                                       'invalid_type');
        end if;
        if v_item->>'type' in ('function_call_output', 'function_call') then
            v_out := callhq.openai_tool_item(v_out, v_item, v_path);
            continue;
        end if;
        if coalesce(v_item->>'type', 'message') <> 'message' then
            perform callhq.openai_fail(400, 'Invalid value for ''' || v_path
                                            || '.type'': only message, function_call '
                                            || 'and function_call_output items are '
                                            || 'supported.', v_path || '.type',
                                       'invalid_value');
        end if;
        if v_item->>'role' is null
           or v_item->>'role' not in ('user', 'assistant', 'system', 'developer')
        then
            perform callhq.openai_fail(400, 'Invalid value for ''' || v_path
                                            || '.role'': expected one of user, '
                                            || 'assistant, system, developer.',
                                       v_path || '.role', 'invalid_value');
        end if;
        v_out := v_out || jsonb_build_array(jsonb_build_object(
                     'role', v_item->>'role',
                     'content', callhq.openai_content(v_item->'content',
                                                      v_path || '.content')));
    end loop;
    return v_out;
end
$$;


-- A function_call_output item ({call_id, output}) is a message of role
-- tool; a function_call item ({call_id, name, arguments}) a tool call of
-- an assistant message, the one before it when it is the assistant's
-- (as a Response's output replayed: its message, then its calls).
-- Returns p_msgs with it.
create or replace function callhq.openai_tool_item(p_msgs jsonb, p_item jsonb,
                                                   p_path text)
returns jsonb
language plpgsql
as $$
declare
    v_key   text;
    v_call  jsonb;
    v_last  jsonb := p_msgs->-1;
begin
    foreach v_key in array case when p_item->>'type' = 'function_call'
                                then array['call_id', 'name', 'arguments']
                                else array['call_id', 'output'] end
    loop
        if v_key <> 'output' and jsonb_typeof(p_item->v_key) is distinct from 'string'
        then
            perform callhq.openai_fail(400, 'Missing required parameter: '''
                                            || p_path || '.' || v_key || '''.',
                                       p_path || '.' || v_key,
                                       'missing_required_parameter');
        end if;
    end loop;

    if p_item->>'type' = 'function_call_output' then
        if p_item->'output' is null then
            perform callhq.openai_fail(400, 'Missing required parameter: '''
                                            || p_path || '.output''.',
                                       p_path || '.output',
                                       'missing_required_parameter');
        end if;
        return p_msgs || jsonb_build_array(jsonb_build_object(
                   'role', 'tool', 'tool_call_id', p_item->'call_id',
                   'content', callhq.openai_content(p_item->'output',
                                                    p_path || '.output')));
    end if;

    if not callhq.is_tool_name(p_item->>'name') then
        perform callhq.openai_fail(400, 'Invalid value for ''' || p_path
                                        || '.name'': 1 to 64 letters, digits, _ '
                                        || 'or -.', p_path || '.name', 'invalid_value');
    end if;
    v_call := jsonb_build_array(jsonb_build_object(
                  'id', p_item->'call_id', 'type', 'function',
                  'function', jsonb_build_object('name', p_item->'name',
                                                 'arguments', p_item->'arguments')));

    if v_last->>'role' = 'assistant' then
        return jsonb_set(p_msgs, '{-1}',
                         v_last || jsonb_build_object(
                             'tool_calls', coalesce(v_last->'tool_calls', '[]') || v_call));
    end if;
    return p_msgs || jsonb_build_array(jsonb_build_object(
               'role', 'assistant', 'content', null, 'tool_calls', v_call));
end
$$;


-- A Responses body's tools ([{type: "function", name, description,
-- parameters, strict}]) as Chat Completions takes them, or NULL.
create or replace function callhq.openai_tools(p_value jsonb)
returns jsonb
language plpgsql
as $$
declare
    v_tool  jsonb;
    v_n     bigint;
    v_path  text;
    v_out   jsonb := '[]';
begin
    if p_value is null then
        return null;
    end if;
    if jsonb_typeof(p_value) <> 'array' then
        perform callhq.openai_fail(400, 'Invalid type for ''tools'': expected an '
                                        || 'array of tools.', 'tools', 'invalid_type');
    end if;

    for v_tool, v_n in
        select e.value, e.n - 1 from jsonb_array_elements(p_value) with ordinality e(value, n)
    loop
        v_path := 'tools[' || v_n || ']';
        if jsonb_typeof(v_tool) is distinct from 'object'
           or v_tool->>'type' is distinct from 'function'
        then
            perform callhq.openai_fail(400, 'Invalid value for ''' || v_path
                                            || '.type'': only function tools are '
                                            || 'supported.', v_path || '.type',
                                       'invalid_value');
        end if;
        if jsonb_typeof(v_tool->'name') is distinct from 'string' then
            perform callhq.openai_fail(400, 'Missing required parameter: '''
                                            || v_path || '.name''.', v_path || '.name',
                                       'missing_required_parameter');
        end if;
        if not callhq.is_tool_name(v_tool->>'name') then
            perform callhq.openai_fail(400, 'Invalid value for ''' || v_path
                                            || '.name'': 1 to 64 letters, digits, _ '
                                            || 'or -.', v_path || '.name',
                                       'invalid_value');
        end if;
        if jsonb_typeof(v_tool->'parameters') not in ('object', 'null')
           or jsonb_typeof(v_tool->'description') not in ('string', 'null')
           or jsonb_typeof(v_tool->'strict') not in ('boolean', 'null')
        then
            v_path := v_path || '.' || case
                when jsonb_typeof(v_tool->'parameters') not in ('object', 'null')
                then 'parameters'
                when jsonb_typeof(v_tool->'description') not in ('string', 'null')
                then 'description' else 'strict' end;
            perform callhq.openai_fail(400, 'Invalid type for ''' || v_path || '''.',
                                       v_path, 'invalid_type');
        end if;
        v_out := v_out || jsonb_build_array(jsonb_build_object(
                     'type', 'function',
                     'function', jsonb_strip_nulls(jsonb_build_object(
                         'name', v_tool->'name',
                         'description', callhq.jnull(v_tool->'description'),
                         'parameters', callhq.jnull(v_tool->'parameters'),
                         'strict', callhq.jnull(v_tool->'strict')))));
    end loop;
    return v_out;
end
$$;


-- tool_choice: "none", "auto", "required" or {type: "function", name}, as
-- Chat Completions takes it, or NULL.
create or replace function callhq.openai_tool_choice(p_value jsonb)
returns jsonb
language plpgsql
as $$
begin
    if p_value is null then
        return null;
    end if;
    if p_value #>> '{}' in ('none', 'auto', 'required')
       and jsonb_typeof(p_value) = 'string'
    then
        return p_value;
    end if;
    if jsonb_typeof(p_value) = 'object' and p_value->>'type' = 'function'
       and jsonb_typeof(p_value->'name') = 'string'
    then
        return jsonb_build_object('type', 'function',
                                  'function', jsonb_build_object('name', p_value->'name'));
    end if;
    perform callhq.openai_fail(400, 'Invalid value for ''tool_choice'': expected '
                                    || '"none", "auto", "required" or {"type": '
                                    || '"function", "name": ...}.', 'tool_choice',
                               'invalid_value');
    return null;
end
$$;


-- The assistant that "model" names: its id, or its name in the org.
create or replace function callhq.openai_assistant(p_org uuid, p_model jsonb)
returns uuid
language plpgsql stable
as $$
declare
    v_name  text := p_model #>> '{}';
    v_ids   uuid[];
begin
    if p_model is null then
        perform callhq.openai_fail(400, 'Missing required parameter: ''model''.',
                                   'model', 'missing_required_parameter');
    end if;
    if jsonb_typeof(p_model) <> 'string' or v_name = '' then
        perform callhq.openai_fail(400, 'Invalid type for ''model'': expected '
                                        || 'an assistant''s id or name.', 'model',
                                   'invalid_type');
    end if;

    if callhq.is_uuid(v_name) then
        select array_agg(a.id) into v_ids
          from callhq.assistants a
         where a.org_id = p_org and a.id = v_name::uuid;
    end if;
    if v_ids is null then
        select array_agg(a.id) into v_ids
          from callhq.assistants a
         where a.org_id = p_org and a.name = v_name;
    end if;

    if v_ids is null then
        perform callhq.openai_fail(404, 'The model ''' || v_name || ''' does not '
                                        || 'exist: it names no assistant.', 'model',
                                   'model_not_found');
    end if;
    if cardinality(v_ids) > 1 then
        perform callhq.openai_fail(400, 'The model ''' || v_name || ''' names '
                                        || cardinality(v_ids) || ' assistants; '
                                        || 'use an assistant id.', 'model',
                                   'invalid_value');
    end if;
    return v_ids[1];
end
$$;


-- A number of the body within [p_min, p_max], or NULL when absent.
create or replace function callhq.openai_number(p_body jsonb, p_name text,
                                                p_min numeric, p_max numeric,
                                                p_integer boolean default false)
returns jsonb
language plpgsql
as $$
declare
    v  jsonb := p_body->p_name;
begin
    if v is null or jsonb_typeof(v) = 'null' then
        return null;
    end if;
    if jsonb_typeof(v) <> 'number'
       or (p_integer and (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric))
    then
        perform callhq.openai_fail(400, 'Invalid type for ''' || p_name
                                        || ''': expected '
                                        || case when p_integer then 'an integer'
                                                else 'a number' end || '.',
                                   p_name, 'invalid_type');
    end if;
    if (v #>> '{}')::numeric < p_min
       or (p_max is not null and (v #>> '{}')::numeric > p_max)
    then
        perform callhq.openai_fail(400, 'Invalid ''' || p_name || ''': '
                                        || (v #>> '{}') || ' is out of range ['
                                        || p_min || ', '
                                        || coalesce(p_max::text, 'inf') || '].',
                                   p_name, 'invalid_value');
    end if;
    return v;
end
$$;


-- POST /responses, before the model: chat_begin's row (see chat.sql) for
-- the chat the Responses body makes.  instructions go upstream as a
-- system message before everything else, for this response only (as
-- OpenAI's: a response chained to this one does not inherit them);
-- temperature, top_p, max_output_tokens and metadata go upstream too, and
-- tools (after the assistant's), tool_choice and parallel_tool_calls.
create or replace function callhq.openai_begin(p_key bytea, p_body jsonb, p_opts jsonb)
returns table (state text, record text, params text, messages text,
               chat_id uuid, session_id uuid, org_id uuid, model text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_org       uuid := callhq.auth(p_key);
    v_body      jsonb := p_body;
    v_key       text;
    v_prev      text;
    v_chat      jsonb;
    v_params    jsonb;
    v_tools     jsonb;
    v_instr     text;
    v_meta      jsonb;
    v_r         record;
    v_conv      text;
    v_session   callhq.sessions;
    v_assistant uuid;
    v_state     text;
    v_msg       text;
begin
    if v_body is null or jsonb_typeof(v_body) <> 'object' then
        perform callhq.openai_fail(400, 'The body must be a JSON object.', null);
    end if;

    -- null is absent, as OpenAI has it
    select coalesce(jsonb_object_agg(e.key, e.value), '{}') into v_body
      from jsonb_each(v_body) e where jsonb_typeof(e.value) <> 'null';

    for v_key in select k from jsonb_object_keys(v_body) k order by k loop
        if v_key in ('background', 'prompt', 'reasoning')
        then
            perform callhq.openai_fail(400, 'Parameter ''' || v_key || ''' is '
                                            || 'not supported yet.', v_key,
                                       'unsupported_parameter');
        end if;
        if v_key not in ('model', 'input', 'instructions', 'previous_response_id',
                         'store', 'stream', 'metadata', 'temperature', 'top_p',
                         'max_output_tokens', 'parallel_tool_calls', 'truncation',
                         'conversation', 'tools', 'tool_choice',
                         'user', 'include', 'service_tier', 'text', 'stream_options')
        then
            perform callhq.openai_fail(400, 'Unknown parameter: ''' || v_key || '''.',
                                       v_key, 'unknown_parameter');
        end if;
    end loop;

    foreach v_key in array array['store', 'stream', 'parallel_tool_calls'] loop
        if v_body ? v_key and jsonb_typeof(v_body->v_key) <> 'boolean' then
            perform callhq.openai_fail(400, 'Invalid type for ''' || v_key
                                            || ''': expected a boolean.', v_key,
                                       'invalid_type');
        end if;
    end loop;

    if v_body ? 'instructions' then
        if jsonb_typeof(v_body->'instructions') <> 'string' then
            perform callhq.openai_fail(400, 'Invalid type for ''instructions'': '
                                            || 'expected a string.', 'instructions',
                                       'invalid_type');
        end if;
        v_instr := nullif(v_body->>'instructions', '');
    end if;

    v_meta := v_body->'metadata';
    if v_meta is not null then
        if jsonb_typeof(v_meta) <> 'object'
           or exists (select from jsonb_each(v_meta) e
                       where jsonb_typeof(e.value) <> 'string'
                          or length(e.key) > 64 or length(e.value #>> '{}') > 512)
           or (select count(*) from jsonb_object_keys(v_meta)) > 16
        then
            perform callhq.openai_fail(400, 'Invalid ''metadata'': at most 16 '
                                            || 'string values, keys of at most 64 '
                                            || 'characters, values of at most 512.',
                                       'metadata', 'invalid_value');
        end if;
    end if;

    v_assistant := callhq.openai_assistant(v_org, v_body->'model');
    v_chat := jsonb_build_object(
        'input', callhq.openai_input(v_body->'input'),
        'assistantId', v_assistant,
        'stream', coalesce(v_body->'stream', 'false'),
        'metadata', v_meta);

    -- a conversation is a session: the turn is appended to it
    if v_body ? 'conversation' then
        v_conv := coalesce(v_body->'conversation'->>'id',
                           case when jsonb_typeof(v_body->'conversation') = 'string'
                                then v_body->>'conversation' end);
        if v_body ? 'previous_response_id' then
            perform callhq.openai_fail(400, 'previous_response_id and conversation '
                                            || 'cannot be used together.',
                                       'previous_response_id', 'invalid_value');
        end if;
        if v_conv is null then
            perform callhq.openai_fail(400, 'Invalid ''conversation'': expected an '
                                            || 'id or {"id": ...}.', 'conversation',
                                       'invalid_type');
        end if;
        v_session := callhq.openai_conv_turn(v_org, v_conv, v_assistant);
        if v_session.assistant_id is distinct from v_assistant then
            perform callhq.openai_fail(400, 'The model ''' || (v_body->>'model')
                                            || ''' is not the assistant of '
                                            || 'conversation ''' || v_conv || '''.',
                                       'model', 'invalid_value');
        end if;
        v_chat := (v_chat - 'assistantId')
                  || jsonb_build_object('sessionId', v_session.id);
    end if;

    if v_body ? 'previous_response_id' then
        v_prev := v_body->>'previous_response_id';
        if jsonb_typeof(v_body->'previous_response_id') <> 'string'
           or v_prev not like 'resp\_%' or not callhq.is_uuid(substr(v_prev, 6))
        then
            perform callhq.openai_fail(400, 'Invalid ''previous_response_id'': '
                                            || 'expected an id that begins with '
                                            || '''resp_''.', 'previous_response_id',
                                       'invalid_value');
        end if;
        if not exists (select from callhq.chats c
                        where c.id = substr(v_prev, 6)::uuid and c.org_id = v_org)
        then
            perform callhq.openai_fail(404, 'Previous response with id '''
                                            || v_prev || ''' not found.',
                                       'previous_response_id',
                                       'previous_response_not_found');
        end if;
        v_chat := v_chat || jsonb_build_object('previousChatId', substr(v_prev, 6));
    end if;

    v_params := jsonb_strip_nulls(jsonb_build_object(
        'temperature', callhq.openai_number(v_body, 'temperature', 0, 2),
        'top_p', callhq.openai_number(v_body, 'top_p', 0, 1),
        'max_tokens', callhq.openai_number(v_body, 'max_output_tokens', 1, null,
                                           true),
        'metadata', v_meta,
        'tools', callhq.openai_tools(v_body->'tools'),
        'tool_choice', callhq.openai_tool_choice(v_body->'tool_choice'),
        'parallel_tool_calls', v_body->'parallel_tool_calls'));

    -- chat_begin's own failures (a session's, the input's) name our fields
    begin
        select * into v_r from callhq.chat_begin(p_key, jsonb_strip_nulls(v_chat),
                                                 p_opts);
    exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
        if v_state not like 'CQ%' then
            raise;
        end if;
        perform callhq.openai_fail(substr(v_state, 3)::int, v_msg,
                                   case when v_msg like 'input%' then 'input'
                                        when v_msg like 'metadata%' then 'metadata'
                                        when v_msg like 'Session%' then 'conversation'
                                        when v_msg like '%model%' then 'model'
                                   end);
    end;

    if v_r.state not in ('ok', 'new') then
        return query select v_r.state, v_r.record, v_r.params, v_r.messages,
                            v_r.chat_id, v_r.session_id, v_r.org_id, v_r.model;
        return;
    end if;

    -- GET /responses/{id} answers the model as this create answers it
    v_r.record := (v_r.record::jsonb
                   || jsonb_build_object('responseModel', v_body->>'model'))::text;

    if v_params <> '{}' then
        v_tools := ('{' || v_r.params || '}')::jsonb;
        -- the request's tools after the assistant's, one of the same name
        -- in its place
        if v_params ? 'tools' then
            v_params := v_params || jsonb_build_object('tools',
                coalesce((select jsonb_agg(t.value order by t.n)
                            from jsonb_array_elements(v_tools->'tools')
                                 with ordinality t(value, n)
                           where not exists (
                                 select from jsonb_array_elements(v_params->'tools') q
                                  where q->'function'->'name'
                                        = t.value->'function'->'name')), '[]')
                || (v_params->'tools'));
        end if;
        v_params := v_tools || v_params;
        -- without tools, nothing to choose or call in parallel
        if coalesce(v_params->'tools', '[]') = '[]' then
            v_params := v_params - 'tools' - 'tool_choice' - 'parallel_tool_calls';
        end if;
        v_r.params := substr(v_params::text, 2, length(v_params::text) - 2);
    end if;

    if v_instr is not null then
        v_r.messages := '[' || callhq.message_raw('system', to_jsonb(v_instr))
                        || case when v_r.messages = '[]' then ']'
                                else ',' || substr(v_r.messages, 2) end;
        -- recorded as a prompt: a chained response does not inherit it
        v_r.record := (v_r.record::jsonb
                       || jsonb_build_object('promptCount',
                              (v_r.record::jsonb->>'promptCount')::int + 1,
                              'prompts',
                              jsonb_build_array(jsonb_build_object('role', 'system',
                                                                   'content', v_instr))
                              || coalesce(v_r.record::jsonb->'prompts', '[]')))::text;
    end if;

    return query select v_r.state, v_r.record, v_r.params, v_r.messages,
                        v_r.chat_id, v_r.session_id, v_r.org_id, v_r.model;
end
$$;


-- A chat as OpenAI's Response object (GET /responses/{id}): what the chat
-- keeps of it.  model is as the create answered it (the assistant's name,
-- or its id when it has none or is gone, for a chat recorded before that
-- was kept); what a chat does not keep (instructions, temperature, top_p,
-- max_output_tokens) reads null.
create or replace function callhq.openai_response(c callhq.chats)
returns jsonb
language sql stable
as $$
    select jsonb_build_object(
        'id', 'resp_' || c.id,
        'object', 'response',
        'created_at', extract(epoch from c.created_at)::bigint,
        'status', c.status,
        'background', false,
        'error', null,
        'incomplete_details', case when c.status = 'incomplete'
                                   then '{"reason": "max_output_tokens"}'::jsonb end,
        'instructions', null,
        'max_output_tokens', null,
        'model', coalesce(c.response_model,
                          (select coalesce(a.name, a.id::text) from callhq.assistants a
                            where a.id = c.assistant_id),
                          c.assistant_id::text, c.assistant->>'name'),
        'output', callhq.openai_output(c),
        'parallel_tool_calls', true,
        'previous_response_id', 'resp_' || c.previous_chat_id,
        -- a chat of a session is a response in its conversation
        'conversation', case when c.session_id is not null
                             then jsonb_build_object('id', 'conv_' || c.session_id) end,
        'reasoning', '{"effort": null, "summary": null}'::jsonb,
        'store', true,
        'temperature', null,
        'text', '{"format": {"type": "text"}}'::jsonb,
        'tool_choice', 'auto',
        'tools', '[]'::jsonb,
        'top_p', null,
        'truncation', 'disabled',
        'user', null,
        'metadata', coalesce(c.metadata, '{}'),
        'usage', jsonb_build_object(
            'input_tokens', coalesce((c.usage->>'promptTokens')::bigint, 0),
            'input_tokens_details', '{"cached_tokens": 0}'::jsonb,
            'output_tokens', coalesce((c.usage->>'completionTokens')::bigint, 0),
            'output_tokens_details', '{"reasoning_tokens": 0}'::jsonb,
            'total_tokens', coalesce((c.usage->>'promptTokens')::bigint, 0)
                            + coalesce((c.usage->>'completionTokens')::bigint, 0)))
$$;


-- A chat's output as a Response's: its message (unless the model only
-- called tools), then a function_call item per tool call, in order; the
-- items' ids as the module answered them (msg_<chat id>, fc_<chat id>_<n>).
create or replace function callhq.openai_output(c callhq.chats)
returns jsonb
language sql stable
as $$
    select case when coalesce(c.output->0->>'content', '') <> ''
                     or jsonb_typeof(c.output->0->'tool_calls') is distinct from 'array'
                then jsonb_build_array(jsonb_build_object(
                         'id', 'msg_' || c.id, 'type', 'message', 'status', c.status,
                         'role', 'assistant',
                         'content', jsonb_build_array(jsonb_build_object(
                             'type', 'output_text',
                             'text', coalesce(c.output->0->>'content', ''),
                             'annotations', '[]'::jsonb, 'logprobs', '[]'::jsonb))))
                else '[]' end
           || coalesce((select jsonb_agg(jsonb_build_object(
                                   'id', 'fc_' || c.id || '_' || (t.n - 1),
                                   'type', 'function_call', 'status', c.status,
                                   'arguments', t.call->'function'->'arguments',
                                   'call_id', t.call->'id',
                                   'name', t.call->'function'->'name')
                                 order by t.n)
                          from jsonb_array_elements(
                                   case when jsonb_typeof(c.output->0->'tool_calls')
                                             = 'array'
                                        then c.output->0->'tool_calls' else '[]' end)
                               with ordinality t(call, n)), '[]')
$$;


-- The chat a response id (resp_<chat id>) names in the org; 404 else.
create or replace function callhq.openai_chat(p_org uuid, p_id text)
returns callhq.chats
language plpgsql stable
as $$
declare
    v_c  callhq.chats;
begin
    if p_id like 'resp\_%' and callhq.is_uuid(substr(p_id, 6)) then
        select c.* into v_c from callhq.chats c
         where c.id = substr(p_id, 6)::uuid and c.org_id = p_org;
    end if;
    if v_c.id is null then
        perform callhq.openai_fail(404, 'Response with id ''' || p_id
                                        || ''' not found.', null);
    end if;
    return v_c;
end
$$;


-- GET /responses/{id}
create or replace function callhq.api_openai_response_get(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language sql
as $$
    select 200, callhq.openai_response(
                    callhq.openai_chat(callhq.auth(p_key), p_id))::text
$$;


-- DELETE /responses/{id}: the chat goes, as DELETE /chat/{id}.
create or replace function callhq.api_openai_response_delete(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_c  callhq.chats := callhq.openai_chat(callhq.auth(p_key), p_id);
begin
    delete from callhq.chats c where c.id = v_c.id;
    return query select 200, jsonb_build_object('id', 'resp_' || v_c.id,
                                                'object', 'response.deleted',
                                                'deleted', true)::text;
end
$$;
