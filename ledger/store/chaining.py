"""The store-independent write path: authorize, chain and sign a batch, then hand its rows to the store.

SPEC §2.1 (seq, prev, ts, hash, sig are computed by the ledger), §2.3 (key events), §2.5 (who
may sign what). A store calls ``append_locked`` inside its write transaction, once it holds the
lock that keeps the head from moving until COMMIT (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the
head row). What is store-specific is behind ``ChainStore``: its tip, key, id and policy-version
look-ups, and writing rows, Merkle nodes and the key index.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ledger.crypto import pool as workers
from ledger.crypto.keyfiles import Signer
from ledger.crypto.signing import b64decode_canonical, b64encode, event_hash, key_id
from ledger.errors import DuplicateEventId, EventValidationError, UnauthorizedWrite
from ledger.event.body import BodyEncoder
from ledger.event.canonical import canonical, loads
from ledger.event.clock import now_ts, uuid7s
from ledger.event.drafts import Prepared, check_body_size
from ledger.event.envelope import Event, authorize, build_event
from ledger.store.tip import KeyState, Tip
from ledger.tlog import merkle


class ChainStore(Protocol):
    """What ``append_locked`` needs from a store, inside its open write transaction."""

    def current_tip(self) -> Tip:
        """The tip to append after (the head cannot move: the write lock is held)."""

    def stage_tip(self, tip: Tip) -> None:
        """The tip after this batch; kept only if the transaction commits."""

    def key_state(self, kid: str) -> KeyState | None:
        """The key index's row of ``kid`` (key_id, name, role, agent, revoked_seq)."""

    def key_ids_named(self, name: str) -> list[str]:
        """Key ids registered under ``name``."""

    def governor_key_ids(self) -> list[str]:
        """Key ids registered with the role ``governor``."""

    def last_policy_version(self) -> int:
        """The version of the newest ``policy.set`` in the log (0 when none)."""

    def first_logged_id(self, ids: Sequence[str]) -> tuple[str, int] | None:
        """Of ``ids``, the one already in the log with the lowest seq, and that seq."""

    def write_index(
        self,
        nodes: list[tuple[int, int, bytes]],
        new_keys: list[tuple[Any, ...]],
        revoked: list[tuple[int, str]],
    ) -> None:
        """Write Merkle node rows ``(closes, level, hash)`` and the key index's changes."""

    def insert_events(self, rows: list[list[Any]], bodies: list[bytes]) -> None:
        """Insert signed rows (``ROW_FIELDS`` order) with their canonical bodies."""


_KEY_FIELDS = ("key_id", "name", "role", "agent", "revoked_seq")


