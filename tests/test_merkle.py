"""RFC 9162 Merkle tree: known answers, agreement with the reference, the stored-tree algorithms."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ProofError
from ledger.tlog import merkle
from tests import merkle_reference as ref

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
RFC9162 = VECTORS / "rfc9162"


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(b"leaf %d" % i) for i in range(n)]


class DictStore:
    """The stored tree as a store keeps it: leaf hashes plus every complete node of level >= 1."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.calls: list[tuple[int, int]] = []

    def get_node(self, level: int, index: int) -> bytes:
        self.calls.append((level, index))
        return self.leaves[index] if level == 0 else self.nodes[level, index]

    def append(self, batch: Sequence[bytes]) -> None:
        new = merkle.nodes_for_append(len(self.leaves), batch, self.get_node)
        for level, index, h in new:
            assert (level, index) not in self.nodes
            self.nodes[level, index] = h
        self.leaves.extend(batch)


MAX = 2048
LEAVES = _leaves(MAX)


@pytest.fixture(scope="module")
def store() -> DictStore:
    s = DictStore()
    for i in range(0, MAX, 37):
        s.append(LEAVES[i : i + 37])
    return s


# --- known answers --------------------------------------------------------------------------


def _b64(s: str) -> bytes:
    return base64.b64decode(s)


def _check_inclusion(v: dict[str, Any]) -> None:
    merkle.verify_inclusion(
        index=v["leafIdx"],
        size=v["treeSize"],
        leaf_hash=_b64(v["leafHash"]),
        proof=[_b64(p) for p in v["proof"] or []],
        root=_b64(v["root"]),
    )


def _check_consistency(v: dict[str, Any]) -> None:
    merkle.verify_consistency(
        size1=v["size1"],
        size2=v["size2"],
        proof=[_b64(p) for p in v["proof"] or []],
        root1=_b64(v["root1"]),
        root2=_b64(v["root2"]),
    )


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "inclusion": _check_inclusion,
    "consistency": _check_consistency,
}


@pytest.mark.skipif(not RFC9162.is_dir(), reason=f"{RFC9162} absent (../shared/vectors)")
@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_verifier_agrees_with_every_rfc9162_vector(kind: str) -> None:
    files = sorted((RFC9162 / kind).rglob("*.json"))
    assert len(files) > 50
    mismatches = []
    for f in files:
        v = json.loads(f.read_text())
        try:
            CHECKS[kind](v)
            err: str | None = None
        except ProofError as e:
            err = str(e)
        if (err is not None) != v["wantErr"]:
            mismatches.append(
                f"{f.relative_to(RFC9162)} ({v['desc']}): wantErr={v['wantErr']}, got {err}"
            )
    assert mismatches == []


# --- agreement with the reference -----------------------------------------------------------


def test_root_agrees_with_reference_at_every_size(store: DictStore) -> None:
    assert merkle.root([]) == merkle.EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert merkle.root_at(0, store.get_node) == merkle.EMPTY_ROOT
    for n in range(1, 201):
        want = ref.mth(LEAVES[:n])
        assert merkle.root(LEAVES[:n]) == want, n
        assert merkle.root_at(n, store.get_node) == want, n


SIZES = [*range(1, 65), 100, 127, 128, 129, 200]


@pytest.mark.parametrize("n", SIZES)
def test_inclusion_proofs_agree_with_reference_and_verify(store: DictStore, n: int) -> None:
    root = ref.mth(LEAVES[:n])
    for m in range(n):
        want = ref.path(m, LEAVES[:n])
        assert merkle.inclusion_proof_at(m, n, store.get_node) == want, m
        assert merkle.inclusion_proof(LEAVES[:n], m) == want, m
        merkle.verify_inclusion(index=m, size=n, leaf_hash=LEAVES[m], proof=want, root=root)


