"""The reliability signals (tool loops, cost caps, quality decline, repeated failures), detected event by event from raw events.

Each rule keeps a streak (a run's tool calls, a run's or an agent-day's ``llm.usage``, an
agent's ``feedback.quality`` scores, an agent's ``run.failed``) and fires once per streak, at the
event that completes it: ``seq`` is that event, ``evidence_seq`` the first event of the streak,
``triggers`` every event of it. A runtime ``guardrail.triggered`` for the same thing is linked to
the signal (before or after it fires, while the streak is open), never counted twice. The rules,
thresholds and link table are in docs/corrections.md ("Reliability signals"); the thresholds are
the ``[reliability]`` section of the policy in force at the event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from projections.findings import kinds as g

if TYPE_CHECKING:
    # Annotations only: the signals' reader (``projections.reliability.queries``) does not load
    # the policy models, nor the payload models.
    from ledger.event.envelope import (
        EventView,
        FeedbackQuality,
        GuardrailTriggered,
        LlmUsage,
        RunFailed,
        ToolCalled,
    )
    from projections.policy.document import Reliability


@dataclass(slots=True)
class RunTrack:
    """A run's open streaks: the repeated tool call and the spend since the run began."""

    run: str
    loop_key: str = ""
    """``tool`` NUL ``args_digest`` of the run's last tool call."""
    loop_seqs: list[int] = field(default_factory=list)
    loop_fired: int | None = None
    loop_guard: int | None = None
    cost: int = 0
    cost_seqs: list[int] = field(default_factory=list)
    cost_fired: int | None = None
    cost_guard: int | None = None


@dataclass(slots=True)
class AgentTrack:
    """An agent's open streaks: spend of the UTC day, failures, quality scores."""

    agent: str
    day: str = ""
    day_cost: int = 0
    day_seqs: list[int] = field(default_factory=list)
    day_fired: int | None = None
    day_guard: int | None = None
    fail_class: str = ""
    fail_seqs: list[int] = field(default_factory=list)
    fail_fired: int | None = None
    fail_guard: int | None = None
    q_seqs: list[int] = field(default_factory=list)
    q_scores: list[int] = field(default_factory=list)
    q_fired: int | None = None
    q_guard: int | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """One reliability signal: a finding of the runs read model with its triggering events."""

    seq: int
    kind: str
    agent: str | None
    run: str | None
    evidence_seq: int
    triggers: tuple[int, ...]
    linked_seq: int | None
    """The runtime's ``guardrail.triggered`` for the same thing, if it recorded one."""
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "severity": g.SEVERITY[self.kind],
            "agent": self.agent,
            "run": self.run,
            "evidence_seq": self.evidence_seq,
            "triggers": list(self.triggers),
            "linked_seq": self.linked_seq,
            "detail": self.detail,
        }


LINKS: Final[dict[str, tuple[str, ...]]] = {
    "tool_loop": (g.TOOL_LOOP,),
    "budget_exceeded": (g.COST_CAP_RUN, g.COST_CAP_DAILY),
    "circuit_break": (g.REPEATED_FAILURE, g.QUALITY_DECLINE),
}
"""``guardrail.triggered`` kind → the signals it may be linked to, in order of preference."""


def seq_list(seqs: list[int] | tuple[int, ...]) -> str:
    """Seqs for people: all of them up to 8, else the first three, the last and the count."""
    if len(seqs) <= 8:
        return ", ".join(map(str, seqs))
    return f"{seqs[0]}, {seqs[1]}, {seqs[2]}, … {seqs[-1]} ({len(seqs)} events)"


def _linked(guard: int | None) -> str:
    return "" if guard is None else f"; the runtime's guardrail.triggered at seq {guard} is linked"


Fire = tuple[str, list[int], int | None, str]
"""What a rule reports: ``(kind, triggers, linked guardrail seq, detail)``."""


