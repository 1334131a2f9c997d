"""The write path: authorize, chain, sign and insert a batch inside one write transaction.

SPEC §2.1 (seq, prev, ts, hash, sig are computed by the ledger), §2.3 (key events), §2.5 (who
may sign what). Called by ``Ledger.append_many`` with ``BEGIN IMMEDIATE`` already held, so the
head read here cannot move until COMMIT.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ledger.crypto import pool as workers
from ledger.crypto.keyfiles import Signer
from ledger.crypto.signing import b64decode_canonical, b64encode, event_hash, key_id
from ledger.errors import DuplicateEventId, EventValidationError, UnauthorizedWrite
from ledger.event.canonical import canonical, loads
from ledger.event.drafts import Prepared
from ledger.event.envelope import ZERO_HASH, Event, authorize, build_event
from ledger.event.framing import ROW_COLUMNS, ROW_FIELDS
from ledger.tlog import merkle
from ledger.verify.chain import BodyEncoder

if TYPE_CHECKING:
    from ledger.store.sqlite import Ledger


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid7s(n: int) -> list[str]:
    """``n`` UUIDv7 strings (RFC 9562: 48-bit Unix milliseconds, version 7, variant 10, 74
    random bits), sharing one clock reading and one ``os.urandom`` call."""
    ms = f"{(time.time_ns() // 1_000_000) & ((1 << 48) - 1):012x}"
    head = f"{ms[:8]}-{ms[8:]}-7"
    rand = os.urandom(10 * n).hex()
    return [
        f"{head}{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:19]}"
        for r in (rand[20 * i : 20 * i + 19] for i in range(n))
    ]


KeyState = dict[str, Any]
"""A row of the key index: key_id, name, role, agent, revoked_seq."""


@dataclass(frozen=True)
class Tip:
    """The end of the log as of the last commit this connection saw: the head (size, hash,
    ts), the Merkle frontier and the key states read so far. The store keeps it between
    appends and drops it when another connection has committed (``PRAGMA data_version``), so
    an append reads nothing back from the log (SPEC §2.1 still holds: the write lock is
    taken before the tip is trusted)."""

    size: int
    prev: str
    ts: str
    frontier: merkle.Frontier
    keys: dict[str, KeyState | None]


def read_tip(ledger: Ledger) -> Tip:
    """The tip from the file: the last event and the frontier's nodes (two queries)."""
    row = ledger.conn.execute(
        "SELECT seq, hash, ts FROM events ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    size, prev, ts = (0, ZERO_HASH, "") if row is None else (row[0], row[1], row[2])
    frontier = ledger.get_nodes(merkle.range_nodes(0, size))
    return Tip(size, prev, ts, frontier, {})


@lru_cache(maxsize=1)
def _second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def now_ts() -> str:
    """The wall clock as SPEC §2.1's ts (RFC 3339 UTC, six fractional digits, ``Z``); the
    date and time part is formatted once per second."""
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{_second(second)}.{micro:06d}Z"


class _Keys:
    """The key index as seen inside this transaction, with the batch's own changes."""

    def __init__(self, ledger: Ledger, known: dict[str, KeyState | None]) -> None:
        self.conn = ledger.conn
        self.cache: dict[str, KeyState | None] = dict(known)
        self.new: list[tuple[Any, ...]] = []
        self.revoked: list[tuple[int, str]] = []

    def get(self, kid: str) -> dict[str, Any] | None:
        if kid not in self.cache:
            row = self.conn.execute(
                "SELECT key_id, name, role, agent, revoked_seq FROM keys WHERE key_id = ?", (kid,)
            ).fetchone()
            self.cache[kid] = (
                None
                if row is None
                else dict(zip(("key_id", "name", "role", "agent", "revoked_seq"), row, strict=True))
            )
        return self.cache[kid]

    def active_with_name(self, name: str) -> bool:
        rows = self.conn.execute("SELECT key_id FROM keys WHERE name = ?", (name,)).fetchall()
        ids = {r[0] for r in rows} | {k for k, v in self.cache.items() if v and v["name"] == name}
        return any((s := self.get(k)) is not None and s["revoked_seq"] is None for k in ids)

    def active_governors(self) -> int:
        rows = self.conn.execute("SELECT key_id FROM keys WHERE role = 'governor'").fetchall()
        ids = {r[0] for r in rows} | {
            k for k, v in self.cache.items() if v and v["role"] == "governor"
        }
        return sum(1 for k in ids if (s := self.get(k)) is not None and s["revoked_seq"] is None)

    def register(self, p: dict[str, Any], seq: int, where: str) -> None:
        raw = b64decode_canonical(p["public_key"], f"{where}: payload.public_key")
        if len(raw) != 32:
            raise EventValidationError(f"{where}: payload.public_key: must be 32 bytes")
        if key_id(raw) != p["key_id"]:
            raise EventValidationError(
                f"{where}: payload.key_id: {p['key_id']} does not match the public key "
                f"(expected {key_id(raw)})"
            )
        if (p["role"] == "agent") != (p.get("agent") is not None):
            raise EventValidationError(
                f"{where}: payload.agent: an agent key needs its agent; other roles take null"
            )
        if self.get(p["key_id"]) is not None:
            raise UnauthorizedWrite(f"{where}: key {p['key_id']} is already registered")
        if self.active_with_name(p["name"]):
            raise UnauthorizedWrite(
                f"{where}: a key named {p['name']!r} is already registered and not revoked"
            )
        self.cache[p["key_id"]] = {
            "key_id": p["key_id"],
            "name": p["name"],
            "role": p["role"],
            "agent": p.get("agent"),
            "revoked_seq": None,
        }
        self.new.append((p["key_id"], p["name"], p["public_key"], p["role"], p.get("agent"), seq))

    def revoke(self, kid: str, seq: int, where: str) -> None:
        state = self.get(kid)
        if state is None:
            raise UnauthorizedWrite(f"{where}: key {kid} is not registered in this ledger")
        if state["revoked_seq"] is not None:
            raise UnauthorizedWrite(
                f"{where}: key {kid} was already revoked at seq {state['revoked_seq']}"
            )
        if state["role"] == "governor" and self.active_governors() <= 1:
            raise UnauthorizedWrite(
                f"{where}: key {state['name']} is the last governor key; "
                "register another governor before revoking it"
            )
        # A new dict: the old one may belong to the tip of the last commit.
        self.cache[kid] = {**state, "revoked_seq": seq}
        self.revoked.append((seq, kid))


def append_locked(
    ledger: Ledger,
    prepared: list[Prepared],
    signer: Signer,
    progress: Callable[[int], None] | None,
) -> list[Event]:
    conn = ledger.conn
    # (1) Head and time: ts never goes back along seq (SPEC §2.1).
    tip = ledger.tip() or read_tip(ledger)
    size, prev = tip.size, tip.prev
    ts = max(now_ts(), tip.ts)
    # (2) Validation, authorization, key and policy semantics, chaining.
    signing = workers.pool().signing(signer.secret_key, len(prepared))
    keys = _Keys(ledger, tip.keys)
    kid = signer.key_id
    policy_version: int | None = None
    rows: list[list[Any]] = []
    payloads: list[dict[str, Any]] = []  # as stored (times in ts form), for the events returned
    digests: list[bytes] = []
    fresh_ids = iter(uuid7s(sum(1 for p in prepared if p.draft.id is None)))
    encoder = BodyEncoder()  # canonical JSON of repeated strings, cached per batch
    allowed: dict[tuple[str, str | None], str | None] = {}
    for i, p in enumerate(prepared):
        # Validated here, as it is chained (unless validated before the lock): the workers
        # meanwhile sign the chunks before it, and a bad draft rolls the batch back.
        where = p.where
        d, text = p.encoded()
        payloads.append(d.payload)
        seq = size + i + 1
        if d.type == "ledger.created":
            if seq != 1:
                raise UnauthorizedWrite(f"{where}: ledger.created can only be the first event")
            if d.payload["key"]["key_id"] != kid:
                raise UnauthorizedWrite(
                    f"{where}: ledger.created must be signed by the key it registers"
                )
            keys.register(d.payload["key"], seq, where)
        state = keys.get(kid)
        if state is None:
            raise UnauthorizedWrite(
                f"{where}: key {signer.name} ({kid}) is not registered in this ledger"
            )
        if state["revoked_seq"] is not None:
            raise UnauthorizedWrite(
                f"{where}: key {signer.name} ({kid}) was revoked at seq {state['revoked_seq']}"
            )
        rule = (d.type, d.agent)
        if rule not in allowed:
            allowed[rule] = authorize(
                role=state["role"], key_agent=state["agent"], event_type=d.type, agent=d.agent
            )
        why = allowed[rule]
        if why is not None:
            raise UnauthorizedWrite(f"{where}: {why} (key {signer.name})")
        if d.type == "key.registered":
            keys.register(d.payload, seq, where)
        elif d.type == "key.revoked":
            keys.revoke(d.payload["key_id"], seq, where)
        elif d.type == "policy.set":
            if policy_version is None:
                last = conn.execute(
                    "SELECT payload FROM events WHERE type = 'policy.set' ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                policy_version = 0 if last is None else int(loads(last[0])["version"])
            policy_version += 1
            if d.payload["version"] != policy_version:
                raise EventValidationError(
                    f"{where}: payload.version: is {d.payload['version']}, expected {policy_version} "
                    "(the previous version + 1)"
                )
            digest = hashlib.sha256(canonical(d.payload["document"])).hexdigest()
            if d.payload["digest"] != digest:
                raise EventValidationError(
                    f"{where}: payload.digest: is {d.payload['digest']}, the document's is {digest}"
                )
        event_id = next(fresh_ids) if d.id is None else d.id
        body = encoder.body(seq, event_id, ts, d.type, d.agent, d.run, d.actor, text,
                            prev, kid)  # fmt: skip
        digest_b = event_hash(body)
        digests.append(digest_b)
        digest_hex = digest_b.hex()
        rows.append(
            [seq, event_id, ts, d.type, d.agent, d.run, d.actor, text, prev, kid, digest_hex]
        )
        prev = digest_hex
        signing.add(digest_b)
    # (3) Ids: unique within the batch and against the log (checked once every draft is
    # known to be valid).
    given = [p.draft.id for p in prepared if p.draft.id is not None]
    if given:
        seen: dict[str, str] = {}
        for p in prepared:
            if p.draft.id is not None:
                if p.draft.id in seen:
                    raise DuplicateEventId(
                        f"{p.where}: id {p.draft.id!r} repeats {seen[p.draft.id]} of this batch"
                    )
                seen[p.draft.id] = p.where
        for start in range(0, len(given), 500):
            part = given[start : start + 500]
            marks = ",".join("?" * len(part))
            hit = conn.execute(
                f"SELECT id, seq FROM events WHERE id IN ({marks}) ORDER BY seq LIMIT 1", part
            ).fetchone()
            if hit is not None:
                raise DuplicateEventId(
                    f"{seen[hit[0]]}: id {hit[0]!r} is already in the log at seq {hit[1]}"
                )
    # (4) Merkle complete-subtree nodes created by these leaves and the key index, written
    # while the workers still sign the last chunks.
    nodes, frontier = merkle.extend(size, digests, tip.frontier)
    stored = merkle.stored_rows(nodes)
    if stored:  # most single appends complete no stored node (level >= 4)
        conn.executemany("INSERT INTO merkle_nodes (closes, level, hash) VALUES (?, ?, ?)", stored)
    if keys.new:
        conn.executemany(
            "INSERT INTO keys (key_id, name, public_key, role, agent, registered_seq) VALUES (?, ?, ?, ?, ?, ?)",
            keys.new,
        )
    if keys.revoked:
        conn.executemany("UPDATE keys SET revoked_seq = ? WHERE key_id = ?", keys.revoked)
    # (5) Signatures: independent of the chain, so large batches were sent to worker processes
    # chunk by chunk while the loop above went on chaining. Rows are inserted a chunk at a
    # time as their signatures come back, so SQLite's work overlaps the workers' signing (the
    # workers have the time: the main process is the slower side). Small batches, and what a
    # failed worker left, are signed here.
    insert = f"INSERT INTO events ({ROW_COLUMNS}) VALUES ({', '.join('?' * len(ROW_FIELDS))})"
    done = 0
    for signed in signing.signatures():
        signed_rows = rows[done : done + len(signed)]
        for r, sig in zip(signed_rows, signed, strict=True):
            r.append(b64encode(sig))
        conn.executemany(insert, signed_rows)
        done += len(signed)
    ledger.stage_tip(Tip(size + len(rows), prev, ts, frontier, keys.cache))
    if progress is not None:
        progress(len(rows))
    return [build_event(r, p) for r, p in zip(rows, payloads, strict=True)]
