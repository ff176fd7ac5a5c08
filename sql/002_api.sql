-- 002_api.sql: the HTTP API and the admin functions; of those, the type
-- that lists' parameters are parsed into.
--
-- Its functions, like every function of the schema, are in sql/functions/
-- now (each defined once, re-applied by migrate.sh after the migrations):
-- this file keeps the schema change only.
--
-- The convention the API's functions follow is described in
-- sql/functions/base.sql.


-- A parsed list query. Fields are NULL when their parameter is absent.
create type callhq.list_query as (
    page              int,          -- page, from 1
    lim               int,          -- limit
    sort_asc          boolean,      -- sortOrder = ASC
    id                uuid,
    ids               uuid[],       -- idAny
    name              text,
    assistant_id      uuid,
    assistant_ids     uuid[],       -- assistantIdAny
    customer_numbers  text[],       -- customerNumberAny
    session_id        uuid,
    previous_chat_id  uuid,
    created_gt        timestamptz,
    created_lt        timestamptz,
    created_ge        timestamptz,
    created_le        timestamptz,
    updated_gt        timestamptz,
    updated_lt        timestamptz,
    updated_ge        timestamptz,
    updated_le        timestamptz
);
