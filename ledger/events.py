"""The event envelope and the v1 event catalog (SPEC §2.1, §2.4, §2.5).

Every payload model is frozen, strict and forbids extra fields; all are decoded through one
discriminated union and one ``TypeAdapter`` (``PAYLOAD_ADAPTER``). The discriminator is the
event ``type``; user-defined ``x.<name>`` events decode to ``UserPayload``.

The stored and hashed payload is always the JSON object the writer gave (canonicalized), never
a re-serialization of these models: the models validate, and give projections typed access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
)

from ledger.errors import EventValidationError, UnknownEventType

ENVELOPE_VERSION = 1
ZERO_HASH = "0" * 64
MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 256

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_TIME_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"
USER_TYPE_RE = re.compile(r"^x\.[a-z0-9][a-z0-9_\-]*(\.[a-z0-9][a-z0-9_\-]*)*$")

Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Bp = Annotated[int, Field(ge=0, le=10000)]
"""Basis points, 0–10000."""
Tier = Annotated[int, Field(ge=0, le=4)]
"""An autonomy tier, 0–4 (T0–T4)."""
Count = Annotated[int, Field(ge=0)]
Time = Annotated[str, Field(pattern=_TIME_RE)]
"""An RFC 3339 UTC time ending in ``Z``."""
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
Role = Literal["governor", "recorder", "agent"]
Risk = Literal["low", "medium", "high"]
FailureClass = Literal[
    "llm_timeout",
    "llm_error",
    "tool_error",
    "context_overflow",
    "rate_limit",
    "dependency_failed",
    "memory_corruption",
    "validation_error",
    "prompt_rejection",
    "unknown",
]


class Payload(BaseModel):
    """Base of every payload model."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class KeyInfo(Payload):
    """A public key as registered in the ledger (SPEC §2.3)."""

    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    """First 16 bytes of SHA-256 of the raw public key, hex."""
    name: Name
    """The key's name (its file name in the key directory, without ``.pem``)."""
    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=$")]
    """Base64 of the raw 32-byte Ed25519 public key."""
    role: Role
    """What the key may sign (SPEC §2.5)."""
    agent: Name | None = None
    """The agent an ``agent``-role key is bound to; null for other roles."""


class LedgerCreated(Payload):
    type: Literal["ledger.created"] = Field(default="ledger.created", exclude=True)
    origin: Name
    """The log's origin line for checkpoints (e.g. ``example.com/agents``)."""
    key: KeyInfo
    """The root governor key, which signs this first event."""


class KeyRegistered(KeyInfo):
    type: Literal["key.registered"] = Field(default="key.registered", exclude=True)


class KeyRevoked(Payload):
    type: Literal["key.revoked"] = Field(default="key.revoked", exclude=True)
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    reason: str


class PolicySet(Payload):
    type: Literal["policy.set"] = Field(default="policy.set", exclude=True)
    version: Annotated[int, Field(ge=1)]
    """The previous policy version + 1, assigned by the ledger."""
    digest: Hex64
    """SHA-256 of the RFC 8785 bytes of ``document``."""
    document: dict[str, Any]
    """The policy file's content as a JSON object (integers only)."""


class AgentRegistered(Payload):
    type: Literal["agent.registered"] = Field(default="agent.registered", exclude=True)
    owner: Name
    version: str
    """Contract version; registering again with a new version records a contract change."""
    initial_tier: Tier
    allowed_side_effects: list[str]
    forbidden_actions: list[str]
    """Tool names or side-effect classes the agent must never use (wins over allowed)."""
    confidence_threshold_bp: Bp


class RunSubmitted(Payload):
    type: Literal["run.submitted"] = Field(default="run.submitted", exclude=True)
    objective: str
    user: str
    risk: Risk
    auto_approve: bool


class PlannedStep(Payload):
    tool: Name
    args_digest: Hex64
    side_effect: Name
    reversible: bool


class RunPlanned(Payload):
    type: Literal["run.planned"] = Field(default="run.planned", exclude=True)
    steps: list[PlannedStep]
    risk: Risk
    required_tier: Tier


class RunApproved(Payload):
    type: Literal["run.approved"] = Field(default="run.approved", exclude=True)
    approver: Name
    mode: Literal["human", "auto", "council"]
    plan_digest: Hex64
    expires_at: Time | None = None


class RunRejected(Payload):
    type: Literal["run.rejected"] = Field(default="run.rejected", exclude=True)
    approver: Name
    mode: Literal["human", "auto", "council"]
    plan_digest: Hex64
    reason: str


class CapabilityGranted(Payload):
    type: Literal["capability.granted"] = Field(default="capability.granted", exclude=True)
    tools: list[str]
    capabilities: list[str]
    expires_at: Time | None = None
    token_digest: Hex64
    """Digest of the capability token: never the token or its key."""


class RunStarted(Payload):
    type: Literal["run.started"] = Field(default="run.started", exclude=True)


class ToolCalled(Payload):
    type: Literal["tool.called"] = Field(default="tool.called", exclude=True)
    tool: Name
    args_digest: Hex64
    side_effect: Name
    """``read``, ``write``, ``delete``, ``network``, ``execute``, ``payment`` or another word."""


