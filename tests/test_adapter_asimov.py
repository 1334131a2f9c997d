"""The asimov-agents adapter: a real asimov graph (``asimov.graph.Agent``, offline mock Redis
cache) runs a task whose module calls ``tool_chain`` on a scripted ``InferenceClient`` (scripted
answers and token counts, never the network); the task is recorded as a run, the usage as
``llm.usage``, the gate keeps a denied tool from running, and FAILED / PARTIAL tasks end the run
as documented."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("asimov", reason="asimov-agents is not installed")

with warnings.catch_warnings():
    # Google's client libraries warn at import that they will drop Python 3.11 one day.
    warnings.simplefilter("ignore", FutureWarning)
    from asimov.caches.mock_redis_cache import MockRedisCache
    from asimov.graph import Agent, AgentModule, ModuleType, Node, NodeConfig
    from asimov.graph.tasks import Task, TaskStatus
    from asimov.services.inference_clients import ChatMessage, ChatRole, InferenceClient

from ledger import Recorder
from ledger.adapters.asimov import AsimovBridge
from ledger.recording import digest_of
from ledger.store.sqlite import Draft, Ledger
from tests.conftest import Cli, LedgerKeys
from tests.test_recorder import contract

AGENT = "asimov-bot"
SIDE_EFFECTS = {"lookup": "read", "refund": "payment"}


class ScriptedClient(InferenceClient):
    """An asimov inference client answering from a script: each generation is the next list of
    content blocks, and costs 100 tokens in, 20 out (5 of the input read from the cache)."""

    def __init__(self, turns: list[list[dict[str, Any]]]) -> None:
        super().__init__()
        self.model = "scripted-1"
        self.turns = list(turns)

    async def _tool_chain_stream(self, serialized_messages: Any, tools: Any, system: Any = None,
                                 max_tokens: Any = 1024, top_p: Any = 0.9,
                                 temperature: Any = 0.5, tool_choice: Any = "any",
                                 middlewares: Any = ()) -> list[dict[str, Any]]:  # fmt: skip
        self._cost.input_tokens += 100
        self._cost.output_tokens += 20
        self._cost.cache_read_input_tokens += 5
        return self.turns.pop(0)

    async def get_generation(self, messages: Any, max_tokens: Any = 4096, top_p: Any = 0.9,
                             temperature: Any = 0.5) -> str:  # fmt: skip
        raise AssertionError("not scripted")

    def connect_and_listen(self, messages: Any, max_tokens: Any = 4096, top_p: Any = 0.9,
                           temperature: Any = 0.5) -> AsyncGenerator[str, None]:  # fmt: skip
        raise AssertionError("not scripted")


def use(name: str, n: int, **arguments: Any) -> list[dict[str, Any]]:
    return [{"type": "tool_use", "id": f"call-{n}", "name": name, "input": arguments}]


class ChainModule(AgentModule):
    """A module of the graph that lets the model call tools until it calls ``finish``."""

    type: ModuleType = ModuleType.EXECUTOR
    make: Any
    """() -> (client, tools), built per run by the test."""

    async def process(self, cache: Any, semaphore: Any) -> dict[str, Any]:
        client, tools = self.make()
        messages = [ChatMessage(role=ChatRole.USER, content="refund ticket 4711")]
        out = await client.tool_chain(messages, tools)
        return {"status": "success", "result": len(out)}


class FailingModule(AgentModule):
    type: ModuleType = ModuleType.EXECUTOR

    async def process(self, cache: Any, semaphore: Any) -> dict[str, Any]:
        return {"status": "error", "result": "upstream down"}


@pytest.fixture
def recorder(ledger: Ledger, keys: LedgerKeys, tmp_path: Path) -> Iterator[Recorder]:
    ledger.append(Draft("agent.registered", contract(2), agent=AGENT), signer=keys.root)
    r = Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="recorder")
    yield r
    r.close()


def tools_of(ran: list[str]) -> list[tuple[Callable[[Any], Any], dict[str, Any]]]:
    async def lookup(arguments: dict[str, Any]) -> str:
        ran.append("lookup")
        return "customer c-17"

    async def refund(arguments: dict[str, Any]) -> str:
        ran.append("refund")
        return "refunded"

    async def finish(arguments: dict[str, Any]) -> str:
        ran.append("finish")
        raise StopAsyncIteration  # asimov's way for a tool to end the chain

    return [(fn, {"name": fn.__name__, "description": fn.__name__, "input_schema": {}})
            for fn in (lookup, refund, finish)]  # fmt: skip


def graph(*nodes: Node) -> Agent:
    g = Agent(cache=MockRedisCache())
    g.add_multiple_nodes(list(nodes))
    return g


def chain_node(bridge: AsimovBridge, turns: list[list[dict[str, Any]]], ran: list[str]) -> Node:
    def make() -> tuple[InferenceClient, list[Any]]:
        return bridge.watch(ScriptedClient(turns)), bridge.govern(tools_of(ran))

    return Node(name="answer", modules=[ChainModule(name="chain", make=make)],
                node_config=NodeConfig(max_retries=1))  # fmt: skip


def payloads(cli: Cli, run: str) -> list[tuple[str, dict[str, Any]]]:
    with Ledger.open(cli.db) as lg:
        return [(e.type, e.payload) for e in lg.iter_events() if e.run == run]


def run_task(bridge: AsimovBridge, g: Agent, task: Task) -> str:
    return asyncio.run(bridge.run_task(g, task))


def test_a_task_is_recorded_as_a_run_and_a_denied_tool_never_runs(
    recorder: Recorder, cli: Cli
) -> None:
    bridge = AsimovBridge(recorder, agent=AGENT, side_effects=SIDE_EFFECTS,
                          price=lambda model, i, o: 0.000001 * (i + o))  # fmt: skip
    ran: list[str] = []
    turns = [use("lookup", 1, email="ann@example.com"), use("refund", 2, customer="c-17"),
             use("finish", 3)]  # fmt: skip
    task = Task(type="support", objective="refund ticket 4711")
    run = run_task(bridge, graph(chain_node(bridge, turns, ran)), task)
    assert (run, task.status) == (f"task-{task.id}", TaskStatus.COMPLETE)
    assert ran == ["lookup", "finish"]
    shown = cli.json("runs", "show", run)
    timeline = [(e["type"], e) for e in shown["timeline"]]
    assert [t for t, _ in timeline] == [
        "run.submitted", "run.started",
        "llm.usage", "tool.called", "tool.completed",
        "llm.usage", "guardrail.triggered",
        "llm.usage", "tool.called", "tool.completed",
        "run.completed",
    ]  # fmt: skip
    assert (shown["state"], shown["tool_calls"], shown["steps_completed"]) == ("completed", 2, 2)
    assert (shown["llm_calls"], shown["tokens_in"], shown["tokens_out"]) == (3, 300, 60)
    assert shown["cost_micro_usd"] == 360
    [finding] = cli.json_lines("findings", "--run", run)
    assert finding["kind"] == "guardrail_triggered"
    assert (
        "tool 'refund' (payment) denied: 'payment' is in the forbidden actions"
        in (finding["detail"])
    )
    recorded = payloads(cli, run)
    usage = next(p for t, p in recorded if t == "llm.usage")
    assert (usage["provider"], usage["model"], usage["cache_read_tokens"]) == (
        "scripted", "scripted-1", 5)  # fmt: skip
    called = next(p for t, p in recorded if t == "tool.called")
    assert called["args_digest"] == digest_of({"email": "ann@example.com"})
    assert cli.json("verify")["ok"] is True


def test_a_failed_task_ends_the_run_failed(recorder: Recorder, cli: Cli) -> None:
    bridge = AsimovBridge(recorder, agent=AGENT)
    node = Node(name="fetch", modules=[FailingModule(name="fetcher")],
                node_config=NodeConfig(max_retries=1))  # fmt: skip
    task = Task(type="support", objective="o")
    run = run_task(bridge, graph(node), task)
    assert task.status == TaskStatus.FAILED
    shown = cli.json("runs", "show", run)
    assert [e["type"] for e in shown["timeline"]] == ["run.submitted", "run.started", "run.failed"]
    assert shown["state"] == "failed"
    assert payloads(cli, run)[-1][1] == {"failure_class": "dependency_failed",
                                         "message": "AsimovTaskFailed: task FAILED: failed nodes fetch"}  # fmt: skip


def test_a_partial_task_ends_the_run_failed_naming_the_failed_nodes(
    recorder: Recorder, cli: Cli
) -> None:
    bridge = AsimovBridge(recorder, agent=AGENT, side_effects=SIDE_EFFECTS)
    ran: list[str] = []
    bad = Node(name="fetch", modules=[FailingModule(name="fetcher")],
               node_config=NodeConfig(max_retries=1))  # fmt: skip
    good = chain_node(bridge, [use("lookup", 1, email="a"), use("finish", 2)], ran)
    task = Task(type="support", objective="o")
    run = run_task(bridge, graph(bad, good), task)
    assert task.status == TaskStatus.PARTIAL
    assert ran == ["lookup", "finish"]
    shown = cli.json("runs", "show", run)
    kinds = [e["type"] for e in shown["timeline"]]
    assert kinds[:2] == ["run.submitted", "run.started"] and kinds[-1] == "run.failed"
    assert kinds.count("tool.completed") == 2
    assert payloads(cli, run)[-1][1] == {"failure_class": "dependency_failed",
                                         "message": "AsimovTaskFailed: task PARTIAL: failed nodes fetch"}  # fmt: skip


def test_a_waiting_task_is_not_recorded(recorder: Recorder, ledger: Ledger) -> None:
    size = ledger.size
    task = Task(type="support", objective="o")
    AsimovBridge(recorder, agent=AGENT)
    assert task.status == TaskStatus.WAITING and ledger.size == size


def test_an_earlier_usage_callback_is_still_called(recorder: Recorder) -> None:
    bridge = AsimovBridge(recorder, agent=AGENT, side_effects=SIDE_EFFECTS)
    seen: list[int] = []

    async def earlier(trace_id: int, request: Any, response: Any, cost: Any) -> None:
        seen.append(cost.input_tokens)

    def make() -> tuple[InferenceClient, list[Any]]:
        client = ScriptedClient([use("finish", 1)])
        client.trace_cb = earlier
        return bridge.watch(client), bridge.govern(tools_of([]))

    node = Node(name="answer", modules=[ChainModule(name="chain", make=make)])
    run_task(bridge, graph(node), Task(type="t", objective="o"))
    assert seen == [100]
