"""The audit report as one HTML page: inline CSS, inline SVG, a few lines of inline JavaScript
to sort tables (docs/report.md).

Sections, top to bottom: header (origin, size, root, checkpoint, verify verdict, version, the
command that reproduces it), summary, findings, agents, runs, correction patterns, keys, policy
versions. Every value from the log goes through ``esc``; the page holds no wall-clock time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ledger.report import svg
from ledger.report.builder import (
    CAPS,
    AgentSection,
    ReportData,
    Timeline,
    payload_excerpt,
    run_anchor,
)
from ledger.report.text import esc, short, tier, usd
from ledger.tlog.cosignatures import timestamp_text

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;
margin:0 auto;max-width:1100px;padding:16px 24px;background:#fff}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;border-bottom:2px solid #d9dee8;
padding-bottom:4px;margin-top:28px}h3{font-size:15px;margin:14px 0 6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #d9dee8;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef1f6}table.sortable th{cursor:pointer;user-select:none}
table.sortable th::after{content:" \\2195";color:#8a93a6;font-size:11px}
td.num,th.num{text-align:right}dl.kv{display:grid;grid-template-columns:max-content 1fr;
gap:2px 14px;margin:6px 0}dl.kv dt{font-weight:600}dl.kv dd{margin:0;overflow-wrap:anywhere}
.ok{color:#1b6e20;font-weight:700}.bad{color:#b3261e;font-weight:700}
.warn{color:#9a5b00}.sev-critical{color:#b3261e;font-weight:600}.sev-warning{color:#9a5b00}
.sev-info{color:#4a5568}.note{color:#5b6475;font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:8px}.card{border:1px solid #d9dee8;border-radius:6px;
padding:6px 12px;min-width:120px}.card b{display:block;font-size:18px}
.agent{border:1px solid #d9dee8;border-radius:6px;padding:4px 12px 10px;margin:10px 0;
break-inside:avoid}.chart{display:block;margin:4px 0;max-width:100%;height:auto}
.chart .grid{stroke:#e3e7ee}.chart .axis{font-size:10px;fill:#5b6475}
.chart .policy{stroke:#8e6cc0;stroke-dasharray:3 3}.chart .step{fill:none;stroke:#4a6fa5;
stroke-width:2}.chart .mark{font-size:14px;font-weight:700}
.chart .unjustified{opacity:.45}.chart .effective{stroke:#b3261e;stroke-width:3;
stroke-dasharray:6 3}.chart .bar{fill:#6d8fc7}
.chart .lane0{fill:#f6f8fb}.chart .lane1{fill:#fff}.chart .seq{font-size:9px;fill:#5b6475}
.chart .ev{fill:#6d8fc7;stroke:#1b6e20;stroke-width:1.5}.chart .flagged{fill:#e07b00}
.chart .badsig{stroke:#b3261e;stroke-width:3}.series{display:flex;flex-wrap:wrap;gap:8px}
details{margin:4px 0}summary{cursor:pointer}.legend span{margin-right:14px}
@media print{body{max-width:none;padding:0}h2{break-after:avoid}.agent,table{break-inside:auto}
details>*{display:block}a{color:inherit;text-decoration:none}}
"""

JS = """
document.querySelectorAll("table.sortable th").forEach(function(th){
th.addEventListener("click",function(){var t=th.closest("table"),b=t.tBodies[0],
i=Array.prototype.indexOf.call(th.parentNode.children,th),d=th.dataset.dir==="a"?"d":"a";
t.querySelectorAll("th").forEach(function(h){delete h.dataset.dir});th.dataset.dir=d;
var k=function(r){var c=r.children[i];return c?(c.dataset.v!==undefined?c.dataset.v:c.textContent):""};
var rows=Array.prototype.slice.call(b.rows),num=rows.every(function(r){var v=k(r);return v===""||!isNaN(v)});
rows.sort(function(x,y){var p=k(x),q=k(y),c=num?(+p)-(+q):p.localeCompare(q);return d==="a"?c:-c});
rows.forEach(function(r){b.appendChild(r)})})});
"""


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, sortable: bool = False, cls: str = ""
) -> str:
    """A table; headers are trusted text, cells are HTML already escaped by the caller."""
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: object, *, num: bool = False, sort: object = None, title: object = None) -> str:
    attrs = ' class="num"' if num else ""
    if sort is not None:
        attrs += f' data-v="{esc(sort)}"'
    if title is not None:
        attrs += f' title="{esc(title)}"'
    return f"<td{attrs}>{esc(value)}</td>"


