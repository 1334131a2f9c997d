"""`govledger report`: content, escaping, determinism and bad input of the HTML audit report."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.cli import main
from ledger.event.drafts import Draft
from ledger.report import builder
from ledger.store.sqlite import Ledger
from tests.conftest import LedgerKeys, agent_registration, run_drafts

HOSTILE = "<script>alert(1)</script>"


def invoke(db: Path, keys: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, ["--db", str(db), "--keys", str(keys), *args],
                                catch_exceptions=code != 0)  # fmt: skip
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small demo ledger (2000 events, 6 agents), built once and only reported on."""
    tmp = tmp_path_factory.mktemp("report-demo")
    db, keys = tmp / "demo.db", tmp / "keys"
    invoke(db, keys, "demo", "--events", "2000")
    return db, keys


def report(db: Path, keys: Path, out: Path, *args: str, code: int = 0) -> str:
    invoke(db, keys, "report", "-o", str(out), *args, code=code)
    return out.read_text(encoding="utf-8")


def test_report_is_byte_identical_for_the_same_log_and_options(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    db, keys = demo
    first = report(db, keys, tmp_path / "a.html")
    again = report(db, keys, tmp_path / "a.html")
    assert first == again
    past = report(db, keys, tmp_path / "p.html", "--at-seq", "900")
    assert report(db, keys, tmp_path / "p.html", "--at-seq", "900") == past
    assert past != first


def test_report_references_nothing_outside_itself(demo: tuple[Path, Path], tmp_path: Path) -> None:
    page = report(*demo, tmp_path / "a.html")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\b(src|href)=\"(?!#)", page)
    assert page.count("<script>") == 1  # the sorting script, inline


