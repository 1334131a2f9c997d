"""Hostile-input campaign against the verifiers and the importer (fail closed).

::

    python scripts/fuzz.py --seconds 300 --seed 1 --target all
    python scripts/fuzz.py --seconds 60 --target export --save /tmp/fuzz-finds

A seeded random mutator (no extra dependency) rewrites valid inputs made by govledger itself
(a ledger of about 220 events of mixed types: keys, a revocation, a policy, runs) with bit
flips, byte inserts and deletes, truncations, spliced, duplicated, swapped and dropped lines,
Unicode tricks (NFD, homoglyphs, U+2028, BOM, escaped surrogates), huge fields, number
spellings, key reordering and whitespace, and feeds them to the library functions behind the
CLI, in-process. Each target has an oracle:

- ``export``: ``verify_export`` on a mutated export. A ``LedgerError`` is a clean refusal;
  any other exception is a crash. ``ok`` is allowed only for the original bytes or, without a
  checkpoint, a prefix of whole lines of them (a log cut at a line boundary); with the
  checkpoint of the full log a prefix must not be ``ok`` (it is ``truncated``).
- ``sqlite``: ``verify_ledger`` on a copy of the ledger whose triggers were dropped and
  whose events, Merkle nodes or pages were changed. ``ok`` is allowed only when the events
  table still reads the same (or, without remembered state, as a prefix of it) and no Merkle
  node changed.
- ``import``: ``import_file`` of a mutated JSON Lines file. Either success, or an exit-2
  error whose message names a line (or the file, for an empty one), with the log unchanged.
- ``proof``: ``verify_event_proof`` on a mutated tlog-proof; ``ok`` only when what it proves
  (event body, index, checkpoint origin/size/root) is unchanged and the text differs only in
  ways C2SP allows (extra signature lines of unknown keys).
- ``checkpoint``: ``verify_ledger`` with a mutated checkpoint note; ``ok`` only when the
  parsed checkpoint is the original one.

It prints cases run, crashes and false oks per target; ``--save DIR`` keeps each finding (the
input and a note of what happened). Exit status 1 when anything was found.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python scripts/fuzz.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("GOVLEDGER_WORKERS", "0")  # in-process: the oracle sees every exception

from ledger.crypto.keyfiles import KeyRing
from ledger.errors import InputError, LedgerError
from ledger.exchange.import_lines import import_file
from ledger.sample import GOVERNOR, RECORDER, build_ledger, generate_drafts, import_line
from ledger.store.sqlite import Ledger
from ledger.tlog.notes import parse_unverified_checkpoint
from ledger.tlog.proofs import verify_event_proof
from ledger.verify.verifier import verify_export, verify_ledger

TARGETS = ("export", "sqlite", "import", "proof", "checkpoint")

# --- the fixture: a real ledger and what it exports -----------------------------------------


@dataclass
class Fixture:
    dir: Path
    db: Path
    keys: Path
    export: bytes
    checkpoint: str
    proof: bytes
    vkey: str
    root_key_id: str
    drafts: dict[str, bytes]
    """JSON Lines import files by signing role: ``recorder`` and ``governor`` (``root``)."""
    events: list[tuple[Any, ...]]
    nodes: list[tuple[Any, ...]]


def _cli(*args: str) -> str:
    from click.testing import CliRunner

    from ledger.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"fixture: govledger {' '.join(args)}: {result.output}")
    return result.output


def build_fixture(base: Path, seed: int) -> Fixture:
    """A ledger of ~220 events made by govledger (sample workload, then CLI key and policy
    events), its export, a checkpoint, an inclusion proof and a JSON Lines import file."""
    db, keys = base / "l.db", base / "keys"
    ledger = build_ledger(db, keys, 200, 4, seed)
    agent = ledger.conn.execute(
        "SELECT agent FROM events WHERE type = 'agent.registered' ORDER BY seq LIMIT 1"
    ).fetchone()[0]
    ledger.close()
    g = ("--db", str(db), "--keys", str(keys))
    policy = Path(__file__).resolve().parents[1] / "projections" / "policy" / "default_policy.toml"
    (base / "note.json").write_text(
        json.dumps({"text": "caf\u00e9 \u2028 \U0001f600 \u00e9\u0301", "n": -3, "deep": [[{}]]}),
        encoding="utf-8",
    )
    _cli(*g, "keys", "new", "agentk", "--role", "agent", "--agent", agent)
    _cli(*g, "keys", "new", "rec2", "--role", "recorder")
    _cli(*g, "append", "x.note", "--signer", "rec2", "--agent", agent, "--payload",
         f"@{base / 'note.json'}")  # fmt: skip
    _cli(*g, "append", "tool.called", "--signer", "agentk", "--agent", agent, "--run", "r-x",
         "--payload", '{"tool": "memory.read", "args_digest": "' + "ab" * 32
         + '", "side_effect": "read"}')  # fmt: skip
    _cli(*g, "keys", "revoke", "rec2", "--reason", "rotated")
    _cli(*g, "policy", "set", str(policy), "--signer", "root")
    _cli(*g, "append", "feedback.quality", "--signer", "recorder", "--agent", agent,
         "--payload", '{"score_bp": 9000, "by": "u\u0131"}')  # fmt: skip
    _cli(*g, "export", "-o", str(base / "export.jsonl"))
    _cli(*g, "checkpoint", "--signer", "root", "-o", str(base / "cp.txt"))
    _cli(*g, "prove", "5", "-o", str(base / "proof.txt"))
    vkey = _cli(*g, "keys", "vkey", "root").strip()
    ledger = Ledger.open(db)
    root_key_id = ledger.conn.execute("SELECT key_id FROM keys WHERE name = 'root'").fetchone()[0]
    events = list(ledger.conn.execute("SELECT * FROM events ORDER BY seq"))
    nodes = list(ledger.conn.execute("SELECT * FROM merkle_nodes ORDER BY closes, level"))
    ledger.close()
    generated = list(generate_drafts(120, 3, seed))
    drafts = {
        want: b"".join(
            import_line(d).encode("utf-8") + b"\n" for role, d in generated if role == want
        )
        for want in (RECORDER, GOVERNOR)
    }
    return Fixture(
        dir=base,
        db=db,
        keys=keys,
        export=(base / "export.jsonl").read_bytes(),
        checkpoint=(base / "cp.txt").read_text(encoding="utf-8"),
        proof=(base / "proof.txt").read_bytes(),
        vkey=vkey,
        root_key_id=root_key_id,
        drafts=drafts,
        events=events,
        nodes=nodes,
    )


# --- byte and line mutations ----------------------------------------------------------------

HOMOGLYPHS = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "i": "\u0131", "c": "\u0441"}
INTERESTING = [
    b"\x00", b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\r", b"\r\n", b" ",
    b"\t", b"\xe2\x80\xa8", b"\\u2028", b"\\ud800", b"\\udc00", b"\\u0000", b'"', b"\\",
    b"{", b"}", b"[", b"]", b",", b":", b"null", b"true", b"0", b"-0", b"1e0", b"1.0",
    b"9007199254740993", b"\xd9\xa3", b"\xef\xbc\x93", b"NaN", b"Infinity", b"\n",
]  # fmt: skip
NUMBER_SPELLINGS = [
    lambda n: f"{n}.0", lambda n: f"{n}e0", lambda n: f"{n}E+0", lambda n: f"0{n}",
    lambda n: f"+{n}", lambda n: f"{n}.00", lambda n: "-0" if n == 0 else f"-{n}",
    lambda n: str(n + 2**64), lambda n: str(n).translate(str.maketrans("0123456789",
                                                                       "٠١٢٣٤٥٦٧٨٩")),
    lambda n: f"{n} ", lambda n: f"{n}\u00a0",
]  # fmt: skip


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def m_bitflip(d: bytes, r: random.Random) -> bytes:
    if not d:
        return d
    i = r.randrange(len(d))
    return d[:i] + bytes([d[i] ^ (1 << r.randrange(8))]) + d[i + 1 :]


def m_insert(d: bytes, r: random.Random) -> bytes:
    i = r.randrange(len(d) + 1)
    blob = r.choice(INTERESTING) if r.random() < 0.7 else bytes([r.randrange(256)])
    return d[:i] + blob + d[i:]


def m_delete(d: bytes, r: random.Random) -> bytes:
    if not d:
        return d
    i = r.randrange(len(d))
    return d[:i] + d[i + r.randint(1, 4) :]


def m_replace(d: bytes, r: random.Random) -> bytes:
    if not d:
        return d
    i = r.randrange(len(d))
    return d[:i] + r.choice(INTERESTING) + d[i + 1 :]


def m_truncate(d: bytes, r: random.Random) -> bytes:
    return d[: r.randrange(len(d) + 1)]


def m_truncate_line(d: bytes, r: random.Random) -> bytes:
    ls = _lines(d)
    return b"".join(ls[: r.randrange(len(ls) + 1)])


def m_line_dup(d: bytes, r: random.Random) -> bytes:
    ls = _lines(d)
    if not ls:
        return d
    i = r.randrange(len(ls))
    ls.insert(r.randrange(len(ls) + 1), ls[i])
    return b"".join(ls)


def m_line_swap(d: bytes, r: random.Random) -> bytes:
    ls = _lines(d)
    if len(ls) < 2:
        return d
    i, j = r.sample(range(len(ls)), 2)
    ls[i], ls[j] = ls[j], ls[i]
    return b"".join(ls)


def m_line_drop(d: bytes, r: random.Random) -> bytes:
    ls = _lines(d)
    if not ls:
        return d
    del ls[r.randrange(len(ls))]
    return b"".join(ls)


def m_line_splice(d: bytes, r: random.Random) -> bytes:
    """Join the head of one line with the tail of another."""
    ls = _lines(d)
    if len(ls) < 2:
        return d
    i, j = r.randrange(len(ls)), r.randrange(len(ls))
    a, b = ls[i], ls[j]
    ls[i] = a[: r.randrange(len(a) + 1)] + b[r.randrange(len(b) + 1) :]
    return b"".join(ls)


def m_crlf(d: bytes, r: random.Random) -> bytes:
    ls = _lines(d)
    if not ls:
        return d
    i = r.randrange(len(ls))
    ls[i] = ls[i].rstrip(b"\n") + r.choice([b"\r\n", b" \n", b"\n\n", b"\t\n", b""])
    return b"".join(ls)


def m_whitespace(d: bytes, r: random.Random) -> bytes:
    spots = [i for i, c in enumerate(d) if c in b",:{["]
    if not spots:
        return d
    i = r.choice(spots) + 1
    return d[:i] + r.choice([b" ", b"\t", b"\r", "\u3000".encode(), b"  "]) + d[i:]


def m_bom(d: bytes, r: random.Random) -> bytes:
    ls = _lines(d)
    i = r.randrange(len(ls)) if ls and r.random() < 0.5 else 0
    if not ls:
        return b"\xef\xbb\xbf"
    ls[i] = b"\xef\xbb\xbf" + ls[i]
    return b"".join(ls)


def _text_edit(d: bytes, r: random.Random, edit: Callable[[str, random.Random], str]) -> bytes:
    try:
        t = d.decode("utf-8")
    except UnicodeDecodeError:
        return d
    return edit(t, r).encode("utf-8", "surrogatepass")


def m_unicode(d: bytes, r: random.Random) -> bytes:
    def edit(t: str, r: random.Random) -> str:
        kind = r.randrange(7)
        if kind == 0:  # NFD / NFKC of the whole text or one line
            return unicodedata.normalize(r.choice(["NFD", "NFKC", "NFC"]), t)
        if kind == 1:  # homoglyph for one letter
            spots = [i for i, c in enumerate(t) if c in HOMOGLYPHS]
            if spots:
                i = r.choice(spots)
                return t[:i] + HOMOGLYPHS[t[i]] + t[i + 1 :]
            return t
        if kind == 2:  # escape one character as \\uXXXX (same JSON value, not canonical)
            spots = [i for i, c in enumerate(t) if c.isalnum()]
            if spots:
                i = r.choice(spots)
                return t[:i] + f"\\u{ord(t[i]):04x}" + t[i + 1 :]
            return t
        if kind == 3:  # a raw separator or escaped surrogate inside a string
            spots = [i for i, c in enumerate(t) if c == '"']
            if spots:
                i = r.choice(spots) + 1
                ins = r.choice(["\u2028", "\u2029", "\\ud83d", "\\udc00", "\u200d", "\u0085"])
                return t[:i] + ins + t[i:]
            return t
        if kind == 4:  # é as e + combining acute
            return (
                t.replace("\u00e9", "e\u0301", 1)
                if "\u00e9" in t
                else t.replace("e\u0301", "\u00e9", 1)
            )
        if kind == 5:  # raw U+2028 to its escape and back
            if "\u2028" in t:
                return t.replace("\u2028", "\\u2028", 1)
            return t.replace("\\u2028", "\u2028", 1)
        return t.replace("\U0001f600", "\\ud83d\\ude00", 1)

    return _text_edit(d, r, edit)


def m_number(d: bytes, r: random.Random) -> bytes:
    import re

    spots = [m for m in re.finditer(rb"(?<=[:\[,])-?\d+(?=[,}\]])", d)]
    if not spots:
        return d
    m = r.choice(spots)
    n = int(m.group())
    return d[: m.start()] + r.choice(NUMBER_SPELLINGS)(n).encode("utf-8") + d[m.end() :]


def _json_line_edit(
    d: bytes, r: random.Random, edit: Callable[[dict[str, Any], random.Random], bytes | None]
) -> bytes:
    ls = _lines(d)
    if not ls:
        return d
    i = r.randrange(len(ls))
    try:
        obj = json.loads(ls[i])
    except ValueError:
        return d
    if not isinstance(obj, dict):
        return d
    out = edit(obj, r)
    if out is None:
        return d
    ls[i] = out + b"\n"
    return b"".join(ls)


def m_reorder(d: bytes, r: random.Random) -> bytes:
    def edit(obj: dict[str, Any], r: random.Random) -> bytes:
        items = list(obj.items())
        r.shuffle(items)
        return json.dumps(dict(items), ensure_ascii=r.random() < 0.5,
                          separators=(",", ":")).encode("utf-8")  # fmt: skip

    return _json_line_edit(d, r, edit)


def m_field(d: bytes, r: random.Random) -> bytes:
    """Change one field's value (type confusion, neighbours, huge values); written compactly."""

    def value(old: Any, r: random.Random) -> Any:
        choices: list[Any] = [None, True, 0, -1, 1, 2**53, 2**63, "", "x", [], {}, [old],
                              {"a": old}, "0" * 64, "A" * 88, "\u2028", "\x00"]  # fmt: skip
        if isinstance(old, int) and not isinstance(old, bool):
            choices += [old + 1, old - 1, str(old), -old]
        if isinstance(old, str):
            choices += [old.upper(), old + " ", old[:-1], "x" * r.choice([1000, 100_000, 2_000_000]),
                        old[::-1], old.replace("Z", "+00:00")]  # fmt: skip
        return r.choice(choices)

    def edit(obj: dict[str, Any], r: random.Random) -> bytes:
        target = obj
        if isinstance(obj.get("payload"), dict) and obj["payload"] and r.random() < 0.4:
            target = obj["payload"]
        if not target:
            return json.dumps(obj).encode()
        k = r.choice(list(target))
        op = r.randrange(10)
        if op == 0:
            del target[k]
        elif op == 1:
            target[k + r.choice(["_", "\u200b", " "])] = target[k]
        else:
            target[k] = value(target[k], r)
        return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8", "surrogatepass")  # fmt: skip

    return _json_line_edit(d, r, edit)


