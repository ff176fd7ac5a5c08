-- 020_openai_items.sql: a message of a conversation (or of a response's
-- input) is one item or more: its text, then a function_call item per
-- tool call of an assistant's message.  An item's place is then the
-- message's seq and the item's place in it (sql/functions/openai_conv.sql):
-- the functions of one item a message go, and openai_list_args answers
-- both.

drop function if exists callhq.openai_item(text, jsonb);
drop function if exists callhq.openai_item_seq(text, uuid);
drop function if exists callhq.openai_list_args(jsonb, uuid);
