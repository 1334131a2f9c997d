"""The streaming chain checker, and the canonical-payload check of stored events.

SPEC §2.1–§2.5. The canonical body bytes it checks hashes against are built by
``ledger.event.body``. ``ChainChecker`` walks events in seq order and reports problems (hash, chain,
seq, ts, key registration, revocation, role authorization); signatures are checked by the
caller, possibly on other threads, with the key this checker resolves.

No pydantic models, no SQL: an offline verifier can reuse this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.crypto.signing import b64decode_canonical, key_id
from ledger.errors import DecodeError, EncodingError
from ledger.event.canonical import MAX_DEPTH, ORJSON_OPTIONS, canonical
from ledger.event.envelope import authorize
from ledger.event.framing import ZERO_HASH


@dataclass(frozen=True)
class Problem:
    """One integrity problem found by verification (SPEC §5 kinds)."""

    seq: int
    kind: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "detail": self.detail}

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind}: {self.detail}"


@dataclass
class KeyState:
    """A key as registered in the log at some point."""

    key_id: str
    name: str
    public_key: bytes
    role: str
    agent: str | None
    registered_seq: int
    revoked_seq: int | None = None


def short(h: str) -> str:
    """A hash shortened for messages: ``3fa1…c9``."""
    return f"{h[:4]}…{h[-2:]}" if len(h) > 8 else h


@dataclass
class ChainChecker:
    """Walks events in seq order; keeps head, key registry and the problems found.

    Start with ``ChainChecker()`` for a whole log, or ``ChainChecker.anchored(seq, hash, ts,
    keys)`` to continue from a trusted point (``verify --from``).
    """

    expected_seq: int = 1
    prev_hash: str = ZERO_HASH
    prev_ts: str = ""
    keys: dict[str, KeyState] = field(default_factory=dict)
    origin: str | None = None
    root_key_id: str | None = None
    problems: list[Problem] = field(default_factory=list)
    count: int = 0

    def problem(self, seq: int, kind: str, detail: str) -> None:
        self.problems.append(Problem(seq, kind, detail))

    def check(
        self,
        *,
        seq: int,
        ts: str,
        type: str,
        agent: str | None,
        payload: Any,
        prev: str,
        key: str,
        hash: str,
        computed_hash: str,
    ) -> KeyState | None:
        """Check one event (already parsed); return the key to verify its signature with.

        (1) seq continuity, (2) chain link, (3) hash, (4) ts order, (5) key known, unrevoked
        and authorized for the type, (6) key events update the registry.
        """
        self.count += 1
        # (1), (2)
        self.check_position(seq=seq, prev=prev)
        # (3)
        if hash != computed_hash:
            self.problem(
                seq, "hash_mismatch", f"stored hash {short(hash)}, computed {short(computed_hash)}"
            )
        # (4)
        if ts < self.prev_ts:
            self.problem(seq, "malformed", f"ts {ts} is before the previous event's {self.prev_ts}")
        self.expected_seq = max(seq, self.expected_seq - 1) + 1
        self.prev_hash = hash
        self.prev_ts = max(ts, self.prev_ts)
        # (5)
        signer = self._resolve_key(seq=seq, type=type, agent=agent, payload=payload, key=key)
        # (6)
        self._apply_key_event(seq=seq, type=type, payload=payload, key=key)
        return signer

    def check_position(self, *, seq: int, prev: str | None) -> None:
        """(1) seq continuity and (2) the chain link (``prev`` None: unreadable, not checked).

        A missing event shows as seq_gap, and as chain_broken, at the next present seq.
        """
        if seq != self.expected_seq:
            if seq > self.expected_seq:
                self.problem(seq, "seq_gap", f"expected seq {self.expected_seq}, found {seq}")
            else:
                self.problem(
                    seq, "seq_gap", f"seq {seq} again or out of order after {self.expected_seq - 1}"
                )
        if prev is not None and prev != self.prev_hash:
            before = self.expected_seq - 1  # the last event seen, whose hash prev must be
            what = f"hash of seq {before}" if before > 0 else "64 zeros for seq 1"
            self.problem(
                seq,
                "chain_broken",
                f"prev is {short(prev)}, expected {short(self.prev_hash)} ({what})",
            )

    def _resolve_key(
        self, *, seq: int, type: str, agent: str | None, payload: Any, key: str
    ) -> KeyState | None:
        if type == "ledger.created" and seq == 1 and isinstance(payload, dict):
            root = payload.get("key")
            if isinstance(root, dict) and root.get("key_id") == key:
                # The first event registers the key that signs it (SPEC §2.3).
                state = _key_from_payload(root, seq)
                if state is None:
                    self.problem(seq, "malformed", "ledger.created carries a malformed key")
                elif state.role != "governor":
                    self.problem(
                        seq, "unauthorized", f"the root key has role {state.role}, not governor"
                    )
                return state
            self.problem(
                seq, "unknown_key", f"ledger.created is not signed by the key it registers ({key})"
            )
            return None
        if type == "ledger.created":
            self.problem(seq, "malformed", "ledger.created may only be seq 1")
        state = self.keys.get(key)
        if state is None:
            self.problem(
                seq, "unknown_key", f"key {key} is not registered at this point of the log"
            )
            return None
        if state.revoked_seq is not None:
            self.problem(
                seq,
                "revoked_key",
                f"key {state.name} ({key}) was revoked at seq {state.revoked_seq}",
            )
            return state
        why = authorize(role=state.role, key_agent=state.agent, event_type=type, agent=agent)
        if why is not None:
            self.problem(seq, "unauthorized", f"{why} (key {state.name})")
        return state

    def _apply_key_event(self, *, seq: int, type: str, payload: Any, key: str) -> None:
        if not isinstance(payload, dict):
            return
        if type == "ledger.created" and seq == 1:
            root = payload.get("key")
            state = _key_from_payload(root, seq) if isinstance(root, dict) else None
            if state is not None:
                self.keys[state.key_id] = state
                self.root_key_id = state.key_id
            origin = payload.get("origin")
            self.origin = origin if isinstance(origin, str) else None
        elif type == "key.registered":
            state = _key_from_payload(payload, seq)
            if state is None:
                self.problem(seq, "malformed", "key.registered carries a malformed key")
            elif state.key_id in self.keys:
                self.problem(seq, "malformed", f"key {state.key_id} is registered twice")
            else:
                self.keys[state.key_id] = state
        elif type == "key.revoked":
            target = self.keys.get(str(payload.get("key_id")))
            if target is None:
                self.problem(
                    seq, "malformed", f"key.revoked names unknown key {payload.get('key_id')}"
                )
            elif target.revoked_seq is None:
                target.revoked_seq = seq


def _key_from_payload(p: dict[str, Any], seq: int) -> KeyState | None:
    """A KeyState from a KEY object (SPEC §2.3), or None when it is malformed."""
    try:
        raw = b64decode_canonical(str(p.get("public_key")))
    except DecodeError:
        return None
    if (
        len(raw) != 32
        or p.get("key_id") != key_id(raw)
        or p.get("role")
        not in (
            "governor",
            "recorder",
            "agent",
        )
    ):
        return None
    agent = p.get("agent")
    if (p["role"] == "agent") != isinstance(agent, str):
        return None  # an agent key is bound to an agent; other roles are bound to none
    return KeyState(
        key_id=key_id(raw),
        name=str(p.get("name")),
        public_key=raw,
        role=str(p["role"]),
        agent=agent if isinstance(agent, str) else None,
        registered_seq=seq,
    )


def _refuse(token: str) -> Any:
    raise ValueError(f"number {token} is not an integer")


def _small_int(token: str) -> int:
    if len(token) > 15:
        raise ValueError(f"integer {token} may be beyond 2^53")
    return int(token)


_fast_decoder = json.JSONDecoder(parse_float=_refuse, parse_constant=_refuse, parse_int=_small_int)
# What the fast path cannot vouch for, sent to the full check: a \u escape other than a control
# character's (a lone surrogate would hide there), a character outside the BMP (RFC 8785
# orders such keys differently from Python), and an integer of 16 or more characters (maybe
# beyond 2^53: the fast parser refuses it).
_ESCAPE = re.compile(r"\\u(?!00[01][0-9a-f])")


def check_canonical_payload(payload_text: str) -> Any:
    """Parse a stored payload and check it is canonical JSON; return the value.

    Raises ValueError with a reason when it is not. Fast path: text with nothing suspect
    whose parse (floats refused) re-encodes to the same text is canonical; anything else takes
    the full check of ``ledger.event.canonical.canonical`` (which also bounds the nesting depth).
    """
    try:
        return _check_canonical_payload(payload_text)
    except RecursionError as e:
        raise ValueError("payload is nested too deeply") from e


def _check_canonical_payload(payload_text: str) -> Any:
    shallow = payload_text.count("{") + payload_text.count("[") <= MAX_DEPTH
    if (
        shallow
        and ("\\u" not in payload_text or _ESCAPE.search(payload_text) is None)
        and (payload_text.isascii() or max(payload_text) <= "\uffff")
    ):
        try:
            fast = _fast_decoder.decode(payload_text)
            # Re-encoded by orjson: keys in code point order, which is RFC 8785's UTF-16 order
            # for text inside the BMP; a lone surrogate makes it raise (JSONEncodeError).
            same = (
                type(fast) is dict
                and orjson.dumps(fast, option=ORJSON_OPTIONS) == payload_text.encode()
            )
        except (ValueError, TypeError):
            fast, same = None, False
        if same:
            return fast
    value = json.loads(payload_text)
    if not isinstance(value, dict):
        raise ValueError("payload is not a JSON object")
    try:
        text = canonical(value, "payload").decode("utf-8")
    except EncodingError as e:
        raise ValueError(e.message) from e
    if text != payload_text:
        raise ValueError("payload is not in canonical form")
    return value