def tool_called(rt: RunTrack, event: EventView, p: ToolCalled, rules: Reliability) -> Fire | None:
    """tool_loop: the same tool with the same args digest ``tool_loop_repeats`` times in a row
    among the run's tool calls."""
    key = f"{p.tool}\x00{p.args_digest}"
    if key != rt.loop_key:
        rt.loop_key, rt.loop_seqs, rt.loop_fired, rt.loop_guard = key, [event.seq], None, None
        return None
    if rt.loop_fired is not None:
        return None  # reported once per streak
    rt.loop_seqs.append(event.seq)
    if len(rt.loop_seqs) < rules.tool_loop_repeats:
        return None
    rt.loop_fired = event.seq
    seqs = rt.loop_seqs
    return (
        g.TOOL_LOOP,
        list(seqs),
        rt.loop_guard,
        f"tool {p.tool!r} called {len(seqs)} times in a row with the same args digest "
        f"{p.args_digest[:12]}… in run {rt.run!r} (seqs {seq_list(seqs)}){_linked(rt.loop_guard)}",
    )


def run_usage(rt: RunTrack, event: EventView, p: LlmUsage, rules: Reliability) -> Fire | None:
    """cost_cap_run: the run's ``llm.usage`` costs reach ``run_cost_cap_micro_usd`` (0: no cap)."""
    rt.cost += p.cost_micro_usd
    if rt.cost_fired is not None:
        return None
    rt.cost_seqs.append(event.seq)
    cap = rules.run_cost_cap_micro_usd
    if not cap or rt.cost < cap:
        return None
    rt.cost_fired, seqs, rt.cost_seqs = event.seq, rt.cost_seqs, []
    return (
        g.COST_CAP_RUN,
        seqs,
        rt.cost_guard,
        f"run {rt.run!r} spent {rt.cost} µUSD over {len(seqs)} llm.usage events (seqs "
        f"{seq_list(seqs)}), reaching the run cap of {cap} µUSD{_linked(rt.cost_guard)}",
    )


def day_usage(at: AgentTrack, event: EventView, p: LlmUsage, rules: Reliability) -> Fire | None:
    """cost_cap_daily: the agent's ``llm.usage`` costs of one UTC day (of the event ``ts``)
    reach ``agent_daily_cost_cap_micro_usd`` (0: no cap)."""
    day = event.ts[:10]
    if day != at.day:
        at.day, at.day_cost, at.day_seqs, at.day_fired, at.day_guard = day, 0, [], None, None
    at.day_cost += p.cost_micro_usd
    if at.day_fired is not None:
        return None
    at.day_seqs.append(event.seq)
    cap = rules.agent_daily_cost_cap_micro_usd
    if not cap or at.day_cost < cap:
        return None
    at.day_fired, seqs, at.day_seqs = event.seq, at.day_seqs, []
    return (
        g.COST_CAP_DAILY,
        seqs,
        at.day_guard,
        f"agent {at.agent!r} spent {at.day_cost} µUSD on {day} (UTC) over {len(seqs)} "
        f"llm.usage events (seqs {seq_list(seqs)}), reaching the daily cap of {cap} µUSD"
        f"{_linked(at.day_guard)}",
    )


def feedback(
    at: AgentTrack, event: EventView, p: FeedbackQuality, rules: Reliability
) -> Fire | None:
    """quality_decline: the agent's last ``quality_window_runs`` scores never rise and the last
    is at least ``quality_drop_bp`` (and at least 1 bp) below the first. A rise is a recovery:
    the streak starts again from that score."""
    score = p.score_bp
    if at.q_scores and score > at.q_scores[-1]:
        at.q_seqs, at.q_scores, at.q_fired, at.q_guard = [], [], None, None
    at.q_seqs.append(event.seq)
    at.q_scores.append(score)
    k = rules.quality_window_runs
    if len(at.q_scores) > k:
        del at.q_seqs[: len(at.q_seqs) - k], at.q_scores[: len(at.q_scores) - k]
    if at.q_fired is not None or len(at.q_scores) < k:
        return None
    first, last = at.q_scores[0], at.q_scores[-1]
    if first - last < max(rules.quality_drop_bp, 1):
        return None
    at.q_fired = event.seq
    return (
        g.QUALITY_DECLINE,
        list(at.q_seqs),
        at.q_guard,
        f"feedback.quality of agent {at.agent!r} fell from {first} to {last} bp over its "
        f"last {k} scores without recovery (seqs {seq_list(at.q_seqs)}; drop at least "
        f"{rules.quality_drop_bp} bp){_linked(at.q_guard)}",
    )


