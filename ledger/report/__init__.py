"""The HTML audit report: one self-contained file that an auditor reads offline (docs/report.md).

``build_report`` gathers what the report shows from the log (the ``Ledger`` API) and the read
models (the projections' queries, after catching them up), and renders it as one HTML page with
inline CSS and SVG and no external reference. The same log and options give the same bytes.
"""

from __future__ import annotations

from ledger.report.builder import ReportData, ReportOptions, gather
from ledger.report.html import render
from ledger.store.sqlite import Ledger

__all__ = ["ReportData", "ReportOptions", "build_report", "gather", "render"]


def build_report(ledger: Ledger, options: ReportOptions) -> tuple[str, ReportData]:
    """The report's HTML and the data it shows (``data.verify.ok``: whether the log verified)."""
    data = gather(ledger, options)
    return render(data), data