def test_report_header_names_origin_size_root_verdict_and_command(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    db, keys = demo
    with Ledger.open(db) as lg:
        origin, size, root = lg.origin, lg.size, lg.root_at(lg.size).hex()
        root_key = next(k["key_id"] for k in lg.keys() if k["name"] == "root")
    page = report(db, keys, tmp_path / "a.html")
    assert origin in page and f"{size:,} events" in page and root in page
    assert '<span class="ok">ok</span>' in page
    assert "not pinned" in page
    assert f"govledger --db {db} report -o {tmp_path / 'a.html'}" in page
    pinned = report(db, keys, tmp_path / "b.html", "--trust", root_key)
    assert f"pinned to {root_key}" in pinned and "not pinned" not in pinned


def test_report_shows_every_finding_and_one_tier_chart_per_agent(
    demo: tuple[Path, Path], tmp_path: Path
) -> None:
    db, keys = demo
    findings = invoke(db, keys, "findings", "--json").stdout.splitlines()
    agents = invoke(db, keys, "tiers", "show", "--json").stdout
    page = report(db, keys, tmp_path / "a.html")
    body = page.split('<table class="sortable findings">', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr>") - 1 == len(findings)  # one header row
    assert page.count('class="chart tier-chart"') == agents.count('"agent"')
    assert f"<h2>Findings ({len(findings):,})</h2>" in page


def test_every_finding_row_links_to_its_run(demo: tuple[Path, Path], tmp_path: Path) -> None:
    page = report(*demo, tmp_path / "a.html")
    links = set(re.findall(r'<a href="#(run-[0-9a-f]{16})">', page))
    anchors = set(re.findall(r'<tr id="(run-[0-9a-f]{16})">', page))
    assert links and links <= anchors


def test_report_at_seq_shows_the_root_at_that_size(demo: tuple[Path, Path], tmp_path: Path) -> None:
    db, keys = demo
    with Ledger.open(db) as lg:
        root = lg.root_at(700).hex()
    page = report(db, keys, tmp_path / "a.html", "--at-seq", "700")
    assert root in page and "state at seq 700 of" in page


def test_report_caps_big_lists_and_says_what_it_left_out(
    demo: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(builder.CAPS, "findings", 3)
    page = report(*demo, tmp_path / "a.html")
    body = page.split('<table class="sortable findings">', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr>") == 4
    assert re.search(r"[0-9,]+ more findings not shown \(the first 3 by seq\)", page)


def _hostile_log(tmp_path: Path, ledger: Ledger, keys: LedgerKeys) -> None:
    """An agent and a run whose names hold markup; the run starts without approval (a
    finding, so it gets a timeline) and carries an ``x.`` event whose payload holds markup."""
    ledger.append(agent_registration(HOSTILE), signer=keys.root)
    drafts = run_drafts(HOSTILE, f"run-{HOSTILE}")
    note = Draft("x.note", {"html": HOSTILE, "link": "https://example.com/x"}, agent=HOSTILE,
                 run=f"run-{HOSTILE}")  # fmt: skip
    ledger.append_many([*drafts[:3], note, *drafts[3:]], signer=keys.recorder)


def test_values_from_the_log_render_as_text(
    tmp_path: Path, ledger: Ledger, keys: LedgerKeys
) -> None:
    _hostile_log(tmp_path, ledger, keys)
    page = report(tmp_path / "l.db", tmp_path / "keys", tmp_path / "a.html")
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1
    assert "https://" not in page and "https:&#47;&#47;example.com" in page
    # In SVG text (tooltips of the tier chart and the timeline) too.
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert any("&lt;script&gt;" in s for s in svgs)
    assert all("<script" not in s for s in svgs)


def test_report_exits_1_and_lists_the_problem_when_the_log_does_not_verify(
    tmp_path: Path, ledger: Ledger, keys: LedgerKeys
) -> None:
    _hostile_log(tmp_path, ledger, keys)
    ledger.close()
    conn = sqlite3.connect(tmp_path / "l.db")
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = 4")
    conn.commit()
    conn.close()
    result = invoke(tmp_path / "l.db", tmp_path / "keys", "report", "-o", str(tmp_path / "a.html"),
                    code=1)  # fmt: skip
    assert result.stderr.endswith("error: verify found 1 problem(s); the report lists them\n")
    page = (tmp_path / "a.html").read_text(encoding="utf-8")
    assert '<span class="bad">1 problem(s)</span>: first at seq 4: hash_mismatch' in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--trust", "nothex"), "error: --trust: 'nothex' is not a key id (32 lowercase hex)\n"),
        (("--at-seq", "3", "--as-of", "2026-01-01T00:00:00Z"),
         "error: --at-seq and --as-of cannot be used together\n"),
    ],
    ids=["bad-trust", "at-seq-and-as-of"],
)  # fmt: skip
def test_report_refuses_bad_options_and_writes_nothing(
    tmp_path: Path, ledger: Ledger, args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "a.html"
    result = invoke(tmp_path / "l.db", tmp_path / "keys", "report", "-o", str(out), *args, code=2)
    assert result.stderr == message
    assert not out.exists()


def test_report_to_a_missing_directory_is_a_usage_error(tmp_path: Path, ledger: Ledger) -> None:
    out = tmp_path / "nowhere" / "a.html"
    result = invoke(tmp_path / "l.db", tmp_path / "keys", "report", "-o", str(out), code=2)
    assert result.stderr.startswith(f"error: -o: cannot write {out}: ")
    assert not out.exists()


def test_report_on_a_missing_ledger_is_an_environment_error(tmp_path: Path) -> None:
    result = invoke(tmp_path / "none.db", tmp_path / "keys", "report", "-o",
                    str(tmp_path / "a.html"), code=3)  # fmt: skip
    assert result.stderr.startswith("error: ")
    assert not (tmp_path / "a.html").exists()


def test_report_to_stdout(tmp_path: Path, ledger: Ledger) -> None:
    result = invoke(tmp_path / "l.db", tmp_path / "keys", "report", "-o", "-")
    assert result.stdout.startswith("<!DOCTYPE html>") and result.stdout.endswith("</html>\n")


def test_tier_chart_marks_the_effective_tier_after_a_critical_finding(
    tmp_path: Path, ledger: Ledger, keys: LedgerKeys
) -> None:
    _hostile_log(tmp_path, ledger, keys)  # a run started without approval: critical
    page = report(tmp_path / "l.db", tmp_path / "keys", tmp_path / "a.html")
    assert ": T1, effective T0 since seq 3</h3>" in page
    chart = re.findall(r'<svg class="chart tier-chart".*?</svg>', page, re.S)[0]
    assert re.search(r'class="effective"><title>effective T0 from seq \d+: ', chart)


def test_report_shows_a_checkpoint_and_who_cosigned_it(tmp_path: Path, ledger: Ledger) -> None:
    """`--checkpoint` and `--witness` are checked as `verify` checks them; the header says
    who cosigned, the quorum, and who is missing; the same options give the same bytes."""
    db, keys, cp = tmp_path / "l.db", tmp_path / "keys", tmp_path / "cp.txt"
    invoke(db, keys, "checkpoint", "--signer", "root", "-o", str(cp))
    w1, w2 = (
        invoke(db, keys, "witness", "new", w, "--name", f"witness.example/{w}").stdout.strip()
        for w in ("w1", "w2")
    )
    log_vkey = invoke(db, keys, "keys", "vkey", "root").stdout.strip()
    line = invoke(db, keys, "witness", "cosign", str(cp), "--key", "w1", "--log", log_vkey,
                  "--state", str(tmp_path / "w1-state")).stdout  # fmt: skip
    cp.write_text(cp.read_text(encoding="utf-8") + line, encoding="utf-8")
    out = tmp_path / "a.html"
    page = report(db, keys, out, "--checkpoint", str(cp), "--witness", w1)
    assert re.search(
        r"<dt>checkpoint checked</dt><dd>size 2, root <code>[0-9a-f]{64}</code>: consistent; "
        r"cosigned by 1 of 1 witnesses \(quorum 1\): witness\.example/w1 \([0-9a-f]{8}\) at "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</dd>",
        page,
    )
    assert f"--checkpoint {cp} --witness {w1} --quorum 1</code>" in page
    assert report(db, keys, out, "--checkpoint", str(cp), "--witness", w1) == page
    # Both witnesses required: w2 never cosigned, so the quorum is not met and verify fails.
    page = report(db, keys, out, "--checkpoint", str(cp), "--witness", w1, "--witness", w2,
                  code=1)  # fmt: skip
    assert '(quorum 2, <span class="bad">not met</span>)' in page
    assert "; missing: witness.example/w2</dd>" in page
    assert "first at seq 2: unwitnessed: witness cosignatures: 1 of 2 witnesses cosigned" in page
    # A checkpoint of another log does not verify with this log's keys.
    other = tmp_path / "other.txt"
    other.write_text(cp.read_text(encoding="utf-8").replace("\n2\n", "\n3\n", 1), encoding="utf-8")
    page = report(db, keys, out, "--checkpoint", str(other), code=1)
    assert '<dt>checkpoint checked</dt><dd><span class="bad">does not verify' in page
    result = invoke(db, keys, "report", "-o", str(tmp_path / "b.html"), "--witness", w1, code=2)
    assert result.stderr == (
        "error: --witness needs --checkpoint: the checkpoint whose cosignatures to check\n"
    )
    assert not (tmp_path / "b.html").exists()