def m_dup_key(d: bytes, r: random.Random) -> bytes:
    ls = _lines(d)
    if not ls:
        return d
    i = r.randrange(len(ls))
    line = ls[i].rstrip(b"\n")
    if line.endswith(b"}") and line.startswith(b"{"):
        ls[i] = b'{"v":1,' + line[1:] + b"\n" if r.random() < 0.5 else line[:-1] + b',"seq":1}\n'
    return b"".join(ls)


MUTATORS: list[Callable[[bytes, random.Random], bytes]] = [
    m_bitflip, m_insert, m_delete, m_replace, m_truncate, m_truncate_line, m_line_dup,
    m_line_swap, m_line_drop, m_line_splice, m_crlf, m_whitespace, m_bom, m_unicode, m_number,
    m_reorder, m_field, m_dup_key,
]  # fmt: skip


def mutate(data: bytes, r: random.Random) -> tuple[bytes, list[str]]:
    names = []
    for _ in range(r.choice([1, 1, 1, 2, 3])):
        m = r.choice(MUTATORS)
        data = m(data, r)
        names.append(m.__name__)
    return data, names


# --- campaign bookkeeping -------------------------------------------------------------------


@dataclass
class Stats:
    cases: int = 0
    refused: int = 0
    ok: int = 0
    crashes: int = 0
    false_ok: int = 0
    bad_refusal: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class Campaign:
    fixture: Fixture
    rng: random.Random
    save: Path | None
    stats: dict[str, Stats] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    signers: dict[str, Any] = field(default_factory=dict)
    ledger: Ledger | None = None

    def find(self, target: str, kind: str, data: bytes, note: str) -> None:
        st = self.stats[target]
        if kind == "crash":
            st.crashes += 1
        elif kind == "false_ok":
            st.false_ok += 1
        else:
            st.bad_refusal += 1
        # One report per place: the deepest library frame of a traceback and its last line.
        lines = note.splitlines() or [""]
        frames = [ln.strip() for ln in lines if ln.strip().startswith("File ") and "ledger" in ln]
        sig = f"{target}:{kind}:{frames[-1] if frames else ''}:{lines[-1][:120]}"
        if sig in self.seen:
            return
        self.seen.add(sig)
        print(f"[{target}] {kind}: {note.splitlines()[-1] if note else ''}", flush=True)
        if self.save is not None:
            self.save.mkdir(parents=True, exist_ok=True)
            n = len(self.seen)
            (self.save / f"{target}-{kind}-{n}.bin").write_bytes(data)
            (self.save / f"{target}-{kind}-{n}.txt").write_text(note, encoding="utf-8")


