"""Verification details pinned after review: byte-exact `--json` event lines, the root key's
role, pinning that fails closed, auditor-side vkeys, and remembered state per log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ledger.crypto.keyfiles import KeyRing
from ledger.crypto.signing import b64encode, event_hash, key_id
from ledger.event.body import body_bytes
from ledger.event.canonical import canonical
from ledger.verify.verifier import verify_export
from tests.conftest import ORIGIN, Cli, sign


def test_json_event_lines_are_the_export_lines_byte_for_byte(ready: Cli) -> None:
    cli = ready
    appended = cli("append", "x.note", "--signer", "rec", "--payload", '{"b": 1, "a": "é"}',
                   "--json").stdout_bytes  # fmt: skip
    logged = cli("log", "--json").stdout_bytes.splitlines(keepends=True)
    exported = cli("export").stdout_bytes.splitlines(keepends=True)
    assert logged == exported
    assert appended == exported[-1]


def test_a_root_key_that_is_not_a_governor_is_unauthorized(tmp_path: Path) -> None:
    signer = KeyRing(tmp_path / "k").create("root")
    kid = key_id(signer.public_key)
    payload = {"origin": ORIGIN, "key": {"key_id": kid, "name": "root", "role": "recorder",
               "public_key": b64encode(signer.public_key), "agent": None}}  # fmt: skip
    fields = {"seq": 1, "id": "e1", "ts": "2026-11-21T10:00:00.000000Z", "type": "ledger.created",
              "agent": None, "run": None, "actor": None,
              "payload": canonical(payload).decode(), "prev": "0" * 64, "key": kid}  # fmt: skip
    digest = event_hash(body_bytes(**fields))
    envelope = {**fields, "v": 1, "payload": payload, "hash": digest.hex(),
                "sig": sign(signer, digest)}  # fmt: skip
    report = verify_export([canonical(envelope) + b"\n"])
    assert [(p.seq, p.kind) for p in report.problems] == [(1, "unauthorized")]


def test_an_empty_trusted_keys_file_is_refused_not_ignored(ready: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "trusted.txt"
    empty.write_text("# nobody\n", encoding="utf-8")
    result = ready("verify", "--trusted-keys", str(empty), ok=False)
    assert result.exit_code == 2
    assert result.stderr == f"error: --trusted-keys: {empty} holds no key id\n"


def test_vkey_comes_from_the_log_and_only_for_governor_keys(ready: Cli) -> None:
    vkey = ready("keys", "vkey", "root").stdout
    (ready.keys / "root.pem").unlink()  # an auditor has no private key
    assert ready("keys", "vkey", "root").stdout == vkey
    result = ready("keys", "vkey", "rec", ok=False)
    assert result.exit_code == 2
    assert "rec is a recorder key" in result.stderr


def test_verify_from_one_says_so(ready: Cli) -> None:
    assert ready.json("verify", "--from", "1")["from"] == 1


def test_another_log_under_a_remembered_origin_fails_until_its_new_root_is_pinned(
    ready: Cli, tmp_path: Path
) -> None:
    ready("append", "x.note", "--signer", "rec", "--payload", "{}")
    assert ready.json("verify")["ok"] is True  # remembers this log (3 events) of ORIGIN
    other = Cli(tmp_path / "other")
    (tmp_path / "other").mkdir()
    other("init", "--origin", ORIGIN)  # a new log: same origin, new root key, 1 event
    result = other("verify", "--json", ok=False)
    assert result.exit_code == 1
    assert [(p["seq"], p["kind"]) for p in json.loads(result.stdout)["problems"]] == [
        (1, "untrusted_root")
    ]
    new_root = other.ring().load("root").key_id
    assert other.json("verify", "--trust", new_root)["ok"] is True
    shutil.rmtree(tmp_path / "other")
    assert json.loads(ready("verify", "--json").stdout)["ok"] is True


def test_a_reformatted_export_line_is_malformed_and_nothing_else(ready: Cli) -> None:
    for i in range(5):
        ready("append", "x.note", "--signer", "rec", "--payload", json.dumps({"i": i}))
    lines = ready("export").stdout_bytes.splitlines(keepends=True)
    lines[3] = lines[3].replace(b'{"actor"', b'{ "actor"', 1)  # same JSON, not canonical
    report = verify_export(lines)
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "malformed")]
    assert (report.events, report.head_seq) == (7, 7)
    intact = verify_export(ready("export").stdout_bytes.splitlines(keepends=True))
    assert report.root == intact.root
