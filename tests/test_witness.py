"""Witness cosignatures (C2SP tlog-cosignature, Ed25519 cosignature/v1): known answers, an
independent producer built from the spec with raw ``cryptography``, the quorum rules, every
error message, and a witness's add-checkpoint checks and state."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import (
    CheckpointError,
    InputError,
    NoteSignatureError,
    OldSizeMismatch,
    ProofError,
    StateError,
    UnknownLog,
)
from ledger.tlog import merkle
from ledger.tlog.cosignatures import (
    WitnessKey,
    check_cosignatures,
    cosign_checkpoint,
    cosigned_message,
    format_witness_vkey,
    parse_witness_vkey,
    verify_cosignatures,
    witness_key_id,
    witness_set,
)
from ledger.tlog.notes import (
    WitnessRequest,
    format_vkey,
    format_witness_request,
    parse_checkpoint,
    parse_vkey,
    parse_witness_request,
    sign_checkpoint,
    sign_note,
    split_note,
    verify_checkpoint,
)
from ledger.tlog.witness import (
    WitnessState,
    add_checkpoint,
    read_submission,
    witness_checkpoint,
)
from tests.messages import case as _msg
from tests.messages import check

C2SP = Path(__file__).resolve().parent / "vectors" / "c2sp"
T = 1_700_000_000
TYPE_04 = bytes([4])


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _pub(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


LOG_KEY, W1_KEY, W2_KEY, W3_KEY, OTHER_KEY = (_key(i) for i in (1, 2, 3, 4, 9))
ORIGIN = "example.com/govledger"
LOG = parse_vkey(format_vkey(name=ORIGIN, public_key=_pub(LOG_KEY)))
W1, W2, W3 = (
    parse_witness_vkey(format_witness_vkey(name=f"w{i}.example/w", public_key=_pub(k)))
    for i, k in ((1, W1_KEY), (2, W2_KEY), (3, W3_KEY))
)
KEYS = {W1: W1_KEY, W2: W2_KEY, W3: W3_KEY}

LEAVES = [merkle.leaf_hash(b"entry %d" % i) for i in range(20)]


def _note(
    size: int = 8,
    key: Ed25519PrivateKey = LOG_KEY,
    origin: str = ORIGIN,
    extensions: Sequence[str] = (),
) -> str:
    """The checkpoint of the first ``size`` of ``LEAVES``, signed by the log's key."""
    return sign_checkpoint(
        origin=origin,
        size=size,
        root=merkle.root(LEAVES[:size]),
        private_key=key,
        extensions=extensions,
    )


NOTE = _note(8)
CP = verify_checkpoint(NOTE, LOG)


def _cosign(w: WitnessKey, timestamp: int = T, note: str = NOTE) -> str:
    cp = parse_checkpoint(split_note(note)[0])
    return cosign_checkpoint(cp, name=w.name, private_key=KEYS[w], timestamp=timestamp)


def _line(name: str, sig: bytes) -> str:
    return f"\u2014 {name} {_b64(sig)}\n"


def _spec_line(
    name: str, key: Ed25519PrivateKey, body: str, timestamp: int, *, key_id: bytes | None = None
) -> str:
    """A cosignature line built from the tlog-cosignature text alone, with raw cryptography."""
    kid = key_id or hashlib.sha256(name.encode() + b"\n\x04" + _pub(key)).digest()[:4]
    message = b"cosignature/v1\n" + b"time %d\n" % timestamp + body.encode()
    return _line(name, kid + timestamp.to_bytes(8, "big") + key.sign(message))


# --- known answers --------------------------------------------------------------------------

SPEC = (C2SP / "tlog-cosignature.md").read_text(encoding="utf-8")


def _spec_example_note() -> str:
    return SPEC.split("```\n", 2)[1]