def test_consistency_proofs_agree_with_reference_for_all_pairs_up_to_64(store: DictStore) -> None:
    for n in range(1, 65):
        root2 = ref.mth(LEAVES[:n])
        for m in range(1, n + 1):
            want = ref.proof(m, LEAVES[:n]) if m < n else []
            assert merkle.consistency_proof_at(m, n, store.get_node) == want, (m, n)
            assert merkle.consistency_proof(LEAVES[:n], m) == want, (m, n)
            merkle.verify_consistency(
                size1=m, size2=n, proof=want, root1=ref.mth(LEAVES[:m]), root2=root2
            )


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_stored_tree_agrees_with_reference_at_random_sizes(
    store: DictStore, data: st.DataObject
) -> None:
    n = data.draw(st.integers(1, MAX), label="size")
    m = data.draw(st.integers(0, n - 1), label="index")
    k = data.draw(st.integers(1, n), label="size1")
    assert merkle.root_at(n, store.get_node) == ref.mth(LEAVES[:n])
    assert merkle.inclusion_proof_at(m, n, store.get_node) == ref.path(m, LEAVES[:n])
    want = ref.proof(k, LEAVES[:n]) if k < n else []
    assert merkle.consistency_proof_at(k, n, store.get_node) == want


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_stored_reads_are_logarithmic_and_match_the_plan(
    store: DictStore, data: st.DataObject
) -> None:
    n = data.draw(st.integers(1, MAX), label="size")
    m = data.draw(st.integers(0, n - 1), label="index")
    k = data.draw(st.integers(1, n), label="size1")
    bound = 2 * n.bit_length() + 1
    cases: list[tuple[merkle.ProofPlan, Callable[[], list[bytes]]]] = [
        (merkle.root_plan(n), lambda: [merkle.root_at(n, store.get_node)]),
        (merkle.inclusion_plan(m, n), lambda: merkle.inclusion_proof_at(m, n, store.get_node)),
        (merkle.consistency_plan(k, n), lambda: merkle.consistency_proof_at(k, n, store.get_node)),
    ]
    for plan, compute in cases:
        store.calls.clear()
        hashes = compute()
        assert len(store.calls) <= bound
        # the same reads as one batched read of node_ids
        assert store.calls == plan.node_ids
        nodes = {nid: store.get_node(*nid) for nid in plan.node_ids}
        assert plan.assemble(nodes) == hashes


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 70), max_size=12))
def test_batched_appends_store_the_same_nodes_as_single_appends(batches: list[int]) -> None:
    total = sum(batches)
    one = DictStore()
    for h in LEAVES[:total]:
        one.append([h])
    many = DictStore()
    for b in batches:
        size = len(many.leaves)
        many.calls.clear()
        many.append(LEAVES[size : size + b])
        # only nodes of the tree before the append are read, each once
        assert len(set(many.calls)) == len(many.calls)
        assert set(many.calls) <= set(merkle.range_nodes(0, size))
    assert many.nodes == one.nodes
    assert many.leaves == LEAVES[:total]
    # every complete subtree of level >= 1 is stored, and nothing else
    want = {(lv, i) for lv in range(1, 12) for i in range(total >> lv)}
    assert set(one.nodes) == want


@given(st.integers(0, 5000), st.integers(0, 5000))
def test_range_nodes_cover_the_range_with_aligned_subtrees(a: int, b: int) -> None:
    begin, end = min(a, b), max(a, b)
    nodes = merkle.range_nodes(begin, end)
    pos = begin
    for level, index in nodes:
        assert index << level == pos
        pos += 1 << level
    assert pos == end
    assert len(nodes) <= 2 * max(1, (end - begin).bit_length())


# --- tampering ------------------------------------------------------------------------------


