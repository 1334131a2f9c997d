"""Times inside payloads have one spelling per instant: the ``ts`` form, like ``ts`` itself.

The writer accepts any RFC 3339 time with an offset and stores its ``ts`` form before signing;
anything else is refused naming the field; verify calls a stored time in another spelling
``malformed``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.crypto.keyfiles import KeyRing
from ledger.crypto.signing import event_hash
from ledger.errors import EventValidationError
from ledger.event.body import body_bytes
from ledger.event.canonical import canonical
from ledger.event.catalog import TIME_FIELDS, ts_form
from ledger.event.drafts import Draft, prepare
from ledger.sample import generate_drafts
from tests.conftest import Cli, digest, sign

TS = "2030-01-06T08:15:02.000000Z"
SPELLINGS = {
    "z": "2030-01-06T08:15:02Z",
    "ts-form": TS,
    "utc-offset": "2030-01-06T08:15:02+00:00",
    "other-offset": "2030-01-06T10:15:02+02:00",
    "negative-offset": "2030-01-06T03:45:02.000-04:30",
    "three-digits": "2030-01-06T08:15:02.000Z",
    "lowercase": "2030-01-06t08:15:02z",
}


def _approve(cli: Cli, expires_at: object, *, ok: bool = True) -> object:
    payload = {"approver": "alice", "mode": "human", "plan_digest": digest("p")}
    payload["expires_at"] = expires_at  # type: ignore[assignment]
    return cli(
        "append", "run.approved", "--signer", "root", "--agent", "a1", "--run", "r1",
        "--payload", json.dumps(payload), ok=ok,
    )  # fmt: skip


def _stored(cli: Cli, seq: int) -> dict[str, object]:
    event = json.loads(cli("log", "--from", str(seq), "--json").stdout.splitlines()[0])
    assert event["seq"] == seq
    return event["payload"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("spelling", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_any_spelling_of_an_instant_is_stored_in_the_ts_form(cli: Cli, spelling: str) -> None:
    cli("init", "--origin", "test.example/log")
    _approve(cli, spelling)
    assert _stored(cli, 2)["expires_at"] == TS
    assert cli.json("verify")["ok"] is True


def test_a_grant_expiry_is_stored_in_the_ts_form(cli: Cli) -> None:
    cli("init", "--origin", "test.example/log")
    payload = {
        "tools": ["t"], "capabilities": [], "expires_at": "2030-01-06T09:15:02.5+01:00",
        "token_digest": digest("tok"),
    }  # fmt: skip
    cli("append", "capability.granted", "--signer", "root", "--agent", "a1", "--run", "r1",
        "--payload", json.dumps(payload))  # fmt: skip
    assert _stored(cli, 2)["expires_at"] == "2030-01-06T08:15:02.500000Z"


REFUSED = {
    "no-offset": ("2030-01-06T08:15:02", "'2030-01-06T08:15:02' has no UTC offset; add Z for UTC"),
    "impossible-month": (
        "2030-13-06T08:15:02Z",
        "'2030-13-06T08:15:02Z' is not a real instant (month must be in 1..12)",
    ),
    "february-30": (
        "2030-02-30T08:15:02Z",
        "'2030-02-30T08:15:02Z' is not a real instant (day is out of range for month)",
    ),
    "basic-format": (
        "20300106T081502Z",
        "'20300106T081502Z' is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.ffffff] and Z or an "
        "offset)",
    ),
    "date-only": (
        "2030-01-06",
        "'2030-01-06' is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.ffffff] and Z or an offset)",
    ),
    "offset-minute-60": (
        "2000-01-01T00:00:00.0+00:60",
        "'2000-01-01T00:00:00.0+00:60' is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.ffffff] and Z "
        "or an offset)",
    ),
    "nanoseconds": (
        "2030-01-06T08:15:02.123456789Z",
        "'2030-01-06T08:15:02.123456789Z' is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.ffffff] "
        "and Z or an offset)",
    ),
}


@pytest.mark.parametrize(("value", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_a_time_that_is_not_an_rfc3339_instant_is_refused_naming_the_field(
    cli: Cli, value: str, message: str
) -> None:
    cli("init", "--origin", "test.example/log")
    result = _approve(cli, value, ok=False)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.stderr == f"error: event: payload.expires_at: {message}\n"  # type: ignore[attr-defined]
    assert cli.json("verify")["events"] == 1


def test_a_time_that_is_not_a_string_is_refused(cli: Cli) -> None:
    cli("init", "--origin", "test.example/log")
    result = _approve(cli, 1893917702, ok=False)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "payload.expires_at: Input should be a valid string" in result.stderr  # type: ignore[attr-defined]


def test_every_time_field_of_the_catalog_is_known() -> None:
    assert TIME_FIELDS == {"run.approved": ("expires_at",), "capability.granted": ("expires_at",)}


def test_the_generator_writes_payload_times_in_the_ts_form() -> None:
    times = [
        d.payload[name]
        for _, d in generate_drafts(2_000, n_agents=3, seed=7)
        for name in TIME_FIELDS.get(d.type, ())
        if d.payload.get(name) is not None
    ]
    assert times
    assert all(ts_form(t) == t for t in times)


def test_the_demo_stores_payload_times_in_the_ts_form(cli: Cli) -> None:
    cli("demo")
    times = [
        e["payload"][name]
        for e in cli.json_lines("log")
        for name in TIME_FIELDS.get(e["type"], ())
        if e["payload"].get(name) is not None
    ]
    assert times
    assert all(ts_form(t) == t for t in times)


def _export_with_last_payload(cli: Cli, tmp_path: Path, payload: dict[str, object]) -> Path:
    """The ledger's export, its last event given ``payload`` and re-signed by ``root``: a
    correctly hashed and signed event the writer would not have written."""
    lines = cli("export").stdout.splitlines()
    last = json.loads(lines[-1])
    last["payload"] = payload
    text = canonical(payload).decode()
    fields = {
        k: last[k] for k in ("seq", "id", "ts", "type", "agent", "run", "actor", "prev", "key")
    }
    h = event_hash(body_bytes(payload=text, **fields))
    last["hash"] = h.hex()
    last["sig"] = sign(KeyRing(cli.keys).load("root"), h)
    out = tmp_path / "edited.jsonl"
    out.write_text("\n".join([*lines[:-1], canonical(last).decode()]) + "\n")
    return out


def test_verify_calls_a_stored_time_in_another_spelling_malformed(cli: Cli, tmp_path: Path) -> None:
    cli("init", "--origin", "test.example/log")
    _approve(cli, TS)
    good = _export_with_last_payload(cli, tmp_path, _stored(cli, 2))
    assert cli.json("verify", "--file", str(good))["ok"] is True
    payload = {**_stored(cli, 2), "expires_at": "2030-01-06T08:15:02Z"}
    bad = _export_with_last_payload(cli, tmp_path, payload)
    report = cli("verify", "--file", str(bad), "--json", ok=False)
    assert report.exit_code == 1
    problems = json.loads(report.stdout)["problems"]
    assert [(p["seq"], p["kind"], p["detail"]) for p in problems] == [
        (
            2,
            "malformed",
            "payload.expires_at: '2030-01-06T08:15:02Z' is not in the stored form "
            "'2030-01-06T08:15:02.000000Z' (UTC, six fractional digits, Z)",
        )
    ]


# --- properties -----------------------------------------------------------------------------

_instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
_offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)


def _spell(instant: datetime, offset_min: int, digits: int, zulu: bool) -> str:
    local = instant.astimezone(timezone(timedelta(minutes=offset_min)))
    text = local.replace(tzinfo=None, microsecond=0).isoformat()
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits]
    if zulu and offset_min == 0:
        return text + "Z"
    sign_ = "-" if offset_min < 0 else "+"
    return text + f"{sign_}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"


def _stored_payload(expires_at: object) -> dict[str, object]:
    draft = Draft(
        "run.approved",
        {"approver": "a", "mode": "auto", "plan_digest": digest("p"), "expires_at": expires_at},
        agent="a1",
        run="r1",
    )
    return json.loads(prepare(draft).payload_text or "")  # type: ignore[no-any-return]


@given(_instants, _offsets, _offsets, st.booleans())
def test_every_spelling_of_an_instant_is_stored_as_the_same_bytes(
    instant: datetime, offset_a: int, offset_b: int, zulu: bool
) -> None:
    instant = instant.replace(microsecond=instant.microsecond // 1000 * 1000)  # 3 digits exact
    a = _stored_payload(_spell(instant, offset_a, 6, zulu))
    b = _stored_payload(_spell(instant, offset_b, 3, not zulu))
    assert a == b
    assert a["expires_at"] == instant.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


_RFC3339 = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})[Tt](?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):"
    r"(?P<s>[0-9]{2})(?P<f>\.[0-9]{1,6})?(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))"
)


def _reference(text: str) -> str | None:
    """The ``ts`` form of ``text`` by RFC 3339's grammar (section 5.6, at most six fractional
    digits) and the calendar, written out independently of the library; None when refused."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    g = {k: int(v) for k, v in m.groupdict().items() if v and k not in ("f", "z", "sign")}
    if g.get("oh", 0) > 23 or g.get("om", 0) > 59:
        return None
    micro = int((m["f"] or ".")[1:].ljust(6, "0"))
    try:
        local = datetime(g["y"], g["mo"], g["d"], g["h"], g["mi"], g["s"], micro)
        offset = timedelta(hours=g.get("oh", 0), minutes=g.get("om", 0))
        utc = local - offset if m["sign"] != "-" else local + offset
    except (ValueError, OverflowError):
        return None
    return utc.isoformat(timespec="microseconds") + "Z"


def _mutants() -> st.SearchStrategy[str]:
    """Valid spellings with one character replaced, deleted or inserted: near misses."""
    valid = st.builds(_spell, _instants, _offsets, st.integers(0, 6), st.booleans())
    chars = st.sampled_from("0123456789-+:.TZtz 9")

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        text = draw(valid)
        i = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(("replace", "delete", "insert")))
        c = draw(chars)
        if how == "insert" or i == len(text):
            return text[:i] + c + text[i:]
        if how == "delete":
            return text[:i] + text[i + 1 :]
        return text[:i] + c + text[i + 1 :]

    return mutate()


@given(_mutants())
def test_a_string_is_accepted_exactly_when_it_is_an_rfc3339_instant(text: str) -> None:
    expected = _reference(text)
    try:
        stored = _stored_payload(text)["expires_at"]
    except EventValidationError:
        assert expected is None, text
        return
    assert stored == expected, text
