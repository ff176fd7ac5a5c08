-- 011_phone_numbers.sql: phone numbers, the SMS channel's front door
-- (issue 15).
--
-- A number belongs to one org and is unique across all of them: Twilio
-- calls its webhook with the number that was texted (To), and that finds
-- exactly one row. The auth token keys the webhook's signature check and
-- the REST sends, so it is kept as given (it cannot be hashed); the API
-- never shows it. Deleting the assistant leaves the number without one.

create table callhq.phone_numbers (
    id                  uuid        primary key default gen_random_uuid(),
    org_id              uuid        not null references callhq.orgs on delete cascade,
    provider            text        not null default 'twilio'
                                    check (provider in ('twilio')),
    number              text        not null unique,
    name                text,
    twilio_account_sid  text,
    twilio_auth_token   text,
    assistant_id        uuid        references callhq.assistants on delete set null,
    sms_enabled         bool        not null default true,
    fallback_message    text,
    created_at          timestamptz not null default date_trunc('milliseconds', now()),
    updated_at          timestamptz not null default date_trunc('milliseconds', now())
);

create index phone_numbers_org_created_idx on callhq.phone_numbers (org_id, created_at);
create index phone_numbers_org_updated_idx on callhq.phone_numbers (org_id, updated_at);
create index phone_numbers_assistant_idx on callhq.phone_numbers (assistant_id);

-- A customer's SMS session: found by (number, customer.number).
alter table callhq.sessions
    add column phone_number_id uuid references callhq.phone_numbers on delete set null;

create index sessions_phone_customer_idx
    on callhq.sessions (phone_number_id, (customer->>'number'))
    where phone_number_id is not null;
