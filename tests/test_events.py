"""The v1 event catalog (SPEC §2.4), the envelope rules and who may sign what (§2.5)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import EventValidationError, UnknownEventType
from ledger.event.envelope import (
    CATALOG,
    REQUIRED_ENVELOPE,
    Event,
    UserPayload,
    authorize,
    check_envelope,
    check_type,
    decode_payload,
    envelope_is_plain,
    format_ts,
    normalize_time,
    parse_time,
)

H = "ab" * 32
KEY = {
    "key_id": "0" * 32,
    "name": "root",
    "public_key": "A" * 43 + "=",
    "role": "governor",
    "agent": None,
}
TIER_CHANGE = {
    "from": 1,
    "to": 2,
    "reason": "streak",
    "policy_version": 1,
    "policy_digest": H,
    "evidence": {"seq_from": 1, "seq_to": 40, "compliant_runs": 20},
}

GOOD: dict[str, dict[str, Any]] = {
    "ledger.created": {"origin": "test.example/log", "key": KEY},
    "key.registered": {**KEY, "role": "agent", "agent": "planner-1"},
    "key.revoked": {"key_id": "0" * 32, "reason": "lost"},
    "policy.set": {"version": 1, "digest": H, "document": {"promotion": {"min_runs": 20}}},
    "agent.registered": {
        "owner": "team-a",
        "version": "1.2",
        "initial_tier": 0,
        "allowed_side_effects": ["read"],
        "forbidden_actions": ["payment"],
        "confidence_threshold_bp": 7000,
    },
    "run.submitted": {
        "objective": "summarize",
        "user": "u1",
        "risk": "medium",
        "auto_approve": False,
    },
    "run.planned": {
        "steps": [
            {"tool": "memory.read", "args_digest": H, "side_effect": "read", "reversible": True}
        ],
        "risk": "high",
        "required_tier": 4,
    },
    "run.approved": {
        "approver": "alice",
        "mode": "council",
        "plan_digest": H,
        "expires_at": "2026-11-21T10:00:00Z",
    },
    "run.rejected": {"approver": "alice", "mode": "human", "plan_digest": H, "reason": "risky"},
    "capability.granted": {
        "tools": ["memory.read"],
        "capabilities": ["read"],
        "expires_at": "2026-11-21T10:00:00.123456Z",
        "token_digest": H,
    },
    "run.started": {},
    "tool.called": {"tool": "memory.read", "args_digest": H, "side_effect": "teleport"},
    "tool.completed": {
        "tool": "memory.read",
        "status": "error",
        "result_digest": None,
        "duration_ms": 0,
        "failure_class": "tool_error",
    },
    "llm.usage": {
        "provider": "p",
        "model": "m",
        "tokens_in": 1,
        "tokens_out": 2,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_micro_usd": 1500,
        "wallclock_ms": 10,
    },
    "decision.recorded": {
        "decision": "INSUFFICIENT_INFORMATION",
        "confidence_bp": 10000,
        "rationale": "why",
    },
    "guardrail.triggered": {"kind": "scope_drift", "severity": "critical", "detail": "d"},
    "run.completed": {"steps_completed": 3, "outputs_digest": H},
    "run.failed": {"failure_class": "rate_limit", "message": "429"},
    "run.cancelled": {"reason": "user"},
    "feedback.quality": {"score_bp": 0, "by": "u1"},
    "correction.recorded": {"text": "use the EU endpoint", "topic": "endpoints", "by": "u1"},
    "tier.promoted": TIER_CHANGE,
    "tier.demoted": {**TIER_CHANGE, "from": 3, "to": 0},
    "tier.revoked": {**TIER_CHANGE, "from": 4, "to": 0},
}


def test_good_payloads_cover_the_whole_catalog() -> None:
    assert set(GOOD) == set(CATALOG)
    assert len(CATALOG) == 24


@pytest.mark.parametrize("event_type", sorted(GOOD))
def test_catalog_type_accepts_a_good_payload(event_type: str) -> None:
    model = decode_payload(event_type, GOOD[event_type])
    assert type(model) is CATALOG[event_type]


def test_optional_fields_may_be_absent() -> None:
    p = decode_payload("tool.completed", {"tool": "t", "status": "ok", "duration_ms": 5})
    assert p.result_digest is None and p.failure_class is None  # type: ignore[union-attr]


def test_tier_change_reads_from_under_its_json_name() -> None:
    p = decode_payload("tier.demoted", GOOD["tier.demoted"])
    assert (p.from_, p.to) == (3, 0)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("event_type", "payload", "message"),
    [
        pytest.param(
            "tool.called",
            {"tool": "x", "args_digest": H},
            "event: payload.side_effect: missing required field",
            id="missing",
        ),
        pytest.param(
            "tool.called",
            {},
            "event: payload.tool: missing required field; payload.args_digest: missing "
            "required field; payload.side_effect: missing required field",
            id="all-missing",
        ),
        pytest.param(
            "tool.called",
            {"tool": "x", "args_digest": H, "side_effect": "r", "extra": 1},
            "event: payload.extra: unknown field",
            id="unknown-field",
        ),
        pytest.param(
            "tool.called",
            {"tool": "x", "args_digest": H, "side_effect": "r", "type": "y"},
            "event: payload.type: unknown field",
            id="type-in-payload",
        ),
        pytest.param("run.started", {"a": 1}, "event: payload.a: unknown field", id="run.started"),
        pytest.param(
            "tool.completed",
            {"tool": "x", "status": "ok", "duration_ms": True},
            "event: payload.duration_ms: Input should be a valid integer",
            id="bool-for-int",
        ),
        pytest.param(
            "tool.completed",
            {"tool": "x", "status": "ok", "duration_ms": "5"},
            "event: payload.duration_ms: Input should be a valid integer",
            id="str-for-int",
        ),
        pytest.param(
            "tool.completed",
            {"tool": "x", "status": "ok", "duration_ms": -1},
            "event: payload.duration_ms: Input should be greater than or equal to 0",
            id="negative-ms",
        ),
        pytest.param(
            "tool.completed",
            {"tool": "x", "status": "maybe", "duration_ms": 1},
            "event: payload.status: Input should be 'ok' or 'error'",
            id="bad-literal",
        ),
        pytest.param(
            "run.submitted",
            {"objective": "o", "user": "u", "risk": "low", "auto_approve": 1},
            "event: payload.auto_approve: Input should be a valid boolean",
            id="int-for-bool",
        ),
        pytest.param(
            "feedback.quality",
            {"score_bp": 10001, "by": "u"},
            "event: payload.score_bp: Input should be less than or equal to 10000",
            id="bp-above",
        ),
        pytest.param(
            "decision.recorded",
            {"decision": "EXECUTE", "confidence_bp": -1, "rationale": ""},
            "event: payload.confidence_bp: Input should be greater than or equal to 0",
            id="bp-below",
        ),
        pytest.param(
            "agent.registered",
            {**GOOD["agent.registered"], "initial_tier": 5},
            "event: payload.initial_tier: Input should be less than or equal to 4",
            id="tier-above",
        ),
        pytest.param(
            "run.planned",
            {**GOOD["run.planned"], "required_tier": -1},
            "event: payload.required_tier: Input should be greater than or equal to 0",
            id="tier-below",
        ),
        pytest.param(
            "agent.registered",
            {**GOOD["agent.registered"], "version": 1},
            "event: payload.version: Input should be a valid string",
            id="int-for-str",
        ),
        pytest.param(
            "run.planned",
            {
                **GOOD["run.planned"],
                "steps": [{**GOOD["run.planned"]["steps"][0], "args_digest": "AB"}],
            },
            "event: payload.steps.0.args_digest: String should match pattern '^[0-9a-f]{64}$'",
            id="nested-digest",
        ),
        pytest.param(
            "tier.promoted",
            {**TIER_CHANGE, "to": 7, "evidence": {"seq_to": 2}},
            "event: payload.to: Input should be less than or equal to 4; "
            "payload.evidence.seq_from: missing required field",
            id="tier-evidence",
        ),
        pytest.param(
            "correction.recorded",
            {"text": "", "by": "u"},
            "event: payload.text: String should have at least 1 character",
            id="empty-text",
        ),
        pytest.param(
            "run.failed",
            {"failure_class": "cosmic_ray", "message": "m"},
            "event: payload.failure_class: Input should be 'llm_timeout', 'llm_error', "
            "'tool_error', 'context_overflow', 'rate_limit', 'dependency_failed', "
            "'memory_corruption', 'validation_error', 'prompt_rejection' or 'unknown'",
            id="failure-class",
        ),
        pytest.param("tool.called", [], "event: payload must be a JSON object", id="not-object"),
    ],
)
def test_bad_payload_is_refused_with_its_field(event_type: str, payload: Any, message: str) -> None:
    with pytest.raises(EventValidationError) as e:
        decode_payload(event_type, payload)
    assert e.value.message == message


def test_more_than_five_field_errors_are_summarized() -> None:
    with pytest.raises(EventValidationError) as e:
        decode_payload("llm.usage", {}, "line 4")
    assert e.value.message.startswith("line 4: payload.provider: missing required field; ")
    assert e.value.message.endswith(" (and 3 more)")


@pytest.mark.parametrize(
    ("event_type", "message"),
    [
        pytest.param(
            "nope",
            "event: type: unknown event type 'nope' (a catalog type, or x.<name> for your own)",
            id="unknown",
        ),
        pytest.param(
            "Tool.called",
            "event: type: unknown event type 'Tool.called'; did you mean 'tool.called'?",
            id="case",
        ),
        pytest.param(
            "x.Bad",
            "event: type: 'x.Bad' is not a valid user type (x.<name>, lowercase "
            "letters, digits, '_', '-', dots between parts)",
            id="x-uppercase",
        ),
        pytest.param(
            "x.",
            "event: type: 'x.' is not a valid user type (x.<name>, lowercase "
            "letters, digits, '_', '-', dots between parts)",
            id="x-empty",
        ),
        pytest.param(
            "x.a..b",
            "event: type: 'x.a..b' is not a valid user type (x.<name>, "
            "lowercase letters, digits, '_', '-', dots between parts)",
            id="x-empty-part",
        ),
    ],
)
def test_unknown_type_is_refused(event_type: str, message: str) -> None:
    with pytest.raises(UnknownEventType) as e:
        decode_payload(event_type, {})
    assert e.value.message == message


def test_type_must_be_a_string() -> None:
    with pytest.raises(EventValidationError, match=r"^event: type: must be a string, got int$"):
        decode_payload(5, {})  # type: ignore[arg-type]


@pytest.mark.parametrize("event_type", ["x.a", "x.deploy.started", "x.my-tool_2.v1"])
def test_user_types_take_any_json_object(event_type: str) -> None:
    assert check_type(event_type) == event_type
    model = decode_payload(event_type, {"anything": [1, {"nested": None}], "type": "kept"})
    assert isinstance(model, UserPayload)
    assert model.data == {"anything": [1, {"nested": None}], "type": "kept"}


def test_user_type_payload_must_still_be_an_object() -> None:
    with pytest.raises(EventValidationError, match=r"^event: payload must be a JSON object$"):
        decode_payload("x.a", [1])


# --- envelope ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "fields", "message"),
    [
        pytest.param(
            "tool.called",
            {"agent": None, "run": "r"},
            "event: tool.called requires agent",
            id="tool.called-agent",
        ),
        pytest.param(
            "tool.called",
            {"agent": "a", "run": None},
            "event: tool.called requires run",
            id="tool.called-run",
        ),
        pytest.param(
            "agent.registered", {}, "event: agent.registered requires agent", id="agent.registered"
        ),
        pytest.param(
            "run.approved", {"agent": "a"}, "event: run.approved requires run", id="run.approved"
        ),
        pytest.param(
            "tier.revoked", {"run": "r"}, "event: tier.revoked requires agent", id="tier.revoked"
        ),
        pytest.param(
            "x.a",
            {"agent": ""},
            "event: agent must be null or a string of 1–256 characters",
            id="empty-agent",
        ),
        pytest.param(
            "x.a",
            {"run": 5},
            "event: run must be null or a string of 1–256 characters",
            id="int-run",
        ),
        pytest.param(
            "x.a",
            {"actor": "u" * 257},
            "event: actor must be null or a string of 1–256 characters",
            id="long-actor",
        ),
        pytest.param(
            "x.a",
            {"id": ""},
            "event: id must be a non-empty string of at most 128 characters",
            id="empty-id",
        ),
        pytest.param(
            "x.a",
            {"id": "i" * 129},
            "event: id must be a non-empty string of at most 128 characters",
            id="long-id",
        ),
        pytest.param(
            "x.a",
            {"agent": "a\udcffb"},
            "event: agent is not valid UTF-8 text (lone surrogate)",
            id="surrogate-agent",
        ),
        pytest.param(
            "x.a",
            {"id": "\udc80"},
            "event: id is not valid UTF-8 text (lone surrogate)",
            id="surrogate-id",
        ),
    ],
)
def test_envelope_requirements(event_type: str, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(EventValidationError) as e:
        check_envelope(event_type, fields)
    assert e.value.message == message


@pytest.mark.parametrize("event_type", sorted(GOOD))
def test_required_envelope_follows_the_catalog(event_type: str) -> None:
    required = set(REQUIRED_ENVELOPE.get(event_type, ()))
    spec = {
        "agent": {
            "agent.registered",
            "llm.usage",
            "guardrail.triggered",
            "feedback.quality",
            "correction.recorded",
            "tier.promoted",
            "tier.demoted",
            "tier.revoked",
        },
        "agent+run": {
            "run.submitted",
            "run.planned",
            "run.approved",
            "run.rejected",
            "capability.granted",
            "run.started",
            "tool.called",
            "tool.completed",
            "decision.recorded",
            "run.completed",
            "run.failed",
            "run.cancelled",
        },
    }
    if event_type in spec["agent"]:
        assert required == {"agent"}
    elif event_type in spec["agent+run"]:
        assert required == {"agent", "run"}
    else:
        assert required == set()
    check_envelope(event_type, {"agent": "a", "run": "r", "actor": "u", "id": "i" * 128})


def test_run_submitted_actor_is_optional() -> None:
    check_envelope("run.submitted", {"agent": "a", "run": "r", "actor": None})


# --- SPEC §2.5: who may sign what --------------------------------------------------------------

GOVERNOR_ONLY = [
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
]
RECORDER = [
    "run.submitted",
    "run.planned",
    "run.started",
    "run.completed",
    "run.failed",
    "run.cancelled",
    "tool.called",
    "tool.completed",
    "llm.usage",
    "decision.recorded",
    "guardrail.triggered",
]
BOTH = ["feedback.quality", "correction.recorded"]
USER = ["x.deploy", "x.a.b"]

# (types, governor, recorder, agent key for the envelope's agent, agent key for another agent)
TABLE = [
    *[(t, True, False, False, False) for t in GOVERNOR_ONLY],
    *[(t, False, True, True, False) for t in RECORDER],
    *[(t, True, True, False, False) for t in BOTH],
    *[(t, True, True, True, False) for t in USER],
]


def test_authorization_table_covers_the_catalog() -> None:
    assert {row[0] for row in TABLE} >= set(CATALOG)


@pytest.mark.parametrize(
    ("event_type", "governor", "recorder", "own_agent", "other_agent"),
    TABLE,
    ids=[row[0] for row in TABLE],
)
def test_who_may_sign_what(
    event_type: str, governor: bool, recorder: bool, own_agent: bool, other_agent: bool
) -> None:
    def may(role: str, key_agent: str | None) -> bool:
        return authorize(role=role, key_agent=key_agent, event_type=event_type, agent="A") is None

    assert may("governor", None) is governor
    assert may("recorder", None) is recorder
    assert may("agent", "A") is own_agent
    assert may("agent", "B") is other_agent


@pytest.mark.parametrize(
    ("role", "key_agent", "event_type", "agent", "message"),
    [
        pytest.param(
            "recorder",
            None,
            "key.registered",
            None,
            "a recorder key may not sign key.registered",
            id="recorder",
        ),
        pytest.param(
            "governor",
            None,
            "tool.called",
            "A",
            "a governor key may not sign tool.called",
            id="governor",
        ),
        pytest.param(
            "agent",
            "B",
            "tool.called",
            "A",
            "an agent key bound to 'B' may not sign tool.called for agent 'A'",
            id="agent-other",
        ),
        pytest.param(
            "agent",
            "A",
            "x.note",
            None,
            "an agent key bound to 'A' may not sign x.note with no agent",
            id="agent-none",
        ),
    ],
)
def test_refusal_says_why(
    role: str, key_agent: str | None, event_type: str, agent: str | None, message: str
) -> None:
    assert authorize(role=role, key_agent=key_agent, event_type=event_type, agent=agent) == message


# --- the Event value and times -----------------------------------------------------------------


def test_event_body_is_the_envelope_without_hash_and_sig() -> None:
    e = Event(
        7,
        "id-7",
        "2026-11-21T10:00:00.123456Z",
        "run.started",
        "a",
        "r",
        None,
        {},
        H,
        "0" * 32,
        "cd" * 32,
        "c2ln",
    )
    assert set(e.envelope()) - set(e.body()) == {"hash", "sig"}
    assert e.body()["v"] == 1 and e.envelope()["seq"] == 7


def test_format_ts_has_six_fraction_digits_and_z() -> None:
    assert format_ts(parse_time("2026-01-02T03:04:05+02:00")) == "2026-01-02T01:04:05.000000Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02", "2026-01-02T00:00:00.000000Z"),
        ("2026-01-02T03:04:05.5Z", "2026-01-02T03:04:05.500000Z"),
        ("2026-01-02T03:04:05.123456z", "2026-01-02T03:04:05.123456Z"),
    ],
)
def test_normalize_time(value: str, expected: str) -> None:
    assert normalize_time(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", "--since: 'yesterday' is not an RFC 3339 time"),
        ("2026-01-02T03:04:05", "--since: '2026-01-02T03:04:05' has no time zone; add Z for UTC"),
    ],
)
def test_bad_times_are_refused(value: str, message: str) -> None:
    with pytest.raises(EventValidationError) as e:
        normalize_time(value, "--since")
    assert e.value.message == message


_names = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.text(alphabet="ab", min_size=126, max_size=300),
    st.sampled_from(["\ud800", "agent-1", "é", ""]),
    st.integers(),
)


@given(
    event_type=st.sampled_from([*REQUIRED_ENVELOPE, "x.note", "policy.set"]),
    agent=_names,
    run=_names,
    actor=_names,
    event_id=_names,
)
def test_the_plain_envelope_fast_path_never_passes_what_check_envelope_refuses(
    event_type: str, agent: Any, run: Any, actor: Any, event_id: Any
) -> None:
    if envelope_is_plain(event_type, agent, run, actor, event_id):
        check_envelope(event_type, {"agent": agent, "run": run, "actor": actor, "id": event_id})
