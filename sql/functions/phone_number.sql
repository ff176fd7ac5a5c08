-- phone_number.sql: /phone-number, and how a phone number is shown and
-- stored (sql/011_phone_numbers.sql).
--
-- twilioAuthToken is write-only: it is stored (the SMS webhook's
-- signature and the REST sends are keyed by it) and never shown. The
-- members of the official SDK's Twilio DTOs that the module has no use
-- for are 400 naming them (the SDK sends them only when its caller sets
-- them), null being taken as absent.
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


create or replace function callhq.phone_number_json(p callhq.phone_numbers)
returns jsonb
language sql stable
as $$
    select callhq.strip_nulls(jsonb_build_object(
        'id',               p.id,
        'orgId',            p.org_id,
        'provider',         p.provider,
        'number',           p.number,
        'name',             p.name,
        'twilioAccountSid', p.twilio_account_sid,
        'assistantId',      p.assistant_id,
        'smsEnabled',       p.sms_enabled,
        'fallbackMessage',  p.fallback_message,
        'status',           'active',
        'createdAt',        callhq.ts(p.created_at),
        'updatedAt',        callhq.ts(p.updated_at)))
$$;


-- The fields of POST/PATCH /phone-number (p_body is an object); with
-- p_create the ones a new number needs are required. Returns the
-- assistant id given (NULL when absent or null), checked to be the org's.
create or replace function callhq.check_phone_number(p_org uuid, p_body jsonb,
                                                     p_create boolean)
returns uuid
language plpgsql
as $$
declare
    v_number  text;
    v_id      uuid;
    v_why     text;
begin
    -- the SDK's members for what the module has not: calls, squads,
    -- workflows, API key credentials, a number's own webhook server
    select u.key || ' is not supported' || u.why into v_why
      from (values ('twilioApiKey', ': give twilioAuthToken (it keys the '
                                    'webhook signature)'),
                   ('twilioApiSecret', ': give twilioAuthToken (it keys the '
                                       'webhook signature)'),
                   ('fallbackDestination', ' (no calls): use fallbackMessage'),
                   ('hooks', ' (no calls)'),
                   ('squadId', ': give assistantId'),
                   ('workflowId', ': give assistantId'),
                   ('server', ' on a phone number: give the assistant''s '
                              'server')) u(key, why)
     where callhq.jnull(p_body->u.key) is not null
     limit 1;
    if v_why is not null then
        perform callhq.fail(400, v_why);
    end if;

    perform callhq.check_fields(p_body, array['provider', 'number', 'name',
                                              'twilioAccountSid', 'twilioAuthToken',
                                              'assistantId', 'smsEnabled',
                                              'fallbackMessage',
                                              -- the SDK's, null only
                                              'twilioApiKey', 'twilioApiSecret',
                                              'fallbackDestination', 'hooks',
                                              'workflowId', 'squadId',
                                              'server'], '');
    perform callhq.check_enum(p_body->'provider', 'provider', array['twilio']);

    v_number := callhq.check_string(p_body->'number', 'number', 16, p_create);
    if v_number is not null and v_number !~ '^\+[1-9][0-9]{1,14}$' then
        perform callhq.fail(400, 'number must be an E.164 phone number '
                                 '(+ and up to 15 digits, as +15551234567)');
    end if;

    perform callhq.check_string(p_body->'name', 'name', 40);
    perform callhq.check_string(p_body->'twilioAccountSid', 'twilioAccountSid',
                                100, p_create);
    perform callhq.check_string(p_body->'twilioAuthToken', 'twilioAuthToken',
                                200, p_create);
    perform callhq.check_string(p_body->'fallbackMessage', 'fallbackMessage', 1600);

    if callhq.check_present(p_body->'smsEnabled', 'smsEnabled', false)
       and jsonb_typeof(p_body->'smsEnabled') <> 'boolean'
    then
        perform callhq.fail(400, 'smsEnabled must be a boolean');
    end if;

    v_id := callhq.check_uuid(p_body->'assistantId', 'assistantId');

    -- key share: the assistant cannot be deleted before this commits
    if v_id is not null then
        perform 1 from callhq.assistants a
         where a.id = v_id and a.org_id = p_org
           for key share;
        if not found then
            perform callhq.fail(404, 'Assistant ' || v_id || ' not found');
        end if;
    end if;

    return v_id;
end
$$;


