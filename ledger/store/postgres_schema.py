"""The PostgreSQL schema of a ledger: tables, the triggers that keep the log append-only and
contiguous inside the database, and the application role.

SPEC §8, §1. ``gl_head`` is one row: the seq, hash and ts of the last event. An append locks
it (``gl_lock_head()``, ``SELECT … FOR UPDATE``) and reads ``seq`` = head + 1 from it: no
sequence, so a rolled-back append leaves no gap. Each INSERT into ``events`` takes that lock
before its first row goes in (a ``BEFORE`` statement trigger). The ``BEFORE INSERT`` row trigger
refuses a row whose ``seq``, ``prev`` or ``ts`` does not extend the head: one index lookup of the
row before (rows of the same statement already in included) whose hash must be the row's
``prev`` and whose ``ts`` must not be later; seq 1 only into an empty log, after 64 zeros; a seq
already in the log is refused with the same message, one twice in a statement by the primary
key. Once the statement's rows are in, an ``AFTER`` statement trigger checks them as a set (its
transition table): each ``hash`` must be SHA-256(0x00 ‖ body) and each body name the row's
``seq``, ``prev`` and ``ts``; then the head row moves to the last new row. A writer that
bypasses govledger can neither fork nor gap the log. UPDATE, DELETE and TRUNCATE of ``events``
(and of the Merkle nodes and checkpoints) are refused by triggers. ``body`` holds the event's
canonical bytes (SPEC §2.2); the other columns are the envelope fields as the SQLite store
keeps them. ``merkle_nodes``, ``keys`` and ``checkpoints`` are as in the SQLite schema.

The functions that lock and move the head are ``SECURITY DEFINER`` with
``search_path = <the ledger's schema>, pg_temp``: the session's temporary tables come last,
never first, so a writer's own temporary ``gl_head`` or ``events`` cannot stand for the real
ones. The per-row check runs with the writer's rights and ``search_path`` (a ``search_path`` of
its own would cost a setting switch per row), so it names every table, function, type and
operator with its schema. The application role (``APP_ROLE_SQL``) may insert and read, and lock
the head through ``gl_lock_head()``, but has no UPDATE, DELETE or TRUNCATE privilege and, not
owning the tables, cannot disable their triggers.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
META_TABLE = "govledger_meta"

HEAD_FUNCTIONS_SQL = r"""
CREATE OR REPLACE FUNCTION gl_events_lock_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    head bigint;
BEGIN
    -- The head row's lock serializes writers, taken before the statement's first row goes in.
    SELECT g.seq INTO head FROM gl_head g FOR UPDATE;
    PERFORM set_config('govledger.head_seq', head::text, true);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION gl_events_extend_head() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last record;
BEGIN
    -- The invoker's rights and search_path (a search_path of its own would cost a setting
    -- switch per row), so every name is schema-qualified, operators included. One lookup of
    -- the row before (rows of this statement already in included); a seq over one already in
    -- the log (the head's, noted by the statement's lock) is refused here, a seq twice in one
    -- statement by the primary key.
    IF NEW.seq OPERATOR(pg_catalog.=) 1 THEN
        PERFORM WHERE pg_catalog.current_setting('govledger.head_seq') OPERATOR(pg_catalog.=) '0'
            AND NEW.prev OPERATOR(pg_catalog.=) pg_catalog.repeat('0', 64);
    ELSE
        PERFORM FROM {schema}.events e
        WHERE e.seq OPERATOR(pg_catalog.=) (NEW.seq OPERATOR(pg_catalog.-) 1)
            AND NEW.seq OPERATOR(pg_catalog.>)
                pg_catalog.current_setting('govledger.head_seq')::pg_catalog.int8
            AND e.hash OPERATOR(pg_catalog.=) NEW.prev AND e.ts OPERATOR(pg_catalog.<=) NEW.ts;
    END IF;
    IF FOUND THEN
        RETURN NEW;
    END IF;
    -- Refused: say why.
    IF NEW.seq OPERATOR(pg_catalog.=) 1 THEN
        SELECT 0::pg_catalog.int8 AS seq, pg_catalog.repeat('0', 64) AS hash,
            ''::pg_catalog.text AS ts INTO last
        WHERE pg_catalog.current_setting('govledger.head_seq') OPERATOR(pg_catalog.=) '0';
    ELSE
        SELECT e.seq, e.hash, e.ts INTO last FROM {schema}.events e
        WHERE e.seq OPERATOR(pg_catalog.=) (NEW.seq OPERATOR(pg_catalog.-) 1)
            AND NEW.seq OPERATOR(pg_catalog.>)
                pg_catalog.current_setting('govledger.head_seq')::pg_catalog.int8;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'govledger: seq % does not extend the log (expected %)', NEW.seq,
            (SELECT coalesce(pg_catalog.max(e.seq), 0) OPERATOR(pg_catalog.+) 1
             FROM {schema}.events e)
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (NEW.prev OPERATOR(pg_catalog.=) last.hash) IS NOT TRUE THEN
        RAISE EXCEPTION 'govledger: seq %: prev is %, expected % (hash of seq %)',
            NEW.seq, NEW.prev, last.hash, last.seq USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RAISE EXCEPTION 'govledger: seq %: ts % goes back (seq % is at %)', NEW.seq, NEW.ts,
        last.seq, last.ts USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE OR REPLACE FUNCTION gl_events_move_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    r record;
