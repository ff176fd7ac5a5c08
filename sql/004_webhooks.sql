-- 004_webhooks.sql: webhook events into the outbox, and the functions the
-- module's dispatcher calls to deliver them (sql/functions/webhook.sql,
-- which describes the events); here the outbox's body and the index the
-- expiry sweeper reads.
--
-- Its functions, like every function of the schema, are in sql/functions/
-- now (each defined once, re-applied by migrate.sh after the migrations):
-- this file keeps the schema change only. The triggers that write the
-- events are attached there too, next to their functions: a trigger can
-- be created only once its function exists.


------------------------------------------------------------------------------
-- Schema
------------------------------------------------------------------------------

-- body  the exact JSON text to POST (payload holds the same as jsonb)
alter table callhq.webhook_outbox add column body text;
update callhq.webhook_outbox o set body = o.payload::text where o.body is null;
alter table callhq.webhook_outbox alter column body set not null;

-- The sessions that still have to expire, for sweep_expired.
create index sessions_expiry_idx on callhq.sessions (expires_at)
    where status = 'active';
