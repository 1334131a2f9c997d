"""Streaming verification of a ledger or an exported file (SPEC §1, §2, §5 ``verify``).

The log is read once, in seq order, in constant memory. For each event: (1) framing and
canonical form, (2) hash, (3) chain link and seq continuity, (4) ts order, (5) key registered
at that point, unrevoked and authorized for the type, (6) signature. Signatures are checked on
worker threads (Ed25519 releases the GIL), batch by batch, while the main thread parses and
chains the next batch. The RFC 9162 root is accumulated as the events stream by, and every
complete subtree is compared with the stored Merkle tree.

``verify --from K`` trusts only what an earlier full verify established: the stored subtrees
left of K and the stored hashes of the few events after them up to K − 1, the last of which the
chain continues from (``Anchor``). Every root it reports, for the head, a checkpoint or the
remembered state, is recomputed from that anchor and the events it reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledger.crypto import pool as workers
from ledger.crypto.signing import (
    b64decode_canonical,
    event_hash,
)
from ledger.errors import ChainError, DecodeError, LedgerError, StoreError
from ledger.event.body import BodyEncoder
from ledger.event.envelope import REQUIRED_ENVELOPE, check_payload, check_type
from ledger.event.framing import (
    HEX32_RE,
    HEX64_RE,
    SIG_BYTES,
    TEXT_FIELDS,
    ZERO_HASH,
    is_hex64,
    is_ts,
    is_user_type,
    plain_text,
    text_problem,
)
from ledger.event.payload_check import CATALOG_TYPE_SET, TIME_FIELDS, stored_time_problem
from ledger.store.base import EventFilter, Store
from ledger.tlog import merkle
from ledger.tlog.stored_tree import RootAccumulator, StoredTree
from ledger.verify.chain import (
    ChainChecker,
    Problem,
    check_canonical_payload,
    short,
)
from ledger.verify.export_file import rows_from_export

if TYPE_CHECKING:
    from ledger.tlog.cosignatures import WitnessKey

BATCH = 256
"""Signatures checked per batch (one request to a worker)."""
KEY_EVENTS = EventFilter(types=("ledger.created", "key.registered", "key.revoked"))
"""The events that change the key states (read before a partial verify's first event)."""
"""The event types that change the key registry, as an SQL list."""
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
    genesis: str | None = None
    """The hash of seq 1: with the origin, what tells this log from another (remembered state)."""
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


@dataclass(frozen=True)
class Anchor:
    """What ``verify --from K`` starts from without checking it (SPEC §5 ``verify``).

    The stored tree over the first ``base`` leaves, ``base`` the largest multiple of
    2 ** ``merkle.STORED_LEVEL`` below K − 1 (its frontier: O(log K) stored subtree roots), and
    the stored hashes of seq ``base`` + 1 .. K − 1 (at most 16). Reading those as leaves ties
    the hash of K − 1, which the chain continues from, to the stored tree: a stored node that
    closes among them is compared with them like any node right of K.
    """

    base: int
    frontier: list[bytes]
    """The hashes of ``merkle.range_nodes(0, base)``, largest first."""
    leaves: list[tuple[int, bytes]]
    """``(seq, stored hash)`` of seq ``base`` + 1 .. K − 1."""
    ts: str
    """The ts of seq K − 1 (the next event's may not be earlier)."""


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
        parallel: int | None = 0,
    ) -> None:
        self.report = VerifyReport(pinned=bool(trusted))
        self.encoder = BodyEncoder()
        self.want_roots = want_roots or set()
        self.trusted = trusted
        self.checker = checker or ChainChecker()
        # Signatures: on the worker pool when ``parallel``, the events expected (None: not
        # known), makes it pay.
        self.signatures = workers.pool().verifying(parallel)
        self.batch: list[tuple[int, bytes, bytes, bytes]] = []
        self.progress = progress
        self.stored_nodes = stored_nodes
        self.acc = RootAccumulator(self._compare_node if stored_nodes else None)
        self._tree_problem = False
        self._current_seq = 0

    def resume(self, anchor: Anchor) -> None:
        """Continue the tree from ``anchor`` (``verify --from``): its frontier, then its leaves,
        whose completed nodes are compared with the stored tree as the events' are."""
        self.acc = RootAccumulator.resume(anchor.base, anchor.frontier, self.acc.on_node)
        for seq, leaf in anchor.leaves:
            self._current_seq = seq
            self.acc.add(leaf)
        if self.acc.size in self.want_roots:
            self.report.roots[self.acc.size] = self.acc.root()

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
        # A seq that is no seq (SPEC §2.1) is reported where the event stands in the stream.
        has_seq = type(seq) is int and seq >= 1
        where_seq = seq if has_seq else self.checker.expected_seq
        # (1) framing and canonical form
        try:
            payload, raw_sig = self._framing(
                seq, id_, ts, type_, agent, run, actor, payload_text, prev, key, hash_, sig
            )
        except ValueError as e:
            # A missing event before a malformed one still shows, at this seq (SPEC §5).
            if has_seq:
                self.checker.check_position(seq=seq, prev=prev if is_hex64(prev) else None)
                self._take_checker_problems()
            self.report.add(Problem(where_seq, "malformed", str(e)))
            self.checker.expected_seq = where_seq + 1
            self.checker.prev_hash = hash_ if isinstance(hash_, str) else ZERO_HASH
            self.report.events += 1
            if is_hex64(hash_):
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
        if (
            seq == 1
            and self.trusted is not None
            and root_id is not None
            and root_id not in self.trusted
        ):
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
        if seq == 1:
            self.report.genesis = hash_
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
        """The framing rules of ``ledger.event.framing`` (those the writer applies), the canonical
        payload and its schema; ValueError naming the field otherwise."""
        if type(seq) is not int or seq < 1:
            raise ValueError(f"seq must be a positive integer, found {seq!r}")
        if not (plain_text(id_) and plain_text(agent) and plain_text(run) and plain_text(actor)):
            for name, v in zip(TEXT_FIELDS, (id_, agent, run, actor), strict=True):
                problem = text_problem(name, v)
                if problem is not None:
                    raise ValueError(problem)
        if id_ is None:
            raise ValueError(text_problem("id", ""))
        if not is_ts(ts):
            raise ValueError(f"ts {ts!r} is not RFC 3339 UTC with six fractional digits and Z")
        for name, v, rx in (
            ("prev", prev, HEX64_RE),
            ("hash", hash_, HEX64_RE),
            ("key", key, HEX32_RE),
        ):
            if type(v) is not str or rx.fullmatch(v) is None:
                raise ValueError(f"{name} {v!r} is not lowercase hex of the right length")
        if not isinstance(sig, str):
            raise ValueError("sig is not a string")
        try:
            raw_sig = b64decode_canonical(sig, "sig")
        except DecodeError as e:
            raise ValueError(e.message) from e
        if len(raw_sig) != SIG_BYTES:
            raise ValueError(f"sig is {len(raw_sig)} bytes, want {SIG_BYTES}")
        if not isinstance(payload_text, str):
            raise ValueError("payload is not JSON text")
        payload = check_canonical_payload(payload_text)  # a JSON object, canonical
        try:
            if type(type_) is str and type_ in CATALOG_TYPE_SET:
                check_payload(type_, payload, "payload")
                if type_ in TIME_FIELDS:
                    problem = stored_time_problem(type_, payload)
                    if problem is not None:
                        raise ValueError(problem)
            elif not is_user_type(type_):  # x.<name> as the writer takes it: any object
                check_type(type_)  # raises: not a user type the writer takes, or unknown
        except LedgerError as e:
            raise ValueError(e.message) from e
        for name in REQUIRED_ENVELOPE.get(type_, ()):
            if (agent if name == "agent" else run) is None:
                raise ValueError(f"{type_} requires {name}")
        return payload, raw_sig

    def _flush(self, finish: bool = False) -> None:
        # (6) signatures: in worker processes when the log is large, else here.
        if self.batch:
            self.signatures.add(self.batch)
            if self.progress is not None:
                self.progress(len(self.batch))
            self.batch = []
        self._bad_signatures(self.signatures.failed(finish=finish))

    def _bad_signatures(self, seqs: list[int]) -> None:
        for seq in seqs:
            self.report.add(
                Problem(
                    seq, "bad_signature", "signature does not verify with the key registered for it"
                )
            )

    def finish(self) -> VerifyReport:
        self._flush(finish=True)
        self.report.root = self.acc.root()
        self.report.origin = self.checker.origin
        self.report.root_key_id = self.checker.root_key_id
        self.report.problems.sort(key=lambda p: p.seq)
        return self.report


