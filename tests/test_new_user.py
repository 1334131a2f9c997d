"""What a new user meets on a fresh clone: the demo, the tour, names that do not exist, messages.

Each test follows the README or the demo's tour as a newcomer would, and pins what they see.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.cli import main
from ledger.cli.demo import program
from tests.conftest import ORIGIN, Cli, agent_registration


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory of its own and no GOVLEDGER_KEYS: the default key directory is
    ``<home>/.govledger/keys``, as on a fresh machine."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GOVLEDGER_KEYS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def govledger(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- the demo keeps its keys and files apart ---------------------------------------------------


def test_demo_keeps_its_keys_beside_its_database(home: Path, tmp_path: Path) -> None:
    result = govledger("--db", "demo.db", "demo", "--events", "2000")
    assert result.exit_code == 0, result.stderr
    assert not (home / ".govledger").exists()
    assert sorted(p.name for p in (tmp_path / "demo.db.keys").iterdir()) == [
        "recorder.pem",
        "root.pem",
    ]
    assert "--db demo.db --keys demo.db.keys verify --trust" in result.stdout
    # The README tour after the demo: a ledger of one's own, in the default key directory.
    assert govledger("init", "--origin", ORIGIN).exit_code == 0
    made = govledger("keys", "new", "recorder", "--role", "recorder")
    assert made.exit_code == 0, made.stderr
    assert sorted(p.name for p in (home / ".govledger" / "keys").iterdir()) == [
        "recorder.pem",
        "root.pem",
    ]


def test_demo_leaves_its_checkpoint_and_the_tour_proof_beside_its_database(
    home: Path, tmp_path: Path
) -> None:
    (tmp_path / "d").mkdir()
    result = govledger("--db", "d/demo.db", "demo", "--events", "2000")
    assert result.exit_code == 0, result.stderr
    assert "prove 42 -o d/demo.event-42.tlog-proof" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "demo.checkpoint",
        "demo.db",
        "demo.db.keys",
    ]


def test_git_ignores_what_the_demo_leaves() -> None:
    ignored = (Path(__file__).parent.parent / ".gitignore").read_text().splitlines()
    for pattern in ("*.db", "*.checkpoint", "*.tlog-proof", "*.db.keys/"):
        assert pattern in ignored


def test_init_says_when_it_uses_an_existing_root_key(cli: Cli, tmp_path: Path) -> None:
    first = cli("init", "--origin", ORIGIN)
    assert first.stderr == ""
    cli.db = tmp_path / "second.db"
    second = cli("init", "--origin", "other.example/log")
    key_id = json.loads(cli("keys", "list", "--json").stdout.splitlines()[0])["key_id"]
    assert second.stderr == (
        f"note: using the existing key root ({cli.keys / 'root.pem'}, key id {key_id}) as this "
        "ledger's root key; give --keys DIR (before the command) for a new one\n"
    )


# --- the tour's commands work as printed -------------------------------------------------------


def test_tour_names_the_program_that_ran_when_it_is_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    exe = venv / "govledger"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "argv", [str(exe), "demo"])
    assert program() == ".venv/bin/govledger"
    monkeypatch.setattr(sys, "argv", [".venv/bin/govledger", "demo"])
    assert program() == ".venv/bin/govledger"
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setattr(sys, "argv", [str(exe), "demo"])
    assert program() == f"{tmp_path.name}/.venv/bin/govledger"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert program() == str(exe)  # outside the working directory: the absolute path
    monkeypatch.setenv("PATH", str(venv))
    assert program() == "govledger"


def test_tour_commands_start_with_the_program_that_ran(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = tmp_path / "bin" / "govledger"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "argv", [str(exe)])
    monkeypatch.chdir(tmp_path)
    out = cli("demo", "--events", "2000").stdout
    tour = out.split("What to look at next:\n", 1)[1].splitlines()
    commands = [shlex.split(line.split("   # ")[0]) for line in tour if line.strip()]
    assert {c[0] for c in commands} == {"bin/govledger"}
    assert [c[1:3] for c in commands if c[1] != "verify-proof"] == [
        ["--db", str(cli.db)] for c in commands if c[1] != "verify-proof"
    ]


# --- messages ----------------------------------------------------------------------------------


def _tool_called(cli: Cli, run: str = "r1") -> None:
    payload = {"tool": "t", "args_digest": "0" * 64, "side_effect": "read"}
    cli("append", "tool.called", "--signer", "rec", "--agent", "a1", "--run", run,
        "--payload", json.dumps(payload))  # fmt: skip


def test_an_agent_key_signing_an_event_with_no_agent_says_so(ready: Cli) -> None:
    ready("keys", "new", "ak", "--role", "agent", "--agent", "a1")
    result = ready("append", "x.custom", "--signer", "ak", ok=False)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: event: an agent key bound to 'a1' may not sign x.custom with no agent (key ak)\n"
    )


def test_one_event_is_one_event_not_one_events(ready: Cli, tmp_path: Path) -> None:
    line = {"type": "x.note", "payload": {"n": 1}}
    imported = ready("import", "-", "--signer", "rec", input=json.dumps(line) + "\n")
    assert imported.stdout == "imported 1 event: seq 3–3\n"
    out = tmp_path / "one.jsonl"
    exported = ready("export", "--from", "3", "-o", str(out))
    assert exported.stderr == f"exported 1 event to {out}\n"


def test_a_mistyped_event_type_gets_a_suggestion(ready: Cli) -> None:
    result = ready("append", "tool.caled", "--signer", "rec", "--agent", "a1", "--run", "r1",
                   ok=False)  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == (
        "error: event: type: unknown event type 'tool.caled'; did you mean 'tool.called'?\n"
    )
    other = ready("append", "zzz", "--signer", "rec", ok=False)
    assert other.stderr == (
        "error: event: type: unknown event type 'zzz' (a catalog type, or x.<name> for your own)\n"
    )


def test_an_unknown_policy_field_is_called_an_unknown_field(ready: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text("bogus = 1\n" + ready("policy", "show").stdout)
    result = ready("policy", "set", str(policy), "--signer", "root", ok=False)
    assert result.exit_code == 2
    assert "bogus: unknown field" in result.stderr
    assert "Extra inputs" not in result.stderr


@pytest.mark.parametrize("option", ["--db", "--keys"])
def test_a_global_option_after_the_command_says_where_it_goes(cli: Cli, option: str) -> None:
    result = govledger("runs", "list", option, "x")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: {option} is a global option: it goes before the command "
        f"(govledger {option} {'PATH' if option == '--db' else 'DIR'} runs list ...)"
    )


def test_a_run_not_started_has_no_duration_yet(ready: Cli) -> None:
    payload = {"objective": "o", "user": "u", "risk": "low", "auto_approve": False}
    ready("append", "run.submitted", "--signer", "rec", "--agent", "a1", "--run", "r1",
          "--payload", json.dumps(payload))  # fmt: skip
    out = ready("runs", "show", "r1").stdout
    assert "duration unknown (not started)" in out
    assert "duration - ms" not in out


def test_replay_check_failure_goes_through_the_one_exit_code_mapping(ready: Cli) -> None:
    _tool_called(ready)
    ready("runs", "list")
    import sqlite3

    conn = sqlite3.connect(ready.db)
    conn.execute("UPDATE runs SET events = 7 WHERE run = 'r1'")
    conn.commit()
    conn.close()
    result = ready("replay", "--check", ok=False)
    assert result.exit_code == 1
    assert result.stdout.startswith("read models differ from the log: runs.runs run='r1': ")
    assert result.stderr == (
        "error: replay --check: 1 difference between the stored read models and a fresh "
        "replay of the log\n"
    )


# --- --json everywhere the README says -----------------------------------------------------------


def test_checkpoint_prove_vkey_and_export_take_json(ready: Cli, tmp_path: Path) -> None:
    cp = ready.json("checkpoint", "--signer", "root")
    assert (cp["origin"], cp["size"], cp["output"]) == (ORIGIN, 2, None)
    assert cp["text"].startswith(f"{ORIGIN}\n2\n")
    assert len(cp["root"]) == 64
    out = tmp_path / "cp"
    written = ready.json("checkpoint", "--signer", "root", "-o", str(out))
    assert written["output"] == str(out) and out.read_text() == written["text"]
    proof = ready.json("prove", "1")
    assert (proof["kind"], proof["seq"], proof["output"]) == ("inclusion", 1, None)
    vkey = ready.json("keys", "vkey", "root")
    assert vkey["name"] == "root" and vkey["vkey"].startswith(f"{ORIGIN}+")
    assert vkey["vkey"] == ready("keys", "vkey", "root").stdout.strip()
    checked = ready.json("verify-proof", "-", "--vkey", vkey["vkey"], input=proof["text"])
    assert checked["ok"] is True and checked["seq"] == 1
    lines = ready("export", "--json").stdout.splitlines()
    assert lines == ready("export").stdout.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2]


def test_readme_says_listings_print_json_lines() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "listings print JSON Lines" in readme


# --- one rule for unknown names ------------------------------------------------------------------

UNKNOWN = {
    "runs-show": (["runs", "show", "nope"], "error: no run 'nope' in the ledger"),
    "tiers-history": (
        ["tiers", "history", "nope"],
        "error: agent 'nope' is not registered (no agent.registered or tier.* event names it)",
    ),
    "metrics-agent": (["metrics", "--agent", "nope"], "error: no agent 'nope' in the ledger"),
    "tiers-apply-approve": (
        ["tiers", "apply", "--signer", "root", "--approve", "nope"],
        "error: --approve nope: no promotion of agent 'nope' awaits a human decision "
        "(`tiers compute` lists the changes due)",
    ),
}


@pytest.mark.parametrize(("args", "line"), UNKNOWN.values(), ids=UNKNOWN.keys())
def test_looking_up_one_thing_that_does_not_exist_is_exit_2(
    ready: Cli, args: list[str], line: str
) -> None:
    _tool_called(ready)
    before = ready("export").stdout
    result = ready(*args, ok=False)
    assert result.exit_code == 2
    assert result.stderr == line + "\n"
    assert ready("export").stdout == before


EMPTY = {
    "runs-list": (["runs", "list", "--agent", "nope"], "no run matches"),
    "runs-list-json": (["runs", "list", "--agent", "nope", "--json"], "no run matches"),
    "log": (["log", "--agent", "nope"], "no event matches"),
    "log-json": (["log", "--agent", "nope", "--json"], "no event matches"),
    "findings": (["findings", "--agent", "nope"], "no finding matches"),
    "corrections": (
        ["corrections", "--agent", "nope"],
        "no correction pattern has emerged for agent nope",
    ),
    "corrections-json": (
        ["corrections", "--agent", "nope", "--json"],
        "no correction pattern has emerged for agent nope",
    ),
    "findings-json": (["findings", "--agent", "nope", "--json"], "no finding matches"),
}


@pytest.mark.parametrize(("args", "note"), EMPTY.values(), ids=EMPTY.keys())
def test_a_filter_that_matches_nothing_prints_nothing_and_says_so(
    ready: Cli, args: list[str], note: str
) -> None:
    _tool_called(ready)
    result = ready(*args)
    assert result.stdout == ""
    assert result.stderr == note + "\n"


# --- why a run is not compliant ----------------------------------------------------------------


def test_non_compliant_runs_show_finding_kinds_and_why_without_findings(ready: Cli) -> None:
    reg = agent_registration("a1")
    ready("append", "agent.registered", "--signer", "root", "--agent", "a1",
          "--payload", json.dumps(reg.payload))  # fmt: skip
    _tool_called(ready, "r1")  # no approval, no grant: findings
    submitted = {"objective": "o", "user": "u", "risk": "low", "auto_approve": False}
    ready("append", "run.submitted", "--signer", "rec", "--agent", "a1", "--run", "r2",
          "--payload", json.dumps(submitted))  # fmt: skip
    rows = {
        line.split("│")[1].strip(): line
        for line in ready("runs", "list").stdout.splitlines()
        if line.startswith("│")
    }
    assert "started_without_approval" in rows["r1"]
    assert "critical" not in rows["r1"]
    assert "none (not finished)" in rows["r2"]


# --- time travel ---------------------------------------------------------------------------------


def test_as_of_before_the_first_event_says_so(ready: Cli) -> None:
    first = json.loads(ready("log", "--json").stdout.splitlines()[0])["ts"]
    result = ready("tiers", "show", "--as-of", "2000-01-01")
    assert result.stderr.splitlines()[0] == (
        f"note: --as-of 2000-01-01 is before the log's first event ({first}): "
        "nothing had been recorded yet"
    )
    assert "note:" not in ready("tiers", "show", "--as-of", first).stderr


def test_readme_time_travel_examples_do_not_predate_the_demo() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "--as-of 2026-11-01" not in readme
    assert "runs list --at-seq 2000" in readme and "tiers show --at-seq 3000" in readme


# --- a policy that closes tiers ------------------------------------------------------------------

CLOSED = """human_approval_from_tier = 3
cooldown_seconds = 3600

