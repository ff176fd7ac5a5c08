-- 003_chat.sql: POST /chat (and /chat/responses), the model call's two ends:
-- chat_begin and chat_record (sql/functions/chat.sql); here the session's
-- turn lease and the chats' new columns.
--
-- Its functions, like every function of the schema, are in sql/functions/
-- now (each defined once, re-applied by migrate.sh after the migrations):
-- this file keeps the schema change only.


------------------------------------------------------------------------------
-- Schema
------------------------------------------------------------------------------

-- The chat that holds the session's turn, and until when.
alter table callhq.sessions
    add column busy_chat   uuid,
    add column busy_until  timestamptz;

-- metadata      the metadata the chat was posted with
-- prompt_count  how many leading entries of messages are the assistant's
--               system prompts (so that a chat continuing this one by
--               previousChatId does not repeat them)
alter table callhq.chats
    add column metadata      jsonb,
    add column prompt_count  int;

-- A customer's session with an assistant, most recently active first.
create index sessions_customer_number_chat_idx
    on callhq.sessions (org_id, assistant_id, (customer->>'number'), updated_at)
    where customer->>'number' is not null;
create index sessions_customer_external_chat_idx
    on callhq.sessions (org_id, assistant_id, (customer->>'externalId'), updated_at)
    where customer->>'externalId' is not null;
