-- 001_schema.sql: tables and indexes of ngx_http_callhq_module.
--
-- Applied once by sql/migrate.sh, in one transaction with its row in
-- callhq.schema_migrations. Functions live in sql/functions/.
-- Every id is a uuid from gen_random_uuid() (built into PostgreSQL 13+);
-- every timestamp is a timestamptz. Each tenant's data hangs off callhq.orgs
-- and goes with it (on delete cascade).
-- The timestamps the API shows (createdAt, updatedAt, expiresAt) are kept
-- to the millisecond, as shown, so that a client filtering on a value it
-- was given (createdAtGt=<a createdAt>) gets exactly what it expects:
-- write them with callhq.now_ms() (sql/functions/base.sql), not now().

do $$
begin
    -- JSON text goes in and out as UTF-8 (\u escapes of non-ASCII characters
    -- need it too): refuse to install into a database that cannot hold it.
    if current_setting('server_encoding') <> 'UTF8' then
        raise exception 'callhq needs a UTF8 database, this one is %',
            current_setting('server_encoding')
            using hint = 'createdb -E UTF8 -T template0 <name>';
    end if;
end
$$;

create schema if not exists callhq;


-- Tenants. Created by operators with callhq.org_create(name).
create table callhq.orgs (
    id          uuid        primary key default gen_random_uuid(),
    name        text        not null,
    created_at  timestamptz not null default now()
);


-- API keys: only the SHA-256 of a key is stored. prefix (its first 8
-- characters) lets operators tell keys apart without being able to use them.
create table callhq.api_keys (
    id          uuid        primary key default gen_random_uuid(),
    org_id      uuid        not null references callhq.orgs on delete cascade,
    key_hash    bytea       not null unique check (length(key_hash) = 32),
    prefix      text        not null,
    created_at  timestamptz not null default now()
);

create index api_keys_org_idx on callhq.api_keys (org_id);


-- Assistants: the configuration of a conversation partner.
--   model            {provider, model, messages: [{role, content}],
--                     temperature, maxTokens}
--   server           {url, secret, headers, timeoutSeconds}: webhook target
--   server_messages  event names to send; NULL means all five
create table callhq.assistants (
    id               uuid        primary key default gen_random_uuid(),
    org_id           uuid        not null references callhq.orgs on delete cascade,
    name             text,
    model            jsonb,
    first_message    text,
    server           jsonb,
    server_messages  jsonb,
    metadata         jsonb,
    created_at       timestamptz not null default date_trunc('milliseconds', now()),
    updated_at       timestamptz not null default date_trunc('milliseconds', now())
);

create index assistants_org_created_idx on callhq.assistants (org_id, created_at);
create index assistants_org_updated_idx on callhq.assistants (org_id, updated_at);


-- Sessions: one conversation, its history in callhq.messages.
--   assistant          inline assistant stored with the session (when the
--                      session was created without assistantId)
--   status             as written; a session whose expires_at has passed
--                      reads as 'completed' whatever this says
--   renew_on_activity  customer auto-sessions: each chat pushes expires_at
--                      to now() + expiration_seconds
--   next_seq           seq of the next message to append (history is 1..n)
create table callhq.sessions (
    id                  uuid        primary key default gen_random_uuid(),
    org_id              uuid        not null references callhq.orgs on delete cascade,
    assistant_id        uuid        references callhq.assistants on delete set null,
    assistant           jsonb,
    name                text,
    status              text        not null default 'active'
                                    check (status in ('active', 'completed')),
    expiration_seconds  int         not null,
    expires_at          timestamptz not null,
    customer            jsonb,
    metadata            jsonb,
    renew_on_activity   bool        not null default false,
    next_seq            int         not null default 1,
    created_at          timestamptz not null default date_trunc('milliseconds', now()),
    updated_at          timestamptz not null default date_trunc('milliseconds', now())
);

create index sessions_org_created_idx on callhq.sessions (org_id, created_at);
create index sessions_org_updated_idx on callhq.sessions (org_id, updated_at);
create index sessions_org_name_idx on callhq.sessions (org_id, name);
create index sessions_assistant_idx on callhq.sessions (assistant_id, created_at);
create index sessions_org_customer_number_idx
    on callhq.sessions (org_id, (customer->>'number'));
create index sessions_org_customer_external_idx
    on callhq.sessions (org_id, (customer->>'externalId'));


-- The history of a session, one row per message, in seq order.
--   raw     the message as compact JSON, {"role":...,"content":...}, ready
--           to be spliced into an upstream request or a response body
--   tokens  the model's token count for the message, when known
create table callhq.messages (
    session_id  uuid        not null references callhq.sessions on delete cascade,
    seq         int         not null,
    role        text        not null,
    content     jsonb,
    raw         text        not null,
    tokens      int,
    created_at  timestamptz not null default now(),
    primary key (session_id, seq)
);


-- Chats: one model call each, with its context (messages) and reply (output).
--   assistant  inline assistant the chat was made with, if any
--   status     'incomplete' when the reply was cut short
--   usage      {promptTokens, completionTokens} when the model reported it
create table callhq.chats (
    id                uuid        primary key default gen_random_uuid(),
    org_id            uuid        not null references callhq.orgs on delete cascade,
    assistant_id      uuid        references callhq.assistants on delete set null,
    assistant         jsonb,
    session_id        uuid        references callhq.sessions on delete cascade,
    previous_chat_id  uuid        references callhq.chats on delete set null,
    name              text,
    input             jsonb,
    messages          jsonb,
    output            jsonb,
    status            text        not null default 'completed'
                                  check (status in ('completed', 'incomplete')),
    usage             jsonb,
    created_at        timestamptz not null default date_trunc('milliseconds', now()),
    updated_at        timestamptz not null default date_trunc('milliseconds', now())
);

create index chats_org_created_idx on callhq.chats (org_id, created_at);
create index chats_org_updated_idx on callhq.chats (org_id, updated_at);
create index chats_assistant_idx on callhq.chats (assistant_id, created_at);
create index chats_session_idx on callhq.chats (session_id, created_at);
create index chats_previous_idx on callhq.chats (previous_chat_id);


-- Webhook outbox: one row per event, written in the transaction of the
-- change it reports. Dispatchers claim due rows with
--   ... where state = 'pending' and next_attempt_at <= now()
--   order by next_attempt_at for update skip locked
-- and deliver the events of one session in id order. session_id is not a
-- foreign key: a session.deleted event outlives its session.
--   event_id  the webhook-id header: unique per event, stable across retries
create table callhq.webhook_outbox (
    id               bigserial   primary key,
    event_id         uuid        not null unique default gen_random_uuid(),
    org_id           uuid        not null references callhq.orgs on delete cascade,
    session_id       uuid,
    type             text        not null,
    payload          jsonb       not null,
    url              text        not null,
    secret           text,
    headers          jsonb,
    timeout_ms       int         not null default 20000,
    attempts         int         not null default 0,
    next_attempt_at  timestamptz not null default now(),
    state            text        not null default 'pending'
                                 check (state in ('pending', 'delivered', 'dead')),
    last_error       text,
    created_at       timestamptz not null default now(),
    delivered_at     timestamptz
);

create index webhook_outbox_claim_idx on callhq.webhook_outbox (state, next_attempt_at);
create index webhook_outbox_session_idx on callhq.webhook_outbox (session_id, id)
    where state = 'pending';
