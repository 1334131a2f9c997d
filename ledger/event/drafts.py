"""What a writer hands the ledger: drafts, and their validation and canonical payload text.

SPEC §2.2, §2.4. A ``Draft`` holds what the writer chooses; ``prepare`` validates it against the
catalog and encodes its payload. The write path (``ledger.store.chaining``) validates drafts inside
its chaining loop (``Prepared.encoded``), so validation overlaps the signing of the batch's
earlier events in the worker processes; nothing is written unless every draft passes.

Importing this module does not import pydantic (a reading command imports the store, and so
this module): the catalog's models are imported when the first draft is validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ledger.errors import EventValidationError
from ledger.event.canonical import canonical, canonical_of_typed
from ledger.event.envelope import check_envelope, decode_payload, envelope_is_plain
from ledger.event.payload_check import CATALOG_TYPES, TIME_FIELDS, with_ts_times

MAX_PAYLOAD_BYTES = 64 * 1024
"""Largest canonical payload accepted (64 KiB): store digests of big artifacts, not the data."""

MAX_BODY_BYTES = 49_146
"""Largest canonical body C of an event (envelope without ``hash`` and ``sig``). A C2SP
tlog-tiles entry is at most 65,535 bytes, and the common Go parser of tlog-proofs reads lines of
at most 64 KiB, where a proof's ``extra`` line is base64 of C: 4 * ceil(49,146 / 3) = 65,528
characters, plus the line's newline, fits."""


def check_body_size(body: bytes, where: str) -> None:
    """Refuse a canonical body over ``MAX_BODY_BYTES`` (``EventValidationError`` naming it)."""
    if len(body) > MAX_BODY_BYTES:
        raise EventValidationError(
            f"{where}: event body is {len(body)} bytes, over the limit of {MAX_BODY_BYTES} bytes "
            "(a tlog-tiles entry and a tlog-proof line must hold it; store a digest of large "
            "content instead)"
        )


TYPED_PAYLOADS = frozenset(CATALOG_TYPES) - {
    "policy.set",
    "tier.promoted",
    "tier.demoted",
    "tier.revoked",
}
"""Catalog types whose strict payload models have no free-form field (``dict[str, Any]``, extra
fields allowed): validation already guarantees JSON-safe types, so encoding skips its walk."""


@dataclass(frozen=True, slots=True)
class Draft:
    """An event to append: what the writer chooses. The ledger adds the rest."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    agent: str | None = None
    run: str | None = None
    actor: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A draft, how messages name it (``event``, ``event 3``, ``line 17``) and, once
    validated, its canonical payload text (``None``: not validated yet)."""

    draft: Draft
    payload_text: str | None
    where: str

    def encoded(self) -> tuple[Draft, str]:
        """The draft and its canonical payload text, validating it first if it was not yet
        (``EventValidationError`` naming ``where`` otherwise)."""
        if self.payload_text is None:
            return validated(self.draft, self.where)
        return self.draft, self.payload_text


def prepare(draft: Draft, where: str = "event") -> Prepared:
    """Validate a draft against the catalog and encode its payload (SPEC §2.2, §2.4)."""
    return Prepared(*validated(draft, where), where)


def validated(draft: Draft, where: str = "event") -> tuple[Draft, str]:
    """The draft as stored (payload times in ``ts`` form, so one instant has one spelling)
    and the canonical text of its payload, once the draft is validated (``prepare`` without the
    wrapper; ``EventValidationError`` and kin naming ``where`` otherwise)."""
    if not envelope_is_plain(draft.type, draft.agent, draft.run, draft.actor, draft.id):
        check_envelope(
            draft.type,
            {"agent": draft.agent, "run": draft.run, "actor": draft.actor, "id": draft.id},
            where,
        )
    model = decode_payload(draft.type, draft.payload, where)
    if draft.type in TIME_FIELDS:
        payload = with_ts_times(draft.type, draft.payload, model)
        if payload is not draft.payload:
            draft = replace(draft, payload=payload)
    encode = canonical_of_typed if draft.type in TYPED_PAYLOADS else canonical
    raw = encode(draft.payload, f"{where}: payload")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise EventValidationError(
            f"{where}: payload is {len(raw)} bytes, over the limit of {MAX_PAYLOAD_BYTES} bytes "
            "(store a digest of large content instead)"
        )
    return draft, raw.decode("utf-8")
