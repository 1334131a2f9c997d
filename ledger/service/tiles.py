"""C2SP tlog-tiles (``c2sp.org/tlog-tiles``) of a stored ledger: hash tiles and entry bundles.

A tile is 256 wide. The level ``L`` tile ``N`` holds the hashes (32 bytes each, concatenated)
of the tree nodes at height ``8 * L`` with indexes ``N * 256`` … ``N * 256 + W - 1``; a partial
tile (``W`` < 256) is served at ``<N>.p/<W>``. The entry bundle ``N`` holds the entries of the
leaves of level 0 tile ``N``, each as a big-endian uint16 length and its bytes; an entry is the
event's canonical body C, so its RFC 9162 leaf hash is the event's ``hash``. ``N`` is written
in groups of three digits, all but the last prefixed with ``x`` (1234067 → ``x001/x234/067``).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import InputError
from ledger.event.body import body_bytes
from ledger.store.sqlite import Ledger

WIDTH = 256
HEIGHT = 8
"""A tile spans 8 levels of the tree: 2^8 = 256 nodes wide."""
MAX_ENTRY_BYTES = 65_535


@dataclass(frozen=True, slots=True)
class TileId:
    """A tile: ``level`` (None: an entry bundle), index ``n`` and width ``w`` (1–256)."""

    level: int | None
    n: int
    w: int = WIDTH

    @property
    def path(self) -> str:
        """The tile's path below the log's prefix, e.g. ``tile/0/x001/234.p/7``."""
        kind = "entries" if self.level is None else str(self.level)
        tail = "" if self.w == WIDTH else f".p/{self.w}"
        return f"tile/{kind}/{encode_index(self.n)}{tail}"


def encode_index(n: int) -> str:
    """``n`` in groups of three digits, all but the last prefixed with ``x``."""
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


_PATH = re.compile(r"tile/(entries|\d{1,2})/((?:x\d{3}/)*\d{3})(?:\.p/(\d{1,3}))?")


def parse_path(path: str) -> TileId:
    """The tile at ``path`` (``tile/…``); ``InputError`` for anything else."""
    m = _PATH.fullmatch(path)
    if m is None:
        raise InputError(f"{path}: not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>…)")
    kind, index, width = m.groups()
    w = WIDTH if width is None else int(width)
    if width is not None and not (1 <= w < WIDTH and width == str(w)):
        raise InputError(f"{path}: partial width {width}: expected 1 to 255 without leading zeros")
    parts = index.split("/")
    if len(parts) > 1 and parts[0] == "x000":
        raise InputError(f"{path}: tile index has a leading zero group")
    level = None if kind == "entries" else int(kind)
    if level is not None and str(level) != kind:
        raise InputError(f"{path}: level {kind} has a leading zero")
    return TileId(level, int(index.replace("x", "").replace("/", "")), w)


def _nodes_at(size: int, level: int) -> int:
    """How many complete nodes the tree of ``size`` has at tile level ``level``."""
    return size >> (HEIGHT * level)


def available(tile: TileId, size: int) -> bool:
    """Whether the tree of ``size`` has every node (or entry) of ``tile``."""
    return (tile.n * WIDTH + tile.w) <= _nodes_at(size, tile.level or 0)


def tile_bytes(ledger: Ledger, tile: TileId, size: int) -> bytes:
    """The content of ``tile`` for a log of ``size`` (``InputError`` when not there yet)."""
    if not available(tile, size):
        raise InputError(f"{tile.path}: not in the tree of size {size}")
    first = tile.n * WIDTH
    if tile.level is None:
        out = bytearray()
        for body in event_bodies(ledger, first + 1, first + tile.w):
            out += struct.pack(">H", len(body)) + body
        return bytes(out)
    height = HEIGHT * tile.level
    ids = [(height, i) for i in range(first, first + tile.w)]
    nodes = ledger.get_nodes(ids)
    return b"".join(nodes[i] for i in ids)


def tiles_for(size: int) -> Iterator[TileId]:
    """Every tile a client of a checkpoint at ``size`` may ask for: the full tiles and the
    one partial tile of each level, and the entry bundles."""
    level = 0
    while count := _nodes_at(size, level):
        for n in range(count // WIDTH):
            yield TileId(level, n)
            if level == 0:
                yield TileId(None, n)
        if count % WIDTH:
            yield TileId(level, count // WIDTH, count % WIDTH)
            if level == 0:
                yield TileId(None, count // WIDTH, count % WIDTH)
        level += 1


def write_tiles(ledger: Ledger, directory: str | Path, *, checkpoint: str, size: int) -> int:
    """Write the checkpoint and every tile of the tree of ``size`` under ``directory`` (each
    file written beside its place and renamed into it); return the number of tiles."""
    root = Path(directory)
    count = 0
    for tile in tiles_for(size):
        _write(root / tile.path, tile_bytes(ledger, tile, size))
        count += 1
    _write(root / "checkpoint", checkpoint.encode("utf-8"))
    return count


def event_bodies(ledger: Ledger, first: int, last: int) -> Iterator[bytes]:
    """The canonical bodies C of events ``first`` … ``last`` in seq order (one query)."""
    rows = ledger.conn.execute(
        "SELECT seq, id, ts, type, agent, run, actor, payload, prev, key FROM events "
        "WHERE seq BETWEEN ? AND ? ORDER BY seq",
        (first, last),
    ).fetchall()
    if len(rows) != last - first + 1:
        raise InputError(f"events {first}-{last}: only {len(rows)} in the log")
    for e in rows:
        yield body_bytes(
            seq=e[0],
            id=e[1],
            ts=e[2],
            type=e[3],
            agent=e[4],
            run=e[5],
            actor=e[6],
            payload=e[7],
            prev=e[8],
            key=e[9],
        )


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"{path}: cannot write ({e.strerror})") from e
