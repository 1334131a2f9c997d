"""techrevati-runtime adapter: its event and usage sinks record the run, and a guardrail puts
the gate before each tool.

``LedgerBridge(recorder, agent=..., objective=...)`` gives ``event_sink``, ``usage_sink`` and
``guardrail`` to pass to ``AgentSession(event_sink=..., usage_sink=..., guardrails=[...])``:

- ``agent.started`` begins a run (``run.submitted``, ``run.started``); ``agent.completed`` ends it
  with ``run.completed``; ``agent.failed`` with ``run.failed``: the runtime's failure class when
  the catalog has it, else ``unknown`` with the runtime's class in the message.
- ``agent.tool_called`` / ``agent.tool_completed`` become ``tool.called`` / ``tool.completed``;
  a tool that raises (``agent.failed`` naming the tool) becomes ``tool.completed`` ``error``.
- each turn's usage becomes ``llm.usage``.

Sinks cannot veto: the runtime catches what a sink raises. The guardrail can: it runs before
the tool, and a tool the gate denies never runs (the session raises ``GuardrailViolatedError``).
Tool arguments are not shown to sinks, so ``tool.called`` records the digest of ``{}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from techrevati.runtime import AgentEvent, UsageSnapshot
from techrevati.runtime.guardrails import GuardrailOutcome

from ledger.recording import Recorder
from ledger.recording.run import Run, ToolCall


class TechrevatiFailure(Exception):
    """The failure the runtime reported, carrying its failure class to ``run.failed``."""

    def __init__(self, failure_class: str, detail: str) -> None:
        super().__init__(f"{failure_class}: {detail}")
        self.failure_class = failure_class


class LedgerBridge:
    """Records one techrevati session at a time as a govledger run."""

    name = "govledger-gate"

    def __init__(
        self,
        recorder: Recorder,
        *,
        agent: str,
        objective: str,
        provider: str = "unknown",
        side_effects: Mapping[str, str] | None = None,
        default_side_effect: str = "read",
        risk: Any = "low",
        user: str | None = None,
    ) -> None:
        self.recorder = recorder
        self.agent = agent
        self.objective = objective
        self.provider = provider
        self.side_effects = dict(side_effects or {})
        self.default_side_effect = default_side_effect
        self.risk = risk
        self.user = user
        self.run: Run | None = None
        self._calls: dict[str, ToolCall] = {}

    def side_effect(self, tool: str) -> str:
        return self.side_effects.get(tool, self.default_side_effect)

    @property
    def event_sink(self) -> LedgerBridge:
        return self

    @property
    def usage_sink(self) -> LedgerBridge:
        return self

    @property
    def guardrail(self) -> LedgerBridge:
        return self

    # --- EventSink ---------------------------------------------------------------------------
    def emit(self, event: AgentEvent) -> None:
        name = event.event.value
        tool = (event.data or {}).get("tool")
        if name == "agent.started":
            self.run = self.recorder.run(
                agent=self.agent, objective=self.objective, risk=self.risk, user=self.user
            )
            self._calls.clear()
            self.run.begin()
            return
        run = self.run
        if run is None or run.state != "running":
            return
        if name == "agent.tool_called" and tool is not None:
            self._calls[tool] = run.tool_called(tool, {}, self.side_effect(tool))
        elif name == "agent.tool_completed" and tool in self._calls:
            run.tool_completed(self._calls.pop(tool), "ok")
        elif name == "agent.failed" and tool in self._calls:
            run.tool_completed(self._calls.pop(tool), "error", failure_class="tool_error")
        elif name == "agent.completed":
            run.end()
        elif name == "agent.failed":
            fc = event.failure_class.value if event.failure_class else "unknown"
            run.end(TechrevatiFailure(fc, event.detail or fc))

    # --- UsageSink ---------------------------------------------------------------------------
    def record(self, model: str, usage: UsageSnapshot, cost_usd: float) -> None:
        if self.run is not None and self.run.state == "running":
            self.run.usage(
                self.provider,
                model or "unknown",
                usage.input_tokens,
                usage.output_tokens,
                cost_usd=cost_usd,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            )

    # --- Guardrail -------------------------------------------------------------------------
    def check_pre(self, *, role: str, tool: str) -> GuardrailOutcome:
        if self.run is None or self.run.state != "running":
            return GuardrailOutcome(False, "no govledger run is open")
        decision = self.run.check_tool(tool, self.side_effect(tool))
        return GuardrailOutcome(decision.allowed, None if decision.allowed else decision.reason)

    def check_post(self, value: Any, *, role: str, tool: str) -> GuardrailOutcome:
        return GuardrailOutcome(True)
