"""Runtime guardrails as findings, and the approval and grants rules that follow the autonomy
tiers (SPEC §3 "Findings", "Approval rule", "Grants rule"), through the command line on a real
signed ledger."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ledger.app.governance import apply_changes
from ledger.store.sqlite import Draft, Ledger
from projections.findings import kinds as g
from projections.policy.document import default_document, policy_set_payload
from projections.testing import DIGEST, contract
from tests.conftest import Cli, LedgerKeys

EASY = {"min_compliant_runs": 0, "min_streak": 0, "max_violation_rate_bp": 10000,
        "window_runs": 10, "min_seconds_at_tier": 0}  # fmt: skip


def set_policy(ledger: Ledger, keys: LedgerKeys, version: int = 1, **sections: Any) -> None:
    doc = copy.deepcopy(default_document())
    doc.update(sections)
    ledger.append(Draft("policy.set", policy_set_payload(doc, version)), signer=keys.root)


def register(ledger: Ledger, keys: LedgerKeys, agent: str, tier: int) -> None:
    ledger.append(Draft("agent.registered", contract(tier=tier), agent=agent), signer=keys.root)


def guardrail(ledger: Ledger, keys: LedgerKeys, agent: str, severity: str,
              run: str | None = None, kind: str = "forbidden_action") -> int:  # fmt: skip
    payload = {"kind": kind, "severity": severity, "detail": "stopped by the runtime"}
    return ledger.append(Draft("guardrail.triggered", payload, agent=agent, run=run),
                         signer=keys.recorder).seq  # fmt: skip


def a_run(ledger: Ledger, keys: LedgerKeys, agent: str, run: str, *, approved: bool = True,
          granted: bool = True, auto: bool = False, middle: str | None = None) -> dict[str, int]:  # fmt: skip
    """A low-risk run calling one allowed tool, completed; returns the seqs by event type.
    ``middle`` = "critical"/"warning"/"info" adds a guardrail of that severity after the call."""
    ar = {"agent": agent, "run": run}
    seqs: dict[str, int] = {}

    def rec(type_: str, payload: dict[str, Any]) -> None:
        seqs[type_] = ledger.append(Draft(type_, payload, **ar), signer=keys.recorder).seq

    def gov(type_: str, payload: dict[str, Any]) -> None:
        seqs[type_] = ledger.append(Draft(type_, payload, **ar), signer=keys.root).seq

    rec("run.submitted", {"objective": "o", "user": "u", "risk": "low", "auto_approve": auto})
    if approved:
        gov("run.approved", {"approver": "gov", "mode": "human", "plan_digest": DIGEST})
    if granted:
        gov("capability.granted", {"tools": ["memory.read"], "capabilities": [],
                                   "token_digest": DIGEST})  # fmt: skip
    rec("run.started", {})
    rec("tool.called", {"tool": "memory.read", "args_digest": DIGEST, "side_effect": "read"})
    if middle is not None:
        seqs["guardrail.triggered"] = guardrail(ledger, keys, agent, middle, run)
    rec("run.completed", {"steps_completed": 1})
    return seqs


def kinds(cli: Cli, run: str, *at: str) -> list[tuple[str, str, int, int | None]]:
    out = cli.json("runs", "show", run, *at)
    return [(f["kind"], f["severity"], f["seq"], f["evidence_seq"]) for f in out["findings"]]


def effective(cli: Cli, agent: str, *at: str) -> int:
    (a,) = [a for a in cli.json_lines("tiers", "show", *at) if a["agent"] == agent]
    return int(a["effective_tier"])


# --- guardrails ---------------------------------------------------------------------------


def test_a_critical_guardrail_is_a_critical_finding_of_its_run(
    ledger: Ledger, keys: LedgerKeys, cli: Cli
) -> None:
    register(ledger, keys, "a1", 2)
    seqs = a_run(ledger, keys, "a1", "r1", middle="critical")
    gseq = seqs["guardrail.triggered"]
    out = cli.json("runs", "show", "r1")
    assert out["compliant"] is False
    (f,) = out["findings"]
    assert (f["kind"], f["severity"], f["seq"], f["evidence_seq"]) == (
        g.GUARDRAIL_TRIGGERED,
        "critical",
        gseq,
        gseq,
    )
    assert f["run"] == "r1" and f["agent"] == "a1"
    assert "critical 'forbidden_action' guardrail" in f["detail"]
    # The effective tier is 0 at once, and tiers compute proposes the revocation.
    assert effective(cli, "a1") == 0
    assert effective(cli, "a1", "--at-seq", str(gseq - 1)) == 2
    (due,) = cli.json_lines("tiers", "compute")
    assert (due["change"], due["from"], due["to"]) == ("revoked", 2, 0)
    assert due["evidence"]["critical_seq"] == gseq
    metrics = cli.json("metrics", "--agent", "a1")
    assert metrics["violations"] == {g.GUARDRAIL_TRIGGERED: 1}


def test_a_warning_guardrail_makes_the_run_non_compliant_and_counts_for_demotion(
    ledger: Ledger, keys: LedgerKeys, cli: Cli
) -> None:
    set_policy(ledger, keys, demotion={"window_runs": 2, "max_violations": 0, "by": 1})
    register(ledger, keys, "a1", 2)
    seqs = a_run(ledger, keys, "a1", "r1", middle="warning")
    assert kinds(cli, "r1") == [
        (g.GUARDRAIL_TRIGGERED, "warning", seqs["guardrail.triggered"], seqs["guardrail.triggered"])
    ]
    assert cli.json("runs", "show", "r1")["compliant"] is False
    assert effective(cli, "a1") == 2  # a warning does not zero the tier
    (due,) = cli.json_lines("tiers", "compute")
    assert (due["change"], due["from"], due["to"]) == ("demoted", 2, 1)


def test_an_info_guardrail_is_not_a_finding(ledger: Ledger, keys: LedgerKeys, cli: Cli) -> None:
    register(ledger, keys, "a1", 2)
    a_run(ledger, keys, "a1", "r1", middle="info")
    out = cli.json("runs", "show", "r1")
    assert (out["compliant"], out["findings"], out["guardrails"]) == (True, [], 1)
    assert cli.json_lines("tiers", "compute") == []


def test_a_guardrail_naming_no_run_is_a_finding_of_the_agent(
    ledger: Ledger, keys: LedgerKeys, cli: Cli
) -> None:
    register(ledger, keys, "a1", 2)
    a_run(ledger, keys, "a1", "r1")
    gseq = guardrail(ledger, keys, "a1", "critical", kind="circuit_break")
    assert cli.json("runs", "show", "r1")["compliant"] is True  # the run is not touched
    metrics = cli.json("metrics", "--agent", "a1")
    assert metrics["violations"] == {g.GUARDRAIL_TRIGGERED: 1}
    assert effective(cli, "a1") == 0
    (due,) = cli.json_lines("tiers", "compute")
    assert (due["change"], due["evidence"]["critical_seq"]) == ("revoked", gseq)


# --- the approval and grants rules follow the effective tier ----------------------------


# What each rule needs of the run: auto-approved with a grant, or approved with no grant.
RULES = {
    "approval": ({"approved": False, "auto": True}, g.STARTED_WITHOUT_APPROVAL, "run.started"),
    "grants": ({"granted": False}, g.TOOL_OUTSIDE_GRANT, "tool.called"),
}


@pytest.mark.parametrize("rule", list(RULES), ids=list(RULES))
def test_the_same_run_is_a_finding_at_t1_compliant_at_t2_and_a_finding_after_a_critical(
    rule: str, ledger: Ledger, keys: LedgerKeys, cli: Cli
) -> None:
    shape, kind, offending = RULES[rule]
    set_policy(ledger, keys, promotion={"T2": EASY})
    register(ledger, keys, "low", 1)
    register(ledger, keys, "climber", 1)
    # (1) At T1: the run needs a governor's approval / a grant.
    r1 = a_run(ledger, keys, "low", "r1", **shape)
    assert [(k, s, q) for k, s, q, _ in kinds(cli, "r1")] == [(kind, "critical", r1[offending])]
    # (2) At T2 (a justified promotion): the same run is compliant.
    promoted = apply_changes(ledger, keys.root).recorded
    assert [(e.type, e.agent) for e in promoted if e.agent == "climber"] == [
        ("tier.promoted", "climber")
    ]
    r2 = a_run(ledger, keys, "climber", "r2", **shape)
    shown = cli.json("runs", "show", "r2")
    assert (shown["findings"], shown["anomalies"], shown["compliant"]) == ([], [], True)
    text = cli("runs", "show", "r2").stdout
    assert {
        "approval": "approved by its tier: T2 at submission auto-approves its risk",
        "grants": "no grant: held to the agent's contract (T2 at its start",
    }[rule] in " ".join(text.split())
    # (3) A critical finding drops the effective tier to 0: a finding again.
    gseq = guardrail(ledger, keys, "climber", "critical")
    r3 = a_run(ledger, keys, "climber", "r3", **shape)
    ((k, s, q, _),) = kinds(cli, "r3")
    assert (k, s, q) == (kind, "critical", r3[offending])
    detail = cli.json("runs", "show", "r3")["findings"][0]["detail"]
    assert "T2" in detail and "held T0" in detail, detail
    # Time travel gives the answer of that moment.
    end2 = str(r2["run.completed"])
    assert cli.json("runs", "show", "r2", "--at-seq", end2)["compliant"] is True
    explained = cli.json("tiers", "explain", "climber", "--at-seq", str(gseq - 1))
    assert explained["on_its_own"] == {"tier": 2, "auto_approved_risks": ["low"],
                                       "without_grant": True}  # fmt: skip
    assert cli.json("tiers", "explain", "climber")["on_its_own"] == {
        "tier": 0,
        "auto_approved_risks": [],
        "without_grant": False,
    }
    with Ledger.open(ledger.path) as lg:
        ts = next(lg.iter_events(from_seq=gseq)).ts
    assert effective(cli, "climber", "--as-of", ts) == 0
    assert cli.json("runs", "show", "r2", "--as-of", ts)["compliant"] is True


def test_a_run_that_has_grants_is_held_to_them_at_any_tier(
    ledger: Ledger, keys: LedgerKeys, cli: Cli
) -> None:
    register(ledger, keys, "a1", 4)
    ar = {"agent": "a1", "run": "r1"}
    ledger.append(Draft("run.submitted", {"objective": "o", "user": "u", "risk": "low",
                                          "auto_approve": True}, **ar), signer=keys.recorder)  # fmt: skip
    ledger.append(Draft("capability.granted", {"tools": ["web.search"], "capabilities": [],
                                               "token_digest": DIGEST}, **ar), signer=keys.root)  # fmt: skip
    ledger.append(Draft("run.started", {}, **ar), signer=keys.recorder)
    call = ledger.append(Draft("tool.called", {"tool": "memory.read", "args_digest": DIGEST,
                                               "side_effect": "read"}, **ar), signer=keys.recorder)  # fmt: skip
    assert kinds(cli, "r1") == [(g.TOOL_OUTSIDE_GRANT, "critical", call.seq, call.seq - 2)]


def test_a_high_risk_run_is_never_auto_approved_by_default(
    ledger: Ledger, keys: LedgerKeys, cli: Cli
) -> None:
    register(ledger, keys, "a1", 4)
    ar = {"agent": "a1", "run": "r1"}
    sub = ledger.append(Draft("run.submitted", {"objective": "o", "user": "u", "risk": "high",
                                                "auto_approve": True}, **ar), signer=keys.recorder)  # fmt: skip
    start = ledger.append(Draft("run.started", {}, **ar), signer=keys.recorder)
    out = cli.json("runs", "show", "r1")
    (f,) = out["findings"]
    assert (f["kind"], f["seq"], f["evidence_seq"]) == (g.STARTED_WITHOUT_APPROVAL, start.seq,
                                                        sub.seq)  # fmt: skip
    assert "never auto-approves a run of its risk" in f["detail"]


def test_a_policy_can_auto_approve_medium_risk_from_t3(
    ledger: Ledger, keys: LedgerKeys, cli: Cli
) -> None:
    set_policy(ledger, keys, approval={"auto_from_tier": {"low": 1, "medium": 3}},
               grants={"contract_suffices_from_tier": 5})  # fmt: skip
    register(ledger, keys, "a1", 3)
    ar = {"agent": "a1", "run": "r1"}
    ledger.append(Draft("run.submitted", {"objective": "o", "user": "u", "risk": "medium",
                                          "auto_approve": True}, **ar), signer=keys.recorder)  # fmt: skip
    ledger.append(Draft("run.started", {}, **ar), signer=keys.recorder)
    call = ledger.append(Draft("tool.called", {"tool": "memory.read", "args_digest": DIGEST,
                                               "side_effect": "read"}, **ar), signer=keys.recorder)  # fmt: skip
    # Approved by its tier; but this policy holds every run to grants.
    assert [(k, q) for k, _, q, _ in kinds(cli, "r1")] == [(g.TOOL_OUTSIDE_GRANT, call.seq)]
    text = cli("tiers", "explain", "a1", "--at-seq", str(call.seq - 1)).stdout
    assert (
        "on its own at T3: low, medium-risk runs submitted with auto_approve need no governor's "
        "approval; every tool call needs a grant" in text
    )


def test_a_rejection_overrules_an_approval_by_tier(
    ledger: Ledger, keys: LedgerKeys, cli: Cli
) -> None:
    register(ledger, keys, "a1", 2)
    ar = {"agent": "a1", "run": "r1"}
    ledger.append(Draft("run.submitted", {"objective": "o", "user": "u", "risk": "low",
                                          "auto_approve": True}, **ar), signer=keys.recorder)  # fmt: skip
    rejected = ledger.append(Draft("run.rejected", {"approver": "gov", "mode": "human",
                                                    "plan_digest": DIGEST, "reason": "no"}, **ar),
                             signer=keys.root)  # fmt: skip
    start = ledger.append(Draft("run.started", {}, **ar), signer=keys.recorder)
    assert [(k, q, e) for k, _, q, e in kinds(cli, "r1")] == [
        (g.STARTED_WITHOUT_APPROVAL, start.seq, rejected.seq)
    ]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"approval": {"auto_from_tier": {"low": 6}}},
            "approval.auto_from_tier.low: Input should be less than or equal to 5",
        ),
        ({"approval": {"auto_from_tier": {"urgent": 2}}}, "approval.auto_from_tier.urgent"),
        (
            {"grants": {"contract_suffices_from_tier": -1}},
            "grants.contract_suffices_from_tier: Input should be greater than or equal to 0",
        ),
    ],
    ids=["tier-above-5", "unknown-risk", "negative-tier"],
)
def test_a_bad_approval_or_grants_section_is_refused(
    section: dict[str, Any], message: str, ready: Cli
) -> None:
    doc = copy.deepcopy(default_document())
    doc.update(section)
    path = ready.tmp / "p.toml"
    path.write_text(_toml(doc), encoding="utf-8")
    result = ready("policy", "set", str(path), "--signer", "root", ok=False)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def _toml(doc: dict[str, Any], prefix: str = "") -> str:
    """A TOML rendering of a policy document (integers, lists of strings, tables)."""
    lines, tables = [], []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}{key}", value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    out = "\n".join(lines) + "\n"
    for name, table in tables:
        out += f"\n[{name}]\n" + _toml(table, f"{name}.")
    return out