class ToolCompleted(Payload):
    type: Literal["tool.completed"] = Field(default="tool.completed", exclude=True)
    tool: Name
    status: Literal["ok", "error"]
    result_digest: Hex64 | None = None
    duration_ms: Count
    failure_class: FailureClass | None = None


class LlmUsage(Payload):
    type: Literal["llm.usage"] = Field(default="llm.usage", exclude=True)
    provider: Name
    model: Name
    tokens_in: Count
    tokens_out: Count
    cache_read_tokens: Count
    cache_write_tokens: Count
    cost_micro_usd: Count
    wallclock_ms: Count


class DecisionRecorded(Payload):
    type: Literal["decision.recorded"] = Field(default="decision.recorded", exclude=True)
    decision: Literal["EXECUTE", "SKIP", "ESCALATE", "INSUFFICIENT_INFORMATION", "ERROR"]
    confidence_bp: Bp
    rationale: str


class GuardrailTriggered(Payload):
    type: Literal["guardrail.triggered"] = Field(default="guardrail.triggered", exclude=True)
    kind: Name
    """``forbidden_action``, ``risk_policy``, ``tool_loop``, ``budget_exceeded``... or another word."""
    severity: Literal["info", "warning", "critical"]
    detail: str


class RunCompleted(Payload):
    type: Literal["run.completed"] = Field(default="run.completed", exclude=True)
    steps_completed: Count
    outputs_digest: Hex64 | None = None


class RunFailed(Payload):
    type: Literal["run.failed"] = Field(default="run.failed", exclude=True)
    failure_class: FailureClass
    message: str


class RunCancelled(Payload):
    type: Literal["run.cancelled"] = Field(default="run.cancelled", exclude=True)
    reason: str


class FeedbackQuality(Payload):
    type: Literal["feedback.quality"] = Field(default="feedback.quality", exclude=True)
    score_bp: Bp
    by: Name


class CorrectionRecorded(Payload):
    type: Literal["correction.recorded"] = Field(default="correction.recorded", exclude=True)
    text: Annotated[str, Field(min_length=1)]
    topic: Name | None = None
    by: Name


class TierEvidence(BaseModel):
    """Metric values a tier change was computed from, and the seq range they cover."""

    model_config = ConfigDict(frozen=True, extra="allow", strict=True)
    seq_from: Annotated[int, Field(ge=0)]
    seq_to: Annotated[int, Field(ge=0)]


class _TierChange(Payload):
    from_: Annotated[Tier, Field(alias="from")]
    to: Tier
    reason: str
    policy_version: Annotated[int, Field(ge=0)]
    policy_digest: Hex64
    evidence: TierEvidence


class TierPromoted(_TierChange):
    type: Literal["tier.promoted"] = Field(default="tier.promoted", exclude=True)


class TierDemoted(_TierChange):
    type: Literal["tier.demoted"] = Field(default="tier.demoted", exclude=True)


class TierRevoked(_TierChange):
    type: Literal["tier.revoked"] = Field(default="tier.revoked", exclude=True)