def _raw_td(html: str, **kw: object) -> str:
    attrs = "".join(f' data-{k}="{esc(v)}"' for k, v in kw.items())
    return f"<td{attrs}>{html}</td>"


def _more(shown: int, total: int, noun: str, how: str) -> str:
    if total <= shown:
        return ""
    return (
        f'<p class="note">{total - shown:,} more {esc(noun)} not shown (the first {shown:,} '
        f"{esc(how)}); use the command line for the rest.</p>"
    )


def render(d: ReportData) -> str:
    """The page."""
    title = f"govledger audit report: {d.header.origin}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No request may leave the page: nothing to load, nothing to connect to.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        _header(d),
        _summary(d),
        _findings(d),
        _agents(d),
        _runs(d),
        _patterns(d),
        _keys(d),
        _policies(d),
        f"<script>{JS}</script></body></html>\n",
    ]
    return "\n".join(parts)


def _header(d: ReportData) -> str:
    h, v, o = d.header, d.verify, d.options
    if v.ok:
        verdict = (
            f'<span class="ok">ok</span>: {v.events:,} events, every hash, link, '
            "signature and role checked"
        )
    else:
        first = v.problems[0] if v.problems else None
        verdict = f'<span class="bad">{v.problem_count:,} problem(s)</span>' + (
            f": first at seq {first.seq}: {esc(first.kind)}: {esc(first.detail)}" if first else ""
        )
    if o.trust:
        pin = f"pinned to {esc(', '.join(o.trust))}" + (
            ""
            if v.root_key_id in o.trust
            else f' <span class="bad">(the log\'s root key is {esc(v.root_key_id)})</span>'
        )
    else:
        pin = (
            f'<span class="warn">not pinned</span>: the root key {esc(v.root_key_id)} was not '
            "checked against a key id you trust, so this proves internal consistency only "
            "(pass --trust KEY_ID)"
        )
    cp = h.checkpoint
    checkpoint = (
        "none signed"
        if cp is None
        else f"size {cp['size']:,}, signed as {esc(cp['signer'])}, root "
        f"<code>{esc(cp['root'])}</code>"
    )
    given = _given_checkpoint(d) if o.checkpoint is not None else None
    scope = f"{h.size:,} events" + (
        f" (state at seq {h.size:,} of {h.log_size:,})" if h.size != h.log_size else ""
    )
    if o.agent is not None:
        scope += f"; agent {esc(o.agent)} only"
    rows = [
        ("origin", esc(h.origin)),
        ("size", scope),
        ("Merkle root", f"<code>{esc(h.root)}</code> (RFC 9162, at size {h.size:,})"),
        ("head", f"<code>{esc(h.head_hash)}</code>"),
        ("latest checkpoint", checkpoint),
        *([("checkpoint checked", given)] if given is not None else []),
        ("verify", f"{verdict} (the whole log: {h.log_size:,} events)"),
        ("root key", pin),
        ("govledger", esc(h.version)),
        ("reproduce with", f"<code>{esc(o.command)}</code>"),
    ]
    problems = ""
    if not v.ok:
        problems = (
            "<h3>Integrity problems</h3>"
            + _table(
                ["seq", "kind", "detail"],
                (
                    [_td(p.seq, num=True), _td(p.kind), _td(p.detail)]
                    for p in v.problems[: CAPS["problems"]]
                ),
            )
            + _more(min(len(v.problems), CAPS["problems"]), v.problem_count, "problems", "by seq")
        )
    dl = "".join(f"<dt>{k}</dt><dd>{val}</dd>" for k, val in rows)
    return f'<section id="header"><dl class="kv">{dl}</dl>{problems}</section>'