# --- sources -------------------------------------------------------------------------------


def _wanted(checkpoint: str | None, origin: str | None, use_state: bool) -> set[int]:
    from ledger.verify.consistency import checkpoint_roots_wanted, remembered_sizes

    sizes = set()
    if checkpoint is not None:
        try:
            sizes.add(checkpoint_roots_wanted(checkpoint))
        except LedgerError:
            pass  # reported as checkpoint_mismatch by check_checkpoint
    if use_state:
        sizes |= remembered_sizes(origin)
    return sizes


def verify_ledger(
    ledger: Store,
    *,
    from_seq: int | None = None,
    trusted: set[str] | None = None,
    checkpoint: str | None = None,
    progress: Callable[[int], None] | None = None,
    use_state: bool = False,
    witnesses: Sequence[WitnessKey] = (),
    quorum: int | None = None,
    now: int | None = None,
) -> VerifyReport:
    """Verify a ledger's events (all, or from ``from_seq`` on) and its stored Merkle tree.

    (1) anchor (``--from``), (2) stream and check every event, (3) compare the stored tree,
    (4) check the checkpoint, and with ``witnesses`` its cosignatures (at least ``quorum`` of
    them, default all; timestamps at most the allowed skew after ``now`` when given),
    (5) check and update the remembered state.
    """
    from ledger.errors import InputError
    from ledger.verify.consistency import check_remembered

    size = ledger.size
    checker = ChainChecker()
    start = 1
    anchor: Anchor | None = None
    # (1) Keys registered before from_seq are read from the log; the tree and the chain start
    #     from the anchor, the only things taken on trust.
    if from_seq is not None and from_seq > 1:
        if from_seq > size:
            raise InputError(f"--from {from_seq}: the log has {size} events")
        _refuse_checkpoint_before(from_seq, checkpoint)
        for r in ledger.iter_rows(to_seq=from_seq - 1, filter=KEY_EVENTS):
            _apply_key_row(checker, r)
        anchor = _read_anchor(ledger, from_seq)
        checker.expected_seq, checker.prev_ts = from_seq, anchor.ts
        checker.prev_hash = anchor.leaves[-1][1].hex()
        start = from_seq
    origin = _origin_or_none(ledger)
    v = Verifier(
        trusted=trusted,
        checker=checker,
        stored_nodes=StoredTree(ledger).get,
        progress=progress,
        want_roots=_wanted(checkpoint, origin, use_state),
        parallel=size - start + 1,
    )
    if anchor is not None:
        v.resume(anchor)
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
        if report.head_seq and ledger.root_at(report.head_seq) != report.root:
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
        _check_checkpoint(report, checkpoint, v.checker, witnesses, quorum, now)
    # (5)
    if use_state:
        check_remembered(report, anchor=None if start == 1 else start - 1)
    report.problems.sort(key=lambda p: p.seq)
    return report


