"""Failing closed at the edges of `verify` and the CLI: remembered state kept per log (origin
and genesis) and read strictly, origins that must be signed-note key names, environment
variables, the one mapping of errors to exit codes, and a reader that closes the pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.store.sqlite import Ledger
from ledger.verify.consistency import state_path
from tests.conftest import ORIGIN, Cli, LedgerKeys, populate

GOVLEDGER = str(Path(sys.executable).parent / "govledger")


def root_key(cli: Cli) -> str:
    return cli.ring().load("root").key_id


def genesis(cli: Cli) -> str:
    with Ledger.open(cli.db) as lg:
        return lg.hash_at(1)


def saved_state() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(state_path(ORIGIN).read_text(encoding="utf-8"))
    return data


@pytest.fixture
def other(tmp_path: Path) -> Cli:
    """A second place for a ledger, with its own key directory (so another root key)."""
    (tmp_path / "other").mkdir()
    return Cli(tmp_path / "other")


# --- a malformed remembered-state file ---------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{}", "size is None, want a whole number"),
        (b'{"size": "3", "root": "00"}', "size is '3', want a whole number"),
        (b'{"size": 3, "root": "zz"}', "root is 'zz', want 64 lowercase hex"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"size": 3', "not JSON"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b'{"format": 9, "logs": []}', "format 9, want 2"),
        (b'{"format": 2, "logs": {}}', "logs is not a list"),
        (b'{"format": 2, "logs": [7]}', "logs[0] is not an object"),
        (
            b'{"format": 2, "logs": [{"size": 1, "root": "' + b"a" * 64 + b'", "genesis": 1}]}',
            "logs[0].genesis is 1, want 64 lowercase hex or null",
        ),
        (b'{"origin": "elsewhere", "size": 1}', "it is for origin 'elsewhere'"),
    ],
    ids=["empty-object", "size-text", "root-not-hex", "list", "truncated-json", "not-utf8",
         "unknown-format", "logs-not-list", "log-not-object", "bad-genesis", "other-origin"],
)  # fmt: skip
def test_a_malformed_state_file_is_exit_3_naming_it(ready: Cli, content: bytes, why: str) -> None:
    path = state_path(ORIGIN)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    result = ready("verify", ok=False)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == (
        f"error: remembered state {path} is malformed ({why}); delete it (this machine then "
        f"forgets the logs of {ORIGIN!r} it verified), or verify with --no-state\n"
    )
    assert path.read_bytes() == content  # left as it was, for the user to look at
    assert ready("verify", "--no-state").exit_code == 0


def test_a_state_directory_that_is_a_file_is_exit_3(
    ready: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "state-is-a-file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("GOVLEDGER_STATE", str(blocker))
    result = ready("verify", ok=False)
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: remembered state {state_path(ORIGIN)}: cannot read it (Not a directory); "
        "fix GOVLEDGER_STATE, or verify with --no-state\n"
    )


# --- another log under a known origin -----------------------------------------------------------


def test_a_new_root_key_under_a_known_origin_fails_verify(ready: Cli, other: Cli) -> None:
    ready("verify")
    seen = saved_state()["logs"][0]
    other("init", "--origin", ORIGIN)  # a new log, same origin, another root key
    result = other("verify", ok=False)
    new = root_key(other)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: seq 1: untrusted_root: root key {new} is not the root key of the log of origin "
        f"{ORIGIN!r} this machine verified at {seen['verified_at']} (2 events, root key "
        f"{root_key(ready)}; {state_path(ORIGIN)}): if this log is expected, pin its root with "
        f"--trust {new}, or verify with --no-state\n"
    )
    assert other("verify", "--no-state").exit_code == 0
    assert saved_state()["logs"] == [seen]  # nothing replaced


def test_a_new_root_key_pinned_with_trust_is_remembered_alongside(ready: Cli, other: Cli) -> None:
    ready("verify")
    other("init", "--origin", ORIGIN)
    out = other.json("verify", "--trust", root_key(other))
    assert out["ok"] is True
    assert out["state"] == (
        f"a new log of origin {ORIGIN!r} under the pinned root key {root_key(other)}: "
        "remembered alongside the 1 other log(s) of that origin verified here"
    )
    logs = saved_state()["logs"]
    assert [(e["genesis"], e["size"]) for e in logs] == [(genesis(ready), 2), (genesis(other), 1)]
    # From now on each log is checked against its own remembered state, without flags.
    assert other.json("verify")["ok"] is True
    assert ready.json("verify")["ok"] is True


def test_another_log_with_the_same_origin_and_root_key_is_another_log_not_truncated(
    ready: Cli, other: Cli
) -> None:
    ready("append", "x.note", "--signer", "rec", "--payload", "{}")
    ready("verify")
    seen = saved_state()["logs"][0]
    other.keys = ready.keys  # the same key directory: the same root key
    other("init", "--origin", ORIGIN)
    result = other("verify", "--trust", root_key(ready), ok=False)
    mine, theirs = genesis(other), genesis(ready)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: seq 1: checkpoint_mismatch: this log's seq 1 is {mine[:4]}…{mine[-2:]}; the log "
        f"of origin {ORIGIN!r} this machine verified at {seen['verified_at']} (3 events, root "
        f"key {root_key(ready)}; {state_path(ORIGIN)}) has {theirs[:4]}…{theirs[-2:]}: another "
        "log under the same origin, or its first event rewritten; give a new log its own "
        "origin, or verify with --no-state\n"
    )
    assert "truncated" not in result.stderr
    assert other("verify", "--no-state").exit_code == 0
    assert ready.json("verify")["ok"] is True


def test_init_warns_when_this_machine_verified_another_log_of_the_origin(
    ready: Cli, other: Cli
) -> None:
    ready("verify")
    result = other("init", "--origin", ORIGIN)
    assert result.stderr == (
        f"warning: this machine has verified another log of origin {ORIGIN!r} "
        f"({state_path(ORIGIN)}): `verify` reports this new log as a different log; pin its "
        f"root with `verify --trust {root_key(other)}`, give it its own origin, or verify it "
        "with --no-state\n"
    )
    (other.tmp / "third").mkdir()
    third = Cli(other.tmp / "third")
    third.keys = ready.keys  # same root key: pinning cannot tell the logs apart
    assert third("init", "--origin", ORIGIN).stderr.endswith(
        "`verify` reports this new log as a different log; give it its own origin, or verify "
        "it with --no-state\n"
    )


def test_init_of_a_new_origin_does_not_warn(ready: Cli, other: Cli) -> None:
    ready("verify")
    assert other("init", "--origin", "another.example/log").stderr == ""


def test_a_first_format_state_file_is_read_and_rewritten_with_the_genesis(ready: Cli) -> None:
    path = state_path(ORIGIN)
    path.parent.mkdir(parents=True, exist_ok=True)
    with Ledger.open(ready.db) as lg:
        size, root = lg.size, lg.root_at(lg.size).hex()
    first = {"origin": ORIGIN, "size": size, "root": root, "root_key_id": root_key(ready),
             "verified_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    path.write_text(json.dumps(first), encoding="utf-8")
    ready("append", "x.note", "--signer", "rec", "--payload", "{}")
    assert ready.json("verify")["ok"] is True
    saved = saved_state()
    assert saved["format"] == 2 and saved["origin"] == ORIGIN
    [entry] = saved["logs"]
    assert (entry["genesis"], entry["size"], entry["root_key_id"]) == (
        genesis(ready),
        size + 1,
        root_key(ready),
    )


def test_a_first_format_state_file_still_catches_truncation(ready: Cli) -> None:
    path = state_path(ORIGIN)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"origin": ORIGIN, "size": 9, "root": "ab" * 32, "root_key_id": root_key(ready)}
        ),
        encoding="utf-8",
    )
    out = json.loads(ready("verify", "--json", ok=False).stdout)
    assert [(p["seq"], p["kind"]) for p in out["problems"]] == [(3, "truncated")]


# --- one path from a failed verify to exit 1 --------------------------------------------------


def test_a_failed_verify_is_reported_by_the_cli_error_mapping(ready: Cli) -> None:
    result = ready("verify", "--trust", "b" * 32, ok=False)
    expected = f"error: seq 1: untrusted_root: root key {root_key(ready)} is not a trusted key\n"
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", expected)
    result = ready("verify", "--trust", "b" * 32, "--json", ok=False)
    assert (result.exit_code, result.stderr) == (1, expected)
    assert json.loads(result.stdout)["ok"] is False


# --- origins that cannot name a checkpoint key ------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "found"),
    [
        ("example.com/a+b", "has U+002B at offset 13"),
        ("example.com/a\tb", "has U+0009 at offset 13"),
        ("example.com/a\x01", "has U+0001 at offset 13"),
        ("example.com/a\nb", "has U+000A at offset 13"),
        ("example.com/a\u00a0b", "has U+00A0 at offset 13"),
        ("example.com/a\u2003b", "has U+2003 at offset 13"),
        ("example.com/\udcff", "has U+DCFF at offset 12"),
        ("has space", "has U+0020 at offset 3"),
        ("", "is empty"),
        ("x" * 257, "is 257 characters long"),
    ],
    ids=["plus", "tab", "control", "newline", "no-break-space", "em-space", "not-utf8", "space",
         "empty", "too-long"],
)  # fmt: skip
def test_init_refuses_an_origin_that_is_not_a_signed_note_key_name(
    cli: Cli, origin: str, found: str
) -> None:
    result = cli("init", "--origin", origin, ok=False)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --origin {found}; want 1–256 characters without spaces, '+' or control "
        "characters (it names the log's checkpoint key), e.g. example.com/agents\n"
    )
    assert not cli.db.exists()
    assert not cli.keys.exists()


def test_a_non_ascii_origin_works_for_checkpoints_and_proofs(cli: Cli) -> None:
    cli("init", "--origin", "exämple.org/ログ")
    vkey = cli("keys", "vkey", "root").stdout.strip()
    assert vkey.startswith("exämple.org/ログ+")
    cp = cli.tmp / "cp"
    cli("checkpoint", "--signer", "root", "-o", str(cp))
    proof = cli.tmp / "p"
    cli("prove", "1", "-o", str(proof))
    assert cli.json("verify-proof", str(proof), "--vkey", vkey)["origin"] == "exämple.org/ログ"
    assert cli.json("verify", "--checkpoint", str(cp))["ok"] is True


# --- environment variables --------------------------------------------------------------------


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GOVLEDGER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("name", "value", "want"),
    [
        ("GOVLEDGER_BUSY_TIMEOUT_MS", "abc", "a whole number ≥ 0"),
        ("GOVLEDGER_BUSY_TIMEOUT_MS", "-5", "a whole number ≥ 0"),
        ("GOVLEDGER_BUSY_TIMEOUT_MS", "1_000", "a whole number ≥ 0"),
        ("GOVLEDGER_WORKERS", "abc", "a whole number ≥ 0"),
        ("GOVLEDGER_WORKERS", "-1", "a whole number ≥ 0"),
        ("GOVLEDGER_PARALLEL_MIN", "many", "a whole number ≥ 0"),
        ("GOVLEDGER_SYNCHRONOUS", "sometimes", "one of FULL, NORMAL, EXTRA"),
    ],
)
def test_a_malformed_environment_variable_is_exit_2_before_anything_is_written(
    tmp_path: Path, name: str, value: str, want: str
) -> None:
    env = {**os.environ, "GOVLEDGER_DB": str(tmp_path / "l.db"),
           "GOVLEDGER_KEYS": str(tmp_path / "keys"), name: value}  # fmt: skip
    result = run("init", "--origin", ORIGIN, env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {name} is {value!r}, want {want}\n"
    assert sorted(tmp_path.iterdir()) == []
    assert run("--help", env=env).stderr == result.stderr  # even before any command runs


def test_well_formed_environment_variables_are_accepted(tmp_path: Path) -> None:
    env = {**os.environ, "GOVLEDGER_DB": str(tmp_path / "l.db"),
           "GOVLEDGER_KEYS": str(tmp_path / "keys"), "GOVLEDGER_BUSY_TIMEOUT_MS": "0",
           "GOVLEDGER_WORKERS": " 0 ", "GOVLEDGER_SYNCHRONOUS": "normal",
           "GOVLEDGER_PARALLEL_MIN": ""}  # fmt: skip
    assert run("init", "--origin", ORIGIN, env=env).returncode == 0
    assert run("verify", env=env).returncode == 0


# --- exit codes of malformed input --------------------------------------------------------------


def test_verify_file_without_a_genesis_is_not_a_log(ready: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = ready("verify", "--file", str(empty), ok=False)
    detail = "the file has no ledger.created at seq 1 (0 events): not a log that can be verified"
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"error: seq 1: malformed: {detail}\n"
    out = json.loads(ready("verify", "--file", str(empty), "--json", ok=False).stdout)
    assert out["problems"] == [{"seq": 1, "kind": "malformed", "detail": detail}]


def test_verify_proof_with_a_vkey_that_is_not_one_is_exit_2(ready: Cli) -> None:
    proof = ready.tmp / "p"
    ready("prove", "1", "-o", str(proof))
    result = ready("verify-proof", str(proof), "--vkey", "garbage", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --vkey: vkey 'garbage': want <name>+<key id>+<key>, found 1 part(s)\n",
    )


def test_verify_against_a_file_that_is_not_a_checkpoint_is_exit_2(ready: Cli) -> None:
    bogus = ready.tmp / "notes.txt"
    bogus.write_text("just some notes\n", encoding="utf-8")
    result = ready("verify", "--checkpoint", str(bogus), ok=False)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: --checkpoint: {bogus} is not a checkpoint (checkpoint note: no blank line "
        "before the signatures)\n"
    )


def test_a_checkpoint_of_another_log_is_still_an_integrity_failure(ready: Cli, other: Cli) -> None:
    other("init", "--origin", ORIGIN)
    cp = other.tmp / "cp"
    other("checkpoint", "--signer", "root", "-o", str(cp))
    result = ready("verify", "--checkpoint", str(cp), "--no-state", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: seq 2: checkpoint_mismatch: checkpoint does not verify")


# --- a reader that goes away ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["runs", "show", "run-0"], ["runs", "list"], ["keys", "list"], ["log"], ["verify"]],
    ids=lambda a: " ".join(a),
)
def test_output_to_a_closed_pipe_exits_0_quietly(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path, args: list[str]
) -> None:
    populate(ledger, keys, runs=1)
    env = {**os.environ, "GOVLEDGER_DB": str(tmp_path / "l.db"),
           "GOVLEDGER_KEYS": str(tmp_path / "keys")}  # fmt: skip
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: every write fails
    try:
        done = subprocess.run(
            [GOVLEDGER, *args], env=env, stdout=write_end, stderr=subprocess.PIPE,
            timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, b"")
