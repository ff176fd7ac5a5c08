-- 008_plan_once.sql: a chat's SQL is planned once per connection, not on
-- every call.
--
-- pg_stat_statements (bench/) showed a third of a chat's database time
-- spent planning: a SQL-language function that PostgreSQL cannot inline
-- into its caller is parsed and planned again for every statement that
-- calls it, and PL/pgSQL kept re-planning chat_begin's statements because
-- their generic plans looked dearer than custom ones for short histories.
--
--   * helpers declared immutable whose bodies are only stable (to_jsonb,
--     jsonb_build_object) are never inlined: declared stable now, they are
--   * the helpers that read a set (FROM ...) and that PL/pgSQL calls once
--     per chat cannot be inlined: they are PL/pgSQL now, whose plans live
--     as long as the connection (strip_nulls stays SQL: lists call it per
--     row, within one query, where its plan is kept)
--   * the history query runs with plan_cache_mode force_generic_plan: it
--     is a range of the primary key, always; with histories of unequal
--     lengths the planner judged each custom plan cheaper and planned it
--     anew for every chat
--
-- Behaviour does not change.


alter function callhq.message_raw(text, jsonb) stable;
alter function callhq.message_clean(jsonb) stable;
alter function callhq.chat_params(jsonb) stable;
alter function callhq.list_metadata(callhq.list_query, bigint) stable;


-- The messages of a JSON array as compact JSON joined by ',', developer as
-- system (as in 005_sdk_compat.sql).
create or replace function callhq.chat_raws(p_msgs jsonb)
returns text
language plpgsql stable
as $$
begin
    if jsonb_typeof(p_msgs) is distinct from 'array' then
        return null;
    end if;

    return (select string_agg(callhq.message_raw(callhq.upstream_role(e.m->>'role'),
                                                 e.m->'content'), ',' order by e.n)
              from jsonb_array_elements(p_msgs) with ordinality e(m, n));
end
$$;


-- Messages with fill_vars applied to each string content (as in
-- 005_sdk_compat.sql); without variables, the messages as they are.
create or replace function callhq.fill_messages(p_msgs jsonb, p_vars jsonb)
returns jsonb
language plpgsql immutable
as $$
begin
    if jsonb_typeof(p_msgs) is distinct from 'array'
       or jsonb_typeof(p_vars) is distinct from 'object' or p_vars = '{}'
    then
        return p_msgs;
    end if;

    return (select coalesce(jsonb_agg(
                       case when jsonb_typeof(e.m->'content') = 'string'
                            then jsonb_set(e.m, '{content}',
                                           to_jsonb(callhq.fill_vars(e.m->>'content', p_vars)))
                            else e.m end order by e.n), '[]')
              from jsonb_array_elements(p_msgs) with ordinality e(m, n));
end
$$;


-- The assistant of a session or chat as the API shows it, when it has a
-- server.url; else the inline one (as in 006_webhook_fast_path.sql).
create or replace function callhq.webhook_assistant(p_id uuid, p_inline jsonb)
returns jsonb
language plpgsql stable
as $$
declare
    v_a  callhq.assistants;
begin
    if p_id is not null then
        select a.* into v_a from callhq.assistants a where a.id = p_id;
    end if;

    if v_a.id is null then
        return case when jsonb_typeof(p_inline) = 'object' then p_inline end;
    end if;

    if jsonb_typeof(v_a.server->'url') = 'string' and v_a.server->>'url' <> '' then
        return callhq.assistant_json(v_a);
    end if;

    return null;
end
$$;


alter function callhq.chat_history_range(uuid, bigint, bigint)
    set plan_cache_mode = force_generic_plan;


-- Whether an assistant wants event p_type (as in 004_webhooks.sql); its
-- argument is a function call, which PostgreSQL will not inline four times.
create or replace function callhq.webhook_wanted(p_assistant jsonb, p_type text)
returns boolean
language plpgsql immutable
as $$
begin
    return coalesce(
               jsonb_typeof(p_assistant->'server'->'url') = 'string'
               and p_assistant->'server'->>'url' <> ''
               and (jsonb_typeof(p_assistant->'serverMessages') is distinct from 'array'
                    or p_assistant->'serverMessages' ? p_type),
               false);
end
$$;


-- chat.created, chat.deleted (as in 004_webhooks.sql), but a new chat is
-- read again only when its assistant wants the event: the chats table is
-- the one a cached plan is likeliest to scan whole.
create or replace function callhq.webhook_chat_event()
returns trigger
language plpgsql
as $$
declare
    v_c     callhq.chats;
    v_type  text;
    v_a     jsonb;
begin
    if tg_op = 'DELETE' then
        v_c := old;
        v_type := 'chat.deleted';
    else
        v_type := 'chat.created';
        if not callhq.webhook_wanted(callhq.webhook_assistant(new.assistant_id,
                                                              new.assistant),
                                     v_type)
        then
            return null;
        end if;

        select c.* into v_c from callhq.chats c where c.id = new.id;
        if not found then
            return null;        -- deleted since: chat.deleted tells
        end if;
    end if;

    v_a := callhq.webhook_assistant(v_c.assistant_id, v_c.assistant);
    if not callhq.webhook_wanted(v_a, v_type) then
        return null;
    end if;

    -- No session any more: the chat went with it (or with its org), and
    -- session.deleted reports that.
    if tg_op = 'DELETE' and v_c.session_id is not null
       and not exists (select 1 from callhq.sessions s where s.id = v_c.session_id)
    then
        return null;
    end if;

    perform callhq.webhook_enqueue(v_c.org_id, v_c.session_id, v_type, 'chat',
                                   callhq.webhook_redact(callhq.chat_json(v_c))::text,
                                   v_a);
    return null;
end
$$;
