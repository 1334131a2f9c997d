"""The PostgreSQL schema of a ledger: tables, the triggers that keep the log append-only and
contiguous inside the database, and the application role.

SPEC §8, §1. ``gl_head`` is one row: the seq, hash and ts of the last event. An append locks
it (``gl_lock_head()``, ``SELECT … FOR UPDATE``) and reads ``seq`` = head + 1 from it: no
sequence, so a rolled-back append leaves no gap. Each INSERT into ``events`` takes that lock
before its first row goes in (a ``BEFORE`` statement trigger), then, once its rows are in, checks
them as a set, in seq order (an ``AFTER`` statement trigger over the statement's new rows): it
refuses the statement if a row's ``seq`` is not the one before it + 1 (the head's, for the
first), its ``prev`` not that row's hash, its ``ts`` earlier than that row's, its ``hash`` not
SHA-256(0x00 ‖ body), or its body names another ``seq``, ``prev`` or ``ts``; then it moves the
head row to the last new row. A per-row ``BEFORE`` trigger refuses a row over a seq already in
the log, so that such a row gets the same refusal rather than the primary key's. A writer that
bypasses govledger can neither fork nor gap the log. UPDATE, DELETE and TRUNCATE of
``events`` (and of the Merkle nodes and checkpoints) are refused by triggers. ``body`` holds the
event's canonical bytes (SPEC §2.2); the other columns are the envelope fields as the SQLite
store keeps them. ``merkle_nodes``, ``keys`` and ``checkpoints`` are as in the SQLite schema.

The functions that lock, check and move the head are ``SECURITY DEFINER`` with a fixed
``search_path`` (the per-row one only compares the seq with the head's, noted by the statement's
lock, and decides nothing the statement check does not): the application role (``APP_ROLE_SQL``)
may insert and read, and lock the head through ``gl_lock_head()``, but has no UPDATE, DELETE or
TRUNCATE privilege and, not owning the tables, cannot disable their triggers.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
META_TABLE = "govledger_meta"

HEAD_FUNCTIONS_SQL = r"""
CREATE OR REPLACE FUNCTION gl_events_lock_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
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
BEGIN
    -- Only an early, clear refusal of a row over an existing seq (before the primary key's
    -- own error); every check that matters is gl_events_move_head()'s, over the statement.
    IF NEW.seq <= current_setting('govledger.head_seq')::bigint THEN
        RAISE EXCEPTION 'govledger: seq % does not extend the log (expected %)', NEW.seq,
            current_setting('govledger.head_seq')::bigint + 1
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION gl_events_move_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    h record;
    r record;
BEGIN
    SELECT g.seq, g.hash, g.ts INTO h FROM gl_head g FOR UPDATE;
    SELECT c.* INTO r FROM (
        SELECT n.seq, n.prev, n.ts, n.hash,
               b.seq AS body_seq, b.prev AS body_prev, b.ts AS body_ts,
               h.seq + row_number() OVER w AS want_seq,
               coalesce(lag(n.seq) OVER w, h.seq) AS last_seq,
               coalesce(lag(n.hash) OVER w, h.hash) AS last_hash,
               coalesce(lag(n.ts) OVER w, h.ts) COLLATE "C" AS last_ts,
               encode(sha256('\x00'::bytea || n.body), 'hex') AS body_hash
        FROM gl_new_events n,
             json_to_record(convert_from(n.body, 'UTF8')::json) AS b (seq text, prev text, ts text)
        WINDOW w AS (ORDER BY n.seq)
    ) c
    WHERE c.seq IS DISTINCT FROM c.want_seq OR c.prev IS DISTINCT FROM c.last_hash
        OR c.ts COLLATE "C" < c.last_ts OR c.hash IS DISTINCT FROM c.body_hash
        OR c.body_seq IS DISTINCT FROM c.seq::text OR c.body_prev IS DISTINCT FROM c.prev
        OR c.body_ts IS DISTINCT FROM c.ts
    ORDER BY c.seq LIMIT 1;
    IF FOUND THEN
        IF r.seq IS DISTINCT FROM r.want_seq THEN
            RAISE EXCEPTION 'govledger: seq % does not extend the log (expected %)', r.seq, r.last_seq + 1
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF r.prev IS DISTINCT FROM r.last_hash THEN
            RAISE EXCEPTION 'govledger: seq %: prev is %, expected % (hash of seq %)',
                r.seq, r.prev, r.last_hash, r.last_seq USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF r.ts COLLATE "C" < r.last_ts THEN
            RAISE EXCEPTION 'govledger: seq %: ts % goes back (seq % is at %)', r.seq, r.ts, r.last_seq, r.last_ts
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
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
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
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
DROP TRIGGER events_move_head ON events;
CREATE TRIGGER events_lock_head BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION gl_events_lock_head();
CREATE TRIGGER events_move_head AFTER INSERT ON events REFERENCING NEW TABLE AS gl_new_events
    FOR EACH STATEMENT EXECUTE FUNCTION gl_events_move_head();
""",
}
"""The SQL that takes a schema from version n to n + 1 (the caller then records n + 1). 1 to 2:
the chain is checked once per INSERT statement, over its new rows, instead of row by row."""
