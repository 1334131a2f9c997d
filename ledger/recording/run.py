"""One run of an agent, recorded as it happens (SPEC §2.4 run lifecycle, §6).

``with recorder.run(...) as run:`` records ``run.submitted`` and ``run.started`` (one atomic
batch) on entry, and on exit ``run.completed``, ``run.failed`` with the failure class of the
exception (``values.failure_class_of``) or ``run.cancelled`` (``values.is_cancellation``); the
exception is re-raised. ``AsyncRun`` is the same for asyncio: each append runs in the
recorder's threads, and an awaited call returns once its event is durable.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from ledger.errors import InputError
from ledger.event.drafts import Draft
from ledger.recording.transport import Receipt
from ledger.recording.values import (
    basis_points,
    describe,
    digest_of,
    failure_class_of,
    is_cancellation,
    micro_usd,
)

if TYPE_CHECKING:
    from ledger.recording.gate import Decision
    from ledger.recording.recorder import Recorder

Risk = Literal["low", "medium", "high"]
Status = Literal["ok", "error"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The handle of a recorded ``tool.called``: hand it to ``tool_completed``."""

    tool: str
    side_effect: str
    args_digest: str
    seq: int | None
    """Where the call was recorded; None when the failure policy let an unrecorded call go on."""
    started_ns: int
    """``time.monotonic_ns()`` at the call: the default ``duration_ms`` of its completion."""


def _seq(receipts: list[Receipt] | None) -> int | None:
    return receipts[-1].seq if receipts else None