def _line_diff(data: bytes, original: bytes, limit: int = 3) -> str:
    """The first lines where ``data`` and ``original`` differ, for a finding's note."""
    a, b = _lines(data), _lines(original)
    out = [f"{len(a)} lines, original {len(b)}"]
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else b""
        y = b[i] if i < len(b) else b""
        if x != y:
            out.append(f"line {i + 1}: {x[:300]!r}\n   was {y[:300]!r}")
            if len(out) > limit:
                break
    return "\n".join(out)


def _is_line_prefix(mutated: bytes, original: bytes) -> bool:
    return original.startswith(mutated) and (mutated == b"" or mutated.endswith(b"\n"))


# --- targets --------------------------------------------------------------------------------


def case_export(c: Campaign) -> None:
    f, r = c.fixture, c.rng
    data, names = mutate(f.export, r)
    mode = r.choice(["plain", "pinned", "checkpoint"])
    try:
        report = verify_export(
            io.BytesIO(data),
            trusted={f.root_key_id} if mode != "plain" else None,
            checkpoint=f.checkpoint if mode == "checkpoint" else None,
            parallel=False,
        )
    except LedgerError:
        c.stats["export"].refused += 1
        return
    except Exception:
        c.find("export", "crash", data, f"{mode} {names}\n{traceback.format_exc()}")
        return
    if not report.ok:
        c.stats["export"].refused += 1
        for p in report.problems[:1]:
            c.stats["export"].kinds[p.kind] = c.stats["export"].kinds.get(p.kind, 0) + 1
        return
    c.stats["export"].ok += 1
    allowed = data == f.export or (mode != "checkpoint" and _is_line_prefix(data, f.export))
    if not allowed:
        diff = _line_diff(data, f.export)
        c.find("export", "false_ok", data, f"{mode} {names}\n{diff}\nok for a changed export")


