"""Tamper detection (SPEC §1.3, §5 ``verify``): a copy of a real ledger is edited with raw SQL
after dropping the append-only triggers, and ``verify`` must name the right kind at the right
seq. The same for exported files (``verify --file``)."""

from __future__ import annotations

import base64
import binascii
import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.crypto.signing import b64encode, event_hash, key_id
from ledger.errors import LedgerError
from ledger.event.body import body_bytes, envelope_line
from ledger.event.canonical import canonical, loads
from ledger.event.envelope import authorize, check_type, decode_payload
from ledger.event.framing import is_hex32, is_hex64, is_ts
from ledger.exchange.export import export_lines
from ledger.store.sqlite import Draft, Ledger, root_key_payload
from ledger.tlog import merkle
from ledger.verify.chain import Problem, short
from ledger.verify.verifier import verify_export, verify_ledger
from tests.conftest import ORIGIN, Cli, populate, sign

COLUMNS = (
    "seq",
    "id",
    "ts",
    "type",
    "agent",
    "run",
    "actor",
    "payload",
    "prev",
    "key",
    "hash",
    "sig",
)


@dataclass(repr=False)
class Template:
    """A closed ledger file to copy, and every private key that signed it."""

    path: Path
    signers: dict[str, Signer]
    """key id → signer."""
    names: dict[str, Signer]
    """key name → signer."""
    size: int
    rows: list[tuple[Any, ...]]

    def __repr__(self) -> str:
        return f"Template({self.size} events)"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    base = tmp_path_factory.mktemp("template")
    ring = KeyRing(base / "keys")
    root, recorder, gov2, agent = (ring.create(n) for n in ("root", "recorder", "gov2", "agent-a"))
    path = base / "l.db"
    with Ledger.create(path, origin=ORIGIN, root=root) as lg:
        lg.append(Draft("key.registered", root_key_payload(recorder, "recorder")), signer=root)
        lg.append(Draft("key.registered", root_key_payload(gov2, "governor")), signer=root)
        lg.append(
            Draft("key.registered", root_key_payload(agent, "agent", "planner-1")), signer=root
        )
        populate(lg, _Keys(root, recorder), runs=2)
        lg.append(
            Draft(
                "tool.called",
                {"tool": "x", "args_digest": "0" * 64, "side_effect": "write"},
                agent="planner-1",
                run="run-1",
            ),
            signer=agent,
        )
        lg.append(Draft("x.note", {"text": "free form"}, actor="ops"), signer=gov2)
        lg.append(
            Draft("feedback.quality", {"score_bp": 9000, "by": "u1"}, agent="planner-1"),
            signer=recorder,
        )
        rows = list(lg.iter_rows())
        size = lg.size
        assert verify_ledger(lg).ok
    signers = {s.key_id: s for s in (root, recorder, gov2, agent)}
    return Template(path, signers, {s.name: s for s in signers.values()}, size, rows)


@dataclass
class _Keys:
    root: Signer
    recorder: Signer


@pytest.fixture
def copy(template: Template, tmp_path: Path) -> Iterator[Callable[[], Path]]:
    def make() -> Path:
        target = tmp_path / f"copy{len(list(tmp_path.glob('copy*.db')))}.db"
        shutil.copyfile(template.path, target)
        return target

    yield make


