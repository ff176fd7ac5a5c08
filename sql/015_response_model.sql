-- 015_response_model.sql: a response keeps the model it was asked for.
--
--   response_model  the "model" of POST /responses (callhq_openai) as the
--                   client wrote it, an assistant's id or name: GET
--                   /responses/{id} answers it, as the create did (NULL
--                   for chats made otherwise)
--
-- Each statement may run again.

alter table callhq.chats add column if not exists response_model text;