def _refuse_checkpoint_before(from_seq: int, checkpoint: str | None) -> None:
    """``--from K`` recomputes roots from seq K − 1 on only: an older checkpoint is refused
    (exit 2) rather than checked against stored nodes nothing verified."""
    from ledger.errors import InputError
    from ledger.verify.consistency import checkpoint_roots_wanted

    if checkpoint is None:
        return
    try:
        n = checkpoint_roots_wanted(checkpoint)
    except LedgerError:
        return  # reported as checkpoint_mismatch by check_checkpoint
    if n < from_seq - 1:
        raise InputError(
            f"--from {from_seq}: the checkpoint has size {n}, before the anchor at seq "
            f"{from_seq - 1}: its root is not recomputed from the events read; "
            f"use --from {n + 1} or lower, or a full verify"
        )


def _read_anchor(ledger: Store, from_seq: int) -> Anchor:
    """The ``Anchor`` of ``verify --from from_seq`` (from_seq >= 2); ``ChainError`` (exit 1)
    when the log cannot give it: run a full verify."""
    last = from_seq - 1
    step = 1 << merkle.STORED_LEVEL
    base = (last - 1) // step * step
    try:
        nodes = ledger.get_nodes(merkle.range_nodes(0, base))
    except StoreError as e:
        raise ChainError(
            f"--from {from_seq}: the stored tree left of seq {from_seq} is unreadable "
            f"({e.message}), nothing to anchor on: run a full verify"
        ) from e
    stored = {r[0]: r for r in ledger.iter_rows(from_seq=base + 1, to_seq=last)}
    rows = {seq: r[10] for seq, r in stored.items()}
    leaves: list[tuple[int, bytes]] = []
    for seq in range(base + 1, last + 1):
        h = rows.get(seq)
        if h is None:
            raise ChainError(
                f"--from {from_seq}: seq {seq} is missing from the log, nothing to anchor on "
                "(seq_gap): run a full verify"
            )
        if not isinstance(h, str) or not is_hex64(h):
            raise ChainError(
                f"--from {from_seq}: the stored hash of seq {seq} is not lowercase hex of the "
                "right length, nothing to anchor on: run a full verify"
            )
        leaves.append((seq, bytes.fromhex(h)))
    ts = stored[last][2]
    return Anchor(base, [nodes[n] for n in merkle.range_nodes(0, base)], leaves, ts)


