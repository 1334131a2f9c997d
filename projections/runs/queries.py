"""Reading the runs read model: runs, findings and agent metrics (SPEC §3).

Every function here takes a ``ReadModels`` holding the tables of ``projections.runs.fold`` (the stored
read models after ``catch_up``, or a scratch database from ``build_at`` for time travel) and
only reads. Times are in the ledger's ``ts`` form (``normalize_time``), so they compare as text.

Agent metrics are computed from the runs and their findings when asked, never kept as counters:
a finding recorded after a run ended changes whether that run counts as compliant, and with it
the streaks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from ledger.store.base import ReadModels
from projections.findings import kinds as g
from projections.projection import column_list, conditions
from projections.runs.tables import AGENT_FIELDS, FINDINGS, RUN_FIELDS

_FINDING_COLS = ", ".join(FINDINGS.column_names)
_BATCH = 500


@dataclass(frozen=True, slots=True)
class RunView:
    """One run as the read model has it: its ``runs`` row, findings and anomalies."""

    row: dict[str, Any]
    findings: list[g.Finding]
    anomalies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run(self) -> str:
        return str(self.row["run"])

    def as_json(self) -> dict[str, Any]:
        """``{"run", "agent", "state", "compliant", "findings": [...], "anomalies": [...]}`` and
        every other column of the ``runs`` row."""
        out: dict[str, Any] = {
            "run": self.row["run"],
            "agent": self.row["agent"],
            "state": self.row["state"],
            "compliant": bool(self.row["compliant"]),
            "findings": [f.as_json() for f in self.findings],
            "anomalies": self.anomalies,
        }
        for k, v in self.row.items():
            out.setdefault(k, bool(v) if k == "auto_approve" and v is not None else v)
        return out


def _finding(row: tuple[Any, ...]) -> g.Finding:
    seq, kind, severity, evidence, run, agent, ts, detail = row
    return g.Finding(seq, kind, severity, evidence, run, agent, ts, detail)


def findings(
    db: ReadModels,
    *,
    agent: str | None = None,
    run: str | None = None,
    from_seq: int | None = None,
    to_seq: int | None = None,
    kinds: Collection[str] | None = None,
) -> list[g.Finding]:
    """Findings in seq order, filtered; each carries its ``seq``, ``ts`` and ``evidence_seq``."""
    where, params = conditions(
        (
            ("agent", "=", agent),
            ("run", "=", run),
            ("seq", ">=", from_seq),
            ("seq", "<=", to_seq),
        )
    )
    if kinds is not None:
        where.append(f"kind IN ({', '.join('?' for _ in kinds)})")
        params.extend(kinds)
    sql = f"SELECT {_FINDING_COLS} FROM findings WHERE {' AND '.join(where)} ORDER BY seq, kind"
    return [_finding(r) for r in db.execute(sql, params)]


def _views(db: ReadModels, rows: list[dict[str, Any]]) -> list[RunView]:
    by_run: dict[str, list[g.Finding]] = {r["run"]: [] for r in rows}
    anomalies: dict[str, list[dict[str, Any]]] = {r["run"]: [] for r in rows}
    ids = list(by_run)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ", ".join("?" for _ in chunk)
        for f in db.execute(
            f"SELECT {_FINDING_COLS} FROM findings WHERE run IN ({marks}) ORDER BY seq, kind", chunk
        ):
            by_run[f[4]].append(_finding(f))
        cur = db.execute(
            "SELECT seq, run, type, from_state, to_state, ts FROM anomalies "
            f"WHERE run IN ({marks}) ORDER BY seq",
            chunk,
        )
        for seq, run, type_, frm, to, ts in cur:
            anomalies[run].append({"seq": seq, "type": type_, "from": frm, "to": to, "ts": ts})
    return [RunView(r, by_run[r["run"]], anomalies[r["run"]]) for r in rows]


def get_run(db: ReadModels, run: str) -> RunView | None:
    """One run by id (a primary-key lookup), with its findings and anomalies."""
    cur = db.execute(f"SELECT {column_list(RUN_FIELDS)} FROM runs WHERE run = ?", [run])
    row = cur.fetchone()
    if row is None:
        return None
    return _views(db, [dict(zip(RUN_FIELDS, row, strict=True))])[0]


def _run_filter(
    agent: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    non_compliant: bool,
) -> tuple[str, list[Any]]:
    where, params = conditions(
        (
            ("agent", "=", agent),
            ("state", "=", status),
            ("first_ts", ">=", since),
            ("first_ts", "<=", until),
        )
    )
    if non_compliant:
        where.append(
            "compliant = 0 AND (ended_seq IS NOT NULL OR findings_critical + findings_warning > 0)"
        )
    return " AND ".join(where), params


def iter_runs(
    db: ReadModels,
    *,
    agent: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    non_compliant: bool = False,
    limit: int | None = None,
) -> Iterator[RunView]:
    """Runs in the order they began, filtered, read from a cursor 500 at a time: a caller
    iterating holds one batch whatever the number of runs.

    ``since``/``until`` (inclusive) apply to the run's first event. ``non_compliant`` keeps the
    runs that are not compliant and are either over or already hold a warning or critical
    finding (a run still in progress with a clean record is not reported).
    """
    where, params = _run_filter(agent, status, since, until, non_compliant)
    sql = f"SELECT {column_list(RUN_FIELDS)} FROM runs WHERE {where} ORDER BY first_seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    cur = db.execute(sql, params)
    while batch := cur.fetchmany(_BATCH):
        yield from _views(db, [dict(zip(RUN_FIELDS, r, strict=True)) for r in batch])


def count_runs(
    db: ReadModels,
    *,
    agent: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    non_compliant: bool = False,
) -> int:
    """How many runs ``iter_runs`` yields with the same filters and no limit."""
    where, params = _run_filter(agent, status, since, until, non_compliant)
    return int(db.execute(f"SELECT count(*) FROM runs WHERE {where}", params).fetchone()[0])


def list_runs(
    db: ReadModels,
    *,
    agent: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    non_compliant: bool = False,
    limit: int | None = None,
) -> list[RunView]:
    """``iter_runs`` as a list (for small results: it holds every run)."""
    return list(
        iter_runs(
            db,
            agent=agent,
            status=status,
            since=since,
            until=until,
            non_compliant=non_compliant,
            limit=limit,
        )
    )


def summary(db: ReadModels) -> dict[str, Any]:
    """Counts of the runs read model: runs by state, agents, findings by severity."""
    rows = db.execute("SELECT state, count(*) FROM runs GROUP BY state ORDER BY state").fetchall()
    # A run no lifecycle event has touched has no state: counted in the total only.
    runs_by_state = {state: n for state, n in rows if state is not None}
    by_severity = dict(
        db.execute(
            "SELECT severity, count(*) FROM findings GROUP BY severity ORDER BY severity"
        ).fetchall()
    )
    return {
        "runs": runs_by_state,
        "runs_total": sum(n for _, n in rows),
        "agents": db.execute("SELECT count(*) FROM agents").fetchone()[0],
        "findings": by_severity,
        "findings_total": sum(by_severity.values()),
    }


@dataclass(slots=True)
class AgentMetrics:
    """SPEC §3 agent metrics, as they stand at the read model's position."""

    agent: str
    registered: bool
    tier: int
    effective_tier: int
    runs: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    rejected: int = 0
    in_progress: int = 0
    compliant_runs: int = 0
    current_streak: int = 0
    """Consecutive compliant runs among the most recently ended ones."""
    best_streak: int = 0
    violations: dict[str, int] = field(default_factory=dict)
    """Findings by kind."""
    violations_by_severity: dict[str, int] = field(default_factory=dict)
    anomalies: int = 0
    tool_calls: int = 0
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micro_usd: int = 0
    failure_classes: dict[str, int] = field(default_factory=dict)
    feedback_count: int = 0
    feedback_score_bp_sum: int = 0
    first_seq: int = 0
    last_seq: int = 0

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def agent_metrics(
    db: ReadModels,
    agent: str | None = None,
    *,
    blocking: Collection[str] = g.BLOCKING,
) -> list[AgentMetrics]:
    """Metrics of every agent (or one), by agent id. ``blocking``: the finding severities that
    make a run non-compliant (the policy may tune it)."""
    one, params = ("WHERE agent = ?", [agent]) if agent is not None else ("", [])
    out: dict[str, AgentMetrics] = {}
    for r in db.execute(
        f"SELECT {', '.join(AGENT_FIELDS)} FROM agents {one} ORDER BY agent", params
    ):
        a = dict(zip(AGENT_FIELDS, r, strict=True))
        tier = int(a["tier"])
        out[a["agent"]] = AgentMetrics(
            agent=a["agent"],
            registered=a["registered_seq"] is not None,
            tier=tier,
            effective_tier=g.effective_tier(tier, a["tier_since_seq"], a["last_critical_seq"]),
            **{
                k: a[k]
                for k in (
                    "llm_calls",
                    "tokens_in",
                    "tokens_out",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "cost_micro_usd",
                    "feedback_count",
                    "feedback_score_bp_sum",
                    "first_seq",
                    "last_seq",
                )
            },
        )
    states = {"completed", "failed", "cancelled", "rejected"}
    for name, state, n, tools, anomalies in db.execute(
        f"SELECT agent, state, count(*), sum(tool_calls), sum(anomalies) FROM runs {one} "
        "GROUP BY agent, state ORDER BY agent, state",
        params,
    ):
        m = out.get(name)
        if m is None:
            continue
        m.runs += n
        m.tool_calls += tools
        m.anomalies += anomalies
        if state in states:
            setattr(m, state, getattr(m, state) + n)
        else:
            m.in_progress += n
    for name, kind, severity, n in db.execute(
        f"SELECT agent, kind, severity, count(*) FROM findings {one} GROUP BY agent, kind, severity "
        "ORDER BY agent, kind, severity",
        params,
    ):
        if name in out:
            out[name].violations[kind] = out[name].violations.get(kind, 0) + n
            sev = out[name].violations_by_severity
            sev[severity] = sev.get(severity, 0) + n
    for name, fc, n in db.execute(
        f"SELECT agent, failure_class, count(*) FROM runs {one} "
        f"{'AND' if one else 'WHERE'} failure_class IS NOT NULL GROUP BY agent, failure_class "
        "ORDER BY agent, failure_class",
        params,
    ):
        if name in out:
            out[name].failure_classes[fc] = n
    _streaks(db, out, one, params, blocking)
    return list(out.values())


def _streaks(
    db: ReadModels,
    out: dict[str, AgentMetrics],
    one: str,
    params: list[Any],
    blocking: Collection[str],
) -> None:
    """Compliant runs and streaks, from the ended runs in the order they ended and their
    findings (SPEC §3: compliant = completed with no blocking finding)."""
    marks = ", ".join("?" for _ in blocking) or "NULL"
    cur = db.execute(
        "SELECT r.agent, r.state = 'completed' AND NOT EXISTS (SELECT 1 FROM findings f "
        f"WHERE f.run = r.run AND f.severity IN ({marks})) FROM runs r "
        f"{one.replace('agent', 'r.agent')} {'AND' if one else 'WHERE'} "
        "r.ended_seq IS NOT NULL ORDER BY r.agent, r.ended_seq",
        [*blocking, *params],
    )
    for name, ok in cur:
        m = out.get(name)
        if m is None:
            continue
        if ok:
            m.compliant_runs += 1
            m.current_streak += 1
            m.best_streak = max(m.best_streak, m.current_streak)
        else:
            m.current_streak = 0
