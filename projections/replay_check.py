"""``replay --check``: compare the stored read models with a fresh replay of the log.

The stored tables are audited as they are, without catching them up: for each
projection, a fresh replay up to the stored ``last_seq`` is built in a scratch database and
attached, and every table is compared row by row with ``EXCEPT`` both ways. A read model that is
merely behind the log is not a difference (the next reading command catches it up); a row edited,
added or deleted behind govledger's back, a stored version the code does not have, or a stored
position whose hash is not the log's, is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from projections.driver import EventSource, Position, build_at, positions
from projections.projection import Projection, Table
from projections.registry import default_projections

MAX_ROWS = 20
"""Differing rows described per table (the count is always exact)."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One way a stored read model differs from the log."""

    projection: str
    table: str | None
    key: dict[str, Any] | None
    """Primary key of the differing row, when the difference is a row."""
    detail: str

    def __str__(self) -> str:
        where = self.projection if self.table is None else f"{self.projection}.{self.table}"
        if self.key is not None:
            where += " " + ", ".join(f"{k}={v!r}" for k, v in self.key.items())
        return f"{where}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "table": self.table,
            "key": self.key,
            "detail": self.detail,
        }


def check(
    source: EventSource,
    db: Database,
    projections: Sequence[Projection[Any]] | None = None,
) -> list[Difference]:
    """Every difference between the stored read models in ``db`` and a fresh replay.

    Projections never built are skipped (there is nothing stored to differ).
    """
    out: list[Difference] = []
    pos = positions(db)
    size, _ = source.head()
    for p in projections if projections is not None else default_projections():
        at = pos.get(p.name)
        if at is None:
            continue
        problem = _position_problem(source, p, at, size)
        if problem is not None:
            out.append(Difference(p.name, None, None, problem))
            continue
        with build_at(source, at.last_seq, projections=[p]) as fresh:
            out.extend(_compare(db, fresh, p))
    return out


def _position_problem(
    source: EventSource, p: Projection[Any], at: Position, size: int
) -> str | None:
    if at.version != p.version:
        return f"stored version {at.version}, this govledger builds version {p.version}"
    if at.last_seq > size:
        return f"stored at seq {at.last_seq}, but the log holds {size} events"
    if at.last_seq > 0:
        actual = source.hash_at(at.last_seq)
        if actual != at.last_hash:
            return (
                f"stored at seq {at.last_seq} with hash {at.last_hash[:12]}…, "
                f"the log has {actual[:12]}…"
            )
    return None


def _fresh_path(fresh: Database) -> str:
    for _, name, path in fresh.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path)
    raise AssertionError("scratch database has no main file")  # pragma: no cover


def _compare(db: Database, fresh: Database, p: Projection[Any]) -> list[Difference]:
    conn = db.conn
    if conn.in_transaction:
        conn.commit()
    conn.execute("ATTACH DATABASE ? AS fresh", [_fresh_path(fresh)])
    try:
        out: list[Difference] = []
        for t in p.tables:
            out.extend(_compare_table(db, p.name, t))
        return out
    finally:
        conn.execute("DETACH DATABASE fresh")


def _compare_table(db: Database, name: str, t: Table) -> list[Difference]:
    if not db[t.name].exists():
        return [Difference(name, t.name, None, "table is missing")]
    stored_cols = tuple(r[1] for r in db.execute(f'PRAGMA main.table_info("{t.name}")'))
    if stored_cols != t.column_names:
        return [
            Difference(
                name,
                t.name,
                None,
                f"columns are {', '.join(stored_cols)}; expected {', '.join(t.column_names)}",
            )
        ]
    cols = ", ".join(f'"{c}"' for c in t.column_names)
    only = {
        side: f'SELECT {cols} FROM {a}."{t.name}" EXCEPT SELECT {cols} FROM {b}."{t.name}"'
        for side, a, b in (("stored", "main", "fresh"), ("replay", "fresh", "main"))
    }
    counts = {s: db.execute(f"SELECT count(*) FROM ({q})").fetchone()[0] for s, q in only.items()}
    if not any(counts.values()):
        return []
    pk_idx = [t.column_names.index(c) for c in t.pk]
    rows: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {
        s: {tuple(r[i] for i in pk_idx): tuple(r) for r in db.execute(f"{q} LIMIT {MAX_ROWS}")}
        for s, q in only.items()
    }
    out: list[Difference] = []
    for key in sorted(set(rows["stored"]) | set(rows["replay"]), key=repr)[:MAX_ROWS]:
        stored, replay = rows["stored"].get(key), rows["replay"].get(key)
        if stored is not None and replay is not None:
            detail = "; ".join(
                f"{c} is {s!r}, replay gives {r!r}"
                for c, s, r in zip(t.column_names, stored, replay, strict=True)
                if s != r
            )
        elif stored is not None:
            detail = "row is not in the replay"
        else:
            detail = "row is missing"
        out.append(Difference(name, t.name, dict(zip(t.pk, key, strict=True)), detail))
    more = max(counts.values()) - len(out)
    if more > 0:
        out.append(Difference(name, t.name, None, f"and about {more} more differing rows"))
    return out
