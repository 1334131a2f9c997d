"""The core commands (SPEC §5): init, keys, append, import, export, log, verify. Click's
``CliRunner`` on success paths, exact stderr lines and exit codes on failures, and a few
end-to-end runs of the installed ``govledger`` command."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.store.sqlite import Ledger
from ledger.verify.verifier import verify_export
from tests.conftest import ORIGIN, Cli, digest

GOVLEDGER = Path(sys.executable).parent / "govledger"
H = digest("args")


def tool_called(i: int = 0) -> str:
    return json.dumps({"tool": f"tool.{i}", "args_digest": H, "side_effect": "read"})


# --- init ------------------------------------------------------------------------------------


def test_init_creates_the_ledger_and_root_key(cli: Cli) -> None:
    result = cli("init", "--origin", ORIGIN)
    root = cli.ring().load("root")
    assert result.stdout.splitlines() == [
        f"created ledger {cli.db} (origin {ORIGIN})",
        f"root key: {cli.keys / 'root.pem'} (key id {root.key_id})",
        f"auditors pin it with: govledger verify --trust {root.key_id}",
    ]
    with Ledger.open(cli.db) as lg:
        first = lg.event_at(1)
        assert (lg.size, first.type, first.key) == (1, "ledger.created", root.key_id)
        assert first.payload["origin"] == ORIGIN
        assert lg.origin == ORIGIN


def test_init_json(cli: Cli) -> None:
    out = cli.json("init", "--origin", ORIGIN)
    with Ledger.open(cli.db) as lg:
        head = lg.head()
    assert out == {
        "db": str(cli.db),
        "origin": ORIGIN,
        "root_key_id": cli.ring().load("root").key_id,
        "seq": 1,
        "hash": head[1],
    }


def test_init_on_an_existing_ledger_is_exit_2(ready: Cli) -> None:
    result = ready("init", "--origin", "other", ok=False)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {ready.db} already holds a ledger; refusing to overwrite it (choose another --db)\n"
    )


# --- keys ------------------------------------------------------------------------------------


def test_keys_new_list_revoke(ready: Cli) -> None:
    out = ready.json("keys", "new", "planner", "--role", "agent", "--agent", "planner-1")
    planner = ready.ring().load("planner")
    assert out == {
        "name": "planner",
        "key_id": planner.key_id,
        "role": "agent",
        "agent": "planner-1",
        "revoked": False,
        "seq": 3,
    }
    human = ready("keys", "new", "gov2", "--role", "governor")
    gov2 = ready.ring().load("gov2")
    assert human.stdout == f"key gov2 ({gov2.key_id}), role governor, registered at seq 4\n"

    revoked = ready("keys", "revoke", "planner", "--reason", "rotated", "--signer", "gov2")
    assert revoked.stdout == f"key planner ({planner.key_id}) revoked at seq 5\n"

    listed = ready.json_lines("keys", "list")
    assert [{k: e[k] for k in ("name", "key_id", "role", "agent", "revoked")} for e in listed] == [
        {
            "name": "root",
            "key_id": ready.ring().load("root").key_id,
            "role": "governor",
            "agent": None,
            "revoked": False,
        },
        {
            "name": "rec",
            "key_id": ready.ring().load("rec").key_id,
            "role": "recorder",
            "agent": None,
            "revoked": False,
        },
        {
            "name": "planner",
            "key_id": planner.key_id,
            "role": "agent",
            "agent": "planner-1",
            "revoked": True,
        },
        {
            "name": "gov2",
            "key_id": gov2.key_id,
            "role": "governor",
            "agent": None,
            "revoked": False,
        },
    ]
    with Ledger.open(ready.db) as lg:
        event = lg.event_at(5)
    assert (event.type, event.payload) == (
        "key.revoked",
        {"key_id": planner.key_id, "reason": "rotated"},
    )
    assert event.key == gov2.key_id


def test_keys_list_human(ready: Cli) -> None:
    out = ready("keys", "list").stdout
    assert "root" in out and "rec" in out and "governor" in out and "recorder" in out


def test_keys_new_by_a_recorder_is_refused_and_leaves_no_file(ready: Cli) -> None:
    result = ready("keys", "new", "x", "--role", "recorder", "--signer", "rec", ok=False)
    assert result.exit_code == 2
    assert result.stderr == "error: event: a recorder key may not sign key.registered (key rec)\n"
    assert not (ready.keys / "x.pem").exists()


def test_keys_new_agent_role_needs_agent(ready: Cli) -> None:
    result = ready("keys", "new", "x", "--role", "agent", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --agent is required for --role agent, and only for it\n",
    )


def test_keys_revoke_unknown_name(ready: Cli) -> None:
    result = ready("keys", "revoke", "ghost", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: no key named 'ghost' is registered in this ledger\n",
    )


def test_keys_vkey(ready: Cli) -> None:
    pytest.importorskip("ledger.tlog.notes")
    root = ready.ring().load("root")
    vkey = ready("keys", "vkey", "root").stdout.strip()
    key_hash = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + root.public_key).digest()[:4].hex()
    encoded = base64.b64encode(b"\x01" + root.public_key).decode()
    assert vkey == f"{ORIGIN}+{key_hash}+{encoded}"


# --- append ----------------------------------------------------------------------------------


def test_append_prints_seq_and_hash(ready: Cli) -> None:
    result = ready(
        "append",
        "tool.called",
        "--signer",
        "rec",
        "--agent",
        "a1",
        "--run",
        "r1",
        "--payload",
        tool_called(),
    )
    with Ledger.open(ready.db) as lg:
        assert result.stdout == f"seq 3 {lg.hash_at(3)}\n"


def test_append_json_prints_the_event(ready: Cli, tmp_path: Path) -> None:
    payload_file = tmp_path / "p.json"
    payload_file.write_text(tool_called(), encoding="utf-8")
    out = ready.json(
        "append",
        "tool.called",
        "--signer",
        "rec",
        "--agent",
        "a1",
        "--run",
        "r1",
        "--actor",
        "u1",
        "--id",
        "call-1",
        "--payload",
        f"@{payload_file}",
    )
    assert set(out) == {
        "v",
        "seq",
        "id",
        "ts",
        "type",
        "agent",
        "run",
        "actor",
        "payload",
        "prev",
        "key",
        "hash",
        "sig",
    }
    assert (out["seq"], out["id"], out["agent"], out["run"], out["actor"]) == (
        3,
        "call-1",
        "a1",
        "r1",
        "u1",
    )
    assert out["payload"] == json.loads(tool_called())
    with Ledger.open(ready.db) as lg:
        assert lg.event_at(3).envelope() == out


def test_append_payload_from_stdin(ready: Cli) -> None:
    ready("append", "x.note", "--signer", "rec", "--payload", "@-", input='{"text": "hi"}')
    with Ledger.open(ready.db) as lg:
        assert lg.event_at(3).payload == {"text": "hi"}


def test_append_retry_with_the_same_id_is_refused(ready: Cli) -> None:
    ready("append", "x.note", "--signer", "rec", "--id", "once")
    result = ready("append", "x.note", "--signer", "rec", "--id", "once", ok=False)
    assert result.exit_code == 2
    assert result.stderr == "error: event: id 'once' is already in the log at seq 3\n"


def test_append_payload_must_be_an_object(ready: Cli) -> None:
    result = ready("append", "x.note", "--signer", "rec", "--payload", "[1]", ok=False)
    assert (result.exit_code, result.stderr) == (2, "error: --payload: must be a JSON object\n")


# --- import ----------------------------------------------------------------------------------


def _import_lines(n: int, start: int = 0) -> str:
    return "".join(
        json.dumps(
            {
                "type": "tool.called",
                "agent": "a1",
                "run": "r1",
                "id": f"imp-{i}",
                "payload": json.loads(tool_called(i)),
            }
        )
        + "\n"
        for i in range(start, start + n)
    )


def test_import_file(ready: Cli, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(_import_lines(5) + "\n", encoding="utf-8")  # a blank line is skipped
    assert ready("import", str(source), "--signer", "rec").stdout == "imported 5 events: seq 3–7\n"
    with Ledger.open(ready.db) as lg:
        assert [e.id for e in lg.iter_events(from_seq=3)] == [f"imp-{i}" for i in range(5)]


def test_import_stdin_json(ready: Cli) -> None:
    out = ready.json("import", "-", "--signer", "rec", input=_import_lines(3))
    with Ledger.open(ready.db) as lg:
        head = lg.head()
    assert out == {
        "imported": 3,
        "first_seq": 3,
        "last_seq": 5,
        "head": {"seq": head[0], "hash": head[1]},
    }


def test_import_empty_file(ready: Cli, tmp_path: Path) -> None:
    source = tmp_path / "empty.jsonl"
    source.write_bytes(b"")
    assert (
        ready("import", str(source), "--signer", "rec").stdout == "imported 0 events (empty file)\n"
    )


# --- export ----------------------------------------------------------------------------------


def test_export_to_stdout_and_file_verify_offline(ready: Cli, tmp_path: Path) -> None:
    ready("import", "-", "--signer", "rec", input=_import_lines(4))
    stdout = ready("export").stdout_bytes
    out = tmp_path / "e.jsonl"
    result = ready("export", "-o", str(out))
    assert result.stderr == f"exported 6 events to {out}\n"
    assert out.read_bytes() == stdout
    assert not Path(str(out) + ".partial").exists()
    lines = stdout.splitlines(keepends=True)
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    report = verify_export(lines)
    assert report.ok and report.events == 6
    verified = ready.json("verify", "--file", str(out))
    assert verified["ok"] is True and verified["events"] == 6


def test_export_range(ready: Cli) -> None:
    ready("import", "-", "--signer", "rec", input=_import_lines(4))
    lines = ready("export", "--from", "3", "--to", "4").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["imp-0", "imp-1"]


# --- log -------------------------------------------------------------------------------------


@pytest.fixture
def logged(ready: Cli) -> Cli:
    lines = [
        {"type": "run.started", "agent": "a1", "run": "r1", "payload": {}},
        {"type": "tool.called", "agent": "a1", "run": "r1", "payload": json.loads(tool_called(1))},
        {"type": "run.started", "agent": "a2", "run": "r2", "payload": {}},
        {"type": "tool.called", "agent": "a2", "run": "r2", "payload": json.loads(tool_called(2))},
        {"type": "x.note", "payload": {"text": "hello"}},
    ]
    ready("import", "-", "--signer", "rec", input="".join(json.dumps(x) + "\n" for x in lines))
    return ready


@pytest.mark.parametrize(
    ("args", "seqs"),
    [
        ([], [1, 2, 3, 4, 5, 6, 7]),
        (["--run", "r1"], [3, 4]),
        (["--agent", "a2"], [5, 6]),
        (["--type", "tool.called"], [4, 6]),
        (["--type", "tool.called", "--agent", "a1"], [4]),
        (["--from", "4", "--to", "6"], [4, 5, 6]),
        (["--limit", "2"], [1, 2]),
        (["--since", "2000-01-01"], [1, 2, 3, 4, 5, 6, 7]),
        (["--until", "2000-01-01T00:00:00Z"], []),
        (["--run", "nope"], []),
    ],
    ids=["all", "run", "agent", "type", "type+agent", "from-to", "limit", "since", "until", "none"],
)
def test_log_filters(logged: Cli, args: list[str], seqs: list[int]) -> None:
    assert [e["seq"] for e in logged.json_lines("log", *args)] == seqs


def test_log_json_lines_are_full_events(logged: Cli) -> None:
    with Ledger.open(logged.db) as lg:
        assert logged.json_lines("log") == [e.envelope() for e in lg.iter_events()]


def test_log_since_until_use_ts(logged: Cli) -> None:
    with Ledger.open(logged.db) as lg:
        ts = lg.event_at(4).ts
    got = [e["seq"] for e in logged.json_lines("log", "--since", ts, "--until", ts)]
    assert 4 in got and all(
        e["ts"] == ts for e in logged.json_lines("log", "--since", ts, "--until", ts)
    )


def test_log_bad_time_is_exit_2(logged: Cli) -> None:
    result = logged("log", "--since", "yesterday", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --since: 'yesterday' is not an RFC 3339 time\n",
    )


def test_log_human_table(logged: Cli) -> None:
    out = logged("log", "--type", "x.note").stdout
    assert "x.note" in out and "seq" in out


# --- verify ----------------------------------------------------------------------------------


def test_verify_human_ok_unpinned(logged: Cli) -> None:
    root = logged.ring().load("root").key_id
    with Ledger.open(logged.db) as lg:
        size, head = lg.head()
    lines = logged("verify").stdout.splitlines()
    assert lines[0] == f"ok: {size} events, head seq {size} {head}"
    assert lines[1].startswith("root ")
    assert lines[-1] == (
        f"not pinned: this proves internal consistency only; pin the root key with --trust {root}"
    )


def test_verify_trust_and_trusted_keys(logged: Cli, tmp_path: Path) -> None:
    root = logged.ring().load("root").key_id
    assert logged.json("verify", "--trust", root)["pinned"] is True
    trusted = tmp_path / "trusted.txt"
    trusted.write_text(f"# auditors' pins\n{'a' * 32}\n{root}\n", encoding="utf-8")
    out = logged.json("verify", "--trusted-keys", str(trusted))
    assert out["ok"] is True and out["pinned"] is True
    lines = logged("verify", "--trust", root).stdout.splitlines()
    assert not any(line.startswith("not pinned") for line in lines)


def test_verify_untrusted_root_is_exit_1(logged: Cli) -> None:
    result = logged("verify", "--trust", "b" * 32, ok=False)
    root = logged.ring().load("root").key_id
    assert result.exit_code == 1
    assert result.stderr == f"error: seq 1: untrusted_root: root key {root} is not a trusted key\n"


def test_verify_bad_trust_value_is_exit_2(logged: Cli) -> None:
    result = logged("verify", "--trust", "ROOT", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --trust: 'ROOT' is not a key id (32 lowercase hex)\n",
    )


def test_verify_from(logged: Cli) -> None:
    out = logged.json("verify", "--from", "4")
    assert out["ok"] is True and out["from"] == 4
    assert logged("verify", "--from", "4").stdout.startswith("ok: seq 4–7, head seq 7 ")


def test_verify_from_beyond_the_log_is_exit_2(logged: Cli) -> None:
    result = logged("verify", "--from", "99", ok=False)
    assert (result.exit_code, result.stderr) == (2, "error: --from 99: the log has 7 events\n")


def test_verify_file_with_from_is_exit_2(logged: Cli, tmp_path: Path) -> None:
    result = logged("verify", "--file", str(tmp_path / "x"), "--from", "2", ok=False)
    assert (result.exit_code, result.stderr) == (2, "error: --from cannot be used with --file\n")


def test_verify_json_root_matches_export(logged: Cli) -> None:
    db = logged.json("verify")
    stdout = logged("export").stdout_bytes
    exported = verify_export(stdout.splitlines(keepends=True))
    assert db["root"] == exported.root.hex()
    assert db["head"] == {"seq": exported.head_seq, "hash": exported.head_hash}


# --- environment errors (exit 3) -----------------------------------------------------------------


def test_missing_ledger_is_exit_3(cli: Cli) -> None:
    result = cli("log", ok=False)
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: no ledger at {cli.db}: create one with `govledger init --origin NAME`\n"
    )


def test_missing_key_is_exit_3(ready: Cli) -> None:
    result = ready("append", "x.note", "--signer", "ghost", ok=False)
    assert result.exit_code == 3
    assert result.stderr == f"error: key 'ghost' not found: no file {ready.keys / 'ghost.pem'}\n"


# --- end to end: the installed command ------------------------------------------------------------


def run(
    *args: str, env: dict[str, str], input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(GOVLEDGER), *args], env=env, input=input, capture_output=True, timeout=60, check=False
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GOVLEDGER_DB": str(tmp_path / "e2e.db"),
        "GOVLEDGER_KEYS": str(tmp_path / "e2e-keys"),
    }


def test_e2e_init_append_verify_export(env: dict[str, str], tmp_path: Path) -> None:
    assert run("init", "--origin", ORIGIN, env=env).returncode == 0
    assert run("keys", "new", "rec", "--role", "recorder", env=env).returncode == 0
    appended = run(
        "append",
        "tool.called",
        "--signer",
        "rec",
        "--agent",
        "a1",
        "--run",
        "r1",
        "--payload",
        tool_called(),
        env=env,
    )
    assert appended.returncode == 0 and appended.stdout.startswith(b"seq 3 ")
    verified = run("verify", "--json", env=env)
    assert verified.returncode == 0, verified.stderr
    out = json.loads(verified.stdout)
    assert out["ok"] is True and out["events"] == 3
    export = tmp_path / "e.jsonl"
    assert run("export", "-o", str(export), env=env).returncode == 0
    by_file = run("verify", "--file", str(export), "--json", env=env)
    assert json.loads(by_file.stdout)["root"] == out["root"]


def test_e2e_bad_import_exit_2_and_nothing_written(env: dict[str, str]) -> None:
    assert run("init", "--origin", ORIGIN, env=env).returncode == 0
    assert run("keys", "new", "rec", "--role", "recorder", env=env).returncode == 0
    before = run("verify", "--json", env=env).stdout
    bad = b'{"type": "x.a", "payload": {}}\n{"type": "x.a", "payload": {"f": 0.5}}\n'
    result = run("import", "-", "--signer", "rec", env=env, input=bad)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "error: -: 1 bad line, nothing imported:",
        "line 2: $.payload.f: number 0.5 is not an integer; signed content holds no floats "
        "(use micro-units, basis points, milliseconds)",
    ]
    assert result.stdout == b""
    assert run("verify", "--json", env=env).stdout == before


def test_e2e_missing_ledger_exit_3_without_traceback(env: dict[str, str]) -> None:
    result = run("verify", env=env)
    assert result.returncode == 3
    assert b"Traceback" not in result.stderr
    assert result.stderr.decode() == (
        f"error: no ledger at {env['GOVLEDGER_DB']}: create one with `govledger init --origin NAME`\n"
    )


def test_export_to_an_unwritable_place_is_exit_2(ready: Cli, tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "e.jsonl"
    result = ready("export", "-o", str(target), ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: -o: cannot write {target}: No such file or directory\n",
    )


def test_verify_file_pinned_but_empty_is_untrusted_root(ready: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = ready("verify", "--file", str(empty), "--trust", "a" * 32, "--json", ok=False)
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert (out["ok"], out["events"], out["pinned"]) == (False, 0, True)
    assert out["problems"] == [
        {
            "seq": 1,
            "kind": "untrusted_root",
            "detail": "no root key: the file has no ledger.created",
        }
    ]
    # Unpinned, a file without its ledger.created is still not a log.
    result = ready("verify", "--file", str(empty), "--json", ok=False)
    assert result.exit_code == 1
    assert [p["kind"] for p in json.loads(result.stdout)["problems"]] == ["malformed"]


def test_json_event_lines_are_the_export_lines_byte_for_byte(ready: Cli) -> None:
    cli = ready
    appended = cli("append", "x.note", "--signer", "rec", "--payload", '{"b": 1, "a": "é"}',
                   "--json").stdout_bytes  # fmt: skip
    logged = cli("log", "--json").stdout_bytes.splitlines(keepends=True)
    exported = cli("export").stdout_bytes.splitlines(keepends=True)
    assert logged == exported
    assert appended == exported[-1]


def test_an_empty_trusted_keys_file_is_refused_not_ignored(ready: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "trusted.txt"
    empty.write_text("# nobody\n", encoding="utf-8")
    result = ready("verify", "--trusted-keys", str(empty), ok=False)
    assert result.exit_code == 2
    assert result.stderr == f"error: --trusted-keys: {empty} holds no key id\n"
