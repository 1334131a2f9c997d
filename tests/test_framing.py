"""One set of framing rules (SPEC §2.1), applied alike by the writer and every verifier.

For every envelope field, a value the writer refuses (a trailing newline, non-ASCII digits,
uppercase hex, a wrong length, ...) is put into a real ledger and re-signed with the real key, so
that only the framing is wrong: ``verify`` must report ``malformed`` at that seq, on the SQLite
file and on an export of it (``verify --file``), and the writer (``append``, ``import``) must
refuse the same value with exit 2. ``runs show`` checks a run's events with the same steps.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger.cli import main
from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.crypto.signing import event_hash
from ledger.event.body import body_bytes
from ledger.event.canonical import canonical, loads
from ledger.event.envelope import Event
from ledger.event.framing import (
    ENVELOPE_FIELDS,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    ROW_COLUMNS,
    ROW_FIELDS,
)
from ledger.exchange.export import export_lines
from ledger.store.sqlite import EVENT_COLUMNS, Draft, Ledger, root_key_payload
from ledger.tlog import merkle
from ledger.verify.verifier import verify_export, verify_ledger
from tests.conftest import ORIGIN, populate, sign


@dataclass(repr=False)
class Template:
    """A closed ledger file, its key directory and the signers of its events."""

    path: Path
    keys: Path
    signers: dict[str, Signer]
    """key id → signer."""
    rows: list[dict[str, Any]]

    def __repr__(self) -> str:
        return f"Template({len(self.rows)} events)"


@dataclass
class _Keys:
    root: Signer
    recorder: Signer


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    base = tmp_path_factory.mktemp("framing")
    ring = KeyRing(base / "keys")
    root, recorder = ring.create("root"), ring.create("recorder")
    path = base / "l.db"
    with Ledger.create(path, origin=ORIGIN, root=root) as lg:
        lg.append(Draft("key.registered", root_key_payload(recorder, "recorder")), signer=root)
        populate(lg, _Keys(root, recorder), runs=1)
        lg.append(Draft("x.note", {"text": "free form"}, actor="ops"), signer=root)
        rows = [dict(zip(ROW_FIELDS, r, strict=True)) for r in lg.iter_rows()]
        assert verify_ledger(lg).ok
    return Template(path, base / "keys", {s.key_id: s for s in (root, recorder)}, rows)


# --- what the writer refuses, per field ----------------------------------------------------

_OTHER_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: not c.isascii())


@st.composite
def digit_swapped(draw: st.DrawFn, value: str) -> str:
    """``value`` with one of its ASCII digits replaced by a non-ASCII decimal digit."""
    places = [i for i, c in enumerate(value) if c in "0123456789"]
    i = draw(st.sampled_from(places))
    return value[:i] + draw(_OTHER_DIGITS) + value[i + 1 :]


def _common(value: str) -> list[st.SearchStrategy[str]]:
    return [
        st.just(value + "\n"),
        st.just(value + "\r\n"),
        st.just("\n" + value),
        st.just(value + " "),
    ]


def _hex(value: str) -> st.SearchStrategy[str]:
    return st.one_of(
        *_common(value),
        digit_swapped(value),
        st.just(value.upper()),
        st.just(value[:-1]),
        st.just(value + "0"),
        st.just(value[:-1] + "g"),
    )


def _ts(value: str) -> st.SearchStrategy[str]:
    return st.one_of(
        *_common(value),
        digit_swapped(value),
        st.just(value[:-1] + "+00:00"),
        st.just(value[:-1].lower() + "z"),
        st.just(value.replace("T", " ")),
        st.just(value[:-2] + "Z"),  # five fractional digits
        st.just(value[:5] + "13" + value[7:]),  # month 13
        st.just(value[:5] + "02-30" + value[10:]),  # no such day
        st.just(value[:11] + "24" + value[13:]),  # hour 24
    )


def _sig(value: str) -> st.SearchStrategy[str]:
    raw = base64.b64decode(value)
    last = value[-3]  # the character before "==" carries 4 bits of padding, all zero
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    nonzero_pad = value[:-3] + alphabet[alphabet.index(last) ^ 1] + "=="
    return st.one_of(
        *_common(value),
        st.just(value.rstrip("=")),
        st.just(nonzero_pad),
        st.just(value.replace("+", "-").replace("/", "_")),
        st.just(base64.b64encode(raw[:63]).decode()),
        st.just(base64.b64encode(raw + b"\0").decode()),
    )


def _type(value: str) -> st.SearchStrategy[str]:
    return st.one_of(
        *_common(value),
        st.just(value.upper()),
        st.just("x." + value.replace(".", "..")),
        st.just("x."),
        st.just("x.Note"),
        st.just("x.nöte"),
        st.just("x.n" + "\u0663"),  # an Arabic-Indic digit
        st.just("x.~ote"),
    )


def _text(name: str, value: str | None) -> st.SearchStrategy[str]:
    limit = MAX_ID_LENGTH if name == "id" else MAX_NAME_LENGTH
    return st.one_of(
        st.just(""),
        st.text(min_size=1, max_size=3).map(lambda s: (s * (limit + 1))[: limit + 1]),
    )


def refused(name: str, value: Any) -> st.SearchStrategy[Any]:
    """Values of envelope field ``name`` that the writer refuses, made from ``value``."""
    if name in ("prev", "key", "hash"):
        return _hex(value)
    if name == "ts":
        return _ts(value)
    if name == "sig":
        return _sig(value)
    if name == "type":
        return _type(value)
    if name in ("id", "agent", "run", "actor"):
        return _text(name, value)
    if name == "seq":  # an exported file only: the store's seq is an INTEGER PRIMARY KEY
        return st.sampled_from([str(value), f"{value}\n", True, None, 0, -value])
    assert name == "v"  # an exported file only: the store holds no v
    return st.sampled_from([True, "1", "1\n", 2, 0, None])


# --- a tampered, re-signed copy -------------------------------------------------------------


def forge(
    template: Template, target: Path, seq: int, name: str, value: Any, signer: Signer | None = None
) -> None:
    """Copy the template to ``target`` with field ``name`` of event ``seq`` set to ``value``,
    the event re-hashed and re-signed with its own key (or ``signer``), every later event
    re-chained and re-signed, and the stored Merkle tree rebuilt: only the framing is wrong."""
    shutil.copyfile(template.path, target)
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    leaves: list[bytes] = []
    prev = "0" * 64
    for row in template.rows:
        row = dict(row)
        if row["seq"] >= seq:
            row["prev"] = prev
        if row["seq"] == seq:
            row[name] = value
        digest = event_hash(body_bytes(**{k: row[k] for k in ROW_FIELDS[:10]}))
        if row["seq"] >= seq:
            row["hash"] = digest.hex()
            own = template.signers[template.rows[row["seq"] - 1]["key"]]
            row["sig"] = sign(signer if signer and row["seq"] == seq else own, digest)
            if row["seq"] == seq and name in ("hash", "sig"):
                row[name] = value
            conn.execute(
                f"UPDATE events SET ({ROW_COLUMNS}) = ({', '.join('?' * 12)}) WHERE seq = ?",
                (*(row[k] for k in ROW_FIELDS), row["seq"]),
            )
        leaves.append(digest)
        prev = digest.hex()
    conn.execute("DELETE FROM merkle_nodes")
    conn.executemany(
        "INSERT INTO merkle_nodes (closes, level, hash) VALUES (?, ?, ?)",
        merkle.stored_rows(merkle.nodes_for_append(0, leaves, lambda level, i: b"")),
    )
    conn.close()


def exported(path: Path, seq: int, name: str, value: Any) -> list[bytes]:
    """The export of ``path``; for ``v`` and ``seq`` (not stored), line ``seq`` holds ``value``."""
    with Ledger.open(path) as lg:
        lines = list(export_lines(lg))
    if name in ("v", "seq"):
        env = loads(lines[seq - 1][:-1])
        env[name] = value
        lines[seq - 1] = canonical(env) + b"\n"
    return lines


def first_problem(report: Any) -> tuple[int, str]:
    assert not report.ok
    p = report.problems[0]
    return p.seq, p.kind


def run_cli(template: Template, db: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(
        main, ["--db", str(db), "--keys", str(template.keys), *args], input=input
    )


STORED = [f for f in ENVELOPE_FIELDS if f not in ("v", "seq", "payload")]


@pytest.mark.parametrize("name", STORED)
@settings(max_examples=12)
@given(data=st.data())
def test_a_field_the_writer_refuses_is_malformed_in_the_store_and_in_an_export(
    template: Template, name: str, data: st.DataObject
) -> None:
    seq = data.draw(st.integers(1, len(template.rows)), label="seq")
    old = template.rows[seq - 1][name]
    value = data.draw(refused(name, old if old is not None else "a"), label=name)
    assume(value != old)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "forged.db"
        forge(template, path, seq, name, value)
        with Ledger.open(path) as lg:
            assert first_problem(verify_ledger(lg)) == (seq, "malformed")
        lines = exported(path, seq, name, value)
    assert first_problem(verify_export(lines, parallel=False)) == (seq, "malformed")


@pytest.mark.parametrize("name", ["v", "seq"])
@settings(max_examples=12)
@given(data=st.data())
def test_an_unstored_field_the_writer_refuses_is_malformed_in_an_export(
    template: Template, name: str, data: st.DataObject
) -> None:
    seq = data.draw(st.integers(1, len(template.rows)), label="seq")
    value = data.draw(refused(name, seq if name == "seq" else 1), label=name)
    lines = exported(template.path, seq, name, value)
    report = verify_export(lines, parallel=False)
    assert first_problem(report) == (seq, "malformed")
    assert all(p.seq > seq or p.kind == "malformed" for p in report.problems)


WRITER_CHOSEN = ["type", "id", "agent", "run", "actor"]
BASE_LINE = {"type": "x.note", "payload": {"text": "t"}, "agent": "planner-1", "run": "r-9",
             "actor": "ops", "id": "fresh-1"}  # fmt: skip


def _append_args(line: dict[str, Any]) -> list[str]:
    args = ["append", line["type"], "--signer", "root", "--payload", json.dumps(line["payload"])]
    for name in ("agent", "run", "actor", "id"):
        args += [f"--{name}", line[name]]
    return args


def test_the_base_event_of_the_writer_tests_is_accepted(template: Template, tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    shutil.copyfile(template.path, db)
    result = run_cli(template, db, *_append_args(BASE_LINE))
    assert result.exit_code == 0, result.stderr
    result = run_cli(template, db, "import", "-", "--signer", "root",
                     input=json.dumps({**BASE_LINE, "id": "fresh-2"}) + "\n")  # fmt: skip
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("name", WRITER_CHOSEN)
@settings(max_examples=12)
@given(data=st.data())
def test_the_writer_refuses_the_same_values_with_exit_2(
    template: Template, name: str, data: st.DataObject
) -> None:
    seq = data.draw(st.integers(1, len(template.rows)), label="seq")
    old = template.rows[seq - 1][name]
    value = data.draw(refused(name, old if old is not None else "a"), label=name)
    line = {**BASE_LINE, name: value}
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "l.db"
        shutil.copyfile(template.path, db)
        size = len(template.rows)
        imported = run_cli(template, db, "import", "-", "--signer", "root",
                           input=json.dumps(line) + "\n")  # fmt: skip
        assert imported.exit_code == 2, imported.stderr
        assert f"line 1: {name}" in imported.stderr
        if "\0" not in value:  # an argument cannot hold NUL
            appended = run_cli(template, db, *_append_args(line))
            assert appended.exit_code == 2, appended.stderr
            assert f"event: {name}" in appended.stderr
            assert "Traceback" not in appended.stderr
        with Ledger.open(db) as lg:
            assert lg.size == size


@pytest.mark.parametrize("name", ["v", "seq", "ts", "prev", "key", "hash", "sig"])
def test_the_writer_refuses_an_import_line_with_a_field_it_assigns(
    template: Template, tmp_path: Path, name: str
) -> None:
    db = tmp_path / "l.db"
    shutil.copyfile(template.path, db)
    line = {**BASE_LINE, name: template.rows[-1].get(name, 1)}
    result = run_cli(template, db, "import", "-", "--signer", "root", input=json.dumps(line))
    assert result.exit_code == 2
    assert f"line 1: field {name!r} is assigned by the ledger" in result.stderr


# --- the cases that were reported ------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        pytest.param("2026-11-21T10:00:00.123456Z\n", id="trailing-newline"),
        pytest.param("\u0662\u0660\u0662\u0666-11-21T10:00:00.123456Z", id="arabic-indic-year"),
        pytest.param("\uff12\uff10\uff12\uff16-11-21T10:00:00.123456Z", id="fullwidth-year"),
    ],
)
def test_a_signed_ts_the_writer_would_not_write_is_malformed(
    template: Template, tmp_path: Path, ts: str
) -> None:
    seq = len(template.rows)
    path = tmp_path / "forged.db"
    forge(template, path, seq, "ts", ts)
    with Ledger.open(path) as lg:
        report = verify_ledger(lg)
    assert [p.as_dict() for p in report.problems] == [
        {
            "seq": seq,
            "kind": "malformed",
            "detail": f"ts {ts!r} is not RFC 3339 UTC with six fractional digits and Z",
        }
    ]
    assert verify_export(exported(path, seq, "ts", ts)).problems == report.problems


def test_append_refuses_a_type_with_a_trailing_newline(template: Template, tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    shutil.copyfile(template.path, db)
    result = run_cli(template, db, "append", "x.note\n", "--signer", "root", "--payload", "{}")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: event: type: 'x.note\\n' is not a valid user type (x.<name>, lowercase "
        "letters, digits, '_', '-', dots between parts)\n"
    )
    with Ledger.open(db) as lg:
        assert lg.size == len(template.rows)


def test_an_exported_v_of_true_is_malformed(template: Template) -> None:
    lines = exported(template.path, 3, "v", True)
    report = verify_export(lines)
    assert [p.as_dict() for p in report.problems] == [
        {"seq": 3, "kind": "malformed", "detail": "line 3: v is true, expected 1"}
    ]


# --- runs show verifies through verify's steps ----------------------------------------------


def _run_seqs(template: Template) -> list[int]:
    return [r["seq"] for r in template.rows if r["run"] == "run-0"]


def _show(template: Template, db: Path) -> dict[str, Any]:
    result = run_cli(template, db, "runs", "show", "run-0", "--json")
    assert result.exit_code == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_runs_show_reports_a_run_event_with_a_forged_ts_as_malformed(
    template: Template, tmp_path: Path
) -> None:
    seq = _run_seqs(template)[2]
    path = tmp_path / "forged.db"
    forge(template, path, seq, "ts", template.rows[seq - 1]["ts"] + "\n")
    show = _show(template, path)
    assert show["verified"] is False
    assert [(p["seq"], p["kind"]) for p in show["problems"]] == [(seq, "malformed")]


def test_runs_show_reads_keys_from_the_log_not_the_key_index(
    template: Template, tmp_path: Path
) -> None:
    # A key added to the key index only (never registered by an event) signs a run event: the
    # index says it is a recorder key, the log does not know it.
    seq = _run_seqs(template)[1]
    intruder = KeyRing(tmp_path / "other").create("intruder")
    path = tmp_path / "forged.db"
    forge(template, path, seq, "key", intruder.key_id, signer=intruder)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO keys (key_id, name, public_key, role, agent, registered_seq) "
        "VALUES (?, 'intruder', ?, 'recorder', NULL, 1)",
        (intruder.key_id, root_key_payload(intruder, "recorder")["public_key"]),
    )
    conn.commit()
    conn.close()
    show = _show(template, path)
    assert [(p["seq"], p["kind"]) for p in show["problems"]] == [(seq, "unknown_key")]
    assert show["problems"][0]["detail"] == (
        f"seq {seq}: unknown_key: key {intruder.key_id} is not registered at this point of the log"
    )


def test_runs_show_says_what_it_checked(template: Template, tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    shutil.copyfile(template.path, db)
    result = run_cli(template, db, "runs", "show", "run-0")
    assert result.exit_code == 0, result.stderr
    n = len(_run_seqs(template))
    assert (
        f"events verify: yes ({n} events: framing, payload, hash, chain link, ts order, key, "
        "signature)" in result.stdout
    )


# --- one definition ---------------------------------------------------------------------------


def test_the_envelope_fields_are_defined_once() -> None:
    assert {f.name for f in fields(Event)} == set(ENVELOPE_FIELDS)
    assert EVENT_COLUMNS == ROW_COLUMNS == ", ".join(ENVELOPE_FIELDS[1:])
