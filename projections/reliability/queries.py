"""Queries over the reliability read model: its signals, by run, agent or kind.

Apart from the fold (``projections.reliability.fold``), so that reading the signals does not
import the fold and the policy models it folds with.
"""

from __future__ import annotations

import json

from ledger.store.base import ReadModels
from projections.projection import Table, conditions
from projections.reliability.rules import Signal

SIGNALS = Table(
    "reliability_signals",
    (
        ("seq", int),
        ("kind", str),
        ("agent", str),
        ("run", str),
        ("evidence_seq", int),
        ("triggers", str),
        ("linked_seq", int),
        ("detail", str),
    ),
    pk=("seq", "kind"),
    indexes=(("run",), ("agent", "seq")),
)


def signals(
    db: ReadModels, *, run: str | None = None, agent: str | None = None, kind: str | None = None
) -> list[Signal]:
    """Reliability signals in seq order, filtered; each names all its triggering seqs and the
    runtime guardrail linked to it."""
    where, params = conditions((("run", "=", run), ("agent", "=", agent), ("kind", "=", kind)))
    if not db.exists(SIGNALS.name):
        return []
    rows = db.execute(
        f"SELECT {', '.join(SIGNALS.column_names)} FROM {SIGNALS.name} "
        f"WHERE {' AND '.join(where)} ORDER BY seq, kind",
        params,
    )
    return [
        Signal(seq, kind_, agent_, run_, ev, tuple(json.loads(trig)), linked, detail)
        for seq, kind_, agent_, run_, ev, trig, linked, detail in rows
    ]
