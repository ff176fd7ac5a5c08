-- list.sql: query strings and the lists of GET /assistant, /session, /chat.
--
-- check_args and param_* read the query string (a flat object of strings);
-- parse_list turns a list's parameters into a callhq.list_query. The
-- *_matching filters are plain SQL set-returning functions, so that the
-- planner inlines them into the calling query and can use the indexes.
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


-- The query string: every parameter known and a string.
create or replace function callhq.check_args(p_args jsonb, p_allowed text[])
returns jsonb
language plpgsql
as $$
declare
    v_key    text;
    v_value  jsonb;
begin
    if p_args is null then
        return '{}'::jsonb;
    end if;
    if jsonb_typeof(p_args) <> 'object' then
        perform callhq.fail(400, 'query string must be an object');
    end if;

    for v_key, v_value in select e.key, e.value from jsonb_each(p_args) e
    loop
        if v_key <> all (p_allowed) then
            perform callhq.fail(400, 'property ' || v_key || ' should not exist');
        end if;
        if jsonb_typeof(v_value) <> 'string' then
            perform callhq.fail(400, v_key || ' must be a string');
        end if;
    end loop;
    return p_args;
end
$$;


create or replace function callhq.param_int(p_args jsonb, p_key text,
                                            p_min int, p_max int)
returns int
language plpgsql
as $$
declare
    v_text  text := p_args->>p_key;
begin
    if v_text is null then
        return null;
    end if;
    if v_text !~ '^[0-9]{1,10}$' or v_text::bigint < p_min or v_text::bigint > p_max then
        perform callhq.fail(400, p_key || ' must be an integer between '
                                 || p_min || ' and ' || p_max);
    end if;
    return v_text::int;
end
$$;


create or replace function callhq.param_uuid(p_args jsonb, p_key text)
returns uuid
language plpgsql
as $$
declare
    v_text  text := p_args->>p_key;
begin
    if v_text is null then
        return null;
    end if;
    if not callhq.is_uuid(v_text) then
        perform callhq.fail(400, p_key || ' must be a UUID');
    end if;
    return v_text::uuid;
end
$$;


-- 'a, b,c' -> {a,b,c}: items trimmed, empty ones dropped, at least one.
create or replace function callhq.param_list(p_args jsonb, p_key text)
returns text[]
language plpgsql
as $$
declare
    v_text   text := p_args->>p_key;
    v_items  text[];
begin
    if v_text is null then
        return null;
    end if;

    select array_agg(btrim(x)) into v_items
      from unnest(string_to_array(v_text, ',')) x
     where btrim(x) <> '';

    if v_items is null then
        perform callhq.fail(400, p_key || ' must be a comma-separated list');
    end if;
    return v_items;
end
$$;


create or replace function callhq.param_uuid_list(p_args jsonb, p_key text)
returns uuid[]
language plpgsql
as $$
declare
    v_items  text[] := callhq.param_list(p_args, p_key);
begin
    if exists (select 1 from unnest(v_items) x where not callhq.is_uuid(x)) then
        perform callhq.fail(400, p_key || ' must be a comma-separated list of UUIDs');
    end if;
    return v_items::uuid[];
end
$$;


-- An ISO 8601 timestamp: 2026-11-24, 2026-11-24T13:16:23.123Z,
-- 2026-11-24T15:16:23+02:00 ... ('T' or a blank between date and time);
-- without an offset it is UTC. A '+' of an offset that form decoding
-- turned into a blank is taken back.
create or replace function callhq.param_ts(p_args jsonb, p_key text)
returns timestamptz
language plpgsql stable
as $$
declare
    v_text  text := p_args->>p_key;
    v_ts    timestamptz;
begin
    if v_text is null then
        return null;
    end if;

    v_text := regexp_replace(v_text,
        '([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?) (\d{2}(:?\d{2})?)$', '\1+\4');

    if v_text ~ '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$' then
        begin
            if v_text ~ '[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$' then
                v_ts := v_text::timestamptz;
            else
                v_ts := v_text::timestamp at time zone 'UTC';
            end if;
        exception when others then
            v_ts := null;       -- 2026-13-45 and the like
        end;
    end if;

    if v_ts is null then
        perform callhq.fail(400, p_key || ' must be an ISO 8601 timestamp');
    end if;
    return v_ts;
