"""Every finding of the log, from every read model that stores findings (SPEC §3 Findings).

The runs read model's ``findings`` table holds the run checks, the reliability signals made
findings and any other kind the runs fold records; the tiers read model's ``tier_findings``
holds ``unjustified_tier_change``. Both tables have the same columns (``model.FINDINGS``), so
one SQL query reads them all, in seq order, as a cursor: a caller iterating it holds one
finding at a time whatever the size of the log. A kind added to either fold shows up here with
no change.
"""

from __future__ import annotations

import typing
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from ledger.store.base import ReadModels
from projections.findings import kinds as g
from projections.projection import conditions
from projections.runs.tables import FINDINGS

SOURCES: tuple[tuple[str, str], ...] = (("findings", "runs"), ("tier_findings", "tiers"))
"""``(table, read model)`` of every stored findings table."""
SIGNALS_TABLE = "reliability_signals"
"""A ``findings`` row also in this table is a reliability signal: its source is ``reliability``."""
SEVERITIES: tuple[str, ...] = typing.get_args(g.Severity)
KNOWN_KINDS: frozenset[str] = frozenset({*g.SEVERITY, g.UNJUSTIFIED_TIER_CHANGE})


@dataclass(frozen=True, slots=True)
class SourcedFinding:
    """A finding and the read model it was read from."""

    finding: g.Finding
    source: str
    """``runs``, ``reliability`` or ``tiers``."""

    def as_json(self) -> dict[str, object]:
        return {**self.finding.as_json(), "source": self.source}


def valid_kinds(db: ReadModels) -> list[str]:
    """Every kind a finding may have here: the known ones and any stored, sorted."""
    out = set(KNOWN_KINDS)
    for table, _ in SOURCES:
        if db.exists(table):
            out.update(k for (k,) in db.execute(f"SELECT DISTINCT kind FROM {table}"))
    return sorted(out)


def _union(
    db: ReadModels,
    columns: str,
    *,
    kinds: Collection[str],
    severity: str | None,
    agent: str | None,
    run: str | None,
    since: str | None,
    until: str | None,
) -> tuple[str, list[object]] | None:
    """One ``UNION ALL`` of every findings table, filtered, selecting ``columns`` and the
    source; None when no findings table exists yet."""
    where, params = conditions(
        (
            ("severity", "=", severity),
            ("agent", "=", agent),
            ("run", "=", run),
            ("ts", ">=", since),
            ("ts", "<=", until),
        )
    )
    if kinds:
        where.append(f"kind IN ({', '.join('?' for _ in kinds)})")
        params.extend(kinds)
    signals = db.exists(SIGNALS_TABLE)
    parts: list[str] = []
    args: list[object] = []
    for table, source in SOURCES:
        if not db.exists(table):
            continue
        label = f"'{source}'"
        if source == "runs" and signals:
            label = (
                f"CASE WHEN EXISTS (SELECT 1 FROM {SIGNALS_TABLE} s WHERE s.seq = f.seq "
                f"AND s.kind = f.kind) THEN 'reliability' ELSE 'runs' END"
            )
        parts.append(f"SELECT {columns}, {label} FROM {table} f WHERE {' AND '.join(where)}")
        args.extend(params)
    return (" UNION ALL ".join(parts), args) if parts else None


def iter_findings(
    db: ReadModels,
    *,
    kinds: Collection[str] = (),
    severity: str | None = None,
    agent: str | None = None,
    run: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int | None = None,
) -> Iterator[SourcedFinding]:
    """Findings in seq order (then kind), filtered: ``kinds`` (any of them; empty: all),
    ``since``/``until`` on the offending event's ts (inclusive, ledger ``ts`` form), at most
    ``limit``. Streams."""
    union = _union(
        db,
        ", ".join(FINDINGS.column_names),
        kinds=kinds,
        severity=severity,
        agent=agent,
        run=run,
        since=since,
        until=until,
    )
    if union is None:
        return
    sql, args = union
    sql += " ORDER BY seq, kind" + ("" if limit is None else f" LIMIT {int(limit)}")
    for row in db.execute(sql, args):
        yield SourcedFinding(g.Finding(*row[:-1]), row[-1])


def finding_counts(
    db: ReadModels,
    *,
    kinds: Collection[str] = (),
    severity: str | None = None,
    agent: str | None = None,
    run: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[tuple[str, str], int]:
    """``(kind, severity) → count`` of the findings ``iter_findings`` yields with the same
    filters and no limit, counted by SQL (no finding is read into Python)."""
    union = _union(
        db,
        "kind, severity",
        kinds=kinds,
        severity=severity,
        agent=agent,
        run=run,
        since=since,
        until=until,
    )
    if union is None:
        return {}
    sql, args = union
    rows = db.execute(
        f"SELECT kind, severity, count(*) FROM ({sql}) AS u GROUP BY kind, severity ORDER BY 1, 2",
        args,
    )
    return {(k, sev): n for k, sev, n in rows}
