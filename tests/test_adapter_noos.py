"""The noos adapter: a real ``noos.Regulator`` fed by a scripted agent loop through the tee;
the ledger holds the usage, tools, feedback and the regulator's circuit break."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("noos")

import noos

from ledger import Recorder
from ledger.adapters.noos import NoosTee
from ledger.recording import digest_of
from ledger.store.sqlite import Draft, Ledger
from tests.conftest import Cli, LedgerKeys
from tests.test_recorder import contract

AGENT = "noos-bot"


@pytest.fixture
def recorder(ledger: Ledger, keys: LedgerKeys, tmp_path: Path) -> Iterator[Recorder]:
    ledger.append(Draft("agent.registered", contract(2), agent=AGENT), signer=keys.root)
    r = Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="recorder")
    yield r
    r.close()


def scripted_model(prompt: str) -> str:
    """The offline model: it answers in the prompt's own words, so noos sees no scope drift."""
    return f"{prompt} {prompt}"


def run_events(ledger: Ledger) -> list[tuple[str, dict[str, object]]]:
    return [(e.type, e.payload) for e in ledger.iter_events() if e.run is not None]


def test_a_turn_records_usage_tools_and_feedback_and_continue_records_nothing(
    recorder: Recorder, ledger: Ledger, cli: Cli
) -> None:
    with recorder.run(agent=AGENT, objective="answer ticket") as run:
        tee = NoosTee(noos.Regulator.for_user("u-17"), run, model="scripted-1", by="u-17")
        tee.turn_start("refund policy")
        tee.turn_complete(scripted_model("refund policy"))
        tee.cost(tokens_in=25, tokens_out=80, wallclock_ms=40, provider="scripted")
        tee.tool_call("kb_search", '{"q": "refund"}')
        tee.tool_result("kb_search", True, 12)
        tee.quality_feedback(0.9)
        assert tee.decide().kind == "continue"
    events = run_events(ledger)
    assert [t for t, _ in events] == ["run.submitted", "run.started", "llm.usage", "tool.called",
                                      "tool.completed", "feedback.quality", "run.completed"]  # fmt: skip
    assert events[2][1]["tokens_out"] == 80 and events[2][1]["wallclock_ms"] == 40
    assert events[3][1]["args_digest"] == digest_of({"q": "refund"})
    assert events[4][1]["duration_ms"] == 12
    assert events[5][1]["score_bp"] == 9000
    assert json.loads(cli("verify", "--json").stdout)["ok"] is True
    shown = cli("runs", "show", run.id).stdout
    assert "state completed  compliant" in shown
    assert "tools 1 (0 errors)  tokens 25/80" in shown


def test_a_circuit_break_is_recorded_as_a_guardrail_and_a_finding(
    recorder: Recorder, ledger: Ledger, cli: Cli
) -> None:
    with recorder.run(agent=AGENT, objective="loop") as run:
        tee = NoosTee(noos.Regulator.for_user("u-17"), run)
        tee.turn_start("find it")
        for _ in range(6):
            tee.tool_call("kb_search", "{}")
            tee.tool_result("kb_search", False, 1, "no hits")
        decision = tee.decide()
    assert (decision.kind, decision.reason.kind) == ("circuit_break", "repeated_tool_call_loop")
    events = run_events(ledger)
    assert [t for t, _ in events][-2:] == ["guardrail.triggered", "run.completed"]
    guard = events[-2][1]
    assert (guard["kind"], guard["severity"]) == ("tool_loop", "critical")
    assert str(guard["detail"]).startswith("noos circuit_break (repeated_tool_call_loop)")
    assert [t for t, _ in events].count("tool.completed") == 6
    kinds = [json.loads(x)["kind"] for x in cli("findings", "--json").stdout.splitlines()]
    assert "guardrail_triggered" in kinds
    assert json.loads(cli("verify", "--json").stdout)["ok"] is True
