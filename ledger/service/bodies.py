"""Append request bodies as drafts: read, allowed to the request's token, and validated.

A body is one draft, a JSON array of drafts, or JSON Lines. It is read the quick way first
(``quick_drafts``: ``jiter``, for drafts whose payloads are fully typed by the catalog, then
validated); whatever that way refuses or fails to validate is read again the strict way
(``strict_drafts``: the CLI's parser), so every error answer is the strict way's, naming the
place as the CLI does: ``event`` (one), ``event N`` (an array), ``line N`` (JSON Lines).
"""

from __future__ import annotations

from ledger.errors import EventValidationError, LedgerError
from ledger.event.canonical import loads, quick_loads
from ledger.event.drafts import Prepared, prepare
from ledger.exchange.import_lines import draft_from_object, quick_draft
from ledger.service import tokens
from ledger.service.asgi import HttpError

MAX_EVENTS_PER_REQUEST = 10_000
"""Events in one request at most (413 above)."""
JSON_TYPES = frozenset({"application/json"})
LINES_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines"})


def accepted(body: bytes, media_type: str, token: tokens.Token) -> list[Prepared]:
    """The request's drafts, validated and allowed to ``token``; else the error of the first
    one that is not, as the CLI words it (400 not drafts, 403 not allowed, 422 invalid).

    Read the quick way first (``quick_drafts``). Whatever that way refuses or fails to
    validate is read again the strict way, from the start, so the answer to a bad request is
    exactly the strict way's, which names the place (``event 3: payload.x: float …``)."""
    quick = quick_drafts(body, media_type)
    if quick is not None:
        try:
            token.check([(p.draft, p.where) for p in quick])
            return [prepare(p.draft, p.where) for p in quick]
        except (LedgerError, TypeError, ValueError):
            pass  # a value the quick way does not judge (a float, a large integer, …)
    drafts = strict_drafts(body, media_type)
    token.check([(p.draft, p.where) for p in drafts])
    return [prepare(p.draft, p.where) for p in drafts]


def quick_drafts(body: bytes, media_type: str) -> list[Prepared] | None:
    """The request's drafts read by ``quick_loads``, not yet validated; ``None`` when that way
    cannot take them: a syntax error, a body that is not drafts, or a draft whose type has a
    free-form payload (``TYPED_PAYLOADS``: only fully typed payloads are judged whole by their
    validation; the others' values are checked by the strict parser)."""
    try:
        if media_type in LINES_TYPES:
            values = [
                (quick_loads(raw), f"line {n}")
                for n, raw in enumerate(body.split(b"\n"), start=1)
                if raw.strip()
            ]
        else:
            value = quick_loads(body)
            values = (
                [(v, f"event {i}") for i, v in enumerate(value, start=1)]
                if type(value) is list
                else [(value, "event")]
            )
    except ValueError:
        return None
    if not values or len(values) > MAX_EVENTS_PER_REQUEST:
        return None
    out = []
    for v, where in values:
        draft = quick_draft(v, where)
        if draft is None:
            return None
        out.append(Prepared(draft, None, where))
    return out


def strict_drafts(body: bytes, media_type: str) -> list[Prepared]:
    """The request's drafts, named as the CLI names them: ``event`` (one), ``event N`` (an
    array), ``line N`` (JSON Lines); 400 for a body that is not drafts."""
    try:
        if media_type in LINES_TYPES:
            out = [
                Prepared(draft_from_object(loads(raw, f"line {n}"), f"line {n}"), None, f"line {n}")
                for n, raw in enumerate(body.split(b"\n"), start=1)
                if raw.strip()
            ]
        else:
            value = loads(body, "request body")
            if isinstance(value, list):
                out = [
                    Prepared(draft_from_object(v, f"event {i}"), None, f"event {i}")
                    for i, v in enumerate(value, start=1)
                ]
            else:
                out = [Prepared(draft_from_object(value, "event"), None, "event")]
    except EventValidationError as e:
        raise HttpError(400, "malformed", e.message) from e
    if not out:
        raise HttpError(400, "malformed", "request body holds no event")
    if len(out) > MAX_EVENTS_PER_REQUEST:
        raise HttpError(
            413, "too_large", f"{len(out)} events in one request, over {MAX_EVENTS_PER_REQUEST}"
        )
    return out
