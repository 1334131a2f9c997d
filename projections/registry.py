"""The read models replay folds, in order: the built-in ones and any added with ``register``.

The order is explicit, not a side effect of which module was imported first: a projection may
read the state of one before it (``depends_on``) for the same event, so reliability comes before
runs (runs reads its signals) and runs before tiers (tiers reads finished runs).

Each built-in projection is also declared here by name, version, table names and links
(``declared_projections()``), so that a command whose read models are already current learns
that without importing the folds (``catch_up`` checks ``projection_meta`` against these); the
fold modules are imported when a projection is first used (``default_projections()``, ``get``,
``RUNS``...). A test checks that each declaration agrees with its projection: bump the version
in both places.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from projections.projection import Projection

    # Loaded when first named (``__getattr__`` below).
    RELIABILITY: Projection[Any]
    RUNS: Projection[Any]
    TIERS: Projection[Any]
    CORRECTIONS: Projection[Any]


@dataclass(frozen=True, slots=True)
class Declared:
    """What the driver needs of a projection to tell whether its stored tables are current:
    its name, version, table names and links (``Projection.depends_on``, ``consults``)."""

    name: str
    version: int
    table_names: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    consults: tuple[str, ...] = ()

    @classmethod
    def of(cls, projection: Projection[Any]) -> Declared:
        """The declaration of a projection already loaded."""
        return cls(
            projection.name,
            projection.version,
            tuple(t.name for t in projection.tables),
            tuple(projection.depends_on),
            tuple(projection.consults),
        )


_BUILT_IN_DECLARED: tuple[Declared, ...] = (
    Declared(
        "reliability",
        1,
        ("reliability_runs", "reliability_agents", "reliability_signals", "reliability_policy"),
    ),
    Declared(
        "runs",
        7,
        ("runs", "agents", "findings", "anomalies", "grants", "runs_policy"),
        depends_on=("reliability",),
        consults=("tiers",),
    ),
    Declared(
        "tiers",
        4,
        (
            "tiers",
            "tier_runs",
            "tier_history",
            "tier_policies",
            "tier_keys",
            "tier_clock",
            "tier_findings",
        ),
        depends_on=("runs",),
    ),
    Declared("corrections", 1, ("correction_clusters", "corrections", "corrections_policy")),
)
_BUILT_IN_WHERE = {  # the built-in projections' classes, in fold order
    "reliability": ("projections.reliability.fold", "ReliabilityProjection"),
    "runs": ("projections.runs.fold", "RunsProjection"),
    "tiers": ("projections.tiers.fold", "TiersProjection"),
    "corrections": ("projections.corrections.fold", "CorrectionsProjection"),
}
_CONSTANTS = {
    "RELIABILITY": "reliability",
    "RUNS": "runs",
    "TIERS": "tiers",
    "CORRECTIONS": "corrections",
}

_built_in: tuple[Projection[Any], ...] | None = None
_ADDED: dict[str, Projection[Any]] = {}


def _load_built_in() -> tuple[Projection[Any], ...]:
    """The built-in projections, their fold modules imported on the first call."""
    global _built_in
    if _built_in is None:
        loaded: list[Projection[Any]] = []
        for module, cls in _BUILT_IN_WHERE.values():
            loaded.append(getattr(importlib.import_module(module), cls)())
        _built_in = tuple(loaded)
    return _built_in


def declared_projections() -> tuple[Declared, ...]:
    """``default_projections()`` as declarations, in the same order, without importing any
    built-in fold."""
    return _BUILT_IN_DECLARED + tuple(Declared.of(p) for p in _ADDED.values())


def default_projections() -> tuple[Projection[Any], ...]:
    """The read models replay, ``verify`` and the CLI fold by default, in fold order: the
    built-in ones, then those added with ``register`` in the order they were added."""
    return _load_built_in() + tuple(_ADDED.values())


def register(projection: Projection[Any]) -> Projection[Any]:
    """Add ``projection`` to ``default_projections()``, after those already there (idempotent
    for the same name). Its ``depends_on`` must name projections already in the list."""
    names = {d.name for d in declared_projections()}
    for dep in projection.depends_on:
        if dep not in names:
            raise ValueError(
                f"projection {projection.name!r} depends on {dep!r}, which is not registered"
            )
    if projection.name in _BUILT_IN_WHERE:
        raise ValueError(f"projection {projection.name!r} is built in")
    _ADDED[projection.name] = projection
    return projection


def get(name: str) -> Projection[Any]:
    """The projection of ``default_projections()`` named ``name``."""
    for p in default_projections():
        if p.name == name:
            return p
    raise LookupError(f"no projection named {name!r}")


def __getattr__(name: str) -> Any:
    """``RELIABILITY``, ``RUNS``, ``TIERS``, ``CORRECTIONS``: the built-in projections, loaded
    when first named."""
    if name in _CONSTANTS:
        return get(_CONSTANTS[name])
    raise AttributeError(f"module 'projections.registry' has no attribute {name!r}")
