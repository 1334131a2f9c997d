"""`govledger runs`, `metrics`, `replay`: audit runs and agents from the read models.

Every command first catches the stored read models up with the log
(cheap when nothing is new); `--at-seq N` / `--as-of TS` instead build the state as it stood
then in a scratch database, leaving the stored read models untouched.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import click

from ledger.app.governance import read_models
from ledger.cli.context import (
    PAGE,
    Context,
    ProgressBar,
    at_options,
    echo_json,
    echo_more,
    json_option,
    pass_ctx,
    plural,
    print_table,
    resolve_at,
    stdout_console,
)
from ledger.errors import InputError, ProjectionError
from ledger.event.envelope import normalize_time

if TYPE_CHECKING:
    from ledger.store.base import Store as Ledger
    from projections.runs.queries import AgentMetrics, RunView

# Each command imports the library parts it uses when it runs, so `runs show` does not pay
# for replay's or metrics' modules.

STATES = ("submitted", "approved", "rejected", "running", "completed", "failed", "cancelled")


def _time(value: str | None, option: str) -> str | None:
    return None if value is None else normalize_time(value, option)


@click.group()
def runs() -> None:
    """Audit runs: state, timeline, findings (read models rebuilt by replay)."""


@runs.command("list")
@click.option("--agent", help="Only this agent's runs.")
@click.option("--status", type=click.Choice(STATES), help="Only runs in this state.")
@click.option("--since", metavar="TS", help="Runs that began at or after this time (RFC 3339).")
@click.option("--until", metavar="TS", help="Runs that began at or before this time (RFC 3339).")
@click.option(
    "--non-compliant",
    is_flag=True,
    help="Only runs that ended non-compliant or already hold a warning or critical finding.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help=f"At most N runs, the first to begin [table default: {PAGE}; --json: all].",
)
@at_options
@json_option
@pass_ctx
def runs_list(
    ctx: Context,
    agent: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    non_compliant: bool,
    limit: int | None,
    at_seq: int | None,
    as_of: str | None,
    as_json: bool,
) -> None:
    """List runs in the order they began, oldest first (`--json`: one run per line).

    The table shows one page (the first N runs, default 50) and says how many more match;
    `--json` streams every matching run (or the first `--limit N`) at constant memory.
    """
    from projections.runs.queries import count_runs, iter_runs

    ledger = ctx.ledger()
    filters: dict[str, Any] = {
        "agent": agent,
        "status": status,
        "since": _time(since, "--since"),
        "until": _time(until, "--until"),
        "non_compliant": non_compliant,
    }
    with read_models(ledger, resolve_at(ledger, at_seq, as_of)) as db:
        if as_json:
            shown = False
            for v in iter_runs(db, **filters, limit=limit):
                echo_json(v.as_json())
                shown = True
            if not shown:
                _no_run(filters)
            return
        page = limit or PAGE
        views = list(iter_runs(db, **filters, limit=page))
        total = count_runs(db, **filters) if len(views) == page else len(views)
    if not views:
        _no_run(filters)
        return
    print_table(
        None,
        ["run", "agent", "state", "compliant", "findings", "began"],
        [
            [
                v.run,
                v.row["agent"],
                v.row["state"] or "-",
                "yes" if v.row["compliant"] else "no",
                _findings_cell(v),
                v.row["first_ts"][:19] + "Z",
            ]
            for v in views
        ],
    )
    echo_more("run(s)", len(views), total, "by start, oldest first")


def _no_run(filters: dict[str, Any]) -> None:
    """A filter that matches nothing prints nothing (exit 0) and says so on stderr."""
    filtered = any(v not in (None, False) for v in filters.values())
    click.echo("no run matches" if filtered else "no runs in the ledger", err=True)


NOT_COMPLIANT_BECAUSE = {
    "failed": "failed",
    "cancelled": "cancelled",
    "rejected": "rejected",
    None: "not submitted",
}
"""Why a run with no finding is not compliant, by state: only a completed run can be."""


def _findings_cell(v: RunView) -> str:
    """The kinds of the run's findings (``×N`` when repeated), or, for a run that is not
    compliant without any finding, why not: ``none (failed)`` (only a completed run is
    compliant)."""
    kinds = Counter(f.kind for f in v.findings)
    if kinds:
        return ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in kinds.items())
    if v.row["compliant"]:
        return "-"
    return f"none ({NOT_COMPLIANT_BECAUSE.get(v.row['state'], 'not finished')})"


@runs.command("show")
@click.argument("run")
@at_options
@click.option(
    "--check",
    "check",
    is_flag=True,
    help="Re-derive the run from the log (a fresh replay) and name every field where "
    "the stored read model differs; exit 1 when one does.",
)
@json_option
@pass_ctx
def runs_show(
    ctx: Context, run: str, at_seq: int | None, as_of: str | None, check: bool, as_json: bool
) -> None:
    """One run: state, totals, timeline (seq, time, type, summary), findings, and whether its
    events verify (each checked as `verify` checks it: framing, payload, hash, chain link, ts
    order, key as registered at that point of the log, signature).

    State, totals and findings come from the stored read model; the timeline and the
    verification from the log itself. `--check` re-derives the run from the log and compares.
    """
    from ledger.event.rows import row_to_event
    from ledger.exchange.export import summarize
    from ledger.store.base import EventFilter
    from ledger.verify.verifier import check_events
    from projections.reliability.queries import signals
    from projections.runs.queries import get_run

    ledger = ctx.ledger()
    at = resolve_at(ledger, at_seq, as_of)
    with read_models(ledger, at) as db:
        view = get_run(db, run)
        found = signals(db, run=run)  # the triggering events of reliability findings
    if view is None:
        raise InputError(
            f"no run {run!r} in the ledger" + (f" at seq {at}" if at_seq or as_of else "")
        )
    rows = list(ledger.iter_rows(to_seq=at, filter=EventFilter(run=run)))
    problems = check_events(ledger, rows)
    timeline = [row_to_event(r) for r in rows]
    differences = _rederive(ledger, run, at, view.as_json()) if check else []
    if as_json:
        out = view.as_json()
        out["timeline"] = [
            {"seq": e.seq, "ts": e.ts, "type": e.type, "agent": e.agent, "summary": summarize(e)}
            for e in timeline
        ]
        out["verified"] = not problems
        out["problems"] = problems
        out["signals"] = [s.as_json() for s in found]
        if check:
            out["check"] = {"ok": not differences, "differences": differences}
        echo_json(out)
        _fail_check(run, differences)
        return
    r = view.row
    console = stdout_console()
    console.print(
        f"[bold]run {run}[/bold]  agent {r['agent']}  "
        f"state {r['state'] or '- (no lifecycle event yet)'}  "
        f"{'compliant' if r['compliant'] else 'NOT compliant'}"
    )
    console.print(
        f"events {r['events']} (seq {r['first_seq']}–{r['last_seq']})  "
        f"duration {_duration(r['duration_ms'], r['state'])}  "
        f"tools {r['tool_calls']} ({r['tool_errors']} errors)  "
        f"tokens {r['tokens_in']}/{r['tokens_out']}  cost {r['cost_micro_usd']} µ$"
    )
    if r["tier_approved"]:
        console.print(
            f"approved by its tier: T{r['submitted_tier']} at submission "
            f"auto-approves its risk (policy [approval])"
        )
    if r["contract_suffices"] and not r["grants"]:
        console.print(
            f"no grant: held to the agent's contract (T{r['started_tier']} at its start, "
            f"policy [grants])"
        )
    print_table(
        "timeline",
        ["seq", "ts", "type", "summary"],
        [[e.seq, e.ts, e.type, summarize(e)] for e in timeline],
    )
    if view.findings:
        print_table(
            "findings",
            ["seq", "kind", "severity", "evidence", "detail"],
            [[f.seq, f.kind, f.severity, f.evidence_seq or "-", f.detail] for f in view.findings],
        )
    else:
        console.print("findings: none")
    for s in found:
        guard = f", runtime guardrail at seq {s.linked_seq}" if s.linked_seq is not None else ""
        console.print(
            f"{s.kind} at seq {s.seq}: triggered by seqs {', '.join(map(str, s.triggers))}{guard}"
        )
    for a in view.anomalies:
        console.print(
            f"anomaly: seq {a['seq']} {a['type']}: {a['from'] or '(no state)'} → {a['to']} "
            "is not a legal transition"
        )
    if problems:
        console.print(
            f"events verify: NO: {problems[0]['detail']}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    else:
        console.print(
            f"events verify: yes ({plural(len(rows), 'event')}: framing, payload, hash, "
            "chain link, ts order, key, signature)"
        )
    console.print(
        "rests on: state, totals and findings: the stored read model"
        + (" (checked below)" if check else " (`--check` re-derives them from the log)")
        + "; timeline and events verify: the log itself"
    )
    if check:
        if differences:
            console.print(
                f"check: the stored read model differs from the log in "
                f"{plural(len(differences), 'field')}:"
            )
            for d in differences:
                console.print(
                    f"  {d['field']}: stored {d['stored']!r}, the log gives {d['derived']!r}"
                )
        else:
            console.print("check: the stored read model matches a fresh replay of the log")
    _fail_check(run, differences)


def _rederive(
    ledger: Ledger, run: str, at: int | None, stored: dict[str, Any]
) -> list[dict[str, Any]]:
    """The fields where ``stored`` (a run as the stored read model has it) differs from the same
    run re-derived by a fresh replay of the log into a scratch database."""
    from projections.driver import build_at
    from projections.runs.queries import get_run

    with build_at(ledger, ledger.size if at is None else at) as fresh:
        derived_view = get_run(fresh, run)
    derived = derived_view.as_json() if derived_view is not None else {}
    return [
        {"field": k, "stored": stored.get(k), "derived": derived.get(k)}
        for k in sorted(set(stored) | set(derived))
        if stored.get(k) != derived.get(k)
    ]


def _fail_check(run: str, differences: list[dict[str, Any]]) -> None:
    if differences:
        raise ProjectionError(
            f"runs show --check: run {run}: the stored read model differs from the log in "
            + ", ".join(d["field"] for d in differences)
        )


@click.command()
@click.option("--agent", help="Only this agent.")
@at_options
@json_option
@pass_ctx
def metrics(
    ctx: Context, agent: str | None, at_seq: int | None, as_of: str | None, as_json: bool
) -> None:
    """Agent metrics: runs, compliance and streaks, violations, tokens, cost, failure classes
    (`--json`: one agent per line)."""
    from projections.runs.queries import agent_metrics
    from projections.tiers.queries import agents as tier_agents
    from projections.tiers.queries import tier_findings

    ledger = ctx.ledger()
    at = resolve_at(ledger, at_seq, as_of)
    with read_models(ledger, at) as db:
        ms = agent_metrics(db, agent)
        # The effective tier as the tiers read model judges it: an unjustified tier change
        # raises nothing (the runs read model keeps the recorded tier).
        judged = {t.agent: t.effective_tier for t in tier_agents(db, agent)}
        for m in ms:
            m.effective_tier = judged.get(m.agent, m.effective_tier)
        # Tier changes the policy did not justify, counted per agent beside the
        # run violations: the audit view of the tiers read model's findings.
        unjustified = Counter(f.agent for f in tier_findings(db, agent))
    if agent is not None and not ms:
        raise InputError(
            f"no agent {agent!r} in the ledger" + (f" at seq {at}" if at_seq or as_of else "")
        )
    if as_json:
        for m in ms:
            echo_json({**m.as_json(), "unjustified_tier_changes": unjustified[m.agent]})
        return
    print_table(
        None,
        [
            "agent",
            "tier",
            "runs",
            "ok/failed",
            "compliant",
            "streak",
            "violations",
            "unjustified tier changes",
            "cost µ$",
        ],
        [
            [
                m.agent,
                _tier(m),
                m.runs,
                f"{m.completed}/{m.failed}",
                m.compliant_runs,
                f"{m.current_streak} (best {m.best_streak})",
                _violations(m),
                unjustified[m.agent] or "-",
                m.cost_micro_usd,
            ]
            for m in ms
        ],
    )


def _tier(m: AgentMetrics) -> str:
    if not m.registered:
        return "unregistered"
    return f"T{m.tier}" + (f" (eff. T{m.effective_tier})" if m.effective_tier != m.tier else "")


def _violations(m: AgentMetrics) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(m.violations_by_severity.items())) or "-"


@click.command()
@at_options
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Compare a fresh replay with the stored read models; exit 1 when they differ.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="Keep the stored read models caught up as events are appended, until interrupted.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    default=None,
    metavar="SECONDS",
    help="With --follow: longest wait between looks at the log (default 1; PostgreSQL also "
    "wakes up on each append).",
)
@json_option
@pass_ctx
def replay(
    ctx: Context,
    at_seq: int | None,
    as_of: str | None,
    check_only: bool,
    follow: bool,
    poll: float | None,
    as_json: bool,
) -> None:
    """Rebuild the read models from the log.

    Without options, drops and rebuilds the stored read models. `--at-seq`/`--as-of` build
    them as they stood then, in a scratch database, and print a summary. `--check` audits the
    stored read models without changing them: a row edited behind govledger's back is reported.
    `--follow` catches them up (rebuilding only what is stale) and then again after each
    append, one line per catch-up, until Ctrl-C or SIGTERM (exit 0).
    """
    from projections.current import positions
    from projections.driver import build_at, catch_up
    from projections.runs.queries import summary as model_summary

    if poll is not None and not follow:
        raise InputError("--poll goes with --follow")
    if follow and (check_only or at_seq is not None or as_of is not None):
        raise InputError(
            "--follow keeps the stored read models current; it takes no "
            "--check, --at-seq or --as-of"
        )
    ledger = ctx.ledger()
    if follow:
        from ledger.cli.replay_follow import follow_replay

        follow_replay(ledger, poll=1.0 if poll is None else poll, as_json=as_json)
        return
    at = resolve_at(ledger, at_seq, as_of)
    if check_only:
        if at is not None:
            raise InputError(
                "--check compares the stored read models; it takes no --at-seq/--as-of"
            )
        _check(ledger, as_json)
        return
    started = time.perf_counter()
    if at is None:
        with ProgressBar("replay", ledger.size, enabled=not as_json) as bar:
            stored = ledger.read_models()
            progress = catch_up(ledger, stored, rebuild=True, progress=bar.advance)
        seconds = time.perf_counter() - started
        summary = model_summary(stored)
        out = {
            "rebuilt": True,
            "seconds": round(seconds, 3),
            "projections": [{"name": p.name, "last_seq": p.to_seq} for p in progress],
            **summary,
        }
    else:
        with build_at(ledger, at) as db:
            summary = model_summary(db)
            pos = positions(db)
        out = {
            "rebuilt": False,
            "at_seq": at,
            "projections": [{"name": n, "last_seq": p.last_seq} for n, p in pos.items()],
            **summary,
        }
    if as_json:
        echo_json(out)
        return
    where = (
        "stored read models rebuilt"
        if at is None
        else f"state at seq {at} (scratch, stored read models untouched)"
    )
    events = max((p["last_seq"] for p in out["projections"]), default=0)
    rate = f" in {out['seconds']} s" if at is None else ""
    click.echo(f"{where}: {plural(events, 'event')}{rate}")
    click.echo(
        f"runs {summary['runs_total']} ({_counts(summary['runs'])}), agents {summary['agents']}, "
        f"findings {summary['findings_total']} ({_counts(summary['findings'])})"
    )


def _duration(ms: int | None, state: str | None) -> str:
    if ms is not None:
        return f"{ms} ms"
    return "unknown (not started)" if state in ("submitted", "approved", "rejected") else "unknown"


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def _check(ledger: Ledger, as_json: bool) -> None:
    from projections import default_projections
    from projections.current import positions
    from projections.driver import catch_up
    from projections.replay_check import check
    from projections.tiers.queries import tier_findings

    db = ledger.read_models()
    differences = check(ledger, db)
    # Recomputation as verification: a recorded tier change that the policy in force
    # does not justify fails the check too. Read from the now-caught-up, checked tables.
    unjustified = [] if differences else (catch_up(ledger, db), tier_findings(db))[1]
    pos = positions(db)
    size, _ = ledger.head()
    projs = [
        {
            "name": p.name,
            "stored": p.name in pos,
            "last_seq": pos[p.name].last_seq if p.name in pos else None,
        }
        for p in default_projections()
    ]
    if as_json:
        echo_json(
            {
                "ok": not differences and not unjustified,
                "events": size,
                "projections": projs,
                "differences": [d.as_json() for d in differences],
                "unjustified_tier_changes": [
                    {
                        "seq": f.seq,
                        "agent": f.agent,
                        "kind": f.kind,
                        "severity": f.severity,
                        "evidence_seq": f.evidence_seq,
                        "detail": f.detail,
                    }
                    for f in unjustified
                ],
            }
        )
    elif differences:
        click.echo(
            f"read models differ from the log: {differences[0]}"
            + (f" (and {len(differences) - 1} more)" if len(differences) > 1 else "")
        )
        for d in differences[1:]:
            click.echo(f"  {d}")
    elif unjustified:
        f = unjustified[0]
        more = f" (and {len(unjustified) - 1} more)" if len(unjustified) > 1 else ""
        click.echo(f"seq {f.seq}: unjustified_tier_change: agent {f.agent}: {f.detail}{more}")
    else:
        checked = [f"{p['name']} at seq {p['last_seq']}" for p in projs if p["stored"]]
        click.echo(
            "ok: read models match a fresh replay ("
            + (", ".join(checked) or "none stored yet")
            + ")"
        )
    # Exit 1 through the one error → exit code mapping, like `verify`.
    if differences:
        n = len(differences)
        raise ProjectionError(
            f"replay --check: {n} difference{'' if n == 1 else 's'} between the stored read "
            "models and a fresh replay of the log"
        )
    if unjustified:
        n = len(unjustified)
        raise ProjectionError(
            f"replay --check: {n} recorded tier change{'' if n == 1 else 's'} the policy in "
            "force does not justify"
        )


COMMANDS = [runs, metrics, replay]
