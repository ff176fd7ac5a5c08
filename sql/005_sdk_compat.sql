-- 005_sdk_compat.sql: accept what the official @vapi-ai/server-sdk (2.0.1)
-- sends (clients/sdk-compat/sdk.test.mjs).
--
--   GET /chat      id and idAny filters, as GET /session; squadId accepted
--                  and ignored
--   GET /session   customer filters number, email, externalId (exact match
--                  on customer.number, .email, .externalId); the SDK's
--                  squadId, workflowId, phoneNumberId, phoneNumberIdAny,
--                  sipUri, extension, numberE164CheckEnabled,
--                  assistantOverrides and squadOverrides accepted and
--                  ignored: the module has no squads, workflows, phone
--                  numbers or SIP, so there is nothing to filter on (they
--                  do not narrow the list)
--   both lists     sortBy duration and cost, sorted as createdAt
--   messages       (session messages, chat input, assistant model.messages)
--                  role developer (stored as developer, sent upstream as
--                  system); name, metadata, tool_call_id, tool_calls,
--                  refusal and the SDK's call-log members (time, endTime,
--                  secondsFromStart, ...) accepted and ignored; "message"
--                  stands for a missing content; an assistant message may
--                  have no content (stored as ""). Stored as {role, content}.
--   assistants     (POST/PATCH /assistant, inline ones of sessions and
--                  chats) the other members of the SDK's CreateAssistantDto,
--                  model and server accepted and ignored: not stored; the
--                  SDK's serverMessages names accepted and stored, only the
--                  five session/chat events send webhooks
--   assistantOverrides  on POST /session (kept with the session) and
--                  POST /chat: variableValues fill {{name}} in the
--                  assistant's system prompts sent upstream; its other
--                  members are accepted and ignored
--
-- Its functions, like every function of the schema, are in sql/functions/
-- now (each defined once, re-applied by migrate.sh after the migrations):
-- this file keeps the schema change only.


------------------------------------------------------------------------------
-- Schema
------------------------------------------------------------------------------

-- assistant_overrides  {"variableValues": {...}} given with POST /session
--                      (or the POST /chat that opened a customer's session):
--                      the variables of every chat of the session
alter table callhq.sessions add column assistant_overrides jsonb;

-- The customer filters of GET /session (number, email, externalId).
alter type callhq.list_query
    add attribute customer_number    text,
    add attribute customer_email     text,
    add attribute customer_external  text;
