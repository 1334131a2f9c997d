"""Streaming verification of a ledger or an exported file (SPEC §1, §2, §5 ``verify``).

The log is read once, in seq order, in constant memory. For each event: (1) framing and
canonical form, (2) hash, (3) chain link and seq continuity, (4) ts order, (5) key registered
at that point, unrevoked and authorized for the type, (6) signature. Signatures are checked on
worker threads (Ed25519 releases the GIL), batch by batch, while the main thread parses and
chains the next batch. The RFC 9162 root is accumulated as the events stream by, and every
complete subtree is compared with the stored Merkle tree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger.crypto import pool as workers
from ledger.crypto.signing import (
    b64decode_canonical,
    check_event_signature,
    event_hash,
    verify_event_signature,
)
from ledger.errors import ChainError, DecodeError, LedgerError, StoreError
from ledger.event.envelope import (
    MAX_NAME_LENGTH,
    REQUIRED_ENVELOPE,
    ZERO_HASH,
    authorize,
    decode_payload,
)
from ledger.tlog import merkle
from ledger.tlog.stored_tree import RootAccumulator, StoredTree
from ledger.verify.chain import (
    BodyEncoder,
    ChainChecker,
    Problem,
    body_bytes,
    check_canonical_payload,
    short,
)
from ledger.verify.export_file import rows_from_export

HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
BATCH = workers.CHUNK
MAX_PROBLEMS = 1000

Row = tuple[Any, ...]
"""(seq, id, ts, type, agent, run, actor, payload_text, prev, key, hash, sig)."""


@dataclass
class VerifyReport:
    """The outcome of one verification, shaped as ``verify --json`` (SPEC §5)."""

    events: int = 0
    head_seq: int = 0
    head_hash: str = ZERO_HASH
    root: bytes = merkle.EMPTY_ROOT
    pinned: bool = False
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    from_seq: int | None = None
    origin: str | None = None
    root_key_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    state_note: str | None = None
    """What the remembered-state check did when it was not a plain comparison."""
    roots: dict[int, bytes] = field(default_factory=dict)
    """Roots at the sizes asked for with ``want_roots`` (checkpoint and remembered sizes)."""

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "ok": self.ok,
            "events": self.events,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "root": self.root.hex(),
            "pinned": self.pinned,
            "problems": [p.as_dict() for p in sorted(self.problems, key=lambda p: p.seq)],
        }
        if self.problem_count > len(self.problems):
            d["problems_omitted"] = self.problem_count - len(self.problems)
        if self.from_seq is not None:
            d["from"] = self.from_seq
        if self.origin is not None:
            d["origin"] = self.origin
        if self.root_key_id is not None:
            d["root_key_id"] = self.root_key_id
        if self.checkpoint is not None:
            d["checkpoint"] = self.checkpoint
        if self.state_note is not None:
            d["state"] = self.state_note
        return d


def _text_ok(value: Any) -> bool:
    """The common case of an envelope string, checked fast: null, or short ASCII text."""
    return value is None or (type(value) is str and value.isascii() and 0 < len(value) <= 128)


def _is_utf8(text: str) -> bool:
    """False for text holding lone surrogates (bytes that were not UTF-8 in the store)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Verifier:
    """Feed rows in seq order with ``feed``; ``finish`` returns the report."""

    def __init__(
        self,
        *,
        trusted: set[str] | None,
        checker: ChainChecker | None = None,
        stored_nodes: Callable[[int, int], bytes | None] | None = None,
        progress: Callable[[int], None] | None = None,
        want_roots: set[int] | None = None,
        parallel: bool = False,
    ) -> None:
        self.report = VerifyReport(pinned=bool(trusted))
        self.encoder = BodyEncoder()
        self.want_roots = want_roots or set()
        self.trusted = trusted
        self.checker = checker or ChainChecker()
        self.pipeline = workers.Pipeline() if parallel and workers.enabled() else None
        self.batch: list[tuple[int, bytes, bytes, bytes]] = []
        self.progress = progress
        self.stored_nodes = stored_nodes
        self.acc = RootAccumulator(self._compare_node if stored_nodes else None)
        self._tree_problem = False
        self._current_seq = 0

    def _compare_node(self, level: int, index: int, h: bytes) -> None:
        if level < merkle.STORED_LEVEL:
            return  # not stored: recomputed from the (checked) leaves when read
        assert self.stored_nodes is not None
        stored = self.stored_nodes(level, index)
        if stored != h and not self._tree_problem:
            self._tree_problem = True
            # Reported at the event whose leaf completed the node: with events missing or
            # reordered, the leaf count (index + 1) << level is not that event's seq.
            seq = self._current_seq
            found = "missing" if stored is None else short(stored.hex())
            self.report.add(
                Problem(
                    seq,
                    "hash_mismatch",
                    f"stored Merkle node ({level}, {index}) is {found}, "
                    f"events give {short(h.hex())}",
                )
            )

    def feed(self, row: Row) -> None:
        seq, id_, ts, type_, agent, run, actor, payload_text, prev, key, hash_, sig = row
        where_seq = seq if isinstance(seq, int) else self.checker.expected_seq
        # (1) framing and canonical form
        try:
            payload, raw_sig = self._framing(
                seq, id_, ts, type_, agent, run, actor, payload_text, prev, key, hash_, sig
            )
        except ValueError as e:
            # A missing event before a malformed one still shows, at this seq (SPEC §5).
            if isinstance(seq, int):
                well_formed = isinstance(prev, str) and HEX64.match(prev) is not None
                self.checker.check_position(seq=seq, prev=prev if well_formed else None)
                self._take_checker_problems()
            self.report.add(Problem(where_seq, "malformed", str(e)))
            self.checker.expected_seq = where_seq + 1
            self.checker.prev_hash = hash_ if isinstance(hash_, str) else ZERO_HASH
            self.report.events += 1
            if isinstance(hash_, str) and HEX64.match(hash_):
                # Still a leaf of the tree: keep the root and the stored-tree check aligned.
                self._current_seq = where_seq
                self.acc.add(bytes.fromhex(hash_))
                self.report.head_seq, self.report.head_hash = where_seq, hash_
            return
        # (2)–(5)
        # prev is checked lowercase hex by _framing, so it needs no escaping.
        body = self.encoder.body(seq, id_, ts, type_, agent, run, actor, payload_text, prev, key)
        digest = event_hash(body)
        signer = self.checker.check(
            seq=seq,
            ts=ts,
            type=type_,
            agent=agent,
            payload=payload,
            prev=prev,
            key=key,
            hash=hash_,
            computed_hash=digest.hex(),
        )
        self._take_checker_problems()
        root_id = self.checker.root_key_id
        if seq == 1 and self.trusted is not None and root_id is not None and root_id not in self.trusted:  # fmt: skip
            self.report.add(
                Problem(
                    1,
                    "untrusted_root",
                    f"root key {self.checker.root_key_id} is not a trusted key",
                )
            )
        self._current_seq = seq
        leaf = bytes.fromhex(hash_)
        self.acc.add(leaf)
        if self.acc.size in self.want_roots:
            self.report.roots[self.acc.size] = self.acc.root()
        self.report.events += 1
        self.report.head_seq, self.report.head_hash = seq, hash_
        # (6) the signature, against the stored hash (a wrong hash is already reported)
        if signer is not None:
            self.batch.append((seq, signer.public_key, raw_sig, leaf))
            if len(self.batch) >= BATCH:
                self._flush()

    def _take_checker_problems(self) -> None:
        for p in self.checker.problems:
            self.report.add(p)
        del self.checker.problems[:]

    def _framing(
        self,
        seq: Any,
        id_: Any,
        ts: Any,
        type_: Any,
        agent: Any,
        run: Any,
        actor: Any,
        payload_text: Any,
        prev: Any,
        key: Any,
        hash_: Any,
        sig: Any,
    ) -> tuple[Any, bytes]:
        if type(seq) is not int or seq < 1:
            raise ValueError(f"seq must be a positive integer, found {seq!r}")
        if not isinstance(id_, str) or not id_ or len(id_) > 128:
            raise ValueError("id must be a non-empty string of at most 128 characters")
        if not isinstance(ts, str) or not TS.match(ts):
            raise ValueError(f"ts {ts!r} is not RFC 3339 UTC with six fractional digits and Z")
        if not (_text_ok(id_) and _text_ok(agent) and _text_ok(run) and _text_ok(actor)):
            for name, v in (("id", id_), ("agent", agent), ("run", run), ("actor", actor)):
                if v is not None and not isinstance(v, str):
                    raise ValueError(f"{name} must be a string or null")
                if v is not None and not _is_utf8(v):
                    raise ValueError(f"{name} is not valid UTF-8 text")
                if v is not None and not 0 < len(v) <= MAX_NAME_LENGTH:
                    raise ValueError(f"{name} must be 1–{MAX_NAME_LENGTH} characters")
        for name, v, rx in (("prev", prev, HEX64), ("hash", hash_, HEX64), ("key", key, HEX32)):
            if not isinstance(v, str) or not rx.match(v):
                raise ValueError(f"{name} is not lowercase hex of the right length")
        if not isinstance(sig, str):
            raise ValueError("sig is not a string")
        try:
            raw_sig = b64decode_canonical(sig, "sig")
        except DecodeError as e:
            raise ValueError(e.message) from e
        if len(raw_sig) != 64:
            raise ValueError(f"sig is {len(raw_sig)} bytes, want 64")
        if not isinstance(payload_text, str):
            raise ValueError("payload is not JSON text")
        payload = check_canonical_payload(payload_text)
        try:
            if isinstance(type_, str) and type_.startswith("x.") and len(type_) > 2:
                pass  # SPEC §2.4: any x.<name>; writers here are stricter, readers are not
            else:
                decode_payload(type_, payload, "payload")  # unknown types included
        except LedgerError as e:
            raise ValueError(e.message) from e
        for name in REQUIRED_ENVELOPE.get(type_, ()):
            if (agent if name == "agent" else run) is None:
                raise ValueError(f"{type_} requires {name}")
        return payload, raw_sig

    def _flush(self, keep: int = workers.VERIFY_IN_FLIGHT * workers.WORKERS) -> None:
        # (6) signatures: in worker processes when the log is large, else here.
        if self.batch:
            if self.pipeline is not None:
                self.pipeline.check(self.batch)
            else:
                self._bad_signatures(
                    [s for s, pub, sig, d in self.batch if not check_event_signature(pub, sig, d)]
                )
            if self.progress is not None:
                self.progress(len(self.batch))
            self.batch = []
        if self.pipeline is not None:
            for bad in self.pipeline.results(keep=keep):
                self._bad_signatures(bad)

    def _bad_signatures(self, seqs: list[int]) -> None:
        for seq in seqs:
            self.report.add(
                Problem(
                    seq, "bad_signature", "signature does not verify with the key registered for it"
                )
            )

    def finish(self) -> VerifyReport:
        self._flush(keep=0)
        self.report.root = self.acc.root()
        self.report.origin = self.checker.origin
        self.report.root_key_id = self.checker.root_key_id
        self.report.problems.sort(key=lambda p: p.seq)
        return self.report


