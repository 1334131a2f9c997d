"""Inputs found by the hostile-input campaign (``scripts/fuzz.py``), kept as small cases.

Each test builds its case from a real ledger and real keys and states the oracle the campaign
checks: a refusal is a ``LedgerError`` (never another exception), and a changed input is never
``ok``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ledger.errors import LedgerError, NotALedger, StoreError
from ledger.exchange.export import export_lines
from ledger.store.sqlite import Draft, Ledger
from ledger.verify.verifier import verify_export, verify_ledger
from tests.conftest import LedgerKeys


def _grow(ledger: Ledger, keys: LedgerKeys, n: int) -> None:
    ledger.append_many([Draft("x.note", {"i": i}) for i in range(n)], signer=keys.recorder)


def _tamper(path: Path, *sql: tuple[str, tuple[object, ...]]) -> None:
    """Run statements on the file as an attacker with write access would: triggers dropped."""
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER IF EXISTS events_no_update")
    con.execute("DROP TRIGGER IF EXISTS events_no_delete")
    con.execute("DROP TRIGGER IF EXISTS events_extend_head")
    for statement, params in sql:
        con.execute(statement, params)
    con.commit()
    con.close()


@pytest.mark.parametrize("value", ["not a hash", 7], ids=["text", "integer"])
def test_verify_reports_a_stored_merkle_node_that_is_not_bytes(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path, value: object
) -> None:
    _grow(ledger, keys, 20)
    _tamper(
        tmp_path / "l.db",
        ("UPDATE merkle_nodes SET hash = ? WHERE closes = 16 AND level = 4", (value,)),
    )
    report = verify_ledger(ledger)
    assert not report.ok
    assert [(p.seq, p.kind) for p in report.problems[:1]] == [(16, "hash_mismatch")]


def test_verify_reports_a_ledger_created_payload_that_is_not_utf8(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path
) -> None:
    _grow(ledger, keys, 3)
    _tamper(
        tmp_path / "l.db",
        ("UPDATE events SET payload = CAST(? AS TEXT) WHERE seq = 1", (b'{"origin":"\xff"}',)),
    )
    with Ledger.open(tmp_path / "l.db") as fresh:
        report = verify_ledger(fresh, use_state=True)
    assert not report.ok
    assert report.problems[0].seq == 1
    assert report.problems[0].kind == "malformed"


def _corrupt_page(path: Path, table: str) -> None:
    """Overwrite the page header of ``table``'s root page (a corrupt file)."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (page_size,) = con.execute("PRAGMA page_size").fetchone()
    con.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\x00" * 12)


@pytest.mark.parametrize("table", ["events", "merkle_nodes"])
def test_verify_of_a_corrupt_database_file_is_a_store_error(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path, table: str
) -> None:
    _grow(ledger, keys, 300)
    ledger.close()
    _corrupt_page(tmp_path / "l.db", table)
    with pytest.raises(LedgerError) as raised, Ledger.open(tmp_path / "l.db") as fresh:
        verify_ledger(fresh)
    assert isinstance(raised.value, StoreError)
    assert "malformed" in raised.value.message


def test_opening_a_file_whose_schema_is_not_utf8_is_not_a_ledger(
    ledger: Ledger, tmp_path: Path
) -> None:
    ledger.close()
    con = sqlite3.connect(tmp_path / "l.db")
    con.execute("PRAGMA writable_schema = ON")
    con.execute(
        "UPDATE sqlite_master SET name = CAST(? AS TEXT), sql = CAST(? AS TEXT) "
        "WHERE name = 'events_ts'",
        (b"events_\xb5", b"CREATE INDEX events_\xb5 ON events (ts) garbage"),
    )
    con.commit()
    con.close()
    with pytest.raises(NotALedger, match="not a govledger database"):
        Ledger.open(tmp_path / "l.db")


def test_fuzz_script_runs_a_short_campaign_and_finds_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from scripts import fuzz

    assert fuzz.main(["--seconds", "0.5", "--seed", "3", "--target", "proof"]) == 0
    out = capsys.readouterr().out
    assert "proof: " in out
    assert ", 0 crashes, 0 false oks, 0 bad refusals" in out


def test_reading_a_root_from_a_corrupt_merkle_tree_is_a_store_error(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path
) -> None:
    _grow(ledger, keys, 300)
    ledger.close()
    _corrupt_page(tmp_path / "l.db", "merkle_nodes")
    with Ledger.open(tmp_path / "l.db") as fresh, pytest.raises(StoreError, match="malformed"):
        fresh.root_at(300)


@pytest.mark.parametrize(
    ("line", "before", "after", "detail"),
    [
        (-1, b'"v":1}', b'"v":true}', "v is true, expected 1"),
        (0, b'"v":1}', b'"v":true}', "v is true, expected 1"),
        (0, b'"seq":1,', b'"seq":true,', "seq is true, expected an integer"),
    ],
    ids=["v-true-last-line", "v-true-first-line", "seq-true"],
)
def test_verify_file_refuses_true_spelled_for_an_integer(
    ledger: Ledger, keys: LedgerKeys, line: int, before: bytes, after: bytes, detail: str
) -> None:
    _grow(ledger, keys, 3)
    lines = list(export_lines(ledger))
    assert before in lines[line]
    lines[line] = lines[line].replace(before, after)
    report = verify_export(lines, checkpoint=None, parallel=False)
    assert not report.ok
    first = report.problems[0]
    n = len(lines) if line == -1 else 1
    assert (type(first.seq), first.seq, first.kind) == (int, n, "malformed")
    assert first.detail == f"line {n}: {detail}"


@pytest.mark.parametrize("spelled", [b'{"a":1}', b"[1]"], ids=["object", "array"])
def test_verify_file_reports_a_type_that_is_not_a_string(
    ledger: Ledger, keys: LedgerKeys, spelled: bytes
) -> None:
    _grow(ledger, keys, 3)
    lines = list(export_lines(ledger))
    lines[-1] = lines[-1].replace(b'"type":"x.note"', b'"type":' + spelled)
    report = verify_export(lines, parallel=False)
    assert not report.ok
    first = report.problems[0]
    assert (first.seq, first.kind) == (len(lines), "malformed")
    assert "type: must be a string" in first.detail