def test_the_spec_example_cosignature_line_is_a_timestamped_ed25519_cosignature() -> None:
    # The spec gives no public key for witness.example.com/w1: what can be checked is the
    # framing, and that its timestamp is the one of the spec's signed-message example.
    text, sigs = split_note(_spec_example_note())
    name, sig = sigs[1]
    assert name == "witness.example.com/w1"
    assert len(sig) == 76
    assert sig[:4].hex() == "8d66cf3f"
    assert struct.unpack(">Q", sig[4:12])[0] == 1679315147
    assert parse_checkpoint(text).size == 20852163


def test_signed_message_is_the_spec_example() -> None:
    block = SPEC.split("followed by the whole note body", 1)[1].split("\n\n    ", 1)[1]
    example = "".join(
        line.removeprefix("    ") + "\n" for line in block.split("\n\n")[0].split("\n")
    )
    body = split_note(_spec_example_note())[0]
    assert example.startswith("cosignature/v1\ntime 1679315147\n")
    assert cosigned_message(body=body, timestamp=1679315147) == example.encode()


def test_key_id_of_a_published_witness_vkey() -> None:
    # A public Ed25519 cosignature/v1 witness key (type 0x04), key id computed by its operator.
    vkey = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    w = parse_witness_vkey(vkey)
    assert (w.name, w.key_id.hex()) == ("remora.n621.de", "da77ade7")
    assert format_witness_vkey(name=w.name, public_key=w.public_key) == vkey


def test_an_unknown_witness_in_the_spec_example_is_ignored() -> None:
    # A configured witness of the same name but another key: the example's line is not its.
    same_name = parse_witness_vkey(
        format_witness_vkey(name="witness.example.com/w1", public_key=_pub(W1_KEY))
    )
    (result,) = check_cosignatures(_spec_example_note(), [same_name])
    assert (result.timestamp, result.problem) == (None, None)
    assert [k.hex() for k in result.other_key_ids] == ["8d66cf3f"]


# --- the independent producer ---------------------------------------------------------------


@pytest.mark.parametrize("extensions", [(), ("ext one", "ext two")], ids=["plain", "extensions"])
def test_cosign_is_the_line_the_spec_describes(extensions: tuple[str, ...]) -> None:
    note = sign_checkpoint(
        origin=ORIGIN,
        size=3,
        root=merkle.root(LEAVES[:3]),
        private_key=LOG_KEY,
        extensions=extensions,
    )
    body = split_note(note)[0]
    line = _cosign(W1, 1679315147, note)
    assert line == _spec_line(W1.name, W1_KEY, body, 1679315147)  # Ed25519 is deterministic
    sig = base64.b64decode(line.split(" ")[-1])
    message = b"cosignature/v1\ntime 1679315147\n" + body.encode()
    W1_KEY.public_key().verify(sig[12:], message)  # raises if not


def test_a_cosignature_built_from_the_spec_verifies() -> None:
    cosigned = NOTE + _spec_line(W1.name, W1_KEY, CP.text, T)
    report = verify_cosignatures(cosigned, [W1])
    assert [(w.witness, w.timestamp) for w in report.cosigned] == [(W1, T)]


def test_vkey_layout_and_key_id() -> None:
    vkey = format_witness_vkey(name="w.example", public_key=_pub(W1_KEY))
    kid = hashlib.sha256(b"w.example\n\x04" + _pub(W1_KEY)).digest()[:4]
    assert vkey == f"w.example+{kid.hex()}+{_b64(TYPE_04 + _pub(W1_KEY))}"
    assert witness_key_id(name="w.example", public_key=_pub(W1_KEY)) == kid
    assert W1.vkey == format_witness_vkey(name=W1.name, public_key=W1.public_key)


names = st.text(
    st.characters(blacklist_categories=("Z", "C"), blacklist_characters="+"), min_size=1
)


@given(names, st.binary(min_size=32, max_size=32))
def test_witness_vkey_round_trips(name: str, public_key: bytes) -> None:
    w = parse_witness_vkey(format_witness_vkey(name=name, public_key=public_key))
    assert w == WitnessKey(name, witness_key_id(name=name, public_key=public_key), public_key)


