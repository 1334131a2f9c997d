"""A child process that signs, verifies or validates batches for ``ledger.workers``.

Run as ``python -m ledger.sodium_worker``; it reads requests on stdin and writes answers on
stdout, in order, until stdin closes. Frames (big-endian lengths):

- request: ``op`` (1 byte), ``n`` (4 bytes), payload
  - ``S`` sign: 64-byte libsodium secret key, then ``n`` 32-byte digests → ``n`` 64-byte
    signatures
  - ``V`` verify: ``n`` records of public key (32) ‖ signature (64) ‖ digest (32) → ``n`` bytes,
    1 = valid
  - ``W`` warm (``n`` = 0, no answer): start loading the event catalog in the background
  - ``P`` prepare: ``n`` bytes of a pickled list of drafts as tuples ``(type, payload, agent,
    run, actor, id, where)`` → 4-byte length and a pickled list with, for each draft, its
    canonical payload text, the ``LedgerError`` that ``ledger.drafts.prepare`` raised for it,
    or None when anything else went wrong (the caller then validates that draft itself).
    Pickle is safe here: both ends are this program, over the pipes of a child it started.
- The signed message is ``b"govledger/event/v1\\n" ‖ digest`` (SPEC §2.1).

Signing and verifying import nothing but the standard library and PyNaCl, so a worker starts
in a few tens of ms; the event catalog is imported on ``W`` (in the background) or on the
first ``P`` request.

Answers are written without blocking: a ``P`` answer can be larger than a pipe holds, and a
worker blocked on writing it would stop reading the next request while its parent is blocked
writing that request. Requests are always read as they arrive, and answers go out as the
parent takes them.
"""

from __future__ import annotations

import importlib
import os
import pickle
import select
import struct
import sys
import threading
from typing import Any

import nacl.bindings
import nacl.exceptions

PREFIX = b"govledger/event/v1\n"


def _sign(data: bytes, n: int) -> bytes:
    sign = nacl.bindings.crypto_sign
    secret = data[:64]
    return b"".join(sign(PREFIX + data[64 + 32 * i : 96 + 32 * i], secret)[:64] for i in range(n))


def _verify(data: bytes, n: int) -> bytes:
    open_ = nacl.bindings.crypto_sign_open
    flags = bytearray(n)
    for i in range(n):
        rec = data[128 * i : 128 * (i + 1)]
        try:
            open_(rec[32:96] + PREFIX + rec[96:128], rec[:32])
            flags[i] = 1
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
            pass
    return bytes(flags)


def _warm() -> None:
    """Load the event catalog in a background thread, so the first ``P`` request finds it
    loaded; signing and verifying go on meanwhile (they release the GIL in libsodium)."""
    threading.Thread(target=importlib.import_module, args=("ledger.drafts",), daemon=True).start()


def _prepare(data: bytes) -> bytes:
    from ledger.drafts import Draft, prepare
    from ledger.errors import LedgerError

    out: list[Any] = []
    for type_, payload, agent, run, actor, id_, where in pickle.loads(data):
        try:
            out.append(prepare(Draft(type_, payload, agent, run, actor, id_), where).payload_text)
        except LedgerError as e:
            out.append(e)
        except Exception:
            out.append(None)
    answer = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack(">I", len(answer)) + answer


def _request_size(op: bytes, n: int) -> int | None:
    """Bytes of the request's payload, or None for an unknown op."""
    return {b"S": 64 + 32 * n, b"V": 128 * n, b"P": n, b"W": 0}.get(op)


def serve(inp: int, out: int) -> None:
    """Answer the requests read from descriptor ``inp`` on descriptor ``out``."""
    os.set_blocking(out, False)
    received = bytearray()
    unsent = bytearray()
    closed = False
    while True:
        # (1) Every complete request already read is answered.
        while len(received) >= 5:
            op, n = bytes(received[:1]), struct.unpack(">I", received[1:5])[0]
            size = _request_size(op, n)
            if size is None:
                return
            if len(received) < 5 + size:
                break
            data = bytes(received[5 : 5 + size])
            del received[: 5 + size]
            if op == b"W":
                _warm()
                continue
            if op == b"S":
                unsent += _sign(data, n)
            elif op == b"V":
                unsent += _verify(data, n)
            else:
                unsent += _prepare(data)
            # Out now, as far as the pipe takes it: the parent may be waiting for this answer
            # while the next request is computed.
            try:
                del unsent[: os.write(out, unsent)]
            except BlockingIOError:
                pass
        if closed:
            # The parent closes stdin only when it stops: nobody reads what is left unsent.
            return
        # (2) Wait until there is more to read, or room to write what is unsent.
        readable, writable, _ = select.select([inp], [out] if unsent else [], [])
        if writable:
            try:
                del unsent[: os.write(out, unsent)]
            except BlockingIOError:
                pass
        if readable:
            chunk = os.read(inp, 1 << 20)
            if chunk:
                received += chunk
            else:
                closed = True


if __name__ == "__main__":
    try:
        serve(sys.stdin.fileno(), sys.stdout.fileno())
    except BrokenPipeError:
        pass
