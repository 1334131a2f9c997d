"""The audit report in a real browser: headless Chromium driven by Playwright.

It loads with no console error and no network request, shows one findings row per finding and
one tier chart per agent, and sorts a table when a header is clicked. A full-page screenshot is
written for a person to look at (its path is printed). Skipped only where no Chromium is
installed (``apt-get install -y chromium``) or Playwright's Python package is missing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.cli import main

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is not installed"
)
if not Path(CHROMIUM).exists():
    pytest.skip(f"no browser: {CHROMIUM} is missing (apt-get install -y chromium)",
                allow_module_level=True)  # fmt: skip


def _invoke(db: Path, keys: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--db", str(db), "--keys", str(keys), *args],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("report-browser")
    db, keys, out = tmp / "demo.db", tmp / "keys", tmp / "audit.html"
    _invoke(db, keys, "demo", "--events", "2000")
    _invoke(db, keys, "report", "-o", str(out))
    return {
        "file": out,
        "findings": len(_invoke(db, keys, "findings", "--json").splitlines()),
        "agents": len(_invoke(db, keys, "tiers", "show", "--json").splitlines()),
    }


@dataclass
class Opened:
    """The page, every request it made, and every console or page error."""

    page: Opened
    requests: list[str]
    errors: list[str]

    def locator(self, selector: str, **kw: Any) -> Any:
        return self.page.locator(selector, **kw)

    def screenshot(self, **kw: Any) -> Any:
        return self.page.screenshot(**kw)


@pytest.fixture(scope="module")
def page(built: dict[str, Any]) -> Iterator[Opened]:
    """The report opened in Chromium; every request is routed and recorded (and refused
    unless it is the report file itself)."""
    url = built["file"].as_uri()
    requests: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1200, "height": 900})
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))

        def route(r: Any) -> None:
            requests.append(r.request.url)
            if r.request.url == url:
                r.continue_()
            else:
                r.abort()

        pg.route("**/*", route)
        pg.goto(url, wait_until="load")
        yield Opened(pg, requests, errors)
        browser.close()


def test_report_loads_with_no_console_error_and_no_request_beyond_itself(
    page: Opened, built: dict[str, Any]
) -> None:
    assert page.errors == []
    assert page.requests == [built["file"].as_uri()]


def test_browser_shows_one_row_per_finding_and_one_tier_chart_per_agent(
    page: Opened, built: dict[str, Any]
) -> None:
    assert page.locator("table.findings tbody tr").count() == built["findings"]
    assert page.locator("svg.tier-chart").count() == built["agents"]


def test_clicking_a_header_sorts_the_table(page: Opened) -> None:
    cells = "table.findings tbody tr td:nth-child(1)"
    by_seq = [int(t) for t in page.locator(cells).all_inner_texts()]
    assert by_seq == sorted(by_seq)
    header = page.locator("table.findings th", has_text="seq").first
    header.click()
    assert [int(t) for t in page.locator(cells).all_inner_texts()] == sorted(by_seq)
    header.click()
    assert [int(t) for t in page.locator(cells).all_inner_texts()] == sorted(by_seq, reverse=True)
    page.locator("table.findings th", has_text="kind").first.click()
    kinds = page.locator("table.findings tbody tr td:nth-child(3)").all_inner_texts()
    assert kinds == sorted(kinds, key=str.lower) or kinds == sorted(kinds)


def test_full_page_screenshot_is_written(page: Opened) -> None:
    shots = Path(tempfile.mkdtemp(prefix="govledger-report-shot-"))
    path = shots / "audit-report.png"
    page.locator("table.findings th", has_text="seq").first.click()  # back to seq order
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    print(f"report screenshot: {path}")
