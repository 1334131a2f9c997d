"""The state the runs projection folds into: the rows touched since the last flush.

Rows of runs and agents (and the grants of those runs) are loaded from the tables on demand, a
chunk of keys per query, when a batch of events is prepared; everything found, or created, stays
cached until ``RunsProjection.flush`` writes it back and clears the cache. Memory is therefore
bounded by the batch, not by the log.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ledger.store.base import ReadModels
from projections.findings.kinds import effective_tier
from projections.policy.in_force import PolicyFold, policy_table
from projections.projection import Table, column_list
from projections.runs.tables import AGENTS, RUNS, Agent, Run

if TYPE_CHECKING:
    from projections.reliability.fold import ReliabilityState

POLICY = policy_table("runs_policy")
"""The policy in force as of the last event folded: the approval and grants rules need it."""

GrantMap = dict[str, list[tuple[int, str | None]]]
"""Tool → ``(seq, expires_at)`` of each grant of the run naming it, oldest first."""


class TierStandings(Protocol):
    """The tier judge the runs fold consults: the tiers read model's state as of the previous
    event (``projections.tiers.fold.TiersState``), which re-judges every recorded tier change."""

    def standing_of(self, agent: str) -> tuple[int, int] | None:
        """``(tier, seq that set it)`` the agent holds by its registration and the tier changes
        the policy justified (an unjustified change neither raises nor lowers it); None when
        the agent has no tier record."""
        ...


class RunsState:
    """The runs read model being folded: rows touched since the last flush, loaded on demand."""

    __slots__ = (
        "agents",
        "anomalies",
        "db",
        "findings",
        "grant_maps",
        "grants",
        "policy",
        "reliability",
        "runs",
        "tiers",
    )

    def __init__(self, db: ReadModels, reliability: ReliabilityState | None = None) -> None:
        self.db = db
        self.reliability = reliability
        """The reliability projection's state: its signals for an event become findings."""
        self.policy = PolicyFold(db, POLICY)
        """The policy in force (its ``[approval]`` and ``[grants]`` rules)."""
        self.tiers: TierStandings | None = None
        """The tier judge (set by ``RunsProjection.attach``): the approval, grants and tier
        rules go by the tier it holds justified, never by a recorded change it flagged."""
        self.runs: dict[str, Run] = {}
        self.agents: dict[str, Agent] = {}
        self.grant_maps: dict[str, GrantMap] = {}
        self.findings: list[tuple[Any, ...]] = []
        self.anomalies: list[tuple[Any, ...]] = []
        self.grants: list[tuple[Any, ...]] = []

    def load(self, run_ids: Collection[str], agent_ids: Collection[str]) -> None:
        """Load the stored rows (and grants) of these runs and agents, a chunk per query; a
        run or agent not found is new, and starts empty."""
        for row in _select(self.db, RUNS, [i for i in run_ids if i not in self.runs]):
            self.runs[row[0]] = Run(*row)
            self.grant_maps.pop(row[0], None)
        for row in _select(self.db, AGENTS, [i for i in agent_ids if i not in self.agents]):
            self.agents[row[0]] = Agent(*row)
        for i in agent_ids:
            if i not in self.agents:
                self.agents[i] = Agent(i)
        for i in run_ids:
            if i not in self.runs:
                self.runs[i] = Run(i)
                self.grant_maps[i] = {}  # a run not in the table has no stored grants
        stored = [i for i in run_ids if i not in self.grant_maps]
        for chunk in _chunks(stored):
            for i in chunk:
                self.grant_maps[i] = {}
            rows = self.db.execute(
                "SELECT run, seq, tools, expires_at FROM grants "
                f"WHERE run IN ({', '.join('?' for _ in chunk)}) ORDER BY seq",
                chunk,
            )
            for run_id, seq, tools, expires in rows:
                gm = self.grant_maps[run_id]
                for tool in json.loads(tools):
                    gm.setdefault(tool, []).append((seq, expires))

    def standing(self, agent: Agent) -> tuple[int, int]:
        """``(tier, seq that set it)`` the rules judge ``agent`` by, as of the events folded so
        far: the tier judge's, else (no tier record there) the recorded tier."""
        judged = self.tiers.standing_of(agent.agent) if self.tiers is not None else None
        return (agent.tier, agent.tier_since_seq) if judged is None else judged

    def effective_tier(self, agent: Agent) -> int:
        """The agent's effective tier as of the events folded so far (SPEC §3): its justified
        tier (``standing``), 0 after a critical finding since that tier was set."""
        tier, since = self.standing(agent)
        return effective_tier(tier, since, agent.last_critical_seq)

    def run(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            self.load([run_id], ())
            run = self.runs[run_id]
        return run

    def agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            self.load((), [agent_id])
            agent = self.agents[agent_id]
        return agent

    def grant_map(self, run_id: str) -> GrantMap:
        if run_id not in self.grant_maps:
            self.load([run_id], ())
        return self.grant_maps[run_id]


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _select(db: ReadModels, table: Table, ids: list[str]) -> Iterator[tuple[Any, ...]]:
    """Rows of ``table`` whose one-column key is in ``ids``."""
    for chunk in _chunks(ids):
        marks = ", ".join("?" for _ in chunk)
        yield from db.execute(
            f"SELECT {column_list(table.column_names)} FROM {table.name} "
            f"WHERE {table.pk[0]} IN ({marks})",
            chunk,
        )
