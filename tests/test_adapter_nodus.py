"""The nodus-agent adapter: a real ``AgentExecutor`` with its own offline planner records its
run and tools, and a tool the gate denies is never called."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nodus_agent")

from nodus_agent import AgentExecutor, InMemoryAgentRunStore, LocalPlanner

from ledger import Recorder
from ledger.adapters.nodus import NodusBridge
from ledger.recording import digest_of
from ledger.store.sqlite import Draft, Ledger
from tests.conftest import Cli, LedgerKeys
from tests.test_recorder import contract

AGENT = "nodus-bot"


@dataclass
class Tool:
    name: str
    handler: Callable[[dict[str, Any]], Any]
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=dict)


class Registry:
    """The duck-typed tool registry the executor expects (``list``, ``get``)."""

    def __init__(self, *tools: Tool) -> None:
        self.tools = {t.name: t for t in tools}

    def list(self) -> list[Tool]:
        return list(self.tools.values())

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)


@pytest.fixture
def recorder(ledger: Ledger, keys: LedgerKeys, tmp_path: Path) -> Iterator[Recorder]:
    ledger.append(Draft("agent.registered", contract(2), agent=AGENT), signer=keys.root)
    r = Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="recorder")
    yield r
    r.close()


def execute(recorder: Recorder, objective: str, registry: Registry) -> tuple[str, dict[str, Any]]:
    store = InMemoryAgentRunStore()
    bridge = NodusBridge(recorder, agent=AGENT, tools=registry, run_store=store,
                         side_effects={"kb_search": "read", "refund_payment": "payment"})  # fmt: skip
    executor = AgentExecutor(planner=LocalPlanner(), tool_registry=bridge.tool_registry,
                             event_bus=bridge.event_bus, run_store=store)  # fmt: skip
    run = executor.submit(objective, user_id="u-17", auto_approve=True)
    return run.id, executor.execute(run.id)


def run_events(ledger: Ledger) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.payload) for e in ledger.iter_events() if e.run is not None]


def test_an_executed_run_records_its_lifecycle_and_tools(
    recorder: Recorder, ledger: Ledger, cli: Cli
) -> None:
    calls: list[dict[str, Any]] = []

    def kb_search(args: dict[str, Any]) -> dict[str, int]:
        calls.append(args)
        return {"hits": 2}

    registry = Registry(Tool("kb_search", kb_search))
    run_id, result = execute(recorder, "use kb_search for the refund policy", registry)
    assert calls == [{}]
    assert result["step_results"][0]["status"] == "success"
    events = run_events(ledger)
    assert [t for t, _ in events] == ["run.submitted", "run.started", "tool.called",
                                      "tool.completed", "run.completed"]  # fmt: skip
    assert events[0][1]["objective"] == "use kb_search for the refund policy"
    assert events[2][1]["args_digest"] == digest_of({})
    assert events[4][1]["steps_completed"] == 1
    assert json.loads(cli("verify", "--json").stdout)["ok"] is True
    shown = cli("runs", "show", run_id).stdout
    assert "state completed  compliant" in shown
    assert "tools 1 (0 errors)" in shown and "tool=kb_search status=ok" in shown


def test_a_denied_tool_is_never_called_and_leaves_a_guardrail_and_a_finding(
    recorder: Recorder, ledger: Ledger, cli: Cli
) -> None:
    refunds: list[dict[str, Any]] = []
    registry = Registry(Tool("refund_payment", lambda args: refunds.append(args)))
    run_id, result = execute(recorder, "refund_payment for order 9", registry)
    assert refunds == []
    [step] = result["step_results"]
    assert step["status"] == "error" and "forbidden" in step["error"]
    events = run_events(ledger)
    assert [t for t, _ in events] == ["run.submitted", "run.started", "guardrail.triggered",
                                      "run.completed"]  # fmt: skip
    assert events[2][1]["kind"] == "forbidden_action"
    findings = [json.loads(x) for x in cli("findings", "--json").stdout.splitlines()]
    assert [(f["kind"], f["run"]) for f in findings] == [("guardrail_triggered", run_id)]
    assert json.loads(cli("verify", "--json").stdout)["ok"] is True


def test_a_failing_tool_is_recorded_as_an_error(recorder: Recorder, ledger: Ledger) -> None:
    def broken(args: dict[str, Any]) -> None:
        raise OSError("index offline")

    execute(recorder, "kb_search now", Registry(Tool("kb_search", broken)))
    events = run_events(ledger)
    assert [t for t, _ in events][2:] == ["tool.called", "tool.completed", "run.completed"]
    assert (events[3][1]["status"], events[3][1]["failure_class"]) == ("error", "tool_error")
