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
-- with state 'done', record is the reply already made for that MessageSid
-- (NULL when the REST API sent it).
--
-- Slow models (callhq_sms_reply_timeout): the webhook is answered with an
-- empty <Response/>, and the C module records the chat with "smsSend":
-- true in its record; chat_record then calls callhq.sms_reply, which
-- queues the reply in the webhook outbox as 'twilio.sms' rows (one per
-- 1600 characters, sms_split), sent by the dispatcher with Twilio's REST
-- API in the recording's transaction. POST /chat with transport
-- twilio.sms (chat.sql) sends its reply the same way.
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


-- The customer's open session on number p (from p_from, with the number's
-- assistant), locked, or NULL (a row of NULLs) when there is none. One
-- caller at a time per customer (an advisory lock until commit), so that
-- two first texts, or a text and POST /chat with transport, do not open
-- two sessions.
create or replace function callhq.sms_session(p callhq.phone_numbers, p_from text)
returns callhq.sessions
language plpgsql
as $$
declare
    v_s  callhq.sessions;
begin
    perform pg_advisory_xact_lock(hashtextextended(
        'callhq.sms:' || p.id || ':' || p_from, 0));

    select s.* into v_s
      from callhq.sessions s
     where s.phone_number_id = p.id and s.customer->>'number' = p_from
       and s.assistant_id = p.assistant_id
       and s.status = 'active' and s.expires_at > now()
     order by s.updated_at desc
     limit 1
       for update;

    return v_s;
end
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
            -- a reply the REST API sends is not answered a second time
            return query select 'done'::text,
                                case when v_in.rest then null
                                     else coalesce(v_reply, '') end,
                                null::text,
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

    v_s := callhq.sms_session(v_p, v_from);

    if v_s.id is null then
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

        -- where a reply sent late goes (the C module adds smsSend)
        v_r.record := (v_r.record::jsonb
                       || jsonb_build_object('sms', jsonb_build_object(
                              'phoneNumberId', v_p.id, 'to', v_from,
                              'messageSid', v_sid)))::text;
    end if;

    return query select case when v_r.state = 'ok' and v_new then 'new'
                             else v_r.state end,
                        v_r.record, v_r.params, v_r.messages, v_r.chat_id,
                        v_r.session_id, v_r.org_id, v_r.model;
end
$$;


-- A text as SMS bodies of at most 1600 characters: cut at the last blank
-- within the limit, or at the limit in a longer word (as the C module's
-- TwiML does).
create or replace function callhq.sms_split(p_text text)
returns setof text
language plpgsql immutable
as $$
declare
    v_rest  text := btrim(coalesce(p_text, ''), E' \n\r\t');
    v_cut   int;
begin
    while length(v_rest) > 1600 loop
        v_cut := 1601 - coalesce(nullif(strpos(reverse(left(v_rest, 1601)), ' '), 0),
                                 1);
        if v_cut < 1 then
            v_cut := 1600;
        end if;
        return next rtrim(left(v_rest, v_cut), E' \n\r\t');
        v_rest := ltrim(substr(v_rest, v_cut + 1), E' \n\r\t');
    end loop;
    if v_rest <> '' then
        return next v_rest;
    end if;
end
$$;


-- Queue text p_text to customer p_to from phone number p_number, as
-- 'twilio.sms' outbox rows of session p_session (in its order). The
-- number's account SID and auth token are read when a row is sent
-- (webhook_claim), never copied here. A number that is gone sends nothing.
create or replace function callhq.sms_enqueue(p_org uuid, p_session uuid,
                                              p_number uuid, p_to text,
                                              p_text text)
returns int
language plpgsql
as $$
declare
    v_from  text;
    v_n     int;
begin
    select p.number into v_from from callhq.phone_numbers p
     where p.id = p_number and p.org_id = p_org;
    if not found or p_to is null then
        return 0;
    end if;

    insert into callhq.webhook_outbox (org_id, session_id, type, payload, body, url,
                                       phone_number_id)
    select p_org, p_session, 'twilio.sms', m.payload, m.payload::text, '', p_number
      from (select jsonb_build_object('From', v_from, 'To', p_to, 'Body', t.part)
                   as payload, t.n
              from callhq.sms_split(p_text) with ordinality t(part, n)) m
     order by m.n;

    get diagnostics v_n = row_count;

    if v_n > 0 then
        perform pg_notify('callhq_webhook', '');
    end if;

    return v_n;
end
$$;


-- chat_record's part for a record with "smsSend": true: the reply goes to
-- the customer by the REST API, and a webhook sent again for the text it
-- answers (record.sms.messageSid) no longer answers it in TwiML.
create or replace function callhq.sms_reply(p_record jsonb, p_session uuid,
                                            p_reply text)
returns void
language plpgsql
as $$
declare
    v_number  uuid := (p_record->'sms'->>'phoneNumberId')::uuid;
begin
    perform callhq.sms_enqueue((p_record->>'orgId')::uuid, p_session, v_number,
                               p_record->'sms'->>'to', p_reply);

    if p_record->'sms'->>'messageSid' is not null then
        update callhq.sms_inbound i
           set rest = true
         where i.phone_number_id = v_number
           and i.message_sid = p_record->'sms'->>'messageSid';
    end if;
end
$$;
