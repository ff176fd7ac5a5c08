-- org.sql: authentication (an API key's org) and the operators' functions
-- that create organisations and keys.
--
-- Re-applied by sql/migrate.sh on every run, after the migrations (see
-- base.sql).


-- The org of an API key, given the key's SHA-256; 401 when there is none.
create or replace function callhq.auth(p_key bytea)
returns uuid
language plpgsql stable
as $$
declare
    v_org  uuid;
begin
    if p_key is null then
        perform callhq.fail(401, 'Missing API key');
    end if;

    select k.org_id into v_org from callhq.api_keys k where k.key_hash = p_key;

    if v_org is null then
        perform callhq.fail(401, 'Invalid API key');
    end if;
    return v_org;
end
$$;


-- Admin: create an organisation, return its id.
--   select callhq.org_create('Acme');
create or replace function callhq.org_create(p_name text)
returns uuid
language sql
as $$
    insert into callhq.orgs (name) values (p_name) returning id
$$;


-- Admin: register a key chosen by the caller (tests use fixed keys) for an
-- org; only its SHA-256 is stored. Returns the id of the key row.
--   select callhq.api_key_add('<org uuid>', 'test-key-1');
create or replace function callhq.api_key_add(p_org uuid, p_key text)
returns uuid
language plpgsql
as $$
declare
    v_id  uuid;
begin
    if p_key is null or p_key = '' then
        raise exception 'api key must not be empty';
    end if;
    if not exists (select 1 from callhq.orgs o where o.id = p_org) then
        raise exception 'org % does not exist', p_org;
    end if;

    insert into callhq.api_keys (org_id, key_hash, prefix)
    values (p_org, sha256(convert_to(p_key, 'UTF8')), left(p_key, 8))
    returning id into v_id;
    return v_id;
end
$$;


-- Admin: generate a random key for an org ('chq_' and 40 hex digits, 160
-- bits from gen_random_uuid's strong random source), store its hash and
-- return the key: this is the only time it is ever shown.
--   select callhq.api_key_create('<org uuid>');
-- To revoke a key: delete from callhq.api_keys where prefix = '<prefix>';
create or replace function callhq.api_key_create(p_org uuid)
returns text
language plpgsql
as $$
declare
    v_key  text;
begin
    v_key := 'chq_' || left(encode(sha256(convert_to(
                 gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex'), 40);
    perform callhq.api_key_add(p_org, v_key);
    return v_key;
end
$$;


-- An org's chats go with it (chats.org_id is not a foreign key: a key's
-- check on every chat would lock the org's row). Those of its sessions go
-- with the sessions already; these are the others.
create or replace function callhq.org_chats_delete()
returns trigger
language plpgsql
as $$
begin
    delete from callhq.chats c where c.org_id = old.id;
    return null;
end
$$;

drop trigger if exists org_chats_delete on callhq.orgs;
create trigger org_chats_delete
    after delete on callhq.orgs
    for each row execute function callhq.org_chats_delete();
