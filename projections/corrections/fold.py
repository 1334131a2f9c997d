"""The correction-patterns read model: user corrections clustered per agent (SPEC §3).

Each ``correction.recorded`` joins one cluster of its agent, in seq order (the method is in
docs/corrections.md; the thresholds are the ``[corrections]`` section of the policy in force at
the event):

1. with an explicit ``topic``: the agent's cluster of that topic (created on first use);
2. otherwise: the agent's cluster most similar to the correction's keyword signature
   (``correction_text``), if that similarity reaches ``similarity_bp``; the similarity to a
   cluster is the highest with any of its first ``EXEMPLARS`` signatures; ties go to the
   cluster created first. Else a new cluster.

A cluster is a *pattern* from the correction that brings it to ``threshold`` corrections
(``emerged_seq``); its name is fixed then and never changes: the topic, or its top three
keywords. State is per agent, so the clustering of one agent never depends on another's events.

Tables: ``correction_clusters``, ``corrections`` (one row per correction with its cluster),
``corrections_policy`` (``PolicyFold``). Readers: ``correction_queries``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ledger.event.envelope import AnyPayload, CorrectionRecorded, EventView, PolicySet
from ledger.store.base import ReadModels
from projections.corrections.text import keywords, similarity_bp
from projections.policy.in_force import PolicyFold, policy_table
from projections.projection import Projection, Table

EXEMPLARS: Final = 5
"""A cluster is compared through its first this-many keyword signatures (bounded work)."""
NAME_KEYWORDS: Final = 3

CLUSTERS = Table(
    "correction_clusters",
    (
        ("agent", str),
        ("cluster", int),
        ("topic", str),
        ("count", int),
        ("first_seq", int),
        ("last_seq", int),
        ("emerged_seq", int),
        ("name", str),
        ("keywords", str),
        ("surface", str),
        ("exemplars", str),
    ),
    pk=("agent", "cluster"),
    indexes=(("agent", "emerged_seq"),),
)
CORRECTIONS = Table(
    "corrections",
    (
        ("seq", int),
        ("agent", str),
        ("run", str),
        ("cluster", int),
        ("topic", str),
        ("text", str),
        ("by", str),
        ("similarity_bp", int),
        ("signature", str),
    ),
    pk=("seq",),
    indexes=(("agent", "cluster", "seq"),),
)
POLICY = policy_table("corrections_policy")


@dataclass(slots=True)
class Cluster:
    """One cluster of an agent's corrections; ``cluster`` is the seq of its first one."""

    agent: str
    cluster: int
    topic: str | None
    count: int = 0
    first_seq: int = 0
    last_seq: int = 0
    emerged_seq: int | None = None
    name: str | None = None
    keywords: dict[str, int] = field(default_factory=dict)
    """Stem → how many of the cluster's corrections hold it."""
    surface: dict[str, str] = field(default_factory=dict)
    """Stem → the first word seen for it (how the name is spelled)."""
    exemplars: list[frozenset[str]] = field(default_factory=list)

    def row(self) -> tuple[Any, ...]:
        return (
            self.agent,
            self.cluster,
            self.topic,
            self.count,
            self.first_seq,
            self.last_seq,
            self.emerged_seq,
            self.name,
            json.dumps(self.keywords, sort_keys=True),
            json.dumps(self.surface, sort_keys=True, ensure_ascii=False),
            json.dumps([sorted(e) for e in self.exemplars], ensure_ascii=False),
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Cluster:
        agent, cluster, topic, count, first, last, emerged, name, kw, surface, ex = row
        return cls(
            agent,
            cluster,
            topic,
            count,
            first,
            last,
            emerged,
            name,
            json.loads(kw),
            json.loads(surface),
            [frozenset(e) for e in json.loads(ex)],
        )

    def top_keywords(self, n: int = NAME_KEYWORDS) -> list[str]:
        """The ``n`` most frequent keywords (surface words), ties in alphabetical stem order."""
        ranked = sorted(self.keywords.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [self.surface[s] for s, _ in ranked]


class CorrectionsState:
    """Clusters of the agents touched since the last flush, loaded per agent on demand."""

    __slots__ = ("clusters", "db", "dirty", "members", "policy")

    def __init__(self, db: ReadModels) -> None:
        self.db = db
        self.policy = PolicyFold(db, POLICY)
        self.clusters: dict[str, list[Cluster]] = {}
        """Agent → its clusters in creation order."""
        self.dirty: dict[tuple[str, int], Cluster] = {}
        self.members: list[tuple[Any, ...]] = []

    def load(self, agents: Sequence[str]) -> None:
        todo = [a for a in agents if a not in self.clusters]
        for a in todo:
            self.clusters[a] = []
        for i in range(0, len(todo), 500):
            chunk = todo[i : i + 500]
            for row in self.db.execute(
                f"SELECT {', '.join(CLUSTERS.column_names)} FROM {CLUSTERS.name} "
                f"WHERE agent IN ({', '.join('?' for _ in chunk)}) ORDER BY agent, cluster",
                chunk,
            ):
                self.clusters[row[0]].append(Cluster.from_row(row))

    def of(self, agent: str) -> list[Cluster]:
        if agent not in self.clusters:
            self.load([agent])
        return self.clusters[agent]


def assign(
    clusters: list[Cluster], sig: frozenset[str], topic: str | None, threshold_bp: int
) -> tuple[Cluster | None, int | None]:
    """The cluster a correction joins (None: a new one) and the similarity it joined by."""
    if topic is not None:
        return next((c for c in clusters if c.topic == topic), None), None
    best, best_bp = None, -1
    for c in clusters:  # creation order: on a tie the older cluster keeps it
        bp = max((similarity_bp(sig, e) for e in c.exemplars), default=0)
        if bp >= threshold_bp and bp > best_bp:
            best, best_bp = c, bp
    return best, (best_bp if best is not None else None)


class CorrectionsProjection(Projection[CorrectionsState]):
    """Correction patterns per agent (SPEC §3)."""

    name = "corrections"
    version = 1
    tables = (CLUSTERS, CORRECTIONS, POLICY)
    types = frozenset({"correction.recorded", "policy.set"})

    def start(self, db: ReadModels, deps: Mapping[str, Any]) -> CorrectionsState:
        return CorrectionsState(db)

    def prepare(self, state: CorrectionsState, events: Sequence[EventView]) -> None:
        agents = {e.agent for e in events if e.type == "correction.recorded" and e.agent}
        state.load(sorted(agents))

    def apply(
        self, state: CorrectionsState, event: EventView, payload: AnyPayload
    ) -> CorrectionsState:
        t = event.type
        if t == "correction.recorded" and event.agent is not None:
            assert isinstance(payload, CorrectionRecorded)
            _record(state, event, event.agent, payload)
        elif t == "policy.set":
            assert isinstance(payload, PolicySet)
            state.policy.observe(payload, event.seq)
        return state

    def flush(self, state: CorrectionsState) -> None:
        db = state.db
        db.insert(CLUSTERS, [c.row() for c in state.dirty.values()], replace=True)
        db.insert(CORRECTIONS, state.members)
        state.policy.flush()
        state.clusters.clear()
        state.dirty.clear()
        state.members.clear()


def _record(state: CorrectionsState, event: EventView, agent: str, p: CorrectionRecorded) -> None:
    rules = state.policy.rules.corrections
    clusters = state.of(agent)
    kw = keywords(p.text)
    sig = frozenset(s for s, _ in kw)
    cluster, bp = assign(clusters, sig, p.topic, rules.similarity_bp)
    seq = event.seq
    if cluster is None:
        cluster = Cluster(agent, seq, p.topic, first_seq=seq)
        clusters.append(cluster)
    cluster.count += 1
    cluster.last_seq = seq
    for s, word in kw:
        cluster.keywords[s] = cluster.keywords.get(s, 0) + 1
        cluster.surface.setdefault(s, word)
    if sig and len(cluster.exemplars) < EXEMPLARS:
        cluster.exemplars.append(sig)
    if cluster.emerged_seq is None and cluster.count >= rules.threshold:
        # The pattern emerges here; its name is fixed from now on.
        cluster.emerged_seq = seq
        cluster.name = (
            cluster.topic or "-".join(cluster.top_keywords()) or f"cluster-{cluster.cluster}"
        )
    state.dirty[(agent, cluster.cluster)] = cluster
    state.members.append(
        (seq, agent, event.run, cluster.cluster, p.topic, p.text, p.by, bp, " ".join(sorted(sig)))
    )
