"""The real SQLite store driven by hypothesis against a plain list model (SPEC §1.1, §1.2,
§1.6): whatever sequence of appends, batches, refused writes and reopenings happens, the log
is exactly the accepted drafts, in order, chained, and verifies."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ledger.crypto.keyfiles import KeyRing
from ledger.errors import DuplicateEventId, EventValidationError, InputError, UnauthorizedWrite
from ledger.event.envelope import ZERO_HASH
from ledger.store.sqlite import Draft, Ledger, root_key_payload
from ledger.verify.verifier import verify_ledger
from tests.conftest import digest

ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def drafts(draw: st.DrawFn) -> Draft:
    """A valid draft a recorder may sign, with or without a chosen id."""
    event_id = draw(st.none() | ids)
    kind = draw(st.sampled_from(["x.note", "tool.called", "feedback.quality"]))
    if kind == "x.note":
        payload = draw(st.dictionaries(st.text(max_size=6), values, max_size=4))
        return Draft("x.note", payload, actor=draw(st.none() | st.just("u1")), id=event_id)
    if kind == "tool.called":
        payload = {
            "tool": draw(st.sampled_from(["web.get", "fs.write"])),
            "args_digest": digest(str(draw(st.integers()))),
            "side_effect": "read",
        }
        return Draft(
            kind, payload, agent="a1", run=draw(st.sampled_from(["r1", "r2"])), id=event_id
        )
    return Draft(
        kind, {"score_bp": draw(st.integers(0, 10000)), "by": "u1"}, agent="a1", id=event_id
    )


BAD: list[tuple[Draft, type[InputError]]] = [
    (Draft("tool.called", {"tool": "t"}, agent="a", run="r"), EventValidationError),
    (Draft("x.note", {"f": 0.5}), InputError),
    (Draft("no.such.type", {}), EventValidationError),
    (
        Draft("tool.called", {"tool": "t", "args_digest": "0" * 64, "side_effect": "read"}),
        EventValidationError,
    ),
    (
        Draft(
            "agent.registered",
            {
                "owner": "o",
                "version": "1",
                "initial_tier": 0,
                "allowed_side_effects": [],
                "forbidden_actions": [],
                "confidence_threshold_bp": 0,
            },
            agent="a",
        ),
        UnauthorizedWrite,
    ),
]


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="govledger-stateful-"))
        ring = KeyRing(self.dir / "keys")
        self.root, self.recorder = ring.create("root"), ring.create("recorder")
        # synchronous=NORMAL: durability across power loss is not what this test is about.
        self.ledger = Ledger.create(
            self.dir / "l.db", origin="stateful.example/log", root=self.root, synchronous="NORMAL"
        )
        self.ledger.append(
            Draft("key.registered", root_key_payload(self.recorder, "recorder")), signer=self.root
        )
        setup = list(self.ledger.iter_events())
        # The model: (type, payload, agent, run, actor) per accepted draft, the id it was given
        # (None: generated), and the id and hash the ledger reported for it.
        self.model: list[tuple[Any, ...]] = [
            (e.type, e.payload, e.agent, e.run, e.actor) for e in setup
        ]
        self.given: list[str | None] = [None for _ in setup]
        self.ids = [e.id for e in setup]
        self.hashes = [e.hash for e in setup]

    def _accept(self, accepted: list[Draft], events: list[Any]) -> None:
        assert [e.seq for e in events] == list(
            range(len(self.model) + 1, len(self.model) + len(accepted) + 1)
        )
        for d, e in zip(accepted, events, strict=True):
            self.model.append((d.type, d.payload, d.agent, d.run, d.actor))
            self.given.append(d.id)
            self.ids.append(e.id)
            self.hashes.append(e.hash)

    @rule(draft=drafts())
    def append(self, draft: Draft) -> None:
        if draft.id in self.ids:
            return
        self._accept([draft], [self.ledger.append(draft, signer=self.recorder)])

    @rule(batch=st.lists(drafts(), min_size=1, max_size=6))
    def append_many(self, batch: list[Draft]) -> None:
        given = [d.id for d in batch if d.id is not None]
        if len(set(given)) != len(given) or set(self.ids) & set(given):
            return
        self._accept(batch, self.ledger.append_many(batch, signer=self.recorder))

    @rule(data=st.data(), before=st.lists(drafts(), max_size=3))
    def append_duplicate_id(self, data: st.DataObject, before: list[Draft]) -> None:
        seq = data.draw(st.integers(1, len(self.ids)))
        batch = [Draft(d.type, d.payload, d.agent, d.run, d.actor, None) for d in before]
        batch.append(Draft("x.note", {}, id=self.ids[seq - 1]))
        head = self.ledger.head()
        try:
            self.ledger.append_many(batch, signer=self.recorder)
        except DuplicateEventId as e:
            assert e.message == (
                f"{'event' if len(batch) == 1 else f'event {len(batch)}'}: id {self.ids[seq - 1]!r} is already in the log at seq {seq}"
            )
        else:
            raise AssertionError("a duplicate id was accepted")
        assert self.ledger.head() == head

    @rule(
        before=st.lists(drafts(), max_size=3),
        bad=st.sampled_from(BAD),
        after=st.lists(drafts(), max_size=3),
    )
    def append_bad_draft(
        self, before: list[Draft], bad: tuple[Draft, type[InputError]], after: list[Draft]
    ) -> None:
        batch = [Draft(d.type, d.payload, d.agent, d.run, d.actor, None) for d in before + after]
        batch.insert(len(before), bad[0])
        head = self.ledger.head()
        try:
            self.ledger.append_many(batch, signer=self.recorder)
        except bad[1] as e:
            # Names the draft: "event" alone in a batch of one, else "event N" (1-based).
            where = "event:" if len(batch) == 1 else f"event {len(before) + 1}:"
            assert e.message.startswith(where)
        else:
            raise AssertionError(f"{bad[0]} was accepted")
        assert self.ledger.head() == head

    @rule()
    def reopen(self) -> None:
        self.ledger.close()
        self.ledger = Ledger.open(self.dir / "l.db", synchronous="NORMAL")

    @invariant()
    def log_equals_model(self) -> None:
        assert self.ledger.size == len(self.model)
        assert self.ledger.head() == (len(self.model), self.hashes[-1])
        events = list(self.ledger.iter_events())
        assert [e.seq for e in events] == list(range(1, len(self.model) + 1))
        prev = ZERO_HASH
        for e, m, given, h in zip(events, self.model, self.given, self.hashes, strict=True):
            assert (e.type, e.payload, e.agent, e.run, e.actor) == m
            assert given is None or e.id == given
            assert e.hash == h and e.prev == prev
            prev = e.hash
        assert [e.id for e in events] == self.ids

    def teardown(self) -> None:
        try:
            report = verify_ledger(self.ledger)
            assert report.ok, report.problems
            assert report.events == len(self.model)
        finally:
            self.ledger.close()
            shutil.rmtree(self.dir, ignore_errors=True)


# Inherits the loaded profile (``ci``: derandomized); small, as the whole suite must stay fast.
LedgerMachine.TestCase.settings = settings(max_examples=15, stateful_step_count=20)
test_ledger_state_machine = LedgerMachine.TestCase
