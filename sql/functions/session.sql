-- session.sql: /session, and a session as the API shows it.
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


-- A session's status as read: past its expiry it is completed.
create or replace function callhq.session_status(s callhq.sessions)
returns text
language sql stable
as $$
    select case when s.expires_at <= now() then 'completed' else s.status end
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
        'assistant',         callhq.assistant_shown(s.assistant),
        'assistantOverrides', s.assistant_overrides,
        'customer',          s.customer,
        'phoneNumberId',     s.phone_number_id,
        'metadata',          s.metadata,
        'createdAt',         callhq.ts(s.created_at),
        'updatedAt',         callhq.ts(s.updated_at)))
$$;


-- A session with its whole history, oldest first, as response text; the
-- stored raw messages are spliced in, not decoded and encoded again.
create or replace function callhq.session_body(s callhq.sessions)
returns text
language sql stable
as $$
    select left(callhq.session_json(s)::text, -1)
           || ', "messages": ['
           || coalesce((select string_agg(m.raw, ', ' order by m.seq)
                          from callhq.messages m
                         where m.session_id = s.id), '')
           || ']}'
$$;


-- Append p_msgs (checked by check_messages) to a session's history as
-- seq p_first, p_first + 1, ...
create or replace function callhq.messages_insert(p_session uuid, p_msgs jsonb,
                                                  p_first int)
returns void
language sql
as $$
    insert into callhq.messages (session_id, seq, role, content, raw)
    select p_session, p_first + e.n - 1, e.m->>'role', e.m->'content',
           callhq.message_raw_of(e.m->>'role', e.m)
      from jsonb_array_elements(p_msgs) with ordinality e(m, n)
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
                                'phoneNumberId', 'phoneNumberIdAny',
                                -- the SDK's, accepted and ignored: the module
                                -- has no squads, workflows or SIP, and
                                -- sessions no overrides to filter on
                                'squadId', 'workflowId', 'sipUri', 'extension',
                                'numberE164CheckEnabled', 'assistantOverrides',
                                'squadOverrides'] || callhq.time_params());
    v_offset  bigint := (v_q.page - 1)::bigint * v_q.lim;
    v_max     bigint := callhq.opt_bigint_or(p_opts, 'maxListSize', 8388608);
    v_total   bigint;
    v_rows    text;
begin
    select count(*) into v_total from callhq.sessions_matching(v_org, v_q);

    -- bounded by callhq_max_list_size (list_page)
    if v_q.sort_asc then
        v_rows := callhq.list_page('sessions', array(
            select s.id from callhq.sessions_matching(v_org, v_q) s
             order by s.created_at, s.id
             limit v_q.lim offset v_offset), v_max);
    else
        v_rows := callhq.list_page('sessions', array(
            select s.id from callhq.sessions_matching(v_org, v_q) s
             order by s.created_at desc, s.id desc
             limit v_q.lim offset v_offset), v_max);
    end if;

    return query select 200, '{"results": [' || v_rows || '], "metadata": '
                             || callhq.list_metadata(v_q, v_total)::text || '}';
end
$$;


