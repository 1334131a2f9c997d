"""Inline SVG charts of the audit report: tier step charts, bar series, run swimlanes.

Plain string building. Every text from the log goes through ``esc`` (element text and
attribute values alike); coordinates are formatted with fixed precision so the same data gives
the same bytes. No ``xmlns`` attribute: inline SVG in HTML needs none, and the report holds no
URL of any kind.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.report.text import esc

CHANGE_STYLE = {
    "registered": ("#4a6fa5", "●", "registered"),
    "promoted": ("#2e7d32", "▲", "promotion"),
    "demoted": ("#e07b00", "▼", "demotion"),
    "revoked": ("#c62828", "✕", "revocation"),
}


def _f(x: float) -> str:
    return f"{x:.1f}"


def tier_chart(
    changes: Sequence[tuple[int, str, int, bool, str]],
    policies: Sequence[tuple[int, int]],
    size: int,
    label: str,
    critical_seq: int | None = None,
) -> str:
    """A step chart of one agent's tier (0–4) over seq 0..size.

    ``changes``: ``(seq, change, to_tier, justified, title)`` in seq order; ``policies``:
    ``(seq, version)`` of each ``policy.set``, drawn as thin vertical rules; ``critical_seq``:
    where a critical finding made the effective tier 0, drawn as a red dashed line at T0.
    """
    w, h, left, right, top, bottom = 640, 160, 34, 12, 18, 20
    pw, ph = w - left - right, h - top - bottom

    def x(seq: int) -> float:
        return left + (pw * seq / size if size else 0)

    def y(tier: int) -> float:
        return top + ph - ph * tier / 4

    out = [
        f'<svg class="chart tier-chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="{esc(label)}">'
    ]
    for t in range(5):
        out.append(
            f'<line x1="{left}" x2="{w - right}" y1="{_f(y(t))}" y2="{_f(y(t))}" '
            f'class="grid"/><text x="{left - 6}" y="{_f(y(t) + 4)}" '
            f'text-anchor="end" class="axis">T{t}</text>'
        )
    for seq, ver in policies:
        out.append(
            f'<line x1="{_f(x(seq))}" x2="{_f(x(seq))}" y1="{top}" y2="{top + ph}" '
            f'class="policy"><title>policy v{ver} set at seq {seq}</title></line>'
            f'<text x="{_f(x(seq) + 2)}" y="{top - 6}" class="axis">v{ver}</text>'
        )
    out.append(
        f'<text x="{left}" y="{h - 2}" class="axis">seq 0</text>'
        f'<text x="{w - right}" y="{h - 2}" text-anchor="end" class="axis">'
        f"seq {size}</text>"
    )
    points: list[str] = []
    prev: int | None = None
    for seq, _, to, justified, _ in changes:
        if not justified and prev is not None:
            continue  # the effective tier ignores an unjustified change (SPEC §3)
        if prev is not None:
            points.append(f"{_f(x(seq))},{_f(y(prev))}")
        points.append(f"{_f(x(seq))},{_f(y(to))}")
        prev = to
    if prev is not None:
        points.append(f"{_f(x(size))},{_f(y(prev))}")
        out.append(f'<polyline points="{" ".join(points)}" class="step"/>')
    if critical_seq is not None:
        out.append(
            f'<line x1="{_f(x(critical_seq))}" x2="{_f(x(size))}" y1="{_f(y(0))}" '
            f'y2="{_f(y(0))}" class="effective"><title>effective T0 from seq '
            f"{critical_seq}: a critical finding since the tier was set</title></line>"
        )
    for seq, change, to, justified, title in changes:
        colour, glyph, _ = CHANGE_STYLE.get(change, ("#555", "◆", change))
        cls = "mark" if justified else "mark unjustified"
        out.append(
            f'<text x="{_f(x(seq))}" y="{_f(y(to) + 5)}" text-anchor="middle" '
            f'fill="{colour}" class="{cls}"><title>{esc(title)}</title>{glyph}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def bars(values: Sequence[int], width: int, label: str, unit: str, bucket: int) -> str:
    """A small bar chart of ``values`` (one bar per seq bucket of ``bucket`` events)."""
    w, h, top, bottom = 300, 70, 14, 4
    n = max(1, len(values))
    peak = max(values, default=0) or 1
    bw = w / n
    out = [
        f'<svg class="chart bars" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="{esc(label)}"><text x="0" y="10" class="axis">'
        f"{esc(label)} (max {peak:,} {esc(unit)})</text>"
    ]
    for i, v in enumerate(values):
        bh = (h - top - bottom) * v / peak
        lo, hi = i * bucket + 1, (i + 1) * bucket
        out.append(
            f'<rect x="{_f(i * bw)}" y="{_f(h - bottom - bh)}" width="{_f(max(bw - 1, 1))}"'
            f' height="{_f(bh)}" class="bar"><title>seq {lo}–{hi}: {v:,} {esc(unit)}'
            f"</title></rect>"
        )
    out.append("</svg>")
    return "".join(out)


LANES = ("lifecycle", "approval", "tool", "llm", "decision", "guardrail", "other")


def lane_of(event_type: str) -> str:
    if event_type in ("run.approved", "run.rejected", "capability.granted"):
        return "approval"
    if event_type.startswith("run."):
        return "lifecycle"
    if event_type.startswith("tool."):
        return "tool"
    if event_type == "llm.usage":
        return "llm"
    if event_type == "decision.recorded":
        return "decision"
    if event_type == "guardrail.triggered":
        return "guardrail"
    return "other"


def swimlane(events: Sequence[tuple[int, str, str, bool, bool]], label: str) -> str:
    """One run's events as a swimlane: a lane per kind of event, one column per event in seq
    order. ``events``: ``(seq, type, title, signature_ok, has_finding)``."""
    lanes = [ln for ln in LANES if any(lane_of(t) == ln for _, t, _, _, _ in events)]
    left, step, lane_h, top = 78, 22, 22, 16
    w = left + step * max(len(events), 1) + 10
    h = top + lane_h * len(lanes) + 6
    out = [
        f'<svg class="chart swimlane" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="{esc(label)}">'
    ]
    row = {ln: i for i, ln in enumerate(lanes)}
    for ln, i in row.items():
        yy = top + lane_h * i
        out.append(
            f'<rect x="0" y="{yy}" width="{w}" height="{lane_h}" class="lane{i % 2}"/>'
            f'<text x="4" y="{yy + 15}" class="axis">{ln}</text>'
        )
    for j, (seq, type_, title, sig_ok, flagged) in enumerate(events):
        cx = left + step * j + step / 2
        cy = top + lane_h * row[lane_of(type_)] + lane_h / 2
        cls = "ev" + ("" if sig_ok else " badsig") + (" flagged" if flagged else "")
        out.append(
            f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="6" class="{cls}"><title>'
            f"{esc(title)}</title></circle>"
        )
        if j % 2 == 0 or len(events) <= 12:
            out.append(f'<text x="{_f(cx)}" y="11" text-anchor="middle" class="seq">{seq}</text>')
    out.append("</svg>")
    return "".join(out)