def _given_checkpoint(d: ReportData) -> str:
    """The checkpoint of ``--checkpoint``: its size and root as verify read them, and with
    ``--witness`` who cosigned it (the times are the cosignatures' own)."""
    v = d.verify
    cp = v.checkpoint
    if cp is None:
        return '<span class="bad">does not verify with this log\'s governor keys</span>'
    mismatch = any(p.kind == "checkpoint_mismatch" for p in v.problems)
    out = f"size {cp['size']:,}, root <code>{esc(cp['root'])}</code>: " + (
        '<span class="bad">not consistent with the log</span>' if mismatch else "consistent"
    )
    witnesses = cp.get("witnesses")
    if witnesses:
        signed = [w for w in witnesses if w["cosigned"]]
        # verify judged the quorum (and every line by a given witness): its verdict, not a recount
        met = not any(p.kind == "unwitnessed" for p in v.problems)
        who = ", ".join(
            f"{esc(w['name'])} ({esc(w['key_id'])}) at {esc(timestamp_text(w['timestamp']))}"
            for w in signed
        )
        missing = ", ".join(esc(w["name"]) for w in witnesses if not w["cosigned"])
        not_met = "" if met else ', <span class="bad">not met</span>'
        out += (
            f"; cosigned by {len(signed)} of {len(witnesses)} witnesses "
            f"(quorum {cp['quorum']}{not_met})"
            + (f": {who}" if who else "")
            + (f"; missing: {missing}" if missing else "")
        )
    return out


