-- bench/lib/floor_c.sql: floor C, one chat of a plain chat service on the
-- naive schema (bench/lib/floor_c_schema.sql), run by pgbench -M prepared.
-- Two statements, each its own transaction (the model is called between
-- them, with no transaction open):
--   1. the session if it is open, its assistant and its history as JSON
--      in seq order;
--   2. one CTE: bump sessions.seq by two, append the user message and the
--      reply, insert the chat row.
-- Each client chats on its own slice of the sessions (:per each), picked
-- at random, as floor B does.  Variables (pgbench -D): per, input, reply.

\set s :client_id * :per + random(1, :per)
select s.seq, a.model, a.prompt, a.temperature, a.max_tokens,
       (select json_agg(json_build_object('role', m.role, 'content', m.content)
                        order by m.seq)
          from naive.messages m
         where m.session_id = s.id) as history
  from naive.sessions s
  join naive.assistants a on a.id = s.assistant_id
 where s.id = ('c0000000-0000-4000-8000-' || lpad(:s::text, 12, '0'))::uuid
   and s.expires_at > now();
with s as (
    update naive.sessions
       set seq = seq + 2
     where id = ('c0000000-0000-4000-8000-' || lpad(:s::text, 12, '0'))::uuid
       and expires_at > now()
 returning id, seq
), m as (
    insert into naive.messages (session_id, seq, role, content)
    select id, seq - 1, 'user', :input from s
    union all
    select id, seq, 'assistant', :reply from s
)
insert into naive.chats (session_id, input, output, prompt_tokens, completion_tokens)
select id, :input, :reply, 250, 24 from s;
