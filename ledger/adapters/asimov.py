"""asimov-agents adapter: a task of a graph as a run, its inference clients' usage as
``llm.usage``, and the gate before each tool of a ``tool_chain``.

``AsimovBridge(recorder, agent=...)`` gives:

- ``await bridge.run_task(graph, task)``: runs ``graph.run_task(task)`` (an ``asimov.graph.Agent``)
  as one run (id ``task-`` and the task's id, objective the task's). The task's states map onto
  the run lifecycle: ``WAITING`` is not recorded (the run does not exist yet); ``EXECUTING``
  records ``run.submitted`` and ``run.started``; ``COMPLETE`` ends it with ``run.completed``;
  ``FAILED`` (every chain of the graph failed) and ``PARTIAL`` (some did) with ``run.failed``
  (class ``dependency_failed``, the status and the failed nodes in the message); an exception
  out of the graph with ``run.failed`` of its class, a cancellation with ``run.cancelled``.
- ``bridge.watch(client)``: the client's ``trace_cb`` (called by asimov after each generation
  with its ``InferenceCost``) records ``llm.usage`` on the task's run; an earlier callback is
  still called.
- ``bridge.govern(tools)``: the ``(callable, schema)`` pairs of ``InferenceClient.tool_chain``,
  each wrapped: the gate first (``run.check_tool``); a denied tool does not run, and the model
  gets ``DENIED`` and the reason as the tool's result; an allowed one is recorded as
  ``tool.called`` / ``tool.completed`` (``error`` when it raises). asimov's ``StopAsyncIteration``
  (a tool ending the chain) is a successful completion.

The run of the task being run is found through a context variable, so one bridge serves
concurrent tasks. A module of the graph is not a tool: only ``tool_chain`` tools pass the gate.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ledger.errors import InputError
from ledger.recording import Recorder
from ledger.recording.run import AsyncRun, Risk

ASIMOV_FAILED_CLASS = "dependency_failed"
"""The failure class of a task that ended ``FAILED`` or ``PARTIAL``: nodes it depended on failed."""

Tool = tuple[Callable[[Any], Awaitable[Any]], dict[str, Any]]
UsageCallback = Callable[[int, Any, Any, Any], Awaitable[None]]


class AsimovTaskFailed(Exception):
    """A task that ended ``FAILED`` or ``PARTIAL``: ``run.failed`` of ``dependency_failed``."""

    failure_class = ASIMOV_FAILED_CLASS


class AsimovBridge:
    """Records asimov-agents tasks as govledger runs of ``agent``."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        agent: str,
        side_effects: Mapping[str, str] | None = None,
        default_side_effect: str = "read",
        provider: str | None = None,
        price: Callable[[str, int, int], float] | None = None,
    ) -> None:
        self.recorder = recorder
        self.agent = agent
        self.side_effects = dict(side_effects or {})
        self.default_side_effect = default_side_effect
        self.provider = provider
        self.price = price
        self._run: contextvars.ContextVar[AsyncRun | None] = contextvars.ContextVar(
            "govledger_asimov_run", default=None
        )

    def run_of(self) -> AsyncRun:
        run = self._run.get()
        if run is None:
            raise InputError("asimov: no task is being run through AsimovBridge.run_task")
        return run

    async def run_task(
        self, graph: Any, task: Any, *, risk: Risk = "low", user: str | None = None
    ) -> str:
        """Run ``task`` on ``graph`` as one recorded run; its run id. A task that ends
        ``FAILED`` or ``PARTIAL`` returns as asimov's ``run_task`` does (the status is on the
        task); what the graph raises is raised."""
        arun = self.recorder.arun(
            agent=self.agent, objective=task.objective, risk=risk, run=f"task-{task.id}", user=user
        )
        try:
            async with arun as run:
                token = self._run.set(run)
                try:
                    await graph.run_task(task)
                finally:
                    self._run.reset(token)
                status = getattr(task.status, "name", str(task.status))
                if status != "COMPLETE":
                    failed = sorted(
                        name
                        for name, result in graph.node_results.items()
                        if not _succeeded(result)
                    )
                    raise AsimovTaskFailed(
                        f"task {status}: failed nodes {', '.join(failed) or '-'}"
                    )
        except AsimovTaskFailed:
            pass  # recorded as run.failed on the way out of the run
        return arun.id

    def watch(self, client: Any) -> Any:
        """Record the usage of inference ``client`` on the running task's run; ``client``."""
        earlier: UsageCallback | None = client.trace_cb
        model = str(client.model)
        name = type(client).__name__
        provider = self.provider or name.removesuffix("InferenceClient").removesuffix("Client")

        async def usage(trace_id: int, request: Any, response: Any, cost: Any) -> None:
            tokens_in, tokens_out = int(cost.input_tokens), int(cost.output_tokens)
            dollars = float(cost.dollar_adjust)
            if self.price is not None:
                dollars += self.price(model, tokens_in, tokens_out)
            await self.run_of().usage(
                provider.lower() or "unknown", model, tokens_in, tokens_out,
                cost_usd=dollars,
                cache_read_tokens=int(cost.cache_read_input_tokens),
                cache_write_tokens=int(cost.cache_write_input_tokens),
            )  # fmt: skip
            if earlier is not None:
                await earlier(trace_id, request, response, cost)

        client.trace_cb = usage
        return client

    def govern(self, tools: Sequence[Tool]) -> list[Tool]:
        """``tools`` for ``tool_chain`` with the gate and the recording around each call."""
        return [(self._gated(fn, schema["name"]), schema) for fn, schema in tools]

    def _gated(
        self, fn: Callable[[Any], Awaitable[Any]], name: str
    ) -> Callable[[Any], Awaitable[Any]]:
        side_effect = self.side_effects.get(name, self.default_side_effect)

        async def call(arguments: Any) -> Any:
            run = self.run_of()
            decision = await run.check_tool(name, side_effect)
            if not decision.allowed:
                return f"DENIED by the governance gate: {decision.reason}"
            handle = await run.tool_called(name, arguments, side_effect)
            try:
                result = await fn(arguments)
            except StopAsyncIteration:
                await run.tool_completed(handle, "ok")
                raise
            except Exception:
                await run.tool_completed(handle, "error", failure_class="tool_error")
                raise
            await run.tool_completed(handle, "ok", result=str(result))
            return result

        return call


def _succeeded(result: Any) -> bool:
    return isinstance(result, dict) and result.get("status") == "success"
