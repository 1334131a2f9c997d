"""Checking the stored RFC 9162 tree while events stream by (used by ``ledger.verify``).

``RootAccumulator`` computes the root of a growing leaf sequence in O(log n) memory and reports
every complete subtree as it closes; ``StoredTree`` reads the stored ``merkle_nodes`` level by
level, in index order, so each closed subtree is compared with its stored node in one pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ledger import merkle


class RootAccumulator:
    """RFC 9162 root of a growing leaf sequence in O(log n) memory; reports completed nodes."""

    def __init__(self, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        self.stack: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing
        self.size = 0
        self.on_node = on_node

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
    """Streams the stored Merkle nodes level by level, in index order, for comparison."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.buffers: dict[int, deque[tuple[int, bytes]]] = {}
        self.next_idx: dict[int, int] = {}

    def get(self, level: int, index: int) -> bytes | None:
        buf = self.buffers.setdefault(level, deque())
        while True:
            while buf and buf[0][0] < index:
                buf.popleft()
            if buf:
                return buf[0][1] if buf[0][0] == index else None
            start = self.next_idx.get(level, 0)
            rows = self.conn.execute(
                "SELECT idx, hash FROM merkle_nodes WHERE level = ? AND idx >= ? ORDER BY idx LIMIT 4096",
                (level, max(start, index)),
            ).fetchall()
            if not rows:
                return None
            buf.extend((int(i), bytes(h)) for i, h in rows)
            self.next_idx[level] = int(rows[-1][0]) + 1
