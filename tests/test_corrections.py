"""Correction patterns: realistic corrections cluster by topic per agent, a pattern
emerges exactly at the correction that reaches the threshold (time travel shows it not yet
emerged before), whatever the interleaving of other agents' events; the learned examples are
returned for an agent's next prompt only once a pattern has emerged."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlite_utils import Database

from ledger.cli import main
from ledger.store.sqlite import Draft, Ledger
from projections.corrections.queries import (
    Pattern,
    inject_corrections,
    learned_examples,
    pattern_for,
    patterns,
)
from projections.corrections.text import signature, similarity_bp, stem
from projections.policy.document import default_document, digest_of
from projections.testing import Events, replay
from tests.conftest import LedgerKeys

CITE = (
    "Always cite your sources.",
    "Please cite the source for every number you quote.",
    "You forgot to cite sources again - cite them every time",
    "Cite a source for each claim",
)
UTC = (
    "Use UTC timestamps, not local time",
    "Timestamps must be UTC, never local time",
    "All times should be in UTC",
)
EMAIL = (
    "Don't email customers directly",
    "Never send emails to customers yourself",
    "Customer emails must be drafted, not sent",
)
DELETE = ("Ask me before deleting any files", "Never delete files without asking first")


def correct(ev: Events, text: str, agent: str = "a1", topic: str | None = None) -> int:
    fields: dict[str, Any] = {"text": text, "by": "alice"}
    if topic is not None:
        fields["topic"] = topic
    return ev.add("correction.recorded", agent=agent, **fields).seq


def shape(ps: list[Pattern]) -> list[tuple[str, str, int, list[str]]]:
    return [(p.agent, p.name, p.count, p.examples) for p in ps]


# --- the method ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [("sources", "sourc"), ("source", "sourc"), ("citing", "cit"), ("cited", "cit"),
     ("summaries", "summary"), ("deletes", "delet"), ("units", "unit"), ("quickly", "quick"),
     ("use", "use"), ("is", "is")],
)  # fmt: skip
def test_stemming_strips_the_documented_suffixes(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_signatures_drop_stop_words_and_short_tokens_and_compare_in_integer_bp() -> None:
    assert signature("Please, ALWAYS cite your sources!") == {"cit", "sourc"}
    assert signature("Don't do it") == frozenset()
    a, b = signature(CITE[0]), signature(CITE[3])  # {cit, sourc} and {cit, sourc, claim}
    assert similarity_bp(a, b) == 6666
    assert similarity_bp(frozenset(), frozenset()) == 0


# --- clustering ------------------------------------------------------------------------------


def test_paraphrases_cluster_together_and_unrelated_corrections_do_not() -> None:
    ev = Events()
    for group in zip(CITE, (*UTC, ""), (*EMAIL, ""), (*DELETE, "", ""), strict=True):
        for text in group:
            if text:
                correct(ev, text)
    db = replay(ev)
    assert shape(patterns(db)) == [
        ("a1", "cite-sources-forgot", 4, list(CITE[:3])),
        ("a1", "time-utc-local", 3, list(UTC)),
        ("a1", "customers-email-directly", 3, list(EMAIL)),
    ]  # DELETE: two corrections, below the threshold of 3
    members = dict(db.execute("SELECT text, cluster FROM corrections").fetchall())
    assert members[DELETE[0]] == members[DELETE[1]]
    assert len({members[t] for t in (CITE[0], UTC[0], EMAIL[0], DELETE[0])}) == 4


def test_an_explicit_topic_decides_and_names_the_cluster() -> None:
    ev = Events()
    correct(ev, "be more concise", topic="concise")
    correct(ev, "nobody reads walls of text", topic="concise")
    correct(ev, "Always cite your sources.", topic="cite-sources")
    third = correct(ev, "too long, three bullet points max", topic="concise")
    (p,) = patterns(replay(ev))
    assert (p.name, p.topic, p.count, p.emerged_seq) == ("concise", "concise", 3, third)


def test_a_correction_without_topic_joins_a_similar_topic_cluster() -> None:
    ev = Events()
    correct(ev, "link the docs you used", topic="cite-sources")
    correct(ev, "cite sources for each claim", topic="cite-sources")
    correct(ev, "Cite your sources")  # {cit, sourc}: 6666 bp with the second
    (p,) = patterns(replay(ev))
    assert (p.name, p.count) == ("cite-sources", 3)


def test_a_pattern_emerges_exactly_at_the_threshold_correction_not_one_earlier() -> None:
    ev = Events()
    correct(ev, CITE[0])
    correct(ev, UTC[0])
    correct(ev, CITE[1])
    third = correct(ev, CITE[2])
    correct(ev, CITE[3])
    assert patterns(replay(ev.prefix(third - 1))) == []
    (at,) = patterns(replay(ev.prefix(third)))
    assert (at.emerged_seq, at.count, at.last_seq) == (third, 3, third)
    (now,) = patterns(replay(ev))
    assert (now.emerged_seq, now.count, now.name) == (third, 4, at.name)
    assert patterns(replay(ev, batch=2)) == patterns(replay(ev))


def test_the_name_is_fixed_when_the_pattern_emerges() -> None:
    ev = Events()
    for text in CITE[:3]:
        correct(ev, text)
    for _ in range(4):
        correct(ev, "cite the number and quote the number source")
    (p,) = patterns(replay(ev))
    assert p.count == 7 and p.name == "cite-sources-forgot"
    assert p.keywords[0] == "cite"  # the keywords move on; the name does not


def test_the_policy_in_force_at_each_correction_sets_the_threshold() -> None:
    ev = Events()
    doc = default_document()
    doc["corrections"] = {**doc["corrections"], "threshold": 2, "max_examples": 1}
    ev.add("policy.set", version=1, digest=digest_of(doc), document=doc)
    correct(ev, DELETE[0])
    second = correct(ev, DELETE[1])
    (p,) = patterns(replay(ev))
    assert (p.emerged_seq, p.examples) == (second, [DELETE[0]])


TRAINING = {"a1": CITE + UTC, "a2": EMAIL + CITE[:2], "a3": DELETE + UTC}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_clustering_does_not_depend_on_how_agents_interleave(seed: int) -> None:
    def build(order: list[str]) -> list[tuple[str, str, int, list[str]]]:
        ev = Events()
        pending = {a: list(texts) for a, texts in TRAINING.items()}
        for agent in order:
            correct(ev, pending[agent].pop(0), agent=agent)
            ev.add("run.started", agent=agent, run=f"noise-{len(ev.events)}")
        return shape(patterns(replay(ev)))

    by_agent = [a for a, texts in TRAINING.items() for _ in texts]
    shuffled = by_agent[:]
    random.Random(seed).shuffle(shuffled)
    assert build(shuffled) == build(by_agent)
    assert [p[:3] for p in build(shuffled)] == [
        ("a1", "cite-sources-forgot", 4), ("a1", "time-utc-local", 3),
        ("a2", "customers-email-directly", 3), ("a3", "time-utc-local", 3),
    ]  # fmt: skip


# --- the learned examples for the next prompt ------------------------------------------------


def test_learned_examples_only_once_a_pattern_has_emerged() -> None:
    ev = Events()
    correct(ev, CITE[0], topic="cite-sources")
    correct(ev, CITE[1], topic="cite-sources")
    early = replay(ev)
    assert learned_examples(early, "a1", "cite-sources") == []
    assert inject_corrections(early, "a1", "Summarize the report") == "Summarize the report"
    correct(ev, CITE[2], topic="cite-sources")
    db = replay(ev)
    assert learned_examples(db, "a1", "cite-sources") == list(CITE[:3])
    assert learned_examples(db, "a1", "what sources should I cite?") == list(CITE[:3])
    assert learned_examples(db, "a1", "book a flight to Lisbon") == []
    assert learned_examples(db, "a2", "cite-sources") == []
    prompt = inject_corrections(db, "a1", "Write the market report", topic="cite-sources")
    assert prompt.startswith("Corrections this agent has received before (pattern 'cite-sources'")
    assert prompt.endswith(f"- {CITE[2]}\n\nWrite the market report")
    p = pattern_for(db, "a1", "cite-sources")
    assert p is not None and p.example_seqs == [1, 2, 3]


# --- the command -----------------------------------------------------------------------------


def cli(db: str, *args: str) -> Result:
    return CliRunner(env={"COLUMNS": "300"}).invoke(
        main, ["--db", db, *args], catch_exceptions=False
    )


def lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def db(ledger: Ledger, keys: LedgerKeys, tmp_path: Path) -> str:
    ledger.append(Draft("agent.registered", {
        "owner": "team", "version": "1", "initial_tier": 1, "allowed_side_effects": ["read"],
        "forbidden_actions": [], "confidence_threshold_bp": 5000}, agent="planner-1"),
        signer=keys.root)  # fmt: skip
    for text in CITE:
        ledger.append(Draft("correction.recorded", {"text": text, "by": "alice"},
                            agent="planner-1"), signer=keys.recorder)  # fmt: skip
    return str(tmp_path / "l.db")


def test_corrections_json_has_the_pattern_shape_and_travels_in_time(db: str) -> None:
    (p,) = lines(cli(db, "corrections", "--json"))
    assert {k: p[k] for k in ("agent", "name", "count", "first_seq", "last_seq", "examples")} == {
        "agent": "planner-1", "name": "cite-sources-forgot", "count": 4, "first_seq": 4,
        "last_seq": 7, "examples": list(CITE[:3]),
    }  # fmt: skip
    assert p["emerged_seq"] == 6
    assert lines(cli(db, "corrections", "--at-seq", "5", "--json")) == []
    assert lines(cli(db, "corrections", "--at-seq", "6", "--json"))[0]["count"] == 3
    assert lines(cli(db, "corrections", "--agent", "other", "--json")) == []
    out = cli(db, "corrections", "--at-seq", "5")
    assert out.exit_code == 0 and out.stdout == ""
    assert out.stderr == "no correction pattern has emerged\n"
    assert "cite-sources-forgot" in cli(db, "corrections").stdout


def test_corrections_topic_prints_the_learned_examples(db: str) -> None:
    out = cli(db, "corrections", "--agent", "planner-1", "--topic", "cite sources")
    assert out.exit_code == 0 and out.stdout.splitlines() == list(CITE[:3])
    early = cli(db, "corrections", "--agent", "planner-1", "--topic", "cite", "--at-seq", "5")
    assert early.exit_code == 0 and early.stdout == ""
    bad = cli(db, "corrections", "--topic", "x")
    assert bad.exit_code == 2 and bad.stderr == "error: --topic needs --agent\n"


def test_the_corrections_read_model_is_stored_beside_the_log(db: str) -> None:
    cli(db, "corrections")
    rows = Database(db).execute("SELECT count(*) FROM corrections").fetchone()
    assert rows == (4,)
