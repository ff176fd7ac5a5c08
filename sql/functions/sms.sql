-- sms.sql: the SMS channel's inbound texts (ngx_http_callhq_sms.c).
--
-- A Twilio Messaging webhook costs two statements:
--
--   select id, auth_token, sms_enabled, assistant_id, fallback_message
--     from callhq.sms_number($1::text)
--
-- (the number texted, Twilio's To) gives the key the C module checks the
-- webhook's signature with; once it is checked,
--
--   select state, record, params, messages, chat_id, session_id, org_id,
--          model
--     from callhq.sms_begin($1::bytea, $2::jsonb, $3::jsonb)
--
-- (NULL, {To, From, Body, MessageSid}, the location's settings) answers as
-- callhq.chat_begin does, and the chat goes on as any other (chat_record
-- or chat_release; state 'new' when the text opened the session), or,
-- with state 'done', record is the reply already
-- made for that MessageSid.
--
-- The customer's session is the open one of (phone number, From) with the
-- number's assistant, or a new one that expires after expirationSeconds
-- of inactivity, renewed by each text (renew_on_activity), as the
-- customer sessions of POST /chat.
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


create or replace function callhq.sms_number(p_to text)
returns table (id uuid, auth_token text, sms_enabled boolean, assistant_id uuid,
               fallback_message text)
language sql stable
as $$
    select p.id, p.twilio_auth_token, p.sms_enabled, p.assistant_id,
           p.fallback_message
      from callhq.phone_numbers p
     where p.number = p_to
$$;


create or replace function callhq.sms_begin(p_key bytea, p_form jsonb, p_opts jsonb)
returns table (state text, record text, params text, messages text,
               chat_id uuid, session_id uuid, org_id uuid, model text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_sid         text := p_form->>'MessageSid';
    v_from        text := p_form->>'From';
    v_expiration  int := coalesce(nullif(callhq.opt_int(p_opts, 'defaultExpirationSeconds'), 0),
                                  86400);
    v_p           callhq.phone_numbers;
    v_in          callhq.sms_inbound;
    v_s           callhq.sessions;
    v_reply       text;
    v_r           record;
    v_new         boolean := false;
begin
    select p.* into v_p from callhq.phone_numbers p where p.number = p_form->>'To';
    if not found or not v_p.sms_enabled then
        perform callhq.fail(404, 'number not found');
    end if;
    if v_sid is null or v_from is null then
        perform callhq.fail(400, 'MessageSid and From are required');
    end if;

    -- One text, one chat: a webhook sent again takes its turn after the
    -- first (this row's lock), then answers with its reply.
    insert into callhq.sms_inbound (message_sid, phone_number_id)
    values (v_sid, v_p.id)
    on conflict do nothing;

    select i.* into v_in from callhq.sms_inbound i
     where i.phone_number_id = v_p.id and i.message_sid = v_sid
       for update;

    if v_in.chat_id is not null then
        select c.output->0->>'content' into v_reply
          from callhq.chats c where c.id = v_in.chat_id;
        if found then
            return query select 'done'::text, coalesce(v_reply, ''), null::text,
                                null::text, v_in.chat_id, v_in.session_id,
                                v_p.org_id, null::text;
            return;
        end if;

        -- its chat still runs: wait for the session's turn, then look again
        select s.* into v_s from callhq.sessions s
         where s.id = v_in.session_id and s.busy_chat = v_in.chat_id
           and s.busy_until >= now()
           for update;
        if found then
            if not v_s.turn_waiters then
                update callhq.sessions s set turn_waiters = true where s.id = v_s.id;
            end if;
            return query select 'busy'::text, null::text, null::text, null::text,
                                null::uuid, v_s.id, null::uuid, null::text;
            return;
        end if;
        -- else it failed before any reply (nothing recorded): chat again
        v_s := null;
    end if;

    if v_p.assistant_id is null then
        perform callhq.fail(409, 'number ' || v_p.number || ' has no assistant');
    end if;

    -- the customer's session: one at a time, so that two first texts do
    -- not open two sessions
    perform pg_advisory_xact_lock(hashtextextended(
        'callhq.sms:' || v_p.id || ':' || v_from, 0));

    select s.* into v_s
      from callhq.sessions s
     where s.phone_number_id = v_p.id and s.customer->>'number' = v_from
       and s.assistant_id = v_p.assistant_id
       and s.status = 'active' and s.expires_at > now()
     order by s.updated_at desc
     limit 1;

    if not found then
        insert into callhq.sessions (org_id, assistant_id, expiration_seconds, expires_at,
                                     customer, renew_on_activity, phone_number_id)
        values (v_p.org_id, v_p.assistant_id, v_expiration,
                callhq.now_ms() + make_interval(secs => v_expiration),
                jsonb_build_object('number', v_from), true, v_p.id)
        returning * into v_s;
        v_new := true;
    end if;

    select * into v_r
      from callhq.chat_begin_org(v_p.org_id,
                                 jsonb_build_object('sessionId', v_s.id,
                                                    'input', coalesce(p_form->>'Body', ''),
                                                    'metadata', jsonb_build_object(
                                                        'messageSid', v_sid)),
                                 p_opts) b;

    if v_r.state = 'ok' then
        update callhq.sms_inbound i
           set chat_id = v_r.chat_id, session_id = v_r.session_id
         where i.phone_number_id = v_p.id and i.message_sid = v_sid;
    end if;

    return query select case when v_r.state = 'ok' and v_new then 'new'
                             else v_r.state end,
                        v_r.record, v_r.params, v_r.messages, v_r.chat_id,
                        v_r.session_id, v_r.org_id, v_r.model;
end
$$;