# --- the quorum -----------------------------------------------------------------------------


def test_quorum_of_all_and_of_some() -> None:
    both = NOTE + _cosign(W1) + _cosign(W2, T + 5)
    report = verify_cosignatures(both, [W1, W2])
    assert (report.quorum, [w.timestamp for w in report.witnesses]) == (2, [T, T + 5])
    report = verify_cosignatures(both, [W1, W2, W3], quorum=2)
    assert [w.witness for w in report.cosigned] == [W1, W2]
    assert [w.witness for w in report.missing] == [W3]
    with pytest.raises(CheckpointError) as e:
        verify_cosignatures(both, [W1, W2, W3])
    assert str(e.value) == (
        f"witness cosignatures: 2 of 3 witnesses cosigned, want at least 3; missing: {W3.label}"
    )


def test_duplicate_lines_of_one_witness_count_once() -> None:
    twice = NOTE + _cosign(W1) + _cosign(W1, T + 60) + _cosign(W1)
    with pytest.raises(CheckpointError, match="1 of 2 witnesses cosigned, want at least 2"):
        verify_cosignatures(twice, [W1, W2])
    (result,) = verify_cosignatures(twice, [W1]).witnesses
    assert result.timestamp == T + 60  # the newest


def test_lines_of_unknown_witnesses_are_ignored() -> None:
    stranger = parse_witness_vkey(format_witness_vkey(name="x.example", public_key=_pub(OTHER_KEY)))
    garbage = _line("x.example", stranger.key_id + bytes(3))  # would fail, were it known
    note = NOTE + garbage + _cosign(W1) + _line(W2.name, b"\x00\x00\x00\x00" + bytes(72))
    report = verify_cosignatures(note, [W1, W2], quorum=1)
    assert [w.witness for w in report.cosigned] == [W1]
    assert report.witnesses[1].other_key_ids == (bytes(4),)


def test_a_line_with_the_key_id_of_another_name_is_ignored() -> None:
    renamed = _spec_line("w9.example", W1_KEY, CP.text, T, key_id=W1.key_id)
    (result,) = check_cosignatures(NOTE + renamed, [W1])
    assert (result.timestamp, result.problem) == (None, None)


def test_a_bad_line_of_a_configured_witness_fails_even_with_the_quorum_met() -> None:
    bad = _spec_line(W2.name, OTHER_KEY, CP.text, T, key_id=W2.key_id)
    note = NOTE + _cosign(W1) + bad
    with pytest.raises(CheckpointError) as e:
        verify_cosignatures(note, [W1, W2], quorum=1)
    assert str(e.value) == (
        f"witness cosignatures: cosignature by {W2.label} (note signature 3) does not verify"
    )
    # not configured, the same line is ignored
    assert verify_cosignatures(note, [W1]).quorum == 1


def test_the_future_is_refused_only_beyond_the_skew() -> None:
    note = NOTE + _cosign(W1, T + 600)
    assert verify_cosignatures(note, [W1], now=T).cosigned
    with pytest.raises(CheckpointError, match=r"601 s ahead of this clock \(at most 600 s"):
        verify_cosignatures(note, [W1], now=T - 1)
    with pytest.raises(CheckpointError, match=r"1 s ahead of this clock \(at most 0 s"):
        verify_cosignatures(note, [W1], now=T + 599, skew=0)
    assert verify_cosignatures(note, [W1]).cosigned  # no clock given: no check


def test_a_witness_set_refuses_ambiguity() -> None:
    assert witness_set([W1, W1.vkey, W2]) == (W1, W2)
    renamed = parse_witness_vkey(
        format_witness_vkey(name="alias.example", public_key=W1.public_key)
    )
    rekeyed = parse_witness_vkey(format_witness_vkey(name=W1.name, public_key=_pub(OTHER_KEY)))
    with pytest.raises(InputError) as e:
        witness_set([W1, renamed])
    assert str(e.value) == (
        f"witnesses {W1.name} and alias.example have the same Ed25519 public key: a "
        "cosignature/v1 does not commit to its witness's name, so one would count twice"
    )
    with pytest.raises(InputError) as e:
        witness_set([W1, rekeyed])
    assert str(e.value) == f"witness {W1.name} is given with two keys ({W1.label}, {rekeyed.label})"


