-- 018_messages_no_foreign_key.sql: a recorded chat checks no foreign key
-- per message (issue 13).
--
-- Every message row is written by a statement that holds its session's
-- row (the chat's record updates it first, PATCH and DELETE lock it), so
-- messages.session_id -> sessions.id only cost two key-share checks per
-- chat. The key goes; session_messages_delete (sql/functions/session.sql)
-- deletes a deleted session's messages as ON DELETE CASCADE did, once per
-- statement.

alter table callhq.messages
    drop constraint if exists messages_session_id_fkey;
