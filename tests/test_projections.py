"""Replay is a function of the log (SPEC §1.5): from scratch, in increments, from a prefix, at a
past seq, in another process — always the same read models."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.event.catalog import CATALOG
from ledger.event.envelope import UserPayload, format_ts, normalize_time, parse_time
from ledger.store.base import ReadModels
from ledger.store.sqlite_read_models import memory
from projections import default_projections
from projections.current import positions
from projections.driver import build_at, catch_up
from projections.reliability import fold as reliability
from projections.runs import fold as runs
from projections.runs.fold import _json_strings
from projections.testing import DIGEST, START, Events, contract, replay
from projections.tiers import fold as tiers
from tests.conftest import bump_version

AGENTS = ("a0", "a1", "a2")
RUNS = ("r0", "r1", "r2", "r3", "r4")
TOOLS = ("t0", "t1", "t2")
EFFECTS = ("read", "write", "network", "payment")


def _at(n: int) -> str:
    return (START + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_step(ev: Events, kind: int, agent: str, run: str, n: int) -> None:
    """One event of a generated workload: any type, in any order (illegal ones included)."""
    ar = {"agent": agent, "run": run}
    tool, effect = TOOLS[n % 3], EFFECTS[n % 4]
    k = kind % 19
    if k == 0:
        ev.add("agent.registered", agent=agent,
               **contract(tier=n % 5, threshold_bp=(n * 997) % 10001, version=str(n % 3)))  # fmt: skip
    elif k == 1:
        ev.add("run.submitted", **ar, objective="o", user="u", risk="low", auto_approve=n % 2 == 0)
    elif k == 2:
        step = {"tool": tool, "args_digest": DIGEST, "side_effect": effect, "reversible": True}
        ev.add("run.planned", **ar, steps=[step], risk="medium", required_tier=n % 5)
    elif k == 3:
        extra = {"expires_at": _at(n)} if n % 3 == 0 else {}
        ev.add("run.approved", **ar, approver="b", mode=("human", "auto", "council")[n % 3],
               plan_digest=DIGEST, **extra)  # fmt: skip
    elif k == 4:
        ev.add("run.rejected", **ar, approver="b", mode="human", plan_digest=DIGEST, reason="no")
    elif k == 5:
        extra = {"expires_at": _at(n)} if n % 2 == 0 else {}
        ev.add("capability.granted", **ar, tools=list(TOOLS[: 1 + n % 3]), capabilities=["c"],
               token_digest=DIGEST, **extra)  # fmt: skip
    elif k in (6, 7):
        ev.add("run.started", **ar) if k == 6 else ev.add(
            "tool.called", **ar, tool=tool, args_digest=DIGEST, side_effect=effect
        )
    elif k == 8:
        ev.add("tool.completed", **ar, tool=tool, status=("ok", "error")[n % 2], duration_ms=n)
    elif k == 9:
        ev.add("llm.usage", agent=agent, run=run if n % 2 else None, provider="p", model="m",
               tokens_in=n, tokens_out=2 * n, cache_read_tokens=n % 7, cache_write_tokens=1,
               cost_micro_usd=10 * n, wallclock_ms=n)  # fmt: skip
    elif k == 10:
        ev.add("decision.recorded", **ar, decision=("EXECUTE", "ESCALATE", "SKIP")[n % 3],
               confidence_bp=(n * 131) % 10001, rationale="r")  # fmt: skip
    elif k == 11:
        ev.add("guardrail.triggered", **ar, kind="tool_loop",
               severity=("info", "warning", "critical")[n % 3], detail="d")  # fmt: skip
    elif k == 12:
        ev.add("run.completed", **ar, steps_completed=n % 4)
    elif k == 13:
        ev.add("run.failed", **ar, failure_class=("tool_error", "llm_timeout")[n % 2], message="m")
    elif k == 14:
        ev.add("run.cancelled", **ar, reason="stop")
    elif k == 15:
        ev.add("feedback.quality", agent=agent, score_bp=n % 10001, by="u")
    elif k == 16:
        change = ("tier.promoted", "tier.demoted", "tier.revoked")[n % 3]
        ev.add(change, agent=agent, from_=1, to=n % 5, reason="r", policy_version=1,
               policy_digest=DIGEST, evidence={"seq_from": 1, "seq_to": 2})  # fmt: skip
    elif k == 17:
        ev.add("x.note", agent=agent, run=run if n % 2 else None, text="hi")
    else:
        ev.add("correction.recorded", agent=agent, text="fix", by="u")


steps = st.lists(
    st.tuples(
        st.integers(0, 18), st.sampled_from(AGENTS), st.sampled_from(RUNS), st.integers(0, 50)
    ),
    min_size=1,
    max_size=60,
)


def workload(plan: list[tuple[int, str, str, int]]) -> Events:
    ev = Events(step=timedelta(seconds=1))
    for kind, agent, run, n in plan:
        add_step(ev, kind, agent, run, n)
    return ev


def dump(db: ReadModels) -> dict[str, Any]:
    """Every read-model table and the projection positions, rows in primary-key order."""
    out: dict[str, Any] = {"meta": sorted((p.name, p.last_seq, p.last_hash)
                                          for p in positions(db).values())}  # fmt: skip
    for p in default_projections():
        for t in p.tables:
            order = ", ".join(t.pk)
            out[t.name] = [
                tuple(r) for r in db.execute(f'SELECT * FROM "{t.name}" ORDER BY {order}')
            ]
    return out


@given(steps)
def test_full_replay_equals_replay_with_tiny_batches(plan: list[tuple[int, str, str, int]]) -> None:
    ev = workload(plan)
    assert dump(replay(ev)) == dump(replay(ev, batch=1)) == dump(replay(ev, batch=3))


@given(steps, st.lists(st.integers(0, 70), max_size=6))
def test_catching_up_in_any_increments_equals_full_replay(
    plan: list[tuple[int, str, str, int]], cuts: list[int]
) -> None:
    ev = workload(plan)
    db = memory()
    for cut in sorted(cuts):
        catch_up(ev, db, to_seq=cut, batch=4)
    catch_up(ev, db)
    assert dump(db) == dump(replay(ev))


@given(steps, st.integers(0, 60))
def test_replaying_a_prefix_then_the_rest_equals_full_replay(
    plan: list[tuple[int, str, str, int]], cut: int
) -> None:
    ev = workload(plan)
    db = replay(ev.prefix(cut))
    catch_up(ev, db)
    assert dump(db) == dump(replay(ev))


@given(steps, st.integers(0, 60))
def test_at_seq_equals_a_fresh_ledger_of_the_first_n_events(
    plan: list[tuple[int, str, str, int]], n: int
) -> None:
    ev = workload(plan)
    with build_at(ev, n) as db:
        at = dump(db)
    assert at == dump(replay(ev.prefix(n)))


def test_time_travel_leaves_the_stored_read_models_untouched() -> None:
    ev = workload([(k, "a1", "r1", k) for k in range(19)])
    db = replay(ev)
    before = dump(db)
    with build_at(ev, 5) as past:
        assert positions(past)["runs"].last_seq == 5
    assert dump(db) == before


def test_a_changed_version_rebuilds_from_scratch(monkeypatch: Any) -> None:
    ev = workload([(k, "a1", "r1", k) for k in range(19)])
    db = replay(ev)
    db.execute("UPDATE runs SET state = 'tampered'")
    db.conn.commit()
    assert catch_up(ev, db)[0].rebuilt is None  # same version, nothing new: untouched
    proj = default_projections()[0]
    bump_version(monkeypatch, proj)
    progress = catch_up(ev, db)
    assert progress[0].rebuilt == f"version changed from {proj.version - 1} to {proj.version}"
    assert db.execute("SELECT count(*) FROM runs WHERE state = 'tampered'").fetchone()[0] == 0


def test_a_hash_that_no_longer_matches_the_log_rebuilds() -> None:
    ev = workload([(k, "a1", "r1", k) for k in range(19)])
    db = replay(ev)
    other = workload([(k, "a2", "r2", k + 1) for k in range(19)])
    progress = catch_up(other, db)
    assert progress[0].rebuilt == "hash of seq 19 no longer matches the log"
    assert dump(db) == dump(replay(other))


def test_catching_up_when_nothing_is_new_writes_nothing() -> None:
    ev = workload([(k, "a1", "r1", k) for k in range(19)])
    db = replay(ev)
    changes = db.conn.total_changes
    progress = catch_up(ev, db)
    assert (progress[0].from_seq, progress[0].to_seq, progress[0].rebuilt) == (19, 19, None)
    assert db.conn.total_changes == changes


def table_digest(plan: list[tuple[int, str, str, int]]) -> str:
    return hashlib.sha256(json.dumps(dump(replay(workload(plan)))).encode()).hexdigest()


DETERMINISM_PLAN = [((i * 7) % 19, AGENTS[i % 3], RUNS[(i * 3) % 5], i) for i in range(300)]


def test_replay_is_deterministic_across_processes() -> None:
    code = (
        "from tests.test_projections import table_digest, DETERMINISM_PLAN;"
        "print(table_digest(DETERMINISM_PLAN))"
    )
    results = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout.strip()
        for seed in (1, 2)
    }  # fmt: skip
    assert results == {table_digest(DETERMINISM_PLAN)}


@pytest.mark.parametrize("module", [runs, tiers])
def test_fold_tables_cover_every_payload_class_once(module: object) -> None:
    folds, ignored = module._FOLDS, module.IGNORED  # type: ignore[attr-defined]
    classes = set(CATALOG.values()) | {UserPayload}
    assert set(folds) | ignored == classes
    assert not set(folds) & ignored


def test_reliability_folds_are_the_relevant_types() -> None:
    assert {c.model_fields["type"].default for c in reliability._FOLDS} == reliability.RELEVANT


@pytest.mark.parametrize(
    "value",
    [
        "2030-01-06T08:30:04Z",
        "2030-01-06T08:30:04.123456Z",
        "2030-01-06T08:30:04.5Z",
        "2030-01-06T10:30:04+02:00",
        "2030-01-06",
        "2024-02-29T23:59:59Z",
    ],
)
def test_normalize_time_fast_path_is_the_full_parse(value: str) -> None:
    assert normalize_time(value) == format_ts(parse_time(value))


@pytest.mark.parametrize(
    "value", ["2030-02-30T08:30:04Z", "2030-01-06T24:00:00Z", "2030-01-06T08:30:60Z", "soon"]
)
def test_normalize_time_refuses_what_the_full_parse_refuses(value: str) -> None:
    with pytest.raises(LedgerError) as expected:
        format_ts(parse_time(value))
    with pytest.raises(LedgerError) as got:
        normalize_time(value)
    assert str(got.value) == str(expected.value)


def test_json_strings_does_not_cache_an_error() -> None:
    with pytest.raises(LedgerError):
        _json_strings(("\ud800",))
    with pytest.raises(LedgerError):
        _json_strings(("\ud800",))
    assert _json_strings(("a", "é")) == '["a","é"]'