# --- properties -----------------------------------------------------------------------------

bodies = st.tuples(st.integers(1, 20), st.lists(st.text("abc xyz", min_size=1), max_size=2))


@settings(max_examples=200)
@given(bodies, bodies, st.integers(0, 2**63 - 1))
def test_a_cosignature_for_one_note_never_verifies_for_another(
    a: tuple[int, list[str]], b: tuple[int, list[str]], timestamp: int
) -> None:
    first, second = _note(a[0], extensions=a[1]), _note(b[0], extensions=b[1])
    line = _cosign(W1, timestamp, first)
    assert verify_cosignatures(first + line, [W1]).cosigned
    if split_note(first)[0] != split_note(second)[0]:
        with pytest.raises(CheckpointError, match="does not verify"):
            verify_cosignatures(second + line, [W1])


COSIGNED = (NOTE + _cosign(W1)).encode()


@settings(max_examples=500)
@given(st.integers(0, len(COSIGNED) - 1), st.integers(0, 7))
def test_any_flipped_bit_of_a_cosigned_checkpoint_is_refused(position: int, bit: int) -> None:
    flipped = bytearray(COSIGNED)
    flipped[position] ^= 1 << bit
    with pytest.raises(CheckpointError):
        verify_checkpoint(bytes(flipped), LOG)
        verify_cosignatures(bytes(flipped), [W1])


# --- messages -------------------------------------------------------------------------------

SIG1 = base64.b64decode(_cosign(W1).split(" ")[-1])


def _with_time(timestamp: int) -> str:
    return NOTE + _line(W1.name, SIG1[:4] + struct.pack(">Q", timestamp) + SIG1[12:])


