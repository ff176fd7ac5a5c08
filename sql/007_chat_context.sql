-- 007_chat_context.sql: a chat of a session keeps its context by reference.
--
-- Until now every chat stored its whole context (system prompts, history,
-- input) as jsonb, and the C module sent it back to chat_record for that:
-- a session of n turns stored n growing copies of its history, and a chat
-- on a 1000-message history moved its 130 kB three more times (bench/).
-- Now a chat of a session stores its prompts and its input in messages
-- and the range of the session's history it was sent
-- (history_from..history_to, seqs of callhq.messages); callhq.chat_context
-- puts the three together again, byte for byte as the model got them.
-- Chats without a session, and those recorded before this migration,
-- keep their whole context in messages (history_to is NULL).
--
-- The C module now calls
--
--   select status, body from callhq.chat_record($1::jsonb, $2::jsonb,
--                                               $3::jsonb #>> '{}', ...)
--
-- with $2 NULL for a chat of a session, and gets the chat without its
-- context: it splices in the context it already holds, as the last member
-- "messages" (compact, as GET /session shows a history). GET /chat and
-- GET /chat/{id} answer in that same form.
--
-- A session's history must stay what its chats point to: PATCH /session
-- with messages copies the context into each chat of the session first,
-- and answers 409 while a chat of the session is running. A chat whose
-- history went while it ran (its turn lease ran out and PATCH replaced the
-- messages, or the session was deleted) gets the answer (100, '') from
-- chat_record: the C module then calls it again with the context itself.
--
-- Its functions, like every function of the schema, are in sql/functions/
-- now (each defined once, re-applied by migrate.sh after the migrations):
-- this file keeps the schema change only.


------------------------------------------------------------------------------
-- Schema
------------------------------------------------------------------------------

alter table callhq.chats
    add column history_from  int,
    add column history_to    int;

-- history_epoch  counts the times PATCH replaced the session's messages: a
--                chat that began before the last one cannot point at them
alter table callhq.sessions
    add column history_epoch  int not null default 0;
