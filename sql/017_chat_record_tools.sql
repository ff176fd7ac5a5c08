-- chat_record takes the model's tool calls (p_tool_calls, issue 16): the
-- five-argument one goes, functions/chat.sql makes the new one.
drop function if exists callhq.chat_record(jsonb, jsonb, text, text, jsonb);
