"""`govledger tiers`: tier state, due changes, recording them, history and explanations.

docs/tiers.md. Tiers are integers in `--json` and T0–T4 for people. "Now" is the
head of the log (or the `--at-seq` / `--as-of` point), never the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping

import click

from ledger.app.governance import apply_changes, read_models, require_agent
from ledger.cli.context import (
    Context,
    at_options,
    echo_json,
    json_option,
    pass_ctx,
    print_table,
    resolve_at,
)
from projections.policy.document import Policy, PolicyDocument, read_policy_file
from projections.tiers.queries import (
    agents,
    assess_all,
    clock,
    compute_due,
    history,
    hypothetical,
    policy_in_force,
    tier_json,
)
from projections.tiers.rules import Assessment, Due, TierAgent, autonomy


def _t(tier: int | None) -> str:
    return "" if tier is None else f"T{tier}"


def _evidence(ev: Mapping[str, object] | None) -> str:
    if not ev:
        return ""
    return ", ".join(f"{k}={v}" for k, v in ev.items())


def _due_rows(due: list[Due]) -> list[list[object]]:
    return [
        [
            d.agent,
            d.change,
            f"{_t(d.from_tier)} → {_t(d.to_tier)}",
            "needs --approve" if d.needs_approval else "",
            d.reason,
            _evidence(d.evidence),
        ]
        for d in due
    ]


@click.group()
def tiers() -> None:
    """Autonomy tiers T0–T4: state, due changes, recording them, history, explanations.

    \b
    govledger tiers show                   the tier each agent holds (and its effective tier)
    govledger tiers compute                changes due now under the policy in force
    govledger tiers compute --policy F     ... under another policy, recording nothing
    govledger tiers apply --signer NAME    record the due changes (governor key)
    govledger tiers history AGENT          each change with its evidence, signer, verdict
    govledger tiers explain AGENT          the next tier's criteria: required, actual, met
    """


@tiers.command("show")
@at_options
@json_option
@pass_ctx
def tiers_show(ctx: Context, at_seq: int | None, as_of: str | None, as_json: bool) -> None:
    """The tier each agent holds, since which seq, and its effective tier (0 after a critical
    finding, until a governor records the change).

    A recorded tier the policy did not justify is flagged (an `unjustified_tier_change`
    finding, see `govledger findings`); the effective tier ignores that change."""
    ledger = ctx.ledger()
    with read_models(ledger, resolve_at(ledger, at_seq, as_of)) as db:
        rows = agents(db)
    if as_json:
        for a in rows:
            echo_json(tier_json(a))
        return
    print_table(
        "tiers",
        ["agent", "tier", "effective", "since seq", "since", "flag"],
        [
            [a.agent, _t(a.tier), _t(a.effective_tier), a.since_seq, a.since_ts, _flag(a)]
            for a in rows
        ],
    )


def _flag(a: TierAgent) -> str:
    if a.unjustified_seq is None:
        return ""
    return f"UNJUSTIFIED (seq {a.unjustified_seq}; justified {_t(a.standing().tier)})"


@tiers.command("compute")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="Judge under this policy file instead of the one in force (records nothing).",
)
@at_options
@json_option
@pass_ctx
def tiers_compute(
    ctx: Context, policy_file: str | None, at_seq: int | None, as_of: str | None, as_json: bool
) -> None:
    """The tier changes due now under the policy in force, each with its evidence.

    Promotion moves one tier at a time and respects the cooldown; demotion may skip tiers; a
    critical finding makes a revocation to T0 due. Nothing is recorded: `tiers apply` does.
    """
    document = read_policy_file(policy_file) if policy_file is not None else None
    ledger = ctx.ledger()
    with read_models(ledger, resolve_at(ledger, at_seq, as_of)) as db:
        policy = hypothetical(db, document) if document is not None else None
        due = compute_due(db, policy)
        seq, _ = clock(db)
    if as_json:
        for d in due:
            echo_json(d.as_json())
        return
    if not due:
        click.echo(f"no tier change due at seq {seq}")
        return
    print_table(
        f"tier changes due at seq {seq}",
        ["agent", "change", "tiers", "approval", "reason", "evidence"],
        _due_rows(due),
    )


@tiers.command("apply")
@click.option("--signer", required=True, help="Governor key that signs the tier.* events.")
@click.option(
    "--approve",
    "approve",
    multiple=True,
    metavar="AGENT",
    help="Record this agent's promotion into a human-decision tier (repeatable).",
)
@json_option
@pass_ctx
def tiers_apply(ctx: Context, signer: str, approve: tuple[str, ...], as_json: bool) -> None:
    """Record the changes due now as signed tier.* events carrying their evidence.

    Promotions into tiers that need a human decision (the policy's
    `human_approval_from_tier`) are listed, and recorded only with `--approve AGENT`.
    Re-running with nothing new due records nothing.
    """
    ledger = ctx.ledger()
    key = ctx.signer(signer)
    done = apply_changes(ledger, key, set(approve), strict=True)
    if as_json:
        echo_json(
            {
                "recorded": [e.envelope() for e in done.recorded],
                "awaiting_approval": [d.as_json() for d in done.awaiting],
            }
        )
        return
    for e in done.recorded:
        p = e.payload
        click.echo(
            f"seq {e.seq}: {e.type} {e.agent} {_t(p['from'])} → {_t(p['to'])} ({p['reason']})"
        )
    if not done.recorded:
        click.echo("no tier change recorded")
    for d in done.awaiting:
        click.echo(
            f"awaiting a human decision: {d.agent} {_t(d.from_tier)} → {_t(d.to_tier)} "
            f"(record it with --approve {d.agent})"
        )


@tiers.command("history")
@click.argument("agent")
@json_option
@pass_ctx
def tiers_history(ctx: Context, agent: str, as_json: bool) -> None:
    """Each change of AGENT's tier with its evidence, signer and verdict: a recorded change the
    policy in force at its seq does not justify is an `unjustified_tier_change` finding
    (critical; `--json` gives it as `finding` beside the entry)."""
    ledger = ctx.ledger()
    names = {k["key_id"]: k["name"] for k in ledger.keys()}
    with read_models(ledger) as db:
        require_agent(db, agent)
        entries = history(db, agent)
    if as_json:
        for h in entries:
            echo_json({**h.as_json(), "signer": names.get(h.key)})
        return
    print_table(
        f"tier history of {agent}",
        ["seq", "ts", "change", "tiers", "signer", "policy", "evidence", "verdict"],
        [
            [
                h.seq,
                h.ts,
                h.change,
                f"{_t(h.from_tier)} → {_t(h.to_tier)}".strip(" →"),
                names.get(h.key, h.key),
                "" if h.policy_version is None else f"v{h.policy_version}",
                _evidence(h.evidence),
                "justified" if h.justified else "UNJUSTIFIED: " + "; ".join(h.problems),
            ]
            for h in entries
        ],
    )
    bad = [h for h in entries if not h.justified]
    if bad:
        click.echo(
            f"{len(bad)} unjustified_tier_change finding(s), severity critical "
            f"(govledger findings --agent {agent})",
            err=True,
        )


@tiers.command("explain")
@click.argument("agent")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="Explain under this policy file instead of the one in force.",
)
@at_options
@json_option
@pass_ctx
def tiers_explain(
    ctx: Context,
    agent: str,
    policy_file: str | None,
    at_seq: int | None,
    as_of: str | None,
    as_json: bool,
) -> None:
    """For each criterion of AGENT's next tier: required, actual, met or not; and what AGENT
    may start on its own at its effective tier (policy [approval] and [grants])."""
    document = read_policy_file(policy_file) if policy_file is not None else None
    ledger = ctx.ledger()
    with read_models(ledger, resolve_at(ledger, at_seq, as_of)) as db:
        require_agent(db, agent)
        policy: Policy | None = hypothetical(db, document) if document is not None else None
        (a,) = assess_all(db, policy, agent)
        rules = (policy or policy_in_force(db)).rules
    on_its_own = autonomy(rules, a.agent.effective_tier)
    out = {
        **tier_json(a.agent),
        "seq": a.seq,
        "next_tier": a.next_tier,
        "criteria": [c.as_json() for c in a.criteria],
        "due": None if a.due is None else a.due.as_json(),
        "on_its_own": on_its_own.as_json(),
    }
    if as_json:
        echo_json(out)
        return
    click.echo(
        f"{agent}: {_t(a.agent.tier)} (effective {_t(a.agent.effective_tier)}) since seq "
        f"{a.agent.since_seq}, as of seq {a.seq}"
    )
    if a.agent.unjustified_seq is not None:
        click.echo(
            f"the change at seq {a.agent.unjustified_seq} is unjustified: the rules go by "
            f"{_t(a.agent.standing().tier)}"
        )
    click.echo(f"on its own {on_its_own}")
    if a.criteria:
        print_table(
            f"criteria for {_t(a.next_tier)}",
            ["criterion", "required", "actual", "met"],
            [
                [c.name, f"{c.comparison} {c.required}", c.actual, "yes" if c.met else "no"]
                for c in a.criteria
            ],
        )
    elif a.next_tier is None:
        click.echo("already at the highest tier")
    if a.due is not None:
        click.echo(
            f"due: {a.due.change} to {_t(a.due.to_tier)} ({a.due.reason})"
            + (" — needs --approve" if a.due.needs_approval else "")
        )
    else:
        click.echo(f"due: nothing ({_why_nothing(a, rules)})")


def _why_nothing(a: Assessment, rules: PolicyDocument) -> str:
    """Why no change is due for an assessed agent: the reason ``tiers explain`` gives."""
    if a.agent.registered_seq is None:
        return "the agent is not registered"
    if a.next_tier is None:
        return "already at the highest tier; no demotion or revocation is due"
    if not a.criteria:
        return (
            f"the policy has no [promotion.{_t(a.next_tier)}], so no agent is promoted into "
            f"{_t(a.next_tier)}; no demotion or revocation is due"
        )
    unmet = [c.name for c in a.criteria if not c.met]
    if unmet:
        return (
            f"not met for {_t(a.next_tier)}: {', '.join(unmet)}; no demotion or revocation is due"
        )
    return "no demotion or revocation is due"


COMMANDS = [tiers]