def _flip(b: bytes, bit: int) -> bytes:
    return bytes(x ^ (1 << (bit % 8)) if i == bit // 8 else x for i, x in enumerate(b))


@settings(max_examples=200)
@given(st.data())
def test_any_flipped_bit_fails_inclusion(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 300), label="size")
    m = data.draw(st.integers(0, n - 1), label="index")
    proof = merkle.inclusion_proof(LEAVES[:n], m)
    root = merkle.root(LEAVES[:n])
    args: dict[str, Any] = {
        "index": m,
        "size": n,
        "leaf_hash": LEAVES[m],
        "proof": proof,
        "root": root,
    }
    target = data.draw(st.sampled_from(["leaf_hash", "root", *range(len(proof))]), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    if isinstance(target, int):
        args["proof"] = [_flip(p, bit) if i == target else p for i, p in enumerate(proof)]
    else:
        args[target] = _flip(args[target], bit)
    with pytest.raises(ProofError, match=r"^root mismatch: computed [0-9a-f]{64}, expected "):
        merkle.verify_inclusion(**args)


@settings(max_examples=200)
@given(st.data())
def test_any_flipped_bit_fails_consistency(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 300), label="size2")
    m = data.draw(st.integers(1, n - 1), label="size1")
    proof = merkle.consistency_proof(LEAVES[:n], m)
    args: dict[str, Any] = {
        "size1": m,
        "size2": n,
        "proof": proof,
        "root1": merkle.root(LEAVES[:m]),
        "root2": merkle.root(LEAVES[:n]),
    }
    target = data.draw(st.sampled_from(["root1", "root2", *range(len(proof))]), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    if isinstance(target, int):
        args["proof"] = [_flip(p, bit) if i == target else p for i, p in enumerate(proof)]
    else:
        args[target] = _flip(args[target], bit)
    with pytest.raises(ProofError, match=r"^root[12] mismatch: computed [0-9a-f]{64}, expected "):
        merkle.verify_consistency(**args)


# --- messages -------------------------------------------------------------------------------

H = [merkle.leaf_hash(bytes([i])) for i in range(4)]
R4 = merkle.root(H)
R2 = merkle.root(H[:2])
R3 = merkle.root(H[:3])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index": 4, "size": 4}, "index 4 is beyond size 4"),
        ({"index": -1, "size": 4}, "index -1 is beyond size 4"),
        ({"leaf_hash": H[0][:31]}, "leaf hash has size 31, want 32"),
        ({"proof": [H[1]]}, "wrong proof size 1, want 2"),
        ({"root": R2}, f"root mismatch: computed {R4.hex()}, expected {R2.hex()}"),
    ],
    ids=["index-beyond", "negative-index", "short-leaf", "short-proof", "wrong-root"],
)
def test_inclusion_messages(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "index": 0,
        "size": 4,
        "leaf_hash": H[0],
        "proof": merkle.inclusion_proof(H, 0),
        "root": R4,
    }
    args.update(kwargs)
    with pytest.raises(ProofError) as e:
        merkle.verify_inclusion(**args)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size1": 3, "size2": 2}, "size2 2 is smaller than size1 3"),
        (
            {"size1": 0, "size2": 0, "proof": []},
            "consistency proof from an empty tree (size1 = 0) is meaningless",
        ),
        ({"size1": 4, "size2": 4}, "wrong proof size 3, want 0 (size1 = size2 = 4)"),
        (
            {"size1": 4, "size2": 4, "proof": []},
            f"roots differ at equal size 4: {R3.hex()}, {R4.hex()}",
        ),
        ({"proof": []}, "wrong proof size 0, want 3"),
        ({"proof": [H[0], H[1], H[2], H[3]]}, "wrong proof size 4, want 3"),
        ({"root1": R4}, f"root1 mismatch: computed {R3.hex()}, expected {R4.hex()}"),
        ({"root2": R2}, f"root2 mismatch: computed {R4.hex()}, expected {R2.hex()}"),
    ],
    ids=[
        "shrinking",
        "from-empty",
        "equal-nonempty-proof",
        "equal-sizes-roots-differ",
        "empty-proof",
        "long-proof",
        "wrong-root1",
        "wrong-root2",
    ],
)
def test_consistency_messages(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "size1": 3,
        "size2": 4,
        "proof": merkle.consistency_proof(H, 3),
        "root1": R3,
        "root2": R4,
    }
    args.update(kwargs)
    with pytest.raises(ProofError) as e:
        merkle.verify_consistency(**args)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: merkle.inclusion_plan(3, 3), "leaf index 3 out of range for tree size 3"),
        (lambda: merkle.consistency_plan(5, 4), "size1 5 is greater than size2 4"),
        (lambda: merkle.root_plan(-1), "tree size -1 is negative"),
    ],
    ids=["index", "sizes", "negative"],
)
def test_proof_requests_out_of_range_are_caller_errors(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call()


def test_small_proofs_need_no_nodes() -> None:
    assert merkle.root_plan(0).node_ids == []
    assert merkle.consistency_plan(0, 5).entries == ()
    assert merkle.consistency_plan(5, 5).entries == ()
    assert merkle.inclusion_plan(0, 1).entries == ()
    assert merkle.inclusion_plan(6, 7).entries == (((1, 2),), ((2, 0),))
