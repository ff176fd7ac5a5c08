-- webhook.sql: webhook events into the outbox, and the functions the
-- module's dispatcher calls to deliver them.
--
-- Events. When a session is created, updated or deleted, or a chat is
-- created or deleted, and the assistant of that session or chat has a
-- server.url and lists the event in serverMessages (all five when
-- serverMessages is absent or null), one row goes into callhq.webhook_outbox
-- in the transaction of the change, followed by pg_notify('callhq_webhook', '')
-- (delivered when it commits). A rolled-back change leaves no row.
--
-- The rows are written by row triggers on callhq.sessions and callhq.chats,
-- so that no API function has to know about webhooks. They are constraint
-- triggers, DEFERRABLE INITIALLY DEFERRED: they run when the transaction
-- commits, and build the event from the row as it is then. That way the
-- event shows what the transaction did as a whole: the session of
-- session.created comes with the seed messages that POST /session inserts
-- after the session row, and the session of a PATCH that replaces the
-- history comes with the new history, although the sessions row is updated
-- before the messages are. The rules:
--
--   session.created  INSERT into sessions (POST /session, a customer's
--                    session opened by POST /chat)
--   session.updated  UPDATE of sessions that changes something a client can
--                    see: name, status, expiration_seconds, expires_at,
--                    customer, metadata, next_seq (history appended or
--                    replaced), assistant_id, assistant or updated_at (every
--                    PATCH sets it). The turn lease (busy_chat, busy_until)
--                    alone is no change. At most one per session and
--                    transaction, and none in the transaction that created
--                    the session when it wrote session.created (that one
--                    already shows the final state).
--   session.deleted  DELETE of sessions; the session as it was, without
--                    messages. When the org itself goes, nothing is sent.
--   chat.created     INSERT into chats (chat_record).
--   chat.deleted     DELETE of chats (DELETE /chat). A chat that goes with
--                    its session (DELETE /session cascades) or its org sends
--                    nothing: session.deleted reports it.
--
-- The assistant: for a session its assistant_id row, else its inline
-- assistant; for a chat likewise the chat's. The body, built once as text
-- (the dispatcher sends exactly these bytes on every attempt):
--
--   {"message":{"type":"session.updated","timestamp":<unix ms>,
--    "session":<the session as GET /session/{id} shows it, without messages>,
--    "newMessages":[<the messages the change appended>],
--    "assistant":<the assistant as GET /assistant/{id} shows it, or the inline one>}}
--
-- so that an event's size does not grow with the history: session.updated
-- carries the messages its change wrote (a chat's turn; the whole new
-- history after a PATCH of messages; none for other changes), and the
-- whole session is one GET away. session.created shows the session with
-- its seed messages; session.deleted as it was, without "messages"; chat.*
-- carry "chat":<the chat as GET /chat/{id} shows it> in place of
-- "session". server.secret is left out of every assistant in the body (the
-- assistant's own and the inline one of a session or chat): it keys the
-- signature and never travels. timestamp is when the event was written
-- (the commit).
--
-- Order: webhook_claim hands out the rows of one session one at a time, in
-- id order, and ids follow commit order: the triggers run at commit, and
-- every transaction that writes a session.* event, or chat.created with a
-- session (chat_record locks the session), holds the session's row lock
-- until it has committed. (Only a chat.deleted is not serialized with the
-- events of its session that other transactions commit at the same moment:
-- taking the session's lock there could deadlock with DELETE /session.)
--
-- Delivery (the dispatcher, in C):
--
--   select id, event_id, url, secret, headers, timeout_ms, body, attempts,
--          org_id
--     from callhq.webhook_claim($1::int, $2::int, $3::int, $4::jsonb)
--                               -- limit, lease ms, batch, in flight per org
--   ... POST body to url, then for each row
--   select callhq.webhook_done($1::bigint, $2::boolean, $3::text, $4::jsonb)
--
-- and, from time to time, select callhq.sweep_expired($1::int) so that
-- sessions that expired send session.updated (status 'completed'), and
-- callhq.webhook_purge($1::int, $2::int): settled rows past retention go.
--
-- The triggers are attached here, next to their functions, each dropped
-- and created again on every run: a trigger can only be created once its
-- function exists, and on a fresh database that is after the migrations.
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


-- The assistant of a session or chat as the API shows it (the row p_id),
-- when it has a server.url; else the inline p_inline; NULL when there is
-- neither. Every change to a session or chat runs a webhook trigger and
-- most assistants have no server.url: the stored server.url is looked at
-- before the assistant's whole JSON is built (that cost a chat a fifth of
-- its database time). An assistant without one wants no event anyway.
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

    -- with its secret, which answers show only as a hint
    if jsonb_typeof(v_a.server->'url') = 'string' and v_a.server->>'url' <> '' then
        return callhq.assistant_json(v_a) || jsonb_build_object('server', v_a.server);
    end if;

    return null;
end
$$;


-- An assistant (or an object with an inline "assistant") as events show
-- it: without server.secret, which keys the signature and so never travels.
create or replace function callhq.webhook_redact(p jsonb)
returns jsonb
language sql immutable
as $$
    select case when jsonb_typeof(p) = 'object'
                then p #- '{server,secret}' #- '{assistant,server,secret}'
                else p end
$$;


-- A session as GET /session/{id} shows it (session_body), but with the
-- inline assistant redacted; p_messages false leaves the history out.
create or replace function callhq.webhook_session_text(s callhq.sessions,
                                                       p_messages boolean)
returns text
language sql stable
as $$
    select case when p_messages
                then left(callhq.webhook_redact(callhq.session_json(s))::text, -1)
                     || ', "messages": ['
                     || coalesce((select string_agg(m.raw, ', ' order by m.seq)
                                    from callhq.messages m
                                   where m.session_id = s.id), '')
                     || ']}'
                else callhq.webhook_redact(callhq.session_json(s))::text
           end
$$;


-- Whether an assistant (as webhook_assistant returns it) wants event
-- p_type: it has a server.url, and serverMessages lists p_type or is
-- absent or null. PL/pgSQL: its argument is a function call, which
-- PostgreSQL would not inline four times.
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


-- A server's timeoutSeconds in milliseconds (20 s when it has none).
create or replace function callhq.webhook_timeout_ms(p_server jsonb)
returns int
language sql immutable
as $$
    select case when jsonb_typeof(p_server->'timeoutSeconds') = 'number'
                     and (p_server->>'timeoutSeconds')::numeric > 0
                     and (p_server->>'timeoutSeconds')::numeric <= 3600
                then round((p_server->>'timeoutSeconds')::numeric * 1000)::int
                else 20000 end
$$;


-- Write one event for an assistant that wants it (webhook_wanted):
-- p_kind is 'session' or 'chat', p_object that resource's JSON text,
-- p_more members of the message after it (text starting with ","), or
-- NULL. A stored assistant's event names it: its secret, headers and
-- timeout are read when the event is sent (webhook_claim); an inline
-- one's are copied into the row.
create or replace function callhq.webhook_enqueue(p_org uuid, p_session uuid,
                                                  p_type text, p_kind text,
                                                  p_object text, p_assistant jsonb,
                                                  p_more text)
returns void
language plpgsql
as $$
declare
    v_server  jsonb := p_assistant->'server';
    v_stored  uuid;
    v_body    text;
begin
    -- the org is being deleted, and the outbox rows with it
    if not exists (select 1 from callhq.orgs o where o.id = p_org) then
        return;
    end if;

    -- assistant_json() shows orgId; an inline assistant has none
    if p_assistant ? 'orgId' and callhq.is_uuid(p_assistant->>'id') then
        v_stored := (p_assistant->>'id')::uuid;
    end if;

    v_body := '{"message":{"type":' || to_jsonb(p_type)::text
              || ',"timestamp":'
              || floor(extract(epoch from clock_timestamp()) * 1000)::bigint::text
              || ',' || to_jsonb(p_kind)::text || ':' || p_object
              || coalesce(p_more, '')
              || ',"assistant":' || callhq.webhook_redact(p_assistant)::text
              || '}}';

    insert into callhq.webhook_outbox (org_id, session_id, type, payload, body, url,
                                       assistant_id, secret, headers, timeout_ms)
    values (p_org, p_session, p_type, v_body::jsonb, v_body,
            v_server->>'url', v_stored,
            case when v_stored is null and jsonb_typeof(v_server->'secret') = 'string'
                 then v_server->>'secret' end,
            case when v_stored is null and jsonb_typeof(v_server->'headers') = 'object'
                 then v_server->'headers' end,
            callhq.webhook_timeout_ms(v_server));

    perform pg_notify('callhq_webhook', '');
end
$$;


-- Constraint trigger (deferred) on callhq.sessions: session.created,
-- session.updated, session.deleted.
create or replace function callhq.webhook_session_event()
returns trigger
language plpgsql
as $$
declare
    v_s     callhq.sessions;
    v_type  text;
    v_a     jsonb;
    v_from  int;
    v_more  text;
begin
    if tg_op = 'UPDATE'
       and (old.name, old.status, old.expiration_seconds, old.expires_at,
            old.customer, old.metadata, old.next_seq,
            old.assistant_id, old.assistant, old.updated_at)
           is not distinct from
           (new.name, new.status, new.expiration_seconds, new.expires_at,
            new.customer, new.metadata, new.next_seq,
            new.assistant_id, new.assistant, new.updated_at)
    then
        return null;            -- set, but to the same values
    end if;

    if tg_op = 'DELETE' then
        v_s := old;
        v_type := 'session.deleted';
    else
        -- the row as the transaction leaves it
        select s.* into v_s from callhq.sessions s where s.id = new.id;
        if not found then
            return null;        -- deleted since: session.deleted tells
        end if;
        v_type := case tg_op when 'INSERT' then 'session.created'
                             else 'session.updated' end;
    end if;

    v_a := callhq.webhook_assistant(v_s.assistant_id, v_s.assistant);
    if not callhq.webhook_wanted(v_a, v_type) then
        return null;
    end if;

    -- one session.updated per transaction: this one already wrote the
    -- session's final state (a later update of the same row, or created)
    if tg_op = 'UPDATE' and exists (
        select 1
          from callhq.webhook_outbox o
         where o.session_id = v_s.id
           and o.state = 'pending'
           and o.type in ('session.created', 'session.updated')
           and o.xmin = pg_current_xact_id()::xid)
    then
        return null;
    end if;

    -- what this change appended: from the first message it wrote (all of
    -- a history a PATCH replaced), so that the event's size does not grow
    -- with the history
    if tg_op = 'UPDATE' then
        v_from := case when v_s.history_epoch <> old.history_epoch then 1
                       else old.next_seq end;
        v_more := ',"newMessages":['
                  || coalesce((select string_agg(m.raw, ',' order by m.seq)
                                 from callhq.messages m
                                where m.session_id = v_s.id
                                  and m.seq >= v_from), '')
                  || ']';
    end if;

    perform callhq.webhook_enqueue(
        v_s.org_id, v_s.id, v_type, 'session',
        callhq.webhook_session_text(v_s, tg_op = 'INSERT'),
        v_a, v_more);
    return null;
end
$$;

drop trigger if exists webhook_session_created on callhq.sessions;
create constraint trigger webhook_session_created
    after insert on callhq.sessions
    deferrable initially deferred
    for each row execute function callhq.webhook_session_event();

-- callhq.quiet: a statement that knows nobody listens (the C module's chat
-- record, when the session's assistant has no server.url) sets it 'on' for
-- its transaction, and its rows then queue no trigger call at all. The
-- trigger names the columns an event shows, so that an UPDATE of others
-- (the turn's, which every chat takes) skips it before its WHEN; the WHEN
-- is short because PostgreSQL reads it again for every statement, and the
-- function returns at once when none of those columns changed value.
drop trigger if exists webhook_session_updated on callhq.sessions;
create constraint trigger webhook_session_updated
    after update of name, status, expiration_seconds, expires_at, customer,
                    metadata, next_seq, assistant_id,
                    assistant, updated_at
    on callhq.sessions
    deferrable initially deferred
    for each row
    when (current_setting('callhq.quiet', true) is distinct from 'on')
    execute function callhq.webhook_session_event();

drop trigger if exists webhook_session_deleted on callhq.sessions;
create constraint trigger webhook_session_deleted
    after delete on callhq.sessions
    deferrable initially deferred
    for each row execute function callhq.webhook_session_event();


-- Constraint trigger (deferred) on callhq.chats: chat.created,
-- chat.deleted. A new chat is read again only when its assistant wants
-- the event: the chats table is the one a cached plan is likeliest to
-- scan whole.
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
                                   v_a, null);
    return null;
end
$$;

drop trigger if exists webhook_chat_created on callhq.chats;
create constraint trigger webhook_chat_created
    after insert on callhq.chats
    deferrable initially deferred
    for each row
    when (current_setting('callhq.quiet', true) is distinct from 'on')
    execute function callhq.webhook_chat_event();

drop trigger if exists webhook_chat_deleted on callhq.chats;
create constraint trigger webhook_chat_deleted
    after delete on callhq.chats
    deferrable initially deferred
    for each row execute function callhq.webhook_chat_event();


-- Claim up to p_limit due events, oldest first: pending, due
-- (next_attempt_at <= now()), and the first pending event of their session
-- (a later one waits while an earlier one is in flight or backing off;
-- events without a session wait for nothing). Claimed rows stay 'pending'
-- but are due again only after p_lease_ms, so that the events of a
-- dispatcher that died come back by themselves; webhook_done settles them.
-- SKIP LOCKED: dispatchers that claim at the same time get different rows.
-- Pass a lease longer than the longest timeout_ms (server.timeoutSeconds is
-- at most 300), or a slow delivery may be sent twice.
--
-- Fair shares: of the dispatcher's p_batch slots, an org gets at most
-- p_batch / (the orgs with due events or in flight here, at least 2),
-- counting its deliveries in flight there (p_busy: {"<org id>": n}), so
-- that one org's slow receiver cannot hold the slots of the others, nor,
-- alone, those of an org whose events come later.
--
-- A stored assistant's event is sent with the secret, headers and timeout
-- the assistant has now; one whose assistant was deleted, or no longer
-- has a server.url, goes dead.
--   headers  server.headers as JSON object text, or NULL
--   body     the exact bytes to POST
--   type     the event's; 'twilio.sms' is a text to send (sms.sql): its
--            url is the path under callhq_twilio_api_url, its secret
--            "<account SID>:<auth token>" for HTTP Basic, both read from
--            its phone number now; its body the JSON {From, To, Body}. A
--            text whose number is gone, or has no credentials, goes dead.
--            Texts keep their session's order apart from its events.
create or replace function callhq.webhook_claim(p_limit int, p_lease_ms int,
                                                p_batch int, p_busy jsonb)
returns table (id bigint, event_id uuid, url text, secret text, headers text,
               timeout_ms int, body text, attempts int, org_id uuid, type text)
language sql
as $$
    with candidate as (
        select o.id, o.org_id
          from callhq.webhook_outbox o
         where o.state = 'pending'
           and o.next_attempt_at <= now()
           and not exists (select 1
                             from callhq.webhook_outbox p
                            where p.session_id = o.session_id
                              and p.state = 'pending'
                              and p.id < o.id
                              and (p.type = 'twilio.sms') = (o.type = 'twilio.sms'))
         order by o.id
         limit greatest(coalesce(p_batch, 0), 1) * 8
    ),
    share as (
        select ceil(greatest(coalesce(p_batch, 0), 1)::numeric
                    / greatest(count(*), 2)) as slots
          from (select c.org_id::text from candidate c
                union
                select k from jsonb_object_keys(coalesce(p_busy, '{}')) k) orgs
    ),
    fair as (
        select c.id
          from (select c.id,
                       row_number() over (partition by c.org_id order by c.id)
                       + coalesce((p_busy->>c.org_id::text)::int, 0) as n
                  from candidate c) c, share
         where c.n <= share.slots
    ),
    due as (
        select o.id, o.assistant_id, o.type, o.phone_number_id
          from callhq.webhook_outbox o
         where o.id in (select fair.id from fair)
           and o.state = 'pending'
           and o.next_attempt_at <= now()
         order by o.id
         limit greatest(coalesce(p_limit, 0), 0)
           for update of o skip locked
    ),
    server as (
        select due.id, due.assistant_id, due.type, a.server,
               n.twilio_account_sid as sid, n.twilio_auth_token as token,
               case when due.type = 'twilio.sms'
                    then coalesce(n.twilio_account_sid ~ '^[A-Za-z0-9]+$'
                                  and n.twilio_auth_token <> '', false)
                    else due.assistant_id is null
                         or jsonb_typeof(a.server->'url') is not distinct
                            from 'string' end
                   as sendable
          from due
          left join callhq.assistants a on a.id = due.assistant_id
          left join callhq.phone_numbers n on n.id = due.phone_number_id
    ),
    gone as (
        update callhq.webhook_outbox o
           set state = 'dead',
               last_error = case when server.type = 'twilio.sms'
                                 then 'its phone number was deleted or has no '
                                      'Twilio account SID and auth token'
                                 else 'its assistant was deleted or has no '
                                      'server.url' end
          from server
         where o.id = server.id
           and not server.sendable
        returning o.id
    ),
    claimed as (
        update callhq.webhook_outbox o
           set next_attempt_at = now() + make_interval(
                   secs => greatest(coalesce(p_lease_ms, 0), 0) / 1000.0)
          from server
         where o.id = server.id
           and server.sendable
        returning o.id, o.event_id,
                  case when o.type = 'twilio.sms'
                       then '/2010-04-01/Accounts/' || server.sid
                            || '/Messages.json'
                       else o.url end,
                  case when o.type = 'twilio.sms'
                       then server.sid || ':' || server.token
                       when o.assistant_id is null then o.secret
                       when jsonb_typeof(server.server->'secret') = 'string'
                       then server.server->>'secret' end,
                  case when o.assistant_id is null then o.headers::text
                       when jsonb_typeof(server.server->'headers') = 'object'
                       then (server.server->'headers')::text end,
                  case when o.assistant_id is null then o.timeout_ms
                       else callhq.webhook_timeout_ms(server.server) end,
                  o.body, o.attempts, o.org_id, o.type
    )
    select * from claimed order by 1
$$;


-- A dispatcher that exits gives back the events it claimed and sent
-- nothing of: due at once, for the others (woken), not after the lease.
-- Returns how many.
create or replace function callhq.webhook_release(p_ids bigint[])
returns int
language plpgsql
as $$
declare
    v_n  int;
begin
    update callhq.webhook_outbox o
       set next_attempt_at = now()
     where o.id = any(p_ids)
       and o.state = 'pending';

    get diagnostics v_n = row_count;

    if v_n > 0 then
        perform pg_notify('callhq_webhook', '');
    end if;

    return v_n;
end
$$;


-- Delivered and dead events older than p_retention_s seconds (since
-- delivery, or since they were written) go, at most p_limit of them, and
-- as many of the texts received (sms_inbound, which keep Twilio's
-- MessageSids for webhooks sent again) older than that; returns how many
-- rows went, at most 2 * p_limit. Run by the sweeper.
create or replace function callhq.webhook_purge(p_retention_s int, p_limit int)
returns int
language plpgsql
as $$
declare
    v_n  int;
    v_m  int;
begin
    delete from callhq.webhook_outbox o
     where o.id in (select p.id
                      from callhq.webhook_outbox p
                     where p.state <> 'pending'
                       and coalesce(p.delivered_at, p.created_at)
                           < now() - make_interval(secs => greatest(p_retention_s, 0))
                     limit greatest(coalesce(p_limit, 0), 0)
                       for update skip locked);

    get diagnostics v_n = row_count;

    delete from callhq.sms_inbound i
     where (i.phone_number_id, i.message_sid) in (
               select p.phone_number_id, p.message_sid
                 from callhq.sms_inbound p
                where p.created_at
                      < now() - make_interval(secs => greatest(p_retention_s, 0))
                limit greatest(coalesce(p_limit, 0), 0)
                  for update skip locked);

    get diagnostics v_m = row_count;
    return v_n + v_m;
end
$$;


-- The outcome of one delivery of claimed event p_id. p_ok: delivered.
-- Else (p_error says why) the event is retried after
--   least(backoffMaxMs, backoffBaseMs * 2^attempts) ms, times 0.5 to 1.0
-- (attempts before this one: 1 s, 2 s, 4 s, ... up to an hour with the
-- defaults), unless it is maxAgeSeconds old: then it is 'dead', kept for
-- inspection. p_opts {"backoffBaseMs": 1000, "backoffMaxMs": 3600000,
-- "maxAgeSeconds": 86400}, each optional. An event that is no longer
-- pending (another dispatcher settled it after a lease ran out) stays as it is.
create or replace function callhq.webhook_done(p_id bigint, p_ok boolean, p_error text,
                                               p_opts jsonb)
returns void
language plpgsql
as $$
declare
    v_base     bigint := callhq.opt_bigint_or(p_opts, 'backoffBaseMs', 1000);
    v_max      bigint := callhq.opt_bigint_or(p_opts, 'backoffMaxMs', 3600000);
    v_max_age  bigint := callhq.opt_bigint_or(p_opts, 'maxAgeSeconds', 86400);
    v_o        callhq.webhook_outbox;
begin
    if p_ok then
        update callhq.webhook_outbox o
           set state = 'delivered',
               delivered_at = now()
         where o.id = p_id and o.state = 'pending'
        returning o.* into v_o;
    else
        update callhq.webhook_outbox o
           set attempts = o.attempts + 1,
               last_error = left(p_error, 4000),
               next_attempt_at = now() + make_interval(secs =>
                   least(v_max::float8, v_base * power(2::float8, least(o.attempts, 60)))
                   * (0.5 + random() * 0.5) / 1000.0),
               state = case when o.created_at + make_interval(secs => v_max_age) <= now()
                            then 'dead' else 'pending' end
         where o.id = p_id and o.state = 'pending'
        returning o.* into v_o;
    end if;

    -- settled: the session's next event is due now, for any dispatcher
    if v_o.state in ('delivered', 'dead') and v_o.session_id is not null
       and exists (select 1 from callhq.webhook_outbox p
                    where p.session_id = v_o.session_id and p.state = 'pending')
    then
        perform pg_notify('callhq_webhook', '');
    end if;
end
$$;


-- Expiry: up to p_limit sessions whose expires_at has passed and whose
-- stored status is still 'active' become 'completed' (each once), which
-- sends their session.updated. updatedAt stays: the session reads as
-- completed since expiresAt anyway. Returns how many.
create or replace function callhq.sweep_expired(p_limit int)
returns int
language plpgsql
as $$
declare
    v_n  int;
begin
    with due as (
        select s.id
          from callhq.sessions s
         where s.status = 'active'
           and s.expires_at <= now()
         order by s.expires_at
         limit greatest(coalesce(p_limit, 0), 0)
           for update skip locked
    )
    update callhq.sessions s
       set status = 'completed'
      from due
     where s.id = due.id;

    get diagnostics v_n = row_count;
    return v_n;
end
$$;


-- How many events are pending (waiting or in flight), delivered, dead.
create or replace function callhq.webhook_stats()
returns table (pending bigint, delivered bigint, dead bigint)
language sql stable
as $$
    select count(*) filter (where o.state = 'pending'),
           count(*) filter (where o.state = 'delivered'),
           count(*) filter (where o.state = 'dead')
      from callhq.webhook_outbox o
$$;
