"""The SQLite store (SPEC §1.1–§1.3, §1.6, §2.1, §2.5): append-only at the database level, total
order, chaining, atomic batches, authorization at append, and environment errors."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledger.crypto.keyfiles import KeyRing
from ledger.crypto.signing import b64decode_canonical, event_hash, verify_event_signature
from ledger.errors import (
    AlreadyInitialized,
    DatabaseLocked,
    DuplicateEventId,
    EventValidationError,
    LedgerMissing,
    NotALedger,
    UnauthorizedWrite,
)
from ledger.event.body import body_bytes
from ledger.event.envelope import TS_RE, ZERO_HASH
from ledger.store.sqlite import MAX_PAYLOAD_BYTES, Draft, Ledger, prepare, root_key_payload
from ledger.store.sqlite_schema import SCHEMA_VERSION
from ledger.tlog import merkle
from ledger.verify.verifier import verify_ledger
from tests.conftest import (
    ORIGIN,
    LedgerKeys,
    agent_registration,
    populate,
    run_drafts,
    sign,
    snapshot,
)


def note(i: int, **kw: str) -> Draft:
    return Draft("x.note", {"i": i}, **kw)


# --- guarantee 1: append-only at the database level -----------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "UPDATE events SET actor = 'mallory' WHERE seq = 1",
            "govledger: events are append-only (UPDATE refused)",
        ),
        ("UPDATE events SET seq = seq + 100", "govledger: events are append-only (UPDATE refused)"),
        ("DELETE FROM events WHERE seq = 2", "govledger: events are append-only (DELETE refused)"),
        ("DELETE FROM events", "govledger: events are append-only (DELETE refused)"),
    ],
    ids=["update-one", "update-all", "delete-one", "delete-all"],
)
def test_triggers_refuse_update_and_delete(ledger: Ledger, sql: str, message: str) -> None:
    before = [tuple(r) for r in ledger.iter_rows()]
    conn = sqlite3.connect(ledger.path)
    try:
        with pytest.raises(
            sqlite3.IntegrityError,
            match=r"^" + message.replace("(", r"\(").replace(")", r"\)") + "$",
        ):
            conn.execute(sql)
    finally:
        conn.close()
    assert [tuple(r) for r in ledger.iter_rows()] == before


def test_insert_or_replace_cannot_overwrite_an_event(ledger: Ledger) -> None:
    # REPLACE deletes the conflicting row first; the DELETE trigger fires only with
    # recursive_triggers, so the PRIMARY KEY must be what stops it (or the trigger).
    before = [tuple(r) for r in ledger.iter_rows()]
    conn = sqlite3.connect(ledger.path)
    conn.execute("PRAGMA recursive_triggers = ON")
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT OR REPLACE INTO events SELECT * FROM events WHERE seq = 1")
    finally:
        conn.close()
    assert [tuple(r) for r in ledger.iter_rows()] == before


# --- guarantee 2 and 3: order, chain, hash, signature -----------------------------------------


def test_seq_is_contiguous_from_1_and_prev_chains(ledger: Ledger, keys: LedgerKeys) -> None:
    populate(ledger, keys, runs=3)
    events = list(ledger.iter_events())
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev == ZERO_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev == before.hash
    assert ledger.head() == (events[-1].seq, events[-1].hash)


def test_hash_and_signature_follow_spec(ledger: Ledger, keys: LedgerKeys) -> None:
    populate(ledger, keys, runs=1)
    public = {
        keys.root.key_id: keys.root.public_key,
        keys.recorder.key_id: keys.recorder.public_key,
    }
    for row in ledger.iter_rows():
        seq, id_, ts, type_, agent, run, actor, payload, prev, key, hash_, sig = row
        body = body_bytes(
            seq=seq,
            id=id_,
            ts=ts,
            type=type_,
            agent=agent,
            run=run,
            actor=actor,
            payload=payload,
            prev=prev,
            key=key,
        )
        assert hash_ == event_hash(body).hex()
        verify_event_signature(
            public_key=public[key], signature=b64decode_canonical(sig), digest=bytes.fromhex(hash_)
        )


def test_ts_is_rfc3339_micro_z_and_non_decreasing(ledger: Ledger, keys: LedgerKeys) -> None:
    populate(ledger, keys, runs=2)
    stamps = [e.ts for e in ledger.iter_events()]
    assert all(TS_RE.fullmatch(t) for t in stamps)
    assert stamps == sorted(stamps)


def test_ts_never_goes_back_when_the_last_event_is_in_the_future(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    # A clock that went back: the last stored ts is ahead of now; the next event takes it.
    future = "2999-01-01T00:00:00.000000Z"
    size, prev = ledger.head()
    payload = '{"i":0}'
    body = body_bytes(
        seq=size + 1,
        id="future",
        ts=future,
        type="x.note",
        agent=None,
        run=None,
        actor=None,
        payload=payload,
        prev=prev,
        key=keys.recorder.key_id,
    )
    digest = event_hash(body)
    ledger.conn.execute(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            size + 1,
            "future",
            future,
            "x.note",
            None,
            None,
            None,
            payload,
            prev,
            keys.recorder.key_id,
            digest.hex(),
            sign(keys.recorder, digest),
        ),
    )
    nodes = merkle.nodes_for_append(size, [digest], ledger.get_node)
    ledger.conn.executemany(
        "INSERT INTO merkle_nodes (closes, level, hash) VALUES (?, ?, ?)", merkle.stored_rows(nodes)
    )
    event = ledger.append(note(1), signer=keys.recorder)
    assert event.ts == future
    assert verify_ledger(ledger).ok


def test_append_returns_what_is_stored(ledger: Ledger, keys: LedgerKeys) -> None:
    event = ledger.append(note(1, agent="a", run="r", actor="u", id="my-id"), signer=keys.recorder)
    assert ledger.event_at(event.seq) == event
    assert ledger.find_id("my-id") == event.seq == 3
    assert event.key == keys.recorder.key_id


def test_generated_ids_are_uuid7(ledger: Ledger, keys: LedgerKeys) -> None:
    ids = [ledger.append(note(i), signer=keys.recorder).id for i in range(3)]
    assert len(set(ids)) == 3
    for i in ids:
        assert len(i) == 36 and i[14] == "7" and i[19] in "89ab"


def test_payload_is_stored_canonical(ledger: Ledger, keys: LedgerKeys) -> None:
    ledger.append(Draft("x.note", {"b": 1, "a": ["é", "\u2028"]}), signer=keys.recorder)
    row = ledger.conn.execute("SELECT payload FROM events WHERE seq = 3").fetchone()
    assert row[0] == '{"a":["é","\u2028"],"b":1}'


# --- duplicate ids (retries never record twice) ----------------------------------------------


def test_duplicate_id_is_refused_naming_the_existing_seq(ledger: Ledger, keys: LedgerKeys) -> None:
    ledger.append(note(1, id="retry-me"), signer=keys.recorder)
    before = ledger.head()
    with pytest.raises(DuplicateEventId) as e:
        ledger.append(note(1, id="retry-me"), signer=keys.recorder)
    assert e.value.message == "event: id 'retry-me' is already in the log at seq 3"
    assert e.value.exit_code == 2
    assert ledger.head() == before


def test_duplicate_id_inside_a_batch_is_refused(ledger: Ledger, keys: LedgerKeys) -> None:
    before = ledger.head()
    with pytest.raises(DuplicateEventId) as e:
        ledger.append_many([note(1, id="q"), note(2), note(3, id="q")], signer=keys.recorder)
    assert e.value.message == "event 3: id 'q' repeats event 1 of this batch"
    assert ledger.head() == before


# --- guarantee 6: batches are atomic ---------------------------------------------------------


def test_append_many_writes_all_in_order(ledger: Ledger, keys: LedgerKeys) -> None:
    events = ledger.append_many([note(i) for i in range(300)], signer=keys.recorder)
    assert [e.seq for e in events] == list(range(3, 303))
    assert verify_ledger(ledger).ok


def test_bad_draft_in_the_middle_writes_nothing(ledger: Ledger, keys: LedgerKeys) -> None:
    before = ledger.head()
    drafts = [note(0), note(1), Draft("tool.called", {"tool": "t"}, agent="a", run="r"), note(3)]
    with pytest.raises(EventValidationError) as e:
        ledger.append_many(drafts, signer=keys.recorder)
    assert e.value.message == (
        "event 3: payload.args_digest: missing required field; "
        "payload.side_effect: missing required field"
    )
    assert ledger.head() == before


def test_unauthorized_draft_in_the_middle_writes_nothing(ledger: Ledger, keys: LedgerKeys) -> None:
    before = ledger.head()
    drafts = [*run_drafts("a", "r")[:3], agent_registration("a"), *(note(i) for i in range(20))]
    with pytest.raises(UnauthorizedWrite) as e:
        ledger.append_many(drafts, signer=keys.recorder)
    assert e.value.message == "event 4: a recorder key may not sign agent.registered (key recorder)"
    assert ledger.head() == before
    # The batch would have completed the first stored Merkle node (16 leaves): none is there.
    assert ledger.conn.execute("SELECT COUNT(*) FROM merkle_nodes").fetchone()[0] == 0
    ledger.append_many([d for d in drafts if d.type != "agent.registered"], signer=keys.recorder)
    assert ledger.conn.execute("SELECT COUNT(*) FROM merkle_nodes").fetchone()[0] == 1


def test_duplicate_id_late_in_a_batch_writes_nothing(ledger: Ledger, keys: LedgerKeys) -> None:
    ledger.append(note(0, id="taken"), signer=keys.recorder)
    before = ledger.head()
    with pytest.raises(
        DuplicateEventId, match=r"^event 5: id 'taken' is already in the log at seq 3$"
    ):
        ledger.append_many(
            [note(i) for i in range(4)] + [note(4, id="taken")], signer=keys.recorder
        )
    assert ledger.head() == before


def test_oversized_payload_is_refused(ledger: Ledger, keys: LedgerKeys) -> None:
    before = ledger.head()
    # 40,000 two-byte characters: under the limit in characters, over it in UTF-8 bytes.
    big = {"text": "é" * 40_000}
    with pytest.raises(EventValidationError) as e:
        ledger.append(Draft("x.note", big), signer=keys.recorder)
    assert e.value.message == (
        f"event: payload is 80011 bytes, over the limit of {MAX_PAYLOAD_BYTES} bytes "
        "(store a digest of large content instead)"
    )
    assert ledger.head() == before


def test_payload_at_its_limit_is_refused_by_the_body_limit(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    """The event body limit (48 KiB, for tlog-tiles and tlog-proof lines) is the tighter one."""
    filler = "a" * (MAX_PAYLOAD_BYTES - len('{"t":""}'))
    with pytest.raises(EventValidationError, match=r"^event: event body is \d+ bytes, over"):
        ledger.append(Draft("x.note", {"t": filler}), signer=keys.recorder)
    assert ledger.size == 2


# --- guarantee 3 at append: who may sign what (SPEC §2.5) --------------------------------------


def test_recorder_cannot_register_keys(ledger: Ledger, keys: LedgerKeys, keyring: KeyRing) -> None:
    before = ledger.head()
    draft = Draft("key.registered", root_key_payload(keyring.create("k"), "recorder"))
    with pytest.raises(UnauthorizedWrite) as e:
        ledger.append(draft, signer=keys.recorder)
    assert e.value.message == "event: a recorder key may not sign key.registered (key recorder)"
    assert ledger.head() == before


def test_governor_cannot_sign_tool_calls(ledger: Ledger, keys: LedgerKeys) -> None:
    before = ledger.head()
    draft = run_drafts("a", "r")[3]
    assert draft.type == "tool.called"
    with pytest.raises(UnauthorizedWrite) as e:
        ledger.append(draft, signer=keys.root)
    assert e.value.message == "event: a governor key may not sign tool.called (key root)"
    assert ledger.head() == before


def test_agent_key_signs_only_for_its_agent(
    ledger: Ledger, keys: LedgerKeys, keyring: KeyRing
) -> None:
    agent_key = keyring.create("agent-a")
    ledger.append(
        Draft("key.registered", root_key_payload(agent_key, "agent", "A")), signer=keys.root
    )
    ok = ledger.append(run_drafts("A", "r1")[3], signer=agent_key)
    assert ok.key == agent_key.key_id
    before = ledger.head()
    with pytest.raises(UnauthorizedWrite) as e:
        ledger.append(run_drafts("B", "r2")[3], signer=agent_key)
    assert e.value.message == (
        "event: an agent key bound to 'A' may not sign tool.called for agent 'B' (key agent-a)"
    )
    with pytest.raises(UnauthorizedWrite, match=r"may not sign feedback\.quality"):
        ledger.append(
            Draft("feedback.quality", {"score_bp": 5, "by": "u"}, agent="A"), signer=agent_key
        )
    assert ledger.head() == before


def test_unregistered_key_is_refused(ledger: Ledger, keyring: KeyRing) -> None:
    stranger = keyring.create("stranger")
    with pytest.raises(UnauthorizedWrite) as e:
        ledger.append(note(1), signer=stranger)
    assert e.value.message == (
        f"event: key stranger ({stranger.key_id}) is not registered in this ledger"
    )


def test_revoked_key_is_refused(ledger: Ledger, keys: LedgerKeys) -> None:
    ledger.append(note(1), signer=keys.recorder)
    revoked = ledger.append(
        Draft("key.revoked", {"key_id": keys.recorder.key_id, "reason": "lost laptop"}),
        signer=keys.root,
    )
    before = ledger.head()
    with pytest.raises(UnauthorizedWrite) as e:
        ledger.append(note(2), signer=keys.recorder)
    assert e.value.message == (
        f"event: key recorder ({keys.recorder.key_id}) was revoked at seq {revoked.seq}"
    )
    assert ledger.head() == before
    assert verify_ledger(ledger).ok  # old events stay valid after the revocation


def test_key_registered_twice_is_refused(ledger: Ledger, keys: LedgerKeys) -> None:
    with pytest.raises(UnauthorizedWrite) as e:
        ledger.append(
            Draft("key.registered", root_key_payload(keys.recorder, "recorder")), signer=keys.root
        )
    assert e.value.message == f"event: key {keys.recorder.key_id} is already registered"


def test_key_id_must_match_the_public_key(
    ledger: Ledger, keys: LedgerKeys, keyring: KeyRing
) -> None:
    k = keyring.create("k")
    payload = {**root_key_payload(k, "recorder"), "key_id": "0" * 32}
    with pytest.raises(EventValidationError) as e:
        ledger.append(Draft("key.registered", payload), signer=keys.root)
    assert e.value.message == (
        f"event: payload.key_id: {'0' * 32} does not match the public key (expected {k.key_id})"
    )


def test_last_governor_cannot_be_revoked(ledger: Ledger, keys: LedgerKeys) -> None:
    with pytest.raises(UnauthorizedWrite) as e:
        ledger.append(
            Draft("key.revoked", {"key_id": keys.root.key_id, "reason": "r"}), signer=keys.root
        )
    assert e.value.message == (
        "event: key root is the last governor key; register another governor before revoking it"
    )


def test_ledger_created_only_once(ledger: Ledger, keys: LedgerKeys) -> None:
    draft = Draft(
        "ledger.created", {"origin": ORIGIN, "key": root_key_payload(keys.root, "governor")}
    )
    with pytest.raises(
        UnauthorizedWrite, match=r"^event: ledger.created can only be the first event$"
    ):
        ledger.append(draft, signer=keys.root)


# --- opening, schema, environment errors (exit 3) ----------------------------------------------


def test_schema_version_is_recorded(ledger: Ledger) -> None:
    row = ledger.conn.execute(
        "SELECT value FROM govledger_meta WHERE key = 'schema_version'"
    ).fetchone()
    assert int(row[0]) == SCHEMA_VERSION


def test_newer_schema_version_is_refused(ledger: Ledger) -> None:
    ledger.conn.execute(
        "UPDATE govledger_meta SET value = ? WHERE key = 'schema_version'",
        (str(SCHEMA_VERSION + 1),),
    )
    with pytest.raises(NotALedger) as e:
        Ledger.open(ledger.path)
    assert e.value.message == (
        f"{ledger.path}: schema version {SCHEMA_VERSION + 1} is newer than this govledger "
        f"({SCHEMA_VERSION})"
    )
    assert e.value.exit_code == 3


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_ledger_is_migrated_on_open(
    ledger: Ledger, keys: LedgerKeys, version: int
) -> None:
    """Version 1 kept every Merkle node of level >= 1 keyed by ``(level, idx)``, version 2 the
    same nodes keyed by ``(closes, level)``, version 3 those of level >= 4 only; opening any of
    them keeps the nodes of level >= 4 (the lower ones are recomputed from the event hashes),
    proofs do not change, and the database refuses a row that does not extend the head (the
    trigger of version 4)."""
    ledger.append_many([note(i) for i in range(37)], signer=keys.recorder)
    size = ledger.size
    proofs = [ledger.inclusion_proof(i, size) for i in range(size)]
    consistency = [ledger.consistency_proof(m, size) for m in range(1, size)]
    leaves = [bytes.fromhex(e.hash) for e in ledger.iter_events()]
    every, _ = merkle.extend(0, leaves, {})
    assert len(every) == size - bin(size).count("1")  # every complete subtree of level >= 1
    conn = ledger.conn
    conn.execute("BEGIN")
    conn.execute("DROP TRIGGER events_extend_head")
    if version < 3:
        conn.execute("DROP TABLE merkle_nodes")
    if version == 1:
        conn.execute(
            "CREATE TABLE merkle_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, "
            "hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID"
        )
        conn.executemany("INSERT INTO merkle_nodes VALUES (?, ?, ?)", every)
    elif version == 2:
        conn.execute(
            "CREATE TABLE merkle_nodes (closes INTEGER NOT NULL, level INTEGER NOT NULL, "
            "hash BLOB NOT NULL, PRIMARY KEY (closes, level)) WITHOUT ROWID"
        )
        conn.executemany(
            "INSERT INTO merkle_nodes VALUES (?, ?, ?)",
            [(*merkle.stored_key(lv, i), h) for lv, i, h in every],
        )
    conn.execute(
        "UPDATE govledger_meta SET value = ? WHERE key = 'schema_version'", (str(version),)
    )
    conn.execute("COMMIT")
    ledger.close()
    with Ledger.open(ledger.path) as reopened:
        row = reopened.conn.execute(
            "SELECT value FROM govledger_meta WHERE key = 'schema_version'"
        ).fetchone()
        assert row[0] == str(SCHEMA_VERSION) == "4"
        kept = reopened.conn.execute("SELECT closes, level, hash FROM merkle_nodes").fetchall()
        assert sorted(kept) == sorted(merkle.stored_rows(every))
        assert {lv for _, lv, _ in kept} == {4, 5}
        assert [reopened.inclusion_proof(i, size) for i in range(size)] == proofs
        assert [reopened.consistency_proof(m, size) for m in range(1, size)] == consistency
        assert verify_ledger(reopened).ok
        reopened.append(note(99), signer=keys.recorder)
        assert verify_ledger(reopened).ok
        with pytest.raises(sqlite3.IntegrityError, match="must extend the head"):
            reopened.conn.execute(
                "INSERT INTO events SELECT seq + 1, 'fork', ts, type, agent, run, actor, payload,"
                " prev, key, hash, sig FROM events WHERE seq = ?",
                (size + 1,),
            )


def test_reopen_sees_the_same_log(ledger: Ledger, keys: LedgerKeys) -> None:
    populate(ledger, keys, runs=1)
    head = ledger.head()
    ledger.close()
    assert snapshot(ledger.path) == head


def test_missing_file_is_ledger_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(LedgerMissing) as e:
        Ledger.open(path)
    assert e.value.message == f"no ledger at {path}: create one with `govledger init --origin NAME`"
    assert e.value.exit_code == 3
    assert not path.exists()


def test_garbage_file_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"hello world, not sqlite " * 100)
    with pytest.raises(NotALedger) as e:
        Ledger.open(path)
    assert e.value.message == f"{path}: not a govledger database (file is not a database)"


def test_other_sqlite_database_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(NotALedger) as e:
        Ledger.open(path)
    assert e.value.message == f"{path}: not a govledger ledger (no govledger schema)"


def test_create_refuses_an_existing_ledger(ledger: Ledger, keys: LedgerKeys) -> None:
    before = ledger.head()
    with pytest.raises(AlreadyInitialized) as e:
        Ledger.create(ledger.path, origin="other", root=keys.root)
    assert (
        e.value.message
        == f"{ledger.path} already holds a ledger; refusing to overwrite it (choose another --db)"
    )
    assert e.value.exit_code == 2
    assert ledger.head() == before


def test_create_refuses_a_foreign_file(tmp_path: Path, keys: LedgerKeys) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"precious data" * 100)
    with pytest.raises(NotALedger) as e:
        Ledger.create(path, origin="o", root=keys.root)
    assert e.value.message == f"{path} exists and is not a govledger ledger; choose another path"
    assert path.read_bytes() == b"precious data" * 100


LOCKED = "database is locked by another writer (waited past the busy timeout)"


def test_locked_by_another_connection(ledger: Ledger, keys: LedgerKeys) -> None:
    holder = sqlite3.connect(ledger.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        other = Ledger.open(ledger.path, busy_timeout_ms=100)
        with pytest.raises(DatabaseLocked) as e:
            other.append(note(1), signer=keys.recorder)
        assert e.value.message == f"{ledger.path}: {LOCKED}"
        assert e.value.exit_code == 3
        other.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert ledger.size == 2
    assert ledger.append(note(1), signer=keys.recorder).seq == 3


def test_locked_by_another_process(
    ledger: Ledger, keys: LedgerKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = textwrap.dedent(
        """
        import sqlite3, sys, time
        c = sqlite3.connect(sys.argv[1], isolation_level=None)
        c.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        sys.stdin.readline()
        c.execute("ROLLBACK")
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, ledger.path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        monkeypatch.setenv("GOVLEDGER_BUSY_TIMEOUT_MS", "150")
        other = Ledger.open(ledger.path)
        with pytest.raises(DatabaseLocked, match=LOCKED.replace("(", r"\(").replace(")", r"\)")):
            other.append(note(1), signer=keys.recorder)
        other.close()
    finally:
        proc.communicate("done\n", timeout=10)
    assert ledger.size == 2


