"""nodus-agent adapter: the executor's tool registry puts the gate before each tool, and its
event bus records the run's lifecycle.

``bridge = NodusBridge(recorder, agent=..., tools=registry, side_effects={...})``, then
``AgentExecutor(tool_registry=bridge.tool_registry, event_bus=bridge.event_bus, ...)`` (give the
bridge the executor's ``run_store`` too, to record each run's objective and failure message):

- ``agent.started`` begins a run under the nodus run's id (``run.submitted``, ``run.started``);
  ``agent.completed`` ends it with ``run.completed``; ``agent.failed`` with ``run.failed``.
- each tool the executor looks up is wrapped: the gate first (a denial is recorded as
  ``guardrail.triggered`` and the tool is not called: the wrapper raises ``ToolDenied``, which the
  executor reports as that step's ``error``), then ``tool.called`` with the digest of its
  arguments, the tool, and ``tool.completed`` (``ok``, or ``error`` if the tool raised).

The executor swallows what its event bus raises, so the lifecycle events cannot veto; the tool
wrapper can and does. nodus-agent 0.1.0 accepts an ``approvals`` gate but never consults it, so
the veto lives in the registry.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Mapping
from typing import Any

from ledger.errors import LedgerError
from ledger.recording import Recorder
from ledger.recording.run import Run

_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("nodus_run", default=None)


class ToolDenied(PermissionError):
    """The gate denied the tool; it was not called."""


class NodusRunFailed(Exception):
    """The nodus executor reported the run failed (its message is on the ``AgentRun``)."""


class _GatedTool:
    def __init__(self, bridge: NodusBridge, tool: Any) -> None:
        self._tool = tool
        self._bridge = bridge
        self.name = tool.name
        self.description = getattr(tool, "description", "")
        self.input_schema = getattr(tool, "input_schema", {})

    def handler(self, args: Any) -> Any:
        run = _current.get()
        if run is None:
            raise ToolDenied(f"tool {self.name!r}: no govledger run is open for it")
        side_effect = self._bridge.side_effect(self.name)
        decision = run.check_tool(self.name, side_effect)
        if not decision.allowed:
            raise ToolDenied(decision.reason)
        call = run.tool_called(self.name, args, side_effect)
        try:
            result = self._tool.handler(args)
        except Exception:
            run.tool_completed(call, "error", failure_class="tool_error")
            raise
        if isinstance(result, Awaitable):
            return self._finish_async(run, call, result)
        run.tool_completed(call, "ok")
        return result

    async def _finish_async(self, run: Run, call: Any, pending: Awaitable[Any]) -> Any:
        try:
            result = await pending
        except Exception:
            run.tool_completed(call, "error", failure_class="tool_error")
            raise
        run.tool_completed(call, "ok")
        return result


class _Registry:
    def __init__(self, bridge: NodusBridge, tools: Any) -> None:
        self._bridge = bridge
        self._tools = tools

    def list(self) -> list[Any]:
        return [_GatedTool(self._bridge, t) for t in self._tools.list()]

    def get(self, name: str) -> Any:
        tool = self._tools.get(name)
        return None if tool is None else _GatedTool(self._bridge, tool)


class _EventBus:
    def __init__(self, bridge: NodusBridge, inner: Any) -> None:
        self._bridge = bridge
        self._inner = inner

    def publish(
        self,
        event_type: str,
        *,
        correlation_id: Any = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        self._bridge.on_event(event_type, dict(payload or {}))
        if self._inner is not None:
            self._inner.publish(event_type, correlation_id=correlation_id, payload=payload)


class NodusBridge:
    """Records nodus-agent runs as govledger runs of one agent."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        agent: str,
        tools: Any,
        side_effects: Mapping[str, str] | None = None,
        default_side_effect: str = "read",
        risk: Any = "low",
        event_bus: Any = None,
        run_store: Any = None,
    ) -> None:
        self.recorder = recorder
        self.agent = agent
        self.side_effects = dict(side_effects or {})
        self.default_side_effect = default_side_effect
        self.risk = risk
        self.tool_registry = _Registry(self, tools)
        self.event_bus = _EventBus(self, event_bus)
        self.run_store = run_store
        """The executor's ``AgentRunStore``, when given: objectives and failure messages."""
        self.runs: dict[str, Run] = {}

    def side_effect(self, tool: str) -> str:
        return self.side_effects.get(tool, self.default_side_effect)

    def on_event(self, event_type: str, payload: dict[str, Any]) -> None:
        run_id = str(payload.get("run_id", ""))
        stored = self.run_store.get(run_id) if self.run_store is not None else None
        if event_type == "agent.started":
            objective = getattr(stored, "objective", "") or f"nodus run {run_id}"
            run = self.recorder.run(
                agent=self.agent,
                objective=objective,
                risk=self.risk,
                run=run_id,
                user=str(payload.get("user_id") or "unknown"),
            )
            self.runs[run_id] = run
            _current.set(run)
            try:
                run.begin()
            except LedgerError:
                _current.set(None)  # the executor swallows this: no tool may run unrecorded
                raise
        elif event_type in ("agent.completed", "agent.failed") and run_id in self.runs:
            run = self.runs.pop(run_id)
            _current.set(None)
            message = getattr(stored, "error_message", None) or f"nodus run {run_id} failed"
            run.end(None if event_type == "agent.completed" else NodusRunFailed(message))