BEGIN
    -- The chain (seq, prev, ts) is the per-row trigger's; here, over the statement's rows at
    -- once, what costs: SHA-256 of each body and the parse of its seq, prev and ts.
    SELECT c.* INTO r FROM (
        SELECT n.seq, n.prev, n.ts, n.hash,
               b.seq AS body_seq, b.prev AS body_prev, b.ts AS body_ts,
               encode(sha256('\x00'::bytea || n.body), 'hex') AS body_hash
        FROM gl_new_events n,
             json_to_record(convert_from(n.body, 'UTF8')::json) AS b (seq text, prev text, ts text)
    ) c
    WHERE c.hash IS DISTINCT FROM c.body_hash OR c.body_seq IS DISTINCT FROM c.seq::text
        OR c.body_prev IS DISTINCT FROM c.prev OR c.body_ts IS DISTINCT FROM c.ts
    ORDER BY c.seq LIMIT 1;
    IF FOUND THEN
        IF r.hash IS DISTINCT FROM r.body_hash THEN
            RAISE EXCEPTION 'govledger: seq %: hash is not SHA-256 of the body', r.seq
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RAISE EXCEPTION 'govledger: seq %: the body''s seq, prev or ts differ from the row''s', r.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    UPDATE gl_head SET (seq, hash, ts) = (
        SELECT n.seq, n.hash, n.ts FROM gl_new_events n ORDER BY n.seq DESC LIMIT 1)
    WHERE EXISTS (SELECT FROM gl_new_events);
    PERFORM pg_notify('govledger_events', '');
    RETURN NULL;
END
$$;
"""
"""The functions of the head triggers (``CREATE OR REPLACE``: the schema and its migration)."""

HEAD_TRIGGERS_SQL = """
CREATE TRIGGER events_lock_head BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION gl_events_lock_head();
CREATE TRIGGER events_extend_head BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION gl_events_extend_head();
CREATE TRIGGER events_move_head AFTER INSERT ON events REFERENCING NEW TABLE AS gl_new_events
    FOR EACH STATEMENT EXECUTE FUNCTION gl_events_move_head();
"""

SCHEMA_SQL = (
    r"""
