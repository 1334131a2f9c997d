"""`govledger export --format jsonl|cloudevents|otlp|aat`: each format checked by an outside
parser or verifier (the CloudEvents SDK, the OTLP protobuf messages, the Agent Audit Trail
reference verifier `aat-verify`), ranges, and `-o` files that appear whole or not at all."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ledger.event.canonical import canonical
from ledger.exchange.export import ExportItem, export_items, format_chunks
from ledger.store import Ledger
from ledger.store.sqlite import Draft
from tests.conftest import ORIGIN, Cli, LedgerKeys, populate

RUNS = 2
TOOLS_PER_RUN = 2  # populate's runs: two tool calls, one llm.usage each


@pytest.fixture
def populated(ledger: Ledger, keys: LedgerKeys, cli: Cli) -> Cli:
    """The `ledger` fixture's log with two complete runs, and a CLI on it."""
    populate(ledger, keys, runs=RUNS)
    return cli


def jsonl(cli: Cli, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cli("export", *args).stdout_bytes.split(b"\n") if line]


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in span["attributes"]:
        ((kind, value),) = a["value"].items()
        out[a["key"]] = int(value) if kind == "intValue" else value
    return out


# --- jsonl -------------------------------------------------------------------------------------


def test_export_format_defaults_to_jsonl(populated: Cli) -> None:
    plain = populated("export").stdout_bytes
    assert populated("export", "--format", "jsonl").stdout_bytes == plain
    assert plain.startswith(b'{"actor":null,"agent":null,"hash":')


def test_export_rejects_an_unknown_format(populated: Cli) -> None:
    result = populated("export", "--format", "xml", ok=False)
    assert result.exit_code == 2
    assert "Invalid value for '--format'" in result.stderr
    assert "'jsonl', 'cloudevents', 'otlp', 'aat'" in result.stderr


# --- cloudevents -------------------------------------------------------------------------------


def test_cloudevents_batch_parses_event_by_event_with_the_sdk(populated: Cli) -> None:
    events = jsonl(populated)
    batch = json.loads(populated("export", "--format", "cloudevents").stdout)
    assert isinstance(batch, list) and len(batch) == len(events)
    fmt = JSONFormat()
    for item, event in zip(batch, events, strict=True):
        ce = fmt.read(CloudEvent, json.dumps(item))
        assert ce.get_specversion() == "1.0"
        assert ce.get_id() == event["id"]
        assert ce.get_type() == f"dev.govledger.{event['type']}"
        assert ce.get_source() == f"govledger:{ORIGIN}"
        assert ce.get_subject() == event["run"]
        assert ce.get_datacontenttype() == "application/json"
        assert item["time"] == event["ts"]
        assert ce.get_data() == event


def test_cloudevents_omit_subject_for_events_without_a_run(populated: Cli) -> None:
    batch = json.loads(populated("export", "--format", "cloudevents").stdout)
    assert "subject" not in batch[0]  # ledger.created
    assert any(item.get("subject") == "run-0" for item in batch)


def test_cloudevents_data_unwraps_to_a_file_verify_accepts(populated: Cli, tmp_path: Path) -> None:
    out = tmp_path / "events.json"
    populated("export", "--format", "cloudevents", "-o", str(out))
    batch = json.loads(out.read_bytes())
    unwrapped = tmp_path / "unwrapped.jsonl"
    unwrapped.write_bytes(b"".join(canonical(item["data"]) + b"\n" for item in batch))
    assert unwrapped.read_bytes() == populated("export").stdout_bytes
    report = populated.json("verify", "--file", str(unwrapped))
    assert report["ok"] is True and report["events"] == len(batch)


def test_cloudevents_range_and_empty_range(populated: Cli) -> None:
    batch = json.loads(
        populated("export", "--format", "cloudevents", "--from", "3", "--to", "5").stdout
    )
    assert [item["data"]["seq"] for item in batch] == [3, 4, 5]
    size = len(jsonl(populated))
    empty = populated("export", "--format", "cloudevents", "--from", str(size + 1)).stdout
    assert json.loads(empty) == []


# --- otlp --------------------------------------------------------------------------------------


def otlp(cli: Cli, *args: str) -> dict[str, Any]:
    text = cli("export", "--format", "otlp", *args).stdout
    assert text.endswith("\n") and text.count("\n") == 1  # one request per line
    doc: dict[str, Any] = json.loads(text)
    return doc


def spans_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    (rs,) = doc["resourceSpans"]
    (ss,) = rs["scopeSpans"]
    spans: list[dict[str, Any]] = ss["spans"]
    return spans


