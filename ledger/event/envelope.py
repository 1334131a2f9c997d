"""The event envelope, the rules around the catalog, and time helpers (SPEC §2.1, §2.4, §2.5).

The payload models live in ``ledger.event.catalog`` and are re-exported here, so ``ledger.event.envelope`` is
the one place to import event types from. ``decode_payload`` validates a payload against its
type (one discriminated ``TypeAdapter``) and returns its model; ``check_payload`` gives the same
verdict and message without pydantic (``ledger.event.payload_check``), for the reading paths.
``authorize`` is the SPEC §2.5 table, and ``Event`` is one stored event.

Importing this module does not import pydantic: the catalog's models are imported when one of
their names is first used here, or when a payload is first decoded.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_core import ValidationError

from ledger.errors import EventValidationError, UnknownEventType
from ledger.event.framing import (
    ENVELOPE_VERSION,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    TEXT_FIELDS,
    TS_RE,
    USER_TYPE_RE,
    ZERO_HASH,
    is_user_type,
    plain_text,
    text_problem,
)
from ledger.event.payload_check import (
    CATALOG_TYPE_SET,
    CATALOG_TYPES,
    format_validation,
    payload_checker,
)

if TYPE_CHECKING:
    from ledger.event.catalog import (
        CATALOG,
        PAYLOAD_ADAPTER,
        AgentRegistered,
        AnyPayload,
        Bp,
        CapabilityGranted,
        CorrectionRecorded,
        Count,
        DecisionRecorded,
        FailureClass,
        FeedbackQuality,
        GuardrailTriggered,
        Hex64,
        KeyInfo,
        KeyRegistered,
        KeyRevoked,
        LedgerCreated,
        LlmUsage,
        Name,
        Payload,
        PlannedStep,
        PolicySet,
        Risk,
        Role,
        RunApproved,
        RunCancelled,
        RunCompleted,
        RunFailed,
        RunPlanned,
        RunRejected,
        RunStarted,
        RunSubmitted,
        Tier,
        TierDemoted,
        TierEvidence,
        TierPromoted,
        TierRevoked,
        Time,
        ToolCalled,
        ToolCompleted,
        UserPayload,
    )

__all__ = [
    "CATALOG",
    "ENVELOPE_VERSION",
    "MAX_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "PAYLOAD_ADAPTER",
    "TS_RE",
    "USER_TYPE_RE",
    "ZERO_HASH",
    "AgentRegistered",
    "AnyPayload",
    "Bp",
    "CapabilityGranted",
    "CorrectionRecorded",
    "Count",
    "DecisionRecorded",
    "Event",
    "FailureClass",
    "FeedbackQuality",
    "GuardrailTriggered",
    "Hex64",
    "KeyInfo",
    "KeyRegistered",
    "KeyRevoked",
    "LedgerCreated",
    "LlmUsage",
    "Name",
    "Payload",
    "PlannedStep",
    "PolicySet",
    "Risk",
    "Role",
    "RunApproved",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunPlanned",
    "RunRejected",
    "RunStarted",
    "RunSubmitted",
    "Tier",
    "TierDemoted",
    "TierEvidence",
    "TierPromoted",
    "TierRevoked",
    "Time",
    "ToolCalled",
    "ToolCompleted",
    "UserPayload",
    "authorize",
    "check_envelope",
    "check_payload",
    "check_type",
    "decode_payload",
    "envelope_is_plain",
    "format_ts",
    "normalize_time",
    "parse_time",
]

_FROM_CATALOG = frozenset(__all__)
"""The catalog's names re-exported here (the names of ``__all__`` this module does not define
itself: only those reach ``__getattr__``): ``ledger.event.catalog`` (pydantic) is imported when
one is first used, so a command that only reads, and checks payloads with
``ledger.event.payload_check``, never imports pydantic."""


_models: ModuleType | None = None


def _catalog() -> ModuleType:
    """``ledger.event.catalog``, imported on first use (a per-event call on the write path)."""
    global _models
    if _models is None:
        _models = importlib.import_module("ledger.event.catalog")
    return _models


def __getattr__(name: str) -> Any:
    if name in _FROM_CATALOG:
        return getattr(_catalog(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Which envelope fields each type requires to be non-null (SPEC §2.4, "envelope" column).
_AR = ("agent", "run")
REQUIRED_ENVELOPE: dict[str, tuple[str, ...]] = {
    "agent.registered": ("agent",),
    "run.submitted": _AR,
    "run.planned": _AR,
    "run.approved": _AR,
    "run.rejected": _AR,
    "capability.granted": _AR,
    "run.started": _AR,
    "tool.called": _AR,
    "tool.completed": _AR,
    "llm.usage": ("agent",),
    "decision.recorded": _AR,
    "guardrail.triggered": ("agent",),
    "run.completed": _AR,
    "run.failed": _AR,
    "run.cancelled": _AR,
    "feedback.quality": ("agent",),
    "correction.recorded": ("agent",),
    "tier.promoted": ("agent",),
    "tier.demoted": ("agent",),
    "tier.revoked": ("agent",),
}

# SPEC §2.5: who may sign what.
GOVERNOR_ONLY = frozenset(
    {
        "ledger.created",
        "key.registered",
        "key.revoked",
        "policy.set",
        "agent.registered",
        "run.approved",
        "run.rejected",
        "capability.granted",
        "tier.promoted",
        "tier.demoted",
        "tier.revoked",
    }
)
GOVERNOR_OR_RECORDER = frozenset({"feedback.quality", "correction.recorded"})


def authorize(
    *, role: str, key_agent: str | None, event_type: str, agent: str | None
) -> str | None:
    """Return why a key of ``role`` may not sign ``event_type`` (SPEC §2.5), or None if it may."""
    if event_type in GOVERNOR_ONLY:
        ok = role == "governor"
    elif event_type in GOVERNOR_OR_RECORDER:
        ok = role in ("governor", "recorder")
    elif event_type.startswith("x."):
        ok = role in ("governor", "recorder") or (role == "agent" and agent == key_agent)
    else:
        ok = role == "recorder" or (role == "agent" and agent == key_agent)
    if ok:
        return None
    if role == "agent":
        whom = "with no agent" if agent is None else f"for agent {agent!r}"
        return f"an agent key bound to {key_agent!r} may not sign {event_type} {whom}"
    return f"a {role} key may not sign {event_type}"


def check_type(event_type: Any, where: str = "type") -> str:
    """Return ``event_type`` if it is in the catalog or of the form ``x.<name>``."""
    if not isinstance(event_type, str):
        raise EventValidationError(f"{where}: must be a string, got {type(event_type).__name__}")
    if event_type in CATALOG_TYPE_SET or is_user_type(event_type):
        return event_type
    if event_type.startswith("x."):
        raise UnknownEventType(
            f"{where}: {event_type!r} is not a valid user type (x.<name>, lowercase letters, "
            "digits, '_', '-', dots between parts)"
        )
    close = difflib.get_close_matches(event_type, CATALOG_TYPES, n=1)
    hint = (
        f"; did you mean {close[0]!r}?" if close else " (a catalog type, or x.<name> for your own)"
    )
    raise UnknownEventType(f"{where}: unknown event type {event_type!r}{hint}")


def decode_payload(event_type: str, payload: Any, where: str = "event") -> AnyPayload:
    """Validate ``payload`` against the schema of ``event_type``; return the typed model."""
    catalog = _catalog()
    # A type that is not a string (an object in a tampered export) cannot be a key here:
    # ``check_type`` below names it.
    validator = catalog.payload_validator(event_type) if isinstance(event_type, str) else None
    if validator is not None and type(payload) is dict and "type" not in payload:
        try:
            model: AnyPayload = validator.validate_python(payload)
            return model
        except ValidationError:
            pass  # the adapter below gives the same verdict, with the message users see
    _check_shape(event_type, payload, where)
    decoded: AnyPayload
    if event_type.startswith("x."):
        decoded = catalog.UserPayload(type=event_type, data=payload)
        return decoded
    try:
        decoded = catalog.PAYLOAD_ADAPTER.validate_python({"type": event_type, **payload})
        return decoded
    except ValidationError as e:
        raise EventValidationError(format_validation(e.errors(), where, tagged=True)) from e


def check_payload(event_type: str, payload: Any, where: str = "event") -> None:
    """``decode_payload``'s verdict and message without building the model, nor importing
    pydantic: the catalog's schemas as ``ledger.event.payload_check`` holds them."""
    checker = payload_checker(event_type) if isinstance(event_type, str) else None
    if checker is None or type(payload) is not dict or "type" in payload:
        _check_shape(event_type, payload, where)
        if checker is None:
            return  # an x.<name> type: any object
        payload = dict(payload)
    try:
        checker.validate_python(payload)
    except ValidationError as e:
        raise EventValidationError(format_validation(e.errors(), where, tagged=False)) from e


