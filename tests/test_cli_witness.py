"""``witness new|vkey|cosign|verify``, ``prove --checkpoint`` and ``verify-proof --witness``
from the command line: a real ledger, real key files, the witness's state on disk."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.store.sqlite import Draft, Ledger
from ledger.tlog.cosignatures import format_witness_vkey, parse_witness_vkey
from ledger.tlog.notes import split_note
from tests.conftest import ORIGIN, Cli, log_vkey, new_witness

GOVLEDGER = str(Path(sys.executable).parent / "govledger")


def _cosign(cli: Cli, file: Path, key: str, *args: str) -> str:
    return str(
        cli("witness", "cosign", str(file), "--key", key, "--log", log_vkey(cli), *args).stdout
    )


def _append(cli: Cli, n: int) -> None:
    with Ledger.open(cli.db) as ledger:
        signer = cli.ring().load("rec")
        ledger.append_many([Draft("x.note", {"m": i}) for i in range(n)], signer=signer)


def _checkpoint(cli: Cli, name: str = "cp.txt") -> Path:
    path = cli.tmp / name
    cli("checkpoint", "--signer", "root", "-o", str(path))
    return path


def test_witness_new_writes_a_private_key_and_its_vkey(log: Cli) -> None:
    out = log.json("witness", "new", "w1", "--name", "witness.example/w1")
    pem, vkey_file = log.keys / "w1.pem", log.keys / "w1.vkey"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert vkey_file.read_text(encoding="utf-8") == out["vkey"] + "\n"
    w = parse_witness_vkey(out["vkey"])
    assert (out["key"], out["name"], out["key_id"]) == ("w1", "witness.example/w1", w.key_id.hex())
    assert w.public_key == log.ring().load("w1").public_key
    assert log("witness", "vkey", "w1").stdout == out["vkey"] + "\n"
    with Ledger.open(log.db) as ledger:
        assert ledger.size == 6  # no ledger event: a witness key is not the log's


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["w1", "--name", "a b"],
            "--name 'a b': a witness name is not empty and holds no space, '+' or control "
            "character (e.g. witness.example/w1)",
        ),
        (["w1", "--name", ""], "--name '': a witness name is not empty and holds no space"),
        (["bad/key", "--name", "w"], "key name 'bad/key' is not valid"),
        (["root", "--name", "w"], "key 'root' already exists in "),
    ],
)
def test_witness_new_refuses_bad_names_with_exit_2(log: Cli, args: list[str], message: str) -> None:
    result = log("witness", "new", *args, ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: " + message)
    assert not (log.keys / "w1.pem").exists()


def test_the_whole_path_from_checkpoint_to_a_proof_the_auditor_accepts(log: Cli) -> None:
    w1 = new_witness(log, "w1", "witness.example/w1")
    w2 = new_witness(log, "w2", "witness.example/w2")
    w3 = new_witness(log, "w3", "witness.example/w3")
    vkey = log_vkey(log)
    # (1) the first checkpoint, cosigned by w1 and w2 as a bare checkpoint
    cp = _checkpoint(log)
    for key in ("w1", "w2"):
        line = _cosign(log, cp, key)
        assert line.startswith(f"\u2014 witness.example/{key} ") and line.count("\n") == 1
        with cp.open("a", encoding="utf-8") as f:
            f.write(line)
    # (2) the log grows; the witnesses cosign the next one from a consistency request
    _append(log, 5)
    request = log.tmp / "request.txt"
    log("prove", "--consistency", str(cp), "-o", str(request))
    cp2 = log.tmp / "cp2.txt"
    out = log.json("witness", "cosign", str(request), "--key", "w1", "--log", vkey, "--note")
    assert (out["old_size"], out["size"], out["witness"]) == (6, 11, "witness.example/w1")
    cp2.write_text(out["text"], encoding="utf-8")
    cp2.write_text(cp2.read_text(encoding="utf-8") + _cosign(log, request, "w2"), "utf-8")
    # (3) a proof that embeds it, verified offline with the witnesses
    proof = log.tmp / "p.tlog-proof"
    log("prove", "9", "--checkpoint", str(cp2), "-o", str(proof))
    result = log("verify-proof", str(proof), "--vkey", vkey, "--witness", w1, "--witness", w2)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok: seq 9 (x.note, ") and lines[0].endswith("at size 11")
    assert lines[2].startswith("cosigned by 2 of 2 witnesses (quorum 2): witness.example/w1 at 20")
    witnesses = log.tmp / "witnesses.txt"
    witnesses.write_text(f"# the auditor's witnesses\n{w1}\n\n{w2}\n{w3}\n", encoding="utf-8")
    got = log.json(
        "verify-proof", str(proof), "--vkey", vkey, "--witness", f"@{witnesses}", "--quorum", "2"
    )
    assert got["quorum"] == 2
    assert [(w["name"], w["cosigned"]) for w in got["witnesses"]] == [
        ("witness.example/w1", True),
        ("witness.example/w2", True),
        ("witness.example/w3", False),
    ]
    assert got["witnesses"][0]["timestamp"] == out["timestamp"]
    assert got["witnesses"][2] == {
        "name": "witness.example/w3",
        "key_id": parse_witness_vkey(w3).key_id.hex(),
        "vkey": w3,
        "cosigned": False,
        "timestamp": None,
    }
    # (4) all three required: fails closed, naming who is missing
    result = log("verify-proof", str(proof), "--vkey", vkey, "--witness", f"@{witnesses}", ok=False)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: witness cosignatures: 2 of 3 witnesses cosigned, want at least 3; missing: "
        f"{parse_witness_vkey(w3).label}\n"
    )
    # witness verify says the same of the checkpoint itself
    ok = log("witness", "verify", str(cp2), "--vkey", vkey, "--witness", w1, "--witness", w2)
    assert ok.stdout.startswith(f"ok: {ORIGIN} at size 11, root ")
    bad = log("witness", "verify", str(cp2), "--vkey", vkey, "--witness", f"@{witnesses}", ok=False)
    assert (bad.exit_code, bad.stderr) == (1, result.stderr)


def test_verify_proof_without_witnesses_reports_none(log: Cli) -> None:
    proof = log.tmp / "p"
    log("prove", "3", "-o", str(proof))
    got = log.json("verify-proof", str(proof), "--vkey", log_vkey(log))
    assert (got["witnesses"], got["quorum"]) == ([], 0)


def test_a_tampered_cosignature_fails_the_proof_even_with_the_quorum_met(log: Cli) -> None:
    w1 = new_witness(log, "w1", "witness.example/w1")
    w2 = new_witness(log, "w2", "witness.example/w2")
    cp = _checkpoint(log)
    lines = [_cosign(log, cp, "w1"), _cosign(log, cp, "w2")]
    name, sig = split_note("x\n\n" + lines[1])[1][0]
    forged = f"\u2014 {name} {base64.b64encode(sig[:-1] + bytes([sig[-1] ^ 1])).decode()}\n"
    cp.write_text(cp.read_text(encoding="utf-8") + lines[0] + forged, encoding="utf-8")
    proof = log.tmp / "p"
    log("prove", "2", "--checkpoint", str(cp), "-o", str(proof))
    args = ["verify-proof", str(proof), "--vkey", log_vkey(log), "--witness", w1, "--witness", w2]
    result = log(*args, "--quorum", "1", ok=False)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: witness cosignatures: cosignature by {parse_witness_vkey(w2).label} "
        "(note signature 3) does not verify\n"
    )
    assert log(*args[:-2], "--quorum", "1").exit_code == 0  # w2 not required: its line ignored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--witness", "w+00000000+AAAA"], "--witness: vkey w: signature type is 00, want 04"),
        (["--quorum", "1"], "--quorum needs --witness: the witnesses to count"),
        (
            ["--witness", "W1", "--quorum", "2"],
            "--quorum 2: only 1 witness(es) given with --witness",
        ),
        (["--witness", "@missing.txt"], "--witness: cannot read missing.txt"),
        (
            ["--witness", "LOG"],
            f"--witness: vkey {ORIGIN}: signature type is 01 (Ed25519), want 04",
        ),
    ],
)
def test_bad_witness_options_are_usage_errors(log: Cli, args: list[str], message: str) -> None:
    w1 = new_witness(log, "w1", "witness.example/w1")
    proof = log.tmp / "p"
    log("prove", "3", "-o", str(proof))
    args = [{"W1": w1, "LOG": log_vkey(log)}.get(a, a) for a in args]
    result = log("verify-proof", str(proof), "--vkey", log_vkey(log), *args, ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: " + message)


def test_a_bad_line_in_a_vkey_file_is_named(log: Cli) -> None:
    w1 = new_witness(log, "w1", "witness.example/w1")
    path = log.tmp / "ws.txt"
    path.write_text(f"{w1}\nnot a vkey\n", encoding="utf-8")
    proof = log.tmp / "p"
    log("prove", "3", "-o", str(proof))
    result = log(
        "verify-proof", str(proof), "--vkey", log_vkey(log), "--witness", f"@{path}", ok=False
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --witness {path} line 2: vkey 'not a vkey': want <name>+<key id>+<key>, "
        "found 1 part(s)\n"
    )


def test_one_key_under_two_witness_names_is_refused(log: Cli) -> None:
    w1 = new_witness(log, "w1", "witness.example/w1")
    alias = format_witness_vkey(name="alias.example", public_key=parse_witness_vkey(w1).public_key)
    proof = log.tmp / "p"
    log("prove", "3", "-o", str(proof))
    args = ["--witness", w1, "--witness", alias, "--quorum", "1"]
    result = log("verify-proof", str(proof), "--vkey", log_vkey(log), *args, ok=False)
    assert result.exit_code == 2
    assert "witness.example/w1 and alias.example have the same Ed25519 public key" in result.stderr


# --- the witness's checks -------------------------------------------------------------------


def test_cosign_refuses_a_request_not_from_its_last_checkpoint_with_exit_2(log: Cli) -> None:
    new_witness(log, "w1", "witness.example/w1")
    cp = _checkpoint(log)
    _cosign(log, cp, "w1")
    _append(log, 2)
    cp2 = _checkpoint(log, "cp2.txt")
    result = log("witness", "cosign", str(cp2), "--key", "w1", "--log", log_vkey(log), ok=False)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: old size 0 does not match: this witness last cosigned {ORIGIN} at size 6; "
        "send a consistency proof from that checkpoint\n"
    )
    state = Path(os.environ["GOVLEDGER_STATE"]) / "witness" / "w1"
    (kept,) = state.glob("*/checkpoint")
    assert kept.read_text(encoding="utf-8").split("\n")[1] == "6"  # unchanged
    request = log.tmp / "request.txt"
    log("prove", "--consistency", str(kept), "-o", str(request))  # from what the witness kept
    assert _cosign(log, request, "w1").startswith("\u2014 witness.example/w1 ")
    assert kept.read_text(encoding="utf-8").split("\n")[1] == "8"


def test_cosign_refuses_a_broken_consistency_proof_with_exit_1(log: Cli) -> None:
    new_witness(log, "w1", "witness.example/w1")
    cp = _checkpoint(log)
    _cosign(log, cp, "w1", "--state", str(log.tmp / "ws"))
    _append(log, 5)
    request = log.tmp / "request.txt"
    log("prove", "--consistency", str(cp), "-o", str(request))
    text = request.read_text(encoding="utf-8").split("\n")
    text[1], text[2] = text[2], text[1]  # two proof lines swapped
    request.write_text("\n".join(text), encoding="utf-8")
    args = ["--state", str(log.tmp / "ws")]
    result = log(
        "witness", "cosign", str(request), "--key", "w1", "--log", log_vkey(log), *args, ok=False
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: consistency proof from size 6 (last cosigned) to 11: ")


def test_cosign_refuses_a_checkpoint_the_log_key_did_not_sign(log: Cli) -> None:
    new_witness(log, "w1", "witness.example/w1")
    log("keys", "new", "ops", "--role", "governor")
    ops_vkey = log("keys", "vkey", "ops").stdout.strip()
    cp = _checkpoint(log)  # signed by root
    result = log("witness", "cosign", str(cp), "--key", "w1", "--log", ops_vkey, ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: note: no signature by a known key")
    assert not (Path(os.environ["GOVLEDGER_STATE"]) / "witness").exists()


def test_cosign_with_a_vkey_file_of_another_key_is_exit_3(log: Cli) -> None:
    new_witness(log, "w1", "witness.example/w1")
    other = new_witness(log, "w2", "witness.example/w2")
    (log.keys / "w1.vkey").write_text(other + "\n", encoding="utf-8")
    cp = _checkpoint(log)
    result = log("witness", "cosign", str(cp), "--key", "w1", "--log", log_vkey(log), ok=False)
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: witness key 'w1': {log.keys / 'w1.vkey'} is the vkey of another key\n"
    )
    result = log("witness", "cosign", str(cp), "--key", "root", "--log", log_vkey(log), ok=False)
    assert result.exit_code == 3
    assert "no " + str(log.keys / "root.vkey") in result.stderr


# --- verify --checkpoint --witness ---------------------------------------------------------


def test_verify_checkpoint_requires_the_witnesses_cosignatures(log: Cli) -> None:
    w1 = new_witness(log, "w1", "witness.example/w1")
    w2 = new_witness(log, "w2", "witness.example/w2")
    label1, label2 = parse_witness_vkey(w1).label, parse_witness_vkey(w2).label
    cp = _checkpoint(log)
    # (1) not cosigned: the log matches the checkpoint, the witnesses are missing
    result = log("verify", "--checkpoint", str(cp), "--witness", w1, ok=False)
    assert (result.exit_code, result.stderr) == (
        1,
        "error: seq 6: unwitnessed: witness cosignatures: 0 of 1 witnesses cosigned, want at "
        f"least 1; missing: {label1}\n",
    )
    # (2) cosigned by w1: passes with w1, with w1 or w2 at quorum 1, not with both required
    line1 = _cosign(log, cp, "w1")
    cp.write_text(cp.read_text(encoding="utf-8") + line1, encoding="utf-8")
    done = log("verify", "--checkpoint", str(cp), "--witness", w1)
    assert "consistent with checkpoint of size 6\ncosigned by 1 of 1 witnesses (quorum 1): " in (
        done.stdout
    )
    both = ["--witness", w1, "--witness", w2]
    report = log.json("verify", "--checkpoint", str(cp), *both, "--quorum", "1")
    assert report["ok"] is True
    assert report["checkpoint"]["quorum"] == 1
    assert [(w["name"], w["cosigned"]) for w in report["checkpoint"]["witnesses"]] == [
        ("witness.example/w1", True),
        ("witness.example/w2", False),
    ]
    result = log("verify", "--checkpoint", str(cp), *both, ok=False)
    assert result.stderr == (
        "error: seq 6: unwitnessed: witness cosignatures: 1 of 2 witnesses cosigned, want at "
        f"least 2; missing: {label2}\n"
    )
    # (3) an exported file is checked the same way
    export = log.tmp / "log.jsonl"
    log("export", "-o", str(export))
    log("verify", "--file", str(export), "--checkpoint", str(cp), "--witness", w1)
    # (4) a cosignature that does not verify fails whatever the quorum
    name, sig = split_note("x\n\n" + line1)[1][0]
    forged = f"\u2014 {name} {base64.b64encode(sig[:-1] + bytes([sig[-1] ^ 1])).decode()}\n"
    cp.write_text(cp.read_text(encoding="utf-8").replace(line1, forged), encoding="utf-8")
    report = json.loads(
        log("verify", "--checkpoint", str(cp), "--witness", w1, "--json", ok=False).stdout
    )
    assert report["problems"] == [
        {
            "seq": 6,
            "kind": "unwitnessed",
            "detail": f"witness cosignatures: cosignature by {label1} (note signature 2) does "
            "not verify",
        }
    ]


def test_verify_checks_cosignatures_only_of_the_logs_own_checkpoint(log: Cli) -> None:
    w1 = new_witness(log, "w1", "witness.example/w1")
    stranger = Cli(log.tmp / "stranger")  # another log with a root key of its own
    stranger.tmp.mkdir()
    stranger("init", "--origin", ORIGIN)
    cp = _checkpoint(stranger, "s.txt")
    report = json.loads(
        log("verify", "--checkpoint", str(cp), "--witness", w1, "--json", ok=False).stdout
    )
    assert [p["kind"] for p in report["problems"]] == ["checkpoint_mismatch"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--witness", "W1"], "--witness needs --checkpoint: the checkpoint whose cosignatures"),
        (["--checkpoint", "CP", "--witness", "W1", "--quorum", "2"], "--quorum 2: only 1 witness"),
        (["--checkpoint", "CP", "--quorum", "1"], "--quorum needs --witness: the witnesses"),
    ],
    ids=["no checkpoint", "quorum over the witnesses", "quorum alone"],
)
def test_verify_witness_options_are_usage_errors(log: Cli, args: list[str], message: str) -> None:
    subs = {"W1": new_witness(log, "w1", "witness.example/w1"), "CP": str(_checkpoint(log))}
    result = log("verify", *[subs.get(a, a) for a in args], ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: " + message)


# --- prove --checkpoint ---------------------------------------------------------------------


def test_prove_refuses_a_checkpoint_of_another_log_or_too_small(log: Cli) -> None:
    cp = _checkpoint(log)
    _append(log, 1)
    result = log("prove", "7", "--checkpoint", str(cp), ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: the checkpoint (size 6) does not cover seq 7\n",
    )
    stranger = Cli(log.tmp / "stranger")  # another log with a root key of its own
    stranger.tmp.mkdir()
    stranger("init", "--origin", ORIGIN)
    result = log("prove", "1", "--checkpoint", str(_checkpoint(stranger, "s.txt")), ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: note: no signature by a known key")
    fork = Cli(log.tmp / "fork")  # another log under the same root key: another history
    fork.tmp.mkdir()
    fork.keys = log.keys
    fork("init", "--origin", ORIGIN)
    result = log("prove", "1", "--checkpoint", str(_checkpoint(fork, "f.txt")), ok=False)
    assert (result.exit_code, result.stderr) == (
        1,
        "error: checkpoint root differs from this log's root at size 1\n",
    )
    result = log("prove", "1", "--checkpoint", str(cp), "--signer", "root", ok=False)
    assert result.exit_code == 2


# --- as a user runs it ----------------------------------------------------------------------


def test_the_installed_command_cosigns_and_verifies(log: Cli) -> None:
    env = {**os.environ, "GOVLEDGER_DB": str(log.db), "GOVLEDGER_KEYS": str(log.keys)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GOVLEDGER, *args],
            env=env,
            cwd=log.tmp,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    w1 = run("witness", "new", "w1", "--name", "witness.example/w1").stdout.strip()
    vkey = run("keys", "vkey", "root").stdout.strip()
    assert run("checkpoint", "--signer", "root", "-o", "cp.txt").returncode == 0
    cosign = run("witness", "cosign", "cp.txt", "--key", "w1", "--log", vkey)
    assert cosign.returncode == 0, cosign.stderr
    with (log.tmp / "cp.txt").open("a", encoding="utf-8") as f:
        f.write(cosign.stdout)
    assert run("prove", "4", "--checkpoint", "cp.txt", "-o", "p").returncode == 0
    done = run("verify-proof", "p", "--vkey", vkey, "--witness", w1)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].startswith("cosigned by 1 of 1 witnesses (quorum 1): ")
    (log.tmp / "p").write_text(
        (log.tmp / "p").read_text(encoding="utf-8").replace(cosign.stdout, ""), encoding="utf-8"
    )
    done = run("verify-proof", "p", "--vkey", vkey, "--witness", w1)
    assert done.returncode == 1
    assert done.stderr.startswith("error: witness cosignatures: 0 of 1 witnesses cosigned")
