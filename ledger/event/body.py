"""Canonical event bytes built from stored columns: the body C and the exported line.

SPEC §2.1–§2.3. The canonical body C of an event is the RFC 8785 form of its envelope without
``hash`` and ``sig``. The envelope's keys are fixed ASCII names, so C is assembled here by
concatenating the canonical form of each field in RFC 8785 key order; the payload is stored
already canonical. The store hashes and signs these bytes on append, the verifier recomputes
them, proofs hash them as leaves.

Takes and returns bytes: no pydantic models, no SQL, so an offline verifier can reuse it.
"""

from __future__ import annotations

import json
from typing import Any

from ledger.event.framing import ENVELOPE_VERSION

_json_str = json.JSONEncoder(ensure_ascii=False).encode


def _str(value: Any) -> str:
    """The canonical JSON of a string: quoted as it is when nothing in it needs escaping
    (printable text without ``"`` or ``\\``, the usual id, name or time), else the encoder's
    (which also takes the odd non-string a tampered store may hold)."""
    if type(value) is str and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return _json_str(value)


def _opt(value: str | None) -> str:
    return "null" if value is None else _str(value)


def body_bytes(
    *,
    seq: int,
    id: str,
    ts: str,
    type: str,
    agent: str | None,
    run: str | None,
    actor: str | None,
    payload: str,
    prev: str,
    key: str,
) -> bytes:
    """C: canonical bytes of the body; ``payload`` is the payload's canonical JSON text."""
    return (
        f'{{"actor":{_opt(actor)},"agent":{_opt(agent)},"id":{_str(id)},"key":{_str(key)},'
        f'"payload":{payload},"prev":{_str(prev)},"run":{_opt(run)},"seq":{seq},'
        f'"ts":{_str(ts)},"type":{_str(type)},"v":{ENVELOPE_VERSION}}}'
    ).encode()


class BodyEncoder:
    """``body_bytes`` with the canonical JSON of repeated strings (types, agents, runs, keys,
    timestamps of a batch) cached: the verifier's per-event path. The cache is bounded."""

    MAX = 65536

    def __init__(self) -> None:
        self.cache: dict[str | None, str] = {None: "null"}

    def _enc(self, value: str | None) -> str:
        text = self.cache.get(value)
        if text is None:
            if len(self.cache) > self.MAX:
                self.cache = {None: "null"}
            text = self.cache[value] = _str(value)
        return text

    def body(
        self,
        seq: int,
        id: str,
        ts: str,
        type: str,
        agent: str | None,
        run: str | None,
        actor: str | None,
        payload: str,
        prev: str,
        key: str,
    ) -> bytes:
        cache = self.cache
        try:  # the common case: every repeated string seen before in this batch
            a, g, k, r, t, y = (
                cache[actor],
                cache[agent],
                cache[key],
                cache[run],
                cache[ts],
                cache[type],
            )
        except (KeyError, TypeError):  # TypeError: an unhashable value from a tampered store
            enc = self._enc
            a, g, k, r, t, y = enc(actor), enc(agent), enc(key), enc(run), enc(ts), enc(type)
        return (
            f'{{"actor":{a},"agent":{g},"id":{_str(id)},"key":{k},'
            f'"payload":{payload},"prev":"{prev}","run":{r},"seq":{seq},'
            f'"ts":{t},"type":{y},"v":{ENVELOPE_VERSION}}}'
        ).encode()


def envelope_line(
    *,
    seq: int,
    id: str,
    ts: str,
    type: str,
    agent: str | None,
    run: str | None,
    actor: str | None,
    payload: str,
    prev: str,
    key: str,
    hash: str,
    sig: str,
) -> bytes:
    """The exported form of an event: RFC 8785 of the full envelope and ``\\n`` (SPEC §2.1)."""
    return (
        f'{{"actor":{_opt(actor)},"agent":{_opt(agent)},"hash":{_str(hash)},"id":{_str(id)},'
        f'"key":{_str(key)},"payload":{payload},"prev":{_str(prev)},"run":{_opt(run)},'
        f'"seq":{seq},"sig":{_str(sig)},"ts":{_str(ts)},"type":{_str(type)},'
        f'"v":{ENVELOPE_VERSION}}}\n'
    ).encode("utf-8", "surrogateescape")  # a tampered store's non-UTF-8 bytes, as they are