# --- sources -------------------------------------------------------------------------------


def _wanted(checkpoint: str | None, origin: str | None, use_state: bool) -> set[int]:
    from ledger.tlog.consistency import checkpoint_roots_wanted, remembered_size

    sizes = set()
    if checkpoint is not None:
        try:
            sizes.add(checkpoint_roots_wanted(checkpoint))
        except LedgerError:
            pass  # reported as checkpoint_mismatch by check_checkpoint
    if use_state:
        n = remembered_size(origin)
        if n is not None:
            sizes.add(n)
    return sizes


def verify_ledger(
    ledger: Any,
    *,
    from_seq: int | None = None,
    trusted: set[str] | None = None,
    checkpoint: str | None = None,
    progress: Callable[[int], None] | None = None,
    use_state: bool = False,
) -> VerifyReport:
    """Verify a ledger's events (all, or from ``from_seq`` on) and its stored Merkle tree.

    (1) anchor (``--from``), (2) stream and check every event, (3) compare the stored tree,
    (4) check the checkpoint, (5) check and update the remembered state.
    """
    from ledger.errors import InputError
    from ledger.tlog.consistency import check_checkpoint, check_remembered

    size = ledger.size
    checker = ChainChecker()
    stored: Callable[[int, int], bytes | None] | None = StoredTree(ledger.conn).get
    start = 1
    # (1)
    if from_seq is not None and from_seq > 1:
        if from_seq > size:
            raise InputError(f"--from {from_seq}: the log has {size} events")
        for r in ledger.iter_rows(
            to_seq=from_seq - 1, where="type IN ('ledger.created', 'key.registered', 'key.revoked')"
        ):
            try:
                payload = json.loads(r[7])
            except ValueError:
                payload = None  # a key event that does not parse registers nothing
            checker._apply_key_event(seq=r[0], type=r[3], payload=payload, key=r[9])
        anchor = ledger.conn.execute(
            "SELECT hash, ts FROM events WHERE seq = ?", (from_seq - 1,)
        ).fetchone()
        if anchor is None:
            raise ChainError(
                f"--from {from_seq}: seq {from_seq - 1} is missing from the log, nothing to anchor "
                "on (seq_gap): run a full verify"
            )
        checker.expected_seq, checker.prev_hash, checker.prev_ts = from_seq, anchor[0], anchor[1]
        start, stored = from_seq, None
    origin = _origin_or_none(ledger)
    v = Verifier(
        trusted=trusted,
        checker=checker,
        stored_nodes=stored,
        progress=progress,
        want_roots=_wanted(checkpoint, origin, use_state and start == 1),
        parallel=size - start + 1 >= workers.MIN_PARALLEL_VERIFY,
    )
    if start > 1 and trusted is not None and checker.root_key_id not in trusted:
        v.report.add(
            Problem(1, "untrusted_root", f"root key {checker.root_key_id} is not a trusted key")
        )
    # (2)
    for row in ledger.iter_rows(from_seq=start):
        v.feed(row)
    report = v.finish()
    if from_seq is not None:
        report.from_seq = from_seq
    if trusted is not None and checker.root_key_id is None:
        report.add(Problem(1, "untrusted_root", "the log has no ledger.created root key to pin"))
    # (3) The stored tree must give the events' root; a missing node fails closed (exit 1).
    try:
        if start > 1:
            report.root = ledger.root_at(report.head_seq)
            for n in _wanted(checkpoint, origin, False):
                if n <= report.head_seq:
                    report.roots[n] = ledger.root_at(n)
        elif report.head_seq and ledger.root_at(report.head_seq) != report.root:
            report.add(
                Problem(
                    report.head_seq,
                    "hash_mismatch",
                    "the stored Merkle tree's root differs from the events' root",
                )
            )
    except StoreError as e:
        report.add(Problem(report.head_seq, "hash_mismatch", f"stored Merkle tree: {e.message}"))
    # (4) Checkpoint signatures are checked with the governor keys read from the log.
    if checkpoint is not None:
        check_checkpoint(report, checkpoint, _governor_keys(v.checker))
    # (5)
    if use_state and start == 1:
        check_remembered(report)
    report.problems.sort(key=lambda p: p.seq)
    return report


