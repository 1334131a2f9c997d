"""The gate (``Recorder.check_tool``) and correction memory (``Recorder.lessons``), SPEC §6:
answers from the read models caught up to the head, denials recorded as guardrails before the
answer, and the gate's verdict is the finding the audit raises when the call is made anyway."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import Recorder
from ledger.errors import StoreError
from ledger.recording import Decision
from ledger.recording.gate import judge
from ledger.store.base import EventFilter
from ledger.store.sqlite import Draft, Ledger
from ledger.verify.verifier import verify_ledger
from projections.driver import catch_up
from tests.conftest import Cli, LedgerKeys, digest
from tests.test_recorder import contract

T2, T1 = "agent-t2", "agent-t1"


@pytest.fixture
def rec(ledger: Ledger, keys: LedgerKeys, tmp_path: Path) -> Iterator[Recorder]:
    """``agent-t2`` (T2: low-risk runs approved by the policy, no grant needed) and
    ``agent-t1`` (T1: needs a governor's approval and grants); both forbid ``payment`` and
    ``shell.exec`` and allow read, write, network."""
    ledger.append(Draft("agent.registered", contract(2), agent=T2), signer=keys.root)
    ledger.append(Draft("agent.registered", contract(1), agent=T1), signer=keys.root)
    r = Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="recorder")
    yield r
    r.close()


def approve(ledger: Ledger, keys: LedgerKeys, run: str) -> None:
    ledger.append(
        Draft("run.approved", {"approver": "alice", "mode": "human", "plan_digest": digest(run)},
              agent=T1, run=run),
        signer=keys.root,
    )  # fmt: skip


def grant(ledger: Ledger, keys: LedgerKeys, run: str, tools: list[str], expires: str) -> None:
    payload: dict[str, Any] = {"tools": tools, "capabilities": [], "expires_at": expires,
                               "token_digest": digest(f"token {run}")}  # fmt: skip
    ledger.append(Draft("capability.granted", payload, agent=T1, run=run), signer=keys.root)


def last(ledger: Ledger) -> Any:
    return ledger.event_at(ledger.size)


def test_allowed_under_the_contract_records_nothing(rec: Recorder, ledger: Ledger) -> None:
    with rec.run(agent=T2, objective="o", run="r1") as run:
        size = ledger.size
        d = run.check_tool("search", "read")
        assert ledger.size == size
    assert d == Decision(True, "agent 'agent-t2' (T2) may call 'search' (read) under its "
                         "contract (the approval rule; no grant needed at T2)")  # fmt: skip
    assert bool(d)


@pytest.mark.parametrize(
    ("tool", "side_effect", "kind", "guardrail", "reason"),
    [
        ("shell.exec", "execute", "forbidden_action", "forbidden_action",
         "'shell.exec' is in the forbidden actions of agent 'agent-t2' (registered at seq 3)"),
        ("stripe.charge", "payment", "forbidden_action", "forbidden_action",
         "'payment' is in the forbidden actions of agent 'agent-t2' (registered at seq 3)"),
        ("fs.rm", "delete", "side_effect_not_allowed", "permission_denied",
         "side effect 'delete' of 'fs.rm' is not allowed for agent 'agent-t2' (registered at seq 3)"),
    ],
    ids=["forbidden-tool", "forbidden-side-effect", "side-effect-not-allowed"],
)  # fmt: skip
def test_denial_is_recorded_as_a_guardrail_before_returning(
    rec: Recorder, ledger: Ledger, cli: Cli, tool: str, side_effect: str, kind: str,
    guardrail: str, reason: str,
) -> None:  # fmt: skip
    with rec.run(agent=T2, objective="o", run="r2") as run:
        d = run.check_tool(tool, side_effect)
        assert (d.allowed, d.finding_kind, d.reason) == (False, kind, reason)
        g = last(ledger)
        assert d.guardrail_seq == g.seq
    assert (g.type, g.agent, g.run) == ("guardrail.triggered", T2, "r2")
    assert g.payload == {"kind": guardrail, "severity": "warning",
                         "detail": f"tool {tool!r} ({side_effect}) denied: {reason}"}  # fmt: skip
    shown = cli.json("runs", "show", "r2")
    assert [(f["kind"], f["severity"], f["seq"]) for f in shown["findings"]] == [
        ("guardrail_triggered", "warning", g.seq)
    ]
    assert shown["compliant"] is False


def test_unregistered_agent_is_denied(rec: Recorder, ledger: Ledger) -> None:
    d = rec.check_tool("ghost", "search", "read")
    assert (d.allowed, d.finding_kind) == (False, "unregistered_agent")
    assert d.reason == "agent 'ghost' is not registered (no agent.registered names it)"
    assert last(ledger).payload["kind"] == "permission_denied"


def test_run_never_submitted_is_denied(rec: Recorder) -> None:
    d = rec.check_tool(T2, "search", "read", run="nope")
    assert (d.finding_kind, d.reason) == (
        "started_without_approval",
        "run 'nope' was never submitted",
    )


def test_run_without_approval_is_denied(rec: Recorder) -> None:
    with rec.run(agent=T1, objective="o", run="r3") as run:
        d = run.check_tool("search", "read")
    assert d.finding_kind == "started_without_approval"
    assert d.reason == (
        "run 'r3' is not approved: it has no run.approved and the approval rule of the policy "
        "does not approve it"
    )


def test_grants_decide_for_an_approved_run_below_the_contract_tier(
    rec: Recorder, ledger: Ledger, keys: LedgerKeys
) -> None:
    with rec.run(agent=T1, objective="o", run="r4") as run:
        approve(ledger, keys, "r4")
        grant(ledger, keys, "r4", ["search"], "2999-01-01T00:00:00Z")
        grant(ledger, keys, "r4", ["fetch"], "2000-01-01T00:00:00Z")
        ok = run.check_tool("search", "read")
        outside = run.check_tool("deploy", "write")
        expired = run.check_tool("fetch", "network")
    # Started before its approval: the critical started_without_approval zeroed the tier.
    assert ok.reason == (
        "agent 'agent-t1' (T0) may call 'search' (read) under the grant at seq 8 (approval seq 7)"
    )
    assert (outside.finding_kind, outside.reason) == (
        "tool_outside_grant", "tool 'deploy' of run 'r4' is in no capability.granted of the run")  # fmt: skip
    assert (expired.finding_kind, expired.reason) == (
        "grant_expired", "the grant of 'fetch' at seq 9 in run 'r4' has expired")  # fmt: skip


def test_no_grant_below_the_contract_tier_is_outside_grant(
    rec: Recorder, ledger: Ledger, keys: LedgerKeys
) -> None:
    with rec.run(agent=T1, objective="o", run="r5") as run:
        approve(ledger, keys, "r5")
        d = run.check_tool("search", "read")
    assert d.finding_kind == "tool_outside_grant"
    assert d.reason.endswith(
        "not granted, and the contract alone suffices from T2; the agent held T1 at the run's "
        "start (seq 6)"
    )


@pytest.mark.parametrize(
    ("tool", "side_effect"),
    [("search", "read"), ("deploy", "write"), ("fetch", "network"), ("fs.rm", "delete"),
     ("shell.exec", "execute")],
)  # fmt: skip
def test_the_gate_predicts_the_finding_of_the_call(
    rec: Recorder, ledger: Ledger, keys: LedgerKeys, cli: Cli, tool: str, side_effect: str
) -> None:
    # The runtime ignores the gate and records the call: the audit raises what the gate said.
    with rec.run(agent=T1, objective="o", run="r6") as run:
        approve(ledger, keys, "r6")
        grant(ledger, keys, "r6", ["search", "fs.rm", "shell.exec"], "2999-01-01T00:00:00Z")
        grant(ledger, keys, "r6", ["fetch"], "2000-01-01T00:00:00Z")
        catch_up(ledger, ledger.read_models())
        d = judge(ledger.read_models(), T1, tool, side_effect, "r6")
        call = run.tool_called(tool, {}, side_effect)
    kinds = {f["kind"] for f in cli.json("runs", "show", "r6")["findings"]
             if f["seq"] == call.seq}  # fmt: skip
    assert d.allowed == (kinds == set())
    if not d.allowed:
        assert d.finding_kind in kinds


# --- lessons ------------------------------------------------------------------------------

CORRECTIONS = [
    "Always cite the source document for every figure you quote",
    "Cite the source document when you quote a figure",
    "Please cite the source document for figures",
]


def test_lessons_are_the_emerged_correction_patterns(rec: Recorder, cli: Cli) -> None:
    assert rec.lessons(T2) == []
    seqs = [rec.correction(T2, text, "reviewer", topic="citations") for text in CORRECTIONS]
    rec.correction(T2, "Use metric units", "reviewer")
    [lesson] = rec.lessons(T2)
    assert (lesson.agent, lesson.count, lesson.topic) == (T2, 3, "citations")
    assert lesson.examples == tuple(CORRECTIONS)
    assert lesson.example_seqs == tuple(seqs)
    assert lesson.seqs == tuple(seqs)
    [shown] = cli.json_lines("corrections", "--agent", T2)
    assert (shown["name"], shown["count"], shown["examples"]) == (
        lesson.name, 3, list(CORRECTIONS))  # fmt: skip
    assert lesson.as_instruction().splitlines()[1:] == [f"- {c}" for c in CORRECTIONS]
    assert rec.lessons(T1) == []


def test_the_gate_of_an_unreachable_service_is_an_environment_error(ledger: Ledger) -> None:
    r = Recorder.connect("http://127.0.0.1:9", token="t", timeout=2)
    with pytest.raises(StoreError) as e:
        r.check_tool(T2, "search", "read")
    assert e.value.message.startswith("service at http://127.0.0.1:9: unreachable (")
    assert e.value.exit_code == 3


def test_async_run_checks_tools_through_the_gate(rec: Recorder) -> None:
    async def main() -> tuple[Decision, Decision]:
        async with rec.arun(agent=T2, objective="o", run="r-async") as run:
            return await run.check_tool("search", "read"), await run.check_tool("pay", "payment")

    ok, denied = asyncio.run(main())
    assert ok.allowed and denied.finding_kind == "forbidden_action"
    assert denied.guardrail_seq is not None


def test_threads_check_and_record_through_one_recorder(rec: Recorder, ledger: Ledger) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            with rec.run(agent=T2, objective="o", run=f"r-th{t}") as run:
                for i in range(8):
                    if run.check_tool("search", "read").allowed:
                        run.tool_called("search", {"i": i}, "read")
                    assert not run.check_tool("pay", "payment").allowed
        except BaseException as e:  # collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert verify_ledger(ledger).ok
    for t in range(4):
        got = [e.type for e in ledger.iter_events(filter=EventFilter(run=f"r-th{t}"))]
        assert got.count("tool.called") == 8 and got.count("guardrail.triggered") == 8