def _copy_db(f: Fixture, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(f.db) + suffix)
        if src.exists():
            shutil.copyfile(src, str(dst) + suffix)


def _mutate_db(path: Path, r: random.Random, f: Fixture) -> list[str]:
    names: list[str] = []
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER IF EXISTS events_no_update")
    con.execute("DROP TRIGGER IF EXISTS events_no_delete")
    cols = ["id", "ts", "type", "agent", "run", "actor", "payload", "prev", "key", "hash", "sig"]
    size = len(f.events)
    for _ in range(r.choice([1, 1, 2])):
        try:
            op = r.randrange(9)
            seq = r.randint(1, size)
            if op <= 2:  # a column value, mutated as bytes
                col = r.choice(cols)
                row = con.execute(f"SELECT {col} FROM events WHERE seq = ?", (seq,)).fetchone()
                old = row[0] if row else None
                if old is None:
                    new: Any = r.choice(["", "x", 0])
                else:
                    raw, _ = mutate(str(old).encode("utf-8"), r)
                    new = raw.decode("utf-8", "replace") if r.random() < 0.8 else raw
                con.execute(f"UPDATE events SET {col} = ? WHERE seq = ?", (new, seq))
                names.append(f"set {col}@{seq}")
            elif op == 3:  # a type-confused value
                col = r.choice([*cols, "seq"])
                new = r.choice([None, 1, -1, 2.5, b"\x00\x01", "", "\u2028", 2**62])
                with contextlib.suppress(sqlite3.DatabaseError):
                    con.execute(f"UPDATE events SET {col} = ? WHERE seq = ?", (new, seq))
                names.append(f"type {col}@{seq}={new!r}")
            elif op == 4:
                con.execute("DELETE FROM events WHERE seq = ?", (seq,))
                names.append(f"delete {seq}")
            elif op == 5:
                con.execute("DELETE FROM events WHERE seq >= ?", (seq,))
                names.append(f"truncate from {seq}")
            elif op == 6:  # duplicate a row under another seq (the last + 1, or a gap it fills)
                row = list(
                    con.execute("SELECT * FROM events WHERE seq = ?", (seq,)).fetchone() or []
                )
                if row:
                    row[0] = size + 1
                    row[1] = row[1] + "-dup"
                    con.execute(f"INSERT INTO events VALUES ({','.join('?' * 12)})", row)
                    names.append(f"dup {seq}")
            elif op == 7:  # swap two rows' contents
                other = r.randint(1, size)
                a = con.execute("SELECT * FROM events WHERE seq = ?", (seq,)).fetchone()
                b = con.execute("SELECT * FROM events WHERE seq = ?", (other,)).fetchone()
                if a and b and a != b:
                    con.execute("DELETE FROM events WHERE seq IN (?, ?)", (seq, other))
                    con.execute(f"INSERT INTO events VALUES ({','.join('?' * 12)})", (seq, *b[1:]))
                    con.execute(
                        f"INSERT INTO events VALUES ({','.join('?' * 12)})", (other, *a[1:])
                    )
                    names.append(f"swap {seq} {other}")
            else:  # the Merkle node table
                rows = con.execute("SELECT closes, level, hash FROM merkle_nodes").fetchall()
                closes, level, h = r.choice(rows)
                kind = r.randrange(4)
                if kind == 0:
                    hb = bytearray(h)
                    hb[r.randrange(len(hb))] ^= 1 << r.randrange(8)
                    con.execute(
                        "UPDATE merkle_nodes SET hash = ? WHERE closes = ? AND level = ?",
                        (bytes(hb), closes, level),
                    )
                elif kind == 1:
                    con.execute(
                        "DELETE FROM merkle_nodes WHERE closes = ? AND level = ?", (closes, level)
                    )
                elif kind == 2:
                    con.execute(
                        "UPDATE merkle_nodes SET hash = ? WHERE closes = ? AND level = ?",
                        (r.choice([b"", b"\x00" * 31, h.hex(), 7]), closes, level),
                    )
                else:
                    with contextlib.suppress(sqlite3.DatabaseError):
                        con.execute(
                            "INSERT INTO merkle_nodes VALUES (?, ?, ?)",
                            (closes + r.choice([size, 1000]), level, h),
                        )
                names.append(f"merkle {kind} ({closes},{level})")
        except sqlite3.IntegrityError:
            names.append("refused by a constraint")
    con.commit()
    con.close()
    if r.random() < 0.15:  # corrupt the file's pages
        with open(path, "r+b") as fh:
            fh.seek(0, 2)
            end = fh.tell()
            for _ in range(r.randint(1, 8)):
                pos = r.randrange(100 if r.random() < 0.1 else 4096, end)
                fh.seek(pos)
                fh.write(bytes([r.randrange(256)]))
        names.append("pages")
    return names


