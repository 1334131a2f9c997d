"""What the audit report shows, gathered from the log and the read models (docs/report.md).

Everything is read through the ``Ledger`` API (events, keys, checkpoints, Merkle root) and the
projections' queries, after catching the read models up (or rebuilding them as they stood at
``at_seq``). Big logs are aggregated, never dumped: every list has a cap (``CAPS``) and the
report says how many rows it left out; per-agent series are computed by SQL into a fixed number
of buckets. Every query is ordered, so the same log and options give the same data.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from itertools import islice
from typing import Any

from ledger.app.governance import read_models
from ledger.event.envelope import Event
from ledger.store.base import EventFilter, ReadModels
from ledger.store.sqlite import Ledger
from ledger.tlog.cosignatures import WitnessKey
from ledger.verify.verifier import VerifyReport, verify_ledger
from projections.corrections.queries import Pattern, count_patterns, iter_patterns
from projections.findings import kinds as g
from projections.findings.queries import finding_counts, iter_findings
from projections.runs.queries import (
    AgentMetrics,
    RunView,
    agent_metrics,
    count_runs,
    get_run,
    iter_runs,
)
from projections.tiers.queries import HistoryEntry, history
from projections.tiers.queries import agents as tier_agents
from projections.tiers.rules import TierAgent

CAPS = {
    "findings": 500,
    "runs": 300,
    "timelines": 25,
    "timeline_events": 120,
    "agents": 40,
    "agent_rows": 1000,
    "patterns": 100,
    "keys": 500,
    "policies": 100,
    "buckets": 40,
    "problems": 50,
}
"""Row caps: a million-event log gives a report of a few megabytes, not a dump."""

SIGNATURE_KINDS = frozenset(
    {"bad_signature", "unknown_key", "revoked_key", "unauthorized", "hash_mismatch", "malformed"}
)
"""Verification problems that say an event's signature (or what it signs) is not good."""


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What the report covers: the log as it stood at ``at_seq`` (None: now), one agent or
    all, and the root key ids the reader pins (empty: not pinned)."""

    at_seq: int | None = None
    agent: str | None = None
    trust: tuple[str, ...] = ()
    command: str = "govledger report"
    """The command line that reproduces the report, printed in its header."""
    checkpoint: str | None = None
    """A checkpoint note the log must be consistent with (``verify --checkpoint``)."""
    witnesses: tuple[WitnessKey, ...] = ()
    """Witnesses whose cosignatures ``checkpoint`` must carry, ``quorum`` of them at least."""
    quorum: int | None = None


@dataclass(frozen=True, slots=True)
class Header:
    origin: str
    size: int
    """Events the report covers (the log's size, or ``at_seq``)."""
    log_size: int
    """Events in the log now (what ``verify`` checked)."""
    root: str
    head_hash: str
    checkpoint: dict[str, Any] | None
    version: str


@dataclass(frozen=True, slots=True)
class Series:
    """One agent's runs in equal seq buckets: runs, tokens, cost per bucket."""

    width: int
    runs: list[int]
    tokens: list[int]
    cost: list[int]


@dataclass(frozen=True, slots=True)
class AgentSection:
    metrics: AgentMetrics
    tier: int
    effective_tier: int
    since_seq: int
    critical_seq: int | None
    """The critical finding that makes the effective tier 0 (SPEC §3), else None."""
    changes: list[HistoryEntry]
    series: Series


@dataclass(frozen=True, slots=True)
class Timeline:
    run: RunView
    events: list[Event]
    total: int


@dataclass
class ReportData:
    options: ReportOptions
    header: Header
    verify: VerifyReport
    runs_by_state: dict[str, int]
    runs_total: int
    non_compliant: int
    finding_counts: dict[tuple[str, str], int]
    tiers_by_effective: dict[int, int]
    totals: dict[str, int]
    findings: list[tuple[g.Finding, str, str]]
    """``(finding, source, hash of its event)``, the first ``CAPS["findings"]`` by seq."""
    runs: list[RunView]
    runs_total_flagged: int
    timelines: list[Timeline]
    agents: list[AgentSection]
    agent_rows: list[tuple[AgentMetrics, int, int]]
    """Every agent (capped): metrics, tier, effective tier."""
    agents_total: int
    policies: list[dict[str, Any]]
    patterns: list[Pattern]
    patterns_total: int
    keys: list[dict[str, Any]]
    bad_seqs: dict[int, list[str]] = field(default_factory=dict)
    """Seq → the kinds of verification problems at that event."""

    def anchor(self, run: str) -> str:
        return run_anchor(run)

    @property
    def shown_runs(self) -> set[str]:
        return {v.run for v in self.runs}


def run_anchor(run: str) -> str:
    """An HTML id for a run: a digest, so any run id (even one holding markup) gives a safe one."""
    return "run-" + hashlib.sha256(run.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def govledger_version() -> str:
    try:
        return version("govledger")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
        return "unknown"


def gather(ledger: Ledger, options: ReportOptions) -> ReportData:
    """Everything the report shows. (1) verify the whole log, (2) the header, (3) the read
    models at the report's position, (4) the events of the flagged runs' timelines."""
    # (1) The verdict is the library's verify over the whole stored log.
    trusted = set(options.trust) or None
    # No clock: cosignatures are not compared with the time (the same log and options give
    # the same bytes); `verify --checkpoint` refuses ones dated in the future.
    verified = verify_ledger(
        ledger,
        trusted=trusted,
        checkpoint=options.checkpoint,
        witnesses=options.witnesses,
        quorum=options.quorum,
    )
    bad: dict[int, list[str]] = {}
    for p in verified.problems:
        bad.setdefault(p.seq, []).append(p.kind)
    # (2)
    log_size = ledger.size
    size = log_size if options.at_seq is None else min(options.at_seq, log_size)
    header = Header(
        origin=ledger.origin,
        size=size,
        log_size=log_size,
        root=ledger.root_at(size).hex() if size else "",
        head_hash=ledger.hash_at(size) if size else "",
        checkpoint=_checkpoint(ledger, size),
        version=govledger_version(),
    )
    agent = options.agent
    # (3)
    with read_models(ledger, options.at_seq) as db:
        by_state = _runs_by_state(db, agent)
        counts = finding_counts(db, agent=agent)
        found = [
            (sf.finding, sf.source, ledger.hash_at(sf.finding.seq))
            for sf in iter_findings(db, agent=agent, limit=CAPS["findings"])
        ]
        flagged_total = count_runs(db, agent=agent, non_compliant=True)
        runs = _runs(db, agent, [f.run for f, _, _ in found if f.run is not None])
        metrics = {m.agent: m for m in agent_metrics(db, agent)}
        tiers = {a.agent: a for a in tier_agents(db, agent)}
        names = sorted(set(metrics) | set(tiers))
        by_tier: dict[int, int] = {}
        rows: list[tuple[AgentMetrics, int, int]] = []
        for name in names:
            m = metrics.get(name) or AgentMetrics(name, False, 0, 0)
            t = tiers.get(name)
            tier, eff = (t.tier, t.effective_tier) if t is not None else (m.tier, m.effective_tier)
            by_tier[eff] = by_tier.get(eff, 0) + 1
            if len(rows) < CAPS["agent_rows"]:
                rows.append((m, tier, eff))
        sections = [
            AgentSection(
                m,
                tier,
                eff,
                tiers[m.agent].since_seq if m.agent in tiers else 0,
                _critical(tiers.get(m.agent), tier, eff),
                history(db, m.agent),
                _series(db, m.agent, size),
            )
            for m, tier, eff in rows[: CAPS["agents"]]
        ]
        totals = {
            k: sum(getattr(m, k) for m in metrics.values())
            for k in (
                "tokens_in",
                "tokens_out",
                "cache_read_tokens",
                "cache_write_tokens",
                "cost_micro_usd",
                "llm_calls",
                "tool_calls",
            )
        }
        policies = _policies(db, size)
        patterns = list(iter_patterns(db, agent, limit=CAPS["patterns"]))
        patterns_total = count_patterns(db, agent)
    # (4) Timelines: the flagged runs first, in the order they began.
    timelines = [_timeline(ledger, v, size) for v in runs[: CAPS["timelines"]]]
    return ReportData(
        options=options,
        header=header,
        verify=verified,
        runs_by_state=by_state,
        runs_total=sum(by_state.values()),
        non_compliant=flagged_total,
        finding_counts=counts,
        tiers_by_effective=dict(sorted(by_tier.items())),
        totals=totals,
        findings=found,
        runs=runs,
        runs_total_flagged=flagged_total,
        timelines=timelines,
        agents=sections,
        agent_rows=rows,
        agents_total=len(names),
        policies=policies,
        patterns=patterns,
        patterns_total=patterns_total,
        keys=_keys(ledger, size),
        bad_seqs=bad,
    )


def _critical(agent: TierAgent | None, tier: int, effective: int) -> int | None:
    if agent is None or effective == tier or effective != 0:
        return None
    return agent.standing().last_critical_seq


def _checkpoint(ledger: Ledger, size: int) -> dict[str, Any] | None:
    """The newest checkpoint the ledger signed at or below ``size`` (its creation time is left
    out: the report holds no wall-clock time)."""
    note = ledger.latest_checkpoint(max_size=size)
    if note is None:
        return None
    lines = note.split("\n")
    return {
        "size": int(lines[1]),
        "signer": lines[0],
        "root": base64.b64decode(lines[2]).hex(),
        "note": note,
    }


def _runs_by_state(db: ReadModels, agent: str | None) -> dict[str, int]:
    one, params = ("WHERE agent = ?", [agent]) if agent is not None else ("", [])
    cur = db.execute(
        f"SELECT state, count(*) FROM runs {one} GROUP BY state ORDER BY state", params
    )
    return {str(s): int(n) for s, n in cur}


def _runs(db: ReadModels, agent: str | None, named: Collection[str]) -> list[RunView]:
    """The runs the report details: those the shown findings name (so each finding row links
    to its run), then the non-compliant ones by start, at most ``CAPS["runs"]``, in the order
    they began."""
    out: dict[str, RunView] = {}
    for run in dict.fromkeys(named):
        if len(out) >= CAPS["runs"]:
            break
        found = get_run(db, run)
        if found is not None:
            out[run] = found
    if len(out) < CAPS["runs"]:
        for v in iter_runs(db, agent=agent, non_compliant=True, limit=CAPS["runs"]):
            if len(out) >= CAPS["runs"]:
                break
            out.setdefault(v.run, v)
    return sorted(out.values(), key=lambda v: (v.row["first_seq"], v.run))


def _series(db: ReadModels, agent: str, size: int) -> Series:
    """The agent's runs, tokens and cost in ``CAPS["buckets"]`` equal slices of seq, by the
    seq each run began at (an SQL ``GROUP BY``: constant memory)."""
    n = CAPS["buckets"]
    width = max(1, -(-size // n))
    runs, tokens, cost = [0] * n, [0] * n, [0] * n
    for b, c, t, usd in db.execute(
        "SELECT (first_seq - 1) / ?, count(*), sum(tokens_in + tokens_out), "
        "sum(cost_micro_usd) FROM runs WHERE agent = ? AND first_seq > 0 GROUP BY 1 ORDER BY 1",
        [width, agent],
    ):
        i = min(int(b), n - 1)
        runs[i] += int(c)
        tokens[i] += int(t or 0)
        cost[i] += int(usd or 0)
    return Series(width, runs, tokens, cost)


def _policies(db: ReadModels, size: int) -> list[dict[str, Any]]:
    if not db.exists("tier_policies"):
        return []
    cur = db.execute(
        "SELECT seq, version, ts, digest, error FROM tier_policies WHERE seq <= ? "
        "ORDER BY seq LIMIT ?",
        [size, CAPS["policies"]],
    )
    return [dict(zip(("seq", "version", "ts", "digest", "error"), r, strict=True)) for r in cur]


def _keys(ledger: Ledger, size: int) -> list[dict[str, Any]]:
    out = []
    for k in ledger.keys():
        if k["registered_seq"] is None or k["registered_seq"] > size:
            continue
        revoked = (
            k["revoked_seq"] if k["revoked_seq"] is not None and k["revoked_seq"] <= size else None
        )
        out.append({**k, "revoked_seq": revoked})
    out.sort(key=lambda k: (k["registered_seq"], k["key_id"]))
    return out[: CAPS["keys"]]


def _timeline(ledger: Ledger, view: RunView, size: int) -> Timeline:
    """The run's events (the first ``CAPS["timeline_events"]``), read by the run index within
    the run's seq range."""
    first, last = int(view.row["first_seq"] or 1), min(int(view.row["last_seq"] or size), size)
    events = list(islice(_run_events(ledger, view.run, first, last), CAPS["timeline_events"]))
    return Timeline(view, events, int(view.row["events"] or len(events)))


def _run_events(ledger: Ledger, run: str, first: int, last: int) -> Iterator[Event]:
    return ledger.iter_events(from_seq=first, to_seq=last, filter=EventFilter(run=run))


def payload_excerpt(payload: dict[str, Any], limit: int = 160) -> str:
    """The payload as compact JSON, cut at ``limit`` characters (for a tooltip or a cell)."""
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"
