"""A child process that signs or verifies batches for ``ledger.crypto.pool``.

Run as ``python -m ledger.crypto.pool_worker``; it reads requests on stdin and writes answers on
stdout, in order, until stdin closes. Frames (big-endian lengths):

- request: ``op`` (1 byte), ``n`` (4 bytes), payload
  - ``S`` sign: 64-byte libsodium secret key, then ``n`` 32-byte digests → ``n`` 64-byte
    signatures
  - ``V`` verify: ``n`` records of public key (32) ‖ signature (64) ‖ digest (32) → ``n`` bytes,
    1 = valid
- The signed message is ``b"govledger/event/v1\\n" ‖ digest`` (SPEC §2.1).

A worker imports nothing but the standard library and PyNaCl, so it starts in a few tens of
ms. Answers are written without blocking: a worker blocked on writing an answer would stop
reading the next request while its parent is blocked writing that request. Requests are always
read as they arrive, and answers go out as the parent takes them.
"""

from __future__ import annotations

import os
import select
import struct
import sys

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


def _request_size(op: bytes, n: int) -> int | None:
    """Bytes of the request's payload, or None for an unknown op."""
    return {b"S": 64 + 32 * n, b"V": 128 * n}.get(op)


def _send(out: int, unsent: bytearray) -> None:
    """Write what the pipe takes of ``unsent`` now, without blocking; keep the rest."""
    try:
        del unsent[: os.write(out, unsent)]
    except BlockingIOError:
        pass


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
            unsent += _sign(data, n) if op == b"S" else _verify(data, n)
            # Out now, as far as the pipe takes it: the parent may be waiting for this answer
            # while the next request is computed.
            _send(out, unsent)
        if closed:
            # The parent closes stdin only when it stops: nobody reads what is left unsent.
            return
        # (2) Wait until there is more to read, or room to write what is unsent.
        readable, writable, _ = select.select([inp], [out] if unsent else [], [])
        if writable:
            _send(out, unsent)
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
