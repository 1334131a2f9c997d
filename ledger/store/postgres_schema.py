"""The PostgreSQL schema of a ledger: tables, the triggers that keep the log append-only and
contiguous inside the database, and the application role.

SPEC §8, §1. ``gl_head`` is one row: the seq, hash and ts of the last event. An append locks
it (``gl_lock_head()``, ``SELECT … FOR UPDATE``) and reads ``seq`` = head + 1 from it: no
sequence, so a rolled-back append leaves no gap. The ``BEFORE INSERT`` trigger on ``events``
refuses a row whose ``seq`` is not head + 1, whose ``prev`` is not the head's hash, whose
``ts`` goes back, whose ``hash`` is not SHA-256(0x00 ‖ body) or whose body names another
``seq``, ``prev`` or ``ts``; the head row moves at the end of each INSERT statement: a writer
that bypasses govledger can neither fork nor gap the log. UPDATE, DELETE and TRUNCATE of
``events`` (and of the Merkle nodes and checkpoints) are refused by triggers. ``body`` holds the
event's canonical bytes (SPEC §2.2); the other columns are the envelope fields as the SQLite
store keeps them. ``merkle_nodes``, ``keys`` and ``checkpoints`` are as in the SQLite schema.

The functions the triggers call are ``SECURITY DEFINER``: the application role (``APP_ROLE_SQL``)
may insert and read, and lock the head through ``gl_lock_head()``, but has no UPDATE, DELETE or
TRUNCATE privilege and, not owning the tables, cannot disable their triggers.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
META_TABLE = "govledger_meta"

SCHEMA_SQL = r"""
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

CREATE FUNCTION gl_events_extend_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    h record;
    b jsonb;
BEGIN
    -- The head row's lock serializes writers; the head itself is the last row, rows
    -- inserted earlier by the same statement included (gl_head is moved once per statement:
    -- moving it per row would grow its version chain within a large import).
    PERFORM 1 FROM gl_head FOR UPDATE;
    SELECT e.seq, e.hash, e.ts INTO h FROM events e ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT 0::bigint AS seq, repeat('0', 64) AS hash, ''::text AS ts INTO h;
    END IF;
    IF NEW.seq IS DISTINCT FROM h.seq + 1 THEN
        RAISE EXCEPTION 'govledger: seq % does not extend the log (expected %)', NEW.seq, h.seq + 1
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.prev IS DISTINCT FROM h.hash THEN
        RAISE EXCEPTION 'govledger: seq %: prev is %, expected % (hash of seq %)',
            NEW.seq, NEW.prev, h.hash, h.seq USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.ts COLLATE "C" < h.ts THEN
        RAISE EXCEPTION 'govledger: seq %: ts % goes back (seq % is at %)', NEW.seq, NEW.ts, h.seq, h.ts
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.hash IS DISTINCT FROM encode(sha256('\x00'::bytea || NEW.body), 'hex') THEN
        RAISE EXCEPTION 'govledger: seq %: hash is not SHA-256 of the body', NEW.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    b := convert_from(NEW.body, 'UTF8')::jsonb;
    IF (b ->> 'seq') IS DISTINCT FROM NEW.seq::text OR (b ->> 'prev') IS DISTINCT FROM NEW.prev
            OR (b ->> 'ts') IS DISTINCT FROM NEW.ts THEN
        RAISE EXCEPTION 'govledger: seq %: the body''s seq, prev or ts differ from the row''s', NEW.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION gl_events_move_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE gl_head SET (seq, hash, ts) = (
        SELECT e.seq, e.hash, e.ts FROM events e ORDER BY e.seq DESC LIMIT 1);
    PERFORM pg_notify('govledger_events', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION gl_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'govledger: % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_extend_head BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION gl_events_extend_head();
CREATE TRIGGER events_move_head AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION gl_events_move_head();
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