def _check_shape(event_type: Any, payload: Any, where: str) -> None:
    """What ``decode_payload`` refuses before validating fields: an unknown type, a payload
    that is not an object, a ``type`` key in a catalog payload."""
    check_type(event_type, f"{where}: type")
    if not isinstance(payload, dict):
        raise EventValidationError(f"{where}: payload must be a JSON object")
    if not event_type.startswith("x.") and "type" in payload:
        raise EventValidationError(f"{where}: payload.type: unknown field")


_NEEDS_AGENT = frozenset(t for t, need in REQUIRED_ENVELOPE.items() if "agent" in need)
_NEEDS_RUN = frozenset(t for t, need in REQUIRED_ENVELOPE.items() if "run" in need)


def envelope_is_plain(event_type: str, agent: Any, run: Any, actor: Any, event_id: Any) -> bool:
    """True when ``check_envelope`` would pass, decided fast for the common case (short ASCII
    names, required fields present). False means only: ask ``check_envelope`` for the verdict."""
    return (
        plain_text(agent)
        and plain_text(run)
        and plain_text(actor)
        and plain_text(event_id)
        and (agent is not None or event_type not in _NEEDS_AGENT)
        and (run is not None or event_type not in _NEEDS_RUN)
    )


def check_envelope(event_type: str, fields: dict[str, Any], where: str = "event") -> None:
    """Check the envelope fields ``agent``, ``run``, ``actor`` and ``id`` for ``event_type``
    (``ledger.event.framing.text_problem``, the rule ``verify`` applies too)."""
    for name in TEXT_FIELDS:
        problem = text_problem(name, fields.get(name))
        if problem is not None:
            raise EventValidationError(f"{where}: {problem}")
    for name in REQUIRED_ENVELOPE.get(event_type, ()):
        if fields.get(name) is None:
            raise EventValidationError(f"{where}: {event_type} requires {name}")