def failed(at: AgentTrack, event: EventView, p: RunFailed, rules: Reliability) -> Fire | None:
    """repeated_failure: ``failure_repeat`` ``run.failed`` of the agent in a row with the same
    failure class (a ``run.completed`` of the agent, or another class, ends the streak)."""
    if p.failure_class != at.fail_class:
        at.fail_class, at.fail_seqs, at.fail_fired, at.fail_guard = p.failure_class, [], None, None
    if at.fail_fired is not None:
        return None
    at.fail_seqs.append(event.seq)
    if len(at.fail_seqs) < rules.failure_repeat:
        return None
    at.fail_fired, seqs = event.seq, at.fail_seqs
    return (
        g.REPEATED_FAILURE,
        list(seqs),
        at.fail_guard,
        f"agent {at.agent!r} failed with {p.failure_class!r} {len(seqs)} times in a row "
        f"(run.failed seqs {seq_list(seqs)}){_linked(at.fail_guard)}",
    )


def completed(at: AgentTrack) -> None:
    """A completed run ends the agent's failure streak."""
    if at.fail_class:
        at.fail_class, at.fail_seqs, at.fail_fired, at.fail_guard = "", [], None, None


def guardrail(
    rt: RunTrack | None, at: AgentTrack | None, p: GuardrailTriggered, seq: int
) -> tuple[int, str] | None:
    """Link a runtime guardrail to the open streak it is about (``LINKS``).

    Returns ``(signal seq, kind)`` when it links a signal already fired; otherwise, when a
    streak is open and has no guardrail yet, remembers it there so the signal, when it fires,
    is linked to it. A streak takes one guardrail; a guardrail links one signal.
    """
    # (1) A fired signal without a guardrail yet, in order of preference.
    if p.kind == "tool_loop" and rt is not None:
        if rt.loop_fired is not None and rt.loop_guard is None:
            rt.loop_guard = seq
            return rt.loop_fired, g.TOOL_LOOP
        if rt.loop_fired is None and rt.loop_seqs and rt.loop_guard is None:
            rt.loop_guard = seq  # (2) pending: the streak is open
    elif p.kind == "budget_exceeded":
        if rt is not None and rt.cost_fired is not None and rt.cost_guard is None:
            rt.cost_guard = seq
            return rt.cost_fired, g.COST_CAP_RUN
        if at is not None and at.day_fired is not None and at.day_guard is None:
            at.day_guard = seq
            return at.day_fired, g.COST_CAP_DAILY
        if rt is not None and rt.cost_fired is None and rt.cost_guard is None:
            rt.cost_guard = seq
        elif rt is None and at is not None and at.day_fired is None and at.day_guard is None:
            at.day_guard = seq
    elif p.kind == "circuit_break" and at is not None:
        if at.fail_fired is not None and at.fail_guard is None:
            at.fail_guard = seq
            return at.fail_fired, g.REPEATED_FAILURE
        if at.q_fired is not None and at.q_guard is None:
            at.q_guard = seq
            return at.q_fired, g.QUALITY_DECLINE
        if at.fail_seqs and at.fail_fired is None and at.fail_guard is None:
            at.fail_guard = seq
        elif at.q_seqs and at.q_fired is None and at.q_guard is None:
            at.q_guard = seq
    return None
