-- bench/lib/floor_c_schema.sql: floor C, the obvious schema of a plain
-- chat service (no module, no stored functions), in schema naive of its
-- own database.  A session has an assistant (model, system prompt) and a
-- history of messages numbered 1..seq; each chat appends the user message
-- and the reply and keeps a chat row.
--
--   psql -f floor_c_schema.sql; select naive.seed(len, count, msg_bytes)
--
-- Session ids are deterministic, so that pgbench can name them without a
-- lookup: c0000000-0000-4000-8000-NNNNNNNNNNNN (n = 1..count).  The
-- messages are those bench/lib/seed.sql writes for the module (the same
-- roles, about msg_bytes characters of the same text each).

\set ON_ERROR_STOP 1

create schema naive;

create table naive.assistants (
    id           uuid        primary key default gen_random_uuid(),
    model        text        not null,
    prompt       text        not null,
    temperature  real,
    max_tokens   int
);

create table naive.sessions (
    id            uuid        primary key,
    assistant_id  uuid        not null references naive.assistants,
    seq           int         not null default 0,     -- last message's seq
    expires_at    timestamptz not null,
    seed_len      int,                                -- bench only: trim()
    created_at    timestamptz not null default now()
);

create table naive.messages (
    session_id  uuid        not null references naive.sessions on delete cascade,
    seq         int         not null,
    role        text        not null,
    content     text        not null,
    created_at  timestamptz not null default now(),
    primary key (session_id, seq)
);

create table naive.chats (
    id                 uuid        primary key default gen_random_uuid(),
    session_id         uuid        not null references naive.sessions on delete cascade,
    input              text        not null,
    output             text,
    prompt_tokens      int,
    completion_tokens  int,
    created_at         timestamptz not null default now()
);

create index chats_session_idx on naive.chats (session_id, created_at);


create function naive.sid(p_n int)
returns uuid
language sql immutable
as $$ select ('c0000000-0000-4000-8000-' || lpad(p_n::text, 12, '0'))::uuid $$;


create function naive.seed(p_len int, p_count int, p_bytes int)
returns void
language plpgsql
as $$
declare
    v_a  uuid;
begin
    insert into naive.assistants (model, prompt, temperature)
    values ('bench-model',
            'You are the support assistant of a benchmark. Answer briefly.', null)
    returning id into v_a;

    insert into naive.sessions (id, assistant_id, seq, expires_at, seed_len)
    select naive.sid(n), v_a, p_len, now() + interval '30 days', p_len
      from generate_series(1, p_count) n;

    -- the text of bench.content() in bench/lib/seed.sql
    insert into naive.messages (session_id, seq, role, content)
    select naive.sid(n), k,
           case when k % 2 = 1 then 'user' else 'assistant' end,
           left(format('Message %s of the benchmark conversation. ', k)
                || repeat('The quick brown fox jumps over the lazy dog. ', 40),
                p_bytes)
      from generate_series(1, p_count) n, generate_series(1, p_len) k;
end
$$;


-- Back to the seed: chats go, appended messages go, seq goes back.
create function naive.trim()
returns void
language plpgsql
as $$
begin
    truncate naive.chats;
    delete from naive.messages m
     using naive.sessions s
     where s.seq <> s.seed_len and m.session_id = s.id and m.seq > s.seed_len;
    update naive.sessions set seq = seed_len where seq <> seed_len;
end
$$;


-- The history lengths chats sent since the last trim (as bench.sent()).
create function naive.sent(p_len int,
                           out chats bigint, out avg_len numeric,
                           out min_len int, out max_len int)
language sql stable
as $$
    with k as (
        select (s.seq - p_len) / 2 as k
          from naive.sessions s
         where s.seed_len = p_len and s.seq > p_len
    )
    select coalesce(sum(k), 0),
           round(coalesce(sum(k * p_len + k * (k - 1))::numeric / nullif(sum(k), 0), 0), 1),
           case when count(*) > 0 then p_len end,
           p_len + 2 * (max(k) - 1)
      from k
$$;
