"""The store interface: what the rest of govledger may ask of a ledger's storage, and nothing else.

Verification, proofs, export, the replay driver, the application layer and the CLI talk to a
store only through these protocols, so they do not know which store they talk to (the SQLite
``ledger.store.sqlite.Ledger`` is one; any other store implements the same methods). No SQL
here, and no import of a store implementation: this module may be imported anywhere.

The parts, each a ``Protocol`` (a store implements them all as ``Store``):

- ``EventReader``: the head, lookups, and events streamed by seq range and ``EventFilter``.
- ``MerkleStore``: the RFC 9162 tree's stored nodes (SPEC §4).
- ``KeyIndex``: the key states the appends maintain (SPEC §2.3, §2.5).
- ``CheckpointStore``: the side table of the checkpoints the ledger signed (not events).
- ``SideTables``: other tables beside the log (the service's tokens).
- ``Appender``: atomic signed appends (SPEC §1.6), and ``write()``, one write transaction in
  which callers read (the read models at the head) and then append, so nothing slips between.
- ``ReadModels``: the read-model tables (SPEC §3), reached with parameterized standard SQL
  (``?`` placeholders) and the projections' table declarations (``TableSpec``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ledger.event.rows import EventRow, Row

if TYPE_CHECKING:  # only named in signatures: importing the interface loads no more than this
    from ledger.crypto.keyfiles import Signer
    from ledger.event.drafts import Draft, Prepared
    from ledger.event.envelope import Event
    from ledger.tlog import merkle

__all__ = [
    "Appender",
    "CheckpointStore",
    "Cursor",
    "EventFilter",
    "EventReader",
    "EventRow",
    "KeyIndex",
    "KeyRow",
    "MerkleStore",
    "ReadModels",
    "Row",
    "SideTables",
    "Store",
    "TableSpec",
    "WriteTransaction",
]

KeyRow = dict[str, Any]
"""A key of the key index: ``name, key_id, role, agent, public_key, registered_seq, revoked_seq``."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a listing wants (``log``, ``export``, verification's key events): every
    condition given must hold. ``since``/``until`` compare ``ts`` text (RFC 3339 UTC sorts)."""

    run: str | None = None
    agent: str | None = None
    types: tuple[str, ...] | None = None
    """Any of these types (None: every type)."""
    since: str | None = None
    until: str | None = None

    def matches(self, row: Sequence[Any]) -> bool:
        """Whether a stored row (``Row`` order) passes: for stores that filter in Python."""
        return (
            (self.run is None or row[5] == self.run)
            and (self.agent is None or row[4] == self.agent)
            and (self.types is None or row[3] in self.types)
            and (self.since is None or row[2] >= self.since)
            and (self.until is None or row[2] <= self.until)
        )


class EventReader(Protocol):
    """Reading the log. ``seq`` ranges are inclusive; ``to_seq`` None means the head."""

    @property
    def path(self) -> str:
        """Where the store is, as messages name it (a file path, a database URL without secrets)."""
        ...

    @property
    def origin(self) -> str:
        """The log's origin, from ``ledger.created`` (``NotALedger`` when unreadable)."""
        ...

    def head(self) -> tuple[int, str]:
        """(size, hash of the last event); (0, 64 zeros) for an empty log."""
        ...

    @property
    def size(self) -> int: ...

    def hash_at(self, seq: int) -> str:
        """The hash of event ``seq`` (64 zeros for 0; ``InputError`` when not in the log)."""
        ...

    def event_at(self, seq: int) -> Event:
        """Event ``seq`` (``InputError`` when not in the log)."""
        ...

    def row_at(self, seq: int) -> Row | None:
        """The stored row of event ``seq`` as it is (not validated), or None."""
        ...

    def last_before(self, seq: int) -> tuple[int, str, str] | None:
        """(seq, hash, ts) of the last stored event before ``seq``, or None."""
        ...

    def seq_at_time(self, ts: str) -> int:
        """The last seq whose ts is at or before ``ts`` (0 when none)."""
        ...

    def find_id(self, event_id: str) -> int | None:
        """The seq of the event with id ``event_id``, or None."""
        ...

    def iter_rows(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        filter: EventFilter | None = None,
    ) -> Iterator[Row]:
        """Stored rows in seq order, streamed in constant memory; text that is not UTF-8 (a
        tampered store) comes with lone surrogates so verification reports it."""
        ...

    def iter_events(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        filter: EventFilter | None = None,
    ) -> Iterator[Event]:
        """``iter_rows`` as ``Event`` (payload parsed)."""
        ...

    def count_events(
        self, *, from_seq: int = 1, to_seq: int | None = None, filter: EventFilter | None = None
    ) -> int:
        """How many events ``iter_events`` yields with the same range and filter."""
        ...

    def replay_events(self, *, from_seq: int = 1, to_seq: int | None = None) -> Iterator[EventRow]:
        """Events in seq order as ``EventRow``: the replay driver's read path."""
        ...