def as_proto_json(doc: dict[str, Any]) -> dict[str, Any]:
    """OTLP/JSON writes ids in hex where the plain protobuf JSON mapping wants base64."""
    copy = json.loads(json.dumps(doc))
    for span in spans_of(copy):
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return copy


def test_otlp_export_parses_as_an_export_trace_service_request(populated: Cli) -> None:
    doc = otlp(populated)
    request = json_format.Parse(json.dumps(as_proto_json(doc)), ExportTraceServiceRequest())
    spans = request.resource_spans[0].scope_spans[0].spans
    assert len(spans) == RUNS * (1 + TOOLS_PER_RUN + 1)
    for parsed, raw in zip(spans, spans_of(doc), strict=True):
        assert parsed.trace_id.hex() == raw["traceId"] and len(parsed.trace_id) == 16
        assert parsed.span_id.hex() == raw["spanId"] and len(parsed.span_id) == 8
        assert parsed.start_time_unix_nano <= parsed.end_time_unix_nano
        assert str(parsed.end_time_unix_nano) == raw["endTimeUnixNano"]
    resource = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert resource == {"service.name": "govledger", "govledger.origin": ORIGIN}


def test_otlp_spans_follow_the_genai_conventions(populated: Cli) -> None:
    events = {e["seq"]: e for e in jsonl(populated)}
    spans = spans_of(otlp(populated))
    for span in spans:
        a = attrs(span)
        assert events[a["govledger.seq"]]["hash"] == a["govledger.hash"]
    runs = [s for s in spans if attrs(s)["gen_ai.operation.name"] == "invoke_agent"]
    tools = [s for s in spans if attrs(s)["gen_ai.operation.name"] == "execute_tool"]
    chats = [s for s in spans if attrs(s)["gen_ai.operation.name"] == "chat"]
    assert len(runs) == RUNS and len(tools) == RUNS * TOOLS_PER_RUN and len(chats) == RUNS
    run0 = next(s for s in runs if attrs(s)["govledger.run"] == "run-0")
    assert run0["name"] == "invoke_agent planner-1" and "parentSpanId" not in run0
    assert attrs(run0)["gen_ai.agent.name"] == attrs(run0)["gen_ai.agent.id"] == "planner-1"
    assert run0["status"] == {"code": 1}
    assert events[attrs(run0)["govledger.seq"]]["type"] == "run.submitted"
    children = [s for s in spans if s.get("parentSpanId") == run0["spanId"]]
    assert {s["traceId"] for s in children} == {run0["traceId"]}
    assert sorted(s["name"] for s in children) == [
        "chat m-1",
        "execute_tool tool.0",
        "execute_tool tool.1",
    ]
    tool = next(s for s in children if s["name"] == "execute_tool tool.0")
    assert attrs(tool)["gen_ai.tool.name"] == "tool.0" and tool["status"] == {"code": 1}
    called = events[attrs(tool)["govledger.call_seq"]]
    assert called["type"] == "tool.called"
    assert events[attrs(tool)["govledger.seq"]]["type"] == "tool.completed"
    chat = next(s for s in children if s["kind"] == 3)
    a = attrs(chat)
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "anthropic"
    assert a["gen_ai.request.model"] == "m-1"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (100, 20)
    assert int(chat["endTimeUnixNano"]) - int(chat["startTimeUnixNano"]) == 800 * 10**6


def test_otlp_ids_are_derived_from_run_and_event_ids(populated: Cli) -> None:
    first = otlp(populated)
    assert otlp(populated) == first
    events = {e["seq"]: e for e in jsonl(populated)}
    for span in spans_of(first):
        a = attrs(span)
        if "govledger.run" in a:
            run = a["govledger.run"]
            assert (
                span["spanId"] == hashlib.sha256(f"govledger/run\n{run}".encode()).hexdigest()[:16]
            )
        else:
            event_id = events[a["govledger.seq"]]["id"]
            want = hashlib.sha256(f"govledger/span\n{event_id}".encode()).hexdigest()[:16]
            assert span["spanId"] == want
            run = events[a["govledger.seq"]]["run"]
        assert (
            span["traceId"] == hashlib.sha256(f"govledger/trace\n{run}".encode()).hexdigest()[:32]
        )


def test_otlp_run_cut_by_the_range_still_gets_its_span(populated: Cli) -> None:
    events = jsonl(populated)
    started = next(e["seq"] for e in events if e["type"] == "run.started" and e["run"] == "run-0")
    spans = spans_of(otlp(populated, "--to", str(started + 2)))
    (run,) = [s for s in spans if attrs(s)["gen_ai.operation.name"] == "invoke_agent"]
    assert "status" not in run and "govledger.end_seq" not in attrs(run)
    (tool,) = [s for s in spans if attrs(s)["gen_ai.operation.name"] == "execute_tool"]
    assert tool["parentSpanId"] == run["spanId"]