LINE_2 = f"witness cosignatures: cosignature by {W1.label} (note signature 2)"
MESSAGES = [
    _msg(
        lambda: verify_cosignatures(NOTE + _line(W1.name, SIG1[:-1] + bytes([SIG1[-1] ^ 1])), [W1]),
        f"{LINE_2} does not verify",
    ),
    _msg(
        lambda: verify_cosignatures(NOTE + _line(W1.name, SIG1[:70]), [W1]),
        f"{LINE_2} is 70 bytes, want 76 (4-byte key id, 8-byte timestamp, 64-byte Ed25519 "
        "signature)",
    ),
    _msg(
        lambda: verify_cosignatures(NOTE + _line(W1.name, SIG1 + b"\x00"), [W1]),
        f"{LINE_2} is 77 bytes, want 76 (4-byte key id, 8-byte timestamp, 64-byte Ed25519 "
        "signature)",
    ),
    _msg(
        lambda: verify_cosignatures(_with_time(2**63), [W1]),
        f"{LINE_2} has timestamp {2**63}, beyond 2^63 - 1",
    ),
    _msg(
        lambda: verify_cosignatures(_with_time(2**64 - 1), [W1]),
        f"{LINE_2} has timestamp {2**64 - 1}, beyond 2^63 - 1",
    ),
    _msg(lambda: verify_cosignatures(_with_time(T + 1), [W1]), f"{LINE_2} does not verify"),
    _msg(
        lambda: verify_cosignatures(NOTE + _line(W1.name, SIG1)[:-4] + "\n", [W1]),
        f"note signature 2: {_b64(SIG1)[:40] + '...'!r} is not base64",
    ),
    _msg(
        lambda: verify_cosignatures(NOTE, [W1]),
        f"witness cosignatures: 0 of 1 witnesses cosigned, want at least 1; missing: {W1.label}",
    ),
    _msg(
        lambda: verify_cosignatures(NOTE + _line(W1.name, bytes(4) + SIG1[4:]), [W1, W2], quorum=1),
        "witness cosignatures: 0 of 2 witnesses cosigned, want at least 1; missing: "
        f"{W1.label} (its name signs with key id 00000000: another key?), {W2.label}",
    ),
    _msg(
        lambda: verify_cosignatures(NOTE, []), "witness quorum: no witness keys given", InputError
    ),
    _msg(
        lambda: verify_cosignatures(NOTE, [W1], quorum=2),
        "witness quorum 2: want 1 to 1 (the witnesses given)",
        InputError,
    ),
    _msg(
        lambda: verify_cosignatures(NOTE, [W1], quorum=0),
        "witness quorum 0: want 1 to 1 (the witnesses given)",
        InputError,
    ),
    _msg(
        lambda: parse_witness_vkey(
            LOG.name + "+" + format_vkey(name=ORIGIN, public_key=LOG.public_key).split("+", 1)[1]
        ),
        f"vkey {ORIGIN}: signature type is 01 (Ed25519), want 04 (Ed25519 cosignature/v1) or "
        "06 (ML-DSA-44 cosignature)",
    ),
    _msg(
        lambda: parse_vkey(W1.vkey),
        f"vkey {W1.name}: signature type is 04 (Ed25519 cosignature/v1), want 01 (Ed25519)",
    ),
    _msg(
        lambda: parse_witness_vkey(W1.vkey.replace(W1.key_id.hex(), "00000000")),
        f"vkey {W1.name}: key id is 00000000, the key's id is {W1.key_id.hex()}",
    ),
    _msg(
        lambda: parse_witness_vkey(W1.vkey[:-3]),
        f"vkey {W1.name}: key: {W1.vkey.split('+')[2][:40] + '...'!r} is not base64",
    ),
    _msg(
        lambda: parse_witness_vkey(f"{W1.name}+{W1.key_id.hex()}+{_b64(TYPE_04 + bytes(31))}"),
        f"vkey {W1.name}: Ed25519 key is 31 bytes, want 32",
    ),
    _msg(
        lambda: cosign_checkpoint(CP, name="w", private_key=W1_KEY, timestamp=2**63),
        f"cosignature timestamp {2**63} is not in 0 .. 2^63 - 1",
        InputError,
    ),
    _msg(
        lambda: cosign_checkpoint(CP, name="a b", private_key=W1_KEY, timestamp=T),
        "vkey: key name 'a b' contains a space, '+' or control",
    ),
]


@pytest.mark.parametrize(("call", "exc", "message"), MESSAGES)
def test_error_messages(call: Callable[[], object], exc: type[Exception], message: str) -> None:
    check(call, exc, message)


# --- the witness: add-checkpoint ------------------------------------------------------------


def _request(old: int, size: int, key: Ed25519PrivateKey = LOG_KEY) -> WitnessRequest:
    proof = merkle.consistency_proof(LEAVES[:size], old) if 0 < old < size else []
    text = format_witness_request(old_size=old, proof=proof, checkpoint_note=_note(size, key))
    return read_submission(text)


def _add(request: WitnessRequest, last: str | None) -> str:
    return add_checkpoint(
        request, logs=[LOG], last=last, name=W1.name, private_key=W1_KEY, clock=lambda: T
    ).kept


def test_a_witness_cosigns_a_growing_log() -> None:
    first = add_checkpoint(
        read_submission(_note(5)),
        logs=[LOG],
        last=None,
        name=W1.name,
        private_key=W1_KEY,
        clock=lambda: T,
    )
    assert first.old_size == 0 and first.checkpoint.size == 5
    assert first.note == _note(5) + first.line
    assert verify_cosignatures(first.note, [W1]).cosigned
    second = add_checkpoint(
        _request(5, 12),
        logs=[LOG],
        last=first.kept,
        name=W1.name,
        private_key=W1_KEY,
        clock=lambda: T,
    )
    assert second.line == _cosign(W1, T, _note(12))
    # again at the same size and root: cosigned again
    again = _add(_request(12, 12), second.kept)
    assert again == second.kept


