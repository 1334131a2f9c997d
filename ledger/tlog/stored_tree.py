"""Checking the stored RFC 9162 tree while events stream by (used by ``ledger.verify.verifier``).

``RootAccumulator`` computes the root of a growing leaf sequence in O(log n) memory and reports
every complete subtree as it closes; ``StoredTree`` reads the stored ``merkle_nodes`` in the order
they close, so each closed subtree is compared with its stored node in one pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ledger.tlog import merkle


class NodeSource(Protocol):
    """Where ``StoredTree`` reads the stored nodes (``ledger.store.base.MerkleStore`` is one)."""

    def stored_nodes_from(self, key: tuple[int, int], limit: int) -> list[tuple[int, int, Any]]:
        """Up to ``limit`` stored ``(closes, level, hash)`` at or after ``key``, in key order
        (``StoreError`` when the store cannot be read)."""
        ...


class RootAccumulator:
    """RFC 9162 root of a growing leaf sequence in O(log n) memory; reports completed nodes."""

    def __init__(self, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        self.stack: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing
        self.size = 0
        self.on_node = on_node

    @classmethod
    def resume(
        cls,
        size: int,
        frontier: Sequence[bytes],
        on_node: Callable[[int, int, bytes], None] | None = None,
    ) -> RootAccumulator:
        """Continue the tree of ``size`` leaves whose ``merkle.range_nodes(0, size)`` have the
        hashes ``frontier`` (largest first): all the accumulator keeps of the leaves before."""
        nodes = merkle.range_nodes(0, size)
        if len(frontier) != len(nodes):
            raise ValueError(
                f"a tree of size {size} has {len(nodes)} frontier nodes, not {len(frontier)}"
            )
        acc = cls(on_node)
        acc.stack = [(level, h) for (level, _), h in zip(nodes, frontier, strict=True)]
        acc.size = size
        return acc

    def add(self, leaf: bytes) -> None:
        level, h, index = 0, leaf, self.size
        while self.stack and self.stack[-1][0] == level:
            left = self.stack.pop()[1]
            h = merkle.node_hash(left, h)
            level += 1
            index >>= 1
            if self.on_node is not None:
                self.on_node(level, index, h)
        self.stack.append((level, h))
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return merkle.EMPTY_ROOT
        acc = self.stack[-1][1]
        for _, h in reversed(self.stack[:-1]):
            acc = merkle.node_hash(h, acc)
        return acc


class StoredTree:
    """Streams the stored Merkle nodes in key order ``(closes, level)``, which is the order in
    which ``RootAccumulator`` reports them, so each closed subtree is compared with its stored
    node in one pass over the table."""

    def __init__(self, source: NodeSource) -> None:
        self.source = source
        self.buffer: deque[tuple[tuple[int, int], bytes]] = deque()

    def get(self, level: int, index: int) -> bytes | None:
        """The stored hash of node ``(level, index)``, or None when it is missing; calls come
        in the order the nodes close."""
        key = merkle.stored_key(level, index)
        buf = self.buffer
        while True:
            while buf and buf[0][0] < key:
                buf.popleft()
            if buf:
                return buf[0][1] if buf[0][0] == key else None
            rows = self.source.stored_nodes_from(key, 4096)
            if not rows:
                return None
            buf.extend(((int(c), int(lv)), _stored_bytes(h)) for c, lv, h in rows)


def _stored_bytes(value: Any) -> bytes:
    """A stored node hash as bytes; a tampered store's text or number keeps its text's bytes,
    so it compares unequal and is reported, never read as a hash."""
    return bytes(value) if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