class Run:
    """A run being recorded. Its methods are thread-safe and each returns once its event is
    durable (or, under an open failure policy, once the failure is logged)."""

    def __init__(
        self,
        recorder: Recorder,
        *,
        agent: str,
        objective: str,
        risk: Risk,
        auto_approve: bool,
        run: str,
        user: str,
        actor: str | None,
    ) -> None:
        self.recorder = recorder
        self.agent = agent
        self.id = run
        self.objective = objective
        self.risk = risk
        self.auto_approve = auto_approve
        self.user = user
        self.actor = actor
        self.state: Literal["new", "running", "completed", "failed", "cancelled"] = "new"
        self.steps_completed = 0
        """``tool_completed`` calls with status ``ok``: ``run.completed``'s ``steps_completed``."""
        self.outputs_digest: str | None = None
        self._lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Run:
        self.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end(exc)

    def begin(self) -> list[Receipt] | None:
        """Record ``run.submitted`` and ``run.started`` (one atomic append)."""
        with self._lock:
            if self.state != "new":
                raise InputError(f"run {self.id!r}: already begun ({self.state})")
            self.state = "running"
        submitted = Draft(
            "run.submitted",
            {
                "objective": self.objective,
                "user": self.user,
                "risk": self.risk,
                "auto_approve": self.auto_approve,
            },
            agent=self.agent,
            run=self.id,
            actor=self.actor,
        )
        started = Draft("run.started", {}, agent=self.agent, run=self.id)
        return self.recorder.record([submitted, started], what=f"run {self.id!r} start")

    def end(self, exc: BaseException | None = None) -> list[Receipt] | None:
        """Record how the run ended: ``run.completed`` when ``exc`` is None, else
        ``run.cancelled`` or ``run.failed``. A recording error while an exception is already
        on its way is logged and noted on that exception, never raised in its place."""
        with self._lock:
            if self.state != "running":
                raise InputError(f"run {self.id!r}: cannot end a run that is {self.state}")
            if exc is None:
                self.state = "completed"
                payload: dict[str, Any] = {"steps_completed": self.steps_completed}
                if self.outputs_digest is not None:
                    payload["outputs_digest"] = self.outputs_digest
                draft = Draft("run.completed", payload, agent=self.agent, run=self.id)
            elif is_cancellation(exc):
                self.state = "cancelled"
                draft = Draft(
                    "run.cancelled", {"reason": describe(exc)}, agent=self.agent, run=self.id
                )
            else:
                self.state = "failed"
                draft = Draft(
                    "run.failed",
                    {"failure_class": failure_class_of(exc), "message": describe(exc)},
                    agent=self.agent,
                    run=self.id,
                )
        return self.recorder.record([draft], what=f"run {self.id!r} end", pending=exc)

    def set_outputs(self, outputs: Any) -> str:
        """Keep the digest of the run's outputs for ``run.completed`` (never the outputs)."""
        self.outputs_digest = digest_of(outputs, "outputs")
        return self.outputs_digest

    def _draft(self, type_: str, payload: dict[str, Any]) -> Draft:
        if self.state != "running":
            raise InputError(
                f"run {self.id!r}: cannot record {type_} on a run that is {self.state}"
            )
        return Draft(type_, payload, agent=self.agent, run=self.id)

    def _one(
        self, type_: str, payload: dict[str, Any], side_effect: str | None = None
    ) -> int | None:
        draft = self._draft(type_, payload)
        return _seq(self.recorder.record([draft], side_effect=side_effect, what=type_))

    # --- runtime events (SPEC §2.4) -------------------------------------------------------

    def plan(
        self,
        steps: Sequence[Mapping[str, Any]],
        *,
        required_tier: int,
        risk: Risk | None = None,
    ) -> int | None:
        """Record ``run.planned``. Each step is ``{"tool", "side_effect", "args" or
        "args_digest", "reversible"}``; ``args`` is digested, never stored."""
        out = []
        for i, step in enumerate(steps):
            s = dict(step)
            if "args" in s:
                s["args_digest"] = digest_of(s.pop("args"), f"plan: step {i + 1}: args")
            out.append(s)
        payload = {"steps": out, "risk": risk or self.risk, "required_tier": required_tier}
        return self._one("run.planned", payload)

    def tool_called(self, tool: str, args: Any, side_effect: str) -> ToolCall:
        """Record ``tool.called`` with ``args_digest`` = SHA-256 of the RFC 8785 form of
        ``args`` (the arguments themselves are never stored). Returns the call's handle."""
        started = time.monotonic_ns()
        digest = digest_of(args, f"tool_called {tool!r}: args")
        payload = {"tool": tool, "args_digest": digest, "side_effect": side_effect}
        seq = self._one("tool.called", payload, side_effect)
        return ToolCall(tool, side_effect, digest, seq, started)

    def tool_completed(
        self,
        call: ToolCall,
        status: Status = "ok",
        duration_ms: int | None = None,
        result: Any = None,
        *,
        failure_class: str | None = None,
    ) -> int | None:
        """Record ``tool.completed`` for ``call``: ``duration_ms`` defaults to the time since
        the call; ``result`` (when not None) is stored as ``result_digest`` only."""
        if duration_ms is None:
            duration_ms = (time.monotonic_ns() - call.started_ns) // 1_000_000
        payload: dict[str, Any] = {"tool": call.tool, "status": status, "duration_ms": duration_ms}
        if result is not None:
            payload["result_digest"] = digest_of(result, f"tool_completed {call.tool!r}: result")
        if failure_class is not None:
            payload["failure_class"] = failure_class
        seq = self._one("tool.completed", payload, call.side_effect)
        if status == "ok":
            with self._lock:
                self.steps_completed += 1
        return seq

    def usage(
        self,
        provider: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        cost_micro_usd: int | None = None,
        *,
        cost_usd: Any = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        wallclock_ms: int = 0,
    ) -> int | None:
        """Record ``llm.usage``. Give the cost as integer ``cost_micro_usd`` or as ``cost_usd``
        (float, ``Decimal`` or int dollars, converted once by ``values.micro_usd``), not both."""
        if cost_micro_usd is not None and cost_usd is not None:
            raise InputError("usage: give cost_micro_usd or cost_usd, not both")
        cost = micro_usd(cost_usd) if cost_usd is not None else (cost_micro_usd or 0)
        payload = {
            "provider": provider,
            "model": model,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
            "cost_micro_usd": cost,
            "wallclock_ms": wallclock_ms,
        }
        return self._one("llm.usage", payload)

    def decision(
        self,
        decision: str,
        confidence_bp: int | None = None,
        rationale: str = "",
        *,
        confidence: Any = None,
    ) -> int | None:
        """Record ``decision.recorded`` (``EXECUTE``, ``SKIP``, ``ESCALATE``,
        ``INSUFFICIENT_INFORMATION``, ``ERROR``); the confidence as ``confidence_bp`` or as a
        ratio ``confidence`` in [0, 1] (converted to basis points, half to even)."""
        if (confidence_bp is None) == (confidence is None):
            raise InputError("decision: give exactly one of confidence_bp and confidence")
        bp = confidence_bp if confidence_bp is not None else basis_points(confidence)
        payload = {"decision": decision, "confidence_bp": bp, "rationale": rationale}
        return self._one("decision.recorded", payload)

    def guardrail(self, kind: str, severity: str = "warning", detail: str = "") -> int | None:
        """Record ``guardrail.triggered`` on this run (``warning`` and ``critical`` are
        findings; ``info`` is not)."""
        return self._one(
            "guardrail.triggered", {"kind": kind, "severity": severity, "detail": detail}
        )

    def feedback(self, score_bp: int, by: str) -> int | None:
        """Record ``feedback.quality`` on this run."""
        return self._one("feedback.quality", {"score_bp": score_bp, "by": by})

    def correction(self, text: str, by: str, topic: str | None = None) -> int | None:
        """Record ``correction.recorded`` on this run."""
        payload: dict[str, Any] = {"text": text, "by": by}
        if topic is not None:
            payload["topic"] = topic
        return self._one("correction.recorded", payload)

    def check_tool(self, tool: str, side_effect: str) -> Decision:
        """The gate (``Recorder.check_tool``) for this run's agent and this run."""
        return self.recorder.check_tool(self.agent, tool, side_effect, run=self.id)