def test_the_witness_keeps_the_body_the_log_signature_and_its_line_only() -> None:
    submitted = _note(7) + _cosign(W2, note=_note(7)) + _line("x.example", bytes(10))
    cosigned = add_checkpoint(
        read_submission(submitted),
        logs=[LOG],
        last=None,
        name=W1.name,
        private_key=W1_KEY,
        clock=lambda: T,
    )
    assert cosigned.kept == _note(7) + cosigned.line
    assert cosigned.note == submitted + cosigned.line


def _empty_tree_note(root: bytes, key: Ed25519PrivateKey = LOG_KEY) -> WitnessRequest:
    """An add-checkpoint request for a size-0 checkpoint of root ``root``, signed by ``key``
    (the signing helpers refuse to make one with another root than the empty tree's)."""
    note = sign_note(text=f"{ORIGIN}\n0\n{_b64(root)}\n", name=ORIGIN, private_key=key)
    return parse_witness_request(f"old 0\n\n{note}")


ADD_ERRORS = [
    (
        lambda: _add(_request(0, 5, OTHER_KEY), None),
        NoteSignatureError,
        "note: no signature by a known key",
    ),
    (
        lambda: _add(read_submission(_note(5, origin="other.example/log")), None),
        UnknownLog,
        "checkpoint origin 'other.example/log' is not a log this witness follows "
        f"(it follows: {ORIGIN})",
    ),
    (
        lambda: _add(WitnessRequest(9, [], _note(5)), _note(9)),
        InputError,
        "old size 9 is larger than the checkpoint's size 5",
    ),
    (
        lambda: _add(_request(0, 5), _note(3)),
        OldSizeMismatch,
        f"old size 0 does not match: this witness last cosigned {ORIGIN} at size 3; send a "
        "consistency proof from that checkpoint",
    ),
    (
        lambda: _add(_request(3, 5), None),
        OldSizeMismatch,
        f"old size 3 does not match: this witness last cosigned {ORIGIN} at size 0; send a "
        "consistency proof from that checkpoint",
    ),
    (
        lambda: _add(WitnessRequest(0, [LEAVES[0]], _note(5)), None),
        ProofError,
        "old size 0 takes no consistency proof, found 1",
    ),
    (
        lambda: _add(
            WitnessRequest(3, merkle.consistency_proof(LEAVES[:5], 3)[::-1], _note(5)), _note(3)
        ),
        ProofError,
        "consistency proof from size 3 (last cosigned) to 5: ",
    ),
    (
        lambda: _add(
            WitnessRequest(5, [], _note(5)),
            sign_checkpoint(origin=ORIGIN, size=5, root=LEAVES[0], private_key=LOG_KEY),
        ),
        ProofError,
        f"checkpoint of size 5 has root {merkle.root(LEAVES[:5]).hex()}, the one this witness "
        f"cosigned at that size {LEAVES[0].hex()}: the log forked",
    ),
    (
        lambda: _add(_empty_tree_note(LEAVES[0], OTHER_KEY), None),
        NoteSignatureError,
        "note: no signature by a known key",
    ),
    (
        lambda: _add(_empty_tree_note(LEAVES[0]), _note(3)),
        OldSizeMismatch,
        "old size 0 does not match",
    ),
    (
        lambda: _add(_empty_tree_note(LEAVES[0]), None),
        ProofError,
        f"checkpoint of size 0 has root {LEAVES[0].hex()}, not the empty tree's "
        f"{merkle.EMPTY_ROOT.hex()}",
    ),
    (
        lambda: _add(_request(3, 5), _note(3).replace(ORIGIN, "o2")),
        StateError,
        f"last cosigned checkpoint of {ORIGIN!r} is of origin 'o2'",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"), ADD_ERRORS, ids=[m[:50] for _, _, m in ADD_ERRORS]
)
def test_add_checkpoint_refuses(
    call: Callable[[], object], exc: type[Exception], message: str
) -> None:
    with pytest.raises(exc) as e:
        call()
    assert type(e.value) is exc
    assert str(e.value).startswith(message)


def test_a_conflict_names_the_size_last_cosigned() -> None:
    with pytest.raises(OldSizeMismatch) as e:
        _add(_request(2, 5), _note(3))
    assert e.value.size == 3
    with pytest.raises(OldSizeMismatch) as e:
        _add(_request(2, 5), None)
    assert e.value.size == 0


def test_a_size_zero_checkpoint_of_the_empty_tree_is_cosigned() -> None:
    kept = _add(_empty_tree_note(merkle.EMPTY_ROOT), None)
    assert parse_checkpoint(split_note(kept)[0]).size == 0


def test_a_request_from_another_branch_of_the_log_is_refused() -> None:
    forked = [merkle.leaf_hash(b"forked %d" % i) for i in range(12)]
    fork_note = sign_checkpoint(
        origin=ORIGIN, size=12, root=merkle.root(forked), private_key=LOG_KEY
    )
    request = WitnessRequest(5, merkle.consistency_proof(forked, 5), fork_note)
    with pytest.raises(
        ProofError, match=r"^consistency proof from size 5 \(last cosigned\) to 12: "
    ):
        _add(request, _note(5))


# --- the witness's state --------------------------------------------------------------------


def test_state_keeps_the_last_cosigned_checkpoint_per_origin(tmp_path: Path) -> None:
    state = WitnessState(tmp_path / "w")
    clock = iter(range(T, T + 10))

    def cosign(text: str) -> str:
        return witness_checkpoint(
            text,
            state=state,
            logs=[LOG],
            name=W1.name,
            private_key=W1_KEY,
            clock=lambda: next(clock),
        ).line

    line = cosign(_note(4))
    digest = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert state.path(ORIGIN) == tmp_path / "w" / digest / "checkpoint"
    assert state.last(ORIGIN) == _note(4) + line
    with pytest.raises(InputError, match=r"^old size 0 does not match"):
        cosign(_note(9))  # the bare checkpoint again: a proof from size 4 is due
    assert state.last(ORIGIN) == _note(4) + line  # nothing kept
    request = format_witness_request(
        old_size=4, proof=merkle.consistency_proof(LEAVES[:9], 4), checkpoint_note=_note(9)
    )
    line = cosign(request)
    assert state.last(ORIGIN) == _note(9) + line
    assert verify_cosignatures(_note(9) + line, [W1]).witnesses[0].timestamp == T + 1
    # the same request again is a conflict now: two requests from one old size keep one
    with pytest.raises(InputError, match=r"^old size 4 does not match"):
        cosign(request)
    assert sorted(p.name for p in state.path(ORIGIN).parent.iterdir()) == [".lock", "checkpoint"]


def test_unknown_origin_leaves_no_state(tmp_path: Path) -> None:
    state = WitnessState(tmp_path / "w")
    with pytest.raises(InputError, match="is not a log this witness follows"):
        witness_checkpoint(
            _note(3, origin="o.example"),
            state=state,
            logs=[LOG],
            name=W1.name,
            private_key=W1_KEY,
            clock=lambda: T,
        )
    assert not (tmp_path / "w").exists()


def test_a_malformed_state_file_is_an_environment_error(tmp_path: Path) -> None:
    state = WitnessState(tmp_path)
    state.path(ORIGIN).parent.mkdir(parents=True)
    state.path(ORIGIN).write_text("not a checkpoint\n", encoding="utf-8")
    with pytest.raises(StateError) as e:
        state.last(ORIGIN)
    assert str(e.value) == (
        f"witness state {state.path(ORIGIN)} is not a checkpoint (last cosigned checkpoint: "
        "no blank line before the signatures)"
    )
