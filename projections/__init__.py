"""Read models rebuilt by replaying the log (SPEC §3): runs, agents, findings and metrics."""

from __future__ import annotations

from projections.projection import Projection, Table, register, registered
from projections.reliability.fold import ReliabilityProjection
from projections.runs.fold import RunsProjection

RELIABILITY = register(ReliabilityProjection())  # issue 6: folded before runs, which reads it
RUNS = register(RunsProjection())

__all__ = [
    "RELIABILITY",
    "RUNS",
    "Projection",
    "ReliabilityProjection",
    "RunsProjection",
    "Table",
    "register",
    "registered",
]

from projections.tiers.fold import TiersProjection  # noqa: E402  (issue 4: folded after runs)

TIERS = register(TiersProjection())

from projections.corrections.fold import CorrectionsProjection  # noqa: E402  (issue 6)

CORRECTIONS = register(CorrectionsProjection())
