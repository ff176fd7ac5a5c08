-- Every change to a session or chat runs a webhook trigger; most
-- assistants have no server.url, and building their whole JSON only to
-- find that out cost a chat about a fifth of its database time (bench/).
-- Look at the stored server.url first: an assistant without one wants no
-- event, exactly as before.

create or replace function callhq.webhook_assistant(p_id uuid, p_inline jsonb)
returns jsonb
language sql stable
as $$
    select case
           when a.id is null then
               case when jsonb_typeof(p_inline) = 'object' then p_inline end
           when jsonb_typeof(a.server->'url') = 'string'
                and a.server->>'url' <> '' then
               callhq.assistant_json(a)
           end
      from (select 1) one
      left join callhq.assistants a on a.id = p_id
$$;
