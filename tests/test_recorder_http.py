"""``Recorder.connect``: drafts posted to ``POST /v1/events`` (SPEC §7) and the service's
answers turned into the library's errors. The service here is a minimal stand-in written for
the test (the wire contract of §7 over a real ledger and a real key), not the project's own."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ledger import Recorder
from ledger.crypto.keyfiles import Signer
from ledger.errors import (
    DuplicateEventId,
    EventValidationError,
    InputError,
    LedgerError,
    StoreError,
    UnauthorizedWrite,
)
from ledger.store.base import EventFilter
from ledger.store.sqlite import Draft, Ledger
from tests.conftest import LedgerKeys
from tests.test_recorder import AGENT, contract

TOKEN = "tok-123"


def serve(ledger: Ledger, signer: Signer) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.answer(401, {"error": {"kind": "unauthorized", "detail": "unknown token"}})
                return
            drafts = [Draft(d["type"], d["payload"], d.get("agent"), d.get("run"),
                            d.get("actor"), d.get("id")) for d in body]  # fmt: skip
            try:
                events = ledger.append_many(drafts, signer=signer)
            except DuplicateEventId as e:
                self.answer(409, {"error": {"kind": "duplicate", "detail": e.message}})
                return
            except LedgerError as e:
                self.answer(422, {"error": {"kind": "refused", "detail": e.message}})
                return
            self.answer(201, [{"seq": e.seq, "id": e.id, "ts": e.ts, "hash": e.hash}
                              for e in events])  # fmt: skip

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def url(ledger: Ledger, keys: LedgerKeys) -> Iterator[str]:
    ledger.append(Draft("agent.registered", contract(2), agent=AGENT), signer=keys.root)
    server = serve(ledger, keys.recorder)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_run_recorded_through_the_service(url: str, ledger: Ledger) -> None:
    with Recorder.connect(url, token=TOKEN) as rec, rec.run(agent=AGENT, objective="o",
                                                           run="r-http") as run:  # fmt: skip
        call = run.tool_called("search", {"q": 1}, "read")
        assert call.seq == ledger.size
        run.tool_completed(call, "ok", 3)
    got = [e.type for e in ledger.iter_events(filter=EventFilter(run="r-http"))]
    assert got == ["run.submitted", "run.started", "tool.called", "tool.completed", "run.completed"]


def test_service_refusals_become_library_errors(url: str) -> None:
    rec = Recorder.connect(url, token=TOKEN, on_error="closed")
    with rec.run(agent=AGENT, objective="o", run="r-bad") as run:
        with pytest.raises(EventValidationError) as e:
            run.decision("MAYBE", 1, "?")
        assert e.value.message.startswith("event: payload.decision: ")
    bad = Recorder.connect(url, token="wrong", on_error="closed")
    with pytest.raises(UnauthorizedWrite, match="unknown token"):
        bad.run(agent=AGENT, objective="o").begin()


def test_duplicate_id_answer_is_duplicate_event_id(url: str, ledger: Ledger) -> None:
    rec = Recorder.connect(url, token=TOKEN)
    draft = Draft("x.note", {"n": 1}, agent=AGENT, id="once")
    rec.record([draft])
    with pytest.raises(DuplicateEventId, match="once"):
        rec.record([draft], side_effect="write")


def test_unreachable_service_is_an_environment_error(tmp_path: Path) -> None:
    rec = Recorder.connect("http://127.0.0.1:9", token=TOKEN, timeout=2)
    with pytest.raises(StoreError) as e:
        rec.record([Draft("x.note", {}, agent=AGENT)], side_effect="write")
    assert e.value.message.startswith("service at http://127.0.0.1:9: unreachable (")
    assert e.value.exit_code == 3


@pytest.mark.parametrize(
    ("url", "token", "message"),
    [
        ("ftp://h", TOKEN, "service url 'ftp://h': expected http:// or https://"),
        ("http://h", "", "service token: empty"),
    ],
)
def test_connect_refuses_a_bad_url_or_token(url: str, token: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        Recorder.connect(url, token=token)
    assert e.value.message == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "decision: expected allowed and reason, found []"),
        ({"allowed": 1, "reason": "r"}, "decision: wrong field types in {'allowed': 1, 'reason': 'r'}"),
        ({"allowed": False, "reason": "r", "guardrail_seq": True},
         "decision: wrong field types in {'allowed': False, 'reason': 'r', 'guardrail_seq': True}"),
    ],
    ids=["not-an-object", "allowed-not-a-bool", "seq-a-bool"],
)  # fmt: skip
def test_a_decision_from_json_is_checked(value: Any, message: str) -> None:
    from ledger.recording import Decision

    with pytest.raises(InputError) as e:
        Decision.from_json(value)
    assert e.value.message == message


def test_decision_and_lesson_round_trip_through_json() -> None:
    from ledger.recording import Decision, Lesson

    d = Decision(False, "no", "forbidden_action", 7)
    assert Decision.from_json(json.loads(json.dumps(d.as_json()))) == d
    lesson = Lesson("a", "n", 3, ("x", "y"), (4, 5), 4, 9, 6, None)
    assert Lesson.from_json(json.loads(json.dumps(lesson.as_json()))) == lesson
    with pytest.raises(InputError) as e:
        Lesson.from_json({"agent": "a"})
    assert e.value.message == "lesson: expected the fields of a lesson, found {'agent': 'a'}"