class IndexLookups(ABC):
    """The ``ChainStore`` look-ups that are the same SQL in every store (the key index and the
    last ``policy.set``). A store's ``ChainStore`` derives from it and gives ``query`` (run one
    statement, return its cursor), ``query_many`` and ``MARK``, its parameter placeholder."""

    MARK = "?"

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement inside the store's open write transaction; its cursor."""

    def key_state(self, kid: str) -> KeyState | None:
        row = self.query(
            f"SELECT key_id, name, role, agent, revoked_seq FROM keys WHERE key_id = {self.MARK}",
            (kid,),
        ).fetchone()
        return None if row is None else dict(zip(_KEY_FIELDS, row, strict=True))

    def key_ids_named(self, name: str) -> list[str]:
        rows = self.query(f"SELECT key_id FROM keys WHERE name = {self.MARK}", (name,)).fetchall()
        return [r[0] for r in rows]

    def governor_key_ids(self) -> list[str]:
        rows = self.query("SELECT key_id FROM keys WHERE role = 'governor'").fetchall()
        return [r[0] for r in rows]

    def last_policy_version(self) -> int:
        last = self.query(
            "SELECT payload FROM events WHERE type = 'policy.set' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return 0 if last is None else int(loads(last[0])["version"])

    def write_index(
        self,
        nodes: list[tuple[int, int, bytes]],
        new_keys: list[tuple[Any, ...]],
        revoked: list[tuple[int, str]],
    ) -> None:
        m = self.MARK
        for sql, rows in (
            (f"INSERT INTO merkle_nodes (closes, level, hash) VALUES ({m}, {m}, {m})", nodes),
            (
                "INSERT INTO keys (key_id, name, public_key, role, agent, registered_seq) "
                f"VALUES ({m}, {m}, {m}, {m}, {m}, {m})",
                new_keys,
            ),
            (f"UPDATE keys SET revoked_seq = {m} WHERE key_id = {m}", revoked),
        ):
            if rows:
                self.query_many(sql, rows)

    @abstractmethod
    def query_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of ``rows``."""


class _Keys:
    """The key index as seen inside this transaction, with the batch's own changes."""

    def __init__(self, store: ChainStore, known: dict[str, KeyState | None]) -> None:
        self.store = store
        self.cache: dict[str, KeyState | None] = dict(known)
        self.new: list[tuple[Any, ...]] = []
        self.revoked: list[tuple[int, str]] = []

    def get(self, kid: str) -> dict[str, Any] | None:
        if kid not in self.cache:
            self.cache[kid] = self.store.key_state(kid)
        return self.cache[kid]

    def active_with_name(self, name: str) -> bool:
        ids = set(self.store.key_ids_named(name)) | {
            k for k, v in self.cache.items() if v and v["name"] == name
        }
        return any((s := self.get(k)) is not None and s["revoked_seq"] is None for k in ids)

    def active_governors(self) -> int:
        ids = set(self.store.governor_key_ids()) | {
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
    store: ChainStore,
    prepared: list[Prepared],
    signer: Signer,
    progress: Callable[[int], None] | None,
) -> list[Event]:
    """Chain, authorize and sign ``prepared`` after the store's tip, and write them through
    ``store`` (inside its write transaction); the events appended, in order."""
    # (1) Head and time: ts never goes back along seq (SPEC §2.1).
    tip = store.current_tip()
    size, prev = tip.size, tip.prev
    ts = max(now_ts(), tip.ts)
    # (2) Validation, authorization, key and policy semantics, chaining.
    signing = workers.pool().signing(signer.secret_key, len(prepared))
    keys = _Keys(store, tip.keys)
    kid = signer.key_id
    policy_version: int | None = None
    rows: list[list[Any]] = []
    digests: list[bytes] = []
    bodies: list[bytes] = []
    payloads: list[dict[str, Any]] = []  # as stored (times in ts form), for the events returned
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
                policy_version = store.last_policy_version()
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
        body = encoder.body(seq, event_id, ts, d.type, d.agent, d.run, d.actor, text, prev, kid)
        check_body_size(body, where)
        digest_b = event_hash(body)
        bodies.append(body)
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
            hit = store.first_logged_id(given[start : start + 500])
            if hit is not None:
                raise DuplicateEventId(
                    f"{seen[hit[0]]}: id {hit[0]!r} is already in the log at seq {hit[1]}"
                )
    # (4) Merkle complete-subtree nodes created by these leaves and the key index, written
    # while the workers still sign the last chunks.
    nodes, frontier = merkle.extend(size, digests, tip.frontier)
    stored = merkle.stored_rows(nodes)
    if stored or keys.new or keys.revoked:  # most single appends complete no stored node
        store.write_index(stored, keys.new, keys.revoked)
    # (5) Signatures: independent of the chain, so large batches were sent to worker processes
    # chunk by chunk while the loop above went on chaining. Rows are inserted a chunk at a
    # time as their signatures come back, so the store's work overlaps the workers' signing (the
    # workers have the time: the main process is the slower side). Small batches, and what a
    # failed worker left, are signed here.
    done = 0
    for signed in signing.signatures():
        signed_rows = rows[done : done + len(signed)]
        for r, sig in zip(signed_rows, signed, strict=True):
            r.append(b64encode(sig))
        store.insert_events(signed_rows, bodies[done : done + len(signed)])
        done += len(signed)
    store.stage_tip(Tip(size + len(rows), prev, ts, frontier, keys.cache))
    if progress is not None:
        progress(len(rows))
    return [build_event(r, p) for r, p in zip(rows, payloads, strict=True)]


def append_signed(store: ChainStore, rows: Sequence[Sequence[Any]]) -> None:
    """Write rows chained and signed elsewhere (a copy of another store's log) after the
    store's tip, with their Merkle nodes and key index changes. Each row must extend the
    tip: its seq is the next one, its prev the tip's hash and its hash that of its body
    (``ChainError``, exit 1). Signatures and authorization are the caller's to have verified
    (``govledger copy`` verifies the source first)."""
    from ledger.errors import ChainError
    from ledger.event.body import body_bytes
    from ledger.event.canonical import loads

    tip = store.current_tip()
    size, prev, ts = tip.size, tip.prev, tip.ts
    keys = _Keys(store, tip.keys)
    digests: list[bytes] = []
    bodies: list[bytes] = []
    for row in rows:
        seq, id_, ts, type_, agent, run, actor, payload, row_prev, kid, hash_, _ = row
        if seq != size + 1 or row_prev != prev:
            raise ChainError(
                f"seq {seq}: does not extend the copy's head (seq {size}, hash {prev[:12]}…)"
            )
        body = body_bytes(
            seq=seq,
            id=id_,
            ts=ts,
            type=type_,
            agent=agent,
            run=run,
            actor=actor,
            payload=payload,
            prev=row_prev,
            key=kid,
        )
        digest = event_hash(body)
        if digest.hex() != hash_:
            raise ChainError(f"seq {seq}: hash_mismatch: the stored hash is not its body's")
        where = f"seq {seq}"
        if type_ == "ledger.created":
            keys.register(loads(payload)["key"], seq, where)
        elif type_ == "key.registered":
            keys.register(loads(payload), seq, where)
        elif type_ == "key.revoked":
            keys.revoke(loads(payload)["key_id"], seq, where)
        digests.append(digest)
        bodies.append(body)
        size, prev = seq, hash_
    nodes, frontier = merkle.extend(tip.size, digests, tip.frontier)
    stored = merkle.stored_rows(nodes)
    if stored or keys.new or keys.revoked:
        store.write_index(stored, keys.new, keys.revoked)
    store.insert_events([list(r) for r in rows], bodies)
    store.stage_tip(Tip(size, prev, ts, frontier, keys.cache))