def raw(path: Path) -> sqlite3.Connection:
    """A raw connection to a copy, with the append-only triggers dropped."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    conn.execute("DROP TRIGGER events_extend_head")
    return conn


def verify_db(path: Path, **kw: Any) -> Any:
    with Ledger.open(path) as lg:
        return verify_ledger(lg, **kw)


def export_of(path: Path) -> list[bytes]:
    with Ledger.open(path) as lg:
        return list(export_lines(lg))


def first(report: Any) -> tuple[int, str]:
    assert not report.ok
    p = report.problems[0]
    return p.seq, p.kind


def kinds_at(report: Any, seq: int) -> list[str]:
    return [p.kind for p in report.problems if p.seq == seq]


def rechain(
    conn: sqlite3.Connection,
    signers: dict[str, Signer],
    edits: dict[int, dict[str, Any]],
    *,
    from_seq: int,
) -> None:
    """Apply ``edits`` (seq → new column values) and re-hash, re-sign and re-chain every event
    from ``from_seq`` on with the key each names, then rebuild the stored Merkle tree: a forger
    with every private key leaves no hash, chain or tree problem behind."""
    conn.execute("BEGIN")
    rows = conn.execute("SELECT * FROM events WHERE seq >= ? ORDER BY seq", (from_seq,)).fetchall()
    prev = conn.execute("SELECT hash FROM events WHERE seq = ?", (from_seq - 1,)).fetchone()
    prev_hash = prev[0] if prev else "0" * 64
    for r in rows:
        row = dict(zip(COLUMNS, r, strict=True))
        row.update(edits.get(row["seq"], {}))
        row["prev"] = prev_hash
        digest = event_hash(body_bytes(**{k: row[k] for k in COLUMNS[:10]}))
        row["hash"], row["sig"] = digest.hex(), sign(signers[row["key"]], digest)
        conn.execute(
            "UPDATE events SET id=?, ts=?, type=?, agent=?, run=?, actor=?, payload=?, prev=?, "
            "key=?, hash=?, sig=? WHERE seq=?",
            (*(row[c] for c in COLUMNS[1:]), row["seq"]),
        )
        prev_hash = row["hash"]
    rebuild_tree(conn)
    conn.execute("COMMIT")


def rebuild_tree(conn: sqlite3.Connection) -> None:
    leaves = [bytes.fromhex(h) for (h,) in conn.execute("SELECT hash FROM events ORDER BY seq")]
    conn.execute("DELETE FROM merkle_nodes")
    conn.executemany(
        "INSERT INTO merkle_nodes (closes, level, hash) VALUES (?, ?, ?)",
        merkle.stored_rows(merkle.nodes_for_append(0, leaves, lambda level, i: b"")),
    )


def raw_append(
    conn: sqlite3.Connection,
    signer: Signer,
    *,
    type: str,
    payload: dict[str, Any],
    agent: str | None = None,
    run: str | None = None,
    id: str = "raw",
) -> int:
    """Insert a properly chained and signed event at the end, bypassing the ledger's checks."""
    seq, prev, ts = conn.execute("SELECT seq, hash, ts FROM events ORDER BY seq DESC").fetchone()
    row = {
        "seq": seq + 1,
        "id": id,
        "ts": ts,
        "type": type,
        "agent": agent,
        "run": run,
        "actor": None,
        "payload": canonical(payload).decode(),
        "prev": prev,
        "key": signer.key_id,
    }
    digest = event_hash(body_bytes(**row))
    conn.execute(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*row.values(), digest.hex(), sign(signer, digest)),
    )
    rebuild_tree(conn)
    return seq + 1


# --- any character of any stored column, changed ----------------------------------------------


def _payload_acceptable(event_type: str, text: str) -> bool:
    """Would a payload text pass framing: strict JSON, canonical, valid for its type?"""
    try:
        value = loads(text)
        if not isinstance(value, dict) or canonical(value).decode() != text:
            return False
        decode_payload(event_type, value)
    except LedgerError:
        return False
    return True


def _type_acceptable(event_type: str, payload_text: str) -> bool:
    try:
        check_type(event_type)
    except LedgerError:
        return False
    return _payload_acceptable(event_type, payload_text)


