-- openai_conv.sql: the OpenAI surface's conversations and the input items
-- of a response (ngx_http_callhq_openai_conv.c routes them here).
--
-- A conversation is a session: its id is conv_<session id> (the bare
-- session id names it too), its metadata the session's, its items the
-- session's messages.  An item's id carries its place: <kind>_<owner>_<n>,
-- the owner the session (n its seq) or, for a response's input items,
-- the chat (n its place in the input), so that "after" is a key range.
-- Every failure is openai_fail's (openai.sql), naming the parameter.
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


-- The query string of a route: only the parameters in p_allowed, strings.
create or replace function callhq.openai_args(p_args jsonb, p_allowed text[])
returns jsonb
language plpgsql
as $$
declare
    v_key  text;
begin
    for v_key in select k from jsonb_object_keys(coalesce(p_args, '{}')) k order by k
    loop
        if v_key <> all (p_allowed) then
            perform callhq.openai_fail(400, 'Unknown parameter: ''' || v_key || '''.',
                                       v_key, 'unknown_parameter');
        end if;
        if jsonb_typeof(p_args->v_key) <> 'string' then
            perform callhq.openai_fail(400, 'Invalid type for ''' || v_key
                                            || ''': expected a string.', v_key,
                                       'invalid_type');
        end if;
    end loop;
    return coalesce(p_args, '{}');
end
$$;


-- A request body: an object of the parameters in p_allowed; null members
-- are absent, as OpenAI has it.
create or replace function callhq.openai_body(p_body jsonb, p_allowed text[])
returns jsonb
language plpgsql
as $$
declare
    v_body  jsonb;
    v_key   text;
begin
    if p_body is null or jsonb_typeof(p_body) <> 'object' then
        perform callhq.openai_fail(400, 'The body must be a JSON object.', null);
    end if;

    select coalesce(jsonb_object_agg(e.key, e.value), '{}') into v_body
      from jsonb_each(p_body) e where jsonb_typeof(e.value) <> 'null';

    for v_key in select k from jsonb_object_keys(v_body) k order by k loop
        if v_key <> all (p_allowed) then
            perform callhq.openai_fail(400, 'Unknown parameter: ''' || v_key || '''.',
                                       v_key, 'unknown_parameter');
        end if;
    end loop;
    return v_body;
end
$$;


-- metadata as OpenAI bounds it: at most 16 string values, keys of at
-- most 64 characters, values of at most 512.
create or replace function callhq.openai_metadata(p_value jsonb, p_param text)
returns jsonb
language plpgsql
as $$
begin
    if p_value is not null
       and (jsonb_typeof(p_value) <> 'object'
            or exists (select from jsonb_each(p_value) e
                        where jsonb_typeof(e.value) <> 'string'
                           or length(e.key) > 64 or length(e.value #>> '{}') > 512)
            or (select count(*) from jsonb_object_keys(p_value)) > 16)
    then
        perform callhq.openai_fail(400, 'Invalid ''' || p_param || ''': at most 16 '
                                        || 'string values, keys of at most 64 '
                                        || 'characters, values of at most 512.',
                                   p_param, 'invalid_value');
    end if;
    return p_value;
end
$$;


-- In an exception handler: a failure of openai_fail's raised again with
-- its param renamed, p_from's prefix to p_to (any param to p_to when
-- p_from is NULL), in its message too; any other error as it was.
create or replace function callhq.openai_refail(p_state text, p_msg text, p_param text,
                                                p_code text, p_from text, p_to text)
returns void
language plpgsql
as $$
begin
    if p_state not like 'CQ%' then
        raise exception using errcode = p_state, message = p_msg;
    end if;
    perform callhq.openai_fail(
        substr(p_state, 3)::int,
        case when p_from is null then p_msg
             else replace(p_msg, '''' || p_from, '''' || p_to) end,
        case when p_from is null or p_param not like p_from || '%' then p_to
             else p_to || substr(p_param, length(p_from) + 1) end,
        nullif(p_code, ''));
end
$$;


-- The assistant metadata.assistant names (as "model" would): failures
-- name metadata.assistant.
create or replace function callhq.openai_conv_assistant(p_org uuid, p_meta jsonb)
returns uuid
language plpgsql
as $$
declare
    v_state  text;
    v_msg    text;
    v_param  text;
    v_code   text;
begin
    if p_meta is null or not p_meta ? 'assistant' then
        return null;
    end if;
    return callhq.openai_assistant(p_org, p_meta->'assistant');
exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text,
                            v_param = column_name, v_code = constraint_name;
    perform callhq.openai_refail(v_state, v_msg, v_param, v_code, 'model',
                                 'metadata.assistant');
    return null;
end
$$;


-- items (of POST /conversations and its items): at most 20 message items,
-- checked as POST /responses checks its input (openai_input) but named
-- p_param, as the {role, content} messages of a history.
create or replace function callhq.openai_conv_messages(p_value jsonb, p_param text)
returns jsonb
language plpgsql
as $$
declare
    v_state  text;
    v_msg    text;
    v_param  text;
    v_code   text;
begin
    if p_value is null or p_value = '[]' then
        return '[]';
    end if;
    if jsonb_typeof(p_value) <> 'array' or jsonb_array_length(p_value) > 20 then
        perform callhq.openai_fail(400, 'Invalid ''' || p_param || ''': expected an '
                                        || 'array of at most 20 items.', p_param,
                                   'invalid_value');
    end if;
    return callhq.openai_input(p_value);
exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text,
                            v_param = column_name, v_code = constraint_name;
    if v_param = p_param then
        raise;
    end if;
    perform callhq.openai_refail(v_state, v_msg, v_param, v_code, 'input', p_param);
    return null;
end
$$;


-- A history message as OpenAI's items, in order (pos): a tool's answer a
-- function_call_output; else a message (input_text parts, an assistant's
-- output_text), unless it is an assistant's that only calls tools, then
-- a function_call per tool call.  Ids: <kind>_<owner>_<n>, the calls'
-- fc_<owner>_<n>_<k> (k from 0, as a Response's output numbers them).
create or replace function callhq.openai_items(p_owner uuid, p_n bigint, p_raw jsonb)
returns table (pos int, item jsonb)
language sql stable
as $$
    select 0, case when p_raw->>'role' = 'tool' then
               jsonb_build_object('id', 'fco_' || p_owner || '_' || p_n,
                                  'type', 'function_call_output', 'status', 'completed',
                                  'call_id', coalesce(p_raw->>'tool_call_id', ''),
                                  'output', coalesce(p_raw->>'content', ''))
           else
               jsonb_build_object('id', 'msg_' || p_owner || '_' || p_n, 'type', 'message',
                                  'status', 'completed', 'role', p_raw->>'role',
                                  'content', jsonb_build_array(
                                      case when p_raw->>'role' = 'assistant' then
                                          jsonb_build_object('type', 'output_text',
                                              'text', t.text,
                                              'annotations', '[]'::jsonb,
                                              'logprobs', '[]'::jsonb)
                                      else jsonb_build_object('type', 'input_text',
                                                              'text', t.text) end))
           end
      from (select case jsonb_typeof(p_raw->'content')
                       when 'string' then p_raw->>'content'
                       when 'null' then ''
                       else coalesce(p_raw->'content', '""')::text end as text) t
     where p_raw->>'role' = 'tool' or t.text <> ''
        or jsonb_typeof(p_raw->'tool_calls') is distinct from 'array'
    union all
    select c.n::int, jsonb_build_object('id', 'fc_' || p_owner || '_' || p_n || '_' || (c.n - 1),
                                        'type', 'function_call', 'status', 'completed',
                                        'call_id', c.call->'id',
                                        'name', c.call->'function'->'name',
                                        'arguments', c.call->'function'->'arguments')
      from jsonb_array_elements(case when jsonb_typeof(p_raw->'tool_calls') = 'array'
                                     then p_raw->'tool_calls' else '[]' end)
           with ordinality c(call, n)
$$;


-- The place an item id gives among p_owner's items (openai_items's ids):
-- the message's n and the item's pos in it; NULLs when it is none of them.
create or replace function callhq.openai_item_pos(p_id text, p_owner uuid,
                                                  out seq int, out pos int)
language sql immutable
as $$
    select m[1]::int, coalesce(m[2]::int + 1, 0)
      from (select regexp_match(p_id, '^[a-z]+_' || p_owner
                                      || '_([0-9]{1,9})(?:_([0-9]{1,4}))?$') m) r
$$;


-- A list's parameters (after, limit, order, include): limit 1 to 100,
-- 20 by default; order asc or desc, desc by default; after an item of
-- p_owner, as its place (after_seq, after_pos).
create or replace function callhq.openai_list_args(p_args jsonb, p_owner uuid,
                                                   out after_seq int,
                                                   out after_pos int,
                                                   out lim int,
                                                   out descending boolean)
language plpgsql
as $$
declare
    v_args  jsonb := callhq.openai_args(p_args, array['after', 'limit', 'order',
                                                      'include', 'include[]']);
begin
    lim := 20;
    if v_args ? 'limit' then
        if v_args->>'limit' !~ '^[0-9]{1,3}$' or (v_args->>'limit')::int not between 1 and 100
        then
            perform callhq.openai_fail(400, 'Invalid ''limit'': expected an integer '
                                            || 'from 1 to 100.', 'limit',
                                       'invalid_value');
        end if;
        lim := (v_args->>'limit')::int;
    end if;

    if coalesce(v_args->>'order', 'desc') not in ('asc', 'desc') then
        perform callhq.openai_fail(400, 'Invalid ''order'': expected asc or desc.',
                                   'order', 'invalid_value');
    end if;
    descending := coalesce(v_args->>'order', 'desc') = 'desc';

    if v_args ? 'after' then
        select p.seq, p.pos into after_seq, after_pos
          from callhq.openai_item_pos(v_args->>'after', p_owner) p;
        if after_seq is null then
            perform callhq.openai_fail(400, 'Invalid ''after'': ''' || (v_args->>'after')
                                            || ''' is not an item of this list.',
                                       'after', 'invalid_value');
        end if;
    end if;
end
$$;


-- OpenAI's list: {object, data, first_id, last_id, has_more}, of a page
-- fetched one item longer than p_limit (that one says there are more).
create or replace function callhq.openai_list(p_page jsonb, p_limit int)
returns jsonb
language sql immutable
as $$
    select jsonb_build_object(
        'object', 'list',
        'data', d.data,
        'first_id', d.data->0->'id',
        'last_id', d.data->-1->'id',
        'has_more', jsonb_array_length(coalesce(p_page, '[]')) > p_limit)
      from (select coalesce(jsonb_agg(e.value order by e.n), '[]') as data
              from jsonb_array_elements(coalesce(p_page, '[]'))
                   with ordinality e(value, n)
             where e.n <= p_limit) d
$$;


-- A page of p_owner's items as OpenAI's list: the items of p_msgs
-- ([[n, message], ...], enough of them to fill it) after the place
-- (after_seq, after_pos) that openai_list_args read, in its order.
create or replace function callhq.openai_page(p_owner uuid, p_msgs jsonb,
                                              p_after_seq int, p_after_pos int,
                                              p_lim int, p_desc boolean)
returns jsonb
language plpgsql stable
as $$
declare
    v_sign  int := case when p_desc then -1 else 1 end;
begin
    return callhq.openai_list(
        (select jsonb_agg(x.item order by x.k)
           from (select i.item, v_sign * ((e.v->>0)::bigint * 10000 + i.pos) as k
                   from jsonb_array_elements(coalesce(p_msgs, '[]')) e(v),
                        callhq.openai_items(p_owner, (e.v->>0)::bigint, e.v->1) i
                  where p_after_seq is null
                     or v_sign * ((e.v->>0)::bigint * 10000 + i.pos)
                        > v_sign * (p_after_seq::bigint * 10000 + p_after_pos)
                  order by 2
                  limit p_lim + 1) x),
        p_lim);
end
$$;


-- GET /responses/{id}/input_items: the input of the response (a string
-- input is one user message).
create or replace function callhq.api_openai_input_items(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_c     callhq.chats := callhq.openai_chat(callhq.auth(p_key), p_id);
    v_a     record;
    v_in    jsonb;
begin
    select * into v_a from callhq.openai_list_args(p_args, v_c.id);

    v_in := case jsonb_typeof(v_c.input)
                when 'string' then jsonb_build_array(jsonb_build_object(
                                       'role', 'user', 'content', v_c.input))
                when 'array' then v_c.input
                else '[]' end;

    return query select 200, callhq.openai_page(
        v_c.id,
        (select jsonb_agg(jsonb_build_array(i.n, i.m))
           from jsonb_array_elements(v_in) with ordinality i(m, n)),
        v_a.after_seq, v_a.after_pos, v_a.lim, v_a.descending)::text;
end
$$;


-- A conversation as OpenAI's object.
create or replace function callhq.openai_conversation(s callhq.sessions)
returns jsonb
language sql stable
as $$
    select jsonb_build_object('id', 'conv_' || s.id,
                              'object', 'conversation',
                              'created_at', extract(epoch from s.created_at)::bigint,
                              'metadata', coalesce(s.metadata, '{}'))
$$;


-- The session a conversation id names in the org (conv_<id>, or the
-- session's id): 404 else, and 410 when p_open and it is completed or
-- expired, as a chat would find it.  p_lock: for update.
create or replace function callhq.openai_conv_session(p_org uuid, p_id text,
                                                      p_open boolean,
                                                      p_lock boolean default false)
returns callhq.sessions
language plpgsql
as $$
declare
    v_id  text := case when p_id like 'conv\_%' then substr(p_id, 6) else p_id end;
    v_s   callhq.sessions;
begin
    if callhq.is_uuid(v_id) then
        if p_lock then
            select s.* into v_s from callhq.sessions s
             where s.id = v_id::uuid and s.org_id = p_org
               for update;
        else
            select s.* into v_s from callhq.sessions s
             where s.id = v_id::uuid and s.org_id = p_org;
        end if;
    end if;
    if v_s.id is null then
        perform callhq.openai_fail(404, 'Conversation with id ''' || coalesce(p_id, '')
                                        || ''' not found.', 'conversation_id');
    end if;
    if p_open and (v_s.status = 'completed' or v_s.expires_at <= now()) then
        perform callhq.openai_fail(410, 'Conversation with id ''conv_' || v_s.id
                                        || ''' has expired; create a new conversation.',
                                   'conversation_id', 'conversation_expired');
    end if;
    return v_s;
