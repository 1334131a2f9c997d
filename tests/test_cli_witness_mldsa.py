"""ML-DSA-44 witnesses from the command line: ``witness new --type ml-dsa-44``, cosigning a
real ledger's checkpoints with it, and auditors checking them beside Ed25519 witnesses."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey

from ledger.store.sqlite import Draft, Ledger
from ledger.tlog.cosignatures import parse_witness_vkey
from ledger.tlog.notes import split_note
from tests.conftest import Cli, log_vkey, new_witness


def _cosign_into(cli: Cli, file: str, key: str) -> None:
    path = cli.tmp / file
    line = cli("witness", "cosign", str(path), "--key", key, "--log", log_vkey(cli)).stdout
    with path.open("a", encoding="utf-8") as f:
        f.write(line)


def test_witness_new_type_ml_dsa_44_writes_a_0600_seed_key_and_a_type_06_vkey(log: Cli) -> None:
    out = log.json("witness", "new", "m1", "--name", "pq.example/m1", "--type", "ml-dsa-44")
    pem = log.keys / "m1.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert pem.read_text(encoding="utf-8").startswith("-----BEGIN PRIVATE KEY-----\n")
    w = parse_witness_vkey(out["vkey"])
    assert (w.signature_type, len(w.public_key)) == (6, 1312)
    assert base64.b64decode(out["vkey"].split("+", 2)[2])[0] == 6
    assert (out["name"], out["type"], out["key_id"]) == (
        "pq.example/m1",
        "ml-dsa-44",
        w.key_id.hex(),
    )
    key = log.ring().load_witness_key("m1")
    assert isinstance(key, MLDSA44PrivateKey)
    assert key.public_key().public_bytes_raw() == w.public_key
    assert (log.keys / "m1.vkey").read_text(encoding="utf-8") == out["vkey"] + "\n"
    assert log("witness", "vkey", "m1").stdout == out["vkey"] + "\n"
    # the default type is still Ed25519
    assert parse_witness_vkey(new_witness(log, "e1", "ed.example/e1")).signature_type == 4


def test_an_ml_dsa_witness_key_cannot_sign_the_log(log: Cli) -> None:
    new_witness(log, "m1", "pq.example/m1", "--type", "ml-dsa-44")
    result = log("checkpoint", "--signer", "m1", ok=False)
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: key 'm1': {log.keys / 'm1.pem'} is not an Ed25519 key (an ML-DSA-44 witness "
        "key signs only cosignatures)\n"
    )


def test_witness_new_refuses_an_unknown_type(log: Cli) -> None:
    result = log("witness", "new", "m1", "--name", "w", "--type", "ml-dsa-65", ok=False)
    assert result.exit_code == 2
    assert "'ml-dsa-65' is not one of 'ed25519', 'ml-dsa-44'" in result.stderr
    assert not (log.keys / "m1.pem").exists()


def test_ml_dsa_and_ed25519_witnesses_cosign_and_auditors_count_both(log: Cli) -> None:
    m1 = new_witness(log, "m1", "pq.example/m1", "--type", "ml-dsa-44")
    e1 = new_witness(log, "e1", "ed.example/e1")
    m2 = new_witness(log, "m2", "pq.example/m2", "--type", "ml-dsa-44")
    vkey = log_vkey(log)
    # (1) the first checkpoint, cosigned by m1 and e1
    log("checkpoint", "--signer", "root", "-o", str(log.tmp / "cp.txt"))
    for key in ("m1", "e1"):
        _cosign_into(log, "cp.txt", key)
    # (2) the log grows; m1 cosigns the next from a consistency request, and keeps it
    with Ledger.open(log.db) as ledger:
        ledger.append_many(
            [Draft("x.note", {"m": i}) for i in range(3)], signer=log.ring().load("rec")
        )
    request = log.tmp / "request.txt"
    log("prove", "--consistency", str(log.tmp / "cp.txt"), "-o", str(request))
    out = log.json("witness", "cosign", str(request), "--key", "m1", "--log", vkey, "--note")
    assert (out["old_size"], out["size"], out["witness"]) == (6, 9, "pq.example/m1")
    assert out["key_id"] == parse_witness_vkey(m1).key_id.hex()
    cp2 = log.tmp / "cp2.txt"
    e1_line = log("witness", "cosign", str(request), "--key", "e1", "--log", vkey).stdout
    cp2.write_text(out["text"] + e1_line, encoding="utf-8")
    # (3) a proof that embeds it, verified offline against both types of witness
    proof = log.tmp / "p.tlog-proof"
    log("prove", "7", "--checkpoint", str(cp2), "-o", str(proof))
    both = ["--witness", m1, "--witness", e1]
    result = log("verify-proof", str(proof), "--vkey", vkey, *both)
    assert "cosigned by 2 of 2 witnesses (quorum 2): pq.example/m1 at " in result.stdout
    ok = log.json(
        "witness", "verify", str(cp2), "--vkey", vkey, *both, "--witness", m2, "--quorum", "2"
    )
    assert [(w["name"], w["cosigned"]) for w in ok["witnesses"]] == [
        ("pq.example/m1", True),
        ("ed.example/e1", True),
        ("pq.example/m2", False),
    ]
    whole = log("verify", "--checkpoint", str(cp2), *both)
    assert "cosigned by 2 of 2 witnesses (quorum 2): pq.example/m1, ed.example/e1\n" in whole.stdout
    bad = log("witness", "verify", str(cp2), "--vkey", vkey, *both, "--witness", m2, ok=False)
    assert bad.exit_code == 1
    assert bad.stderr == (
        "error: witness cosignatures: 2 of 3 witnesses cosigned, want at least 3; missing: "
        f"{parse_witness_vkey(m2).label}\n"
    )


def test_a_tampered_ml_dsa_cosignature_fails_the_checkpoint(log: Cli) -> None:
    m1 = new_witness(log, "m1", "pq.example/m1", "--type", "ml-dsa-44")
    cp = log.tmp / "cp.txt"
    log("checkpoint", "--signer", "root", "-o", str(cp))
    clean = cp.read_text(encoding="utf-8")
    line = log("witness", "cosign", str(cp), "--key", "m1", "--log", log_vkey(log)).stdout
    name, sig = split_note("x\n\n" + line)[1][0]
    forged = f"\u2014 {name} {base64.b64encode(sig[:100] + bytes([sig[100] ^ 1]) + sig[101:]).decode()}\n"
    cp.write_text(clean + forged, encoding="utf-8")
    result = log("witness", "verify", str(cp), "--vkey", log_vkey(log), "--witness", m1, ok=False)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: witness cosignatures: cosignature by {parse_witness_vkey(m1).label} "
        "(note signature 2) does not verify\n"
    )
    cp.write_text(clean + line, encoding="utf-8")
    assert (
        log("witness", "verify", str(cp), "--vkey", log_vkey(log), "--witness", m1).exit_code == 0
    )


def test_an_encrypted_ml_dsa_key_cosigns_with_its_passphrase(
    log: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVLEDGER_PASSPHRASE", "correct horse")
    m1 = new_witness(log, "m1", "pq.example/m1", "--type", "ml-dsa-44")
    assert "ENCRYPTED" in (log.keys / "m1.pem").read_text(encoding="utf-8").splitlines()[0]
    cp = log.tmp / "cp.txt"
    log("checkpoint", "--signer", "root", "-o", str(cp))
    _cosign_into(log, "cp.txt", "m1")
    assert (
        log("witness", "verify", str(cp), "--vkey", log_vkey(log), "--witness", m1).exit_code == 0
    )
    monkeypatch.setenv("GOVLEDGER_PASSPHRASE", "wrong")
    result = log("witness", "cosign", str(cp), "--key", "m1", "--log", log_vkey(log), ok=False)
    assert result.exit_code == 3
    assert "cannot load" in result.stderr and "wrong passphrase or damaged file" in result.stderr
