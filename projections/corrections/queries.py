"""Reading the correction patterns, and applying them to an agent's next prompt.

Every function takes a ``ReadModels`` holding the tables of ``projections.corrections.fold`` (the
stored read models after ``catch_up``, or a scratch database from ``build_at`` for time travel)
and only reads. Only *emerged* patterns are ever returned: a cluster below the policy's
threshold teaches nothing yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ledger.store.base import ReadModels
from projections.corrections.fold import CLUSTERS, POLICY, Cluster
from projections.corrections.text import signature, similarity_bp
from projections.policy.in_force import PolicyFold


@dataclass(frozen=True, slots=True)
class Pattern:
    """An emerged correction pattern (SPEC §5 ``corrections --json``)."""

    agent: str
    name: str
    count: int
    first_seq: int
    last_seq: int
    emerged_seq: int
    """The correction that brought the cluster to the threshold."""
    topic: str | None
    keywords: list[str]
    examples: list[str]
    example_seqs: list[int]
    signatures: list[frozenset[str]]

    def as_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "name": self.name,
            "count": self.count,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "examples": self.examples,
            "example_seqs": self.example_seqs,
            "emerged_seq": self.emerged_seq,
            "topic": self.topic,
            "keywords": self.keywords,
        }


def _policy(db: ReadModels) -> PolicyFold:
    return PolicyFold(db, POLICY)


def iter_patterns(
    db: ReadModels, agent: str | None = None, *, limit: int | None = None
) -> Iterator[Pattern]:
    """Emerged patterns of every agent (or one), by agent then emergence, at most ``limit``,
    read from a cursor (streams). ``examples``: the cluster's first ``max_examples``
    corrections (policy in force at the read model's position), oldest first, so they are as
    stable as the name."""
    if not db.exists(CLUSTERS.name):
        return
    max_examples = _policy(db).rules.corrections.max_examples
    one, params = ("AND agent = ?", [agent]) if agent is not None else ("", [])
    cur = db.execute(
        f"SELECT {', '.join(CLUSTERS.column_names)} FROM {CLUSTERS.name} "
        f"WHERE emerged_seq IS NOT NULL {one} ORDER BY agent, emerged_seq"
        + ("" if limit is None else f" LIMIT {int(limit)}"),
        params,
    )
    for row in cur:
        c = Cluster.from_row(row)
        assert c.emerged_seq is not None and c.name is not None
        examples = db.execute(
            "SELECT seq, text FROM corrections WHERE agent = ? AND cluster = ? "
            "ORDER BY seq LIMIT ?",
            [c.agent, c.cluster, max_examples],
        ).fetchall()
        yield Pattern(
            c.agent,
            c.name,
            c.count,
            c.first_seq,
            c.last_seq,
            c.emerged_seq,
            c.topic,
            c.top_keywords(),
            [t for _, t in examples],
            [s for s, _ in examples],
            c.exemplars,
        )


def patterns(db: ReadModels, agent: str | None = None) -> list[Pattern]:
    """``iter_patterns`` as a list."""
    return list(iter_patterns(db, agent))


def count_patterns(db: ReadModels, agent: str | None = None) -> int:
    """How many patterns ``iter_patterns`` yields with no limit."""
    if not db.exists(CLUSTERS.name):
        return 0
    one, params = ("AND agent = ?", [agent]) if agent is not None else ("", [])
    row = db.execute(
        f"SELECT count(*) FROM {CLUSTERS.name} WHERE emerged_seq IS NOT NULL {one}", params
    ).fetchone()
    return int(row[0])


def pattern_for(db: ReadModels, agent: str, topic: str) -> Pattern | None:
    """The agent's emerged pattern for ``topic``: the one whose topic or name is ``topic``, else
    the one whose corrections' keywords are most similar to ``topic`` taken as text (at least
    the policy's ``similarity_bp``; ties: the one that emerged first). None when none fits."""
    found = patterns(db, agent)
    for p in found:
        if topic in (p.topic, p.name):
            return p
    threshold = _policy(db).rules.corrections.similarity_bp
    sig = signature(topic)
    best, best_bp = None, -1
    for p in found:
        bp = max((similarity_bp(sig, s) for s in p.signatures), default=0)
        if bp >= threshold and bp > best_bp and sig:
            best, best_bp = p, bp
    return best


def learned_examples(db: ReadModels, agent: str, topic: str) -> list[str]:
    """The example corrections to prepend to ``agent``'s next prompt about ``topic``; empty
    when no pattern has emerged for it (so it is safe to call before every prompt)."""
    p = pattern_for(db, agent, topic)
    return [] if p is None else list(p.examples)


def inject_corrections(db: ReadModels, agent: str, prompt: str, topic: str | None = None) -> str:
    """``prompt`` preceded by the learned corrections for ``topic`` (default: the prompt's own
    text); ``prompt`` unchanged when no pattern has emerged for it."""
    p = pattern_for(db, agent, prompt if topic is None else topic)
    if p is None:
        return prompt
    lines = "\n".join(f"- {e}" for e in p.examples)
    return (
        f"Corrections this agent has received before (pattern {p.name!r}, "
        f"{p.count} times):\n{lines}\n\n{prompt}"
    )