def _apply_key_row(checker: ChainChecker, row: Row) -> None:
    """Register or revoke the key of a key event read before the events being checked."""
    try:
        payload = json.loads(row[7])
    except ValueError:
        payload = None  # a key event that does not parse registers nothing
    checker._apply_key_event(seq=row[0], type=row[3], payload=payload, key=row[9])


def _origin_or_none(ledger: Store) -> str | None:
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
    witnesses: Sequence[WitnessKey] = (),
    quorum: int | None = None,
    now: int | None = None,
) -> VerifyReport:
    """Verify an exported JSON Lines file (it must start at seq 1), and the checkpoint with
    its cosignatures as ``verify_ledger`` does."""
    v = Verifier(
        trusted=trusted,
        want_roots=_wanted(checkpoint, None, False),
        parallel=None if parallel else 0,
    )
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
    if v.checker.root_key_id is None:
        # An empty file, or one without its ledger.created, cannot show the pinned root; nor,
        # pinned or not, is it a log that can be verified (whose keys come from seq 1 on).
        if trusted:
            report.add(Problem(1, "untrusted_root", "no root key: the file has no ledger.created"))
        elif report.ok:
            report.add(
                Problem(
                    1,
                    "malformed",
                    f"the file has no ledger.created at seq 1 ({report.events} events): "
                    "not a log that can be verified",
                )
            )
    if checkpoint is not None:
        _check_checkpoint(report, checkpoint, v.checker, witnesses, quorum, now)
    report.problems.sort(key=lambda p: p.seq)
    return report


def _check_checkpoint(
    report: VerifyReport,
    checkpoint: str,
    checker: ChainChecker,
    witnesses: Sequence[WitnessKey],
    quorum: int | None,
    now: int | None,
) -> None:
    """The checkpoint against the log just read: signed by one of its governor keys, and
    cosigned by ``quorum`` of ``witnesses`` when they are given."""
    from ledger.verify.consistency import check_checkpoint

    check_checkpoint(
        report,
        checkpoint,
        _governor_keys(checker),
        witnesses=witnesses,
        quorum=quorum,
        now=now,
    )


def _governor_keys(checker: ChainChecker) -> list[bytes]:
    """The governor public keys registered in the log read so far."""
    return [k.public_key for k in checker.keys.values() if k.role == "governor"]


def verify_events(ledger: Store, rows: list[Row]) -> VerifyReport:
    """Verify some events of a ledger (``rows``, in seq order: one run's, say) with the steps of
    a full ``verify``, each event as that verify would see it at its place in the log.

    (1) the key registry as of each event, read from the log's key events before it (as
    ``verify --from`` does; the key index is not trusted), (2) each event anchored on the last
    stored event before it (its hash for the chain link, its ts for the order; a missing
    predecessor shows as ``seq_gap``), (3) the same per-event check as ``verify``: framing,
    canonical payload, hash, chain link, ts order, key registered, unrevoked and authorized,
    signature. The stored Merkle tree is not compared (``verify`` does that for the whole log).
    """
    checker = ChainChecker()
    v = Verifier(trusted=None, checker=checker)
    if not rows:
        return v.finish()
    seqs = {r[0] for r in rows}
    last = max(s for s in seqs if type(s) is int)
    # (1)
    key_rows = iter(ledger.iter_rows(to_seq=last, filter=KEY_EVENTS))
    pending = next(key_rows, None)
    for row in rows:
        seq = row[0]
        while pending is not None and pending[0] < seq:
            if pending[0] not in seqs:  # an event of ``rows`` is applied by the check itself
                _apply_key_row(checker, pending)
            pending = next(key_rows, None)
        del checker.problems[:]  # problems of events outside ``rows`` are not theirs
        # (2)
        before = ledger.last_before(seq)
        if before is None:
            checker.expected_seq, checker.prev_hash, checker.prev_ts = 1, ZERO_HASH, ""
        else:
            checker.expected_seq, checker.prev_hash, checker.prev_ts = (
                before[0] + 1,
                before[1],
                before[2],
            )
        # (3)
        v.feed(row)
    return v.finish()


def check_events(ledger: Store, rows: list[Row]) -> list[dict[str, Any]]:
    """``verify_events`` as ``runs show`` reports it: ``{"seq", "kind", "detail"}`` dicts, the
    detail naming the seq and kind as verify's first line does."""
    return [{**p.as_dict(), "detail": str(p)} for p in verify_events(ledger, rows).problems]
