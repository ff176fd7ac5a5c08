-- 002_api.sql: the SQL functions behind the HTTP API, and the admin functions.
--
-- The C module calls exactly one function per HTTP operation, in one round
-- trip, as a prepared statement:
--
--   select status, body
--     from callhq.api_<resource>_<op>($1::bytea, $2::text, $3::jsonb,
--                                     $4::jsonb, $5::jsonb)
--
--   p_key   SHA-256 of the API key the client sent (Bearer token)
--   p_id    the {id} path segment; NULL on collection routes
--   p_args  the query string as a flat object of strings ({} when empty)
--   p_body  the request body (a JSON object) for POST/PATCH, else NULL
--   p_opts  module settings from nginx directives, e.g.
--           {"defaultExpirationSeconds": 86400}
--
-- and gets one row: the HTTP status (201 for create, 200 otherwise) and the
-- response body as JSON text. Every failure is an exception with SQLSTATE
-- 'CQ' followed by the HTTP status ('CQ400', 'CQ401', 'CQ404') and a message
-- that names the field, parameter or id at fault; the statement, and so
-- everything it wrote, is rolled back. Any other SQLSTATE is a server fault.
--
-- Functions are CREATE OR REPLACE so that later migrations can redefine them.
-- Every name is schema-qualified: nothing depends on search_path.


------------------------------------------------------------------------------
-- Basics
------------------------------------------------------------------------------

-- Raise the error that the C module turns into HTTP p_status with p_message.
-- Volatile on purpose: the planner must never fold a call to it.
create or replace function callhq.fail(p_status int, p_message text)
returns void
language plpgsql
as $$
begin
    raise exception using
        errcode = 'CQ' || lpad(p_status::text, 3, '0'),
        message = p_message;
end
$$;


-- now() to the millisecond: what createdAt, updatedAt and expiresAt are
-- stored as (see 001_schema.sql).
create or replace function callhq.now_ms()
returns timestamptz
language sql stable parallel safe
as $$
    select date_trunc('milliseconds', now())
$$;


