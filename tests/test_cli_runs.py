"""``govledger runs list|show``, ``metrics`` and ``replay`` on a real signed ledger (SPEC §5)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.cli import main
from ledger.store.sqlite import Draft, Ledger
from projections.policy.document import default_policy
from tests.conftest import Cli, LedgerKeys, agent_registration, digest


def compliant_run(
    ledger: Ledger, keys: LedgerKeys, run: str, agent: str = "planner-1", tool: str = "t.read"
) -> None:
    """A run with approval and grant in place, then a tool of side effect ``read``."""
    ar = {"agent": agent, "run": run}
    rec, gov = keys.recorder, keys.root
    ledger.append(Draft("run.submitted", {"objective": "o", "user": "u", "risk": "low",
                                          "auto_approve": False}, **ar), signer=rec)  # fmt: skip
    ledger.append(Draft("run.approved", {"approver": "alice", "mode": "human",
                                         "plan_digest": digest(run)}, **ar), signer=gov)  # fmt: skip
    ledger.append(Draft("capability.granted", {"tools": [tool], "capabilities": [],
                                               "token_digest": digest(run)}, **ar), signer=gov)  # fmt: skip
    ledger.append_many(
        [
            Draft("run.started", {}, **ar),
            Draft(
                "tool.called",
                {"tool": tool, "args_digest": digest("a"), "side_effect": "read"},
                **ar,
            ),
            Draft(
                "llm.usage",
                {
                    "provider": "p",
                    "model": "m",
                    "tokens_in": 100,
                    "tokens_out": 20,
                    "cache_read_tokens": 0,
                    "cache_write_tokens": 0,
                    "cost_micro_usd": 1500,
                    "wallclock_ms": 10,
                },
                **ar,
            ),
            Draft("run.completed", {"steps_completed": 1}, **ar),
        ],
        signer=rec,
    )


def forbidden_run(ledger: Ledger, keys: LedgerKeys, run: str, agent: str = "planner-1") -> None:
    """A run that pays: side effect ``payment`` is forbidden for the agent (critical)."""
    compliant_run(ledger, keys, run, agent)
    ledger.append(Draft("tool.called", {"tool": "t.read", "args_digest": digest("p"),
                                        "side_effect": "payment"}, agent=agent, run=run),
                  signer=keys.recorder)  # fmt: skip


@pytest.fixture
def db(ledger: Ledger, keys: LedgerKeys) -> str:
    """planner-1 registered; run-a compliant, run-b paying, run-c compliant."""
    ledger.append(agent_registration("planner-1"), signer=keys.root)
    compliant_run(ledger, keys, "run-a")
    forbidden_run(ledger, keys, "run-b")
    compliant_run(ledger, keys, "run-c")
    return ledger.path


def cli(db: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", db, *args], catch_exceptions=False)


def lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_runs_list_json_has_the_minimal_run_shape(db: str) -> None:
    runs = lines(cli(db, "runs", "list", "--json"))
    assert [(r["run"], r["agent"], r["state"], r["compliant"]) for r in runs] == [
        ("run-a", "planner-1", "completed", True),
        ("run-b", "planner-1", "completed", False),
        ("run-c", "planner-1", "completed", True),
    ]
    b = runs[1]
    seq_of_payment = b["last_seq"]
    assert [{k: f[k] for k in ("kind", "severity", "seq", "evidence_seq")} for f in b["findings"]] == [
        {"kind": "forbidden_action", "severity": "critical", "seq": seq_of_payment,
         "evidence_seq": 3},
    ]  # fmt: skip
    assert b["anomalies"] == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--non-compliant"], ["run-b"]),
        (["--agent", "planner-1"], ["run-a", "run-b", "run-c"]),
        (["--agent", "nobody"], []),
        (["--status", "running"], []),
        (["--status", "completed", "--limit", "1"], ["run-a"]),
        (["--since", "2000-01-01T00:00:00Z", "--until", "2999-01-01"], ["run-a", "run-b", "run-c"]),
        (["--until", "2000-01-01T00:00:00+02:00"], []),
    ],
    ids=["non-compliant", "agent", "unknown-agent", "status", "limit", "since-until", "until-past"],
)
def test_runs_list_filters(db: str, args: list[str], expected: list[str]) -> None:
    assert [r["run"] for r in lines(cli(db, "runs", "list", *args, "--json"))] == expected


def test_runs_list_since_is_inclusive(db: str) -> None:
    first_ts = lines(cli(db, "runs", "list", "--json"))[1]["first_ts"]
    assert [r["run"] for r in lines(cli(db, "runs", "list", "--since", first_ts, "--json"))] == [
        "run-b",
        "run-c",
    ]


def test_runs_list_for_people_is_a_table(db: str) -> None:
    out = cli(db, "runs", "list").stdout
    row = next(line for line in out.splitlines() if "run-b" in line)
    assert "completed" in row and "forbidden_action" in row  # the kinds, not their counts


def test_runs_show_gives_timeline_findings_and_verification(db: str) -> None:
    show = lines(cli(db, "runs", "show", "run-b", "--json"))[0]
    assert show["run"] == "run-b" and show["compliant"] is False
    assert [e["type"] for e in show["timeline"]] == [
        "run.submitted", "run.approved", "capability.granted", "run.started", "tool.called",
        "llm.usage", "run.completed", "tool.called",
    ]  # fmt: skip
    assert show["timeline"][4]["summary"] == "tool=t.read side_effect=read"
    assert show["verified"] is True and show["problems"] == []
    assert [f["kind"] for f in show["findings"]] == ["forbidden_action"]
    text = cli(db, "runs", "show", "run-b").stdout
    assert "events verify: yes (8 events" in text
    assert "forbidden_action" in text


def test_runs_show_reports_an_event_that_does_not_verify(db: str) -> None:
    conn = sqlite3.connect(db)
    seq = conn.execute("SELECT min(seq) FROM events WHERE run = 'run-c'").fetchone()[0]
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET payload = replace(payload, '\"low\"', '\"high\"') WHERE seq = ?",
                 (seq,))  # fmt: skip
    conn.commit()
    conn.close()
    show = lines(cli(db, "runs", "show", "run-c", "--json"))[0]
    assert show["verified"] is False
    assert [(p["seq"], p["kind"]) for p in show["problems"]] == [(seq, "hash_mismatch")]


def test_runs_show_unknown_run_is_a_usage_error(db: str) -> None:
    result = cli(db, "runs", "show", "nope")
    assert result.exit_code == 2
    assert result.stderr == "error: no run 'nope' in the ledger\n"


def test_runs_show_at_seq_is_the_run_as_it_stood(db: str) -> None:
    start = lines(cli(db, "runs", "list", "--json"))[0]["first_seq"]
    show = lines(cli(db, "runs", "show", "run-a", "--at-seq", str(start + 1), "--json"))[0]
    assert show["state"] == "approved"
    assert [e["seq"] for e in show["timeline"]] == [start, start + 1]
    result = cli(db, "runs", "show", "run-c", "--at-seq", str(start))
    assert result.exit_code == 2
    assert result.stderr == f"error: no run 'run-c' in the ledger at seq {start}\n"


def test_metrics_counts_compliance_and_streaks_from_findings(db: str) -> None:
    (m,) = lines(cli(db, "metrics", "--json"))
    assert m["agent"] == "planner-1"
    assert (m["runs"], m["completed"], m["compliant_runs"]) == (3, 3, 2)
    assert (m["current_streak"], m["best_streak"]) == (1, 1)
    assert m["violations"] == {"forbidden_action": 1}
    assert m["violations_by_severity"] == {"critical": 1}
    assert (m["tokens_in"], m["cost_micro_usd"]) == (300, 4500)
    assert (m["tier"], m["effective_tier"]) == (1, 0)


def test_metrics_for_an_unknown_agent_is_a_usage_error(db: str) -> None:
    result = cli(db, "metrics", "--agent", "ghost")
    assert result.exit_code == 2
    assert result.stderr == "error: no agent 'ghost' in the ledger\n"


def test_metrics_as_of_a_time_before_the_payment(db: str) -> None:
    runs = lines(cli(db, "runs", "list", "--json"))
    (m,) = lines(cli(db, "metrics", "--as-of", runs[1]["first_ts"], "--json"))
    assert (m["runs"], m["compliant_runs"], m["current_streak"]) == (2, 1, 1)


def test_reading_commands_catch_up_with_new_events(
    db: str, ledger: Ledger, keys: LedgerKeys
) -> None:
    assert len(lines(cli(db, "runs", "list", "--json"))) == 3
    compliant_run(ledger, keys, "run-d")
    runs = lines(cli(db, "runs", "list", "--json"))
    assert [r["run"] for r in runs][-1] == "run-d"
    (m,) = lines(cli(db, "metrics", "--json"))
    assert (m["compliant_runs"], m["current_streak"], m["best_streak"]) == (3, 2, 2)


def test_replay_rebuilds_and_check_passes(db: str) -> None:
    out = lines(cli(db, "replay", "--json"))[0]
    assert out["rebuilt"] is True and out["runs_total"] == 3
    check = lines(cli(db, "replay", "--check", "--json"))[0]
    assert check["ok"] is True and check["differences"] == []
    assert cli(db, "replay", "--check").stdout.startswith("ok: read models match a fresh replay")


def test_replay_check_catches_a_row_edited_behind_govledgers_back(db: str) -> None:
    cli(db, "runs", "list")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE runs SET compliant = 1 WHERE run = 'run-b'")
    conn.commit()
    conn.close()
    result = cli(db, "replay", "--check")
    assert result.exit_code == 1
    assert result.stdout == (
        "read models differ from the log: runs.runs run='run-b': compliant is 1, replay gives 0\n"
    )
    result = cli(db, "replay", "--check", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["differences"] == [
        {"projection": "runs", "table": "runs", "key": {"run": "run-b"},
         "detail": "compliant is 1, replay gives 0"}
    ]  # fmt: skip


def test_replay_check_catches_a_deleted_finding(db: str) -> None:
    cli(db, "runs", "list")
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM findings")
    conn.commit()
    conn.close()
    result = cli(db, "replay", "--check")
    assert result.exit_code == 1
    assert "runs.findings" in result.stdout and "row is missing" in result.stdout


def test_replay_at_seq_leaves_the_stored_read_models_alone(db: str) -> None:
    cli(db, "runs", "list")
    conn = sqlite3.connect(db)
    before = conn.execute("SELECT * FROM projection_meta ORDER BY name").fetchall()
    out = lines(cli(db, "replay", "--at-seq", "5", "--json"))[0]
    assert out["at_seq"] == 5 and out["rebuilt"] is False
    assert conn.execute("SELECT * FROM projection_meta ORDER BY name").fetchall() == before
    conn.close()


def test_replay_check_takes_no_time_travel(db: str) -> None:
    result = cli(db, "replay", "--check", "--at-seq", "3")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --check compares the stored read models; it takes no --at-seq/--as-of\n"
    )


def test_at_seq_and_as_of_together_are_refused(db: str) -> None:
    result = cli(db, "runs", "list", "--at-seq", "3", "--as-of", "2026-01-01T00:00:00Z")
    assert result.exit_code == 2
    assert result.stderr == "error: --at-seq and --as-of cannot be used together\n"


def test_missing_ledger_is_an_environment_error(tmp_path: Path) -> None:
    result = cli(str(tmp_path / "none.db"), "runs", "list")
    assert result.exit_code == 3


def test_installed_command_lists_runs(db: str) -> None:
    exe = Path(sys.executable).with_name("govledger")
    out = subprocess.run([str(exe), "--db", db, "runs", "list", "--non-compliant", "--json"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert [json.loads(x)["run"] for x in out.stdout.splitlines()] == ["run-b"]


def _promote(cli: Cli, to: int, *, frm: int = 0) -> None:
    policy = default_policy()
    payload = {"from": frm, "to": to, "reason": "by hand", "policy_version": 0,
               "policy_digest": policy.digest, "evidence": {"seq_from": 1, "seq_to": 3}}  # fmt: skip
    cli("append", "tier.promoted", "--signer", "root", "--agent", "planner-1",
        "--payload", json.dumps(payload))  # fmt: skip


def test_replay_check_passes_when_every_tier_change_is_justified(ready: Cli) -> None:
    reg = agent_registration()
    cli = ready
    cli("append", "agent.registered", "--signer", "root", "--agent", "planner-1",
        "--payload", json.dumps(reg.payload))  # fmt: skip
    out = cli.json("replay", "--check")
    assert out["ok"] is True and out["unjustified_tier_changes"] == []


def test_replay_check_fails_on_a_promotion_that_skips_a_tier(ready: Cli) -> None:
    reg = agent_registration()
    cli = ready
    cli("append", "agent.registered", "--signer", "root", "--agent", "planner-1",
        "--payload", json.dumps(reg.payload))  # fmt: skip
    _promote(cli, frm=1, to=3)  # agent_registration() starts at T1
    result = cli("replay", "--check", ok=False)
    assert result.exit_code == 1
    assert result.stdout.startswith("seq 4: unjustified_tier_change: agent planner-1: ")
    out = json.loads(cli("replay", "--check", "--json", ok=False).stdout)
    assert out["ok"] is False
    assert [(f["seq"], f["agent"], f["kind"]) for f in out["unjustified_tier_changes"]] == [
        (4, "planner-1", "unjustified_tier_change")
    ]


def test_metrics_counts_unjustified_tier_changes_per_agent(ready: Cli) -> None:
    cli = ready
    cli("append", "agent.registered", "--signer", "root", "--agent", "planner-1",
        "--payload", json.dumps(agent_registration().payload))  # fmt: skip
    assert cli.json_lines("metrics")[0]["unjustified_tier_changes"] == 0
    _promote(cli, frm=1, to=3)
    (m,) = cli.json_lines("metrics")
    assert (m["agent"], m["unjustified_tier_changes"]) == ("planner-1", 1)


# An unjustified tier change must not raise the agent's effective tier, in the runs read model
# either: the approval rule ([approval]) and the grants rule ([grants]) go by the tier the
# policy justifies, as the tiers read model does.
AUTONOMY_POLICY = """
human_approval_from_tier = 5
cooldown_seconds = 0

