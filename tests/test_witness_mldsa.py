"""ML-DSA-44 witness cosignatures (C2SP tlog-cosignature, signature type 0x06): the signed
``cosigned_message`` against one built here from the spec's text alone, lines made and checked
with raw ``cryptography``, tampering, the name the signature commits to, and quorums that mix
ML-DSA-44 and Ed25519 witnesses."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey

from ledger.errors import CheckpointError, InputError
from ledger.tlog import merkle
from ledger.tlog.cosignatures import (
    WitnessKey,
    check_cosignatures,
    cosign_checkpoint,
    cosigner_vkey,
    format_witness_vkey,
    parse_witness_vkey,
    subtree_message,
    verify_cosignatures,
    witness_key_id,
    witness_set,
)
from ledger.tlog.notes import (
    COSIGNATURE_MLDSA44,
    sign_checkpoint,
    verify_checkpoint,
)
from ledger.tlog.witness import WitnessState, witness_checkpoint
from tests.messages import case as _msg
from tests.messages import check
from tests.test_witness import LEAVES, LOG, LOG_KEY, ORIGIN, _note

T = 1_700_000_000


def _mkey(seed: int) -> MLDSA44PrivateKey:
    return MLDSA44PrivateKey.from_seed_bytes(bytes([seed]) * 32)


def _mpub(key: MLDSA44PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


M1_KEY, M2_KEY, OTHER_KEY = _mkey(11), _mkey(12), _mkey(19)
ED_KEY = Ed25519PrivateKey.from_private_bytes(bytes([2]) * 32)
M1, M2 = (
    cosigner_vkey(name=f"m{i}.example/w", private_key=k) for i, k in ((1, M1_KEY), (2, M2_KEY))
)
ED = cosigner_vkey(name="ed.example/w", private_key=ED_KEY)
KEYS: dict[WitnessKey, MLDSA44PrivateKey | Ed25519PrivateKey] = {M1: M1_KEY, M2: M2_KEY, ED: ED_KEY}


NOTE = _note()
CP = verify_checkpoint(NOTE, LOG)


def _cosign(w: WitnessKey, timestamp: int = T, note: str = NOTE) -> str:
    cp = verify_checkpoint(note, LOG)
    return cosign_checkpoint(cp, name=w.name, private_key=KEYS[w], timestamp=timestamp)


def _sig(line: str) -> bytes:
    return base64.b64decode(line.rsplit(" ", 1)[1])


def _line(name: str, sig: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(sig).decode()}\n"


# --- the message and lines, from the spec's text alone ---------------------------------------


def _spec_message(name: str, timestamp: int, origin: str, size: int, root: bytes) -> bytes:
    """tlog-cosignature "ML-DSA-44 signed message", a checkpoint: start 0, end its size."""
    return (
        b"subtree/v1\n\x00"
        + bytes([len(name.encode())])
        + name.encode()
        + timestamp.to_bytes(8, "big")
        + bytes([len(origin.encode())])
        + origin.encode()
        + (0).to_bytes(8, "big")
        + size.to_bytes(8, "big")
        + root
    )


def _spec_line(
    name: str, key: MLDSA44PrivateKey, timestamp: int, *, key_id: bytes | None = None
) -> str:
    kid = key_id or hashlib.sha256(name.encode() + b"\n\x06" + _mpub(key)).digest()[:4]
    signature = key.sign(_spec_message(name, timestamp, CP.origin, CP.size, CP.root))
    return _line(name, kid + timestamp.to_bytes(8, "big") + signature)


def test_the_signed_message_is_the_spec_cosigned_message_byte_for_byte() -> None:
    got = subtree_message(
        name=M1.name, timestamp=T, origin=CP.origin, start=0, end=CP.size, root=CP.root
    )
    assert got == _spec_message(M1.name, T, CP.origin, CP.size, CP.root)
    # the layout, field by field: label 12, name 1+12, timestamp 8, origin 1+21, 8, 8, hash 32
    assert len(got) == 12 + 1 + 12 + 8 + 1 + 21 + 8 + 8 + 32
    assert got[:12] == b"subtree/v1\n\x00"
    assert got[12] == 12 and got[13:25] == b"m1.example/w"
    assert struct.unpack(">Q", got[25:33]) == (T,)
    assert got[33] == 21 and got[34:55] == b"example.com/govledger"
    assert struct.unpack(">QQ", got[55:71]) == (0, 8)
    assert got[71:] == merkle.root(LEAVES[:8])


def test_key_id_and_vkey_are_the_spec_ones() -> None:
    public_key = _mpub(M1_KEY)
    assert len(public_key) == 1312
    kid = hashlib.sha256(M1.name.encode() + b"\n\x06" + public_key).digest()[:4]
    assert M1.key_id == kid
    assert witness_key_id(name=M1.name, public_key=public_key, signature_type=6) == kid
    b64 = base64.b64encode(b"\x06" + public_key).decode()
    assert M1.vkey == f"{M1.name}+{kid.hex()}+{b64}"
    assert parse_witness_vkey(M1.vkey) == M1
    assert (M1.signature_type, M1.algorithm) == (COSIGNATURE_MLDSA44, "ML-DSA-44")


def test_a_cosignature_line_is_key_id_timestamp_and_a_signature_raw_cryptography_accepts() -> None:
    line = _cosign(M1)
    assert line.startswith(f"\u2014 {M1.name} ") and line.endswith("\n")
    sig = _sig(line)
    assert len(sig) == 4 + 8 + 2420
    assert sig[:4] == M1.key_id
    assert struct.unpack(">Q", sig[4:12]) == (T,)
    M1_KEY.public_key().verify(sig[12:], _spec_message(M1.name, T, ORIGIN, 8, CP.root))


def test_a_line_made_from_the_spec_alone_verifies() -> None:
    report = verify_cosignatures(NOTE + _spec_line(M1.name, M1_KEY, T), [M1])
    assert [(w.witness, w.timestamp) for w in report.cosigned] == [(M1, T)]


def test_extension_lines_are_not_signed() -> None:
    # The ML-DSA-44 message holds origin, size and root only: the same line verifies on a
    # checkpoint of that tree with other extension lines (Ed25519 cosignatures sign them).
    with_ext = _note(extensions=("ext one",))
    line = _cosign(M1)
    assert verify_cosignatures(with_ext + line, [M1]).cosigned
    ed_line = _cosign(ED)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_cosignatures(with_ext + ed_line, [ED])


# --- what must fail --------------------------------------------------------------------------


def _flip(line: str, at: int) -> str:
    sig = bytearray(_sig(line))
    sig[at] ^= 0x01
    return _line(line.split(" ")[1], bytes(sig))


@pytest.mark.parametrize(
    "at", [4, 11, 12, 500, 2431], ids=["ts-high", "ts-low", "sig0", "sig", "last"]
)
def test_any_flipped_timestamp_or_signature_byte_fails(at: int) -> None:
    note = NOTE + _flip(_cosign(M1), at)
    with pytest.raises(CheckpointError) as e:
        verify_cosignatures(note, [M1])
    assert str(e.value).startswith(f"witness cosignatures: cosignature by {M1.label} ")


def test_a_flipped_key_id_byte_makes_the_line_another_keys_and_the_witness_missing() -> None:
    note = NOTE + _flip(_cosign(M1), 0)
    with pytest.raises(CheckpointError, match=r"0 of 1 witnesses cosigned.*another key\?"):
        verify_cosignatures(note, [M1])


@pytest.mark.parametrize(
    "other",
    [
        lambda: _note(9),  # another size and root
        lambda: sign_checkpoint(origin=ORIGIN, size=8, root=bytes(32), private_key=LOG_KEY),
        lambda: sign_checkpoint(
            origin="example.com/other", size=8, root=merkle.root(LEAVES[:8]), private_key=LOG_KEY
        ),
    ],
    ids=["size", "root", "origin"],
)
def test_a_line_moved_to_another_checkpoint_fails(other: object) -> None:
    assert callable(other)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_cosignatures(other() + _cosign(M1), [M1])


def test_the_name_is_signed_a_line_renamed_to_the_same_key_under_another_name_fails() -> None:
    # The same key under two names: allowed in a witness set (unlike Ed25519), since a line
    # verifies under the name it was made for only.
    alias = parse_witness_vkey(
        format_witness_vkey(name="alias.example/w", public_key=M1.public_key, signature_type=6)
    )
    assert witness_set([M1, alias]) == (M1, alias)
    sig = _sig(_cosign(M1))
    renamed = _line(alias.name, alias.key_id + sig[4:])
    with pytest.raises(CheckpointError) as e:
        verify_cosignatures(NOTE + _cosign(M1) + renamed, [M1, alias], quorum=1)
    assert str(e.value) == (
        f"witness cosignatures: cosignature by {alias.label} (note signature 3) does not verify"
    )
    with pytest.raises(CheckpointError, match="1 of 2 witnesses cosigned, want at least 2"):
        verify_cosignatures(NOTE + _cosign(M1), [M1, alias])


def test_a_line_by_another_key_with_the_witness_key_id_fails() -> None:
    bad = _spec_line(M1.name, OTHER_KEY, T, key_id=M1.key_id)
    (result,) = check_cosignatures(NOTE + bad, [M1])
    assert result.problem == f"cosignature by {M1.label} (note signature 2) does not verify"


def test_an_ed25519_line_under_an_ml_dsa_witness_is_refused_by_its_size() -> None:
    ed = cosigner_vkey(name=M1.name, private_key=ED_KEY)
    sig = _sig(cosign_checkpoint(CP, name=M1.name, private_key=ED_KEY, timestamp=T))
    (result,) = check_cosignatures(NOTE + _line(M1.name, M1.key_id + sig[4:]), [M1])
    assert result.problem == (
        f"cosignature by {M1.label} (note signature 2) is 76 bytes, want 2432 "
        "(4-byte key id, 8-byte timestamp, 2420-byte ML-DSA-44 signature)"
    )
    assert ed.key_id != M1.key_id  # the type byte is in the key id


def test_a_truncated_line_is_refused_by_its_size() -> None:
    sig = _sig(_cosign(M1))
    (result,) = check_cosignatures(NOTE + _line(M1.name, sig[:-1]), [M1])
    assert result.problem == (
        f"cosignature by {M1.label} (note signature 2) is 2431 bytes, want 2432 "
        "(4-byte key id, 8-byte timestamp, 2420-byte ML-DSA-44 signature)"
    )


def test_timestamp_bounds() -> None:
    # 0 is a cosignature without the "largest tree seen" statement: it verifies
    assert verify_cosignatures(NOTE + _cosign(M1, 0), [M1]).witnesses[0].timestamp == 0
    assert verify_cosignatures(NOTE + _cosign(M1, 2**63 - 1), [M1]).cosigned
    with pytest.raises(InputError, match=r"timestamp 9223372036854775808 is not in 0 \.\. 2\^63"):
        _cosign(M1, 2**63)
    sig = _sig(_cosign(M1))
    beyond = _line(M1.name, sig[:4] + struct.pack(">Q", 2**63) + sig[12:])
    (result,) = check_cosignatures(NOTE + beyond, [M1])
    assert result.problem == (
        f"cosignature by {M1.label} (note signature 2) has timestamp 9223372036854775808, "
        "beyond 2^63 - 1"
    )
    with pytest.raises(CheckpointError, match=r"601 s ahead of this clock \(at most 600 s"):
        verify_cosignatures(NOTE + _cosign(M1, T + 600), [M1], now=T - 1)
    assert verify_cosignatures(NOTE + _cosign(M1, T + 600), [M1], now=T).cosigned


# --- quorums that mix the types --------------------------------------------------------------


def test_a_quorum_counts_ml_dsa_and_ed25519_witnesses_alike() -> None:
    note = NOTE + _cosign(M1) + _cosign(ED, T + 1)
    report = verify_cosignatures(note, [M1, ED, M2], quorum=2)
    assert [(w.witness, w.timestamp) for w in report.cosigned] == [(M1, T), (ED, T + 1)]
    assert [w.witness for w in report.missing] == [M2]
    with pytest.raises(CheckpointError) as e:
        verify_cosignatures(note, [M1, ED, M2])
    assert str(e.value) == (
        f"witness cosignatures: 2 of 3 witnesses cosigned, want at least 3; missing: {M2.label}"
    )
    assert verify_cosignatures(note + _cosign(M2), [M1, ED, M2]).quorum == 3
    assert report.as_json()["witnesses"][0] == {  # type: ignore[index]
        "name": M1.name,
        "key_id": M1.key_id.hex(),
        "vkey": M1.vkey,
        "cosigned": True,
        "timestamp": T,
    }


def test_one_name_with_an_ed25519_and_an_ml_dsa_key_is_refused() -> None:
    ml = cosigner_vkey(name=ED.name, private_key=M1_KEY)
    with pytest.raises(InputError) as e:
        witness_set([ED, ml])
    assert str(e.value) == f"witness {ED.name} is given with two keys ({ED.label}, {ml.label})"


def test_a_witness_cosigns_with_its_ml_dsa_key(tmp_path: Path) -> None:
    state = WitnessState(tmp_path / "state")
    cosigned = witness_checkpoint(
        NOTE, state=state, logs=[LOG], name=M1.name, private_key=M1_KEY, clock=lambda: T
    )
    assert verify_cosignatures(cosigned.note, [M1], now=T).cosigned
    kept = state.last(ORIGIN)
    assert kept is not None and kept.endswith(cosigned.line)
    assert verify_cosignatures(kept, [M1]).witnesses[0].timestamp == T


# --- error messages --------------------------------------------------------------------------

MESSAGES = [
    _msg(
        lambda: parse_witness_vkey(
            f"{M1.name}+{M1.key_id.hex()}+" + base64.b64encode(b"\x06" + bytes(32)).decode()
        ),
        f"vkey {M1.name}: ML-DSA-44 key is 32 bytes, want 1312",
    ),
    _msg(
        lambda: format_witness_vkey(name="w", public_key=bytes(32), signature_type=6),
        "vkey w: ML-DSA-44 public key is 32 bytes, want 1312",
    ),
    _msg(
        lambda: format_witness_vkey(name="w", public_key=bytes(32), signature_type=1),
        "witness vkey w: signature type 01 is not 04 or 06",
        InputError,
    ),
    _msg(
        lambda: cosigner_vkey(name="w" * 256, private_key=M1_KEY),
        f"witness name {'w' * 40!r}: 256 bytes, an ML-DSA-44 cosignature holds 1 to 255",
        InputError,
    ),
    _msg(
        lambda: subtree_message(name="w", timestamp=T, origin="o", start=1, end=2, root=bytes(32)),
        "subtree from 1: a subtree not from 0 takes timestamp 0",
        InputError,
    ),
    _msg(
        lambda: subtree_message(name="w", timestamp=0, origin="o", start=3, end=2, root=bytes(32)),
        "subtree [3, 2): want 0 <= start <= end < 2^64",
        InputError,
    ),
    _msg(
        lambda: subtree_message(name="w", timestamp=0, origin="", start=0, end=2, root=bytes(32)),
        "log origin '': 0 bytes, an ML-DSA-44 cosignature holds 1 to 255",
        InputError,
    ),
]


@pytest.mark.parametrize(("call", "exc", "message"), MESSAGES)
def test_error_messages(call: object, exc: type[Exception], message: str) -> None:
    assert callable(call)
    check(call, exc, message)