def _read_table(path: Path, sql: str) -> list[tuple[Any, ...]] | None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return list(con.execute(sql))
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return None


def case_sqlite(c: Campaign) -> None:
    f, r = c.fixture, c.rng
    work = f.dir / "work"
    work.mkdir(exist_ok=True)
    db = work / "m.db"
    for p in work.iterdir():
        p.unlink()
    _copy_db(f, db)
    names = _mutate_db(db, r, f)
    use_state = r.random() < 0.5
    pinned = r.random() < 0.5
    checkpoint = f.checkpoint if r.random() < 0.25 else None
    state = work / "state"
    os.environ["GOVLEDGER_STATE"] = str(state)
    if use_state:
        shutil.copytree(f.dir / "state", state)
    note = f"state={use_state} pinned={pinned} checkpoint={checkpoint is not None} {names}"
    try:
        ledger = Ledger.open(db)
        try:
            report = verify_ledger(
                ledger,
                trusted={f.root_key_id} if pinned else None,
                checkpoint=checkpoint,
                use_state=use_state,
            )
        finally:
            ledger.close()
    except LedgerError:
        c.stats["sqlite"].refused += 1
        return
    except Exception:
        c.find("sqlite", "crash", db.read_bytes(), f"{note}\n{traceback.format_exc()}")
        return
    finally:
        shutil.rmtree(state, ignore_errors=True)
    if not report.ok:
        c.stats["sqlite"].refused += 1
        k = report.problems[0].kind
        c.stats["sqlite"].kinds[k] = c.stats["sqlite"].kinds.get(k, 0) + 1
        return
    c.stats["sqlite"].ok += 1
    events = _read_table(db, "SELECT * FROM events ORDER BY seq")
    nodes = _read_table(db, "SELECT * FROM merkle_nodes ORDER BY closes, level")
    prefix = events is not None and events == f.events[: len(events)]
    # A node past the log's head is no part of its tree (the next append would collide with
    # it, which is the append's business): only nodes within the tree must be unchanged.
    size = len(events or [])
    same_nodes = nodes is not None and all(n in f.nodes for n in nodes if n[0] <= size)
    allowed = (
        events == f.events
        or (prefix and not use_state and checkpoint is None and events is not None)
    ) and (same_nodes or (nodes is None and events == f.events))
    if not allowed:
        c.find("sqlite", "false_ok", db.read_bytes(), f"{note}\nok for a changed ledger")