def _sig_canonical(sig: str) -> bool:
    try:
        data = base64.b64decode(sig.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    return len(data) == 64 and base64.b64encode(data).decode() == sig


def expected_kind(row: dict[str, Any], column: str, value: str) -> str:
    """The first kind verify must report at the event's seq when ``column`` becomes ``value``.

    Framing problems are ``malformed``; otherwise the recomputed body no longer matches the
    stored hash (``hash_mismatch``), except for ``prev`` (checked first: ``chain_broken``) and
    ``sig`` (not part of the body: ``bad_signature``).
    """
    if column == "ts":
        return "hash_mismatch" if is_ts(value) else "malformed"
    if column == "type":
        return "hash_mismatch" if _type_acceptable(value, row["payload"]) else "malformed"
    if column == "payload":
        return "hash_mismatch" if _payload_acceptable(row["type"], value) else "malformed"
    if column == "prev":
        return "chain_broken" if is_hex64(value) else "malformed"
    if column == "hash":
        return "hash_mismatch" if is_hex64(value) else "malformed"
    if column == "key":
        return "hash_mismatch" if is_hex32(value) else "malformed"
    if column == "sig":
        return "bad_signature" if _sig_canonical(value) else "malformed"
    assert column in ("id", "agent", "run", "actor")
    return "hash_mismatch"


@st.composite
def char_flips(draw: st.DrawFn, template: Template) -> tuple[int, str, str]:
    """(seq, column, new value): one character of one stored text value, one bit changed."""
    seq = draw(st.integers(1, template.size))
    row = dict(zip(COLUMNS, template.rows[seq - 1], strict=True))
    column = draw(st.sampled_from([c for c in COLUMNS[1:] if row[c] is not None]))
    old = row[column]
    i = draw(st.integers(0, len(old) - 1))
    bit = draw(st.integers(0, 6))
    new = old[:i] + chr(ord(old[i]) ^ (1 << bit)) + old[i + 1 :]
    return seq, column, new


@given(data=st.data())
def test_any_changed_character_is_detected_at_its_seq(
    template: Template, data: st.DataObject
) -> None:
    seq, column, value = data.draw(char_flips(template))
    row = dict(zip(COLUMNS, template.rows[seq - 1], strict=True))
    want = expected_kind(row, column, value)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.db"
        shutil.copyfile(template.path, path)
        conn = raw(path)
        if (
            column == "id"
            and conn.execute("SELECT 1 FROM events WHERE id = ?", (value,)).fetchone()
        ):
            conn.close()
            return  # would break UNIQUE(id): not a possible edit
        conn.execute(f"UPDATE events SET {column} = ? WHERE seq = ?", (value, seq))
        conn.close()
        report = verify_db(path)
        assert first(report) == (seq, want), report.problems[:3]
        assert all(p.seq >= seq for p in report.problems)
        # The export of the tampered file fails the same way, at the same event.
        assert first(verify_export(export_of(path))) == (seq, want)


def test_changed_payload_value_is_hash_mismatch_with_the_hashes(
    template: Template, copy: Callable[[], Path]
) -> None:
    path = copy()
    row = dict(zip(COLUMNS, template.rows[6], strict=True))
    payload = json.loads(row["payload"])
    assert (row["seq"], row["type"]) == (7, "run.planned")
    payload["risk"] = "high"
    text = canonical(payload).decode()
    conn = raw(path)
    conn.execute("UPDATE events SET payload = ? WHERE seq = 7", (text,))
    conn.close()
    computed = event_hash(body_bytes(**{**{k: row[k] for k in COLUMNS[:10]}, "payload": text}))
    report = verify_db(path)
    assert [p for p in report.problems] == [
        Problem(
            7,
            "hash_mismatch",
            f"stored hash {short(row['hash'])}, computed {short(computed.hex())}",
        )
    ]


def test_bytes_that_are_not_utf8_are_malformed(
    template: Template, copy: Callable[[], Path]
) -> None:
    path = copy()
    conn = raw(path)
    conn.execute(
        "UPDATE events SET actor = CAST(X'ff6f7073' AS TEXT) WHERE seq = ?", (template.size - 1,)
    )
    conn.close()
    report = verify_db(path)
    assert report.problems == [
        Problem(template.size - 1, "malformed", "actor is not valid UTF-8 text (lone surrogate)")
    ]
    # Export writes the stored bytes as they are; the exported file is then not UTF-8.
    lines = export_of(path)
    assert b'"actor":"\xffops"' in lines[-2]
    exported = verify_export(lines).problems
    assert exported[0] == Problem(
        template.size - 1, "malformed", f"line {template.size - 1}: not UTF-8 (byte 10)"
    )
    # An unreadable line carries no hash, so the next link cannot be confirmed either.
    assert [(p.seq, p.kind) for p in exported[1:]] == [(template.size, "chain_broken")]


def test_stored_merkle_node_changed_is_hash_mismatch(
    template: Template, copy: Callable[[], Path]
) -> None:
    path = copy()
    conn = sqlite3.connect(path, isolation_level=None)
    # Node (4, 0): leaves 0..15, complete at size 16 (nodes below level 4 are not stored).
    changed = conn.execute(
        "UPDATE merkle_nodes SET hash = ? WHERE closes = 16 AND level = 4", (bytes(32),)
    ).rowcount
    conn.close()
    assert changed == 1
    report = verify_db(path)
    assert first(report) == (16, "hash_mismatch")
    assert report.problems[0].detail.startswith(
        "stored Merkle node (4, 0) is 0000…00, events give "
    )


# --- dropped, duplicated, swapped events --------------------------------------------------------


@given(seq=st.integers(1, 30))
def test_dropped_event_is_seq_gap_and_chain_broken_at_the_next_seq(
    template: Template, seq: int
) -> None:
    seq = min(seq, template.size - 1)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.db"
        shutil.copyfile(template.path, path)
        conn = raw(path)
        conn.execute("DELETE FROM events WHERE seq = ?", (seq,))
        conn.close()
        report = verify_db(path)
        assert [(p.seq, p.kind) for p in report.problems[:2]] == [
            (seq + 1, "seq_gap"),
            (seq + 1, "chain_broken"),
        ]
        assert report.problems[0].detail == f"expected seq {seq}, found {seq + 1}"
        assert all(p.seq > seq for p in report.problems)
        lines = export_of(path)
        assert [(p.seq, p.kind) for p in verify_export(lines).problems[:2]] == [
            (seq + 1, "seq_gap"),
            (seq + 1, "chain_broken"),
        ]


def test_dropped_last_event_needs_a_record_kept_outside(
    template: Template, copy: Callable[[], Path]
) -> None:
    # SPEC §1.4: without something kept outside the file, cutting the newest events off is
    # undetectable; verify's remembered state (or a checkpoint) is that something.
    path = copy()
    assert verify_db(path, use_state=True).ok
    conn = raw(path)
    conn.execute("DELETE FROM events WHERE seq = ?", (template.size,))
    conn.close()
    assert verify_db(path).ok
    report = verify_db(path, use_state=True)
    assert first(report) == (template.size, "truncated")
    assert report.problems[0].detail.startswith(
        f"log has {template.size - 1} events, the last verify ("
    )


@given(data=st.data())
def test_swapped_events_are_chain_broken_at_the_first(
    template: Template, data: st.DataObject
) -> None:
    a = data.draw(st.integers(2, template.size - 1))
    b = data.draw(st.integers(a + 1, template.size))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.db"
        shutil.copyfile(template.path, path)
        conn = raw(path)
        conn.execute("UPDATE events SET seq = -1 WHERE seq = ?", (a,))
        conn.execute("UPDATE events SET seq = ? WHERE seq = ?", (a, b))
        conn.execute("UPDATE events SET seq = ? WHERE seq = -1", (b,))
        conn.close()
        report = verify_db(path)
        assert kinds_at(report, a)[:2] == ["chain_broken", "hash_mismatch"]
        assert first(report) == (a, "chain_broken")


@given(data=st.data())
def test_swapped_export_lines_are_seq_gaps(template: Template, data: st.DataObject) -> None:
    lines = export_of(template.path)
    a = data.draw(st.integers(1, len(lines) - 1))
    b = data.draw(st.integers(a + 1, len(lines)))
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    report = verify_export(lines)
    assert first(report) == (a, "seq_gap")
    assert "seq_gap" in kinds_at(report, b)


@given(seq=st.integers(1, 30))
def test_duplicated_export_line_is_a_seq_gap_at_its_seq(template: Template, seq: int) -> None:
    lines = export_of(template.path)
    seq = min(seq, len(lines))
    lines.insert(seq, lines[seq - 1])
    report = verify_export(lines)
    assert [(p.seq, p.kind) for p in report.problems[:2]] == [
        (seq, "seq_gap"),
        (seq, "chain_broken"),
    ]
    # A repeated key event also registers its key twice (malformed); nothing else is affected.
    assert {p.seq for p in report.problems} == {seq}
    assert report.problems[0].detail == f"seq {seq} again or out of order after {seq}"


def test_replayed_event_in_the_database_breaks_the_chain(
    template: Template, copy: Callable[[], Path]
) -> None:
    path = copy()
    conn = raw(path)
    conn.execute(
        "INSERT INTO events SELECT seq + 1000, id || '-again', ts, type, agent, run, actor, "
        "payload, prev, key, hash, sig FROM events WHERE seq = 5"
    )
    conn.execute("UPDATE events SET seq = ? WHERE seq = 1005", (template.size + 1,))
    conn.close()
    report = verify_db(path)
    assert first(report) == (template.size + 1, "chain_broken")
    assert kinds_at(report, template.size + 1)[:2] == ["chain_broken", "hash_mismatch"]


# --- forgeries with real keys ---------------------------------------------------------------------


def _forgeries(template: Template) -> list[tuple[int, str]]:
    """(seq, signer name) pairs where the signer is registered before seq but its role may not
    sign that event (SPEC §2.5)."""
    out = []
    for r in template.rows[4:]:
        row = dict(zip(COLUMNS, r, strict=True))
        for name in ("root", "recorder", "gov2", "agent-a"):
            s = template.names[name]
            role, bound = {
                "root": ("governor", None),
                "gov2": ("governor", None),
                "recorder": ("recorder", None),
                "agent-a": ("agent", "planner-1"),
            }[name]
            if authorize(role=role, key_agent=bound, event_type=row["type"], agent=row["agent"]):
                out.append((row["seq"], s.name))
    return out


@given(data=st.data())
def test_resigned_by_a_registered_key_of_the_wrong_role_is_unauthorized(
    template: Template, data: st.DataObject
) -> None:
    seq, name = data.draw(st.sampled_from(_forgeries(template)))
    signer = template.names[name]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.db"
        shutil.copyfile(template.path, path)
        conn = raw(path)
        rechain(conn, template.signers, {seq: {"key": signer.key_id}}, from_seq=seq)
        conn.close()
        report = verify_db(path)
        assert [(p.seq, p.kind) for p in report.problems] == [(seq, "unauthorized")]
        assert report.problems[0].detail.endswith(f" (key {name})")
        assert [(p.seq, p.kind) for p in verify_export(export_of(path)).problems] == [
            (seq, "unauthorized")
        ]


def test_governor_resigning_a_tool_call_says_why(
    template: Template, copy: Callable[[], Path]
) -> None:
    seq = next(r[0] for r in template.rows if r[3] == "tool.called")
    path = copy()
    conn = raw(path)
    rechain(conn, template.signers, {seq: {"key": template.names["gov2"].key_id}}, from_seq=seq)
    conn.close()
    assert verify_db(path).problems == [
        Problem(seq, "unauthorized", "a governor key may not sign tool.called (key gov2)")
    ]


def test_rewritten_history_with_every_key_is_caught_only_by_an_outside_record(
    template: Template, copy: Callable[[], Path]
) -> None:
    # Re-signing with the right keys leaves a valid log: only the remembered root shows it.
    path = copy()
    assert verify_db(path, use_state=True).ok
    conn = raw(path)
    rechain(conn, template.signers, {6: {"actor": "mallory"}}, from_seq=6)
    conn.close()
    assert verify_db(path).ok
    report = verify_db(path, use_state=True)
    assert first(report) == (template.size, "checkpoint_mismatch")


def test_event_signed_by_an_unregistered_key_is_unknown_key(
    template: Template, copy: Callable[[], Path], keyring: KeyRing
) -> None:
    path = copy()
    stranger = keyring.create("stranger")
    conn = raw(path)
    seq = raw_append(conn, stranger, type="x.note", payload={"text": "hi"})
    conn.close()
    assert verify_db(path).problems == [
        Problem(
            seq, "unknown_key", f"key {stranger.key_id} is not registered at this point of the log"
        )
    ]


def test_event_appended_with_a_revoked_key_is_revoked_key(
    template: Template, copy: Callable[[], Path]
) -> None:
    path = copy()
    agent = template.names["agent-a"]
    with Ledger.open(path) as lg:
        revoked = lg.append(
            Draft("key.revoked", {"key_id": agent.key_id, "reason": "leaked"}),
            signer=template.names["root"],
        )
        assert verify_ledger(lg).ok
    conn = raw(path)
    seq = raw_append(
        conn,
        agent,
        type="tool.called",
        agent="planner-1",
        run="run-0",
        payload={"tool": "t", "args_digest": "1" * 64, "side_effect": "read"},
    )
    conn.close()
    expected = [
        Problem(
            seq, "revoked_key", f"key agent-a ({agent.key_id}) was revoked at seq {revoked.seq}"
        )
    ]
    assert verify_db(path).problems == expected
    assert verify_export(export_of(path)).problems == expected


def test_events_signed_before_a_revocation_stay_valid(
    template: Template, copy: Callable[[], Path]
) -> None:
    path = copy()
    with Ledger.open(path) as lg:
        lg.append(
            Draft(
                "key.revoked", {"key_id": template.names["recorder"].key_id, "reason": "rotated"}
            ),
            signer=template.names["gov2"],
        )
        assert verify_ledger(lg).ok


# --- exported files -----------------------------------------------------------------------------


def test_export_verifies_and_matches_the_database(template: Template) -> None:
    lines = export_of(template.path)
    db = verify_db(template.path)
    exp = verify_export(lines)
    assert exp.ok and db.ok
    assert (exp.events, exp.head_seq, exp.head_hash, exp.root) == (
        db.events,
        db.head_seq,
        db.head_hash,
        db.root,
    )
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)