[promotion.T1]
min_compliant_runs = 0

[approval]
auto_from_tier = { low = 1, medium = 1, high = 1 }

[grants]
contract_suffices_from_tier = 1
"""


def _autonomy_ledger(cli: Cli) -> None:
    """``planner-1`` registered at T0 under a policy where T1 starts high-risk runs on its
    own, with no grant (a T0 → T1 promotion is due at once)."""
    payload = {**agent_registration().payload, "initial_tier": 0}
    cli("append", "agent.registered", "--signer", "root", "--agent", "planner-1",
        "--payload", json.dumps(payload))  # fmt: skip
    path = cli.tmp / "policy.toml"
    path.write_text(AUTONOMY_POLICY)
    cli("policy", "set", str(path), "--signer", "root")


def _autonomous_run(cli: Cli, run: str = "r1") -> None:
    """A high-risk run submitted with ``auto_approve``, started with no ``run.approved`` and
    no grant, one tool call, completed: all signed by the recorder."""
    ar = ("--signer", "rec", "--agent", "planner-1", "--run", run)
    submitted = {"objective": "o", "user": "u", "risk": "high", "auto_approve": True}
    tool = {"tool": "t.read", "args_digest": digest("a"), "side_effect": "read"}
    cli("append", "run.submitted", *ar, "--payload", json.dumps(submitted))
    cli("append", "run.started", *ar, "--payload", "{}")
    cli("append", "tool.called", *ar, "--payload", json.dumps(tool))
    cli("append", "run.completed", *ar, "--payload", json.dumps({"steps_completed": 1}))


def _policy_cited(cli: Cli) -> tuple[int, str]:
    shown = cli.json("policy", "show")
    return shown["version"], shown["digest"]


def test_an_unjustified_promotion_does_not_let_a_run_skip_approval_or_grants(ready: Cli) -> None:
    cli = ready
    _autonomy_ledger(cli)
    version, policy_digest = _policy_cited(cli)
    promotion = {"from": 0, "to": 4, "reason": "by hand", "policy_version": version,
                 "policy_digest": policy_digest, "evidence": {"seq_from": 1, "seq_to": 4}}  # fmt: skip
    cli("append", "tier.promoted", "--signer", "root", "--agent", "planner-1",
        "--payload", json.dumps(promotion))  # fmt: skip
    (tier,) = cli.json_lines("tiers", "show")
    assert (tier["tier"], tier["effective_tier"]) == (4, 0)  # the tiers read model ignores it
    _autonomous_run(cli)
    shown = cli.json("runs", "show", "r1")
    assert shown["compliant"] is False
    kinds = {(f["kind"], f["severity"]) for f in shown["findings"]}
    assert kinds == {
        ("started_without_approval", "critical"),
        ("tool_outside_grant", "critical"),
    }
    assert (shown["submitted_tier"], shown["started_tier"]) == (0, 0)
    (m,) = cli.json_lines("metrics")
    assert (m["tier"], m["effective_tier"], m["unjustified_tier_changes"]) == (4, 0, 1)
    assert [r["run"] for r in cli.json_lines("runs", "list", "--non-compliant")] == ["r1"]
    found = {(f["kind"], f["run"]) for f in cli.json_lines("findings")}
    assert {("started_without_approval", "r1"), ("tool_outside_grant", "r1")} <= found
    # The stored read models agree with a fresh replay: per run and as a whole (`replay
    # --check` fails on the unjustified change itself, not on a difference).
    assert cli.json("runs", "show", "r1", "--check")["check"] == {"ok": True, "differences": []}
    out = json.loads(cli("replay", "--check", "--json", ok=False).stdout)
    assert out["differences"] == []
    assert [f["kind"] for f in out["unjustified_tier_changes"]] == ["unjustified_tier_change"]
    # Time travel folds the same way: as the run stood at its last event, and at its start.
    size = cli.json("verify")["events"]
    at_end = cli.json("runs", "show", "r1", "--at-seq", str(size))
    assert {f["kind"] for f in at_end["findings"]} == {k for k, _ in kinds}
    at_start = cli.json("runs", "show", "r1", "--at-seq", str(size - 2))
    assert at_start["tier_approved"] in (0, False)
    assert [f["kind"] for f in at_start["findings"]] == ["started_without_approval"]


def test_a_justified_promotion_lets_the_same_run_start_on_its_own(ready: Cli) -> None:
    cli = ready
    _autonomy_ledger(cli)
    out = cli.json("tiers", "apply", "--signer", "root")
    assert [(e["type"], e["payload"]["to"]) for e in out["recorded"]] == [("tier.promoted", 1)]
    (tier,) = cli.json_lines("tiers", "show")
    assert tier["effective_tier"] == 1
    _autonomous_run(cli)
    shown = cli.json("runs", "show", "r1", "--check")
    assert shown["findings"] == [] and shown["compliant"] is True
    assert (shown["submitted_tier"], shown["started_tier"]) == (1, 1)
    assert shown["check"] == {"ok": True, "differences": []}
    assert cli.json("replay", "--check")["ok"] is True
