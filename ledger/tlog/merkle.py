"""RFC 9162 Merkle tree hashing, inclusion and consistency proofs over SHA-256.

Three layers, all on bytes (no SQL here, so an offline verifier can reuse them):

1. Hashing and in-memory trees (RFC 9162 §2.1): ``leaf_hash``, ``node_hash``, ``root``,
   ``inclusion_proof``, ``consistency_proof`` over a list of leaf hashes.
2. Verification, as transparency-dev/merkle ``proof/verify.go``:
   ``root_from_inclusion_proof`` computes, ``verify_inclusion`` / ``verify_consistency``
   return ``None`` or raise ``ProofError`` naming what was expected and what was found.
3. The stored tree. A node ``(level, index)`` is the hash of the complete subtree over leaves
   ``[index * 2**level, (index + 1) * 2**level)``; level 0 nodes are the leaf hashes. A store
   keeps every complete node of level >= ``STORED_LEVEL`` (``nodes_for_append`` says which
   ones an append creates) and recomputes a lower one from its leaves (at most 8), so the root
   at any size and any proof need only O(log n) reads:

   - one call per node: ``root_at``, ``inclusion_proof_at``, ``consistency_proof_at`` with a
     ``get_node(level, index) -> bytes`` callback;
   - one query per proof: ``root_plan`` / ``inclusion_plan`` / ``consistency_plan`` return a
     ``ProofPlan`` whose ``node_ids`` the store fetches at once (``WHERE (level, idx) IN ...``,
     level 0 from the leaf table), then ``plan.assemble(nodes)`` builds the hashes.

   Asking for a proof outside the tree (index >= size, size1 > size2) is a caller bug and
   raises ``ValueError``; only verification failures are ``ProofError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ledger.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""``(level, index)``: the complete subtree over leaves [index << level, (index + 1) << level)."""

GetNode = Callable[[int, int], bytes]
"""``get_node(level, index)``: a stored node hash; level 0 is the leaf hash of leaf ``index``."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash of a left-aligned range given its complete subtrees, largest first."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


# --- ranges of complete subtrees ------------------------------------------------------------


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """Split leaves [begin, end) into the fewest complete aligned subtrees, left to right.

    At most 2 log2(end - begin) nodes. For ``begin == 0`` (or ``begin`` aligned to a power of
    two >= ``end - begin``) they come largest first and the range hash is their right fold.
    """
    out: list[NodeId] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        out.append((level, begin >> level))
        begin += 1 << level
    return out


@dataclass(frozen=True)
class ProofPlan:
    """The stored nodes behind a list of hashes (a proof, or a root).

    ``entries[i]`` lists the nodes whose right fold is hash ``i``: one node for an ordinary
    sibling, several for an "ephemeral" node covering a range that is not yet complete.
    """

    entries: tuple[tuple[NodeId, ...], ...]

    @property
    def node_ids(self) -> list[NodeId]:
        """Every node to fetch, once each, in proof order: the argument of one batched read."""
        return list(dict.fromkeys(n for entry in self.entries for n in entry))

    def assemble(self, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
        """The hashes, given ``nodes`` holding (at least) every id of ``node_ids``."""
        return [_fold_right([nodes[n] for n in entry]) for entry in self.entries]

    def fetch(self, get_node: GetNode) -> list[bytes]:
        """``assemble`` with one ``get_node`` call per node."""
        return self.assemble({n: get_node(*n) for n in self.node_ids})


def _path_plan(index: int, level: int, size: int, with_node: bool) -> list[tuple[NodeId, ...]]:
    """Proof for node (level, index) in a tree of ``size`` leaves (transparency-dev proof.go).

    Siblings up to the fork (where the path to the node leaves the path to ``size``), then the
    ephemeral sibling of the fork covering [end, size), then the left siblings above the fork.
    """
    inner = (index ^ (size >> level)).bit_length() - 1
    fork_level, fork_index = level + inner, index >> inner
    begin, end = fork_index << fork_level, (fork_index + 1) << fork_level
    entries: list[tuple[NodeId, ...]] = [((level, index),)] if with_node else []
    entries += [((level + i, (index >> i) ^ 1),) for i in range(inner)]
    if end < size:
        entries.append(tuple(range_nodes(end, size)))
    entries += [(n,) for n in reversed(range_nodes(0, begin))]
    return entries


def root_plan(size: int) -> ProofPlan:
    """Nodes for the root at ``size``; ``assemble`` returns ``[root]`` (``[]`` for size 0)."""
    _check_size(size)
    return ProofPlan((tuple(range_nodes(0, size)),) if size else ())


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """Nodes for the RFC 9162 §2.1.3 inclusion proof of leaf ``index`` in a tree of ``size``."""
    _check_size(size)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    return ProofPlan(tuple(_path_plan(index, 0, size, with_node=False)))


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """Nodes for the RFC 9162 §2.1.4 consistency proof from ``size1`` to ``size2``.

    Empty when the sizes are equal or ``size1`` is 0 (no proof exists or is needed).
    """
    _check_size(size1)
    if size1 > size2:
        raise ValueError(f"size1 {size1} is greater than size2 {size2}")
    if size1 in (0, size2):
        return ProofPlan(())
    # The largest complete subtree ending at size1; the proof is its inclusion path in size2,
    # preceded by the node itself unless it is the whole old tree (size1 a power of two),
    # which the verifier already knows as root1.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    return ProofPlan(tuple(_path_plan(index, level, size2, with_node=index != 0)))


def _check_size(size: int) -> None:
    if size < 0:
        raise ValueError(f"tree size {size} is negative")


# --- stored tree --------------------------------------------------------------------------


def nodes_for_append(
    size: int, new_leaf_hashes: Sequence[bytes], get_node: GetNode
) -> list[tuple[int, int, bytes]]:
    """Every node of level >= 1 that becomes complete when leaves are appended at ``size``.

    ``new_leaf_hashes`` go to positions size, size + 1, ... Returns ``(level, index, hash)``
    in creation order, for the store to insert in the same transaction as the leaves.
    ``get_node`` is asked once for each node of ``range_nodes(0, size)`` (at most
    log2(size) + 1 of them; a store may prefetch those in one query).
    """
    _check_size(size)
    frontier = {n: get_node(*n) for n in range_nodes(0, size)}
    return extend(size, new_leaf_hashes, frontier)[0]


STORED_LEVEL = 4
"""The lowest level a store keeps: a node below it covers at most 8 leaves and is recomputed
from their hashes when read (``subtree_hash``). A batch of 100 appends writes ~6 node rows
instead of ~100."""


def leaves_under(level: int, index: int) -> range:
    """The leaf indexes of node ``(level, index)``."""
    return range(index << level, (index + 1) << level)


def subtree_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The hash of a complete subtree from its leaf hashes (a power of two of them, in
    order)."""
    row = list(leaf_hashes)
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


