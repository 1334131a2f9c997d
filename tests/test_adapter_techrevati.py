"""The techrevati-runtime adapter: a real ``AgentSession`` with a scripted model records its run,
tools and usage through the sinks, and the gate, as a guardrail, keeps a denied tool from running."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("techrevati.runtime")

from techrevati.runtime import AgentSession, UsageSnapshot
from techrevati.runtime.guardrails import GuardrailViolatedError

from ledger import Recorder
from ledger.adapters.techrevati import LedgerBridge
from ledger.store.sqlite import Draft, Ledger
from tests.conftest import Cli, LedgerKeys
from tests.test_recorder import contract

AGENT = "tr-bot"


@pytest.fixture
def recorder(ledger: Ledger, keys: LedgerKeys, tmp_path: Path) -> Iterator[Recorder]:
    ledger.append(Draft("agent.registered", contract(2), agent=AGENT), signer=keys.root)
    r = Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="recorder")
    yield r
    r.close()


def session(bridge: LedgerBridge) -> AgentSession:
    return AgentSession(
        role="support", phase="answer", event_sink=bridge.event_sink,
        usage_sink=bridge.usage_sink, guardrails=[bridge.guardrail],
    )  # fmt: skip


def scripted_model() -> str:
    """The offline model: always asks for the knowledge base."""
    return "call kb.search"


def run_events(ledger: Ledger) -> list[tuple[str, dict[str, object]]]:
    return [(e.type, e.payload) for e in ledger.iter_events() if e.run is not None]


def test_a_session_records_its_run_tools_and_usage(
    recorder: Recorder, ledger: Ledger, cli: Cli
) -> None:
    bridge = LedgerBridge(recorder, agent=AGENT, objective="answer ticket", provider="scripted",
                          side_effects={"kb.search": "read"})  # fmt: skip
    ran: list[str] = []

    def kb_search() -> dict[str, int]:
        ran.append("kb.search")
        return {"hits": 2}

    with session(bridge).session() as s:
        text, _ = s.run_turn(scripted_model, model="scripted-1",
                             usage=UsageSnapshot(input_tokens=120, output_tokens=30))  # fmt: skip
        assert text == "call kb.search"
        s.run_tool("kb.search", kb_search)
    assert ran == ["kb.search"]
    types = [t for t, _ in run_events(ledger)]
    assert types == ["run.submitted", "run.started", "llm.usage", "tool.called",
                     "tool.completed", "run.completed"]  # fmt: skip
    usage = run_events(ledger)[2][1]
    assert (usage["provider"], usage["model"], usage["tokens_in"], usage["tokens_out"]) == (
        "scripted", "scripted-1", 120, 30)  # fmt: skip
    assert json.loads(cli("verify", "--json").stdout)["ok"] is True
    shown = cli("runs", "show", bridge.run.id if bridge.run else "").stdout
    assert "state completed  compliant" in shown
    assert "tools 1 (0 errors)  tokens 120/30" in shown
    assert "tool=kb.search status=ok" in shown


def test_a_denied_tool_never_runs_and_leaves_a_guardrail_and_a_finding(
    recorder: Recorder, ledger: Ledger, cli: Cli
) -> None:
    bridge = LedgerBridge(recorder, agent=AGENT, objective="refund",
                          side_effects={"payments.refund": "payment"})  # fmt: skip
    ran: list[str] = []
    with pytest.raises(GuardrailViolatedError), session(bridge).session() as s:
        s.run_tool("payments.refund", lambda: ran.append("refund"))
    assert ran == []
    events = run_events(ledger)
    assert [t for t, _ in events] == ["run.submitted", "run.started", "guardrail.triggered",
                                      "run.failed"]  # fmt: skip
    assert events[2][1]["kind"] == "forbidden_action"
    # the catalog has no guardrail class: the runtime's class is kept in the message
    assert events[3][1]["failure_class"] == "unknown"
    assert "guardrail_violation" in str(events[3][1]["message"])
    findings = [json.loads(x)["kind"] for x in cli("findings", "--json").stdout.splitlines()]
    assert "guardrail_triggered" in findings
    assert json.loads(cli("verify", "--json").stdout)["ok"] is True


def test_an_async_session_is_recorded_and_gated_the_same_way(
    recorder: Recorder, ledger: Ledger, cli: Cli
) -> None:
    bridge = LedgerBridge(recorder, agent=AGENT, objective="triage",
                          side_effects={"shell.exec": "execute"})  # fmt: skip
    ran: list[str] = []

    async def tool() -> str:
        ran.append("kb.search")
        return "3 open tickets"

    async def main() -> None:
        async with session(bridge).asession() as s:
            await s.arun_tool("kb.search", tool)
            with pytest.raises(GuardrailViolatedError):
                await s.arun_tool("shell.exec", tool)

    asyncio.run(main())
    assert ran == ["kb.search"]
    assert [t for t, _ in run_events(ledger)] == ["run.submitted", "run.started", "tool.called",
                                                  "tool.completed", "guardrail.triggered",
                                                  "run.completed"]  # fmt: skip
    assert json.loads(cli("verify", "--json").stdout)["ok"] is True


def test_a_tool_outside_an_open_run_is_refused() -> None:
    bridge = LedgerBridge(None, agent=AGENT, objective="o")  # type: ignore[arg-type]
    outcome = bridge.check_pre(role="support", tool="kb.search")
    assert (outcome.allowed, outcome.reason) == (False, "no govledger run is open")
