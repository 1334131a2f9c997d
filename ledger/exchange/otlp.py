"""Export as OTLP/JSON traces: one ``ExportTraceServiceRequest`` (OpenTelemetry protocol,
JSON encoding: ids in hex, times as decimal ``unixNano`` strings, enums as integers) whose spans
follow the OpenTelemetry GenAI semantic conventions (docs/exports.md).

The mapping, written as the log is read (constant memory: only open runs and open tool calls
are held, never the log):

- a run is a trace; its ``invoke_agent <agent>`` span runs from the run's first event in the
  export to its ``run.completed`` / ``run.failed`` / ``run.cancelled`` (or to the run's last
  event in the export, when it has not ended there);
- ``tool.called`` → ``tool.completed`` is an ``execute_tool <tool>`` child span (calls of the
  same tool in the same run pair first in, first out; a completion without its call in the
  export starts ``duration_ms`` before it);
- ``llm.usage`` is a ``chat <model>`` span ending at the event and starting ``wallclock_ms``
  before it; without a run it is the root span of a trace of its own;
- other events of a run are not spans, and events without a run other than ``llm.usage``
  (keys, policy, agents, tiers) are not exported: this is a trace view, the JSON Lines and
  CloudEvents exports are the complete, verifiable copies.

Every span carries ``govledger.seq`` and ``govledger.hash`` (the run span: of the run's first
event). Ids are derived, so exporting twice gives the same ids: trace id = the first 16 bytes of
SHA-256(``govledger/trace\\n`` ‖ run), span id = the first 8 bytes of SHA-256(``govledger/span\\n``
‖ event id) (run span: of ``govledger/run\\n`` ‖ run; a run-less ``llm.usage``'s trace: of
``govledger/trace-event\\n`` ‖ event id).
"""

from __future__ import annotations

import calendar
import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ledger.errors import VerificationError
from ledger.exchange.rows import ExportItem, Row, stored_payload, unencodable

KIND_INTERNAL = 1
KIND_CLIENT = 3
STATUS_OK = 1
STATUS_ERROR = 2
RUN_END = {"run.completed", "run.failed", "run.cancelled"}
SCOPE = {"name": "govledger", "version": "1"}


def _id(label: str, value: str, size: int) -> str:
    return hashlib.sha256(f"govledger/{label}\n{value}".encode()).digest()[:size].hex()


def trace_id(run: str) -> str:
    """The trace id of a run: 16 bytes, lowercase hex."""
    return _id("trace", run, 16)


def run_span_id(run: str) -> str:
    """The span id of a run's ``invoke_agent`` span: 8 bytes, lowercase hex."""
    return _id("run", run, 8)


def event_span_id(event_id: str) -> str:
    """The span id of the span an event closes: 8 bytes, lowercase hex."""
    return _id("span", event_id, 8)


def unix_nano(ts: str) -> int:
    """An event's ``ts`` (RFC 3339, UTC, microseconds) as nanoseconds since the Unix epoch."""
    t = datetime.fromisoformat(ts)
    return (calendar.timegm(t.utctimetuple()) * 1_000_000 + t.microsecond) * 1000


def _nano(row: Row, ts: str | None = None) -> int:
    """``unix_nano`` of a row's ``ts`` (or ``ts``), a stored time that does not parse being an
    integrity failure naming the seq."""
    text = row[2] if ts is None else ts
    try:
        return unix_nano(text)
    except (TypeError, ValueError) as e:
        raise VerificationError(
            f"seq {row[0]}: ts {text!r} is not an RFC 3339 time; run `govledger verify`"
        ) from e