def stored_key(level: int, index: int) -> tuple[int, int]:
    """The store's key of node ``(level, index)``: ``(closes, level)``, where ``closes`` is
    the tree size at which the node's subtree is complete. Nodes are created in this key's
    order, so a store keyed by it appends them at the end of its index."""
    return (index + 1) << level, level


def stored_rows(nodes: Sequence[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """The ``(level, index, hash)`` nodes a store keeps (level >= ``STORED_LEVEL``), as
    ``merkle_nodes`` rows ``(closes, level, hash)``."""
    return [(*stored_key(level, index), h) for level, index, h in nodes if level >= STORED_LEVEL]


Frontier = dict[NodeId, bytes]
"""The hashes of ``range_nodes(0, size)``: all a writer needs to extend a tree of ``size``."""


def extend(
    size: int, new_leaf_hashes: Sequence[bytes], frontier: Frontier
) -> tuple[list[tuple[int, int, bytes]], Frontier]:
    """Append leaves to the tree of ``size`` whose frontier is ``frontier``: the nodes that
    become complete (as ``nodes_for_append``) and the frontier of the grown tree, so a writer
    that keeps the frontier never reads a node back."""
    known = dict(frontier)
    out: list[tuple[int, int, bytes]] = []
    for position, h in enumerate(new_leaf_hashes, start=size):
        level, index = 0, position
        known[0, index] = h
        while index & 1:  # a right child completes its parent
            h = node_hash(known[level, index - 1], h)
            level, index = level + 1, index >> 1
            known[level, index] = h
            out.append((level, index, h))
    grown = size + len(new_leaf_hashes)
    return out, {n: known[n] for n in range_nodes(0, grown)}


def root_at(size: int, get_node: GetNode) -> bytes:
    """MTH of the first ``size`` leaves from stored nodes (at most log2(size) + 1 reads)."""
    hashes = root_plan(size).fetch(get_node)
    return hashes[0] if hashes else EMPTY_ROOT


def inclusion_proof_at(index: int, size: int, get_node: GetNode) -> list[bytes]:
    """RFC 9162 §2.1.3 inclusion proof from stored nodes (O(log size) reads)."""
    return inclusion_plan(index, size).fetch(get_node)


def consistency_proof_at(size1: int, size2: int, get_node: GetNode) -> list[bytes]:
    """RFC 9162 §2.1.4 consistency proof from stored nodes (O(log size2) reads)."""
    return consistency_plan(size1, size2).fetch(get_node)


# --- in-memory trees ----------------------------------------------------------------------


def _memory_get_node(leaf_hashes: Sequence[bytes]) -> GetNode:
    def get_node(level: int, index: int) -> bytes:
        begin = index << level
        return root(leaf_hashes[begin : begin + (1 << level)])

    return get_node


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH (RFC 9162 §2.1.1) over already-hashed leaves."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level: list[bytes] = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = paired + level[len(paired) * 2 :]  # an odd last node is promoted
    return level[0]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Inclusion proof of leaf ``index`` in the tree over all of ``leaf_hashes``."""
    return inclusion_proof_at(index, len(leaf_hashes), _memory_get_node(leaf_hashes))


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """Consistency proof from the first ``size1`` leaves to all of ``leaf_hashes``."""
    return consistency_proof_at(size1, len(leaf_hashes), _memory_get_node(leaf_hashes))


# --- verification (transparency-dev/merkle proof/verify.go) -------------------------------


def _decomp_inclusion(index: int, size: int) -> tuple[int, int]:
    """Proof length split: (inner, border) for leaf ``index`` in a tree of ``size``."""
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def _verify_match(computed: bytes, expected: bytes, what: str = "root") -> None:
    if computed != expected:
        raise ProofError(f"{what} mismatch: computed {computed.hex()}, expected {expected.hex()}")


def root_from_inclusion_proof(
    *, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root implied by an inclusion proof of ``leaf_hash`` at ``index`` in ``size``."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is beyond size {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash has size {len(leaf_hash)}, want {HASH_SIZE}")
    inner, border = _decomp_inclusion(index, size)
    if len(proof) != inner + border:
        raise ProofError(f"wrong proof size {len(proof)}, want {inner + border}")
    res = _chain_inner(leaf_hash, proof[:inner], index)
    return _chain_border_right(res, proof[inner:])


def verify_inclusion(
    *, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``ProofError`` unless ``proof`` puts ``leaf_hash`` at ``index`` under ``root``."""
    computed = root_from_inclusion_proof(index=index, size=size, leaf_hash=leaf_hash, proof=proof)
    _verify_match(computed, root)


def verify_consistency(
    *, size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows tree ``root1`` (size1) is a prefix of ``root2``.

    Checks in order: size2 >= size1; size1 > 0 (a proof from the empty tree is meaningless,
    before the equal-sizes shortcut); equal sizes need an empty proof and equal roots.
    """
    if size1 < 0 or size2 < size1:
        raise ProofError(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == 0:
        raise ProofError("consistency proof from an empty tree (size1 = 0) is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError(f"wrong proof size {len(proof)}, want 0 (size1 = size2 = {size1})")
        if root1 != root2:
            raise ProofError(f"roots differ at equal size {size1}: {root1.hex()}, {root2.hex()}")
        return

    # (1) The proof is the path of node (size1 - 1) in size2, from the level of the largest
    #     complete subtree ending at size1 ("shift"); its hash is proof[0] unless it is root1.
    inner, border = _decomp_inclusion(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    seed, start = (root1, 0) if size1 == 1 << shift else (proof[0] if proof else b"", 1)
    if len(proof) != start + inner + border:
        raise ProofError(f"wrong proof size {len(proof)}, want {start + inner + border}")
    path = proof[start:]
    mask = (size1 - 1) >> shift
    # (2) Rebuild root1 from the left siblings only.
    hash1 = _chain_border_right(_chain_inner_right(seed, path[:inner], mask), path[inner:])
    _verify_match(hash1, root1, "root1")
    # (3) Rebuild root2 from the whole path.
    hash2 = _chain_border_right(_chain_inner(seed, path[:inner], mask), path[inner:])
    _verify_match(hash2, root2, "root2")
