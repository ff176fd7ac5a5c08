-- 016_sms_outbound.sql: texts sent with Twilio's REST API (issue 15,
-- items 3 and 4), through the webhook outbox and its dispatcher.
--
-- An outbox row of type 'twilio.sms' is one text to send: its payload
-- {From, To, Body}, its phone number (phone_number_id), whose account SID
-- and auth token are read when it is sent (callhq.webhook_claim), never
-- copied into the row; url holds nothing (the module's
-- callhq_twilio_api_url says where Twilio is). Its order is its session's,
-- apart from the session's webhook events: a failing webhook receiver
-- does not hold a customer's texts back.
--
-- sms_inbound.rest: the reply to that text went by the REST API (the
-- model was slower than callhq_sms_reply_timeout): a webhook sent again
-- answers with an empty <Response/>, not with the reply a second time.
--
-- webhook_claim returns each row's type: its old form goes.

alter table callhq.webhook_outbox
    add column if not exists phone_number_id uuid references callhq.phone_numbers on delete set null;

alter table callhq.sms_inbound add column if not exists rest boolean not null default false;

create index if not exists sms_inbound_created_idx on callhq.sms_inbound (created_at);

drop function if exists callhq.webhook_claim(int, int, int, jsonb);