P = ParamSpec("P")
T = TypeVar("T")


class AsyncRun:
    """``Run`` for asyncio: the same methods, awaited; each append runs in the recorder's
    threads so the event loop never waits on the disk."""

    def __init__(self, run: Run) -> None:
        self.sync = run

    @property
    def id(self) -> str:
        return self.sync.id

    @property
    def agent(self) -> str:
        return self.sync.agent

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.sync.recorder.in_thread(fn, *args, **kwargs)

    async def __aenter__(self) -> AsyncRun:
        await self._call(self.sync.begin)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Shielded: a run being cancelled still records that it was.
        await asyncio.shield(self._call(self.sync.end, exc))

    def set_outputs(self, outputs: Any) -> str:
        return self.sync.set_outputs(outputs)

    async def plan(
        self, steps: Sequence[Mapping[str, Any]], *, required_tier: int, risk: Risk | None = None
    ) -> int | None:
        return await self._call(self.sync.plan, steps, required_tier=required_tier, risk=risk)

    async def tool_called(self, tool: str, args: Any, side_effect: str) -> ToolCall:
        return await self._call(self.sync.tool_called, tool, args, side_effect)

    async def tool_completed(
        self,
        call: ToolCall,
        status: Status = "ok",
        duration_ms: int | None = None,
        result: Any = None,
        *,
        failure_class: str | None = None,
    ) -> int | None:
        if duration_ms is None:  # measured here, not when a thread gets to it
            duration_ms = (time.monotonic_ns() - call.started_ns) // 1_000_000
        return await self._call(
            self.sync.tool_completed, call, status, duration_ms, result, failure_class=failure_class
        )

    async def usage(
        self,
        provider: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        cost_micro_usd: int | None = None,
        *,
        cost_usd: Any = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        wallclock_ms: int = 0,
    ) -> int | None:
        return await self._call(
            self.sync.usage,
            provider,
            model,
            tokens_in,
            tokens_out,
            cost_micro_usd,
            cost_usd=cost_usd,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            wallclock_ms=wallclock_ms,
        )

    async def decision(
        self,
        decision: str,
        confidence_bp: int | None = None,
        rationale: str = "",
        *,
        confidence: Any = None,
    ) -> int | None:
        return await self._call(
            self.sync.decision, decision, confidence_bp, rationale, confidence=confidence
        )

    async def guardrail(self, kind: str, severity: str = "warning", detail: str = "") -> int | None:
        return await self._call(self.sync.guardrail, kind, severity, detail)

    async def feedback(self, score_bp: int, by: str) -> int | None:
        return await self._call(self.sync.feedback, score_bp, by)

    async def correction(self, text: str, by: str, topic: str | None = None) -> int | None:
        return await self._call(self.sync.correction, text, by, topic)

    async def check_tool(self, tool: str, side_effect: str) -> Decision:
        return await self._call(self.sync.check_tool, tool, side_effect)
