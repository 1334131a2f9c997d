"""The tiers read model: each agent's tier, its history, and the recorded changes re-judged.

SPEC §3 Tiers. Folded after the runs projection (``depends_on = ("runs",)``): for every
event it reads the run and agent rows the runs projection just updated, and keeps

- ``tiers``: one row per agent (``TierAgent``): tier, since which seq and ts, last demotion,
  last critical finding (the effective tier is 0 after it), finished runs;
- ``tier_runs``: one row per finished run with its outcome bits (not completed, info, warning,
  critical finding), so any policy's compliance and windows can be evaluated later;
- ``tier_history``: registrations and every ``tier.*`` event, with evidence and signer;
- ``tier_policies``: every ``policy.set`` (the policy in force at seq N is the last at or before N);
- ``tier_findings``: ``unjustified_tier_change`` findings. Each ``tier.promoted`` /
  ``tier.demoted`` / ``tier.revoked`` is re-judged as it is folded, against the state as of the
  event before it and the policy in force then, at the event's own ts (``tier_rules.judge``).
  An unjustified change is recorded as the agent's tier but flagged (``unjustified_seq``): the
  effective tier and the rules keep going by the justified tier (``TierAgent.standing``), and
  the finding, a breach by whoever signed it, never counts against the agent's compliance.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ledger.errors import PolicyError
from ledger.event.canonical import canonical
from ledger.event.envelope import (
    AgentRegistered,
    AnyPayload,
    CapabilityGranted,
    CorrectionRecorded,
    DecisionRecorded,
    EventView,
    FeedbackQuality,
    GuardrailTriggered,
    KeyRegistered,
    KeyRevoked,
    LedgerCreated,
    LlmUsage,
    PolicySet,
    RunApproved,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunPlanned,
    RunRejected,
    RunStarted,
    RunSubmitted,
    TierDemoted,
    TierPromoted,
    TierRevoked,
    ToolCalled,
    ToolCompleted,
    UserPayload,
)
from ledger.store.base import ReadModels
from projections.findings.kinds import UNJUSTIFIED_TIER_CHANGE
from projections.policy.document import (
    RUN_NOT_COMPLETED,
    SEVERITY_BITS,
    Policy,
    default_policy,
    make_policy,
    policy_from_event,
)
from projections.projection import Projection, Table
from projections.runs.fold import RunsState
from projections.runs.tables import FINDINGS, Run
from projections.tiers.rules import Change, RunOutcome, TierAgent, assess, judge

UNJUSTIFIED_SEVERITY: Final = "critical"

TIERS = Table(
    "tiers",
    (
        ("agent", str),
        ("registered_seq", int),
        ("tier", int),
        ("since_seq", int),
        ("since_ts", str),
        ("last_demotion_seq", int),
        ("last_demotion_ts", str),
        ("last_critical_seq", int),
        ("finished", int),
        ("changes", int),
        ("unjustified_seq", int),
        ("justified_tier", int),
        ("justified_since_seq", int),
        ("justified_since_ts", str),
    ),
    pk=("agent",),
)
TIER_FIELDS = TIERS.column_names
TIER_RUNS = Table(
    "tier_runs",
    (("run", str), ("agent", str), ("ord", int), ("ended_seq", int), ("mask", int)),
    pk=("run",),
    indexes=(("agent", "ord"),),
)
TIER_HISTORY = Table(
    "tier_history",
    (
        ("seq", int),
        ("agent", str),
        ("change", str),
        ("from_tier", int),
        ("to_tier", int),
        ("ts", str),
        ("key", str),
        ("reason", str),
        ("policy_version", int),
        ("policy_digest", str),
        ("evidence", str),
        ("justified", int),
        ("problems", str),
    ),
    pk=("seq",),
    indexes=(("agent", "seq"),),
)
TIER_POLICIES = Table(
    "tier_policies",
    (
        ("seq", int),
        ("version", int),
        ("ts", str),
        ("digest", str),
        ("document", str),
        ("error", str),
    ),
    pk=("seq",),
)
TIER_KEYS = Table("tier_keys", (("key_id", str), ("role", str)), pk=("key_id",))
TIER_CLOCK = Table("tier_clock", (("name", str), ("seq", int), ("ts", str)), pk=("name",))
TIER_FINDINGS = Table(
    "tier_findings", FINDINGS.columns, pk=FINDINGS.pk, indexes=(("agent", "seq"),)
)


@dataclass(slots=True)
class TierRun:
    """A finished run: its rank among its agent's finished runs and its outcome bits."""

    run: str
    agent: str
    ord: int
    ended_seq: int
    mask: int


