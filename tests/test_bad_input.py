"""Bad input never corrupts the log (SPEC §1.6, §5 exit codes): each refusal says which input
was wrong and why, exits with its documented code, and leaves the log exactly as it was."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.store.sqlite import MAX_PAYLOAD_BYTES, Ledger
from tests.conftest import Cli, digest, snapshot

NO_FLOAT = "signed content holds no floats (use micro-units, basis points, milliseconds)"
GOOD = json.dumps({"type": "x.note", "payload": {"text": "fine"}})


OWN = " (a catalog type, or x.<name> for your own)"


def line(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


@pytest.fixture
def state(ready: Cli) -> Iterator[tuple[Cli, tuple[int, str], bytes]]:
    """The ready ledger, its (size, head) and its full export before the bad input."""
    yield ready, snapshot(ready.db), ready("export").stdout_bytes


def unchanged(cli: Cli, before: tuple[int, str], export: bytes) -> None:
    assert snapshot(cli.db) == before
    assert cli("export").stdout_bytes == export


IMPORT_CASES = [
    pytest.param(
        GOOD + "\n" + '{"type": "x.note", "payload": {\n',
        ["line 2: invalid JSON: Expecting property name enclosed in double quotes at column 32"],
        id="truncated-json",
    ),
    pytest.param(
        GOOD + "\n" + line({"type": "x.note", "payload": {"cost": 0.25}}),
        [f"line 2: $.payload.cost: number 0.25 is not an integer; {NO_FLOAT}"],
        id="float",
    ),
    pytest.param(
        line({"type": "tool.invoked", "agent": "a", "run": "r", "payload": {}}),
        ["line 1: type: unknown event type 'tool.invoked'; did you mean 'tool.completed'?"],
        id="unknown-type",
    ),
    pytest.param(
        line(
            {
                "type": "tool.called",
                "agent": "a",
                "run": "r",
                "payload": {"tool": "t", "args_digest": digest("x")},
            }
        ),
        ["line 1: payload.side_effect: missing required field"],
        id="missing-payload-field",
    ),
    pytest.param(
        line(
            {
                "type": "tool.called",
                "run": "r",
                "payload": {"tool": "t", "args_digest": digest("x"), "side_effect": "read"},
            }
        ),
        ["line 1: tool.called requires agent"],
        id="missing-envelope-field",
    ),
    pytest.param(
        line({"type": "x.note", "payload": {"blob": "a" * MAX_PAYLOAD_BYTES}}),
        [
            f"line 1: payload is {MAX_PAYLOAD_BYTES + 11} bytes, over the limit of "
            f"{MAX_PAYLOAD_BYTES} bytes (store a digest of large content instead)"
        ],
        id="oversized-payload",
    ),
    pytest.param(
        GOOD + "\n" + line({"type": "x.note", "payload": {}, "seq": 3}),
        ["line 2: field 'seq' is assigned by the ledger and cannot be imported"],
        id="ledger-assigned-seq",
    ),
    pytest.param(
        line({"type": "x.note", "payload": {}, "hash": "0" * 64, "sig": "x"}),
        ["line 1: field 'hash' is assigned by the ledger and cannot be imported"],
        id="ledger-assigned-hash",
    ),
    pytest.param(
        line({"type": "x.note"}),
        ["line 1: missing field 'payload'"],
        id="missing-payload",
    ),
    pytest.param(
        line({"type": "x.note", "payload": {}, "agnet": "a"}),
        ["line 1: unknown field 'agnet'"],
        id="unknown-field",
    ),
    pytest.param(
        '{"type": "x.note", "payload": {}, "payload": {}}\n',
        ["line 1: invalid JSON: duplicate key 'payload'"],
        id="duplicate-key",
    ),
    pytest.param(
        line({"type": "x.note", "payload": {}, "id": "same"}) * 2,
        ["line 2: id 'same' repeats line 1"],
        id="repeated-id",
    ),
    pytest.param(
        "[1, 2]\n" + GOOD + "\n" + line({"type": "nope", "payload": {}}),
        [
            "line 1: expected a JSON object",
            "line 3: type: unknown event type 'nope' (a catalog type, or x.<name> for your own)",
        ],
        id="every-bad-line-reported",
    ),
]


@pytest.mark.parametrize(("text", "errors"), IMPORT_CASES)
def test_bad_import_is_exit_2_and_writes_nothing(
    state: tuple[Cli, tuple[int, str], bytes], tmp_path: Path, text: str, errors: list[str]
) -> None:
    cli, before, export = state
    source = tmp_path / "in.jsonl"
    source.write_text(text, encoding="utf-8")
    result = cli("import", str(source), "--signer", "rec", ok=False)
    assert result.exit_code == 2
    n = len(errors)
    assert result.stderr.splitlines() == [
        f"error: {source}: {n} bad line{'s' if n > 1 else ''}, nothing imported:",
        *errors,
    ]
    assert result.stdout == ""
    unchanged(cli, before, export)


def test_non_utf8_import_file(state: tuple[Cli, tuple[int, str], bytes], tmp_path: Path) -> None:
    cli, before, export = state
    source = tmp_path / "latin1.jsonl"
    source.write_bytes(
        (GOOD + "\n").encode() + '{"type": "x.note", "payload": {"t": "café"}}\n'.encode("latin-1")
    )
    result = cli("import", str(source), "--signer", "rec", ok=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {source}: 1 bad line, nothing imported:",
        "line 2: not UTF-8 (byte 40)",
    ]
    unchanged(cli, before, export)


def test_many_bad_lines_are_capped(state: tuple[Cli, tuple[int, str], bytes]) -> None:
    cli, before, export = state
    result = cli("import", "-", "--signer", "rec", input="[]\n" * 25, ok=False)
    lines = result.stderr.splitlines()
    assert lines[0] == "error: -: 25 bad lines, nothing imported:"
    assert lines[1:21] == [f"line {n}: expected a JSON object" for n in range(1, 21)]
    assert lines[21:] == ["… and 5 more bad lines"]
    unchanged(cli, before, export)


def test_import_signed_by_the_wrong_role_writes_nothing(
    state: tuple[Cli, tuple[int, str], bytes],
) -> None:
    cli, before, export = state
    text = (
        GOOD
        + "\n"
        + GOOD
        + "\n"
        + line(
            {
                "type": "policy.set",
                "payload": {"version": 1, "digest": digest("{}"), "document": {}},
            }
        )
    )
    result = cli("import", "-", "--signer", "rec", input=text, ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: line 3: a recorder key may not sign policy.set (key rec)\n",
    )
    unchanged(cli, before, export)


def test_import_id_already_in_the_log_writes_nothing(
    state: tuple[Cli, tuple[int, str], bytes],
) -> None:
    cli, _, _ = state
    cli("append", "x.note", "--signer", "rec", "--id", "taken")
    before, export = snapshot(cli.db), cli("export").stdout_bytes
    text = GOOD + "\n" + line({"type": "x.note", "payload": {}, "id": "taken"})
    result = cli("import", "-", "--signer", "rec", input=text, ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: line 2: id 'taken' is already in the log at seq 3\n",
    )
    unchanged(cli, before, export)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["x.note", "--payload", '{"ratio": 0.5}'],
            f"--payload: $.ratio: number 0.5 is not an integer; {NO_FLOAT}",
        ),
        (["x.note", "--payload", '{"a": '], "--payload: invalid JSON: Expecting value at column 6"),
        (
            ["tool.called", "--agent", "a", "--run", "r", "--payload", '{"tool": "t"}'],
            "event: payload.args_digest: missing required field; payload.side_effect: missing "
            "required field",
        ),
        (["run.started", "--agent", "a"], "event: run.started requires run"),
        (["no.such", "--payload", "{}"], "event: type: unknown event type 'no.such'" + OWN),
        (
            [
                "agent.registered",
                "--agent",
                "a",
                "--payload",
                json.dumps(
                    {
                        "owner": "o",
                        "version": "1",
                        "initial_tier": 0,
                        "allowed_side_effects": [],
                        "forbidden_actions": [],
                        "confidence_threshold_bp": 0,
                    }
                ),
            ],
            "event: a recorder key may not sign agent.registered (key rec)",
        ),
    ],
    ids=["float", "truncated", "missing-field", "envelope", "unknown-type", "unauthorized"],
)
def test_bad_append_is_exit_2_and_writes_nothing(
    state: tuple[Cli, tuple[int, str], bytes], args: list[str], error: str
) -> None:
    cli, before, export = state
    result = cli("append", *args, "--signer", "rec", ok=False)
    assert (result.exit_code, result.stderr, result.stdout) == (2, f"error: {error}\n", "")
    unchanged(cli, before, export)


# --- environment errors: exit 3 --------------------------------------------------------------------


def test_database_that_is_not_a_ledger_is_exit_3(cli: Cli) -> None:
    cli.db.write_bytes(b"SQLite? no. " * 200)
    result = cli("log", ok=False)
    assert (result.exit_code, result.stderr) == (
        3,
        f"error: {cli.db}: not a govledger database (file is not a database)\n",
    )
    assert cli.db.read_bytes() == b"SQLite? no. " * 200


def test_other_sqlite_database_is_exit_3(cli: Cli) -> None:
    conn = sqlite3.connect(cli.db)
    conn.execute("CREATE TABLE mine (x)")
    conn.close()
    result = cli("append", "x.note", "--signer", "root", ok=False)
    assert (result.exit_code, result.stderr) == (
        3,
        f"error: {cli.db}: not a govledger ledger (no govledger schema)\n",
    )


def test_init_over_a_foreign_file_is_refused(cli: Cli) -> None:
    cli.db.write_bytes(b"my thesis" * 100)
    result = cli("init", "--origin", "o", ok=False)
    assert (result.exit_code, result.stderr) == (
        3,
        f"error: {cli.db} exists and is not a govledger ledger; choose another path\n",
    )
    assert cli.db.read_bytes() == b"my thesis" * 100


def test_locked_database_is_exit_3(
    state: tuple[Cli, tuple[int, str], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, before, _ = state
    monkeypatch.setenv("GOVLEDGER_BUSY_TIMEOUT_MS", "100")
    holder = sqlite3.connect(cli.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = cli("append", "x.note", "--signer", "rec", ok=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (result.exit_code, result.stderr) == (
        3,
        f"error: {cli.db}: database is locked by another writer (waited past the busy timeout)\n",
    )
    assert snapshot(cli.db) == before


def test_private_key_readable_by_others_is_exit_3(
    state: tuple[Cli, tuple[int, str], bytes],
) -> None:
    cli, before, export = state
    key = cli.keys / "rec.pem"
    key.chmod(0o640)
    result = cli("append", "x.note", "--signer", "rec", ok=False)
    assert (result.exit_code, result.stderr) == (
        3,
        f"error: key file {key} is accessible by group or others (mode 0640); "
        f"run: chmod 600 {key}\n",
    )
    unchanged(cli, before, export)


def test_init_on_an_existing_ledger_is_exit_2(state: tuple[Cli, tuple[int, str], bytes]) -> None:
    cli, before, export = state
    result = cli("init", "--origin", "again", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {cli.db} already holds a ledger; refusing to overwrite it (choose another --db)\n",
    )
    unchanged(cli, before, export)


# --- a tampered database: exit 1 ------------------------------------------------------------------


def test_tampered_database_is_exit_1(state: tuple[Cli, tuple[int, str], bytes]) -> None:
    cli, _, _ = state
    cli("append", "x.note", "--signer", "rec", "--payload", '{"amount": 100}')
    conn = sqlite3.connect(cli.db)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("""UPDATE events SET payload = '{"amount":900}' WHERE seq = 3""")
    conn.commit()
    conn.close()
    with Ledger.open(cli.db) as lg:
        stored = lg.hash_at(3)
    result = cli("verify", "--no-state", ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: seq 3: hash_mismatch: stored hash {stored[:4]}…{stored[-2:]}, computed "
    )
    out = json.loads(cli("verify", "--no-state", "--json", ok=False).stdout)
    assert out["ok"] is False
    assert [(p["seq"], p["kind"]) for p in out["problems"]] == [(3, "hash_mismatch")]


# --- arguments that are not UTF-8 (a shell passing raw bytes) --------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            [b"append", b"x.note", b"--signer", b"rec", b"--agent", b"a\xffb"],
            "error: event: agent is not valid UTF-8 text (lone surrogate)",
        ),
        (
            [b"append", b"x.note", b"--signer", b"rec", b"--id", b"\xc3"],
            "error: event: id is not valid UTF-8 text (lone surrogate)",
        ),
        ([b"log", b"--run", b"r\xff"], "error: --run: 'r\\udcff' is not valid UTF-8 text"),
    ],
    ids=["append-agent", "append-id", "log-run"],
)
def test_non_utf8_arguments_are_exit_2_without_traceback(
    state: tuple[Cli, tuple[int, str], bytes], args: list[bytes], error: str
) -> None:
    cli, before, export = state
    govledger = os.fsencode(os.path.join(os.path.dirname(sys.executable), "govledger"))
    env = {
        **os.environ,
        "GOVLEDGER_DB": str(cli.db),
        "GOVLEDGER_KEYS": str(cli.keys),
        "LC_ALL": "C.UTF-8",
    }
    result = subprocess.run(
        [govledger, *args], env=env, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.decode("utf-8", "backslashreplace").splitlines() == [error]
    unchanged(cli, before, export)
