"""``verify --from K`` (SPEC §4, §5 ``verify``): it trusts only what an earlier full verify
established (the stored hash of K − 1 and the stored subtrees left of K), recomputes every root
it reports from the events it reads, and compares the stored tree right of K with them.

The attack: a log with a checkpoint saved; its events from seq 20 on replaced by as many other
events, validly signed and chained (written by govledger itself on a copy of the first 19), and
the stored Merkle nodes left as they were. Every ``--from`` must see it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.tlog import merkle
from ledger.tlog.stored_tree import RootAccumulator
from ledger.verify.consistency import state_path
from tests.conftest import ORIGIN, Cli

REWRITE = 20
"""The first seq of the rewritten tail."""


def notes(cli: Cli, count: int, tag: str) -> None:
    """Append ``count`` ``x.note`` events signed by ``rec`` in one import."""
    lines = "".join(
        json.dumps({"type": "x.note", "payload": {"text": f"{tag}-{i}"}}) + "\n"
        for i in range(count)
    )
    cli("import", "-", "--signer", "rec", input=lines)


def grown(cli: Cli, size: int, tag: str = "a") -> Cli:
    """``cli``'s ledger (``ready``: 2 events) grown to ``size`` events."""
    notes(cli, size - 2, tag)
    return cli


def event_hashes(db: Path) -> list[bytes]:
    with sqlite3.connect(db) as conn:
        return [bytes.fromhex(h) for (h,) in conn.execute("SELECT hash FROM events ORDER BY seq")]