def test_two_connections_taking_turns_keep_one_chain(ledger: Ledger, keys: LedgerKeys) -> None:
    # Each connection keeps the log's tip between its appends; a commit by the other one must
    # make it read the tip again, or the chain would fork.
    other = Ledger.open(ledger.path)
    try:
        for i in range(6):
            writer = ledger if i % 2 == 0 else other
            writer.append(Draft("x.note", {"i": i}), signer=keys.recorder)
            writer.append_many(
                [Draft("x.note", {"i": i, "j": j}) for j in range(3)], signer=keys.recorder
            )
    finally:
        other.close()
    assert verify_ledger(ledger).ok


def test_a_failed_append_leaves_the_kept_tip_unchanged(ledger: Ledger, keys: LedgerKeys) -> None:
    ledger.append(Draft("x.note", {"i": 1}), signer=keys.recorder)
    # Events appended inside a transaction that is then rolled back: the next append must
    # chain from the committed head, not from the abandoned events.
    with pytest.raises(RuntimeError), ledger.write() as tx:
        tx.append([prepare(Draft("x.note", {"i": 2}))], signer=keys.recorder)
        raise RuntimeError("abandon the transaction")
    bad = [Draft("x.note", {"i": 3}), Draft("key.revoked", {"key_id": "f" * 32, "reason": "test"})]
    with pytest.raises(UnauthorizedWrite):
        ledger.append_many(bad, signer=keys.recorder)
    ledger.append(Draft("x.note", {"i": 4}), signer=keys.recorder)
    assert ledger.size == 4
    assert verify_ledger(ledger).ok


def test_generated_ids_are_uuidv7(ledger: Ledger, keys: LedgerKeys) -> None:
    import uuid

    events = ledger.append_many(
        [Draft("x.note", {"i": i}) for i in range(300)], signer=keys.recorder
    )
    ids = [uuid.UUID(e.id) for e in events]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert [str(u) for u in ids] == [e.id for e in events]
    assert len(set(ids)) == 300
    # One clock reading per batch: the 48-bit millisecond prefix is shared.
    assert len({u.int >> 80 for u in ids}) == 1
    # 300 events: signed by the worker processes, but for the last chunk signed here.
    assert verify_ledger(ledger).ok