class UserPayload(Payload):
    """An ``x.<name>`` event: any JSON object, kept as given."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)
    type: str = Field(exclude=True)
    data: dict[str, Any]


CATALOG: dict[str, type[Payload]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        LedgerCreated,
        KeyRegistered,
        KeyRevoked,
        PolicySet,
        AgentRegistered,
        RunSubmitted,
        RunPlanned,
        RunApproved,
        RunRejected,
        CapabilityGranted,
        RunStarted,
        ToolCalled,
        ToolCompleted,
        LlmUsage,
        DecisionRecorded,
        GuardrailTriggered,
        RunCompleted,
        RunFailed,
        RunCancelled,
        FeedbackQuality,
        CorrectionRecorded,
        TierPromoted,
        TierDemoted,
        TierRevoked,
    )
}
"""Event type → payload model, for every type of the v1 catalog."""

AnyPayload = Union[  # noqa: UP007 - a Union is what Discriminator annotates
    Annotated[LedgerCreated, Tag("ledger.created")],
    Annotated[KeyRegistered, Tag("key.registered")],
    Annotated[KeyRevoked, Tag("key.revoked")],
    Annotated[PolicySet, Tag("policy.set")],
    Annotated[AgentRegistered, Tag("agent.registered")],
    Annotated[RunSubmitted, Tag("run.submitted")],
    Annotated[RunPlanned, Tag("run.planned")],
    Annotated[RunApproved, Tag("run.approved")],
    Annotated[RunRejected, Tag("run.rejected")],
    Annotated[CapabilityGranted, Tag("capability.granted")],
    Annotated[RunStarted, Tag("run.started")],
    Annotated[ToolCalled, Tag("tool.called")],
    Annotated[ToolCompleted, Tag("tool.completed")],
    Annotated[LlmUsage, Tag("llm.usage")],
    Annotated[DecisionRecorded, Tag("decision.recorded")],
    Annotated[GuardrailTriggered, Tag("guardrail.triggered")],
    Annotated[RunCompleted, Tag("run.completed")],
    Annotated[RunFailed, Tag("run.failed")],
    Annotated[RunCancelled, Tag("run.cancelled")],
    Annotated[FeedbackQuality, Tag("feedback.quality")],
    Annotated[CorrectionRecorded, Tag("correction.recorded")],
    Annotated[TierPromoted, Tag("tier.promoted")],
    Annotated[TierDemoted, Tag("tier.demoted")],
    Annotated[TierRevoked, Tag("tier.revoked")],
    Annotated[UserPayload, Tag("x")],
]


def _discriminate(value: Any) -> str | None:
    t = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(t, str):
        return None
    return "x" if t.startswith("x.") else t


PAYLOAD_ADAPTER: TypeAdapter[AnyPayload] = TypeAdapter(
    Annotated[AnyPayload, Discriminator(_discriminate)]
)
"""The one adapter that decodes every payload; input is ``{"type": ..., **payload}``."""

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
        return f"an agent key bound to {key_agent!r} may not sign {event_type} for agent {agent!r}"
    return f"a {role} key may not sign {event_type}"


def check_type(event_type: Any, where: str = "type") -> str:
    """Return ``event_type`` if it is in the catalog or of the form ``x.<name>``."""
    if not isinstance(event_type, str):
        raise EventValidationError(f"{where}: must be a string, got {type(event_type).__name__}")
    if event_type in CATALOG or USER_TYPE_RE.match(event_type):
        return event_type
    if event_type.startswith("x."):
        raise UnknownEventType(
            f"{where}: {event_type!r} is not a valid user type (x.<name>, lowercase letters, "
            "digits, '_', '-', dots between parts)"
        )
    raise UnknownEventType(f"{where}: unknown event type {event_type!r}")


def _format_validation(e: ValidationError, where: str) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"][1:] if p != "type") if err["loc"] else ""
        field = f"payload.{loc}" if loc else "payload"
        if err["type"] == "missing":
            parts.append(f"{field}: missing required field")
        elif err["type"] == "extra_forbidden":
            parts.append(f"{field}: unknown field")
        else:
            parts.append(f"{field}: {err['msg']}")
    more = len(e.errors()) - 5
    tail = f" (and {more} more)" if more > 0 else ""
    return f"{where}: " + "; ".join(parts) + tail


_VALIDATORS: dict[str, Any] = {t: m.__pydantic_validator__ for t, m in CATALOG.items()}
"""Event type → its model's validator: what ``PAYLOAD_ADAPTER`` runs once its discriminator has
picked the model, called directly on the hot paths (no ``{"type": ..., **payload}`` copy)."""


def decode_payload(event_type: str, payload: Any, where: str = "event") -> AnyPayload:
    """Validate ``payload`` against the schema of ``event_type``; return the typed model."""
    validator = _VALIDATORS.get(event_type)
    if validator is not None and type(payload) is dict and "type" not in payload:
        try:
            model: AnyPayload = validator.validate_python(payload)
            return model
        except ValidationError:
            pass  # the adapter below gives the same verdict, with the message users see
    check_type(event_type, f"{where}: type")
    if not isinstance(payload, dict):
        raise EventValidationError(f"{where}: payload must be a JSON object")
    if event_type.startswith("x."):
        return UserPayload(type=event_type, data=payload)
    if "type" in payload:
        raise EventValidationError(f"{where}: payload.type: unknown field")
    try:
        return PAYLOAD_ADAPTER.validate_python({"type": event_type, **payload})
    except ValidationError as e:
        raise EventValidationError(_format_validation(e, where)) from e


def check_envelope(event_type: str, fields: dict[str, Any], where: str = "event") -> None:
    """Check the envelope fields ``agent``, ``run``, ``actor`` and ``id`` for ``event_type``."""
    for name in ("agent", "run", "actor"):
        v = fields.get(name)
        if v is not None and (not isinstance(v, str) or not v or len(v) > MAX_NAME_LENGTH):
            raise EventValidationError(
                f"{where}: {name} must be null or a string of 1–{MAX_NAME_LENGTH} characters"
            )
    for name in REQUIRED_ENVELOPE.get(event_type, ()):
        if fields.get(name) is None:
            raise EventValidationError(f"{where}: {event_type} requires {name}")
    event_id = fields.get("id")
    if event_id is not None and (
        not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH
    ):
        raise EventValidationError(
            f"{where}: id must be a non-empty string of at most {MAX_ID_LENGTH} characters"
        )
    for name in ("id", "agent", "run", "actor"):
        v = fields.get(name)
        # A lone surrogate (e.g. a command-line argument that was not UTF-8) has no UTF-8 form.
        if v is not None and not v.isascii() and any("\ud800" <= c <= "\udfff" for c in v):
            raise EventValidationError(f"{where}: {name} is not valid UTF-8 text (lone surrogate)")


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


def normalize_time(value: str, where: str = "time") -> str:
    """Any accepted time as the ledger's ``ts`` form, so times compare as strings."""
    return format_ts(parse_time(value, where))
