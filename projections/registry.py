"""The read models replay folds, in order: the built-in ones and any added with ``register``.

The order is explicit, not a side effect of which module was imported first: a projection may
read the state of one before it (``depends_on``) for the same event, so reliability comes before
runs (runs reads its signals) and runs before tiers (tiers reads finished runs).
"""

from __future__ import annotations

from typing import Any

from projections.corrections.fold import CorrectionsProjection
from projections.projection import Projection
from projections.reliability.fold import ReliabilityProjection
from projections.runs.fold import RunsProjection
from projections.tiers.fold import TiersProjection

RELIABILITY = ReliabilityProjection()
RUNS = RunsProjection()
TIERS = TiersProjection()
CORRECTIONS = CorrectionsProjection()

_BUILT_IN: tuple[Projection[Any], ...] = (RELIABILITY, RUNS, TIERS, CORRECTIONS)
_ADDED: dict[str, Projection[Any]] = {}


def default_projections() -> tuple[Projection[Any], ...]:
    """The read models replay, ``verify`` and the CLI fold by default, in fold order: the
    built-in ones, then those added with ``register`` in the order they were added."""
    return _BUILT_IN + tuple(_ADDED.values())


def register(projection: Projection[Any]) -> Projection[Any]:
    """Add ``projection`` to ``default_projections()``, after those already there (idempotent
    for the same name). Its ``depends_on`` must name projections already in the list."""
    names = {p.name for p in default_projections()}
    for dep in projection.depends_on:
        if dep not in names:
            raise ValueError(
                f"projection {projection.name!r} depends on {dep!r}, which is not registered"
            )
    if any(p.name == projection.name for p in _BUILT_IN):
        raise ValueError(f"projection {projection.name!r} is built in")
    _ADDED[projection.name] = projection
    return projection


def get(name: str) -> Projection[Any]:
    """The projection of ``default_projections()`` named ``name``."""
    for p in default_projections():
        if p.name == name:
            return p
    raise LookupError(f"no projection named {name!r}")
