-- 009_chat_path.sql: indexes that let a chat update its session in place.
--
-- A chat writes its session twice (the turn, then next_seq, updated_at and
-- the turn back). PostgreSQL updates a row in place (HOT: no new entry in
-- any index) only when no indexed column changes; updated_at was in three
-- indexes, so every chat added an entry to each of the session's ten.
-- updated_at is only a list filter (sortBy is createdAt), served well
-- enough by (org_id, created_at); a customer's open session is found by
-- (org_id, customer number or external id), then assistant and recency.
--
-- A chat's own row goes into fewer indexes as well: chats are listed by
-- creation, and previous_chat_id is indexed only where it is set.

drop index if exists callhq.sessions_org_updated_idx;
drop index if exists callhq.sessions_customer_number_chat_idx;
drop index if exists callhq.sessions_customer_external_chat_idx;

drop index if exists callhq.chats_org_updated_idx;
drop index if exists callhq.chats_previous_idx;
create index chats_previous_idx on callhq.chats (previous_chat_id)
    where previous_chat_id is not null;

-- Every chat of an org, and of an assistant, used to take a share lock on
-- that one org's and that one assistant's row (the foreign keys' checks),
-- so that all of an org's concurrent chats queued on two rows (and made
-- PostgreSQL build multixacts for them). What those keys did on delete is
-- done by triggers now (sql/functions/org.sql, assistant.sql): deleting an
-- org deletes its chats, deleting an assistant leaves its chats without it.
alter table callhq.chats drop constraint if exists chats_org_id_fkey;
alter table callhq.chats drop constraint if exists chats_assistant_id_fkey;
