-- 014_webhook_outbox_small.sql: the outbox stays small (issue 14, item 8).
--
--   assistant_id  the stored assistant whose server the event goes to: its
--                 secret, headers and timeout are read from it when the
--                 event is claimed, not copied into every row (NULL for an
--                 inline assistant's event, which keeps its copy: the
--                 session or chat it lives in may be gone by then)
--
-- Delivered and dead rows are purged after callhq_webhook_retention
-- (callhq.webhook_purge, run by the sweeper): the index finds them.
--
-- webhook_claim and webhook_enqueue take new arguments
-- (sql/functions/webhook.sql): their old forms go.
--
-- Landed first as 013_webhook_outbox_small, a number 013_session_phone_number
-- took too: each statement may run again.

alter table callhq.webhook_outbox add column if not exists assistant_id uuid;

create index if not exists webhook_outbox_settled_idx
    on callhq.webhook_outbox ((coalesce(delivered_at, created_at)))
    where state <> 'pending';

drop function if exists callhq.webhook_claim(int, int);
drop function if exists callhq.webhook_enqueue(uuid, uuid, text, text, text, jsonb);
