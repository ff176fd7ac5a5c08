-- 012_sms.sql: the texts a phone number received (issue 15), one row per
-- number and Twilio MessageSid (a sid sent to another org's number finds
-- nothing of this one's), so that a webhook Twilio sends again is answered
-- with the reply already made instead of a second chat.
--
--   chat_id     the chat that answers it, once one took the session's
--               turn; not a foreign key (the turn is taken before the
--               chat is recorded)
--   session_id  the customer's SMS session it went to

create table callhq.sms_inbound (
    phone_number_id  uuid        not null references callhq.phone_numbers on delete cascade,
    message_sid      text        not null,
    chat_id          uuid,
    session_id       uuid,
    created_at       timestamptz not null default now(),
    primary key (phone_number_id, message_sid)
);