-- A timestamp as the API shows it: ISO 8601, UTC, milliseconds.
create or replace function callhq.ts(p timestamptz)
returns text
language sql stable strict parallel safe
as $$
    select to_char(p at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;


-- An object without its top-level null members (nested values are kept
-- as they are: user metadata may hold nulls on purpose).
create or replace function callhq.strip_nulls(p jsonb)
returns jsonb
language sql immutable strict parallel safe
as $$
    select coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
      from jsonb_each(p) e
     where jsonb_typeof(e.value) <> 'null'
$$;


-- SQL NULL for an absent member and for a JSON null.
create or replace function callhq.jnull(p jsonb)
returns jsonb
language sql immutable parallel safe
as $$
    select case when jsonb_typeof(p) = 'null' then null else p end
$$;


-- JSON text without the blanks that jsonb's output puts after ':' and ','.
create or replace function callhq.json_compact(p jsonb)
returns text
language plpgsql immutable strict parallel safe
as $$
declare
    v_text  text;
begin
    case jsonb_typeof(p)
    when 'object' then
        select '{' || coalesce(string_agg(to_jsonb(e.key)::text || ':'
                                          || callhq.json_compact(e.value), ','), '')
               || '}'
          into v_text
          from jsonb_each(p) e;
    when 'array' then
        select '[' || coalesce(string_agg(callhq.json_compact(e.value), ','
                                          order by e.n), '')
               || ']'
          into v_text
          from jsonb_array_elements(p) with ordinality e(value, n);
    else
        v_text := p::text;      -- scalars print compact and escaped
    end case;
    return v_text;
end
$$;


-- A history message as stored in callhq.messages.raw.
create or replace function callhq.message_raw(p_role text, p_content jsonb)
returns text
language sql immutable parallel safe
as $$
    select '{"role":' || to_jsonb(p_role)::text
           || ',"content":' || coalesce(callhq.json_compact(p_content), 'null')
           || '}'
$$;


create or replace function callhq.is_uuid(p text)
returns boolean
language sql immutable parallel safe
as $$
    select p ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
$$;


------------------------------------------------------------------------------
-- Authentication and administration
------------------------------------------------------------------------------

-- The org of an API key, given the key's SHA-256; 401 when there is none.
create or replace function callhq.auth(p_key bytea)
returns uuid
language plpgsql stable
as $$
declare
    v_org  uuid;
begin
    if p_key is null then
        perform callhq.fail(401, 'Missing API key');
    end if;

    select k.org_id into v_org from callhq.api_keys k where k.key_hash = p_key;

    if v_org is null then
        perform callhq.fail(401, 'Invalid API key');
    end if;
    return v_org;
end
$$;


-- Admin: create an organisation, return its id.
--   select callhq.org_create('Acme');
create or replace function callhq.org_create(p_name text)
returns uuid
language sql
as $$
    insert into callhq.orgs (name) values (p_name) returning id
$$;


-- Admin: register a key chosen by the caller (tests use fixed keys) for an
-- org; only its SHA-256 is stored. Returns the id of the key row.
--   select callhq.api_key_add('<org uuid>', 'test-key-1');
create or replace function callhq.api_key_add(p_org uuid, p_key text)
returns uuid
language plpgsql
as $$
declare
    v_id  uuid;
begin
    if p_key is null or p_key = '' then
        raise exception 'api key must not be empty';
    end if;
    if not exists (select 1 from callhq.orgs o where o.id = p_org) then
        raise exception 'org % does not exist', p_org;
    end if;

    insert into callhq.api_keys (org_id, key_hash, prefix)
    values (p_org, sha256(convert_to(p_key, 'UTF8')), left(p_key, 8))
    returning id into v_id;
    return v_id;
end
$$;


-- Admin: generate a random key for an org ('chq_' and 40 hex digits, 160
-- bits from gen_random_uuid's strong random source), store its hash and
-- return the key: this is the only time it is ever shown.
--   select callhq.api_key_create('<org uuid>');
-- To revoke a key: delete from callhq.api_keys where prefix = '<prefix>';
create or replace function callhq.api_key_create(p_org uuid)
returns text
language plpgsql
as $$
declare
    v_key  text;
begin
    v_key := 'chq_' || left(encode(sha256(convert_to(
                 gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex'), 40);
    perform callhq.api_key_add(p_org, v_key);
    return v_key;
end
$$;


------------------------------------------------------------------------------
-- Validation of bodies
--
-- Each check_* takes a member (SQL NULL when absent) and its path as the
-- client wrote it ('model.temperature', 'messages[2].role'), raises 400
-- naming that path when the value is wrong, and returns the value (SQL NULL
-- when absent or JSON null). With p_required, absent or null is an error.
------------------------------------------------------------------------------

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


-- [{role, content}]: role one of system, user, assistant, tool; content a string.
create or replace function callhq.check_messages(p_value jsonb, p_path text,
                                                 p_required boolean default false)
returns jsonb
language plpgsql
as $$
declare
    v_msg   jsonb;
    v_n     bigint;
    v_path  text;
begin
    if callhq.check_array(p_value, p_path, p_required) is null then
        return null;
    end if;

    for v_msg, v_n in
        select e.value, e.n - 1 from jsonb_array_elements(p_value) with ordinality e(value, n)
    loop
        v_path := p_path || '[' || v_n || ']';
        perform callhq.check_object(v_msg, v_path, true);
        perform callhq.check_fields(v_msg, array['role', 'content'], v_path || '.');
        perform callhq.check_enum(v_msg->'role', v_path || '.role',
                                  array['system', 'user', 'assistant', 'tool'], true);
        perform callhq.check_string(v_msg->'content', v_path || '.content', null, true);
    end loop;
    return p_value;
end
$$;


-- {provider, model, messages, temperature, maxTokens}; model.model required.
create or replace function callhq.check_model(p_value jsonb, p_path text)
returns jsonb
language plpgsql
as $$
begin
    if callhq.check_object(p_value, p_path) is null then
        return null;
    end if;

    perform callhq.check_fields(p_value, array['provider', 'model', 'messages',
                                               'temperature', 'maxTokens'], p_path || '.');
    perform callhq.check_string(p_value->'provider', p_path || '.provider', 100);
    perform callhq.check_string(p_value->'model', p_path || '.model', 200, true);
    perform callhq.check_messages(p_value->'messages', p_path || '.messages');
    perform callhq.check_number(p_value->'temperature', p_path || '.temperature', 0, 2);
    perform callhq.check_int(p_value->'maxTokens', p_path || '.maxTokens', 1, 1000000);
    return p_value;
end
$$;


-- {url, secret, headers, timeoutSeconds}: where webhooks go. Header names
-- and values are checked so that nothing can be smuggled into the request.
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
                                               'timeoutSeconds'], p_path || '.');

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


-- Event names an assistant's server receives (all five when absent).
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
        perform callhq.check_enum(v_event, p_path || '[' || v_n || ']',
                                  array['session.created', 'session.updated',
                                        'session.deleted', 'chat.created',
                                        'chat.deleted'], true);
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


-- The fields of an assistant (POST/PATCH /assistant, or a session's inline
-- assistant with p_prefix 'assistant.'); p_obj is an object.
create or replace function callhq.check_assistant(p_obj jsonb, p_prefix text)
returns jsonb
language plpgsql
as $$
begin
    perform callhq.check_fields(p_obj, array['name', 'model', 'firstMessage', 'server',
                                             'serverMessages', 'metadata'], p_prefix);
    perform callhq.check_string(p_obj->'name', p_prefix || 'name', 40);
    perform callhq.check_model(p_obj->'model', p_prefix || 'model');
    perform callhq.check_string(p_obj->'firstMessage', p_prefix || 'firstMessage');
    perform callhq.check_server(p_obj->'server', p_prefix || 'server');
    perform callhq.check_server_messages(p_obj->'serverMessages', p_prefix || 'serverMessages');
    perform callhq.check_object(p_obj->'metadata', p_prefix || 'metadata');
    return p_obj;
end
$$;


------------------------------------------------------------------------------
-- Path ids, query strings and settings
------------------------------------------------------------------------------

-- The {id} of an item route: 400 unless it is a UUID.
create or replace function callhq.path_id(p_id text, p_kind text)
returns uuid
language plpgsql
as $$
begin
    if p_id is null then
        perform callhq.fail(400, p_kind || ' id is required');
    end if;
    if not callhq.is_uuid(p_id) then
        perform callhq.fail(400, p_kind || ' id "' || left(p_id, 100) || '" must be a UUID');
    end if;
    return p_id::uuid;
end
$$;


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


-- A whole number setting from p_opts (a directive's value), else NULL.
create or replace function callhq.opt_int(p_opts jsonb, p_key text)
returns int
language sql immutable
as $$
    select case when p_opts->>p_key ~ '^[0-9]{1,9}$' then (p_opts->>p_key)::int end
$$;


-- A parsed list query. Fields are NULL when their parameter is absent.
create type callhq.list_query as (
    page              int,          -- page, from 1
    lim               int,          -- limit
    sort_asc          boolean,      -- sortOrder = ASC
    id                uuid,
    ids               uuid[],       -- idAny
    name              text,
    assistant_id      uuid,
    assistant_ids     uuid[],       -- assistantIdAny
    customer_numbers  text[],       -- customerNumberAny
    session_id        uuid,
    previous_chat_id  uuid,
    created_gt        timestamptz,
    created_lt        timestamptz,
    created_ge        timestamptz,
    created_le        timestamptz,
    updated_gt        timestamptz,
    updated_lt        timestamptz,
    updated_ge        timestamptz,
    updated_le        timestamptz
);


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

    if v_args->>'sortBy' <> 'createdAt' then
        perform callhq.fail(400, 'sortBy must be one of createdAt');
    end if;

    q.id               := callhq.param_uuid(v_args, 'id');
    q.ids              := callhq.param_uuid_list(v_args, 'idAny');
    q.name             := v_args->>'name';
    q.assistant_id     := callhq.param_uuid(v_args, 'assistantId');
    q.assistant_ids    := callhq.param_uuid_list(v_args, 'assistantIdAny');
    q.customer_numbers := callhq.param_list(v_args, 'customerNumberAny');
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
create or replace function callhq.list_metadata(q callhq.list_query, p_total bigint)
returns jsonb
language sql immutable
as $$
    select jsonb_build_object(
        'itemsPerPage', q.lim,
        'totalItems',   p_total,
        'currentPage',  q.page,
        'totalPages',   ceil(p_total::numeric / q.lim)::bigint,
        'hasNextPage',  q.page < ceil(p_total::numeric / q.lim),
        'sortOrder',    case when q.sort_asc then 'ASC' else 'DESC' end)
$$;


------------------------------------------------------------------------------
-- Resources as JSON
------------------------------------------------------------------------------

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
        'server',         a.server,
        'serverMessages', a.server_messages,
        'metadata',       a.metadata,
        'createdAt',      callhq.ts(a.created_at),
        'updatedAt',      callhq.ts(a.updated_at)))
$$;


-- A session's status as read: past its expiry it is completed.
create or replace function callhq.session_status(s callhq.sessions)
returns text
language sql stable
as $$
    select case when s.expires_at <= now() then 'completed' else s.status end
$$;


-- A session without its messages (list rows).
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
        'customer',          s.customer,
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
        'createdAt',      callhq.ts(c.created_at),
        'updatedAt',      callhq.ts(c.updated_at)))
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
           callhq.message_raw(e.m->>'role', e.m->'content')
      from jsonb_array_elements(p_msgs) with ordinality e(m, n)
$$;


------------------------------------------------------------------------------
-- List filters. Plain SQL set-returning functions, so the planner inlines
-- them into the calling query and can use the indexes.
------------------------------------------------------------------------------

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


------------------------------------------------------------------------------
-- /assistant
------------------------------------------------------------------------------

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
            jsonb_strip_nulls(callhq.jnull(p_body->'model')),
            p_body->>'firstMessage',
            jsonb_strip_nulls(callhq.jnull(p_body->'server')),
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
    v_rows  jsonb;
begin
    select coalesce(jsonb_agg(t.j order by t.created_at desc, t.id desc), '[]')
      into v_rows
      from (select callhq.assistant_json(a) j, a.created_at, a.id
              from callhq.assistants_matching(v_org, v_q) a
             order by a.created_at desc, a.id desc
             limit v_q.lim) t;

    return query select 200, v_rows::text;
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
                                  then jsonb_strip_nulls(callhq.jnull(p_body->'model'))
                                  else a.model end,
           first_message   = case when p_body ? 'firstMessage'
                                  then p_body->>'firstMessage' else a.first_message end,
           server          = case when p_body ? 'server'
                                  then jsonb_strip_nulls(callhq.jnull(p_body->'server'))
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


------------------------------------------------------------------------------
-- /session
------------------------------------------------------------------------------

-- POST /session
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
    v_s             callhq.sessions;
begin
    perform callhq.check_args(p_args, '{}');
    v_body := callhq.check_body(p_body);

    perform callhq.check_fields(v_body, array['name', 'assistantId', 'assistant',
                                              'expirationSeconds', 'status', 'messages',
                                              'customer', 'metadata'], '');
    perform callhq.check_string(v_body->'name', 'name', 40);
    v_assistant_id := callhq.check_uuid(v_body->'assistantId', 'assistantId');
    if v_assistant_id is null then
        v_assistant := callhq.check_object(v_body->'assistant', 'assistant');
        if v_assistant is not null then
            perform callhq.check_assistant(v_assistant, 'assistant.');
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
                                 next_seq)
    values (v_org, v_assistant_id, v_assistant, v_body->>'name', v_status,
            v_expiration, callhq.now_ms() + make_interval(secs => v_expiration),
            jsonb_strip_nulls(callhq.jnull(v_body->'customer')),
            callhq.jnull(v_body->'metadata'),
            1 + coalesce(jsonb_array_length(v_msgs), 0))
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
                                'customerNumberAny'] || callhq.time_params());
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
           updated_at         = callhq.now_ms()
     where s.id = v_id and s.org_id = v_org
    returning s.* into v_s;

    if not found then
        perform callhq.fail(404, 'Session ' || p_id || ' not found');
    end if;

    if v_msgs is not null then
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


------------------------------------------------------------------------------
-- /chat (the read and delete side; POST /chat comes with a later migration)
------------------------------------------------------------------------------

-- GET /chat: {results, metadata}, as GET /session.
create or replace function callhq.api_chat_list(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org     uuid := callhq.auth(p_key);
    v_q       callhq.list_query := callhq.parse_list(
                  p_args, array['page', 'limit', 'sortOrder', 'sortBy', 'assistantId',
                                'assistantIdAny', 'sessionId', 'previousChatId']
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

    return query select 200, callhq.chat_json(v_c)::text;
end
$$;


-- DELETE /chat/{id}: answers with the deleted chat. A chat that named it as
-- previousChatId keeps its own context but loses the link.
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

    return query select 200, callhq.chat_json(v_c)::text;
end
$$;
