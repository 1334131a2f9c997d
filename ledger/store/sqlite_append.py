"""The write path: authorize, chain, sign and insert a batch inside one write transaction.

SPEC §2.1 (seq, prev, ts, hash, sig are computed by the ledger), §2.3 (key events), §2.5 (who
may sign what). Called by ``ledger.store.sqlite.Ledger`` with ``BEGIN IMMEDIATE`` already held, so the
head it passes cannot move until COMMIT. Takes the connection and the tip as parameters: it
does not import the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from sqlite3 import Connection
from typing import Any

from ledger.crypto import pool as workers
from ledger.crypto.keyfiles import Signer
from ledger.crypto.signing import b64decode_canonical, b64encode, event_hash, key_id
from ledger.errors import DuplicateEventId, EventValidationError, UnauthorizedWrite
from ledger.event.body import BodyEncoder
from ledger.event.canonical import canonical, loads
from ledger.event.clock import now_ts, uuid7s
from ledger.event.drafts import Prepared, check_body_size
from ledger.event.envelope import Event, authorize, build_event
from ledger.event.framing import ROW_COLUMNS, ROW_FIELDS
from ledger.store.tip import KeyState, Tip
from ledger.tlog import merkle


class _Keys:
    """The key index as seen inside this transaction, with the batch's own changes."""

    def __init__(self, conn: Connection, known: dict[str, KeyState | None]) -> None:
        self.conn = conn
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
    conn: Connection,
    tip: Tip,
    prepared: list[Prepared],
    signer: Signer,
    progress: Callable[[int], None] | None,
) -> tuple[list[Event], Tip]:
    """Append ``prepared`` after ``tip`` on ``conn``, whose write transaction is open: the
    events, and the tip after them (for the store to keep if the transaction commits)."""
    # (1) Head and time: ts never goes back along seq (SPEC §2.1).
    size, prev = tip.size, tip.prev
    ts = max(now_ts(), tip.ts)
    # (2) Validation, authorization, key and policy semantics, chaining.
    signing = workers.pool().signing(signer.secret_key, len(prepared))
    keys = _Keys(conn, tip.keys)
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
        check_body_size(body, where)
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
    if progress is not None:
        progress(len(rows))
    events = [build_event(r, p) for r, p in zip(rows, payloads, strict=True)]
    return events, Tip(size + len(rows), prev, ts, frontier, keys.cache)