class EventView(Protocol):
    """What projections read of an event (all of it but ``prev`` and ``sig``): ``Event`` is
    one, and so is the replay's lighter ``ledger.event.rows.EventRow`` (the stored row as it is,
    its payload parsed only when asked)."""

    @property
    def seq(self) -> int: ...
    @property
    def id(self) -> str: ...
    @property
    def ts(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def agent(self) -> str | None: ...
    @property
    def run(self) -> str | None: ...
    @property
    def actor(self) -> str | None: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def key(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the log, as stored (SPEC §2.1).

    ``payload`` is the JSON object as given by the writer; ``decoded`` gives the typed model.
    """

    seq: int
    id: str
    ts: str
    type: str
    agent: str | None
    run: str | None
    actor: str | None
    payload: dict[str, Any]
    prev: str
    key: str
    hash: str
    sig: str
    v: int = ENVELOPE_VERSION

    def body(self) -> dict[str, Any]:
        """The envelope without ``hash`` and ``sig``: what is canonicalized and hashed."""
        return {
            "v": self.v,
            "seq": self.seq,
            "id": self.id,
            "ts": self.ts,
            "type": self.type,
            "agent": self.agent,
            "run": self.run,
            "actor": self.actor,
            "payload": self.payload,
            "prev": self.prev,
            "key": self.key,
        }

    def envelope(self) -> dict[str, Any]:
        """The full envelope, as exported and printed by ``--json``."""
        d = self.body()
        d["hash"] = self.hash
        d["sig"] = self.sig
        return d

    def decoded(self) -> AnyPayload:
        """The payload as its typed model (validated)."""
        return decode_payload(self.type, self.payload, f"seq {self.seq}")


def _event_builder() -> Callable[[Sequence[Any], Any], Event]:
    """``Event(*row)`` with ``payload`` in place of the row's payload text (a stored row, or
    the write path's row of a new event), about three times faster: a frozen dataclass's
    ``__init__`` sets each field with ``object.__setattr__`` by name, which is most of the cost
    of building one. This sets the slots through their descriptors; the result is an ordinary,
    equal ``Event``. A field added to ``Event`` breaks the unpacking below at import, not
    silently."""
    (
        s_seq,
        s_id,
        s_ts,
        s_type,
        s_agent,
        s_run,
        s_actor,
        s_payload,
        s_prev,
        s_key,
        s_hash,
        s_sig,
        s_v,
    ) = (Event.__dict__[f.name].__set__ for f in fields(Event))
    new = object.__new__
    version = ENVELOPE_VERSION

    def build(row: Sequence[Any], payload: Any) -> Event:
        e: Event = new(Event)
        s_seq(e, row[0])
        s_id(e, row[1])
        s_ts(e, row[2])
        s_type(e, row[3])
        s_agent(e, row[4])
        s_run(e, row[5])
        s_actor(e, row[6])
        s_payload(e, payload)
        s_prev(e, row[8])
        s_key(e, row[9])
        s_hash(e, row[10])
        s_sig(e, row[11])
        s_v(e, version)
        return e

    return build


build_event = _event_builder()
"""``build_event(row, payload)``: the ``Event`` of a row of the twelve stored columns."""


def format_ts(dt: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits and ``Z`` (SPEC §2.1)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str, where: str = "time") -> datetime:
    """Parse an RFC 3339 time (``Z`` or an offset; a bare date means midnight UTC)."""
    s = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            return datetime.fromisoformat(s).replace(tzinfo=UTC)
        dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as e:
        raise EventValidationError(f"{where}: {value!r} is not an RFC 3339 time") from e
    if dt.tzinfo is None:
        raise EventValidationError(f"{where}: {value!r} has no time zone; add Z for UTC")
    return dt.astimezone(UTC)


_WHOLE_SECONDS_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def normalize_time(value: str, where: str = "time") -> str:
    """Any accepted time as the ledger's ``ts`` form, so times compare as strings.

    A time already in that form, or in it without the fraction (replay normalizes every
    grant's expiry), is a string away from its normal form once it is known to be a real
    instant, so the parse and re-format are skipped; anything else, errors included, takes
    the full parse."""
    if value[:1] != "0":  # a year of four digits, as ``%Y`` writes
        candidate = None
        if TS_RE.fullmatch(value):
            candidate = value
        elif _WHOLE_SECONDS_RE.fullmatch(value):
            candidate = value[:-1] + ".000000Z"
        if candidate is not None:
            try:
                datetime.fromisoformat(candidate[:-1])
                return candidate
            except ValueError:
                pass  # e.g. February 30th: the full parse gives the error
    return format_ts(parse_time(value, where))
