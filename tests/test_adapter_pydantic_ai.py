"""The Pydantic AI adapter: a real ``Agent`` with ``LedgerCapability`` and a ``FunctionModel``
scripted with tool calls; the gate runs before each tool, a denied tool never runs, each model
response's usage is recorded, and the log audits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

pytest.importorskip("pydantic_ai", reason="the pydantic-ai extra is not installed")

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from ledger import Recorder
from ledger.adapters.pydantic_ai import LedgerCapability
from tests.conftest import Cli

AGENT = "support-bot"
CONTRACT = {"owner": "support", "version": "1", "initial_tier": 2,
            "allowed_side_effects": ["read", "write"], "forbidden_actions": ["payment"],
            "confidence_threshold_bp": 7000}  # fmt: skip
SIDE_EFFECTS = {"lookup": "read", "refund": "payment"}


@pytest.fixture
def registered(ready: Cli) -> Cli:
    ready("append", "agent.registered", "--signer", "root", "--agent", AGENT,
          "--payload", json.dumps(CONTRACT))  # fmt: skip
    return ready


def scripted(*calls: tuple[str, dict[str, Any]]) -> FunctionModel:
    """A model calling ``calls`` one per turn, then answering ``done``."""
    turns = [[ToolCallPart(name, args, tool_call_id=f"c{i}")] for i, (name, args) in
             enumerate(calls)] + [[TextPart("done")]]  # fmt: skip

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(
            parts=turns.pop(0), usage=RequestUsage(input_tokens=100, output_tokens=20)
        )

    return FunctionModel(respond, model_name="scripted")


def record(cli: Cli, ran: list[str], model: FunctionModel) -> str:
    async def go() -> str:
        with Recorder.open(cli.db, keys=cli.keys, signer="rec") as recorder:
            async with recorder.arun(agent=AGENT, objective="ticket", user="ann") as run:
                agent = Agent(
                    model, capabilities=[LedgerCapability(run, side_effects=SIDE_EFFECTS)]
                )

                @agent.tool_plain
                def lookup(email: str) -> str:
                    """Find a customer."""
                    ran.append("lookup")
                    return f"c-17 <{email}>"

                @agent.tool_plain
                def refund(customer: str) -> str:
                    """Refund a customer."""
                    ran.append("refund")
                    return "refunded"

                result = await agent.run("refund me")
                assert result.output == "done"
            return run.id

    return asyncio.run(go())


def test_a_run_is_gated_and_recorded_and_a_denied_tool_never_runs(registered: Cli) -> None:
    ran: list[str] = []
    model = scripted(("lookup", {"email": "ann@example.com"}), ("refund", {"customer": "c-17"}))
    run = record(registered, ran, model)
    assert ran == ["lookup"]
    shown = registered.json("runs", "show", run)
    assert [e["type"] for e in shown["timeline"]] == [
        "run.submitted", "run.started", "llm.usage", "tool.called", "tool.completed",
        "llm.usage", "guardrail.triggered", "llm.usage", "run.completed",
    ]  # fmt: skip
    assert (shown["tool_calls"], shown["llm_calls"], shown["tokens_in"]) == (1, 3, 300)
    [finding] = registered.json_lines("findings", "--run", run)
    assert "tool 'refund' (payment) denied" in finding["detail"]
    assert registered.json("verify")["ok"] is True
