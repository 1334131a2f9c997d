"""Issue 5 end to end, as an auditor would: checkpoints and remembered state against truncation,
rewriting and forks (SPEC §1.4, §4, §5 ``verify``).

Every attack is made on a copy of the database file with plain ``sqlite3``, outside govledger:
the triggers are dropped, rows deleted or rewritten, and the stored Merkle tree fixed up so the
copy is internally consistent. Only what was kept outside the file (a checkpoint, or the
remembered state of an earlier verify) can tell.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.cli import main
from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.crypto.signing import EVENT_SIGNING_PREFIX, b64encode, event_hash
from ledger.errors import StoreError
from ledger.event.body import body_bytes
from ledger.event.canonical import canonical
from ledger.store.sqlite import Draft, Ledger
from ledger.tlog import merkle
from ledger.tlog.proofs import sign_current_checkpoint
from ledger.verify.consistency import state_path
from ledger.verify.verifier import verify_ledger
from tests.conftest import ORIGIN, Cli, LedgerKeys, approval, populate, run_drafts

GOVLEDGER = str(Path(sys.executable).parent / "govledger")


# --- helpers ---------------------------------------------------------------------------------


def cli(db: Path, keys_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["--db", str(db), "--keys", str(keys_dir), *args], catch_exceptions=False
    )


def verify_json(db: Path, keys_dir: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli(db, keys_dir, "verify", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def kinds(report: dict[str, Any]) -> list[tuple[int, str]]:
    return [(p["seq"], p["kind"]) for p in report["problems"]]


def copy_db(src: Path, dst: Path) -> Path:
    """A consistent copy of a live WAL database (the backup API includes the WAL's pages)."""
    with closing(sqlite3.connect(src)) as s, closing(sqlite3.connect(dst)) as d:
        s.backup(d)
    return dst


def add_run(ledger: Ledger, keys: LedgerKeys, run: str) -> None:
    """11 more events: a run approved by the governor, the rest by the recorder."""
    drafts = run_drafts("planner-1", run)
    ledger.append_many(drafts[:2], signer=keys.recorder)
    ledger.append(approval("planner-1", run), signer=keys.root)
    ledger.append_many(drafts[2:], signer=keys.recorder)


def truncate(db: Path, keep: int) -> None:
    """Cut the log back to ``keep`` events, as someone with write access to the file would."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE seq > ?", (keep,))
        conn.execute("DELETE FROM merkle_nodes WHERE closes > ?", (keep,))


def _no_node(level: int, index: int) -> bytes:
    raise AssertionError(f"node ({level}, {index}) asked for while rebuilding from size 0")


def rewrite(db: Path, seq: int, payload: dict[str, Any], signers: list[Signer]) -> None:
    """A perfect rewrite by a key holder: new payload at ``seq``, every later event re-chained
    and re-signed with its own key, the stored Merkle tree rebuilt."""
    by_id = {s.key_id: s for s in signers}
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("BEGIN")
        rows = conn.execute(
            "SELECT seq, id, ts, type, agent, run, actor, payload, prev, key FROM events "
            "WHERE seq >= ? ORDER BY seq",
            (seq,),
        ).fetchall()
        prev = rows[0][8]
        for s, id_, ts, type_, agent, run, actor, text, _, key in rows:
            if s == seq:
                text = canonical(payload).decode("utf-8")
            body = body_bytes(
                seq=s,
                id=id_,
                ts=ts,
                type=type_,
                agent=agent,
                run=run,
                actor=actor,
                payload=text,
                prev=prev,
                key=key,
            )
            h = event_hash(body)
            # Plain Ed25519 over the event domain (SPEC §2.1), as any key holder can.
            sig = b64encode(by_id[key].private_key.sign(EVENT_SIGNING_PREFIX + h))
            conn.execute(
                "UPDATE events SET payload = ?, prev = ?, hash = ?, sig = ? WHERE seq = ?",
                (text, prev, h.hex(), sig, s),
            )
            prev = h.hex()
        leaves = [bytes.fromhex(h) for (h,) in conn.execute("SELECT hash FROM events ORDER BY seq")]
        conn.execute("DELETE FROM merkle_nodes")
        conn.executemany(
            "INSERT INTO merkle_nodes (closes, level, hash) VALUES (?, ?, ?)",
            merkle.stored_rows(merkle.nodes_for_append(0, leaves, _no_node)),
        )
        conn.execute("COMMIT")


def approved_seq(db: Path, run: str) -> tuple[int, dict[str, Any]]:
    with closing(sqlite3.connect(db)) as conn:
        seq, text = conn.execute(
            "SELECT seq, payload FROM events WHERE type = 'run.approved' AND run = ?", (run,)
        ).fetchone()
    return int(seq), json.loads(text)


@pytest.fixture
def audited(ledger: Ledger, keys: LedgerKeys, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(db, keys dir, checkpoint file): a checkpoint saved at 14 events, then 11 more (25)."""
    populate(ledger, keys, runs=1)
    db, keys_dir, cp = tmp_path / "l.db", tmp_path / "keys", tmp_path / "cp"
    result = cli(db, keys_dir, "checkpoint", "--signer", "root", "-o", str(cp))
    assert result.exit_code == 0, result.stderr
    assert cp.read_text(encoding="utf-8").startswith(f"{ORIGIN}\n14\n")
    add_run(ledger, keys, "run-1")
    assert ledger.size == 25
    return db, keys_dir, cp


# --- checkpoints ----------------------------------------------------------------------------


def test_log_grown_since_checkpoint_verifies(audited: tuple[Path, Path, Path]) -> None:
    db, keys_dir, cp = audited
    code, report = verify_json(db, keys_dir, "--checkpoint", str(cp), "--no-state")
    assert (code, report["ok"], report["problems"]) == (0, True, [])
    assert report["checkpoint"]["size"] == 14
    assert report["head"]["seq"] == 25


def test_truncated_below_checkpoint_is_truncated_at_size_plus_one(
    audited: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    db, keys_dir, cp = audited
    copy = copy_db(db, tmp_path / "cut.db")
    truncate(copy, 10)
    # The cut copy is internally consistent: only the checkpoint tells.
    assert verify_json(copy, keys_dir, "--no-state")[0] == 0
    code, report = verify_json(copy, keys_dir, "--checkpoint", str(cp), "--no-state")
    assert code == 1
    assert report["problems"] == [
        {"seq": 11, "kind": "truncated", "detail": "log has 10 events, checkpoint has 14"}
    ]


def test_truncated_log_fails_through_the_installed_command(
    audited: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    db, keys_dir, cp = audited
    copy = copy_db(db, tmp_path / "cut.db")
    truncate(copy, 13)
    done = subprocess.run(
        [
            GOVLEDGER,
            "--db",
            str(copy),
            "--keys",
            str(keys_dir),
            "verify",
            "--checkpoint",
            str(cp),
            "--no-state",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert (done.stdout, done.stderr) == (
        "",
        "error: seq 14: truncated: log has 13 events, checkpoint has 14\n",
    )


def test_truncation_after_the_checkpoint_is_invisible_to_it(
    audited: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """SPEC §1.4: a checkpoint only protects what it covers (remembered state covers more)."""
    db, keys_dir, cp = audited
    copy = copy_db(db, tmp_path / "cut.db")
    truncate(copy, 20)
    assert verify_json(copy, keys_dir, "--checkpoint", str(cp), "--no-state")[0] == 0


def test_rewrite_by_a_key_holder_passes_internally_but_not_the_checkpoint(
    audited: tuple[Path, Path, Path], keys: LedgerKeys, tmp_path: Path
) -> None:
    db, keys_dir, cp = audited
    copy = copy_db(db, tmp_path / "rewritten.db")
    seq, payload = approved_seq(copy, "run-0")
    assert seq <= 14  # inside the checkpoint
    rewrite(copy, seq, {**payload, "approver": "mallory"}, [keys.root, keys.recorder])
    code, internal = verify_json(copy, keys_dir, "--no-state")
    assert (code, internal["problems"], internal["events"]) == (0, [], 25)
    _, original = verify_json(db, keys_dir, "--no-state")
    assert internal["root"] != original["root"]
    code, report = verify_json(copy, keys_dir, "--checkpoint", str(cp), "--no-state")
    assert code == 1
    assert kinds(report) == [(14, "checkpoint_mismatch")]
    assert "(first 14 events)" in report["problems"][0]["detail"]


def test_rewrite_after_the_checkpoint_is_invisible_to_it(
    audited: tuple[Path, Path, Path], keys: LedgerKeys, tmp_path: Path
) -> None:
    db, keys_dir, cp = audited
    copy = copy_db(db, tmp_path / "rewritten.db")
    seq, payload = approved_seq(copy, "run-1")
    assert seq > 14
    rewrite(copy, seq, {**payload, "approver": "mallory"}, [keys.root, keys.recorder])
    assert verify_json(copy, keys_dir, "--checkpoint", str(cp), "--no-state")[0] == 0


def test_forks_against_checkpoints_of_the_other_branch(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path
) -> None:
    """Branch A and branch B share 14 events. A grows to 25 (checkpoints at 14, 17, 22, 25);
    B gets 8 other events from another process (22). Each branch against the other's
    checkpoints: the fork is invisible to a checkpoint at or before the fork point, shorter
    than the checkpoint is ``truncated`` (at size + 1), otherwise ``checkpoint_mismatch``
    at the checkpoint's size."""
    populate(ledger, keys, runs=1)
    db, keys_dir = tmp_path / "l.db", tmp_path / "keys"
    fork = copy_db(db, tmp_path / "fork.db")
    a_cps = {14: sign_current_checkpoint(ledger, keys.root)}
    drafts = run_drafts("planner-1", "run-a")
    for batch, signer in (
        (drafts[:2], keys.recorder),
        ([approval("planner-1", "run-a")], keys.root),
        (drafts[2:5], keys.recorder),
        (drafts[5:], keys.recorder),
    ):
        ledger.append_many(batch, signer=signer)
        a_cps[ledger.size] = sign_current_checkpoint(ledger, keys.root)
    assert sorted(a_cps) == [14, 16, 17, 20, 25]
    lines = "".join(json.dumps({"type": "x.note", "payload": {"n": i}}) + "\n" for i in range(8))
    (tmp_path / "b.jsonl").write_text(lines, encoding="utf-8")
    done = subprocess.run(
        [
            GOVLEDGER,
            "--db",
            str(fork),
            "--keys",
            str(keys_dir),
            "import",
            str(tmp_path / "b.jsonl"),
            "--signer",
            "recorder",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with Ledger.open(fork) as b:
        assert b.size == 22
        b_cp = sign_current_checkpoint(b, keys.root)

    def against(db_path: Path, note: str) -> tuple[int, list[tuple[int, str]]]:
        cp = tmp_path / "cp"
        cp.write_text(note, encoding="utf-8")
        code, report = verify_json(db_path, keys_dir, "--checkpoint", str(cp), "--no-state")
        return code, kinds(report)

    found = {f"B vs A@{n}": against(fork, note) for n, note in sorted(a_cps.items())}
    found["A vs B@22"] = against(db, b_cp)
    assert found == {
        "B vs A@14": (0, []),
        "B vs A@16": (1, [(16, "checkpoint_mismatch")]),
        "B vs A@17": (1, [(17, "checkpoint_mismatch")]),
        "B vs A@20": (1, [(20, "checkpoint_mismatch")]),
        "B vs A@25": (1, [(23, "truncated")]),
        "A vs B@22": (1, [(22, "checkpoint_mismatch")]),
    }


def test_fork_at_equal_size_is_checkpoint_mismatch(
    audited: tuple[Path, Path, Path], keys: LedgerKeys, tmp_path: Path
) -> None:
    db, keys_dir, _ = audited
    copy = copy_db(db, tmp_path / "b.db")
    truncate(copy, 24)
    with Ledger.open(copy) as b:
        b.append(Draft("x.note", {"other": True}), signer=keys.recorder)
        assert b.size == 25
    cp = tmp_path / "cp25"
    assert cli(db, keys_dir, "checkpoint", "--signer", "root", "-o", str(cp)).exit_code == 0
    code, report = verify_json(copy, keys_dir, "--checkpoint", str(cp), "--no-state")
    assert code == 1
    assert kinds(report) == [(25, "checkpoint_mismatch")]
    assert "(same size)" in report["problems"][0]["detail"]


def test_log_replaced_under_a_new_root_key_fails_the_checkpoint(
    audited: tuple[Path, Path, Path], keyring: KeyRing, tmp_path: Path
) -> None:
    """Someone without the root key rebuilds the whole log under the same origin with a key of
    their own: internally fine, but the kept checkpoint does not verify with its keys."""
    _, keys_dir, cp = audited
    mallory = keyring.create("mallory")
    fake = tmp_path / "fake.db"
    with Ledger.create(fake, origin=ORIGIN, root=mallory) as lg:
        lg.append_many([Draft("x.note", {"n": i}) for i in range(24)], signer=mallory)
    assert verify_json(fake, keys_dir, "--no-state")[0] == 0
    code, report = verify_json(fake, keys_dir, "--checkpoint", str(cp), "--no-state")
    assert code == 1
    assert kinds(report) == [(25, "checkpoint_mismatch")]
    assert report["problems"][0]["detail"].startswith(
        "checkpoint does not verify with this log's governor keys: "
    )


# --- remembered state -----------------------------------------------------------------------


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    monkeypatch.setenv("GOVLEDGER_STATE", str(directory))
    return directory


def test_verify_remembers_size_and_root_per_origin(
    audited: tuple[Path, Path, Path], state: Path
) -> None:
    db, keys_dir, _ = audited
    code, report = verify_json(db, keys_dir)
    assert code == 0
    path = state_path(ORIGIN)
    assert path.parent == state
    saved = json.loads(path.read_text(encoding="utf-8"))
    [log] = saved["logs"]  # one log of this origin, known by the hash of its seq 1
    assert (saved["origin"], log["size"], log["root"]) == (ORIGIN, 25, report["root"])


def test_remembered_state_detects_truncation_without_checkpoint(
    audited: tuple[Path, Path, Path], state: Path, tmp_path: Path
) -> None:
    db, keys_dir, _ = audited
    assert verify_json(db, keys_dir)[0] == 0
    copy = copy_db(db, tmp_path / "cut.db")
    truncate(copy, 20)
    code, report = verify_json(copy, keys_dir)
    assert code == 1
    assert kinds(report) == [(21, "truncated")]
    assert report["problems"][0]["detail"].startswith("log has 20 events, the last verify (")
    # A failed verify does not lower what is remembered: it fails again.
    assert kinds(verify_json(copy, keys_dir)[1]) == [(21, "truncated")]
    code, report = verify_json(copy, keys_dir, "--no-state")
    assert (code, report["problems"]) == (0, [])
    assert json.loads(state_path(ORIGIN).read_text(encoding="utf-8"))["logs"][0]["size"] == 25


def test_remembered_state_detects_rewrite(
    audited: tuple[Path, Path, Path], keys: LedgerKeys, state: Path, tmp_path: Path
) -> None:
    db, keys_dir, _ = audited
    assert verify_json(db, keys_dir)[0] == 0
    copy = copy_db(db, tmp_path / "rewritten.db")
    seq, payload = approved_seq(copy, "run-1")
    rewrite(copy, seq, {**payload, "approver": "mallory"}, [keys.root, keys.recorder])
    code, report = verify_json(copy, keys_dir)
    assert code == 1
    assert kinds(report) == [(25, "checkpoint_mismatch")]


def test_remembered_state_follows_growth(
    audited: tuple[Path, Path, Path], ledger: Ledger, keys: LedgerKeys, state: Path
) -> None:
    db, keys_dir, _ = audited
    assert verify_json(db, keys_dir)[0] == 0
    ledger.append(Draft("x.note", {"n": 1}), signer=keys.recorder)
    assert verify_json(db, keys_dir)[0] == 0
    assert json.loads(state_path(ORIGIN).read_text(encoding="utf-8"))["logs"][0]["size"] == 26


def test_remembered_state_is_per_origin(
    audited: tuple[Path, Path, Path], keys: LedgerKeys, state: Path, tmp_path: Path
) -> None:
    db, keys_dir, _ = audited
    assert verify_json(db, keys_dir)[0] == 0
    other = tmp_path / "other.db"
    Ledger.create(other, origin="other.example/log", root=keys.root).close()
    code, report = verify_json(other, keys_dir)  # 1 event, while test.example/log had 25
    assert (code, report["problems"]) == (0, [])
    assert sorted(p.name for p in state.iterdir()) == sorted(
        [state_path(ORIGIN).name, state_path("other.example/log").name]
    )
    assert verify_json(db, keys_dir)[0] == 0


# --- the root and the stored tree -----------------------------------------------------------


def test_verify_reports_the_rfc9162_root_of_all_event_hashes(
    audited: tuple[Path, Path, Path], ledger: Ledger
) -> None:
    db, keys_dir, _ = audited
    code, report = verify_json(db, keys_dir, "--no-state")
    leaves = [bytes.fromhex(e.hash) for e in ledger.iter_events()]
    assert code == 0
    assert report["root"] == merkle.root(leaves).hex() == ledger.root_at(25).hex()


def test_batched_proofs_from_the_store_equal_the_in_memory_tree(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    """Every root, inclusion and consistency proof of a 37-event log (appended one by one and
    in batches), read in one query each, equals the plain in-memory computation."""
    for n in (1, 2, 5, 1, 8, 3, 15):
        ledger.append_many([Draft("x.note", {"n": i}) for i in range(n)], signer=keys.recorder)
    leaves = [bytes.fromhex(e.hash) for e in ledger.iter_events()]
    assert len(leaves) == 37
    wrong: list[tuple[str, int, int]] = []
    for size in range(1, 38):
        tree = leaves[:size]
        if ledger.root_at(size) != merkle.root(tree):
            wrong.append(("root", 0, size))
        for i in range(size):
            if ledger.inclusion_proof(i, size) != merkle.inclusion_proof(tree, i):
                wrong.append(("inclusion", i, size))
        for old in range(1, size + 1):
            if ledger.consistency_proof(old, size) != merkle.consistency_proof(tree, old):
                wrong.append(("consistency", old, size))
    assert wrong == []
    assert ledger.root_at(0) == merkle.EMPTY_ROOT


def test_batched_read_names_a_missing_node(ledger: Ledger, keys: LedgerKeys) -> None:
    ledger.append_many([Draft("x.note", {"n": i}) for i in range(6)], signer=keys.recorder)
    with pytest.raises(StoreError) as e:
        ledger.get_nodes([(0, 7), (1, 0), (3, 0), (2, 2)])
    assert e.value.message == f"{ledger.path}: Merkle node (2, 2) is missing"


def test_a_node_over_a_malformed_leaf_hash_is_a_store_error(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    """Nodes below level 4 are recomputed from event hashes: a tampered hash that is not hex
    fails the read naming the leaf, it does not crash it."""
    ledger.append_many([Draft("x.note", {"n": i}) for i in range(6)], signer=keys.recorder)
    ledger.conn.execute("DROP TRIGGER events_no_update")
    ledger.conn.execute("UPDATE events SET hash = 'not hex' WHERE seq = 3")
    with pytest.raises(StoreError) as e:
        ledger.get_nodes([(1, 1)])
    assert e.value.message == f"{ledger.path}: Merkle node (0, 2) is malformed"


def test_tampered_merkle_node_is_detected_by_full_verify(
    audited: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Node (4, 0) is on the path of the root of 25 events: the streamed comparison reports it
    where it closes, and the root differs too."""
    node, expected = (4, 0), [(16, "hash_mismatch"), (25, "hash_mismatch")]
    db, keys_dir, _ = audited
    copy = copy_db(db, tmp_path / "tree.db")
    with closing(sqlite3.connect(copy, isolation_level=None)) as conn:
        changed = conn.execute(
            "UPDATE merkle_nodes SET hash = ? WHERE closes = ? AND level = ?",
            (bytes(32), *merkle.stored_key(*node)),
        ).rowcount
    assert changed == 1
    code, report = verify_json(copy, keys_dir, "--no-state")
    assert code == 1
    assert kinds(report) == expected
    assert report["problems"][0]["detail"].startswith(
        f"stored Merkle node ({node[0]}, {node[1]}) is 0000"
    )


def test_tampered_merkle_node_off_the_root_path_is_found_where_it_closes(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    """In a log of 40 events, node (4, 1) (leaves 16..31) is under the stored node (5, 0) the
    root is made of: only the streamed comparison of every stored node can see it changed."""
    ledger.append_many([Draft("x.note", {"i": i}) for i in range(38)], signer=keys.recorder)
    changed = ledger.conn.execute(
        "UPDATE merkle_nodes SET hash = ? WHERE closes = ? AND level = ?",
        (bytes(32), *merkle.stored_key(4, 1)),
    ).rowcount
    assert changed == 1
    report = verify_ledger(ledger)
    assert [(p.seq, p.kind) for p in report.problems] == [(32, "hash_mismatch")]
    assert report.problems[0].detail.startswith("stored Merkle node (4, 1) is 0000")


def test_deleted_merkle_node_is_an_integrity_failure(
    audited: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    db, keys_dir, _ = audited
    copy = copy_db(db, tmp_path / "tree.db")
    with closing(sqlite3.connect(copy, isolation_level=None)) as conn:
        deleted = conn.execute("DELETE FROM merkle_nodes WHERE closes = 16 AND level = 4")
        assert deleted.rowcount == 1  # node (4, 0)
    result = cli(copy, keys_dir, "verify", "--json", "--no-state")
    assert result.exit_code == 1
    assert kinds(json.loads(result.stdout)) == [(16, "hash_mismatch"), (25, "hash_mismatch")]


def test_another_log_under_a_remembered_origin_fails_until_its_new_root_is_pinned(
    ready: Cli, tmp_path: Path
) -> None:
    ready("append", "x.note", "--signer", "rec", "--payload", "{}")
    assert ready.json("verify")["ok"] is True  # remembers this log (3 events) of ORIGIN
    other = Cli(tmp_path / "other")
    (tmp_path / "other").mkdir()
    other("init", "--origin", ORIGIN)  # a new log: same origin, new root key, 1 event
    result = other("verify", "--json", ok=False)
    assert result.exit_code == 1
    assert [(p["seq"], p["kind"]) for p in json.loads(result.stdout)["problems"]] == [
        (1, "untrusted_root")
    ]
    new_root = other.ring().load("root").key_id
    assert other.json("verify", "--trust", new_root)["ok"] is True
    shutil.rmtree(tmp_path / "other")
    assert json.loads(ready("verify", "--json").stdout)["ok"] is True