def _cards(items: Iterable[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{val}</b>{esc(label)}</div>' for label, val in items)
        + "</div>"
    )


def _summary(d: ReportData) -> str:
    t = d.totals
    by_kind = sorted(d.finding_counts.items())
    sev: dict[str, int] = {}
    for (_, s), n in by_kind:
        sev[s] = sev.get(s, 0) + n
    out = ['<section id="summary"><h2>Summary</h2>']
    out.append(
        _cards(
            [
                ("runs", f"{d.runs_total:,}"),
                ("non-compliant runs", f"{d.non_compliant:,}"),
                ("findings", f"{sum(sev.values()):,}"),
                ("agents", f"{d.agents_total:,}"),
                ("tokens in / out", f"{t['tokens_in']:,} / {t['tokens_out']:,}"),
                ("cost", usd(t["cost_micro_usd"])),
            ]
        )
    )
    out.append("<h3>Runs by state</h3>")
    out.append(
        _table(["state", "runs"], ([_td(s), _td(n, num=True)] for s, n in d.runs_by_state.items()))
    )
    out.append("<h3>Findings by kind and severity</h3>")
    out.append(
        _table(
            ["kind", "severity", "count"],
            (
                [_td(k), f'<td class="sev-{esc(s)}">{esc(s)}</td>', _td(n, num=True)]
                for (k, s), n in by_kind
            ),
            sortable=True,
        )
    )
    out.append("<h3>Agents by effective tier</h3>")
    out.append(
        _table(
            ["effective tier", "agents"],
            ([_td(tier(k)), _td(n, num=True)] for k, n in d.tiers_by_effective.items()),
        )
    )
    out.append("<h3>Tokens and cost</h3>")
    out.append(
        _table(
            [
                "LLM calls",
                "tokens in",
                "tokens out",
                "cache read",
                "cache write",
                "tool calls",
                "cost",
            ],
            [
                [
                    _td(f"{t[k]:,}", num=True)
                    for k in (
                        "llm_calls",
                        "tokens_in",
                        "tokens_out",
                        "cache_read_tokens",
                        "cache_write_tokens",
                        "tool_calls",
                    )
                ]
                + [_td(usd(t["cost_micro_usd"]), num=True)]
            ],
        )
    )
    out.append("</section>")
    return "".join(out)


def _run_link(d: ReportData, run: str | None, shown: set[str]) -> str:
    if run is None:
        return ""
    if run in shown:
        return f'<a href="#{run_anchor(run)}">{esc(run)}</a>'
    return esc(run)


def _findings(d: ReportData) -> str:
    total = sum(d.finding_counts.values())
    shown = d.shown_runs
    rows = [
        [
            _td(f.seq, num=True),
            _td(f.ts),
            _td(f.kind),
            f'<td class="sev-{esc(f.severity)}" data-v="{ {"critical": 0, "warning": 1}.get(f.severity, 2) }">'
            f"{esc(f.severity)}</td>",
            _td(f.evidence_seq, num=True),
            _td(f.agent),
            _raw_td(_run_link(d, f.run, shown), v=f.run or ""),
            _td(short(h), title=h),
            _td(source),
            _td(f.detail),
        ]
        for f, source, h in d.findings
    ]
    table = _table(
        [
            "seq",
            "ts",
            "kind",
            "severity",
            "evidence seq",
            "agent",
            "run",
            "hash",
            "source",
            "detail",
        ],
        rows,
        sortable=True,
        cls="findings",
    )
    empty = "<p>No findings.</p>" if not rows else ""
    return (
        f'<section id="findings"><h2>Findings ({total:,})</h2>'
        f'<p class="note">Click a column header to sort.</p>{empty}{table if rows else ""}'
        f"{_more(len(rows), total, 'findings', 'by seq')}</section>"
    )


def _agents(d: ReportData) -> str:
    rows = [
        [
            _td(m.agent),
            _td(tier(t), sort=t),
            _td(tier(e), sort=e),
            _td(m.runs, num=True),
            _td(m.compliant_runs, num=True),
            _td(m.current_streak, num=True),
            _td(m.best_streak, num=True),
            _td(sum(m.violations.values()), num=True),
            _td(f"{m.tokens_in + m.tokens_out:,}", num=True, sort=m.tokens_in + m.tokens_out),
            _td(usd(m.cost_micro_usd), num=True, sort=m.cost_micro_usd),
        ]
        for m, t, e in d.agent_rows
    ]
    out = [
        f'<section id="agents"><h2>Agents ({d.agents_total:,})</h2>',
        _table(
            [
                "agent",
                "tier",
                "effective",
                "runs",
                "compliant",
                "streak",
                "best streak",
                "findings",
                "tokens",
                "cost",
            ],
            rows,
            sortable=True,
            cls="agents",
        ),
        _more(len(rows), d.agents_total, "agents", "by id"),
        '<p class="legend note"><span>▲ promotion</span><span>▼ demotion</span>'
        "<span>✕ revocation</span><span>● registration</span><span>faded: not justified "
        "by the policy (the effective tier ignores it)</span><span>purple dashed: policy "
        "version</span><span>red dashed: effective T0 after a critical finding</span></p>",
    ]
    policies = [(int(p["seq"]), int(p["version"])) for p in d.policies if p["error"] is None]
    out.extend(_agent(d, a, policies) for a in d.agents)
    out.append(_more(len(d.agents), d.agents_total, "agent charts", "by id"))
    out.append("</section>")
    return "".join(out)


def _agent(d: ReportData, a: AgentSection, policies: list[tuple[int, int]]) -> str:
    m = a.metrics
    changes = [
        (
            c.seq,
            c.change,
            c.to_tier,
            c.justified,
            f"seq {c.seq} {c.ts}: {c.change} {tier(c.from_tier)}→{tier(c.to_tier)}"
            + (f" ({c.reason})" if c.reason else "")
            + (f", policy v{c.policy_version}" if c.policy_version is not None else "")
            + ("" if c.justified else f"; NOT JUSTIFIED: {'; '.join(c.problems)}"),
        )
        for c in a.changes
    ]
    chart = svg.tier_chart(
        changes, policies, d.header.size, f"tier of {m.agent} over seq", a.critical_seq
    )
    s = a.series
    versions = sorted({c.policy_version for c in a.changes if c.policy_version is not None})
    return (
        f'<div class="agent"><h3>{esc(m.agent)}: {tier(a.tier)}, effective {tier(a.effective_tier)}'
        f" since seq {a.since_seq}</h3>"
        f'<p class="note">compliance streak {m.current_streak} (best {m.best_streak}); '
        f"{m.compliant_runs} compliant of {m.runs} runs; tier changes judged under policy "
        f"version(s) {esc(', '.join(f'v{v}' for v in versions) or 'none')}</p>"
        f'{chart}<div class="series">'
        + svg.bars(s.runs, 300, "runs", "runs", s.width)
        + svg.bars(s.tokens, 300, "tokens", "tokens", s.width)
        + svg.bars(s.cost, 300, "cost", "µUSD", s.width)
        + "</div></div>"
    )


def _runs(d: ReportData) -> str:
    rows = []
    for v in d.runs:
        r = v.row
        kinds = ", ".join(sorted({f.kind for f in v.findings}))
        rows.append(
            f'<tr id="{run_anchor(v.run)}">'
            + _td(v.run)
            + _td(r["agent"])
            + _td(r["state"])
            + _td("yes" if r["compliant"] else "no")
            + _td(r["first_seq"], num=True)
            + _td(r["events"], num=True)
            + _td(len(v.findings), num=True)
            + _td(kinds)
            + _td(usd(int(r["cost_micro_usd"] or 0)), num=True, sort=r["cost_micro_usd"])
            + "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "run",
            "agent",
            "state",
            "compliant",
            "first seq",
            "events",
            "findings",
            "kinds",
            "cost",
        )
    )
    table = (
        f'<table class="sortable runs"><thead><tr>{head}</tr></thead><tbody>'
        f"{''.join(rows)}</tbody></table>"
    )
    out = [
        f'<section id="runs"><h2>Runs: {d.runs_total_flagged:,} non-compliant of {d.runs_total:,}</h2>',
        '<p class="note">The non-compliant runs and the runs the findings above name.</p>',
        table,
        _more(len(d.runs), max(d.runs_total_flagged, len(d.runs)), "runs", "by start"),
        "<h3>Timelines</h3>",
        '<p class="legend note"><span>orange: the event has a finding</span><span>red ring: '
        "its signature did not verify</span><span>hover an event for its seq, type, key and "
        "payload</span></p>",
    ]
    out.extend(_timeline(d, t) for t in d.timelines)
    out.append(_more(len(d.timelines), len(d.runs), "timelines", "runs by start"))
    out.append("</section>")
    return "".join(out)