def run_mask(run: Run) -> int:
    """Outcome bits of a finished run (``projections.policy.document.RUN_NOT_COMPLETED``, severities)."""
    mask = 0 if run.state == "completed" else RUN_NOT_COMPLETED
    if run.findings > run.findings_critical + run.findings_warning:
        mask |= SEVERITY_BITS["info"]
    if run.findings_warning:
        mask |= SEVERITY_BITS["warning"]
    if run.findings_critical:
        mask |= SEVERITY_BITS["critical"]
    return mask


def load_policy(row: tuple[Any, ...] | None) -> Policy:
    """The policy of a ``tier_policies`` row ``(seq, version, digest, document)``."""
    if row is None:
        return default_policy()
    seq, version, _digest, document = row
    return make_policy(json.loads(document), version=version, seq=seq)


class TiersState:
    """The tiers read model being folded: rows touched since the last flush."""

    __slots__ = (
        "agents",
        "db",
        "findings",
        "history",
        "keys",
        "new_keys",
        "policies",
        "policy",
        "runs",
        "seq",
        "tier_runs",
        "ts",
        "unfinished",
    )

    def __init__(self, db: ReadModels, runs: RunsState) -> None:
        self.db = db
        self.runs = runs
        self.agents: dict[str, TierAgent] = {}
        self.tier_runs: dict[str, TierRun] = {}
        self.unfinished: set[str] = set()
        """Runs known to have no ``tier_runs`` row (loaded by ``load_runs``)."""
        self.history: list[tuple[Any, ...]] = []
        self.findings: list[tuple[Any, ...]] = []
        self.policies: list[tuple[Any, ...]] = []
        self.keys: dict[str, str] = dict(db.execute("SELECT key_id, role FROM tier_keys"))
        self.new_keys: list[tuple[str, str]] = []
        row = db.execute(
            "SELECT seq, version, digest, document FROM tier_policies "
            "WHERE error IS NULL ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        self.policy = load_policy(row)
        clock = db.execute("SELECT seq, ts FROM tier_clock WHERE name = 'head'").fetchone()
        self.seq, self.ts = (0, "") if clock is None else (int(clock[0]), str(clock[1]))

    def agent(self, name: str, *, create: bool = True) -> TierAgent | None:
        a = self.agents.get(name)
        if a is None:
            row = self.db.execute(
                f"SELECT {', '.join(TIER_FIELDS)} FROM tiers WHERE agent = ?", [name]
            ).fetchone()
            if row is None and not create:
                return None
            a = TierAgent(*row) if row else TierAgent(name)
            self.agents[name] = a
        return a

    def standing_of(self, agent: str) -> tuple[int, int] | None:
        """``(tier, seq that set it)`` the rules go by (``TierAgent.standing``: an unjustified
        change is ignored), as of the events folded so far; None for an agent with no record.
        What the runs fold consults for its approval, grants and tier rules."""
        a = self.agent(agent, create=False)
        if a is None:
            return None
        s = a.standing()
        return s.tier, s.since_seq

    def load_runs(self, run_ids: Sequence[str]) -> None:
        """Load the stored ``tier_runs`` rows of these runs, a chunk per query; a run not found
        has not finished (yet) and is remembered as such until the cache is flushed."""
        todo = [r for r in run_ids if r not in self.tier_runs and r not in self.unfinished]
        for i in range(0, len(todo), 500):
            chunk = todo[i : i + 500]
            for row in self.db.execute(
                "SELECT run, agent, ord, ended_seq, mask FROM tier_runs "
                f"WHERE run IN ({', '.join('?' for _ in chunk)})",
                chunk,
            ):
                self.tier_runs[row[0]] = TierRun(*row)
        self.unfinished.update(r for r in todo if r not in self.tier_runs)

    def tier_run(self, run: str) -> TierRun | None:
        tr = self.tier_runs.get(run)
        if tr is None and run not in self.unfinished:
            row = self.db.execute(
                "SELECT run, agent, ord, ended_seq, mask FROM tier_runs WHERE run = ?", [run]
            ).fetchone()
            if row is not None:
                tr = self.tier_runs[run] = TierRun(*row)
        return tr

    def outcomes(self, agent: str) -> list[RunOutcome]:
        """The agent's finished runs in the order they finished, cached rows included."""
        rows = {
            r: (o, e, m)
            for r, o, e, m in self.db.execute(
                "SELECT run, ord, ended_seq, mask FROM tier_runs WHERE agent = ?", [agent]
            )
        }
        for tr in self.tier_runs.values():
            if tr.agent == agent:
                rows[tr.run] = (tr.ord, tr.ended_seq, tr.mask)
        return [(e, m) for _, e, m in sorted(rows.values())]


class TiersProjection(Projection[TiersState]):
    """Tiers, tier history and ``unjustified_tier_change`` findings (SPEC §3)."""

    name = "tiers"
    version = 4
    depends_on = ("runs",)
    tables = (TIERS, TIER_RUNS, TIER_HISTORY, TIER_POLICIES, TIER_KEYS, TIER_CLOCK, TIER_FINDINGS)

    def start(self, db: ReadModels, deps: Mapping[str, Any]) -> TiersState:
        return TiersState(db, deps["runs"])

    def flush(self, state: TiersState) -> None:
        db = state.db
        db.insert(
            TIERS,
            [tuple(getattr(a, f) for f in TIER_FIELDS) for a in state.agents.values()],
            replace=True,
        )
        db.insert(
            TIER_RUNS,
            [(t.run, t.agent, t.ord, t.ended_seq, t.mask) for t in state.tier_runs.values()],
            replace=True,
        )
        db.insert(TIER_HISTORY, state.history)
        db.insert(TIER_FINDINGS, state.findings)
        db.insert(TIER_POLICIES, state.policies)
        db.insert(TIER_KEYS, state.new_keys, replace=True)
        if state.seq:
            db.insert(TIER_CLOCK, [("head", state.seq, state.ts)], replace=True)
        for cache in (state.agents, state.tier_runs):
            cache.clear()
        state.unfinished.clear()
        for rows in (state.history, state.findings, state.policies, state.new_keys):
            rows.clear()

    def prepare(self, state: TiersState, events: Sequence[EventView]) -> None:
        # Sorted: the same queries, and the same cache order, in every process.
        state.load_runs(sorted({e.run for e in events if e.run is not None}))

    def apply(self, state: TiersState, event: EventView, payload: AnyPayload) -> TiersState:
        runs = state.runs
        seq = event.seq
        run_id = event.run
        if run_id is not None:
            run = runs.runs.get(run_id) or runs.run(run_id)
            if run.ended_seq is not None and run.agent is not None:
                _track(state, run)
        fold = _FOLDS.get(type(payload))
        if fold is not None:
            fold(state, event, payload)
        agent_id = event.agent
        if agent_id is not None:
            # The effective tier drops to 0 at a critical finding (SPEC §3): mirror its seq.
            ra = runs.agents.get(agent_id)
            if ra is not None and ra.last_critical_seq == seq:
                a = state.agent(agent_id, create=False)
                if a is not None:
                    a.last_critical_seq = seq
        state.seq = seq
        state.ts = event.ts
        return state


def _ledger_created(state: TiersState, event: EventView, p: LedgerCreated) -> None:
    _key(state, p.key.key_id, p.key.role)


def _key_registered(state: TiersState, event: EventView, p: KeyRegistered) -> None:
    _key(state, p.key_id, p.role)


def _key(state: TiersState, key_id: str, role: str) -> None:
    state.keys[key_id] = role
    state.new_keys.append((key_id, role))


def _track(state: TiersState, run: Run) -> None:
    """Record a finished run, or a change of its outcome after it finished."""
    assert run.agent is not None and run.ended_seq is not None
    mask = run_mask(run)
    tr = state.tier_run(run.run)
    if tr is None:
        a = state.agent(run.agent)
        assert a is not None
        a.finished += 1
        state.tier_runs[run.run] = TierRun(run.run, run.agent, a.finished, run.ended_seq, mask)
    elif tr.mask != mask:
        tr.mask = mask


def _policy(state: TiersState, event: EventView, p: PolicySet) -> None:
    document = canonical(p.document).decode()
    try:
        state.policy = policy_from_event(p, event.seq)
    except PolicyError as e:
        # Recorded by a raw append: the previous policy stays in force.
        state.policies.append((event.seq, p.version, event.ts, p.digest, document, e.message))
        return
    state.policies.append((event.seq, p.version, event.ts, p.digest, document, None))


def _register(state: TiersState, event: EventView, p: AgentRegistered) -> None:
    assert event.agent is not None
    a = state.agent(event.agent)
    assert a is not None
    if a.registered_seq is not None:
        return  # registering again keeps the tier (SPEC §2.4)
    a.registered_seq = event.seq
    a.tier, a.since_seq, a.since_ts = p.initial_tier, event.seq, event.ts
    a.justified_tier, a.justified_since_seq, a.justified_since_ts = a.tier, a.since_seq, a.since_ts
    state.history.append(
        (
            event.seq,
            a.agent,
            "registered",
            None,
            p.initial_tier,
            event.ts,
            event.key,
            f"registered at T{p.initial_tier}",
            None,
            None,
            None,
            1,
            "[]",
        )
    )


def _change(
    state: TiersState, event: EventView, p: TierPromoted | TierDemoted | TierRevoked
) -> None:
    assert event.agent is not None
    a = state.agent(event.agent)
    assert a is not None
    change: Change = p.type.split(".")[1]  # type: ignore[assignment]
    # (6) Recomputation as verification: the state as of seq - 1, at the event's own ts.
    assessment = assess(a, state.outcomes(a.agent), state.policy, seq=event.seq - 1, ts=event.ts)
    payload = event.payload  # parsed at each access of a replay row: once here
    problems = judge(change, payload, assessment, state.policy, state.keys.get(event.key))
    state.history.append(
        (
            event.seq,
            a.agent,
            change,
            p.from_,
            p.to,
            event.ts,
            event.key,
            p.reason,
            p.policy_version,
            p.policy_digest,
            canonical(payload["evidence"]).decode(),
            int(not problems),
            json.dumps(problems, ensure_ascii=False),
        )
    )
    if problems:
        state.findings.append(
            (
                event.seq,
                UNJUSTIFIED_TIER_CHANGE,
                UNJUSTIFIED_SEVERITY,
                evidence_seq(payload["evidence"], event.seq),
                None,
                a.agent,
                event.ts,
                f"tier.{change} T{p.from_} → T{p.to}: " + "; ".join(problems),
            )
        )
    a.tier, a.since_seq, a.since_ts = p.to, event.seq, event.ts
    a.changes += 1
    if problems:
        a.unjustified_seq = event.seq
        return
    a.unjustified_seq = None
    a.justified_tier, a.justified_since_seq, a.justified_since_ts = p.to, event.seq, event.ts
    if change != "promoted":
        a.last_demotion_seq, a.last_demotion_ts = event.seq, event.ts


def evidence_seq(evidence: Any, seq: int) -> int:
    """The last event a tier change's evidence covers: the ``seq_to`` it cites when that is an
    earlier seq, else the event before it (the state the change was re-judged against)."""
    cited = evidence.get("seq_to") if isinstance(evidence, dict) else None
    if isinstance(cited, int) and not isinstance(cited, bool) and 0 < cited < seq:
        return cited
    return seq - 1


_FOLDS: Final[dict[type[Any], Callable[..., None]]] = {
    LedgerCreated: _ledger_created,
    KeyRegistered: _key_registered,
    PolicySet: _policy,
    AgentRegistered: _register,
    TierPromoted: _change,
    TierDemoted: _change,
    TierRevoked: _change,
}
"""Payload class → what it does to the tiers read model, ``(state, event, payload)``: one dict
lookup per event; every other event only tracks its run and its agent's critical findings."""
IGNORED: Final = frozenset(
    {
        KeyRevoked,
        RunSubmitted,
        RunPlanned,
        RunApproved,
        RunRejected,
        CapabilityGranted,
        RunStarted,
        ToolCalled,
        ToolCompleted,
        LlmUsage,
        DecisionRecorded,
        GuardrailTriggered,
        RunCompleted,
        RunFailed,
        RunCancelled,
        FeedbackQuality,
        CorrectionRecorded,
        UserPayload,
    }
)
"""Payload classes with no fold here (listed for the exhaustiveness test)."""
