"""Correction memory: an agent's emerged correction patterns, for its next instructions (SPEC §6).

Read from the corrections read model caught up to the head of the log; only patterns that
reached the policy's threshold are lessons (``projections.corrections.queries``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.errors import InputError
from ledger.store.base import ReadModels
from projections.corrections.queries import iter_patterns


@dataclass(frozen=True, slots=True)
class Lesson:
    """One emerged correction pattern of an agent."""

    agent: str
    name: str
    count: int
    """Corrections in the pattern."""
    examples: tuple[str, ...]
    """The pattern's first corrections, oldest first (at most the policy's ``max_examples``)."""
    example_seqs: tuple[int, ...]
    """The seq of each example."""
    first_seq: int
    last_seq: int
    emerged_seq: int
    """The correction that brought the pattern to the policy's threshold."""
    topic: str | None

    @property
    def seqs(self) -> tuple[int, ...]:
        """The seqs the lesson rests on: its examples, its first, emerging and last corrections."""
        return tuple(sorted({*self.example_seqs, self.first_seq, self.emerged_seq, self.last_seq}))

    def as_instruction(self) -> str:
        """The lesson as lines for an agent's instructions."""
        head = f"Corrections received {self.count} times ({self.name}):"
        return "\n".join([head, *(f"- {e}" for e in self.examples)])

    def as_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "name": self.name,
            "count": self.count,
            "examples": list(self.examples),
            "example_seqs": list(self.example_seqs),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "emerged_seq": self.emerged_seq,
            "topic": self.topic,
        }

    @classmethod
    def from_json(cls, value: Any) -> Lesson:
        """The lesson ``as_json`` wrote (``InputError`` for anything else)."""
        try:
            lesson = cls(
                value["agent"],
                value["name"],
                value["count"],
                tuple(value["examples"]),
                tuple(value["example_seqs"]),
                value["first_seq"],
                value["last_seq"],
                value["emerged_seq"],
                value["topic"],
            )
        except (KeyError, TypeError) as e:
            raise InputError(
                f"lesson: expected the fields of a lesson, found {value!r:.200}"
            ) from e
        ints = (lesson.count, lesson.first_seq, lesson.last_seq, lesson.emerged_seq)
        if (
            not isinstance(lesson.agent, str)
            or not isinstance(lesson.name, str)
            or not isinstance(lesson.topic, str | None)
            or not all(isinstance(e, str) for e in lesson.examples)
            or not all(isinstance(n, int) for n in (*ints, *lesson.example_seqs))
        ):
            raise InputError(f"lesson: wrong field types in {value!r:.200}")
        return lesson


def lessons_of(db: ReadModels, agent: str) -> list[Lesson]:
    """The emerged patterns of ``agent`` in the order they emerged."""
    return [
        Lesson(
            p.agent,
            p.name,
            p.count,
            tuple(p.examples),
            tuple(p.example_seqs),
            p.first_seq,
            p.last_seq,
            p.emerged_seq,
            p.topic,
        )
        for p in iter_patterns(db, agent)
    ]