CREATE TABLE govledger_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE gl_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint NOT NULL,
    hash text NOT NULL,
    ts text COLLATE "C" NOT NULL
);
INSERT INTO gl_head (seq, hash, ts) VALUES (0, repeat('0', 64), '');
CREATE TABLE events (
    seq bigint PRIMARY KEY,
    id text NOT NULL UNIQUE,
    ts text COLLATE "C" NOT NULL,
    type text NOT NULL,
    agent text,
    run text,
    actor text,
    payload text NOT NULL,
    prev text NOT NULL,
    key text NOT NULL,
    hash text NOT NULL,
    sig text NOT NULL,
    body bytea NOT NULL
);
CREATE INDEX events_run ON events (run, seq) WHERE run IS NOT NULL;
CREATE INDEX events_agent ON events (agent, seq) WHERE agent IS NOT NULL;
CREATE INDEX events_type ON events (type, seq);
CREATE INDEX events_ts ON events (ts);
CREATE TABLE keys (
    key_id text PRIMARY KEY,
    name text NOT NULL,
    public_key text NOT NULL,
    role text NOT NULL,
    agent text,
    registered_seq bigint NOT NULL,
    revoked_seq bigint
);
CREATE TABLE merkle_nodes (
    closes bigint NOT NULL,
    level integer NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (closes, level)
);
CREATE TABLE checkpoints (
    size bigint NOT NULL,
    signer text NOT NULL,
    root text NOT NULL,
    note text NOT NULL,
    created text NOT NULL,
    PRIMARY KEY (size, signer)
);

CREATE FUNCTION gl_lock_head() RETURNS TABLE (seq bigint, hash text, ts text)
LANGUAGE sql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
    SELECT seq, hash, ts FROM gl_head FOR UPDATE
$$;

"""
    + HEAD_FUNCTIONS_SQL
    + r"""
CREATE FUNCTION gl_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'govledger: % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

"""
    + HEAD_TRIGGERS_SQL
    + r"""
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION gl_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION gl_refuse_change();
CREATE TRIGGER merkle_nodes_no_change BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION gl_refuse_change();
CREATE TRIGGER merkle_nodes_no_truncate BEFORE TRUNCATE ON merkle_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION gl_refuse_change();
CREATE TRIGGER gl_head_no_delete BEFORE DELETE ON gl_head
    FOR EACH ROW EXECUTE FUNCTION gl_refuse_change();
CREATE TRIGGER gl_head_no_truncate BEFORE TRUNCATE ON gl_head
    FOR EACH STATEMENT EXECUTE FUNCTION gl_refuse_change();
CREATE TRIGGER checkpoints_no_change BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION gl_refuse_change();
"""
)


def in_schema(sql: str, schema: str) -> str:
    """``SCHEMA_SQL`` or a migration for the ledger in ``schema``: ``{schema}`` becomes its
    quoted identifier (the functions name their tables in it, and search nowhere else)."""
    return sql.replace("{schema}", '"' + schema.replace('"', '""') + '"')


APP_ROLE_SQL = """
CREATE ROLE {role} LOGIN;
REVOKE ALL ON govledger_meta, gl_head, events, keys, merkle_nodes, checkpoints FROM {role};
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT ON govledger_meta, gl_head, events, keys, merkle_nodes, checkpoints TO {role};
GRANT INSERT ON events, merkle_nodes, keys, checkpoints TO {role};
GRANT UPDATE (revoked_seq) ON keys TO {role};
GRANT EXECUTE ON FUNCTION gl_lock_head() TO {role}
"""
"""The application role: it may read, insert events, Merkle nodes, keys and checkpoints, mark a
key revoked in the key index, and lock the head row through ``gl_lock_head()``; it may not
UPDATE or DELETE events, TRUNCATE, or ALTER the tables (it owns none of them, so it cannot
disable their triggers). ``{role}`` and ``{schema}`` are quoted identifiers."""

MIGRATIONS = {
    1: HEAD_FUNCTIONS_SQL
    + """
ALTER FUNCTION gl_lock_head() SET search_path = {schema}, pg_temp;
DROP TRIGGER events_move_head ON events;
CREATE TRIGGER events_lock_head BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION gl_events_lock_head();
CREATE TRIGGER events_move_head AFTER INSERT ON events REFERENCING NEW TABLE AS gl_new_events
    FOR EACH STATEMENT EXECUTE FUNCTION gl_events_move_head();
""",
}
"""The SQL that takes a schema from version n to n + 1 (``in_schema``; the caller then records
n + 1). 1 to 2: the per-row check is one lookup with the writer's rights, the body's hash and
fields are checked once per INSERT statement, and every privileged function searches the
ledger's schema, then the temporary tables (last)."""
