"""The SQLite schema of a ledger file, its version and its migrations.

``events`` is append-only: triggers refuse UPDATE and DELETE, and an INSERT that does not extend
the head (SPEC §1.1). ``keys`` is an index of the key events for fast authorization at append
time (verification never trusts it: it reads the keys from the log). ``merkle_nodes`` holds complete-subtree hashes of level ≥ 4
(``merkle.STORED_LEVEL``; lower ones are recomputed from at most 8 event hashes) of the RFC 9162
tree over event hashes, keyed by ``(closes, level)`` (``closes``: the tree size at which the
subtree is complete, ``(idx + 1) << level``), written in the same transaction as the events.
``checkpoints`` keeps the checkpoints the ledger signed. Read models live in their own tables
(``projections``).
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 4
META_TABLE = "govledger_meta"

_V1 = """
CREATE TABLE govledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    agent TEXT,
    run TEXT,
    actor TEXT,
    payload TEXT NOT NULL,
    prev TEXT NOT NULL,
    key TEXT NOT NULL,
    hash TEXT NOT NULL,
    sig TEXT NOT NULL
);
CREATE INDEX events_run ON events (run, seq) WHERE run IS NOT NULL;
CREATE INDEX events_agent ON events (agent, seq) WHERE agent IS NOT NULL;
CREATE INDEX events_type ON events (type, seq);
CREATE INDEX events_ts ON events (ts);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'govledger: events are append-only (UPDATE refused)'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'govledger: events are append-only (DELETE refused)'); END;
CREATE TABLE keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL,
    role TEXT NOT NULL,
    agent TEXT,
    registered_seq INTEGER NOT NULL,
    revoked_seq INTEGER
);
CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    size INTEGER NOT NULL,
    signer TEXT NOT NULL,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (size, signer)
);
"""

_V2 = """
CREATE TABLE merkle_nodes_v2 (
    closes INTEGER NOT NULL,
    level INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (closes, level)
) WITHOUT ROWID;
INSERT INTO merkle_nodes_v2 (closes, level, hash)
    SELECT (idx + 1) << level, level, hash FROM merkle_nodes ORDER BY (idx + 1) << level, level;
DROP TABLE merkle_nodes;
ALTER TABLE merkle_nodes_v2 RENAME TO merkle_nodes
"""
"""Version 2 keys ``merkle_nodes`` by the tree size at which each node's subtree closes
(``closes = (idx + 1) << level``), then its level: the order in which appends create nodes, so
an append writes them at the end of one B-tree instead of at the end of every level's range
(about 14 fewer WAL pages per commit of 100 events)."""

_V3 = """
DELETE FROM merkle_nodes WHERE level < 4
"""
"""Version 3 keeps Merkle nodes of level 4 and above only (``merkle.STORED_LEVEL``): a node
below covers at most 8 leaves and is recomputed from the event hashes when a proof needs it.
A batch of 100 appends writes ~6 node rows instead of ~100 (~4% faster batched appends)."""

_V4 = """
CREATE TRIGGER events_extend_head BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE seq >= NEW.seq)
    OR CASE WHEN NEW.seq = 1
        THEN NEW.prev IS NOT '0000000000000000000000000000000000000000000000000000000000000000'
        ELSE NOT EXISTS (
            SELECT 1 FROM events WHERE seq = NEW.seq - 1 AND hash = NEW.prev AND ts <= NEW.ts
        )
    END
BEGIN SELECT RAISE(ABORT, 'govledger: an event must extend the head (seq = head + 1, prev = its hash, ts not before it)'); END
"""
"""Version 4 has the database itself refuse a row that does not extend the head: ``seq`` must
be the head's + 1, ``prev`` the head's hash and ``ts`` not before the head's, so a writer that
bypasses govledger (raw SQL, ``INSERT OR REPLACE`` of an existing seq) cannot fork, gap or
overwrite the log. Two index lookups per appended row."""

MIGRATIONS: dict[int, str] = {0: _V1, 1: _V2, 2: _V3, 3: _V4}
"""From version N (key) to N + 1: the SQL to run. A new schema adds one entry."""


def read_schema_version(conn: sqlite3.Connection) -> int | None:
    """The ledger's schema version, or None when the file holds no govledger schema."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (META_TABLE,)
    ).fetchone()
    if row is None:
        return None
    row = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = 'schema_version'").fetchone()
    return None if row is None else int(row[0])


def migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Bring the schema from ``from_version`` to ``SCHEMA_VERSION`` (inside a transaction)."""
    for version in range(from_version, SCHEMA_VERSION):
        for statement in MIGRATIONS[version].split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            f"INSERT OR REPLACE INTO {META_TABLE} (key, value) VALUES ('schema_version', ?)",
            (str(version + 1),),
        )
