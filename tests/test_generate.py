"""The synthetic workload generator (``ledger.sample``, command line ``scripts/generate.py``):
valid, deterministic, complete."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from itertools import groupby
from pathlib import Path

import pytest
from click.testing import CliRunner

import ledger.sample
from ledger.cli import main as govledger
from ledger.event.envelope import CATALOG, authorize
from ledger.sample import Conduct
from ledger.store.sqlite import Draft, prepare
from ledger.verify.verifier import verify_ledger
from scripts.generate import (
    GOVERNOR,
    PRODUCED_TYPES,
    RECORDER,
    build_ledger,
    generate_drafts,
)
from scripts.generate import main as generate_main

# sha256 of the stream of ``generate_drafts(2000, 5, 11, ids=True)``, one JSON line per draft
# (see ``_digest``): pinned again when low-risk runs of agents at T2 and above started on their
# own (the approval rule), the budget guardrail became a warning, and payload times took the
# `ts` form.
STREAM_2000_5_11 = "b63bd04369be12986dc95e674003b347641f2927c2ce5da50cc36e4a42a9b723"

EVENTS, AGENTS, SEED = 2_000, 5, 11


@pytest.fixture(scope="module")
def stream() -> list[tuple[str, Draft]]:
    return list(generate_drafts(EVENTS, AGENTS, SEED))


def _key(item: tuple[str, Draft]) -> tuple[object, ...]:
    role, d = item
    return (role, d.type, d.agent, d.run, d.actor, json.dumps(d.payload, sort_keys=True))


def test_generated_ledger_verifies(tmp_path: Path, stream: list[tuple[str, Draft]]) -> None:
    batches: list[int] = []
    ledger = build_ledger(
        tmp_path / "l.db", tmp_path / "keys", EVENTS, AGENTS, SEED, progress=batches.append
    )
    with ledger:
        report = verify_ledger(ledger)
        assert report.ok, report.problems[:3]
        assert report.events == EVENTS + 2  # ledger.created and the recorder key
        types = [r[3] for r in ledger.iter_rows(from_seq=3)]
    assert types == [d.type for _, d in stream]
    # One transaction per stretch of same-role drafts (none reaches the 1000 batch limit).
    assert sum(batches) == EVENTS
    assert len(batches) == sum(1 for _ in groupby(role for role, _ in stream))


def test_same_seed_gives_same_events(stream: list[tuple[str, Draft]]) -> None:
    again = list(generate_drafts(EVENTS, AGENTS, SEED))
    assert [_key(i) for i in again] == [_key(i) for i in stream]
    other = list(generate_drafts(EVENTS, AGENTS, SEED + 1))
    assert [_key(i) for i in other] != [_key(i) for i in stream]


def _digest(stream: Iterable[tuple[str, Draft]]) -> str:
    h = hashlib.sha256()
    for role, d in stream:
        line = [role, d.type, d.payload, d.agent, d.run, d.actor, d.id]
        h.update(json.dumps(line, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return h.hexdigest()


def test_stream_for_a_seed_is_pinned() -> None:
    # Benchmarks and stored ledgers rely on a seed giving the same events, release after release.
    assert _digest(generate_drafts(2000, 5, 11, ids=True)) == STREAM_2000_5_11
    same = ledger.sample.generate_drafts(
        2000, 5, 11, ids=True, violations=1.0, conduct=[Conduct()] * 5
    )
    assert _digest(same) == STREAM_2000_5_11


@pytest.mark.parametrize(("n", "agents", "seed"), [(3000, 5, 11), (1500, 12, 3), (400, 1, 0)])
def test_scripts_and_the_package_yield_the_same_stream(n: int, agents: int, seed: int) -> None:
    from_scripts = [_key(i) for i in generate_drafts(n, agents, seed, ids=True)]
    from_package = [_key(i) for i in ledger.sample.generate_drafts(n, agents, seed, ids=True)]
    assert from_scripts == from_package


def _rule_breaks(stream: list[tuple[str, Draft]]) -> Counter[str]:
    """Rule breaks visible in the stream itself, by agent."""
    thresholds = {d.agent: d.payload["confidence_threshold_bp"] for _, d in stream
                  if d.type == "agent.registered"}  # fmt: skip
    planned = {d.run: {s["tool"] for s in d.payload["steps"]} for _, d in stream
               if d.type == "run.planned"}  # fmt: skip
    approved = {d.run for _, d in stream if d.type == "run.approved"}
    # Approved by the agent's tier (the approval rule): a low-risk run submitted with
    # auto_approve by an agent registered at T2 or above (exact while no critical rule breaks).
    tiers = {d.agent: d.payload["initial_tier"] for _, d in stream
             if d.type == "agent.registered"}  # fmt: skip
    approved |= {d.run for _, d in stream if d.type == "run.submitted"
                 and d.payload["auto_approve"] and tiers[d.agent] >= 2}  # fmt: skip
    breaks: Counter[str] = Counter()
    for _, d in stream:
        if (
            (d.type == "run.started" and d.run not in approved)
            or (d.type == "tool.called" and d.payload["tool"] not in planned.get(d.run, ()))
            or (d.type == "decision.recorded" and d.payload["decision"] == "EXECUTE"
                and d.payload["confidence_bp"] < thresholds[d.agent])
            or (d.type == "guardrail.triggered" and d.payload["kind"] == "tool_loop")
        ):  # fmt: skip
            breaks[str(d.agent)] += 1
    return breaks


def test_violations_zero_breaks_no_rule() -> None:
    assert _rule_breaks(list(generate_drafts(6_000, AGENTS, SEED))) != Counter()
    assert _rule_breaks(list(generate_drafts(6_000, AGENTS, SEED, violations=0))) == Counter()


def test_conduct_sets_each_agents_tier_and_rule_breaking() -> None:
    conduct = [Conduct(warnings=0, critical=0, tier=0), Conduct(warnings=5, critical=5, tier=2),
               Conduct(), Conduct(tier=1)]  # fmt: skip
    stream = list(generate_drafts(6_000, 4, SEED, conduct=conduct))
    tiers = [d.payload["initial_tier"] for _, d in stream[:4]]
    assert tiers[0] == 0 and tiers[1] == 2 and tiers[3] == 1
    breaks = _rule_breaks(stream)
    careful, reckless = (str(stream[i][1].agent) for i in (0, 1))
    assert breaks[careful] == 0
    assert breaks[reckless] == max(breaks.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conduct": [Conduct()] * 2}, "conduct has 2 entries for 3 agents"),
        ({"violations": -1.0}, "violations must be at least 0, not -1.0"),
    ],
    ids=["conduct-length", "negative-violations"],
)
def test_bad_conduct_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as e:
        next(generate_drafts(10, 3, 0, **kwargs))  # type: ignore[arg-type]
    assert str(e.value) == message


def test_stream_has_exactly_the_requested_size() -> None:
    assert sum(1 for _ in generate_drafts(1, 3, 0)) == 1
    assert sum(1 for _ in generate_drafts(777, 3, 0)) == 777


def test_generator_produces_every_type_it_claims(stream: list[tuple[str, Draft]]) -> None:
    assert PRODUCED_TYPES.issubset(CATALOG)
    assert {d.type for _, d in stream} == PRODUCED_TYPES


def test_every_draft_is_valid_and_signed_by_the_right_role(
    stream: list[tuple[str, Draft]],
) -> None:
    for i, (role, draft) in enumerate(stream):
        prepare(draft, f"draft {i}")
        assert role in (GOVERNOR, RECORDER)
        assert (
            authorize(role=role, key_agent=None, event_type=draft.type, agent=draft.agent) is None
        ), (i, role, draft.type)


def test_runs_interleave_across_agents(stream: list[tuple[str, Draft]]) -> None:
    runs = [d.run for _, d in stream if d.run is not None]
    switches = sum(1 for _ in groupby(runs))
    assert switches > len(runs) / 3  # runs do not come one after the other
    assert len({d.agent for _, d in stream}) == AGENTS


def test_stream_contains_guardrail_violations() -> None:
    # A few hundred runs: the rarest violation (a start with no approval) is 1 run in 100.
    stream = list(generate_drafts(6_000, AGENTS, SEED))
    thresholds = {
        d.agent: d.payload["confidence_threshold_bp"]
        for _, d in stream
        if d.type == "agent.registered"
    }
    low_execute = [
        d
        for _, d in stream
        if d.type == "decision.recorded"
        and d.payload["decision"] == "EXECUTE"
        and d.payload["confidence_bp"] < thresholds[d.agent]
    ]
    assert low_execute
    approved = {d.run for _, d in stream if d.type == "run.approved"}
    assert [d for _, d in stream if d.type == "run.started" and d.run not in approved]
    banned = {
        d.agent: set(d.payload["forbidden_actions"])
        for _, d in stream
        if d.type == "agent.registered"
    }
    assert [
        d
        for _, d in stream
        if d.type == "tool.called"
        and {d.payload["tool"], d.payload["side_effect"]} & banned[d.agent]
    ]
    # A tool loop: the same tool with the same arguments three or more times in one run.
    calls = Counter(
        (d.run, d.payload["tool"], d.payload["args_digest"])
        for _, d in stream
        if d.type == "tool.called"
    )
    assert max(calls.values()) >= 3
    kinds = {d.payload["kind"] for _, d in stream if d.type == "guardrail.triggered"}
    assert "tool_loop" in kinds
    topics = {d.payload.get("topic") for _, d in stream if d.type == "correction.recorded"}
    assert len(topics - {None}) >= 3


def test_jsonl_output_imports_with_govledger_import(tmp_path: Path) -> None:
    db, keys, jsonl = str(tmp_path / "l.db"), str(tmp_path / "keys"), tmp_path / "rec.jsonl"
    assert (
        generate_main(["--jsonl", str(jsonl), "--events", "600", "--agents", "4", "--seed", "3"])
        == 0
    )
    lines = jsonl.read_text(encoding="utf-8").splitlines()
    expected = [d for r, d in generate_drafts(600, 4, 3) if r == RECORDER]
    assert [json.loads(line)["type"] for line in lines] == [d.type for d in expected]
    runner = CliRunner()
    base = ["--db", db, "--keys", keys]
    for args in (
        ["init", "--origin", "test.example/gen"],
        ["keys", "new", "rec", "--role", "recorder"],
    ):
        result = runner.invoke(govledger, base + args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    result = runner.invoke(
        govledger,
        [*base, "import", str(jsonl), "--signer", "rec", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["imported"] == len(lines)
    assert (out["first_seq"], out["last_seq"]) == (3, 2 + len(lines))
    # Ids are deterministic, so importing the same file again records nothing twice.
    again = runner.invoke(govledger, [*base, "import", str(jsonl), "--signer", "rec"])
    assert again.exit_code == 2
    assert "seq 3" in again.stderr  # SPEC §2.1: the refusal names the existing seq