class MerkleStore(Protocol):
    """The stored RFC 9162 tree: level 0 is the event hashes (leaf ``i`` is seq ``i + 1``)."""

    def get_nodes(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        """Every node of ``ids`` (``StoreError`` naming the first missing or malformed one)."""
        ...

    def stored_nodes_from(self, key: tuple[int, int], limit: int) -> list[tuple[int, int, Any]]:
        """Up to ``limit`` stored nodes as ``(closes, level, hash)`` with ``(closes, level)``
        at or after ``key``, in that order (``merkle.stored_key``); the hash as stored, even
        when a tampered store holds something else than 32 bytes (verification reports it)."""
        ...

    def root_at(self, size: int) -> bytes:
        """MTH of the first ``size`` events."""
        ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...


class KeyIndex(Protocol):
    """The key states the appends keep (verification never trusts them: it reads the log)."""

    def keys(self) -> list[KeyRow]:
        """Every key registered in the log, oldest first."""
        ...

    def key_by_name(self, name: str) -> KeyRow | None:
        """The newest key registered under ``name`` (unrevoked ones first)."""
        ...

    def require_governor(self, signer: Signer, what: str) -> None:
        """``UnauthorizedWrite`` (exit 2) unless ``signer`` is a registered, unrevoked governor."""
        ...


class CheckpointStore(Protocol):
    """The checkpoints the ledger signed (SPEC §4), kept beside the log, not in it."""

    def put_checkpoint(self, *, size: int, signer: str, root: str, note: str, created: str) -> None:
        """Keep a signed checkpoint (replacing one of the same size and signer), durably."""
        ...

    def latest_checkpoint(self, min_size: int = 0, max_size: int | None = None) -> str | None:
        """The note of the newest kept checkpoint of size at least ``min_size`` (and at most
        ``max_size``, when given), or None."""
        ...


class SideTables(Protocol):
    """Tables beside the log that are not events (the service's bearer tokens): the log's
    guarantees do not rest on them."""

    def ensure_side_table(self, name: str, columns: str) -> None:
        """Create the table ``name`` with ``columns`` (standard SQL column definitions) when
        it is missing; rows are then read and written through the store's connection (``?``
        placeholders). Where the store has an application role, that role may read the table
        and not write it; creating it takes the ledger's owner."""
        ...


class WriteTransaction(Protocol):
    """The open write transaction of ``Appender.write()``: appends made here commit together
    with everything else done in it, or not at all."""

    def append(
        self,
        drafts: Sequence[Draft | Prepared],
        *,
        signer: Signer,
        progress: Callable[[int], None] | None = None,
    ) -> list[Event]:
        """Append after the head as it is inside this transaction (see ``append_many``)."""
        ...


class Appender(Protocol):
    """The only way events enter a log (SPEC §1.6, §2.1: seq, prev, ts, hash, sig are the store's)."""

    def append(self, draft: Draft, *, signer: Signer) -> Event:
        """Append one event signed by ``signer``; durable when this returns."""
        ...

    def append_many(
        self,
        drafts: Iterable[Draft],
        *,
        signer: Signer,
        progress: Callable[[int], None] | None = None,
    ) -> list[Event]:
        """Append a batch atomically: all events or none. ``progress`` gets the count appended."""
        ...

    def write(self) -> AbstractContextManager[WriteTransaction]:
        """``with store.write() as tx:`` one write transaction: no other writer appends until
        it ends; it commits on success and rolls back on error. Reads made in it (the read
        models caught up to the head) see the head that ``tx.append`` appends after."""
        ...


class Cursor(Protocol):
    """The rows of one read-model query."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class TableSpec(Protocol):
    """A read-model table's declaration (``projections.projection.Table`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def columns(self) -> tuple[tuple[str, type], ...]:
        """``(column, int | str)`` in table order; every column may be NULL except the key."""
        ...

    @property
    def pk(self) -> tuple[str, ...]: ...

    @property
    def indexes(self) -> tuple[tuple[str, ...], ...]: ...


class ReadModels(Protocol):
    """The read-model tables: queries in standard SQL with ``?`` placeholders (a store
    translates them), rows written through the table declarations."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one parameterized statement (a SELECT, in practice); its rows."""
        ...

    def exists(self, table: str) -> bool:
        """Whether the table ``table`` exists."""
        ...

    def columns(self, table: str) -> tuple[str, ...]:
        """The columns of the stored table ``table``, in table order (empty when missing)."""
        ...

    def create(self, table: TableSpec) -> None:
        """Create ``table`` and its indexes, empty (dropping any table of that name first)."""
        ...

    def drop(self, table: str) -> None:
        """Drop the table ``table`` if it exists."""
        ...

    def insert(
        self, table: TableSpec, rows: Iterable[Sequence[Any]], *, replace: bool = False
    ) -> None:
        """Insert ``rows`` (values in the table's column order); with ``replace``, a row whose
        primary key is already stored replaces it (an upsert)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """One transaction of read-model writes (nested inside the caller's open write
        transaction, if any): all or nothing. ``DatabaseLocked``/``StoreError`` on failure."""
        ...


class Store(EventReader, MerkleStore, KeyIndex, CheckpointStore, SideTables, Appender, Protocol):
    """A ledger's storage: the log, its tree, key index, checkpoints and read models."""

    def read_models(self) -> ReadModels:
        """The stored read-model tables, in the same database as the log (so ``write()``
        covers both)."""
        ...

    def scratch_read_models(self) -> AbstractContextManager[ReadModels]:
        """Empty read-model tables to fold into, discarded on exit (time travel, checks);
        they may live in another database than the store's (a temporary SQLite file)."""
        ...

    def close(self) -> None:
        """Release the store's connections; later use raises ``StoreError``."""
        ...