-- GET /session/{id}: with the whole history, oldest first.
create or replace function callhq.api_session_get(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_id   uuid := callhq.path_id(p_id, 'Session');
    v_s    callhq.sessions;
begin
    perform callhq.check_args(p_args, '{}');

    select s.* into v_s from callhq.sessions s where s.id = v_id and s.org_id = v_org;
    if not found then
        perform callhq.fail(404, 'Session ' || p_id || ' not found');
    end if;

    return query select 200, callhq.session_body(v_s);
end
$$;


-- PATCH /session/{id}: name, status, expirationSeconds (expiry counted
-- again from createdAt; from now for renew-on-activity sessions), messages
-- (replace the history), customer, metadata. null clears name, customer
-- and metadata; status, expirationSeconds and messages cannot be null.
-- New messages replace the history only when no chat of the session is
-- running (409), and each chat of the session first keeps a copy of the
-- context it was sent.
create or replace function callhq.api_session_update(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org         uuid := callhq.auth(p_key);
    v_id          uuid := callhq.path_id(p_id, 'Session');
    v_body        jsonb;
    v_status      text;
    v_expiration  int;
    v_msgs        jsonb;
    v_s           callhq.sessions;
begin
    perform callhq.check_args(p_args, '{}');
    v_body := callhq.check_body(p_body);

    perform callhq.check_fields(v_body, array['name', 'status', 'expirationSeconds',
                                              'messages', 'customer', 'metadata'], '');
    perform callhq.check_string(v_body->'name', 'name', 40);
    v_status := callhq.check_enum(v_body->'status', 'status', array['active', 'completed'],
                                  v_body ? 'status');
    v_expiration := callhq.check_int(v_body->'expirationSeconds', 'expirationSeconds',
                                     60, 2592000, v_body ? 'expirationSeconds');
    v_msgs := callhq.check_messages(v_body->'messages', 'messages', v_body ? 'messages');
    perform callhq.check_customer(v_body->'customer', 'customer');
    perform callhq.check_object(v_body->'metadata', 'metadata');

    if v_msgs is not null then
        select s.* into v_s
          from callhq.sessions s
         where s.id = v_id and s.org_id = v_org
           for update;
        if found and v_s.busy_chat is not null and v_s.busy_until >= now() then
            perform callhq.fail(409, 'Session ' || p_id || ' is busy with another chat; '
                                     'its messages cannot be replaced now');
        end if;
    end if;

    update callhq.sessions s
       set name               = case when v_body ? 'name'
                                     then v_body->>'name' else s.name end,
           status             = coalesce(v_status, s.status),
           expiration_seconds = coalesce(v_expiration, s.expiration_seconds),
           expires_at         = case when v_expiration is null then s.expires_at
                                     when s.renew_on_activity
                                     then callhq.now_ms() + make_interval(secs => v_expiration)
                                     else s.created_at + make_interval(secs => v_expiration)
                                end,
           customer           = case when v_body ? 'customer'
                                     then jsonb_strip_nulls(callhq.jnull(v_body->'customer'))
                                     else s.customer end,
           metadata           = case when v_body ? 'metadata'
                                     then callhq.jnull(v_body->'metadata') else s.metadata end,
           next_seq           = case when v_msgs is null then s.next_seq
                                     else 1 + jsonb_array_length(v_msgs) end,
           history_epoch      = case when v_msgs is null then s.history_epoch
                                     else s.history_epoch + 1 end,
           updated_at         = callhq.now_ms()
     where s.id = v_id and s.org_id = v_org
    returning s.* into v_s;

    if not found then
        perform callhq.fail(404, 'Session ' || p_id || ' not found');
    end if;

    if v_msgs is not null then
        update callhq.chats c
           set messages = callhq.chat_messages(c), history_from = null, history_to = null
         where c.session_id = v_id and c.history_to is not null;

        delete from callhq.messages m where m.session_id = v_id;
        perform callhq.messages_insert(v_id, v_msgs, 1);
    end if;

    return query select 200, callhq.session_body(v_s);
end
$$;


-- DELETE /session/{id}: answers with the session and its history; the
-- messages and chats go with it.
create or replace function callhq.api_session_delete(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org   uuid := callhq.auth(p_key);
    v_id    uuid := callhq.path_id(p_id, 'Session');
    v_s     callhq.sessions;
    v_text  text;
begin
    perform callhq.check_args(p_args, '{}');

    select s.* into v_s
      from callhq.sessions s
     where s.id = v_id and s.org_id = v_org
       for update;
    if not found then
        perform callhq.fail(404, 'Session ' || p_id || ' not found');
    end if;

    v_text := callhq.session_body(v_s);
    delete from callhq.sessions s where s.id = v_id;

    return query select 200, v_text;
end
$$;


-- A deleted session's messages and chats go with it (ON DELETE CASCADE did
-- this until 018_messages_no_foreign_key and 023_chats_no_session_key):
-- once per statement, so that an org's deletion, which deletes its
-- sessions, deletes their messages in one go.  A chat's own delete
-- triggers (its webhook) fire as they did under the cascade.
create or replace function callhq.session_messages_delete()
returns trigger
language plpgsql
as $$
begin
    delete from callhq.messages m using gone g where m.session_id = g.id;
    delete from callhq.chats c using gone g where c.session_id = g.id;
    return null;
end
$$;

drop trigger if exists session_messages_delete on callhq.sessions;
create trigger session_messages_delete
    after delete on callhq.sessions
    referencing old table as gone
    for each statement execute function callhq.session_messages_delete();