def _timeline(d: ReportData, t: Timeline) -> str:
    flagged = {f.seq for f in t.run.findings}
    points = []
    rows = []
    for e in t.events:
        problems = d.bad_seqs.get(e.seq, [])
        sig_ok = not any(
            p
            in {
                "bad_signature",
                "unknown_key",
                "revoked_key",
                "unauthorized",
                "hash_mismatch",
                "malformed",
            }
            for p in problems
        )
        status = "ok" if sig_ok else ", ".join(problems)
        excerpt = payload_excerpt(e.payload)
        points.append(
            (
                e.seq,
                e.type,
                f"seq {e.seq} {e.ts} {e.type} key {e.key[:8]} signature {status}: {excerpt}",
                sig_ok,
                e.seq in flagged,
            )
        )
        rows.append(
            [
                _td(e.seq, num=True),
                _td(e.ts),
                _td(e.type),
                _td(short(e.hash), title=e.hash),
                f'<td class="{"ok" if sig_ok else "bad"}">{esc(status)}</td>',
                _td(", ".join(sorted({f.kind for f in t.run.findings if f.seq == e.seq}))),
                f'<td class="mono">{esc(excerpt)}</td>',
            ]
        )
    chart = svg.swimlane(points, f"timeline of run {t.run.run}")
    more = _more(len(t.events), t.total, "events", "by seq")
    return (
        f"<h3>{_run_link(d, t.run.run, d.shown_runs)} ({esc(t.run.row['agent'])}, "
        f"{esc(t.run.row['state'])})</h3>{chart}{more}<details><summary>events</summary>"
        + _table(["seq", "ts", "type", "hash", "signature", "finding", "payload"], rows)
        + "</details>"
    )


def _patterns(d: ReportData) -> str:
    rows = [
        [
            _td(p.agent),
            _td(p.name),
            _td(p.count, num=True),
            _td(p.first_seq, num=True),
            _td(p.last_seq, num=True),
            _td(" | ".join(p.examples)),
        ]
        for p in d.patterns
    ]
    body = (
        _table(
            ["agent", "pattern", "count", "first seq", "last seq", "examples"], rows, sortable=True
        )
        if rows
        else "<p>No correction pattern has emerged.</p>"
    )
    return (
        f'<section id="corrections"><h2>Correction patterns ({d.patterns_total:,})</h2>{body}'
        f"{_more(len(rows), d.patterns_total, 'patterns', 'by agent')}</section>"
    )


def _keys(d: ReportData) -> str:
    rows = [
        [
            _td(k["name"]),
            f'<td class="mono">{esc(k["key_id"])}</td>',
            _td(k["role"]),
            _td(k["agent"]),
            _td(k["registered_seq"], num=True),
            _td("" if k["revoked_seq"] is None else f"revoked at seq {k['revoked_seq']}"),
        ]
        for k in d.keys
    ]
    return (
        '<section id="keys"><h2>Key registry</h2>'
        + _table(["name", "key id", "role", "agent", "registered seq", "revoked"], rows)
        + "</section>"
    )


def _policies(d: ReportData) -> str:
    rows = [
        [
            _td(p["version"], num=True),
            _td(p["seq"], num=True),
            _td(p["ts"]),
            f'<td class="mono">{esc(p["digest"])}</td>',
            _td(p["error"] or "in force from its seq"),
        ]
        for p in d.policies
    ]
    body = (
        _table(["version", "seq", "ts", "digest (SHA-256 of RFC 8785 bytes)", "status"], rows)
        if rows
        else "<p>No policy.set: the shipped default policy (version 0) applies.</p>"
    )
    return f'<section id="policies"><h2>Policy versions</h2>{body}</section>'