# --- aat ---------------------------------------------------------------------------------------


def aat_verify(trail: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    keys = tmp_path / "aat-keys.json"
    keys.write_text("{}")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "aat_verify.cli",
            str(trail),
            "--keys",
            str(keys),
            "--color",
            "never",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_aat_export_passes_the_reference_verifier(populated: Cli, tmp_path: Path) -> None:
    trail = tmp_path / "trail.jsonl"
    populated("export", "--format", "aat", "-o", str(trail))
    result = aat_verify(trail, tmp_path)
    assert result.returncode == 0, result.stdout
    assert "[ PASS ]  Hash-chain integrity" in result.stdout
    assert "VERIFIED" in result.stdout


def test_aat_reference_verifier_rejects_one_changed_byte(populated: Cli, tmp_path: Path) -> None:
    trail = tmp_path / "trail.jsonl"
    populated("export", "--format", "aat", "-o", str(trail))
    lines = trail.read_bytes().split(b"\n")
    at = lines[3].index(b'"hash":"') + len(b'"hash":"')
    line = bytearray(lines[3])
    line[at] = ord("0") if line[at] != ord("0") else ord("1")
    lines[3] = bytes(line)
    trail.write_bytes(b"\n".join(lines))
    result = aat_verify(trail, tmp_path)
    assert result.returncode == 1
    assert "[ FAIL ]  Hash-chain integrity" in result.stdout


def test_aat_records_carry_seq_hash_and_the_drafts_fields(populated: Cli) -> None:
    events = jsonl(populated)
    raw = populated("export", "--format", "aat").stdout_bytes.split(b"\n")[:-1]
    records = [json.loads(line) for line in raw]
    assert len(records) == len(events)
    prev = None
    for line, record, event in zip(raw, records, events, strict=True):
        assert canonical(record) == line
        assert record["prev_hash"] == prev
        prev = hashlib.sha256(line).hexdigest()
        assert record["govledger"]["seq"] == event["seq"]
        assert record["govledger"]["hash"] == event["hash"]
        assert record["record_id"] == event["id"] and record["timestamp"] == event["ts"]
        assert record["action_detail"] == {"event_type": event["type"], "payload": event["payload"]}
        assert record["outcome"] in {"success", "failure", "timeout", "denied", "escalated"}
        assert record["trust_level"] in range(5)
    by_id = {r["record_id"]: r for r in records}
    completed = next(r for r in records if r["action_detail"]["event_type"] == "tool.completed")
    assert completed["action_type"] == "tool_call"
    assert by_id[completed["parent_record_id"]]["action_detail"]["event_type"] == "tool.called"
    assert completed["session_id"] == "run-0" and completed["agent_id"] == "planner-1"
    assert completed["agent_version"] == "1"
    assert records[0]["agent_id"] == records[0]["session_id"] == f"govledger:{ORIGIN}"


# --- -o ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "cloudevents", "otlp", "aat"])
def test_export_file_equals_stdout(populated: Cli, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    result = populated("export", "--format", fmt, "-o", str(out))
    assert result.stderr == f"exported {len(jsonl(populated))} events to {out}\n"
    assert out.read_bytes() == populated("export", "--format", fmt).stdout_bytes
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []


@pytest.mark.parametrize("fmt", ["otlp", "aat"])
def test_export_error_leaves_no_file_behind(populated: Cli, tmp_path: Path, fmt: str) -> None:
    (seq,) = [e["seq"] for e in jsonl(populated) if e["type"] == "tool.called"][:1]
    conn = sqlite3.connect(populated.db, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET payload = '[1' WHERE seq = ?", (seq,))
    conn.close()
    out = tmp_path / "out.json"
    out.write_bytes(b"the previous export\n")
    result = populated("export", "--format", fmt, "-o", str(out), ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: seq {seq}: stored payload is not JSON (")
    assert result.stderr.rstrip().endswith("; run `govledger verify`")
    assert out.read_bytes() == b"the previous export\n"
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_export_to_a_missing_directory_is_a_usage_error(populated: Cli, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "out.json"
    result = populated("export", "--format", "cloudevents", "-o", str(out), ok=False)
    assert result.exit_code == 2
    assert result.stderr == f"error: -o: cannot write {out}: No such file or directory\n"


# --- failures, run-less events, stored text that is not UTF-8 ----------------------------------


@pytest.fixture
def failing(ledger: Ledger, keys: LedgerKeys, cli: Cli) -> Cli:
    """A run whose tool call fails and that fails on a model timeout; a model call without a
    run; a decision to escalate."""
    populate(ledger, keys, runs=0)
    ar = {"agent": "planner-1", "run": "run-f"}
    usage = {
        "provider": "openai",
        "model": "m-2",
        "tokens_in": 7,
        "tokens_out": 3,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_micro_usd": 10,
        "wallclock_ms": 50,
    }
    ledger.append_many(
        [
            Draft("run.started", {}, **ar),
            Draft(
                "tool.called", {"tool": "t", "args_digest": "0" * 64, "side_effect": "write"}, **ar
            ),
            Draft(
                "tool.completed",
                {"tool": "t", "status": "error", "duration_ms": 5, "failure_class": "tool_error"},
                **ar,
            ),
            Draft(
                "decision.recorded",
                {"decision": "ESCALATE", "confidence_bp": 4000, "rationale": "unsure"},
                **ar,
            ),
            Draft("run.failed", {"failure_class": "llm_timeout", "message": "slow"}, **ar),
            Draft("llm.usage", usage, agent="planner-1"),
        ],
        signer=keys.recorder,
    )
    return cli


def test_otlp_marks_failures_and_gives_a_runless_model_call_its_own_trace(failing: Cli) -> None:
    events = {e["seq"]: e for e in jsonl(failing)}
    spans = spans_of(otlp(failing))
    by_op = {attrs(s)["gen_ai.operation.name"]: s for s in spans}
    assert by_op["invoke_agent"]["status"] == {"code": 2, "message": "llm_timeout"}
    assert events[attrs(by_op["invoke_agent"])["govledger.end_seq"]]["type"] == "run.failed"
    assert by_op["execute_tool"]["status"] == {"code": 2, "message": "tool_error"}
    chat = by_op["chat"]
    assert "parentSpanId" not in chat
    event_id = events[attrs(chat)["govledger.seq"]]["id"]
    want = hashlib.sha256(f"govledger/trace-event\n{event_id}".encode()).hexdigest()[:32]
    assert chat["traceId"] == want != by_op["invoke_agent"]["traceId"]
    json_format.Parse(json.dumps(as_proto_json(otlp(failing))), ExportTraceServiceRequest())


def test_aat_outcomes_of_failures_escalations_and_timeouts(failing: Cli, tmp_path: Path) -> None:
    raw = failing("export", "--format", "aat").stdout_bytes
    records = [json.loads(line) for line in raw.split(b"\n") if line]
    outcomes = {r["action_detail"]["event_type"]: r["outcome"] for r in records}
    assert outcomes["tool.completed"] == "failure"
    assert outcomes["decision.recorded"] == "escalated"
    assert outcomes["run.failed"] == "timeout"
    assert outcomes["run.started"] == "success"
    runless = next(r for r in records if r["action_detail"]["event_type"] == "llm.usage")
    assert runless["session_id"] == f"govledger:{ORIGIN}" and runless["parent_record_id"] is None
    trail = tmp_path / "trail.jsonl"
    trail.write_bytes(raw)
    assert aat_verify(trail, tmp_path).returncode == 0


@pytest.mark.parametrize("fmt", ["cloudevents", "otlp", "aat"])
def test_stored_text_that_is_not_utf8_fails_naming_the_seq(populated: Cli, fmt: str) -> None:
    (seq,) = [e["seq"] for e in jsonl(populated) if e["type"] == "run.started"][:1]
    conn = sqlite3.connect(populated.db, isolation_level=None)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET run = CAST(X'ff6f7073' AS TEXT) WHERE seq = ?", (seq,))
    conn.close()
    result = populated("export", "--format", fmt, ok=False)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: seq {seq}: stored text cannot be exported (")
    assert result.stderr.endswith("; run `govledger verify`\n")


# --- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "cloudevents", "otlp", "aat"])
def test_formats_write_while_reading(ledger: Ledger, keys: LedgerKeys, fmt: str) -> None:
    """No format reads the whole log before writing: the opening of a one-document format comes
    before any event is read, and output follows input event by event (a span when it ends)."""
    populate(ledger, keys, runs=3)
    read = 0

    def items() -> Iterator[ExportItem]:
        nonlocal read
        for item in export_items(ledger):
            read += 1
            yield item

    chunks = format_chunks(fmt, items(), origin=ORIGIN)
    if fmt in ("cloudevents", "otlp"):
        assert next(chunks).startswith((b"[", b'{"resourceSpans":[')) and read == 0
    next(chunks)
    assert 0 < read < ledger.size