def stored_nodes(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM merkle_nodes ORDER BY closes, level").fetchall()


def fork_of(cli: Cli, tmp_path: Path) -> Cli:
    """A copy of ``cli``'s ledger and keys, to grow apart from it."""
    fork = Cli(tmp_path / "fork")
    fork.tmp.mkdir()
    with sqlite3.connect(cli.db) as src, sqlite3.connect(fork.db) as dst:
        src.backup(dst)  # the WAL included
    shutil.copytree(cli.keys, fork.keys)
    return fork


def rewrite_tail(victim: Path, forged: Path) -> None:
    """Replace ``victim``'s events from ``REWRITE`` on with ``forged``'s, as someone with write
    access to the file would: triggers dropped and put back, ``merkle_nodes`` untouched."""
    conn = sqlite3.connect(victim, isolation_level=None)
    try:
        triggers = [
            sql
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
            )
        ]
        assert len(triggers) == 3
        conn.execute("ATTACH DATABASE ? AS forged", (str(forged),))
        conn.execute("BEGIN")
        for name in ("events_no_update", "events_no_delete", "events_extend_head"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DELETE FROM main.events WHERE seq >= ?", (REWRITE,))
        conn.execute(
            "INSERT INTO main.events SELECT * FROM forged.events WHERE seq >= ?", (REWRITE,)
        )
        for sql in triggers:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE forged")
    finally:
        conn.close()


def honest_and_forged(cli: Cli, tmp_path: Path, size: int) -> Cli:
    """Grow ``cli``'s log to ``size`` events, and a fork of it (returned) that shares its first
    ``REWRITE - 1`` events and differs in every later one."""
    grown(cli, REWRITE - 1)
    fork = fork_of(cli, tmp_path)
    notes(cli, size - REWRITE + 1, "honest")
    notes(fork, size - REWRITE + 1, "forged")
    return fork


def attack(victim: Cli, fork: Cli) -> None:
    before, nodes_before = event_hashes(victim.db), stored_nodes(victim.db)
    rewrite_tail(victim.db, fork.db)
    after = event_hashes(victim.db)
    assert len(after) == len(before) and after[: REWRITE - 1] == before[: REWRITE - 1]
    assert all(a != b for a, b in zip(after[REWRITE - 1 :], before[REWRITE - 1 :], strict=True))
    assert stored_nodes(victim.db) == nodes_before


@pytest.fixture(params=[64, 50, 37], ids=lambda n: f"size{n}")
def attacked(request: pytest.FixtureRequest, ready: Cli, tmp_path: Path) -> tuple[Cli, Path]:
    """A log of ``size`` events whose tail from ``REWRITE`` was rewritten after a checkpoint of
    the whole log was saved; the checkpoint's path."""
    fork = honest_and_forged(ready, tmp_path, request.param)
    checkpoint = tmp_path / "cp.txt"
    ready("checkpoint", "--signer", "root", "-o", str(checkpoint))
    attack(ready, fork)
    return ready, checkpoint


def verify_json(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli("verify", *args, "--json", ok=False)
    out: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == (0 if out["ok"] else 1)
    return out


def kinds(out: dict[str, Any]) -> set[str]:
    return {p["kind"] for p in out["problems"]}


def test_full_verify_sees_the_rewritten_tail(attacked: tuple[Cli, Path]) -> None:
    cli, checkpoint = attacked
    out = verify_json(cli, "--checkpoint", str(checkpoint), "--no-state")
    assert out["ok"] is False
    assert {"hash_mismatch", "checkpoint_mismatch"} <= kinds(out)


@pytest.mark.parametrize("k", [10, 19, 20, 21, 33, -3, 0], ids=lambda k: f"from{k}")
def test_verify_from_sees_the_rewritten_tail(attacked: tuple[Cli, Path], k: int) -> None:
    """K before, at and after the rewrite point (``k <= 0``: that many before the head)."""
    cli, checkpoint = attacked
    k = k if k > 0 else len(event_hashes(cli.db)) + k
    out = verify_json(cli, "--from", str(k), "--checkpoint", str(checkpoint), "--no-state")
    assert out["ok"] is False, out
    assert out["from"] == k
    assert "checkpoint_mismatch" in kinds(out)


def test_verify_from_at_the_rewrite_reports_the_root_of_the_events_it_read(
    attacked: tuple[Cli, Path],
) -> None:
    cli, checkpoint = attacked
    out = verify_json(cli, "--from", str(REWRITE), "--checkpoint", str(checkpoint), "--no-state")
    assert out["root"] == merkle.root(event_hashes(cli.db)).hex()
    assert out["root"] != out["checkpoint"]["root"]


def test_verify_from_compares_the_stored_tree_right_of_the_anchor(
    attacked: tuple[Cli, Path],
) -> None:
    cli, _ = attacked
    # The stored node over leaves 16..31 closes at 32, after the anchor: it is the honest one.
    out = verify_json(cli, "--from", str(REWRITE), "--no-state")
    assert out["ok"] is False
    mismatch = [p for p in out["problems"] if p["kind"] == "hash_mismatch"]
    assert mismatch and mismatch[0]["seq"] == 32
    assert mismatch[0]["detail"].startswith("stored Merkle node (4, 1) is ")


def test_verify_from_after_the_rewrite_sees_stored_nodes_that_disagree_with_the_anchor(
    attacked: tuple[Cli, Path],
) -> None:
    # The stored hash of seq 32 is the forged one, the stored node over leaves 0..31 the
    # honest one: they cannot both be what a full verify established.
    cli, _ = attacked
    out = verify_json(cli, "--from", "33", "--no-state")
    assert out["ok"] is False
    assert [p["seq"] for p in out["problems"] if p["kind"] == "hash_mismatch"][:1] == [32]


def test_verify_from_checks_the_remembered_state_with_recomputed_roots(
    ready: Cli, tmp_path: Path
) -> None:
    fork = honest_and_forged(ready, tmp_path, 50)
    assert ready.json("verify")["ok"] is True  # remembers size 50 and its root
    state = state_path(ORIGIN).read_text(encoding="utf-8")
    attack(ready, fork)
    for k in (REWRITE, REWRITE + 1, 40, 50):
        out = verify_json(ready, "--from", str(k))
        assert out["ok"] is False and "checkpoint_mismatch" in kinds(out), (k, out)
    assert state_path(ORIGIN).read_text(encoding="utf-8") == state


# --- an untampered log -------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 50, 37, 17, 16, 3])
def test_verify_from_on_an_honest_log_is_ok_with_the_events_root(ready: Cli, size: int) -> None:
    grown(ready, size)
    full = ready.json("verify", "--no-state")
    root = merkle.root(event_hashes(ready.db)).hex()
    assert full["root"] == root
    for k in sorted({2, size // 2, 16, 17, 18, 33, size - 1, size} & set(range(2, size + 1))):
        out = ready.json("verify", "--from", str(k), "--no-state")
        assert (out["ok"], out["from"], out["root"], out["head"]) == (True, k, root, full["head"])
        assert ready("verify", "--from", str(k), "--no-state").stdout.startswith(
            f"ok: seq {k}–{size}, head seq {size} "
        )


def test_verify_from_with_a_checkpoint_covering_the_anchor_is_ok(
    ready: Cli, tmp_path: Path
) -> None:
    grown(ready, 40)
    checkpoint = tmp_path / "cp.txt"
    ready("checkpoint", "--signer", "root", "-o", str(checkpoint))
    notes(ready, 10, "later")
    for k in (2, 20, 40, 41):
        out = ready.json("verify", "--from", str(k), "--checkpoint", str(checkpoint))
        assert out["ok"] is True and out["checkpoint"]["size"] == 40, (k, out)


def test_verify_from_past_the_checkpoint_is_refused(ready: Cli, tmp_path: Path) -> None:
    grown(ready, 40)
    checkpoint = tmp_path / "cp.txt"
    ready("checkpoint", "--signer", "root", "-o", str(checkpoint))
    notes(ready, 10, "later")
    result = ready("verify", "--from", "42", "--checkpoint", str(checkpoint), ok=False)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: --from 42: the checkpoint has size 40, before the anchor at seq 41: its root "
        "is not recomputed from the events read; use --from 41 or lower, or a full verify\n"
    )


def test_verify_from_checks_but_never_writes_the_remembered_state(ready: Cli) -> None:
    grown(ready, 30)
    assert ready.json("verify")["ok"] is True
    state = state_path(ORIGIN).read_text(encoding="utf-8")
    notes(ready, 5, "later")
    out = ready.json("verify", "--from", "10")  # 30 is at or after the anchor at 9: checked
    assert out["ok"] is True and "state" not in out
    out = ready.json("verify", "--from", "33")
    assert out["ok"] is True
    assert out["state"] == "remembered state of size 30 is before the anchor at seq 32: not checked"
    assert state_path(ORIGIN).read_text(encoding="utf-8") == state


def test_verify_from_on_a_tampered_stored_node_right_of_the_anchor_is_hash_mismatch(
    ready: Cli,
) -> None:
    grown(ready, 40)
    with sqlite3.connect(ready.db) as conn:
        conn.execute(
            "UPDATE merkle_nodes SET hash = ? WHERE closes = 32 AND level = 4", (b"\1" * 32,)
        )
    out = verify_json(ready, "--from", "20", "--no-state")
    assert out["ok"] is False
    assert (out["problems"][0]["seq"], out["problems"][0]["kind"]) == (32, "hash_mismatch")


def test_verify_from_without_the_stored_tree_left_of_the_anchor_fails_closed(
    ready: Cli,
) -> None:
    grown(ready, 40)
    with sqlite3.connect(ready.db) as conn:
        conn.execute("DELETE FROM merkle_nodes WHERE closes = 32 AND level = 5")
    result = ready("verify", "--from", "38", "--no-state", ok=False)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: --from 38: the stored tree left of seq 38 is unreadable ({ready.db}: Merkle "
        "node (5, 0) is missing), nothing to anchor on: run a full verify\n"
    )


def test_verify_from_after_a_missing_event_fails_closed(ready: Cli) -> None:
    grown(ready, 40)
    with sqlite3.connect(ready.db) as conn:
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE seq = 35")
    result = ready("verify", "--from", "38", "--no-state", ok=False)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: --from 38: seq 35 is missing from the log, nothing to anchor on (seq_gap): "
        "run a full verify\n"
    )


def test_verify_from_on_a_malformed_anchor_hash_fails_closed(ready: Cli) -> None:
    grown(ready, 40)
    with sqlite3.connect(ready.db) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET hash = 'xyz' WHERE seq = 36")
    result = ready("verify", "--from", "38", "--no-state", ok=False)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "error: --from 38: the stored hash of seq 36 is not lowercase hex of the right length, "
        "nothing to anchor on: run a full verify\n"
    )


def test_a_resumed_accumulator_gives_the_root_of_all_the_leaves() -> None:
    leaves = [bytes([i]) * 32 for i in range(70)]
    for size in range(len(leaves) + 1):
        for split in range(size + 1):
            frontier = [
                merkle.root(leaves[i << level : (i + 1) << level])
                for level, i in merkle.range_nodes(0, split)
            ]
            acc = RootAccumulator.resume(split, frontier)
            for leaf in leaves[split:size]:
                acc.add(leaf)
            assert (acc.size, acc.root()) == (size, merkle.root(leaves[:size])), (size, split)


def test_verify_from_one_says_so(ready: Cli) -> None:
    assert ready.json("verify", "--from", "1")["from"] == 1
