"""Read models rebuilt by replaying the log (SPEC §3): runs, agents, findings and metrics."""

from __future__ import annotations

from projections.base import Projection, Table, register, registered
from projections.reliability import ReliabilityProjection
from projections.runs import RunsProjection

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

from projections.tiers import TiersProjection  # noqa: E402  (issue 4: folded after runs)

TIERS = register(TiersProjection())

from projections.corrections import CorrectionsProjection  # noqa: E402  (issue 6)

CORRECTIONS = register(CorrectionsProjection())
