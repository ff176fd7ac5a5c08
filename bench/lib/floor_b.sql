-- bench/lib/floor_b.sql: floor B, the database's share of one chat, run by
-- pgbench -M prepared exactly as the module runs it (same statements, same
-- parameters): callhq.chat_begin (API key, session, assistant, history,
-- turn lease), then callhq.chat_record (the chat, the user turn and the
-- reply, in one transaction) with the record chat_begin returned; a chat of
-- a session sends no context back (NULL), the reply is a JSON string.
--
-- Each pgbench client chats on its own slice of the sessions seeded with
-- :len messages (:per sessions each), picked at random, so that no two
-- clients ever wait for the same session's turn.  Variables (pgbench -D):
-- key, opts, len, per, input, reply.  The client body is put together in
-- SQL (bench.sid, to_jsonb): a few microseconds the module does not spend.

\set s :client_id * :per + random(1, :per)
select state, record, params, messages, chat_id, session_id, org_id, model from callhq.chat_begin(
         :key::bytea,
         ('{"sessionId":"' || bench.sid(:len::int, :s::int) || '","input":'
          || to_jsonb(:input::text)::text || '}')::jsonb,
         :opts::jsonb) \gset
select status, body from callhq.chat_record(
         :record::jsonb, null::jsonb, (to_jsonb(:reply::text)::text)::jsonb #>> '{}',
         'completed'::text, '{"promptTokens":250,"completionTokens":24}'::jsonb);
