"""The gate and correction memory through the service: ``Recorder.connect(...).check_tool`` and
``.lessons`` ask ``govledger serve`` (a real server process on 127.0.0.1, a real ledger file and
real keys) and answer exactly as ``Recorder.open`` does on the same ledger; a denial is recorded
by the service, signed by the token's key, before the answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from ledger import Recorder
from ledger.errors import UnauthorizedWrite
from ledger.recording import Decision
from ledger.store import open_store
from ledger.store.base import EventFilter
from tests.conftest import Cli
from tests.test_recorder import contract
from tests.test_service import Server

pytestmark = pytest.mark.slow

T2, T1, OTHER = "agent-t2", "agent-t1", "agent-other"
CORRECTIONS = ["Cite the source of every figure", "Cite sources for the numbers",
               "Add citations to the claims"]  # fmt: skip


def register(cli: Cli, agent: str, tier: int) -> None:
    cli("append", "agent.registered", "--signer", "root", "--agent", agent,
        "--payload", json.dumps(contract(tier)))  # fmt: skip


class Served:
    """A ledger with ``agent-t2`` (T2), ``agent-t1`` (T1) and ``agent-other`` registered, a
    server on it, and tokens: ``any`` (unbound), ``t2`` (bound to agent-t2), ``notes``
    (agent-t2, may append only x.note), ``gov`` (signs with the governor key ``root``)."""

    def __init__(self, cli: Cli, *extra: str) -> None:
        self.cli = cli
        for agent, tier in ((T2, 2), (T1, 1), (OTHER, 2)):
            register(cli, agent, tier)

        def token(name: str, *args: str) -> str:
            return str(cli("tokens", "new", name, *args).stdout.strip())

        self.tokens = {
            "any": token("any", "--signer", "rec"),
            "t2": token("t2", "--signer", "rec", "--agent", T2),
            "notes": token("notes", "--signer", "rec", "--agent", T2, "--types", "x.note"),
            "gov": token("gov", "--signer", "root"),
        }
        self.server = Server(cli, *extra)

    def connect(self, token: str = "any", **kw: Any) -> Recorder:
        return Recorder.connect(self.server.url, token=self.tokens[token], **kw)

    def local(self) -> Recorder:
        return Recorder.open(self.cli.db, keys=self.cli.keys, signer="rec")


@pytest.fixture
def served(ready: Cli) -> Iterator[Served]:
    s = Served(ready)
    yield s
    if s.server.proc.poll() is None:
        s.server.stop()


def event_at(cli: Cli, seq: int) -> Any:
    with open_store(str(cli.db)) as lg:
        return lg.event_at(seq)


QUESTIONS = [
    pytest.param(T2, "search", "read", None, True, id="allowed-by-contract"),
    pytest.param(T2, "shell.exec", "execute", None, False, id="forbidden-tool"),
    pytest.param(T2, "stripe.charge", "payment", None, False, id="forbidden-side-effect"),
    pytest.param(T2, "fs.rm", "delete", None, False, id="side-effect-not-allowed"),
    pytest.param("ghost", "search", "read", None, False, id="unregistered-agent"),
    pytest.param(T2, "search", "read", "nope", False, id="run-never-submitted"),
]


@pytest.mark.parametrize(("agent", "tool", "side_effect", "run", "allowed"), QUESTIONS)
def test_the_service_answers_the_gate_as_a_local_recorder_does(
    served: Served, agent: str, tool: str, side_effect: str, run: str | None, allowed: bool
) -> None:
    with served.local() as local, served.connect() as remote:
        here = local.check_tool(agent, tool, side_effect, run)
        there = remote.check_tool(agent, tool, side_effect, run)
    assert here.allowed is there.allowed is allowed
    assert replace(there, guardrail_seq=None) == replace(here, guardrail_seq=None)
    if allowed:
        assert here.guardrail_seq is there.guardrail_seq is None
        return
    assert here.guardrail_seq is not None and there.guardrail_seq == here.guardrail_seq + 1
    mine, theirs = (
        event_at(served.cli, here.guardrail_seq),
        event_at(served.cli, there.guardrail_seq),
    )
    assert (theirs.type, theirs.agent, theirs.run) == ("guardrail.triggered", agent, run)
    assert theirs.payload == mine.payload
    assert theirs.key == mine.key  # the token's key, ``rec``
    assert served.cli.json("verify")["ok"] is True


def test_a_denied_call_in_a_connected_run_is_a_finding(served: Served) -> None:
    with served.connect("t2") as rec, rec.run(agent=T2, objective="o", run="r-remote") as run:
        ok = run.check_tool("search", "read")
        assert ok == Decision(True, "agent 'agent-t2' (T2) may call 'search' (read) under its "
                              "contract (the approval rule; no grant needed at T2)")  # fmt: skip
        run.tool_called("search", {"q": 1}, "read")
        denied = run.check_tool("stripe.charge", "payment")
    assert (denied.allowed, denied.finding_kind) == (False, "forbidden_action")
    shown = served.cli.json("runs", "show", "r-remote")
    assert [e["type"] for e in shown["timeline"]] == [
        "run.submitted", "run.started", "tool.called", "guardrail.triggered", "run.completed"]  # fmt: skip
    assert [(f["kind"], f["seq"]) for f in shown["findings"]] == [
        ("guardrail_triggered", denied.guardrail_seq)
    ]
    assert shown["compliant"] is False


def test_a_run_approved_remotely_is_judged_from_the_head(served: Served) -> None:
    """A run of a T1 agent is denied until a governor approves it; the next check sees it."""
    with served.connect() as rec, rec.run(agent=T1, objective="o", run="r-t1") as run:
        assert run.check_tool("search", "read").finding_kind == "started_without_approval"
        served.cli("append", "run.approved", "--signer", "root", "--agent", T1, "--run", "r-t1",
                   "--payload", json.dumps({"approver": "alice", "mode": "human",
                                            "plan_digest": "ab" * 32}))  # fmt: skip
        assert run.check_tool("search", "read").finding_kind == "tool_outside_grant"


def test_a_token_bound_to_another_agent_is_refused(served: Served) -> None:
    with served.connect("t2", on_error="open") as rec:
        size = served.cli.json("verify")["events"]
        with pytest.raises(UnauthorizedWrite) as gate:
            rec.check_tool(OTHER, "shell.exec", "execute")
        with pytest.raises(UnauthorizedWrite) as lessons:
            rec.lessons(OTHER)
    assert gate.value.message == (
        "gate: token t2 is bound to agent 'agent-t2'; it may not ask about 'agent-other'"
    )
    assert lessons.value.message == (
        "lessons: token t2 is bound to agent 'agent-t2'; it may not ask about 'agent-other'"
    )
    assert served.cli.json("verify")["events"] == size  # nothing recorded


def test_a_token_that_may_not_record_a_denial_may_not_ask_the_gate(served: Served) -> None:
    with served.connect("notes") as rec, pytest.raises(UnauthorizedWrite) as e:
        rec.check_tool(T2, "search", "read")
    assert e.value.message == (
        "gate: token notes may not append guardrail.triggered (allowed: x.note)"
    )


def test_a_denial_the_service_cannot_record_follows_the_failure_policy(served: Served) -> None:
    """The ``gov`` token signs with a governor key, which may not sign ``guardrail.triggered``:
    the service answers 403 with the decision; an open recorder returns it unrecorded, an
    ``auto`` one raises for a payment."""
    with served.connect("gov", on_error="open") as rec:
        d = rec.check_tool(T2, "stripe.charge", "payment")
    assert (d.allowed, d.finding_kind, d.guardrail_seq) == (False, "forbidden_action", None)
    with served.connect("gov") as rec, pytest.raises(UnauthorizedWrite) as e:
        rec.check_tool(T2, "stripe.charge", "payment")
    assert e.value.message == "gate: a governor key may not sign guardrail.triggered (key root)"


def test_lessons_through_the_service_are_the_local_ones(served: Served) -> None:
    with served.connect("t2") as rec:
        assert rec.lessons(T2) == []
        for text in CORRECTIONS:
            rec.correction(T2, text, "reviewer", topic="citations")
        remote = rec.lessons(T2)
    with served.local() as local:
        assert remote == local.lessons(T2) != []
    assert remote[0].count == 3 and remote[0].examples == tuple(CORRECTIONS)


@pytest.mark.parametrize(
    ("body", "headers", "status", "detail"),
    [
        ("[]", {}, 400, "request body: expected a JSON object"),
        ('{"agent": "a", "tool": "t"}', {}, 422,
         "gate: side_effect: expected a non-empty string, found None"),
        ('{"agent": "a", "tool": "t", "side_effect": "read", "x": 1}', {}, 422,
         "gate: unknown field 'x' (expected agent, tool, side_effect, run)"),
        ('{"agent": "a", "tool": "t", "side_effect": "read", "run": 3}', {}, 422,
         "gate: run: expected a non-empty string or null, found 3"),
        ("{}", {"content-type": "application/x-ndjson"}, 415,
         "Content-Type 'application/x-ndjson': expected application/json"),
        ("{}", {"authorization": "Bearer nope"}, 401, "unknown or revoked token"),
    ],
    ids=["not-an-object", "missing-field", "unknown-field", "run-not-a-string", "media-type",
         "unknown-token"],
)  # fmt: skip
def test_bad_gate_requests_get_their_status(
    served: Served, body: str, headers: dict[str, str], status: int, detail: str
) -> None:
    sent = {"content-type": "application/json",
            "authorization": f"Bearer {served.tokens['any']}", **headers}  # fmt: skip
    r = httpx.post(f"{served.server.url}/v1/gate", content=body, headers=sent)
    assert (r.status_code, r.json()["error"]["detail"]) == (status, detail)


def test_lessons_need_a_token(served: Served) -> None:
    r = httpx.get(f"{served.server.url}/v1/agents/{T2}/lessons")
    assert r.status_code == 401


def test_async_runs_check_tools_through_the_service(served: Served) -> None:
    async def main() -> list[Decision]:
        with served.connect() as rec:

            async def one(i: int) -> list[Decision]:
                async with rec.arun(agent=T2, objective="o", run=f"r-a{i}") as run:
                    return [await run.check_tool("search", "read"),
                            await run.check_tool("pay", "payment")]  # fmt: skip

            return [d for ds in await asyncio.gather(*(one(i) for i in range(4))) for d in ds]

    decisions = asyncio.run(main())
    assert [d.allowed for d in decisions] == [True, False] * 4
    with open_store(str(served.cli.db)) as lg:
        for i in range(4):
            kinds = [e.type for e in lg.iter_events(filter=EventFilter(run=f"r-a{i}"))]
            assert kinds.count("guardrail.triggered") == 1


def test_the_openai_agents_adapter_works_unchanged_over_a_connected_recorder(
    served: Served,
) -> None:
    """The adapter's own scenario (a lookup, a denied refund, an answer), through the service."""
    pytest.importorskip("agents", reason="the openai-agents extra is not installed")
    from agents import RunConfig, Runner

    from ledger.adapters.openai_agents import LedgerHooks
    from tests.test_adapter_openai_agents import DONE, LOOKUP, REFUND, agent_with

    register(served.cli, "support-bot", 2)
    ran: list[str] = []
    agent = agent_with([LOOKUP, REFUND, DONE], ran)

    async def go() -> str:
        with served.connect() as recorder:
            async with recorder.arun(agent="support-bot", objective="ticket", user="ann") as run:
                h = LedgerHooks(run, side_effects={"lookup": "read", "refund": "payment"})
                await Runner.run(h.govern(agent), "help", hooks=h,
                                 run_config=RunConfig(tracing_disabled=True))  # fmt: skip
            return run.id

    run = asyncio.run(go())
    assert ran == ["lookup"]
    shown = served.cli.json("runs", "show", run)
    assert [e["type"] for e in shown["timeline"]] == [
        "run.submitted", "run.started", "llm.usage", "tool.called", "tool.completed",
        "llm.usage", "guardrail.triggered", "llm.usage", "run.completed"]  # fmt: skip
    [finding] = served.cli.json_lines("findings", "--run", run)
    assert (
        "tool 'refund' (payment) denied: 'payment' is in the forbidden actions"
        in (finding["detail"])
    )
    assert served.cli.json("verify")["ok"] is True