def case_import(c: Campaign) -> None:
    f, r = c.fixture, c.rng
    work = f.dir / "work"
    work.mkdir(exist_ok=True)
    if not (work / "i.db").exists() or r.random() < 0.02:
        _copy_db(f, work / "i.db")
    src = work / "in.jsonl"
    role = r.choice([RECORDER, GOVERNOR])
    data, names = mutate(f.drafts[role], r)
    names.insert(0, role)
    src.write_bytes(data)
    signer = c.signers[role]
    db = work / "i.db"
    before = _read_table(db, "SELECT count(*), max(seq) FROM events")
    try:
        ledger = Ledger.open(db)
        try:
            import_file(ledger, str(src), signer=signer)
        finally:
            ledger.close()
    except InputError as e:
        c.stats["import"].refused += 1
        after = _read_table(db, "SELECT count(*), max(seq) FROM events")
        if after != before:
            c.find("import", "bad_refusal", data, f"{names}\nlog changed on failure: {e.message}")
        elif "line" not in e.message and data.strip():
            c.find("import", "bad_refusal", data, f"{names}\nno line named: {e.message}")
        return
    except LedgerError as e:
        c.find("import", "bad_refusal", data, f"{names}\nexit {e.exit_code}: {e.message}")
        return
    except Exception:
        c.find("import", "crash", data, f"{names}\n{traceback.format_exc()}")
        return
    c.stats["import"].ok += 1
    if r.random() < 0.05:  # what was imported must verify
        ledger = Ledger.open(db)
        try:
            report = verify_ledger(ledger)
        finally:
            ledger.close()
        if not report.ok:
            c.find("import", "bad_refusal", data, f"{names}\nimported log fails verify")
        (work / "i.db").unlink()


