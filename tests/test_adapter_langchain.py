"""The LangChain v1 adapter: a real ``create_agent`` agent with ``LedgerMiddleware`` and a fake
chat model scripted with tool calls; the gate runs before each tool, a denied tool never runs,
each model call's usage is recorded, and the log audits, for ``invoke`` and ``ainvoke``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain.agents", reason="the langchain extra is not installed")

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from ledger import Recorder
from ledger.adapters.langchain import LedgerMiddleware
from tests.conftest import Cli

AGENT = "support-bot"
CONTRACT = {"owner": "support", "version": "1", "initial_tier": 2,
            "allowed_side_effects": ["read", "write"], "forbidden_actions": ["payment"],
            "confidence_threshold_bp": 7000}  # fmt: skip
SIDE_EFFECTS = {"lookup": "read", "refund": "payment"}
USAGE = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}


class ScriptedChat(GenericFakeChatModel):
    """The fake chat model, accepting tools as a provider's model does."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChat:
        return self


@pytest.fixture
def registered(ready: Cli) -> Cli:
    ready("append", "agent.registered", "--signer", "root", "--agent", AGENT,
          "--payload", json.dumps(CONTRACT))  # fmt: skip
    return ready


def script() -> Iterator[AIMessage]:
    return iter([
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"email": "ann@example.com"},
                                   "id": "c1"}], usage_metadata=USAGE),
        AIMessage("", tool_calls=[{"name": "refund", "args": {"customer": "c-17"}, "id": "c2"}],
                  usage_metadata=USAGE),
        AIMessage("done", usage_metadata=USAGE),
    ])  # fmt: skip


def tools(ran: list[str]) -> list[Any]:
    @tool
    def lookup(email: str) -> str:
        """Find a customer."""
        ran.append("lookup")
        return f"c-17 <{email}>"

    @tool
    def refund(customer: str) -> str:
        """Refund a customer."""
        ran.append("refund")
        return "refunded"

    return [lookup, refund]


def check(cli: Cli, run: str, ran: list[str]) -> None:
    assert ran == ["lookup"]
    shown = cli.json("runs", "show", run)
    assert [e["type"] for e in shown["timeline"]] == [
        "run.submitted", "run.started", "llm.usage", "tool.called", "tool.completed",
        "llm.usage", "guardrail.triggered", "llm.usage", "run.completed",
    ]  # fmt: skip
    assert (shown["tool_calls"], shown["llm_calls"], shown["tokens_in"]) == (1, 3, 300)
    [finding] = cli.json_lines("findings", "--run", run)
    assert "tool 'refund' (payment) denied" in finding["detail"]
    assert cli.json("verify")["ok"] is True


def test_invoke_is_gated_and_recorded(registered: Cli) -> None:
    ran: list[str] = []
    recorder = Recorder.open(registered.db, keys=registered.keys, signer="rec")
    with recorder, recorder.run(agent=AGENT, objective="ticket", user="ann") as run:
        middleware = LedgerMiddleware(run, side_effects=SIDE_EFFECTS)
        agent = create_agent(ScriptedChat(messages=script()), tools(ran), middleware=[middleware])
        out = agent.invoke({"messages": [{"role": "user", "content": "refund me"}]})
    assert out["messages"][-1].content == "done"
    check(registered, run.id, ran)


def test_ainvoke_is_gated_and_recorded(registered: Cli) -> None:
    ran: list[str] = []

    async def go() -> str:
        with Recorder.open(registered.db, keys=registered.keys, signer="rec") as recorder:
            async with recorder.arun(agent=AGENT, objective="ticket", user="ann") as run:
                middleware = LedgerMiddleware(run, side_effects=SIDE_EFFECTS)
                agent = create_agent(ScriptedChat(messages=script()), tools(ran),
                                     middleware=[middleware])  # fmt: skip
                await agent.ainvoke({"messages": [{"role": "user", "content": "refund me"}]})
            return run.id

    check(registered, asyncio.run(go()), ran)