end
$$;


-- A session's items change only between its chats: 409 while one runs,
-- as PATCH /session answers.
create or replace function callhq.openai_conv_idle(s callhq.sessions)
returns void
language plpgsql
as $$
begin
    if s.busy_chat is not null and s.busy_until >= now() then
        perform callhq.openai_fail(409, 'Conversation with id ''conv_' || s.id
                                        || ''' is busy with a response; try again '
                                        || 'when it is done.', 'conversation_id',
                                   'conversation_busy');
    end if;
end
$$;


-- The session of POST /responses's conversation (openai.sql): its
-- failures name "conversation"; one without an assistant yet takes the
-- response's, p_assistant.
create or replace function callhq.openai_conv_turn(p_org uuid, p_conv text,
                                                   p_assistant uuid)
returns callhq.sessions
language plpgsql
as $$
declare
    v_s      callhq.sessions;
    v_state  text;
    v_msg    text;
    v_param  text;
    v_code   text;
begin
    begin
        v_s := callhq.openai_conv_session(p_org, p_conv, true, true);
    exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text,
                                v_param = column_name, v_code = constraint_name;
        perform callhq.openai_refail(v_state, v_msg, v_param, v_code, null,
                                     'conversation');
    end;

    if v_s.assistant_id is null and v_s.assistant is null then
        update callhq.sessions s set assistant_id = p_assistant
         where s.id = v_s.id
        returning s.* into v_s;
    end if;
    return v_s;
end
$$;


-- New items of a session, at its end (the session locked by the caller).
-- Returns them as OpenAI's list.
create or replace function callhq.openai_conv_append(s callhq.sessions, p_msgs jsonb)
returns jsonb
language plpgsql
as $$
declare
    v_n  int := jsonb_array_length(p_msgs);
begin
    perform callhq.openai_conv_idle(s);

    perform callhq.messages_insert(s.id, p_msgs, s.next_seq);

    update callhq.sessions t
       set next_seq = t.next_seq + v_n, updated_at = callhq.now_ms()
     where t.id = s.id;

    -- all of them: 20 messages of at most 128 tool calls each
    return callhq.openai_page(
        s.id,
        (select jsonb_agg(jsonb_build_array(m.seq, m.raw::jsonb))
           from callhq.messages m
          where m.session_id = s.id and m.seq >= s.next_seq),
        null, null, 20 * 129, false);
end
$$;


-- POST /conversations: items (at most 20) and metadata; the assistant is
-- metadata.assistant, or else the model of its first response.
create or replace function callhq.api_openai_conv_create(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org         uuid := callhq.auth(p_key);
    v_body        jsonb;
    v_meta        jsonb;
    v_msgs        jsonb;
    v_expiration  int := coalesce(nullif(callhq.opt_int(p_opts, 'defaultExpirationSeconds'),
                                         0), 86400);
    v_s           callhq.sessions;
begin
    perform callhq.openai_args(p_args, '{}');
    v_body := callhq.openai_body(p_body, array['items', 'metadata']);
    v_meta := callhq.openai_metadata(v_body->'metadata', 'metadata');
    v_msgs := callhq.openai_conv_messages(v_body->'items', 'items');

    insert into callhq.sessions (org_id, assistant_id, expiration_seconds, expires_at,
                                 metadata, next_seq)
    values (v_org, callhq.openai_conv_assistant(v_org, v_meta), v_expiration,
            callhq.now_ms() + make_interval(secs => v_expiration), v_meta,
            1 + jsonb_array_length(v_msgs))
    returning * into v_s;

    perform callhq.messages_insert(v_s.id, v_msgs, 1);

    return query select 200, callhq.openai_conversation(v_s)::text;
end
$$;


-- GET /conversations/{id}
create or replace function callhq.api_openai_conv_get(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
begin
    perform callhq.openai_args(p_args, '{}');
    return query select 200, callhq.openai_conversation(
                                 callhq.openai_conv_session(v_org, p_id, true))::text;
end
$$;


-- POST /conversations/{id}: metadata (required) replaces the metadata; a
-- conversation without an assistant takes metadata.assistant's.
create or replace function callhq.api_openai_conv_update(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org   uuid := callhq.auth(p_key);
    v_body  jsonb;
    v_meta  jsonb;
    v_s     callhq.sessions;
begin
    perform callhq.openai_args(p_args, '{}');
    v_body := callhq.openai_body(p_body, array['metadata']);
    if not v_body ? 'metadata' then
        perform callhq.openai_fail(400, 'Missing required parameter: ''metadata''.',
                                   'metadata', 'missing_required_parameter');
    end if;
    v_meta := callhq.openai_metadata(v_body->'metadata', 'metadata');
    v_s := callhq.openai_conv_session(v_org, p_id, true, true);

    update callhq.sessions s
       set metadata = v_meta,
           assistant_id = case when s.assistant_id is null and s.assistant is null
                               then callhq.openai_conv_assistant(v_org, v_meta)
                               else s.assistant_id end,
           updated_at = callhq.now_ms()
     where s.id = v_s.id
    returning s.* into v_s;

    return query select 200, callhq.openai_conversation(v_s)::text;
end
$$;


-- DELETE /conversations/{id}: the session goes, as DELETE /session (its
-- messages and chats with it), expired or not.
create or replace function callhq.api_openai_conv_delete(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_s    callhq.sessions;
begin
    perform callhq.openai_args(p_args, '{}');
    v_s := callhq.openai_conv_session(v_org, p_id, false, true);
    delete from callhq.sessions s where s.id = v_s.id;
    return query select 200, jsonb_build_object('id', 'conv_' || v_s.id,
                                                'object', 'conversation.deleted',
                                                'deleted', true)::text;
end
$$;


-- GET /conversations/{id}/items: the session's messages by seq.
create or replace function callhq.api_openai_conv_items(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_s     callhq.sessions := callhq.openai_conv_session(callhq.auth(p_key), p_id, true);
    v_a     record;
    v_msgs  jsonb;
begin
    select * into v_a from callhq.openai_list_args(p_args, v_s.id);

    -- the messages from the one after names on: each is an item or more,
    -- so lim + 2 of them fill the page and tell whether there are more
    if v_a.descending then
        select jsonb_agg(jsonb_build_array(m.seq, m.raw::jsonb)) into v_msgs
          from (select m.seq, m.raw from callhq.messages m
                 where m.session_id = v_s.id
                   and m.seq <= coalesce(v_a.after_seq, v_s.next_seq)
                 order by m.seq desc
                 limit v_a.lim + 2) m;
    else
        select jsonb_agg(jsonb_build_array(m.seq, m.raw::jsonb)) into v_msgs
          from (select m.seq, m.raw from callhq.messages m
                 where m.session_id = v_s.id and m.seq >= coalesce(v_a.after_seq, 0)
                 order by m.seq
                 limit v_a.lim + 2) m;
    end if;

    return query select 200, callhq.openai_page(v_s.id, v_msgs, v_a.after_seq,
                                                v_a.after_pos, v_a.lim,
                                                v_a.descending)::text;
end
$$;


-- POST /conversations/{id}/items: items (required, at most 20) appended.
create or replace function callhq.api_openai_conv_items_add(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org   uuid := callhq.auth(p_key);
    v_body  jsonb;
    v_msgs  jsonb;
    v_s     callhq.sessions;
begin
    perform callhq.openai_args(p_args, array['include', 'include[]']);
    v_body := callhq.openai_body(p_body, array['items']);
    if jsonb_array_length(coalesce(v_body->'items', '[]')) = 0 then
        perform callhq.openai_fail(400, 'Missing required parameter: ''items''.',
                                   'items', 'missing_required_parameter');
    end if;
    v_msgs := callhq.openai_conv_messages(v_body->'items', 'items');
    v_s := callhq.openai_conv_session(v_org, p_id, true, true);

    return query select 200, callhq.openai_conv_append(v_s, v_msgs)::text;
end
$$;


-- The item {id}/{item} names, of a session, and its message; 404 else.
create or replace function callhq.openai_conv_item(s callhq.sessions, p_item text,
                                                   out msg callhq.messages,
                                                   out item jsonb)
language plpgsql stable
as $$
declare
    v_seq  int;
    v_pos  int;
begin
    select p.seq, p.pos into v_seq, v_pos from callhq.openai_item_pos(p_item, s.id) p;
    select m.* into msg from callhq.messages m
     where m.session_id = s.id and m.seq = v_seq;
    if msg.seq is not null then
        select i.item into item
          from callhq.openai_items(s.id, msg.seq, msg.raw::jsonb) i
         where i.pos = v_pos;
    end if;
    if item is null then
        perform callhq.openai_fail(404, 'Item with id ''' || coalesce(p_item, '')
                                        || ''' not found.', 'item_id');
    end if;
end
$$;


-- GET /conversations/{id}/items/{item}
create or replace function callhq.api_openai_conv_item_get(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_s  callhq.sessions;
begin
    perform callhq.openai_args(p_args, array['include', 'include[]']);
    v_s := callhq.openai_conv_session(callhq.auth(p_key), split_part(p_id, '/', 1), true);
    return query select 200, (callhq.openai_conv_item(v_s, split_part(p_id, '/', 2))).item::text;
end
$$;


-- DELETE /conversations/{id}/items/{item}: the message leaves the
-- history (with its other items: a function_call goes with the message
-- that made it and that message's other calls), as PATCH /session
-- replaces it: 409 while a chat of the session
-- runs, the chats that were sent it keep a copy of their context, and the
-- history's epoch moves on (a node's cached history is stale).
create or replace function callhq.api_openai_conv_item_delete(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_s  callhq.sessions;
    v_m  callhq.messages;
begin
    perform callhq.openai_args(p_args, '{}');
    v_s := callhq.openai_conv_session(callhq.auth(p_key), split_part(p_id, '/', 1),
                                      true, true);
    v_m := (callhq.openai_conv_item(v_s, split_part(p_id, '/', 2))).msg;

    perform callhq.openai_conv_idle(v_s);

    update callhq.chats c
       set messages = callhq.chat_messages(c), history_from = null, history_to = null
     where c.session_id = v_s.id and c.history_to is not null
       and v_m.seq between c.history_from and c.history_to;

    delete from callhq.messages m where m.session_id = v_s.id and m.seq = v_m.seq;

    update callhq.sessions s
       set history_epoch = s.history_epoch + 1, updated_at = callhq.now_ms()
     where s.id = v_s.id
    returning s.* into v_s;

    return query select 200, callhq.openai_conversation(v_s)::text;
end
$$;
