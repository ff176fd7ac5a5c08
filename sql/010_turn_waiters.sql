-- 010_turn_waiters.sql: chats waiting for a session's turn are woken, not
-- polling.
--
-- A chat that finds its session busy sets turn_waiters (the take
-- statement of ngx_http_callhq_turn.c, or callhq.chat_begin); the chat
-- that gives the turn back clears it and, only when it was set, notifies
-- channel callhq_turn with the session id, which every nginx worker
-- listens on. NOTIFY takes a global lock at commit: with nobody waiting,
-- a chat does not notify. Not indexed: the session's row stays updated in
-- place (HOT).

alter table callhq.sessions add column turn_waiters boolean not null default false;
