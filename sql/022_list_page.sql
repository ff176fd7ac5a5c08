-- 022_list_page.sql: one bound for list pages and one for prompts
-- (issue 14, item 5).
--
-- callhq.list_page (sql/functions/list.sql) builds the pages of GET /chat,
-- GET /session and GET /assistant one row at a time within
-- callhq_max_list_size: list_chats, GET /chat's alone, goes.
-- callhq.fill_messages takes callhq_max_prompt_size as an argument, also
-- from a chat of a session in two statements, instead of the setting
-- callhq.max_prompt_size: its two-argument form goes.
--
-- Each statement may run again.

drop function if exists callhq.list_chats(uuid[], bigint);
drop function if exists callhq.fill_messages(jsonb, jsonb);