def _proof_meaning(p: Any) -> tuple[Any, ...]:
    cp = p.checkpoint
    return (json.dumps(p.body, sort_keys=True), p.hash, cp.origin, cp.size, cp.root)


def case_proof(c: Campaign) -> None:
    f, r = c.fixture, c.rng
    data, names = mutate(f.proof, r)
    vkey = f.vkey
    if r.random() < 0.1:
        vkey = mutate(vkey.encode(), r)[0].decode("utf-8", "replace")
        names.append("vkey")
    try:
        proven = verify_event_proof(data, vkey=vkey)
    except LedgerError:
        c.stats["proof"].refused += 1
        return
    except Exception:
        c.find("proof", "crash", data, f"{names} vkey={vkey}\n{traceback.format_exc()}")
        return
    c.stats["proof"].ok += 1
    if data == f.proof and vkey == f.vkey:
        return
    original = _proof_meaning(verify_event_proof(f.proof, vkey=f.vkey))
    if _proof_meaning(proven) != original or not _only_signature_lines_differ(data, f.proof):
        c.find("proof", "false_ok", data, f"{names} vkey={vkey}\nok for a changed proof")


def _only_signature_lines_differ(data: bytes, original: bytes) -> bool:
    """C2SP signed notes ignore signature lines of keys the verifier does not know: a note
    that only adds such lines, or reorders them, says the same thing."""
    a, b = data.split(b"\n\n"), original.split(b"\n\n")
    if len(a) != len(b) or a[:-1] != b[:-1]:
        return False
    return set(b[-1].splitlines()) <= set(a[-1].splitlines())


