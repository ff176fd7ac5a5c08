-- 023_chats_no_session_key.sql: a recorded chat checks no foreign key to
-- its session (issue 13).
--
-- Every statement that writes a chat of a session holds the session's row
-- as it does (the chat's record updates it first, callhq.chat_record locks
-- it), so chats.session_id -> sessions.id only cost a key-share check, a
-- query of its own, per chat. The key goes; session_messages_delete
-- (sql/functions/session.sql) deletes a deleted session's chats with its
-- messages, as ON DELETE CASCADE did, once per statement.
--
-- Each statement may run again.

alter table callhq.chats drop constraint if exists chats_session_id_fkey;
