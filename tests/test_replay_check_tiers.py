"""`replay --check` is recomputation as verification: a recorded tier change that the policy in
force does not justify fails it (exit 1), next to read models that differ from the log."""

from __future__ import annotations

import json

from projections.policy.document import default_policy
from tests.conftest import Cli, agent_registration


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
