"""Export as Agent Audit Trail records (the IETF Internet-Draft draft-sharif-agent-audit-trail):
JSON Lines, one record per ledger event, hash-chained as the draft asks (docs/exports.md).

Each record is the RFC 8785 form of a JSON object, followed by ``\\n``:

- ``record_id`` the event id, ``timestamp`` its ``ts``;
- ``agent_id`` the event's agent (``govledger:<origin>`` for events of the log itself: keys,
  policy), ``agent_version`` the ``version`` of the agent's last ``agent.registered`` in the
  export (``unknown`` before one);
- ``session_id`` the run (``govledger:<origin>`` for events without a run);
- ``action_type`` (``tool_call``, ``llm_call``, ``lifecycle``, ``decision``, ``guardrail``,
  ``feedback``, ``governance``) and ``action_detail`` ``{"event_type", "payload"}``;
- ``outcome`` one of the draft's ``success``, ``failure``, ``timeout``, ``denied``,
  ``escalated``;
- ``trust_level`` the agent's autonomy tier at that point of the export (its
  ``initial_tier``, then each ``tier.*`` ``to``; 0 when unknown), clamped to the draft's 0–4;
- ``parent_record_id`` the record a record follows from: a ``tool.completed``'s
  ``tool.called``, a run's later events' first event of the run; else null;
- ``prev_hash`` null on the first record, then the lowercase hex SHA-256 of the previous
  record's RFC 8785 bytes (exactly the previous line without its ``\\n``);
- ``govledger``: ``seq``, ``hash``, ``prev``, ``key``, ``sig``, ``type``, ``actor`` of the
  ledger event, so each record can be tied back to the signed log;
- on ``tier.demoted`` and ``tier.revoked``, the draft's ``trust_assignment`` (``downgraded``,
  ``classifier_id`` ``govledger/tiers``, the event's ``policy_version`` and ``policy_digest``).

The records carry no AAT ``signature`` (the draft's signatures are optional and ECDSA; the
ledger's Ed25519 signatures travel in ``govledger.sig``). The draft's hash chain starts at the
first exported record: an export from ``--from N`` is a trail of its own.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from ledger.errors import EncodingError
from ledger.event.canonical import canonical
from ledger.exchange.rows import ExportItem, Row, stored_payload, unencodable

_ACTION_TYPES = {
    "tool.called": "tool_call",
    "tool.completed": "tool_call",
    "llm.usage": "llm_call",
    "decision.recorded": "decision",
    "guardrail.triggered": "guardrail",
    "feedback.quality": "feedback",
    "correction.recorded": "feedback",
}


def action_type(event_type: str) -> str:
    """The draft's action class of a ledger event type."""
    if event_type in _ACTION_TYPES:
        return _ACTION_TYPES[event_type]
    if event_type.startswith("run."):
        return "lifecycle"
    return "governance"


def outcome(event_type: str, payload: dict[str, Any]) -> str:
    """The draft's outcome of an event: what went wrong, else ``success``."""
    if event_type == "tool.completed" and payload.get("status") != "ok":
        return "timeout" if "timeout" in str(payload.get("failure_class", "")) else "failure"
    if event_type == "run.failed":
        return "timeout" if "timeout" in str(payload.get("failure_class", "")) else "failure"
    if event_type == "run.cancelled":
        return "failure"
    if event_type == "run.rejected":
        return "denied"
    if event_type == "guardrail.triggered":
        return "denied" if payload.get("severity") == "critical" else "success"
    if event_type == "decision.recorded":
        decision = payload.get("decision")
        if decision == "ESCALATE":
            return "escalated"
        if decision in ("ERROR", "INSUFFICIENT_INFORMATION"):
            return "failure"
    return "success"


def _tier(value: Any) -> int | None:
    return min(max(value, 0), 4) if type(value) is int else None


class _Trail:
    """What the records need to remember of the log so far: per agent its version and tier,
    per run its first event and its open tool calls (never the log itself)."""

    def __init__(self, origin: str) -> None:
        self.log_name = f"govledger:{origin}"
        self.versions: dict[str, str] = {}
        self.tiers: dict[str, int] = {}
        self.run_first: dict[str, str] = {}
        self.open_calls: dict[tuple[str, str], deque[str]] = {}
        self.prev_hash: str | None = None

    def record(self, row: Row) -> dict[str, Any]:
        seq, eid, ts, etype, agent, run, actor = row[:7]
        payload = stored_payload(row)
        parent = self._parent(row, payload)
        if agent is not None:
            if etype == "agent.registered":
                self.versions[agent] = str(payload.get("version", "unknown"))
                tier = _tier(payload.get("initial_tier"))
                if tier is not None and agent not in self.tiers:
                    self.tiers[agent] = tier
            elif etype.startswith("tier."):
                tier = _tier(payload.get("to"))
                if tier is not None:
                    self.tiers[agent] = tier
        record = {
            "record_id": eid,
            "timestamp": ts,
            "agent_id": agent if agent is not None else self.log_name,
            "agent_version": self.versions.get(agent, "unknown") if agent else "unknown",
            "session_id": run if run is not None else self.log_name,
            "action_type": action_type(etype),
            "action_detail": {"event_type": etype, "payload": payload},
            "outcome": outcome(etype, payload),
            "trust_level": self.tiers.get(agent, 0) if agent else 0,
            "parent_record_id": parent,
            "prev_hash": self.prev_hash,
            "govledger": {
                "seq": seq,
                "hash": row[10],
                "prev": row[8],
                "key": row[9],
                "sig": row[11],
                "type": etype,
                "actor": actor,
            },
        }
        if etype in ("tier.demoted", "tier.revoked"):
            # The draft's attributable trust downgrade: who decided it, under which policy.
            record["trust_assignment"] = {
                "downgraded": True,
                "classifier_id": "govledger/tiers",
                "policy_version": payload.get("policy_version"),
                "policy_digest": payload.get("policy_digest"),
            }
        return record

    def _parent(self, row: Row, payload: dict[str, Any]) -> str | None:
        eid, etype, run = row[1], row[3], row[5]
        if run is None:
            return None
        first = self.run_first.setdefault(run, eid)
        key = (run, str(payload.get("tool", "")))
        if etype == "tool.called":
            self.open_calls.setdefault(key, deque()).append(eid)
        elif etype == "tool.completed" and self.open_calls.get(key):
            call = self.open_calls[key].popleft()
            if not self.open_calls[key]:
                del self.open_calls[key]
            return call
        if etype in ("run.completed", "run.failed", "run.cancelled", "run.rejected"):
            self.run_first.pop(run, None)
            self.open_calls = {k: v for k, v in self.open_calls.items() if k[0] != run}
        return None if first == eid else first

    def line(self, row: Row) -> bytes:
        """The record of ``row`` as its canonical line; advances the hash chain."""
        try:
            body = canonical(self.record(row))
        except EncodingError as e:
            raise unencodable(row, e) from e
        self.prev_hash = hashlib.sha256(body).hexdigest()
        return body + b"\n"


def aat_chunks(items: Iterable[ExportItem], *, origin: str) -> Iterator[bytes]:
    """The trail as JSON Lines, one record per event."""
    trail = _Trail(origin)
    for row, _ in items:
        yield trail.line(row)
