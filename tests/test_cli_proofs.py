"""``checkpoint``, ``prove`` and ``verify-proof`` from the command line (SPEC §4, §5).

An inclusion proof must verify anywhere with nothing but the proof file and the log's vkey,
and any change to the file must make it fail with exit 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.cli import main
from ledger.errors import LedgerError, ProofError
from ledger.store.sqlite import Draft, Ledger
from ledger.tlog import merkle
from ledger.tlog.notes import format_vkey, parse_witness_request, verify_checkpoint
from ledger.tlog.proofs import sign_current_checkpoint, verify_event_proof
from tests.conftest import ORIGIN, Cli, LedgerKeys, populate

GOVLEDGER = str(Path(sys.executable).parent / "govledger")


def cli(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["--db", str(tmp_path / "l.db"), "--keys", str(tmp_path / "keys"), *args],
        catch_exceptions=False,
    )


@pytest.fixture
def log(ledger: Ledger, keys: LedgerKeys) -> Ledger:
    """25 events: ledger.created, the recorder key, an agent and two runs."""
    populate(ledger, keys, runs=2)
    assert ledger.size == 25
    return ledger


@pytest.fixture
def vkey(log: Ledger, tmp_path: Path) -> str:
    result = cli(tmp_path, "keys", "vkey", "root")
    assert result.exit_code == 0
    return result.stdout.strip()


def prove(tmp_path: Path, *args: str) -> bytes:
    out = tmp_path / "proof"
    result = cli(tmp_path, "prove", *args, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    return out.read_bytes()


# --- prove / verify-proof -------------------------------------------------------------------


def test_proof_verifies_offline_in_another_directory_without_a_database(
    log: Ledger, vkey: str, tmp_path: Path
) -> None:
    proof = tmp_path / "proof"
    proof.write_bytes(prove(tmp_path, "7"))
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "GOVLEDGER_DB"}
    env["GOVLEDGER_KEYS"] = str(elsewhere / "no-keys")
    done = subprocess.run(
        [GOVLEDGER, "verify-proof", str(proof), "--vkey", vkey, "--json"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    event = log.event_at(7)
    assert (out["seq"], out["type"], out["hash"]) == (7, event.type, event.hash)
    assert (out["origin"], out["size"], out["root"]) == (ORIGIN, 25, log.root_at(25).hex())
    assert out["event"]["payload"] == event.payload
    assert list(elsewhere.iterdir()) == []  # no database was created or needed


def test_verify_proof_human_output(log: Ledger, vkey: str, tmp_path: Path) -> None:
    proof = tmp_path / "p"
    proof.write_bytes(prove(tmp_path, "3"))
    result = cli(tmp_path, "verify-proof", str(proof), "--vkey", vkey)
    event = log.event_at(3)
    assert result.exit_code == 0
    assert result.stdout == (
        f"ok: seq 3 ({event.type}, {event.ts}) is in {ORIGIN} at size 25\nevent hash {event.hash}\n"
    )


def test_prove_embeds_latest_stored_checkpoint_covering_seq(
    log: Ledger, keys: LedgerKeys, tmp_path: Path, vkey: str
) -> None:
    sign_current_checkpoint(log, keys.root)  # size 25
    log.append(Draft("x.note", {"n": 1}), signer=keys.recorder)
    assert verify_event_proof(prove(tmp_path, "5"), vkey=vkey).checkpoint.size == 25
    # Nothing stored covers seq 26: a checkpoint is signed with root at the current size.
    assert verify_event_proof(prove(tmp_path, "26"), vkey=vkey).checkpoint.size == 26
    # --signer signs a fresh one even when a stored checkpoint covers the seq.
    log.append(Draft("x.note", {"n": 2}), signer=keys.recorder)
    proven = verify_event_proof(prove(tmp_path, "5", "--signer", "root"), vkey=vkey)
    assert proven.checkpoint.size == 27


def test_every_byte_flip_of_a_proof_is_refused_with_exit_1(
    log: Ledger, vkey: str, tmp_path: Path
) -> None:
    data = prove(tmp_path, "12")
    verify_event_proof(data, vkey=vkey)
    accepted: list[tuple[int, int]] = []
    wrong_exit: list[tuple[int, int, int]] = []
    # Every byte with its lowest bit flipped, and every third byte with bit 5 or bit 7.
    for mask, start, step in ((0x01, 0, 1), (0x20, 0, 3), (0x80, 1, 3)):
        for i in range(start, len(data), step):
            flipped = bytearray(data)
            flipped[i] ^= mask
            try:
                verify_event_proof(bytes(flipped), vkey=vkey)
            except LedgerError as e:
                if e.exit_code != 1:
                    wrong_exit.append((i, mask, e.exit_code))
            else:
                accepted.append((i, mask))
    assert (accepted, wrong_exit) == ([], [])


def _region(data: bytes, region: str) -> int:
    """Offset of one byte inside a region of a tlog-proof: what the flip test targets."""
    text = data.decode("utf-8")
    lines = text.split("\n")
    starts = [sum(len(ln) + 1 for ln in lines[:k]) for k in range(len(lines))]
    head_end = text.index("\n\n")
    note = head_end + 2
    where = {
        "extra": starts[1] + len("extra ") + 10,
        "index": starts[2] + len("index "),
        "proof-hash": starts[3] + 5,
        "checkpoint-origin": note + 2,
        "checkpoint-size": note + len(ORIGIN) + 1,
        "checkpoint-root": note + text[note:].index("\n", len(ORIGIN) + 1) + 4,
        "signature": len(data) - 10,
    }
    return where[region]


@pytest.mark.parametrize(
    "region",
    [
        "extra",
        "index",
        "proof-hash",
        "checkpoint-origin",
        "checkpoint-size",
        "checkpoint-root",
        "signature",
    ],
)
def test_cli_refuses_a_tampered_proof_with_exit_1(
    log: Ledger, vkey: str, tmp_path: Path, region: str
) -> None:
    data = bytearray(prove(tmp_path, "12"))
    data[_region(bytes(data), region)] ^= 0x01
    proof = tmp_path / "tampered"
    proof.write_bytes(bytes(data))
    result = cli(tmp_path, "verify-proof", str(proof), "--vkey", vkey)
    assert result.exit_code == 1, result.stdout
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_tampered_index_message_names_index_and_roots(
    log: Ledger, vkey: str, tmp_path: Path
) -> None:
    data = prove(tmp_path, "12").replace(b"\nindex 11\n", b"\nindex 10\n")
    proof = tmp_path / "tampered"
    proof.write_bytes(data)
    result = cli(tmp_path, "verify-proof", str(proof), "--vkey", vkey)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: tlog-proof: index 10 in tree size 25: ")


def test_proof_that_is_not_utf8_is_exit_1(log: Ledger, vkey: str, tmp_path: Path) -> None:
    proof = tmp_path / "bad"
    proof.write_bytes(b"\xff" + prove(tmp_path, "2"))
    result = cli(tmp_path, "verify-proof", str(proof), "--vkey", vkey)
    assert result.exit_code == 1
    assert result.stderr == "error: tlog-proof: not valid UTF-8 at byte 0\n"


@pytest.mark.parametrize("who", ["recorder-key", "other-origin"])
def test_verify_proof_with_the_wrong_vkey_is_exit_1(
    log: Ledger, keys: LedgerKeys, tmp_path: Path, who: str
) -> None:
    proof = tmp_path / "p"
    proof.write_bytes(prove(tmp_path, "4"))
    wrong = (
        format_vkey(name=ORIGIN, public_key=keys.recorder.public_key)
        if who == "recorder-key"
        else format_vkey(name="other.example/log", public_key=keys.root.public_key)
    )
    result = cli(tmp_path, "verify-proof", str(proof), "--vkey", wrong)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")


def test_prove_with_a_recorder_key_is_refused_with_exit_2(log: Ledger, tmp_path: Path) -> None:
    before = log.conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    result = cli(tmp_path, "prove", "3", "--signer", "recorder")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: key recorder is a recorder key; checkpoints are signed by governor keys\n"
    )
    assert result.stdout == ""
    assert log.conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == before


def test_checkpoint_with_a_recorder_key_is_refused_with_exit_2(tmp_path: Path, log: Ledger) -> None:
    result = cli(tmp_path, "checkpoint", "--signer", "recorder")
    assert result.exit_code == 2
    assert "recorder key; checkpoints are signed by governor keys" in result.stderr


def test_prove_beyond_the_log_is_exit_2(log: Ledger, tmp_path: Path) -> None:
    result = cli(tmp_path, "prove", "26")
    assert result.exit_code == 2
    assert result.stderr == "error: seq 26 is not in the log (size 25)\n"


# --- checkpoint and consistency -------------------------------------------------------------


def test_checkpoint_prints_a_note_that_verifies_with_the_vkey(
    log: Ledger, vkey: str, tmp_path: Path
) -> None:
    result = cli(tmp_path, "checkpoint", "--signer", "root")
    assert result.exit_code == 0
    cp = verify_checkpoint(result.stdout, vkey)
    assert (cp.origin, cp.size, cp.root) == (ORIGIN, 25, log.root_at(25))


def test_prove_consistency_output_is_a_witness_request_that_verifies(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path
) -> None:
    populate(ledger, keys, runs=1)
    old_file = tmp_path / "old"
    assert cli(tmp_path, "checkpoint", "--signer", "root", "-o", str(old_file)).exit_code == 0
    ledger.append_many([Draft("x.note", {"n": n}) for n in range(11)], signer=keys.recorder)
    vkey = cli(tmp_path, "keys", "vkey", "root").stdout.strip()
    result = cli(tmp_path, "prove", "--consistency", str(old_file))
    assert result.exit_code == 0, result.stderr
    request = parse_witness_request(result.stdout)
    old = verify_checkpoint(old_file.read_text(encoding="utf-8"), vkey)
    new = verify_checkpoint(request.checkpoint_note, vkey)
    assert (request.old_size, old.size, new.size) == (14, 14, 25)
    leaves = [bytes.fromhex(e.hash) for e in ledger.iter_events()]
    assert (old.root, new.root) == (merkle.root(leaves[:14]), merkle.root(leaves))
    merkle.verify_consistency(
        size1=old.size, size2=new.size, proof=request.proof, root1=old.root, root2=new.root
    )
    broken = [request.proof[0][::-1], *request.proof[1:]]
    with pytest.raises(ProofError):
        merkle.verify_consistency(
            size1=old.size, size2=new.size, proof=broken, root1=old.root, root2=new.root
        )


def test_prove_consistency_refuses_a_checkpoint_of_another_branch(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path
) -> None:
    populate(ledger, keys, runs=1)
    other = Ledger.create(tmp_path / "other.db", origin=ORIGIN, root=keys.root)
    with other:
        other.append_many([Draft("x.note", {"n": n}) for n in range(5)], signer=keys.root)
        note = sign_current_checkpoint(other, keys.root)
    old_file = tmp_path / "old"
    old_file.write_text(note, encoding="utf-8")
    result = cli(tmp_path, "prove", "--consistency", str(old_file))
    assert result.exit_code == 1
    assert result.stderr == "error: old checkpoint root differs from this log's root at size 6\n"


def test_prove_consistency_refuses_a_larger_old_checkpoint(
    log: Ledger, keys: LedgerKeys, tmp_path: Path
) -> None:
    old_file = tmp_path / "old"
    assert cli(tmp_path, "checkpoint", "--signer", "root", "-o", str(old_file)).exit_code == 0
    short = Ledger.create(tmp_path / "short.db", origin=ORIGIN, root=keys.root)
    short.close()
    result = CliRunner().invoke(
        main,
        [
            "--db",
            str(tmp_path / "short.db"),
            "--keys",
            str(tmp_path / "keys"),
            "prove",
            "--consistency",
            str(old_file),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    assert result.stderr == "error: old checkpoint has size 25, the log only 1: truncated\n"


def test_vkey_comes_from_the_log_and_only_for_governor_keys(ready: Cli) -> None:
    vkey = ready("keys", "vkey", "root").stdout
    (ready.keys / "root.pem").unlink()  # an auditor has no private key
    assert ready("keys", "vkey", "root").stdout == vkey
    result = ready("keys", "vkey", "rec", ok=False)
    assert result.exit_code == 2
    assert "rec is a recorder key" in result.stderr
