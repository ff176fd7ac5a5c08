-- bench/lib/seed.sql: the data of a benchmark run, written directly (not
-- through the API) into a fresh database where sql/ has been applied.
--
--   psql -v key=bench-key -v msg_bytes=100 -f seed.sql
--
-- An org with a fixed API key, one assistant with a system prompt, and
-- helpers in schema bench: bench.seed(len, count) adds count sessions of
-- len history messages each; bench.trim() puts every seeded session back
-- to its seed length and drops what runs added; bench.sent(len) tells how
-- long the histories were that chats actually sent.
--
-- Session ids encode their seed length, so that floor B (pgbench) can name
-- them without a lookup: b0000000-0000-4000-8000-LLLLNNNNNNNN.

\set ON_ERROR_STOP 1

create schema bench;

create table bench.conf (
    org_id        uuid not null,
    assistant_id  uuid not null,
    msg_bytes     int  not null
);

select callhq.org_create('bench') as org \gset
select callhq.api_key_add(:'org', :'key') as key_id \gset

insert into callhq.assistants (org_id, name, model)
values (:'org', 'bench',
        '{"provider": "openai", "model": "bench-model",
          "messages": [{"role": "system",
                        "content": "You are the support assistant of a benchmark. Answer briefly."}]}')
returning id as assistant \gset

insert into bench.conf values (:'org', :'assistant', :msg_bytes);


create function bench.sid(p_len int, p_n int)
returns uuid
language sql immutable
as $$
    select ('b0000000-0000-4000-8000-' || lpad(p_len::text, 4, '0')
            || lpad(p_n::text, 8, '0'))::uuid
$$;


-- A history message of about msg_bytes characters of content.
create function bench.content(p_seq int, p_bytes int)
returns text
language sql immutable
as $$
    select left(format('Message %s of the benchmark conversation. ', p_seq)
                || repeat('The quick brown fox jumps over the lazy dog. ', 40),
                p_bytes)
$$;


create function bench.seed(p_len int, p_count int)
returns void
language plpgsql
as $$
declare
    c  bench.conf;
begin
    select * into c from bench.conf;

    insert into callhq.sessions (id, org_id, assistant_id, name,
                                 expiration_seconds, expires_at, metadata,
                                 next_seq)
    select bench.sid(p_len, n), c.org_id, c.assistant_id, 'bench-h' || p_len,
           2592000, now() + interval '30 days',
           jsonb_build_object('benchSeed', p_len), p_len + 1
      from generate_series(1, p_count) n;

    -- raw as callhq.message_raw() writes it (a string content is compact)
    insert into callhq.messages (session_id, seq, role, content, raw)
    select bench.sid(p_len, n), k, r.role, to_jsonb(t.text),
           '{"role":' || to_jsonb(r.role)::text || ',"content":'
           || to_jsonb(t.text)::text || '}'
      from generate_series(1, p_count) n,
           generate_series(1, p_len) k,
           lateral (select case when k % 2 = 1 then 'user' else 'assistant' end) r(role),
           lateral (select bench.content(k, c.msg_bytes)) t(text);
end
$$;


-- Back to the seed: runs' chats, appended turns and new sessions go.
create function bench.trim()
returns void
language plpgsql
as $$
declare
    s  record;
begin
    truncate callhq.chats;

    -- only the sessions that chats touched, each by its primary key
    for s in select x.id, (x.metadata->>'benchSeed')::int as seed
               from callhq.sessions x
              where x.metadata ? 'benchSeed'
                and (x.next_seq <> (x.metadata->>'benchSeed')::int + 1
                     or x.busy_chat is not null)
    loop
        delete from callhq.messages m where m.session_id = s.id and m.seq > s.seed;
        update callhq.sessions x
           set next_seq = s.seed + 1, busy_chat = null, busy_until = null
         where x.id = s.id;
    end loop;

    delete from callhq.sessions x where x.metadata is null
                                     or not x.metadata ? 'benchSeed';
    delete from callhq.webhook_outbox;
end
$$;


-- The history lengths that chats sent since the last trim, from the turns
-- appended to the sessions seeded with p_len messages: a session with k
-- chats sent p_len, p_len + 2, ..., p_len + 2(k - 1).
create function bench.sent(p_len int,
                           out chats bigint, out avg_len numeric,
                           out min_len int, out max_len int)
language sql stable
as $$
    with k as (
        select (s.next_seq - 1 - p_len) / 2 as k
          from callhq.sessions s
         where s.name = 'bench-h' || p_len and s.next_seq - 1 > p_len
    )
    select coalesce(sum(k), 0),
           round(coalesce(sum(k * p_len + k * (k - 1))::numeric / nullif(sum(k), 0), 0), 1),
           case when count(*) > 0 then p_len end,
           p_len + 2 * (max(k) - 1)
      from k
$$;