def _attr(key: str, value: str | int | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _ledger_attrs(row: Row) -> list[dict[str, Any]]:
    return [_attr("govledger.seq", row[0]), _attr("govledger.hash", row[10])]


def _ms(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    return value if type(value) is int and value >= 0 else 0


@dataclass
class _Run:
    """A run whose span is not written yet."""

    first: Row
    agent: str | None
    last_ts: str
    open_tools: dict[str, deque[Row]] = field(default_factory=dict)


def _span(
    *,
    trace: str,
    span: str,
    parent: str | None,
    name: str,
    kind: int,
    start: int,
    end: int,
    attributes: list[dict[str, Any]],
    status: tuple[int, str] | None = None,
) -> bytes:
    obj: dict[str, Any] = {"traceId": trace, "spanId": span}
    if parent is not None:
        obj["parentSpanId"] = parent
    obj.update(
        {
            "name": name,
            "kind": kind,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(max(start, end)),
            "attributes": attributes,
        }
    )
    if status is not None:
        code, message = status
        obj["status"] = {"code": code, "message": message} if message else {"code": code}
    return orjson.dumps(obj)


def _run_span(run: str, state: _Run, end_row: Row | None) -> bytes:
    agent = state.agent or ""
    attrs = [
        _attr("gen_ai.operation.name", "invoke_agent"),
        _attr("gen_ai.agent.name", agent),
        _attr("gen_ai.agent.id", agent),
        _attr("govledger.run", run),
        *_ledger_attrs(state.first),
    ]
    status: tuple[int, str] | None = None
    if end_row is not None:
        attrs.append(_attr("govledger.end_seq", end_row[0]))
        if end_row[3] == "run.completed":
            status = (STATUS_OK, "")
        else:
            p = stored_payload(end_row)
            reason = p.get("failure_class") if end_row[3] == "run.failed" else "cancelled"
            status = (STATUS_ERROR, str(reason))
    return _span(
        trace=trace_id(run),
        span=run_span_id(run),
        parent=None,
        name=f"invoke_agent {agent}".rstrip(),
        kind=KIND_INTERNAL,
        start=_nano(state.first),
        end=_nano(end_row) if end_row is not None else _nano(state.first, state.last_ts),
        attributes=attrs,
        status=status,
    )


def _tool_span(run: str, called: Row | None, done: Row, payload: dict[str, Any]) -> bytes:
    tool = str(payload.get("tool", ""))
    end = _nano(done)
    start = _nano(called) if called is not None else end - _ms(payload, "duration_ms") * 10**6
    ok = payload.get("status") == "ok"
    attrs = [
        _attr("gen_ai.operation.name", "execute_tool"),
        _attr("gen_ai.tool.name", tool),
        _attr("govledger.tool.status", str(payload.get("status", ""))),
        *_ledger_attrs(done),
    ]
    if called is not None:
        attrs.append(_attr("govledger.call_seq", called[0]))
    if "side_effect" in payload:
        attrs.append(_attr("govledger.tool.side_effect", str(payload["side_effect"])))
    failure = payload.get("failure_class")
    return _span(
        trace=trace_id(run),
        span=event_span_id(done[1]),
        parent=run_span_id(run),
        name=f"execute_tool {tool}",
        kind=KIND_INTERNAL,
        start=start,
        end=end,
        attributes=attrs,
        status=(STATUS_OK, "") if ok else (STATUS_ERROR, str(failure or "error")),
    )


def _chat_span(row: Row, payload: dict[str, Any]) -> bytes:
    run = row[5]
    model = str(payload.get("model", ""))
    provider = str(payload.get("provider", ""))
    end = _nano(row)
    attrs = [
        _attr("gen_ai.operation.name", "chat"),
        _attr("gen_ai.provider.name", provider),
        _attr("gen_ai.system", provider),
        _attr("gen_ai.request.model", model),
    ]
    for name, key in (
        ("gen_ai.usage.input_tokens", "tokens_in"),
        ("gen_ai.usage.output_tokens", "tokens_out"),
        ("govledger.cache_read_tokens", "cache_read_tokens"),
        ("govledger.cache_write_tokens", "cache_write_tokens"),
        ("govledger.cost_micro_usd", "cost_micro_usd"),
    ):
        if type(payload.get(key)) is int:
            attrs.append(_attr(name, payload[key]))
    if row[4] is not None:
        attrs.append(_attr("gen_ai.agent.name", row[4]))
    attrs.extend(_ledger_attrs(row))
    return _span(
        trace=trace_id(run) if run is not None else _id("trace-event", row[1], 16),
        span=event_span_id(row[1]),
        parent=run_span_id(run) if run is not None else None,
        name=f"chat {model}",
        kind=KIND_CLIENT,
        start=end - _ms(payload, "wallclock_ms") * 10**6,
        end=end,
        attributes=attrs,
    )


def spans(items: Iterable[ExportItem]) -> Iterator[bytes]:
    """Each span's JSON, in the order spans end (a run's span after its children)."""
    runs: dict[str, _Run] = {}
    for row, _ in items:
        try:
            yield from _step(runs, row)
        except (orjson.JSONEncodeError, UnicodeEncodeError) as e:
            raise unencodable(row, e) from e
    for run, state in runs.items():
        try:
            yield _run_span(run, state, None)
        except (orjson.JSONEncodeError, UnicodeEncodeError) as e:
            raise unencodable(state.first, e) from e


def _step(runs: dict[str, _Run], row: Row) -> Iterator[bytes]:
    """The spans that ``row`` ends, updating the open runs and tool calls."""
    run, etype = row[5], row[3]
    if etype == "llm.usage":
        yield _chat_span(row, stored_payload(row))
    if run is None:
        return
    state = runs.get(run)
    if state is None:
        state = runs[run] = _Run(first=row, agent=row[4], last_ts=row[2])
    state.last_ts = row[2]
    if state.agent is None:
        state.agent = row[4]
    if etype == "tool.called":
        tool = str(stored_payload(row).get("tool", ""))
        state.open_tools.setdefault(tool, deque()).append(row)
    elif etype == "tool.completed":
        payload = stored_payload(row)
        tool = str(payload.get("tool", ""))
        queue = state.open_tools.get(tool)
        called = queue.popleft() if queue else None
        if queue is not None and not queue:
            del state.open_tools[tool]
        yield _tool_span(run, called, row, payload)
    elif etype in RUN_END:
        yield _run_span(run, state, row)
        del runs[run]


def otlp_chunks(items: Iterable[ExportItem], *, origin: str) -> Iterator[bytes]:
    """The request as chunks, all on one line (the collector's file receiver reads one request
    per line): its opening, the spans separated by commas, its closing and a newline."""
    resource = {
        "attributes": [
            {"key": "service.name", "value": {"stringValue": "govledger"}},
            {"key": "govledger.origin", "value": {"stringValue": origin}},
        ]
    }
    # {"resourceSpans":[{"resource":…,"scopeSpans":[{"scope":…,"spans":[ … ]}]}]}
    yield (
        b'{"resourceSpans":[{"resource":'
        + orjson.dumps(resource)
        + b',"scopeSpans":[{"scope":'
        + orjson.dumps(SCOPE)
        + b',"spans":['
    )
    sep = b""
    for span in spans(items):
        yield sep + span
        sep = b","
    yield b"]}]}]}\n"
