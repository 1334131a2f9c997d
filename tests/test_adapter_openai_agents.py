"""The OpenAI Agents SDK adapter: a real ``Agent`` run by the SDK's ``Runner`` with an offline
scripted model, recorded through ``LedgerHooks``; the gate's tool input guardrail keeps a
denied tool from running, and the log it leaves audits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents", reason="the openai-agents extra is not installed")

from agents import Agent, RunConfig, Runner, function_tool
from agents.exceptions import UserError

from ledger import Recorder
from ledger.adapters.openai_agents import LedgerHooks
from ledger.errors import ToolDenied
from ledger.recording import digest_of
from scripts import example_agent
from scripts.example_agent import ScriptedModel, message, tool_call
from tests.conftest import Cli

AGENT = "support-bot"
CONTRACT = {"owner": "support", "version": "1", "initial_tier": 2,
            "allowed_side_effects": ["read", "write"], "forbidden_actions": ["payment"],
            "confidence_threshold_bp": 7000}  # fmt: skip


@pytest.fixture
def registered(ready: Cli) -> Cli:
    ready("append", "agent.registered", "--signer", "root", "--agent", AGENT,
          "--payload", json.dumps(CONTRACT))  # fmt: skip
    return ready


def agent_with(turns: list[list[Any]], ran: list[str]) -> Agent[Any]:
    @function_tool
    def lookup(email: str) -> dict[str, Any]:
        """Find a customer."""
        ran.append("lookup")
        return {"customer": "c-17", "email": email}

    @function_tool
    def refund(customer: str) -> str:
        """Refund a customer."""
        ran.append("refund")
        return "refunded"

    @function_tool
    def shell(command: str) -> str:
        """Run a command."""
        ran.append("shell")
        return "done"

    return Agent(name="support", model=ScriptedModel(turns), tools=[lookup, refund, shell])


def record(cli: Cli, agent: Agent[Any], **hooks: Any) -> str:
    async def go() -> str:
        with Recorder.open(cli.db, keys=cli.keys, signer="rec") as recorder:
            async with recorder.arun(agent=AGENT, objective="ticket", user="ann") as run:
                h = LedgerHooks(run, side_effects={"lookup": "read", "refund": "payment"}, **hooks)
                await Runner.run(h.govern(agent), "help", hooks=h,
                                 run_config=RunConfig(tracing_disabled=True))  # fmt: skip
            return run.id

    return asyncio.run(go())


def timeline(cli: Cli, run: str) -> list[tuple[str, dict[str, Any]]]:
    shown = cli.json("runs", "show", run)
    return [(e["type"], e) for e in shown["timeline"]]


LOOKUP = [tool_call("lookup", {"email": "ann@example.com"}, "c1")]
REFUND = [tool_call("refund", {"customer": "c-17"}, "c2")]
DONE = [message("done")]


def test_a_run_is_recorded_in_order_and_a_denied_tool_never_runs(registered: Cli) -> None:
    ran: list[str] = []
    run = record(registered, agent_with([LOOKUP, REFUND, DONE], ran))
    assert ran == ["lookup"]
    events = [kind for kind, _ in timeline(registered, run)]
    assert events == ["run.submitted", "run.started", "llm.usage", "tool.called",
                      "tool.completed", "llm.usage", "guardrail.triggered", "llm.usage",
                      "run.completed"]  # fmt: skip
    shown = registered.json("runs", "show", run)
    assert (shown["state"], shown["tool_calls"], shown["steps_completed"]) == ("completed", 1, 1)
    assert (shown["llm_calls"], shown["tokens_in"], shown["tokens_out"]) == (3, 300, 60)
    [finding] = registered.json_lines("findings", "--run", run)
    assert finding["kind"] == "guardrail_triggered"
    assert (
        "tool 'refund' (payment) denied: 'payment' is in the forbidden actions"
        in (finding["detail"])
    )
    assert registered.json("verify")["ok"] is True


def test_arguments_results_and_outputs_are_stored_as_digests(registered: Cli) -> None:
    run = record(registered, agent_with([LOOKUP, DONE], []))
    with Recorder.open(registered.db, keys=registered.keys, signer="rec") as r:
        assert r.ledger is not None
        payloads = {e.type: e.payload for e in r.ledger.iter_events() if e.run == run}
    assert payloads["tool.called"]["args_digest"] == digest_of({"email": "ann@example.com"})
    assert payloads["tool.completed"]["result_digest"] == digest_of(
        {"customer": "c-17", "email": "ann@example.com"}
    )
    assert payloads["run.completed"]["outputs_digest"] == digest_of("done")
    assert payloads["llm.usage"]["model"] == "ScriptedModel"


def test_a_tool_missing_from_side_effects_is_judged_as_execute_and_denied(
    registered: Cli,
) -> None:
    ran: list[str] = []
    shell = [tool_call("shell", {"command": "ls"}, "c3")]
    run = record(registered, agent_with([shell, DONE], ran))
    assert ran == []
    [finding] = registered.json_lines("findings", "--run", run)
    assert "tool 'shell' (execute) denied" in finding["detail"]


def test_usage_is_priced_by_the_given_function(registered: Cli) -> None:
    run = record(registered, agent_with([DONE], []), price=lambda model, i, o: 0.000001 * (i + o))
    assert registered.json("runs", "show", run)["cost_micro_usd"] == 120


def test_govern_leaves_the_callers_agent_and_tools_unchanged() -> None:
    agent = agent_with([DONE], [])
    before = [t.tool_input_guardrails for t in agent.tools]  # type: ignore[union-attr]
    governed = LedgerHooks(None, side_effects={}).govern(agent)  # type: ignore[arg-type]
    assert [t.tool_input_guardrails for t in agent.tools] == before  # type: ignore[union-attr]
    assert all(len(t.tool_input_guardrails) == 1 for t in governed.tools)  # type: ignore[union-attr,arg-type]


def test_the_example_script_records_a_denied_refund(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert example_agent.main(["--keep", str(tmp_path / "ex")]) == 0
    out = capsys.readouterr().out
    assert "$ govledger runs show run-" in out
    assert "guardrail_triggered" in out
    assert example_agent.REFUNDS == []


def test_a_denied_tool_that_skipped_govern_stops_the_run_before_it_runs(registered: Cli) -> None:
    ran: list[str] = []
    agent = agent_with([REFUND, DONE], ran)  # not passed through hooks.govern

    async def go() -> str:
        with Recorder.open(registered.db, keys=registered.keys, signer="rec") as recorder:
            run_id = ""
            with pytest.raises(UserError) as raised:  # the SDK wraps a hook's exception
                async with recorder.arun(agent=AGENT, objective="ticket") as run:
                    run_id = run.id
                    hooks = LedgerHooks(run, side_effects={"refund": "payment"})
                    await Runner.run(agent, "help", hooks=hooks,
                                     run_config=RunConfig(tracing_disabled=True))  # fmt: skip
            assert isinstance(raised.value.__cause__, ToolDenied)
            assert str(raised.value.__cause__).startswith(
                "tool 'refund' denied by the gate: 'payment' is in the forbidden actions"
            )
            return run_id

    run = asyncio.run(go())
    assert ran == []
    shown = registered.json("runs", "show", run)
    assert [e["type"] for e in shown["timeline"]][-2:] == ["guardrail.triggered", "run.failed"]
    assert (shown["state"], shown["tool_calls"]) == ("failed", 0)