[promotion.T1]
min_compliant_runs = 3
min_streak = 2

[promotion.T2]
min_compliant_runs = 10
"""


def _register(cli: Cli, agent: str, tier: int) -> None:
    payload = {**agent_registration(agent).payload, "initial_tier": tier}
    cli("append", "agent.registered", "--signer", "root", "--agent", agent,
        "--payload", json.dumps(payload))  # fmt: skip


def test_policy_set_warns_when_a_tier_cannot_be_reached(ready: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "closed.toml"
    policy.write_text(CLOSED)
    result = ready("policy", "set", str(policy), "--signer", "root")
    assert result.stderr == (
        "warning: the policy has no [promotion.T3]: no agent is ever promoted into T3 (nor T4); "
        "add [promotion.T3] to allow it\n"
    )
    full = tmp_path / "full.toml"
    full.write_text(ready("policy", "show", "--at-seq", "2").stdout)  # the shipped default
    assert ready("policy", "set", str(full), "--signer", "root").stderr == ""


def test_docs_example_policy_reaches_every_tier() -> None:
    from projections.policy.document import load_toml, unreachable_warning, validate

    text = (Path(__file__).parent.parent / "docs" / "policy.md").read_text()
    example = text.split("## Example\n\n```toml\n", 1)[1].split("```", 1)[0]
    assert unreachable_warning(validate(load_toml(example))) is None


def test_explain_says_why_nothing_is_due(ready: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "closed.toml"
    policy.write_text(CLOSED)
    ready("policy", "set", str(policy), "--signer", "root")
    _register(ready, "a2", 2)
    _register(ready, "a0", 0)
    due = [line for line in ready("tiers", "explain", "a2").stdout.splitlines() if "due:" in line]
    assert due == [
        "due: nothing (the policy has no [promotion.T3], so no agent is promoted into T3; "
        "no demotion or revocation is due)"
    ]
    low = ready("tiers", "explain", "a0").stdout
    assert "due: nothing (not met for T1: min_compliant_runs, min_streak" in low


# --- runs show says what each line rests on, and re-derives on request ---------------------------


def test_runs_show_check_names_a_read_model_edited_behind_govledgers_back(ready: Cli) -> None:
    import sqlite3

    _tool_called(ready)
    shown = ready("runs", "show", "r1").stdout
    assert "rests on: state, totals and findings: the stored read model" in shown
    assert "timeline and events verify: the log itself" in shown
    ok = ready("runs", "show", "r1", "--check")
    assert "check: the stored read model matches a fresh replay of the log" in ok.stdout
    conn = sqlite3.connect(ready.db)
    conn.execute("UPDATE runs SET tool_calls = 9 WHERE run = 'r1'")
    conn.commit()
    conn.close()
    bad = ready("runs", "show", "r1", "--check", ok=False)
    assert bad.exit_code == 1
    assert "  tool_calls: stored 9, the log gives 1" in bad.stdout
    assert bad.stderr == (
        "error: runs show --check: run r1: the stored read model differs from the log in "
        "tool_calls\n"
    )
    as_json = ready("runs", "show", "r1", "--check", "--json", ok=False)
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["check"] == {
        "ok": False,
        "differences": [{"field": "tool_calls", "stored": 9, "derived": 1}],
    }


# --- one set of run states -----------------------------------------------------------------------

STATES = {"submitted", "approved", "rejected", "running", "completed", "failed", "cancelled"}


def test_a_run_without_lifecycle_events_has_no_state_not_a_hidden_one(ready: Cli) -> None:
    from ledger.cli.runs import STATES as LISTED

    assert set(LISTED) == STATES
    docs = (Path(__file__).parent.parent / "docs" / "projections.md").read_text()
    assert all(f"`{s}`" in docs for s in STATES) and "state `new`" not in docs
    _tool_called(ready)  # a run seen only through a tool call
    (run,) = ready.json_lines("runs", "list")
    assert run["state"] is None
    row = next(line for line in ready("runs", "list").stdout.splitlines() if "r1" in line)
    assert row.split("│")[3].strip() == "-"
    assert "state - (no lifecycle event yet)" in ready("runs", "show", "r1").stdout
    payload = {"objective": "o", "user": "u", "risk": "low", "auto_approve": False}
    ready("append", "run.submitted", "--signer", "rec", "--agent", "a1", "--run", "r1",
          "--payload", json.dumps(payload))  # fmt: skip
    (run,) = ready.json_lines("runs", "list", "--status", "submitted")
    assert run["state"] == "submitted" and run["anomalies"] == []
