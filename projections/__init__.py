"""Read models rebuilt by replaying the log (SPEC §3): runs, agents, findings and metrics."""

from __future__ import annotations

from projections.base import Projection, Table, register, registered
from projections.runs import RunsProjection

RUNS = register(RunsProjection())

__all__ = ["RUNS", "Projection", "RunsProjection", "Table", "register", "registered"]

from projections.tiers import TiersProjection  # noqa: E402  (issue 4: folded after runs)

TIERS = register(TiersProjection())