def case_checkpoint(c: Campaign) -> None:
    f, r = c.fixture, c.rng
    raw, names = mutate(f.checkpoint.encode("utf-8"), r)
    try:
        note = raw.decode("utf-8")
    except UnicodeDecodeError:
        c.stats["checkpoint"].refused += 1  # the CLI refuses it before the library sees it
        return
    ledger = c.ledger
    assert ledger is not None
    try:
        report = verify_ledger(ledger, checkpoint=note, trusted={f.root_key_id})
    except LedgerError:
        c.stats["checkpoint"].refused += 1
        return
    except Exception:
        c.find("checkpoint", "crash", raw, f"{names}\n{traceback.format_exc()}")
        return
    if not report.ok:
        c.stats["checkpoint"].refused += 1
        k = report.problems[0].kind
        c.stats["checkpoint"].kinds[k] = c.stats["checkpoint"].kinds.get(k, 0) + 1
        return
    c.stats["checkpoint"].ok += 1
    if note == f.checkpoint:
        return
    cp, orig = parse_unverified_checkpoint(note), parse_unverified_checkpoint(f.checkpoint)
    same = (cp.origin, cp.size, cp.root) == (orig.origin, orig.size, orig.root)
    if not same or not _only_signature_lines_differ(raw, f.checkpoint.encode()):
        c.find("checkpoint", "false_ok", raw, f"{names}\nok for a changed checkpoint")


CASES: dict[str, Callable[[Campaign], None]] = {
    "export": case_export,
    "sqlite": case_sqlite,
    "import": case_import,
    "proof": case_proof,
    "checkpoint": case_checkpoint,
}


def run(target: str, seconds: float, c: Campaign) -> None:
    c.stats[target] = Stats()
    if target == "import":
        ring = KeyRing(c.fixture.keys)
        c.signers = {RECORDER: ring.load("recorder"), GOVERNOR: ring.load("root")}
    if target == "checkpoint":
        c.ledger = Ledger.open(c.fixture.db)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            c.stats[target].cases += 1
            CASES[target](c)
    finally:
        if c.ledger is not None:
            c.ledger.close()
            c.ledger = None
        shutil.rmtree(c.fixture.dir / "work", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Fuzz govledger's verifiers and importer.")
    ap.add_argument("--seconds", type=float, default=60, help="seconds per target (default 60)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    ap.add_argument("--save", type=Path, help="directory to keep each finding's input in")
    args = ap.parse_args(argv)
    targets = TARGETS if args.target == "all" else (args.target,)
    with tempfile.TemporaryDirectory(prefix="govledger-fuzz-") as tmp:
        base = Path(tmp)
        os.environ["GOVLEDGER_STATE"] = str(base / "state")
        fixture = build_fixture(base, args.seed)
        ledger = Ledger.open(fixture.db)
        try:
            first = verify_ledger(ledger, trusted={fixture.root_key_id}, use_state=True)
        finally:
            ledger.close()
        if not first.ok:
            raise SystemExit(f"fixture does not verify: {first.problems[:3]}")
        c = Campaign(fixture=fixture, rng=random.Random(args.seed), save=args.save)
        for t in targets:
            run(t, args.seconds, c)
            s = c.stats[t]
            print(
                f"{t}: {s.cases} cases, {s.crashes} crashes, {s.false_ok} false oks, "
                f"{s.bad_refusal} bad refusals ({s.ok} ok, {s.refused} refused; first problem "
                f"kinds {dict(sorted(s.kinds.items()))})",
                flush=True,
            )
    total = sum(s.crashes + s.false_ok + s.bad_refusal for s in c.stats.values())
    print(f"total: {sum(s.cases for s in c.stats.values())} cases, {total} findings")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