def test_export_line_is_the_canonical_envelope(template: Template) -> None:
    line = export_of(template.path)[0]
    env = json.loads(line)
    assert canonical(env) + b"\n" == line
    r = dict(zip(COLUMNS, template.rows[0], strict=True))
    assert line == envelope_line(**r)
    assert set(env) == {"v", *COLUMNS}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda ls: [*ls[:-1], ls[-1][:-1]], ["malformed"], id="no-final-newline"),
        pytest.param(
            lambda ls: [*ls[:3], ls[3].replace(b'"v":1', b'"v":2'), *ls[4:]],
            ["malformed"],
            id="wrong-v",
        ),
        pytest.param(
            lambda ls: [*ls[:3], ls[3].replace(b'{"actor"', b'{ "actor"'), *ls[4:]],
            ["malformed"],
            id="not-canonical",
        ),
        pytest.param(
            lambda ls: [*ls[:3], ls[3].replace(b',"v":1}', b"}"), *ls[4:]],
            ["malformed"],
            id="missing-field",
        ),
        pytest.param(
            lambda ls: [*ls[:3], b"{not json\n", *ls[4:]],
            ["malformed", "chain_broken"],
            id="garbage-line",
        ),
    ],
)
def test_export_framing_problems(
    template: Template, edit: Callable[[list[bytes]], list[bytes]], expected: list[str]
) -> None:
    lines = edit(export_of(template.path))
    report = verify_export(lines)
    seq = 4 if expected != ["malformed"] or lines[-1].endswith(b"\n") else template.size
    assert first(report) == (seq, "malformed")
    assert [p.kind for p in report.problems][: len(expected)] == expected