-- POST /phone-number
create or replace function callhq.api_phone_number_create(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_p    callhq.phone_numbers;
    v_aid  uuid;
begin
    perform callhq.check_args(p_args, '{}');
    v_aid := callhq.check_phone_number(v_org, callhq.check_body(p_body), true);

    begin
        insert into callhq.phone_numbers (org_id, number, name, twilio_account_sid,
                                          twilio_auth_token, assistant_id,
                                          sms_enabled, fallback_message)
        values (v_org, p_body->>'number', p_body->>'name',
                p_body->>'twilioAccountSid', p_body->>'twilioAuthToken', v_aid,
                coalesce((callhq.jnull(p_body->'smsEnabled'))::boolean, true),
                p_body->>'fallbackMessage')
        returning * into v_p;
    exception when unique_violation then
        perform callhq.fail(409, 'number ' || (p_body->>'number')
                                 || ' is already in use');
    end;

    return query select 201, callhq.phone_number_json(v_p)::text;
end
$$;


-- GET /phone-number: a plain array, newest first.
create or replace function callhq.api_phone_number_list(
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
      from (select callhq.phone_number_json(p) j, p.created_at, p.id
              from callhq.phone_numbers p
             where p.org_id = v_org
               and (v_q.created_gt is null or p.created_at >  v_q.created_gt)
               and (v_q.created_lt is null or p.created_at <  v_q.created_lt)
               and (v_q.created_ge is null or p.created_at >= v_q.created_ge)
               and (v_q.created_le is null or p.created_at <= v_q.created_le)
               and (v_q.updated_gt is null or p.updated_at >  v_q.updated_gt)
               and (v_q.updated_lt is null or p.updated_at <  v_q.updated_lt)
               and (v_q.updated_ge is null or p.updated_at >= v_q.updated_ge)
               and (v_q.updated_le is null or p.updated_at <= v_q.updated_le)
             order by p.created_at desc, p.id desc
             limit v_q.lim) t;

    return query select 200, v_rows::text;
end
$$;


-- GET /phone-number/{id}
create or replace function callhq.api_phone_number_get(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_id   uuid := callhq.path_id(p_id, 'Phone number');
    v_p    callhq.phone_numbers;
begin
    perform callhq.check_args(p_args, '{}');

    select p.* into v_p from callhq.phone_numbers p
     where p.id = v_id and p.org_id = v_org;
    if not found then
        perform callhq.fail(404, 'Phone number ' || p_id || ' not found');
    end if;

    return query select 200, callhq.phone_number_json(v_p)::text;
end
$$;


-- PATCH /phone-number/{id}: the given members replace the stored ones
-- (null clears name, assistantId and fallbackMessage).
create or replace function callhq.api_phone_number_update(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_id   uuid := callhq.path_id(p_id, 'Phone number');
    v_p    callhq.phone_numbers;
    v_aid  uuid;
    v_b    jsonb;
    v_null text;
begin
    perform callhq.check_args(p_args, '{}');
    v_b := callhq.check_body(p_body);
    v_aid := callhq.check_phone_number(v_org, v_b, false);

    -- the members a number cannot be without cannot be cleared
    select k into v_null
      from unnest(array['number', 'twilioAccountSid', 'twilioAuthToken',
                        'smsEnabled']) k
     where v_b ? k and callhq.jnull(v_b->k) is null
     limit 1;
    if v_null is not null then
        perform callhq.fail(400, v_null || ' must not be null');
    end if;

    begin
        update callhq.phone_numbers p
           set number             = coalesce(v_b->>'number', p.number),
               name               = case when v_b ? 'name'
                                         then v_b->>'name' else p.name end,
               twilio_account_sid = coalesce(v_b->>'twilioAccountSid',
                                             p.twilio_account_sid),
               twilio_auth_token  = coalesce(v_b->>'twilioAuthToken',
                                             p.twilio_auth_token),
               assistant_id       = case when v_b ? 'assistantId'
                                         then v_aid else p.assistant_id end,
               sms_enabled        = coalesce((callhq.jnull(v_b->'smsEnabled'))::boolean,
                                             p.sms_enabled),
               fallback_message   = case when v_b ? 'fallbackMessage'
                                         then v_b->>'fallbackMessage'
                                         else p.fallback_message end,
               updated_at         = callhq.now_ms()
         where p.id = v_id and p.org_id = v_org
        returning p.* into v_p;
    exception when unique_violation then
        perform callhq.fail(409, 'number ' || (v_b->>'number') || ' is already in use');
    end;

    if v_p.id is null then
        perform callhq.fail(404, 'Phone number ' || p_id || ' not found');
    end if;

    return query select 200, callhq.phone_number_json(v_p)::text;
end
$$;


-- DELETE /phone-number/{id}: its sessions stay, without phoneNumberId.
create or replace function callhq.api_phone_number_delete(
    p_key bytea, p_id text, p_args jsonb, p_body jsonb, p_opts jsonb)
returns table (status int, body text)
language plpgsql
as $$
declare
    v_org  uuid := callhq.auth(p_key);
    v_id   uuid := callhq.path_id(p_id, 'Phone number');
    v_p    callhq.phone_numbers;
begin
    perform callhq.check_args(p_args, '{}');

    delete from callhq.phone_numbers p
     where p.id = v_id and p.org_id = v_org
    returning p.* into v_p;

    if not found then
        perform callhq.fail(404, 'Phone number ' || p_id || ' not found');
    end if;

    return query select 200, callhq.phone_number_json(v_p)::text;
end
$$;
