"""`govledger findings`: every finding of the log, from every read model, in seq order.

docs/projections.md. Run checks, reliability signals, guardrails and tier checks alike, each
`{kind, severity, seq, evidence_seq, agent, run, detail, source}`. `--json` streams JSON Lines
from a database cursor, so memory stays constant for any size of log.
"""

from __future__ import annotations

from typing import Any

import click

from ledger.app.governance import read_models
from ledger.cli.context import (
    PAGE,
    Context,
    at_options,
    echo_json,
    echo_more,
    json_option,
    pass_ctx,
    print_table,
    resolve_at,
)
from ledger.errors import InputError
from ledger.event.envelope import normalize_time
from projections.findings.queries import SEVERITIES, finding_counts, iter_findings, valid_kinds


def _time(value: str | None, option: str) -> str | None:
    return None if value is None else normalize_time(value, option)


@click.command("findings")
@click.option(
    "--kind",
    "kind",
    multiple=True,
    metavar="K",
    help="Only findings of this kind (repeatable: any of them).",
)
@click.option(
    "--severity", metavar="S", help="Only findings of this severity (info, warning, critical)."
)
@click.option("--agent", help="Only this agent's findings.")
@click.option("--run", help="Only this run's findings.")
@click.option("--since", metavar="TS", help="Findings at or after this time (RFC 3339).")
@click.option("--until", metavar="TS", help="Findings at or before this time (RFC 3339).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help=f"At most N findings, the first by seq [table default: {PAGE}; --json: all].",
)
@at_options
@json_option
@pass_ctx
def findings(
    ctx: Context,
    kind: tuple[str, ...],
    severity: str | None,
    agent: str | None,
    run: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    at_seq: int | None,
    as_of: str | None,
    as_json: bool,
) -> None:
    """Every finding of the log in seq order: run checks, reliability signals, guardrails and
    tier checks (`unjustified_tier_change`), with the read model each comes from.

    \b
    govledger findings                          all of them, and a count by kind and severity
    govledger findings --severity critical      only the critical ones
    govledger findings --kind tool_outside_grant --agent a1
    govledger findings --json                   one JSON object per line

    The table shows one page (the first N by seq, default 50), then the count by kind and
    severity of every finding that matched, and says how many more there are. `--json`
    streams every matching finding (or the first `--limit N`) at constant memory.
    """
    if severity is not None and severity not in SEVERITIES:
        raise InputError(
            f"--severity: unknown severity {severity!r}; valid: {', '.join(SEVERITIES)}"
        )
    since_ts, until_ts = _time(since, "--since"), _time(until, "--until")
    ledger = ctx.ledger()
    with read_models(ledger, resolve_at(ledger, at_seq, as_of)) as db:
        valid = valid_kinds(db)
        unknown = [k for k in kind if k not in valid]
        if unknown:
            raise InputError(f"--kind: unknown kind {unknown[0]!r}; valid: {', '.join(valid)}")
        filters: dict[str, Any] = {
            "kinds": kind,
            "severity": severity,
            "agent": agent,
            "run": run,
            "since": since_ts,
            "until": until_ts,
        }
        if as_json:
            shown = 0
            for sf in iter_findings(db, **filters, limit=limit):
                echo_json(sf.as_json())
                shown += 1
            if shown == 0:
                _none(kind, severity, agent, run, since, until)
            return
        rows = [
            [
                f.seq,
                f.ts[:19] + "Z",
                f.kind,
                f.severity,
                f.evidence_seq,
                f.agent,
                f.run,
                sf.source,
                f.detail,
            ]
            for sf in iter_findings(db, **filters, limit=limit or PAGE)
            for f in [sf.finding]
        ]
        counts = finding_counts(db, **filters)
    total = sum(counts.values())
    if total == 0:
        _none(kind, severity, agent, run, since, until)
        return
    print_table(
        None,
        ["seq", "ts", "kind", "severity", "evidence", "agent", "run", "source", "detail"],
        rows,
    )
    print_table(
        f"{total} finding(s) by kind and severity",
        ["kind", "severity", "count"],
        [[k, s, n] for (k, s), n in sorted(counts.items())],
    )
    echo_more("finding(s)", len(rows), total, "by seq")


def _none(*filters: object) -> None:
    click.echo("no finding matches" if _filtered(*filters) else "no findings in the log", err=True)


def _filtered(*values: object) -> bool:
    return any(v for v in values)


COMMANDS = [findings]
