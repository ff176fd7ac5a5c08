-- 019_status_domains.sql: a session's and a chat's status are checked by
-- their type, not by a table CHECK (issue 13).
--
-- PostgreSQL reads a table's CHECK expressions again for every statement
-- that writes a row of it, even when the statement leaves the column as
-- it was: a chat took the turn, recorded and so on, each paying for
-- sessions_status_check. A domain's check is cached with the type and
-- runs only where a value becomes the domain (an INSERT, or an UPDATE
-- that sets the column). Text over text: no rewrite, the same values.

do $$
begin
    if not exists (select 1 from pg_type t join pg_namespace n
                    on n.oid = t.typnamespace
                   where n.nspname = 'callhq' and t.typname = 'session_status')
    then
        create domain callhq.session_status as text
            check (value in ('active', 'completed'));
    end if;
    if not exists (select 1 from pg_type t join pg_namespace n
                    on n.oid = t.typnamespace
                   where n.nspname = 'callhq' and t.typname = 'chat_status')
    then
        create domain callhq.chat_status as text
            check (value in ('completed', 'incomplete'));
    end if;
end
$$;

-- the trigger names the column: sql/functions/webhook.sql attaches it again
drop trigger if exists webhook_session_updated on callhq.sessions;
alter table callhq.sessions drop constraint if exists sessions_status_check;
alter table callhq.sessions alter column status type callhq.session_status;
alter table callhq.chats drop constraint if exists chats_status_check;
alter table callhq.chats alter column status type callhq.chat_status;