end
$$;


-- The time filters every list takes.
create or replace function callhq.time_params()
returns text[]
language sql immutable
as $$
    select array['createdAtGt', 'createdAtLt', 'createdAtGe', 'createdAtLe',
                 'updatedAtGt', 'updatedAtLt', 'updatedAtGe', 'updatedAtLe']
$$;


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
    q.phone_number_id  := callhq.param_uuid(v_args, 'phoneNumberId');
    q.phone_number_ids := callhq.param_uuid_list(v_args, 'phoneNumberIdAny');
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


-- {itemsPerPage, totalItems, currentPage, totalPages, hasNextPage, sortOrder}
-- Stable, not immutable, so that it inlines (jsonb_build_object is only
-- stable).
create or replace function callhq.list_metadata(q callhq.list_query, p_total bigint)
returns jsonb
language sql stable
as $$
    select jsonb_build_object(
        'itemsPerPage', q.lim,
        'totalItems',   p_total,
        'currentPage',  q.page,
        'totalPages',   ceil(p_total::numeric / q.lim)::bigint,
        'hasNextPage',  q.page < ceil(p_total::numeric / q.lim),
        'sortOrder',    case when q.sort_asc then 'ASC' else 'DESC' end)
$$;


create or replace function callhq.assistants_matching(p_org uuid, q callhq.list_query)
returns setof callhq.assistants
language sql stable
as $$
    select a.*
      from callhq.assistants a
     where a.org_id = p_org
       and ((q).created_gt is null or a.created_at >  (q).created_gt)
       and ((q).created_lt is null or a.created_at <  (q).created_lt)
       and ((q).created_ge is null or a.created_at >= (q).created_ge)
       and ((q).created_le is null or a.created_at <= (q).created_le)
       and ((q).updated_gt is null or a.updated_at >  (q).updated_gt)
       and ((q).updated_lt is null or a.updated_at <  (q).updated_lt)
       and ((q).updated_ge is null or a.updated_at >= (q).updated_ge)
       and ((q).updated_le is null or a.updated_at <= (q).updated_le)
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
       and ((q).phone_number_id is null or s.phone_number_id = (q).phone_number_id)
       and ((q).phone_number_ids is null
            or s.phone_number_id = any ((q).phone_number_ids))
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


-- A page of a list (p_kind: 'chats', 'sessions' or 'assistants'): the
-- rows of p_ids, in that order, as JSON text joined with ', ', read one
-- at a time; past p_max bytes (callhq_max_list_size) it stops and answers
-- 400 naming limit, before the rest are read (a chat's context, a
-- session's or an assistant's prompts can be long: a page of 1000 is
-- otherwise built whole, whatever its size).
create or replace function callhq.list_page(p_kind text, p_ids uuid[], p_max bigint)
returns text
language plpgsql stable
as $$
declare
    v_id     uuid;
    v_row    text;
    v_rows   text[] := '{}';
    v_bytes  bigint := 0;
begin
    foreach v_id in array coalesce(p_ids, '{}')
    loop
        if p_kind = 'chats' then
            select callhq.chat_text(x) into v_row
              from callhq.chats x where x.id = v_id;
        elsif p_kind = 'sessions' then
            select callhq.session_json(x)::text into v_row
              from callhq.sessions x where x.id = v_id;
        else
            select callhq.assistant_json(x)::text into v_row
              from callhq.assistants x where x.id = v_id;
        end if;
        continue when v_row is null;        -- deleted meanwhile

        v_bytes := v_bytes + octet_length(v_row) + 2;
        if v_bytes > p_max then
            perform callhq.fail(400, 'limit: this page of ' || p_kind || ' is over '
                                     || p_max || ' bytes (callhq_max_list_size) by its '
                                     || rtrim(p_kind, 's') || ' '
                                     || (cardinality(v_rows) + 1) || '; ask for fewer');
        end if;
        v_rows := v_rows || v_row;
    end loop;
    return array_to_string(v_rows, ', ');
end
$$;
