"""noos adapter: a tee of a ``noos.Regulator``'s LLM events and decisions into a run.

``tee = NoosTee(Regulator.for_user("u"), run, model="...")`` inside ``recorder.run(...)``; feed
events through the tee's methods (named and shaped as ``noos.LLMEvent``'s factories) instead of
``regulator.on_event(LLMEvent.x(...))``, and call ``tee.decide()`` instead of ``decide()``. Each
event goes to the regulator, and:

| tee method | recorded |
| --- | --- |
| ``turn_start``, ``token``, ``turn_complete`` | nothing (text is not logged) |
| ``cost(tokens_in, tokens_out, wallclock_ms, provider)`` | ``llm.usage`` |
| ``tool_call(tool_name, args_json)`` | ``tool.called`` (the digest of the arguments) |
| ``tool_result(tool_name, success, duration_ms, error_summary)`` | ``tool.completed`` |
| ``quality_feedback(quality)`` | ``feedback.quality`` |
| ``user_correction(message, corrects_last)`` | ``correction.recorded`` |
| ``decide()`` other than ``continue`` | ``guardrail.triggered`` (kinds in ``GUARDRAIL_KINDS``) |

noos decides, it does not run tools: this adapter cannot veto anything. A runtime that acts on
noos's decisions should also ask ``run.check_tool`` before each tool.
"""

from __future__ import annotations

import json
from typing import Any

from noos import LLMEvent

from ledger.recording.run import Run, ToolCall

GUARDRAIL_KINDS = {
    "cost_cap_reached": ("budget_exceeded", "critical"),
    "repeated_tool_call_loop": ("tool_loop", "critical"),
    "quality_decline_no_recovery": ("quality_decline", "critical"),
    "repeated_failure_pattern": ("repeated_failure", "critical"),
    "scope_drift_warn": ("scope_drift", "warning"),
    "procedural_warning": ("procedural_warning", "info"),
    "low_confidence_spans": ("low_confidence", "info"),
}
"""A decision (or a circuit break's reason) → the ``guardrail.triggered`` kind and severity."""


class NoosTee:
    """Feeds one regulator and records what it is fed, and what it decides, on one run."""

    def __init__(
        self,
        regulator: Any,
        run: Run,
        *,
        model: str = "unknown",
        by: str = "user",
        side_effect: str = "read",
    ) -> None:
        self.regulator = regulator
        self.run = run
        self.model = model
        self.by = by
        self.side_effect = side_effect
        self._calls: dict[str, list[ToolCall]] = {}

    def turn_start(self, user_message: str) -> None:
        self.regulator.on_event(LLMEvent.turn_start(user_message))

    def token(self, token: str, logprob: float, index: int) -> None:
        self.regulator.on_event(LLMEvent.token(token, logprob, index))

    def turn_complete(self, full_response: str) -> None:
        self.regulator.on_event(LLMEvent.turn_complete(full_response))

    def cost(
        self, tokens_in: int, tokens_out: int, wallclock_ms: int, provider: str | None = None
    ) -> None:
        self.regulator.on_event(LLMEvent.cost(tokens_in, tokens_out, wallclock_ms, provider))
        self.run.usage(
            provider or "unknown", self.model, tokens_in, tokens_out, wallclock_ms=wallclock_ms
        )

    def tool_call(self, tool_name: str, args_json: str | None = None) -> None:
        self.regulator.on_event(LLMEvent.tool_call(tool_name, args_json))
        args = json.loads(args_json) if args_json else {}
        call = self.run.tool_called(tool_name, args, self.side_effect)
        self._calls.setdefault(tool_name, []).append(call)

    def tool_result(
        self, tool_name: str, success: bool, duration_ms: int, error_summary: str | None = None
    ) -> None:
        self.regulator.on_event(
            LLMEvent.tool_result(tool_name, success, duration_ms, error_summary)
        )
        pending = self._calls.get(tool_name)
        if pending:
            self.run.tool_completed(
                pending.pop(0),
                "ok" if success else "error",
                duration_ms,
                failure_class=None if success else "tool_error",
            )

    def quality_feedback(self, quality: float) -> None:
        self.regulator.on_event(LLMEvent.quality_feedback(quality, None))
        self.run.feedback(round(quality * 10_000), self.by)

    def user_correction(self, correction_message: str, corrects_last: bool = True) -> None:
        self.regulator.on_event(LLMEvent.user_correction(correction_message, corrects_last))
        self.run.correction(correction_message, self.by)

    def decide(self) -> Any:
        decision = self.regulator.decide()
        if decision.kind != "continue":
            reason = decision.reason.kind if decision.reason is not None else decision.kind
            kind, severity = GUARDRAIL_KINDS.get(reason, (reason, "warning"))
            detail = f"noos {decision.kind} ({reason}): {decision.suggestion or ''}".rstrip(": ")
            self.run.guardrail(kind, severity, detail)
        return decision