def _origin_or_none(ledger: Any) -> str | None:
    try:
        return str(ledger.origin)
    except LedgerError:
        return None


def verify_export(
    stream: Iterable[bytes],
    *,
    trusted: set[str] | None = None,
    checkpoint: str | None = None,
    keys: list[dict[str, Any]] | None = None,
    parallel: bool = True,
) -> VerifyReport:
    """Verify an exported JSON Lines file (it must start at seq 1)."""
    from ledger.tlog.consistency import check_checkpoint

    v = Verifier(trusted=trusted, want_roots=_wanted(checkpoint, None, False), parallel=parallel)
    unframed: Problem | None = None  # a problem whose line may still come as a row

    def count_unframed() -> None:
        v.report.events += 1
        v.checker.expected_seq += 1

    for item in rows_from_export(stream):
        if isinstance(item, Problem):
            if unframed is not None:
                count_unframed()
            v.report.add(item)
            unframed = item
            continue
        if unframed is not None and item[0] != unframed.seq:
            count_unframed()
        unframed = None
        v.feed(item)
    if unframed is not None:
        count_unframed()
    report = v.finish()
    if trusted and v.checker.root_key_id is None:
        # An empty file, or one without its ledger.created, cannot show the pinned root.
        report.add(Problem(1, "untrusted_root", "no root key: the file has no ledger.created"))
    if checkpoint is not None:
        check_checkpoint(report, checkpoint, _governor_keys(v.checker))
    report.problems.sort(key=lambda p: p.seq)
    return report


