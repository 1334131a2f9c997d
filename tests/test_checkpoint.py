"""C2SP signed notes, checkpoints, tlog-proofs and witness requests: known answers, round trips,
tampering, and every error message."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import CheckpointError, NoteSignatureError, ProofError
from ledger.tlog import merkle
from ledger.tlog.notes import (
    Checkpoint,
    Verifier,
    compute_key_id,
    format_checkpoint_body,
    format_tlog_proof,
    format_vkey,
    format_witness_request,
    open_note,
    parse_checkpoint,
    parse_tlog_proof,
    parse_unverified_checkpoint,
    parse_vkey,
    parse_witness_request,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
    verify_tlog_proof,
)
from tests.messages import case as _msg
from tests.messages import check

C2SP = Path(__file__).resolve().parent / "vectors" / "c2sp"


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


KEY, OTHER_KEY = _key(1), _key(2)
PUB = KEY.public_key().public_bytes_raw()
ORIGIN = "example.com/govledger"
VKEY = format_vkey(name=ORIGIN, public_key=PUB)
VERIFIER = parse_vkey(VKEY)
KID = VERIFIER.key_id.hex()
OTHER = parse_vkey(
    format_vkey(name="other.example", public_key=OTHER_KEY.public_key().public_bytes_raw())
)

BODIES = [b'{"event":%d}' % i for i in range(8)]
LEAVES = [merkle.leaf_hash(b) for b in BODIES]
ROOT = merkle.root(LEAVES)
BODY = format_checkpoint_body(origin=ORIGIN, size=8, root=ROOT)
NOTE = sign_checkpoint(origin=ORIGIN, size=8, root=ROOT, private_key=KEY)


def _proof(index: int, extra: bytes | None = None) -> str:
    return format_tlog_proof(
        index=index,
        proof=merkle.inclusion_proof(LEAVES, index),
        checkpoint_note=NOTE,
        extra=BODIES[index] if extra is None else extra,
    )


def _sig_line(text: str, name: str, key: Ed25519PrivateKey, key_id: bytes | None = None) -> str:
    kid = key_id or compute_key_id(name=name, public_key=key.public_key().public_bytes_raw())
    return f"\u2014 {name} {_b64(kid + key.sign(text.encode()))}\n"


# --- known answers --------------------------------------------------------------------------


def test_signed_note_example_from_the_spec_verifies() -> None:
    v = json.loads((C2SP / "signed-note-example.json").read_text())
    assert v["wantErr"] is False
    verifier = parse_vkey(v["vkey"])
    assert open_note(v["note"], [verifier]) == "This is an example message.\n"
    assert format_vkey(name=verifier.name, public_key=verifier.public_key) == v["vkey"]


def _indented_block(md: str, after: str) -> str:
    lines = md.split(after, 1)[1].split("\n")[2:]
    block = []
    for line in lines:
        if line and not line.startswith("    "):
            break
        block.append(line.removeprefix("    "))
    return "\n".join(block).rstrip("\n") + "\n"


def test_spec_examples_parse() -> None:
    checkpoint_md = (C2SP / "tlog-checkpoint.md").read_text()
    example = checkpoint_md.split("```\n", 2)[1]
    body = example.split("\n\n")[0] + "\n"
    cp = parse_checkpoint(body)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    request = _indented_block((C2SP / "tlog-witness.md").read_text(), "Example request body:")
    parsed = parse_witness_request(request)
    assert parsed.old_size == 20852014
    assert len(parsed.proof) == 4
    assert parsed.checkpoint_note.startswith(body + "\n\u2014 example.com/behind-the-sofa ")


# --- round trips ----------------------------------------------------------------------------

names = st.text(
    st.characters(blacklist_categories=("Z", "C"), blacklist_characters="+"), min_size=1
)
lines = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1)


@given(names, st.binary(min_size=32, max_size=32))
def test_vkey_round_trips(name: str, public_key: bytes) -> None:
    v = parse_vkey(format_vkey(name=name, public_key=public_key))
    assert v == Verifier(name, compute_key_id(name=name, public_key=public_key), public_key)


@settings(max_examples=50)
@given(names, st.integers(1, 2**64 - 1), st.binary(min_size=32, max_size=32), st.lists(lines))
def test_checkpoint_round_trips(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    note = sign_checkpoint(origin=origin, size=size, root=root, private_key=KEY, extensions=ext)
    body = format_checkpoint_body(origin=origin, size=size, root=root, extensions=ext)
    assert note.startswith(body + "\n\u2014 ")
    cp = verify_checkpoint(note, format_vkey(name=origin, public_key=PUB))
    assert cp == Checkpoint(origin, size, root, tuple(ext), body)
    assert parse_checkpoint(body) == cp


def test_checkpoint_has_the_spec_layout() -> None:
    body = format_checkpoint_body(origin=ORIGIN, size=8, root=ROOT)
    assert body == f"{ORIGIN}\n8\n{_b64(ROOT)}\n"
    sig = base64.b64decode(NOTE.split(" ")[-1])
    assert sig[:4] == VERIFIER.key_id
    note = sign_checkpoint(origin=ORIGIN, size=8, root=ROOT, private_key=KEY)
    assert note == f"{body}\n\u2014 {ORIGIN} {_b64(sig)}\n"
    assert len(sig) == 68
    empty = sign_checkpoint(origin=ORIGIN, size=0, root=merkle.EMPTY_ROOT, private_key=KEY)
    assert verify_checkpoint(empty, VERIFIER).size == 0


@pytest.mark.parametrize("index", range(8))
def test_tlog_proof_round_trips_and_verifies(index: int) -> None:
    text = _proof(index)
    head = f"c2sp.org/tlog-proof@v1\nextra {_b64(BODIES[index])}\nindex {index}\n"
    assert text.startswith(head)
    assert text.endswith("\n\n" + NOTE)
    p = parse_tlog_proof(text)
    assert (p.extra, p.index, p.checkpoint_note) == (BODIES[index], index, NOTE)
    assert p.proof == merkle.inclusion_proof(LEAVES, index)
    result = verify_tlog_proof(text.encode(), verifier=VKEY)
    assert (result.index, result.extra, result.leaf_hash) == (index, BODIES[index], LEAVES[index])
    assert result.checkpoint == parse_checkpoint(BODY)


def test_tlog_proof_without_extra_parses() -> None:
    text = format_tlog_proof(index=0, proof=merkle.inclusion_proof(LEAVES, 0), checkpoint_note=NOTE)
    assert text.startswith("c2sp.org/tlog-proof@v1\nindex 0\n")
    assert parse_tlog_proof(text).extra is None


def test_tlog_proof_with_a_custom_leaf_hash() -> None:
    leaves = [merkle.leaf_hash(b"x" + b) for b in BODIES]
    note = sign_checkpoint(origin=ORIGIN, size=8, root=merkle.root(leaves), private_key=KEY)
    text = format_tlog_proof(
        index=2, proof=merkle.inclusion_proof(leaves, 2), checkpoint_note=note, extra=BODIES[2]
    )
    result = verify_tlog_proof(
        text, verifier=VERIFIER, leaf_hash_fn=lambda c: merkle.leaf_hash(b"x" + c)
    )
    assert result.leaf_hash == leaves[2]


@pytest.mark.parametrize("old", range(9))
def test_witness_request_round_trips_and_proves_consistency(old: int) -> None:
    proof = merkle.consistency_proof(LEAVES, old)
    text = format_witness_request(old_size=old, proof=proof, checkpoint_note=NOTE)
    assert text == f"old {old}\n" + "".join(_b64(h) + "\n" for h in proof) + "\n" + NOTE
    req = parse_witness_request(text)
    assert (req.old_size, req.proof, req.checkpoint_note) == (old, proof, NOTE)
    cp = verify_checkpoint(req.checkpoint_note, VERIFIER)
    if old:
        merkle.verify_consistency(
            size1=old,
            size2=cp.size,
            proof=req.proof,
            root1=merkle.root(LEAVES[:old]),
            root2=cp.root,
        )


# --- signers --------------------------------------------------------------------------------


def test_unknown_signers_are_ignored() -> None:
    cosigned = NOTE + _sig_line(BODY, "witness.example", OTHER_KEY)
    assert open_note(cosigned, [VERIFIER]) == BODY
    # a signature sharing the name but not the key id (or the reverse) is from an unknown key
    same_name = BODY + "\n" + _sig_line(BODY, ORIGIN, OTHER_KEY) + NOTE.split("\n\n")[1]
    assert open_note(same_name, [VERIFIER]) == BODY
    same_id = NOTE + _sig_line(BODY, "witness.example", OTHER_KEY, key_id=VERIFIER.key_id)
    assert open_note(same_id, [VERIFIER]) == BODY
    assert verify_checkpoint(cosigned, VKEY) == parse_checkpoint(BODY)


def test_every_known_signer_must_verify() -> None:
    witness = parse_vkey(
        format_vkey(name="w.example", public_key=OTHER_KEY.public_key().public_bytes_raw())
    )
    cosigned = NOTE + _sig_line(BODY, "w.example", OTHER_KEY)
    assert open_note(cosigned, [VERIFIER, witness]) == BODY
    assert open_note(cosigned, [witness]) == BODY
    forged = NOTE + _sig_line(BODY, "w.example", KEY, key_id=witness.key_id)
    with pytest.raises(CheckpointError, match=r"^note signature 2: signature by w\.example"):
        open_note(forged, [VERIFIER, witness])
    assert open_note(forged, [VERIFIER]) == BODY


def test_unverified_parse_reads_a_checkpoint_without_checking_signatures() -> None:
    assert parse_unverified_checkpoint(NOTE) == parse_checkpoint(BODY)
    assert parse_unverified_checkpoint((BODY + "\n" + BAD_SIG).encode()).size == 8
    with pytest.raises(CheckpointError):
        open_note(BODY + "\n" + BAD_SIG, [VERIFIER])


def test_note_text_may_hold_blank_lines_and_signature_lookalikes() -> None:
    text = f"a\n\n\u2014 {ORIGIN} AAAAAAA=\n\n"
    note = sign_note(text=text, name=ORIGIN, private_key=KEY)
    assert open_note(note, [VERIFIER]) == text


# --- tampering ------------------------------------------------------------------------------


def _flip(data: bytes, position: int, bit: int) -> bytes:
    b = bytearray(data)
    b[position % len(b)] ^= 1 << bit
    return bytes(b)


@settings(max_examples=500)
@given(st.integers(0, 10**6), st.integers(0, 7))
def test_any_flipped_bit_in_a_signed_checkpoint_is_detected(position: int, bit: int) -> None:
    with pytest.raises(CheckpointError):
        verify_checkpoint(_flip(NOTE.encode(), position, bit), VKEY)


PROOF_TEXTS = [_proof(i).encode() for i in range(8)]


@settings(max_examples=1000)
@given(st.integers(0, 7), st.integers(0, 10**6), st.integers(0, 7))
def test_any_flipped_bit_in_a_tlog_proof_is_detected(index: int, position: int, bit: int) -> None:
    tampered = _flip(PROOF_TEXTS[index], position, bit)
    with pytest.raises((CheckpointError, ProofError)):
        verify_tlog_proof(tampered, verifier=VERIFIER)


@settings(max_examples=300)
@given(st.integers(0, 7), st.integers(0, 10**6), st.integers(0, 7))
def test_any_flipped_bit_in_extra_fails_inclusion(index: int, position: int, bit: int) -> None:
    text = _proof(index, extra=_flip(BODIES[index], position, bit))
    with pytest.raises(
        ProofError, match=f"^tlog-proof: index {index} in tree size 8: root mismatch"
    ):
        verify_tlog_proof(text, verifier=VKEY)


# --- messages -------------------------------------------------------------------------------

SIG = NOTE.split("\n\n")[1]
P3 = _proof(3)
P3_LINES = P3.split("\n")
HASH = _b64(ROOT)
BAD_SIG = f"\u2014 {ORIGIN} {_b64(VERIFIER.key_id + bytes(64))}\n"
WRONG_ORIGIN = sign_note(text=f"o1\n1\n{HASH}\n", name="o2", private_key=KEY)
O2 = format_vkey(name="o2", public_key=PUB)
NOT_OTHER = (
    f"note: no signature by a known key (found {ORIGIN}+{KID}; "
    f"known other.example+{OTHER.key_id.hex()})"
)
X_ROOT = merkle.root_from_inclusion_proof(
    index=3, size=8, leaf_hash=merkle.leaf_hash(b"x"), proof=merkle.inclusion_proof(LEAVES, 3)
)


MESSAGES = [
    # text
    _msg(lambda: open_note(b"\xffa\n\n", []), "note: not valid UTF-8 at byte 0"),
    _msg(lambda: open_note("a\ud800\n\n" + SIG, []), "note: lone surrogate at offset 1"),
    _msg(lambda: open_note("a\r\n\n" + SIG, []), "note: control character U+000D at offset 1"),
    # note structure
    _msg(lambda: open_note(NOTE[:-1], [VERIFIER]), "note: does not end with a newline"),
    _msg(lambda: open_note(BODY + SIG, [VERIFIER]), "note: no blank line before the signatures"),
    _msg(
        lambda: open_note(BODY + "\n", [VERIFIER]), "note: no signature lines after the blank line"
    ),
    _msg(lambda: open_note(NOTE + SIG * 100, [VERIFIER]), "note: 101 signatures, at most 100"),
    _msg(
        lambda: open_note("a\n\n- x AAAA\n", []),
        "note signature 1: '- x AAAA' is not '— <key name> <signature>'",
    ),
    _msg(
        lambda: open_note("a\n\n\u2014 xAAAA\n", []),
        "note signature 1: '— xAAAA' is not '— <key name> <signature>'",
    ),
    _msg(lambda: open_note("a\n\n\u2014  AAAAAAA=\n", []), "note signature 1: key name is empty"),
    _msg(
        lambda: open_note("a\n\n\u2014 a+b AAAAAAA=\n", []),
        "note signature 1: key name 'a+b' contains a space, '+' or control",
    ),
    _msg(lambda: open_note(NOTE + "\u2014 x AAA!\n", []), "note signature 2: 'AAA!' is not base64"),
    _msg(
        lambda: open_note("a\n\n\u2014 x AAAAAAA\n", []),
        "note signature 1: 'AAAAAAA' is not base64",
    ),
    _msg(
        lambda: open_note("a\n\n\u2014 x AAB=\n", []),
        "note signature 1: 'AAB=' is not canonical base64",
    ),
    _msg(
        lambda: open_note("a\n\n\u2014 x AAAA\n", []),
        "note signature 1: 3 bytes, want a 4-byte key id and a signature",
    ),
    # signatures
    _msg(
        lambda: open_note(NOTE + BAD_SIG, [VERIFIER]),
        f"note signature 2: signature by {ORIGIN}+{KID} does not verify",
        NoteSignatureError,
    ),
    _msg(
        lambda: open_note(NOTE, [OTHER]),
        NOT_OTHER,
        NoteSignatureError,
    ),
    _msg(
        lambda: open_note(NOTE, []),
        f"note: no signature by a known key (found {ORIGIN}+{KID}; known none)",
        NoteSignatureError,
    ),
    _msg(
        lambda: sign_note(text="a", name="x", private_key=KEY),
        "note text: does not end with a newline",
    ),
    _msg(
        lambda: sign_note(text="a\tb\n", name="x", private_key=KEY),
        "note text: control character U+0009 at offset 1",
    ),
    _msg(
        lambda: sign_note(text="a\n", name="bad name", private_key=KEY),
        "note signer: key name 'bad name' contains a space, '+' or control",
    ),
    # vkeys
    _msg(
        lambda: format_vkey(name="x", public_key=bytes(31)),
        "vkey x: Ed25519 public key is 31 bytes, want 32",
    ),
    _msg(lambda: format_vkey(name="", public_key=PUB), "vkey: key name is empty"),
    _msg(lambda: parse_vkey("a+b"), "vkey 'a+b': want <name>+<key id>+<key>, found 2 part(s)"),
    _msg(
        lambda: parse_vkey("a b+" + VKEY.split("+", 1)[1]),
        "vkey: key name 'a b' contains a space, '+' or control",
    ),
    _msg(
        lambda: parse_vkey(VKEY.replace(KID, KID.upper() + "0")),
        f"vkey {ORIGIN}: key id '{KID.upper()}0' is not 8 lowercase hex digits",
    ),
    _msg(lambda: parse_vkey(f"{ORIGIN}+{KID}+AQ!"), f"vkey {ORIGIN}: key: 'AQ!' is not base64"),
    _msg(
        lambda: parse_vkey(f"{ORIGIN}+{KID}+{_b64(bytes([2]) + PUB)}"),
        f"vkey {ORIGIN}: signature type is 02, want 01 (Ed25519)",
    ),
    _msg(
        lambda: parse_vkey(f"{ORIGIN}+{KID}+"),
        f"vkey {ORIGIN}: signature type is , want 01 (Ed25519)",
    ),
    _msg(
        lambda: parse_vkey(f"{ORIGIN}+{KID}+{_b64(bytes([1]) + PUB[:31])}"),
        f"vkey {ORIGIN}: Ed25519 key is 31 bytes, want 32",
    ),
    _msg(
        lambda: parse_vkey(VKEY.replace(KID, "00000000")),
        f"vkey {ORIGIN}: key id is 00000000, the key's id is {KID}",
    ),
    # checkpoints
    _msg(lambda: parse_checkpoint(BODY[:-1]), "checkpoint: does not end with a newline"),
    _msg(
        lambda: parse_checkpoint("o\n1\n"), "checkpoint: 2 line(s), want origin, size and root hash"
    ),
    _msg(lambda: parse_checkpoint(f"\n1\n{HASH}\n"), "checkpoint line 1: origin is empty"),
    _msg(
        lambda: parse_checkpoint(f"o\n01\n{HASH}\n"),
        "checkpoint line 2: tree size: '01' is not a decimal without leading zeros",
    ),
    _msg(
        lambda: parse_checkpoint(f"o\n{2**64}\n{HASH}\n"),
        f"checkpoint line 2: tree size: '{2**64}' is not a decimal without leading zeros",
    ),
    _msg(
        lambda: parse_checkpoint(f"o\n+1\n{HASH}\n"),
        "checkpoint line 2: tree size: '+1' is not a decimal without leading zeros",
    ),
    _msg(
        lambda: parse_checkpoint(f"o\n1\n{_b64(ROOT[:31])}\n"),
        "checkpoint line 3: root hash: 31 bytes, want 32",
    ),
    _msg(
        lambda: parse_checkpoint(f"o\n0\n{HASH}\n"),
        "checkpoint line 3: tree size 0 needs the empty tree's root hash",
    ),
    _msg(
        lambda: parse_checkpoint(f"o\n1\n{HASH}\next\n\n"),
        "checkpoint line 5: extension line is empty",
    ),
    _msg(
        lambda: parse_checkpoint(f"o\x00\n1\n{HASH}\n"),
        "checkpoint: control character U+0000 at offset 1",
    ),
    _msg(
        lambda: format_checkpoint_body(origin="a\nb", size=1, root=ROOT),
        "checkpoint: origin or an extension line holds a newline",
    ),
    _msg(
        lambda: format_checkpoint_body(origin="a", size=1, root=ROOT, extensions=["x\n"]),
        "checkpoint: origin or an extension line holds a newline",
    ),
    _msg(
        lambda: format_checkpoint_body(origin="a", size=-1, root=ROOT),
        "checkpoint line 2: tree size: '-1' is not a decimal without leading zeros",
    ),
    _msg(
        lambda: sign_checkpoint(origin="a b", size=1, root=ROOT, private_key=KEY),
        "note signer: key name 'a b' contains a space, '+' or control",
    ),
    _msg(lambda: verify_checkpoint(WRONG_ORIGIN, O2), "checkpoint: origin 'o1' is not the key o2"),
    # tlog-proof
    _msg(lambda: parse_tlog_proof(b"\xc3("), "tlog-proof: not valid UTF-8 at byte 0"),
    _msg(
        lambda: parse_tlog_proof("c2sp.org/tlog-proof@v1\nindex 0\n"),
        "tlog-proof: no blank line before the checkpoint",
    ),
    _msg(
        lambda: parse_tlog_proof(P3.replace("@v1", "@v2", 1)),
        "tlog-proof line 1: 'c2sp.org/tlog-proof@v2' is not c2sp.org/tlog-proof@v1",
    ),
    _msg(
        lambda: parse_tlog_proof(P3.replace(P3_LINES[1], "extra a")),
        "tlog-proof line 2: extra: 'a' is not base64",
    ),
    _msg(
        lambda: parse_tlog_proof(P3.replace(P3_LINES[1], "extra ")),
        "tlog-proof line 2: extra is empty (omit the line instead)",
    ),
    _msg(
        lambda: parse_tlog_proof(P3.replace(P3_LINES[1], "extra: x")),
        "tlog-proof line 2: want 'index <N>'",
    ),
    _msg(
        lambda: parse_tlog_proof("c2sp.org/tlog-proof@v1\n\n" + NOTE),
        "tlog-proof line 2: want 'index <N>'",
    ),
    _msg(
        lambda: parse_tlog_proof(P3.replace("index 3", "index 03")),
        "tlog-proof line 3: index: '03' is not a decimal without leading zeros",
    ),
    _msg(
        lambda: parse_tlog_proof(P3.replace(P3_LINES[3], _b64(ROOT[:31]))),
        "tlog-proof line 4: proof hash: 31 bytes, want 32",
    ),
    _msg(
        lambda: format_tlog_proof(index=0, proof=[ROOT] * 64, checkpoint_note=NOTE),
        "tlog-proof: 64 proof lines, at most 63",
    ),
    _msg(
        lambda: format_tlog_proof(index=0, proof=[], checkpoint_note=BODY),
        "tlog-proof checkpoint: no blank line before the signatures",
    ),
    _msg(
        lambda: format_tlog_proof(index=0, proof=[], checkpoint_note=NOTE, extra=b""),
        "tlog-proof line 2: extra is empty (omit the line instead)",
    ),
    _msg(
        lambda: verify_tlog_proof(P3.replace(P3_LINES[1] + "\n", ""), verifier=VKEY),
        "tlog-proof: no extra line, so no leaf to check",
    ),
    _msg(
        lambda: verify_tlog_proof(P3, verifier=OTHER),
        NOT_OTHER,
        NoteSignatureError,
    ),
    _msg(
        lambda: verify_tlog_proof(_proof(3, extra=b"x"), verifier=VKEY),
        f"tlog-proof: index 3 in tree size 8: root mismatch: computed {X_ROOT.hex()}, "
        f"expected {ROOT.hex()}",
        ProofError,
    ),
    _msg(
        lambda: verify_tlog_proof(P3.replace("index 3", "index 8"), verifier=VKEY),
        "tlog-proof: index 8 in tree size 8: index 8 is beyond size 8",
        ProofError,
    ),
    _msg(
        lambda: verify_tlog_proof(P3.replace(P3_LINES[3] + "\n", ""), verifier=VKEY),
        "tlog-proof: index 3 in tree size 8: wrong proof size 2, want 3",
        ProofError,
    ),
    _msg(
        lambda: parse_unverified_checkpoint(BODY),
        "checkpoint note: no blank line before the signatures",
    ),
    # witness requests
    _msg(
        lambda: parse_witness_request("old 0\n"),
        "witness request: no blank line before the checkpoint",
    ),
    _msg(
        lambda: parse_witness_request("olde 3\n\n" + NOTE),
        "witness request line 1: 'olde 3' is not 'old <N>'",
    ),
    _msg(
        lambda: parse_witness_request("old 03\n\n" + NOTE),
        "witness request line 1: old size: '03' is not a decimal without leading zeros",
    ),
    _msg(
        lambda: parse_witness_request("old 3\nx\n\n" + NOTE),
        "witness request line 2: proof hash: 'x' is not base64",
    ),
    _msg(
        lambda: format_witness_request(old_size=1, proof=[ROOT] * 64, checkpoint_note=NOTE),
        "witness request: 64 proof lines, at most 63",
    ),
    _msg(
        lambda: format_witness_request(
            old_size=1, proof=[], checkpoint_note=NOTE.replace("\n8\n", "\n08\n")
        ),
        "checkpoint line 2: tree size: '08' is not a decimal without leading zeros",
    ),
    _msg(
        lambda: parse_witness_request("old 1\n\n" + NOTE.replace(SIG, "")),
        "witness request checkpoint: no signature lines after the blank line",
    ),
]


@pytest.mark.parametrize(("call", "exc", "message"), MESSAGES)
def test_error_messages(call: Callable[[], object], exc: type[Exception], message: str) -> None:
    check(call, exc, message)


@pytest.mark.parametrize("index", [0, 5, 7])
def test_every_single_bit_flip_of_a_tlog_proof_is_detected(index: int) -> None:
    data = PROOF_TEXTS[index]
    undetected = []
    for position in range(len(data)):
        for bit in range(8):
            try:
                verify_tlog_proof(_flip(data, position, bit), verifier=VERIFIER)
            except (CheckpointError, ProofError):
                continue
            undetected.append((position, bit))
    assert undetected == []
