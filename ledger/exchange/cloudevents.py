"""Export as a CloudEvents 1.0 JSON batch (CloudEvents JSON event format, section 4: a JSON
array of events; content type ``application/cloudevents-batch+json``).

One CloudEvent per ledger event (docs/exports.md): ``specversion`` "1.0", ``type``
``dev.govledger.<type>``, ``source`` ``govledger:<origin>``, ``id`` the event id, ``time`` its
``ts``, ``subject`` its run (absent when the event has none), ``datacontenttype``
``application/json`` and ``data`` the full signed envelope, byte for byte the canonical line of
the JSON Lines export, so unwrapping ``data`` gives a file that ``verify --file`` accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

from ledger.exchange.rows import ExportItem, unencodable

CONTENT_TYPE = "application/cloudevents-batch+json"
"""The media type of the batch this module writes."""

TYPE_PREFIX = "dev.govledger."
"""The prefix of every CloudEvent ``type``; the ledger event type follows it."""


def cloudevent_bytes(item: ExportItem, *, source: str) -> bytes:
    """One CloudEvent as compact JSON; ``data`` is the envelope's canonical bytes unchanged."""
    row, line = item
    attributes: dict[str, str] = {
        "specversion": "1.0",
        "id": row[1],
        "source": source,
        "type": TYPE_PREFIX + row[3],
        "time": row[2],
    }
    if row[5] is not None:
        attributes["subject"] = row[5]
    attributes["datacontenttype"] = "application/json"
    try:
        head = orjson.dumps(attributes)
    except orjson.JSONEncodeError as e:
        raise unencodable(row, e) from e
    # `head` ends with "}": the envelope goes in as the last member without being re-encoded.
    return head[:-1] + b',"data":' + line.rstrip(b"\n") + b"}"


def cloudevents_chunks(items: Iterable[ExportItem], *, origin: str) -> Iterator[bytes]:
    """The batch as chunks: ``[``, one event per line separated by commas, ``]``."""
    source = f"govledger:{origin}"
    yield b"["
    sep = b"\n"
    for item in items:
        yield sep + cloudevent_bytes(item, source=source)
        sep = b",\n"
    yield b"\n]\n"