def _governor_keys(checker: ChainChecker) -> list[bytes]:
    """The governor public keys registered in the log read so far."""
    return [k.public_key for k in checker.keys.values() if k.role == "governor"]


def check_events(ledger: Any, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Check each of ``rows`` on its own: hash, link to the stored hash of seq − 1, key
    registered and unrevoked at that point and authorized for the type, signature.

    The quick check behind ``runs show`` (one run's events, read through the ``events_run``
    index): it takes keys from the key index, where ``verify_ledger`` reads them from the log
    and checks the whole chain. Returns ``{"seq", "kind", "detail"}`` dicts.
    """
    keys = {k["key_id"]: k for k in ledger.keys()}
    # The stored hash of each event's predecessor, in one query (a run's events are few).
    before = sorted({r[0] - 1 for r in rows if r[0] > 1})
    hashes: dict[int, str] = {0: ZERO_HASH}
    if before:
        marks = ",".join("?" * len(before))
        hashes.update(
            ledger.conn.execute(f"SELECT seq, hash FROM events WHERE seq IN ({marks})", before)
        )
    out: list[dict[str, Any]] = []
    for seq, id_, ts, type_, agent, run, actor, payload, prev, key_id, hash_, sig in rows:
        computed = event_hash(body_bytes(seq=seq, id=id_, ts=ts, type=type_, agent=agent,
                                         run=run, actor=actor, payload=payload, prev=prev,
                                         key=key_id)).hex()  # fmt: skip
        # A predecessor missing from the log: ``hash_at`` says so, as before.
        expected_prev = hashes[seq - 1] if seq - 1 in hashes else ledger.hash_at(seq - 1)
        k = keys.get(key_id)
        problem: tuple[str, str] | None = None
        if computed != hash_:
            problem = ("hash_mismatch", f"stored hash {short(hash_)}, computed {short(computed)}")
        elif prev != expected_prev:
            problem = ("chain_broken", f"prev is {short(prev)}, expected {short(expected_prev)}")
        elif k is None or k["registered_seq"] > seq:
            problem = ("unknown_key", f"key {key_id} is not registered at this point of the log")
        elif k["revoked_seq"] is not None and seq > k["revoked_seq"]:
            problem = ("revoked_key", f"key {k['name']} was revoked at seq {k['revoked_seq']}")
        elif why := authorize(role=k["role"], key_agent=k["agent"], event_type=type_, agent=agent):
            problem = ("unauthorized", why)
        else:
            try:
                verify_event_signature(public_key=b64decode_canonical(k["public_key"]),
                                       signature=b64decode_canonical(sig),
                                       digest=bytes.fromhex(hash_))  # fmt: skip
            except LedgerError as e:
                problem = ("bad_signature", e.message)
        if problem is not None:
            out.append(
                {"seq": seq, "kind": problem[0], "detail": f"seq {seq}: {problem[0]}: {problem[1]}"}
            )
    return out
