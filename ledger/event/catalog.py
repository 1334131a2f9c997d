"""The v1 event catalog: one frozen, strict pydantic model per event type (SPEC §2.4).

Every payload model is frozen, strict and forbids extra fields; all are decoded through one
discriminated union and one ``TypeAdapter`` (``PAYLOAD_ADAPTER``). The discriminator is the
event ``type``; user-defined ``x.<name>`` events decode to ``UserPayload``.

The stored and hashed payload is always the JSON object the writer gave (canonicalized), never
a re-serialization of these models: the models validate, and give projections typed access.

The reading paths validate without importing pydantic: ``ledger.event.catalog_schemas`` holds
these models' schemas as plain pydantic-core schemas (``typed-dict`` instead of ``model``),
generated from them by ``python -m scripts.gen_catalog_schemas``; a test regenerates it and
compares, so change a model here, then regenerate. The few functions both call live in
``ledger.event.payload_rules``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, cast, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)
from pydantic_core import SchemaValidator

from ledger.event.framing import MAX_NAME_LENGTH
from ledger.event.payload_check import stored_time_problem as stored_time_problem
from ledger.event.payload_check import with_ts_times as with_ts_times
from ledger.event.payload_rules import rfc3339_time
from ledger.event.payload_rules import ts_form as ts_form

Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Bp = Annotated[int, Field(ge=0, le=10000)]
"""Basis points, 0–10000."""
Tier = Annotated[int, Field(ge=0, le=4)]
"""An autonomy tier, 0–4 (T0–T4)."""
Count = Annotated[int, Field(ge=0)]
Time = Annotated[str, AfterValidator(rfc3339_time)]
"""An RFC 3339 time with an offset; the model holds, and the ledger stores, its ``ts`` form."""
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
    """Base of every payload model. Its schema is built when it first validates, not at import
    (``defer_build``): see ``payload_validator``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, defer_build=True)


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

    model_config = ConfigDict(frozen=True, extra="allow", strict=True, defer_build=True)
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
    Annotated[AnyPayload, Discriminator(_discriminate)], config=ConfigDict(defer_build=True)
)
"""The one adapter that decodes every payload; input is ``{"type": ..., **payload}``.

Like every payload model here, its schema is built when it first validates (``defer_build``),
not at import: a command that reads a few event types builds only their models."""

_VALIDATORS: dict[str, SchemaValidator] = {}


def payload_validator(event_type: str) -> SchemaValidator | None:
    """The validator of the payload model of ``event_type`` (None: not a catalog type): what
    ``PAYLOAD_ADAPTER`` runs once its discriminator has picked the model, for the hot paths to
    call directly. The model's schema is built on the first call for its type."""
    validator = _VALIDATORS.get(event_type)
    if validator is None:
        model = CATALOG.get(event_type) if type(event_type) is str else None
        if model is None:
            return None
        model.model_rebuild()  # builds the deferred schema (nothing to do once built)
        validator = _VALIDATORS[event_type] = cast(SchemaValidator, model.__pydantic_validator__)
    return validator


def _time_fields(model: type[Payload]) -> tuple[str, ...]:
    def is_time(annotation: Any) -> bool:
        return annotation == Time or any(is_time(a) for a in get_args(annotation))

    return tuple(name for name, f in model.model_fields.items() if is_time(f.annotation))


TIME_FIELDS: dict[str, tuple[str, ...]] = {
    t: fields for t, m in CATALOG.items() if (fields := _time_fields(m))
}
"""Event type → its payload's time fields (top level), stored in ``ts`` form."""