def test_export_garbage_line_names_its_line(template: Template) -> None:
    lines = export_of(template.path)
    lines[3] = b'{"a": 1.5}\n'
    report = verify_export(lines)
    assert report.problems[0] == Problem(
        4,
        "malformed",
        "line 4: $.a: number 1.5 is not an integer; signed content holds no floats "
        "(use micro-units, basis points, milliseconds)",
    )


def test_export_sig_with_nonzero_padding_bits_is_malformed(template: Template) -> None:
    lines = export_of(template.path)
    env = json.loads(lines[4])
    sig = env["sig"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(sig[-3])
    env["sig"] = sig[:-3] + alphabet[last | 1 if last % 2 == 0 else last & ~1] + "=="
    assert base64.b64decode(env["sig"]) == base64.b64decode(sig)  # same bytes, other text
    lines[4] = canonical(env) + b"\n"
    report = verify_export(lines)
    assert report.problems[0] == Problem(5, "malformed", "sig: not canonical base64")


# --- the verify command: --json shape, pinning, the one-line human report ----------------------


def _verify_cli(path: Path, *args: str) -> Any:
    return CliRunner().invoke(
        main_cli(), ["--db", str(path), "verify", *args], catch_exceptions=False
    )


def main_cli() -> Any:
    from ledger.cli import main

    return main


def test_verify_json_shape_on_a_good_ledger(template: Template, copy: Callable[[], Path]) -> None:
    path = copy()
    result = _verify_cli(path, "--json", "--no-state")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert {"ok", "events", "head", "root", "pinned", "problems"} <= set(out)
    assert out["ok"] is True and out["pinned"] is False and out["problems"] == []
    assert out["events"] == template.size
    assert set(out["head"]) == {"seq", "hash"}
    assert out["head"] == {"seq": template.size, "hash": template.rows[-1][10]}
    assert re.fullmatch(r"[0-9a-f]{64}", out["root"])
    leaves = [bytes.fromhex(r[10]) for r in template.rows]
    assert out["root"] == merkle.root(leaves).hex()


def test_verify_json_on_a_tampered_ledger(template: Template, copy: Callable[[], Path]) -> None:
    path = copy()
    conn = raw(path)
    conn.execute("UPDATE events SET prev = ? WHERE seq = 9", ("f" * 64,))
    conn.close()
    result = _verify_cli(path, "--json", "--no-state")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False
    assert out["problems"][0] == {
        "seq": 9,
        "kind": "chain_broken",
        "detail": f"prev is ffff…ff, expected {short(template.rows[7][10])} (hash of seq 8)",
    }
    assert all(set(p) == {"seq", "kind", "detail"} for p in out["problems"])
    assert [p["seq"] for p in out["problems"]] == sorted(p["seq"] for p in out["problems"])


def test_verify_human_output_names_the_first_problem(
    template: Template, copy: Callable[[], Path]
) -> None:
    path = copy()
    conn = raw(path)
    conn.execute("UPDATE events SET prev = ? WHERE seq = 9", ("f" * 64,))
    conn.close()
    result = _verify_cli(path, "--no-state")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert (len(lines), result.stdout) == (1, "")
    assert re.fullmatch(r"error: seq \d+: [a-z_]+: .+", lines[0])
    assert lines[0].startswith(
        f"error: seq 9: chain_broken: prev is ffff…ff, expected {short(template.rows[7][10])} "
        "(hash of seq 8) (and "
    )


def test_verify_pinned_with_the_right_root(template: Template, copy: Callable[[], Path]) -> None:
    path = copy()
    root = template.names["root"].key_id
    result = _verify_cli(path, "--json", "--no-state", "--trust", root)
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["ok"] is True and out["pinned"] is True


def test_verify_with_a_wrong_trust_is_untrusted_root(
    template: Template, copy: Callable[[], Path]
) -> None:
    path = copy()
    other = template.names["gov2"].key_id
    result = _verify_cli(path, "--json", "--no-state", "--trust", other)
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["pinned"] is True
    assert out["problems"] == [
        {
            "seq": 1,
            "kind": "untrusted_root",
            "detail": f"root key {template.names['root'].key_id} is not a trusted key",
        }
    ]


def test_verify_file_json_on_a_tampered_export(template: Template, tmp_path: Path) -> None:
    lines = export_of(template.path)
    del lines[4]
    export = tmp_path / "e.jsonl"
    export.write_bytes(b"".join(lines))
    result = CliRunner().invoke(
        main_cli(),
        ["--db", str(tmp_path / "none.db"), "verify", "--file", str(export), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["problems"][:2] == [
        {"seq": 6, "kind": "seq_gap", "detail": "expected seq 5, found 6"},
        {
            "seq": 6,
            "kind": "chain_broken",
            "detail": f"prev is {short(template.rows[4][10])}, expected "
            f"{short(template.rows[3][10])} (hash of seq 4)",
        },
    ]


def test_decreasing_ts_is_malformed_even_when_signed(
    template: Template, copy: Callable[[], Path]
) -> None:
    path = copy()
    conn = raw(path)
    rechain(conn, template.signers, {10: {"ts": "2000-01-01T00:00:00.000000Z"}}, from_seq=10)
    conn.close()
    assert verify_db(path).problems == [
        Problem(
            10,
            "malformed",
            f"ts 2000-01-01T00:00:00.000000Z is before the previous event's {template.rows[8][2]}",
        )
    ]


def test_a_user_type_changed_to_one_the_writer_refuses_is_malformed(
    template: Template, copy: Callable[[], Path]
) -> None:
    # Verify holds user types to the writer's x.<name> form (found by the property test above:
    # x.note -> x.~ote).
    seq = next(i + 1 for i, r in enumerate(template.rows) if r[COLUMNS.index("type")] == "x.note")
    path = copy()
    conn = raw(path)
    conn.execute("UPDATE events SET type = 'x.~ote' WHERE seq = ?", (seq,))
    conn.close()
    assert first(verify_db(path)) == (seq, "malformed")


def test_a_root_key_that_is_not_a_governor_is_unauthorized(tmp_path: Path) -> None:
    signer = KeyRing(tmp_path / "k").create("root")
    kid = key_id(signer.public_key)
    payload = {"origin": ORIGIN, "key": {"key_id": kid, "name": "root", "role": "recorder",
               "public_key": b64encode(signer.public_key), "agent": None}}  # fmt: skip
    fields = {"seq": 1, "id": "e1", "ts": "2026-11-21T10:00:00.000000Z", "type": "ledger.created",
              "agent": None, "run": None, "actor": None,
              "payload": canonical(payload).decode(), "prev": "0" * 64, "key": kid}  # fmt: skip
    digest = event_hash(body_bytes(**fields))
    envelope = {**fields, "v": 1, "payload": payload, "hash": digest.hex(),
                "sig": sign(signer, digest)}  # fmt: skip
    report = verify_export([canonical(envelope) + b"\n"])
    assert [(p.seq, p.kind) for p in report.problems] == [(1, "unauthorized")]


def test_a_reformatted_export_line_is_malformed_and_nothing_else(ready: Cli) -> None:
    for i in range(5):
        ready("append", "x.note", "--signer", "rec", "--payload", json.dumps({"i": i}))
    lines = ready("export").stdout_bytes.splitlines(keepends=True)
    lines[3] = lines[3].replace(b'{"actor"', b'{ "actor"', 1)  # same JSON, not canonical
    report = verify_export(lines)
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "malformed")]
    assert (report.events, report.head_seq) == (7, 7)
    intact = verify_export(ready("export").stdout_bytes.splitlines(keepends=True))
    assert report.root == intact.root
