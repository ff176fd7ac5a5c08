-- 021_chat_head_text.sql: callhq.chat_head returns the chat's text, built
-- as text (sql/functions/chat.sql); its jsonb form goes first.

drop function if exists callhq.chat_head(callhq.chats);
