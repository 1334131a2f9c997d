"""``replay --check``: compare the stored read models with a fresh replay of the log.

The stored tables are audited as they are, without catching them up: for each
projection, a fresh replay up to the stored ``last_seq`` is built in a scratch database, and
every table is compared row by row: both tables streamed in primary-key order side by side,
holding only rows that do not match (memory follows the differences, not the tables). A read model that is
merely behind the log is not a difference (the next reading command catches it up); a row edited,
added or deleted behind govledger's back, a stored version the code does not have, or a stored
position whose hash is not the log's, is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from ledger.store.base import ReadModels
from projections.current import Position, positions
from projections.driver import EventSource, build_at
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
    db: ReadModels,
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


def _compare(db: ReadModels, fresh: ReadModels, p: Projection[Any]) -> list[Difference]:
    out: list[Difference] = []
    for t in p.tables:
        out.extend(_compare_table(db, fresh, p.name, t))
    return out


def _rows(db: ReadModels, t: Table) -> Iterator[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in t.column_names)
    order = ", ".join(f'"{c}"' for c in t.pk)
    for r in db.execute(f'SELECT {cols} FROM "{t.name}" ORDER BY {order}'):
        yield tuple(r)


def _compare_table(db: ReadModels, fresh: ReadModels, name: str, t: Table) -> list[Difference]:
    if not db.exists(t.name):
        return [Difference(name, t.name, None, "table is missing")]
    stored_cols = db.columns(t.name)
    if stored_cols != t.column_names:
        return [
            Difference(
                name,
                t.name,
                None,
                f"columns are {', '.join(stored_cols)}; expected {', '.join(t.column_names)}",
            )
        ]
    pk_idx = [t.column_names.index(c) for c in t.pk]
    # Rows not (yet) matched by key, on each side; rows whose key is on both sides but whose
    # values differ. Equal tables stream through in lockstep and hold nothing.
    only: tuple[dict[Any, tuple[Any, ...]], dict[Any, tuple[Any, ...]]] = ({}, {})
    changed: dict[Any, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
    for pair in zip_longest(_rows(db, t), _rows(fresh, t)):
        if pair[0] == pair[1]:
            continue
        for side, row in enumerate(pair):
            if row is None:
                continue
            key = tuple(row[i] for i in pk_idx)
            other = only[1 - side].pop(key, None)
            if other is None:
                only[side][key] = row
            elif other != row:
                changed[key] = (row, other) if side == 0 else (other, row)
    counts = [len(only[0]) + len(changed), len(only[1]) + len(changed)]
    if not any(counts):
        return []
    out: list[Difference] = []
    keys = set(only[0]) | set(only[1]) | set(changed)
    for key in sorted(keys, key=repr)[:MAX_ROWS]:
        if key in changed:
            stored, replay = changed[key]
            detail = "; ".join(
                f"{c} is {s!r}, replay gives {r!r}"
                for c, s, r in zip(t.column_names, stored, replay, strict=True)
                if s != r
            )
        elif key in only[0]:
            detail = "row is not in the replay"
        else:
            detail = "row is missing"
        out.append(Difference(name, t.name, dict(zip(t.pk, key, strict=True)), detail))
    more = max(counts) - len(out)
    if more > 0:
        out.append(Difference(name, t.name, None, f"and about {more} more differing rows"))
    return out
