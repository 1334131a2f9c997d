"""The MCP adapter: a real ``MCPServer`` with ``LedgerMiddleware``, called by the SDK's client
over its in-memory transport; the gate runs before the tool, a denied tool is never called,
and the log the calls leave audits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp import Client
from mcp.server.mcpserver import MCPServer

from ledger import Recorder
from ledger.adapters.mcp import LedgerMiddleware
from ledger.recording import digest_of
from tests.conftest import Cli

AGENT = "support-bot"
CONTRACT = {"owner": "support", "version": "1", "initial_tier": 2,
            "allowed_side_effects": ["read", "write"], "forbidden_actions": ["payment"],
            "confidence_threshold_bp": 7000}  # fmt: skip
SIDE_EFFECTS = {"lookup": "read", "refund": "payment", "broken": "read"}


@pytest.fixture
def registered(ready: Cli) -> Cli:
    ready("append", "agent.registered", "--signer", "root", "--agent", AGENT,
          "--payload", json.dumps(CONTRACT))  # fmt: skip
    return ready


def server(ran: list[str]) -> MCPServer:
    app = MCPServer("support")

    @app.tool()
    def lookup(email: str) -> str:
        """Find a customer."""
        ran.append("lookup")
        return f"c-17 <{email}>"

    @app.tool()
    def refund(customer: str) -> str:
        """Refund a customer."""
        ran.append("refund")
        return "refunded"

    @app.tool()
    def broken(customer: str) -> str:
        """Always fails."""
        ran.append("broken")
        raise RuntimeError("backend down")

    return app


def serve(
    cli: Cli, ran: list[str], calls: list[tuple[str, dict[str, Any]]]
) -> tuple[str, list[Any]]:
    async def go() -> tuple[str, list[Any]]:
        app = server(ran)
        with Recorder.open(cli.db, keys=cli.keys, signer="rec") as recorder:
            async with recorder.arun(agent=AGENT, objective="ticket", user="ann") as run:
                app.middleware.append(LedgerMiddleware(run, side_effects=SIDE_EFFECTS))
                async with Client(app) as client:
                    results = [await client.call_tool(name, args) for name, args in calls]
            return run.id, results

    return asyncio.run(go())


def test_calls_are_gated_and_recorded_and_a_denied_tool_is_never_called(registered: Cli) -> None:
    ran: list[str] = []
    run, results = serve(registered, ran, [("lookup", {"email": "ann@example.com"}),
                                           ("refund", {"customer": "c-17"})])  # fmt: skip
    assert ran == ["lookup"]
    assert not results[0].is_error
    assert results[1].is_error
    assert "'payment' is in the forbidden actions" in results[1].content[0].text
    shown = registered.json("runs", "show", run)
    assert [e["type"] for e in shown["timeline"]] == [
        "run.submitted", "run.started", "tool.called", "tool.completed",
        "guardrail.triggered", "run.completed",
    ]  # fmt: skip
    assert (shown["tool_calls"], shown["steps_completed"]) == (1, 1)
    [finding] = registered.json_lines("findings", "--run", run)
    assert finding["kind"] == "guardrail_triggered"
    assert registered.json("verify")["ok"] is True


def test_arguments_are_stored_as_their_digest(registered: Cli) -> None:
    run, _ = serve(registered, [], [("lookup", {"email": "ann@example.com"})])
    with Recorder.open(registered.db, keys=registered.keys, signer="rec") as r:
        assert r.ledger is not None
        [called] = [e for e in r.ledger.iter_events() if e.run == run and e.type == "tool.called"]
    assert called.payload["args_digest"] == digest_of({"email": "ann@example.com"})


def test_a_failing_tool_is_recorded_as_an_error(registered: Cli) -> None:
    ran: list[str] = []
    run, [result] = serve(registered, ran, [("broken", {"customer": "c-17"})])
    assert ran == ["broken"] and result.is_error
    shown = registered.json("runs", "show", run)
    assert (shown["tool_calls"], shown["tool_errors"], shown["steps_completed"]) == (1, 1, 0)
