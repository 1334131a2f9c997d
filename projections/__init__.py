"""Read models rebuilt by replaying the log (SPEC §3): runs, agents, findings, tiers, corrections.

Public names, importable from ``projections``:

- ``Projection``, ``Table``: what a read model is (``projections.projection``);
- ``default_projections()``: the read models replay folds, in order; ``register(p)`` adds one
  after them; ``RELIABILITY``, ``RUNS``, ``TIERS``, ``CORRECTIONS``: the built-in ones
  (``projections.registry``);
- ``catch_up``, ``build_at``: fold the log into the read models (``projections.driver``).

Queries live beside each read model (``projections.runs.queries``, ``projections.tiers.queries``,
``projections.findings.queries``, ``projections.corrections.queries``). Importing this package
registers nothing and imports nothing heavy: each name is loaded when first used (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from projections.driver import build_at, catch_up
    from projections.projection import Projection, Table
    from projections.registry import (
        CORRECTIONS,
        RELIABILITY,
        RUNS,
        TIERS,
        default_projections,
        register,
    )

_WHERE = {  # public name → the module defining it
    "Projection": "projections.projection",
    "Table": "projections.projection",
    "default_projections": "projections.registry",
    "register": "projections.registry",
    "RELIABILITY": "projections.registry",
    "RUNS": "projections.registry",
    "TIERS": "projections.registry",
    "CORRECTIONS": "projections.registry",
    "catch_up": "projections.driver",
    "build_at": "projections.driver",
}

__all__ = [
    "CORRECTIONS",
    "RELIABILITY",
    "RUNS",
    "TIERS",
    "Projection",
    "Table",
    "build_at",
    "catch_up",
    "default_projections",
    "register",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'projections' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
