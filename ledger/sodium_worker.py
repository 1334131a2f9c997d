"""A child process that signs or verifies Ed25519 batches for ``ledger.workers``.

Run as ``python -m ledger.sodium_worker``; it reads requests on stdin and writes answers on
stdout, in order, until stdin closes. Frames (big-endian lengths):

- request: ``op`` (1 byte: ``S`` sign, ``V`` verify), ``n`` (4 bytes), payload
  - ``S``: 64-byte libsodium secret key, then ``n`` 32-byte digests → ``n`` 64-byte signatures
  - ``V``: ``n`` records of public key (32) ‖ signature (64) ‖ digest (32) → ``n`` bytes, 1 = valid
- The signed message is ``b"govledger/event/v1\\n" ‖ digest`` (SPEC §2.1).

It imports nothing but the standard library and PyNaCl, so it starts in a few tens of ms.
"""

from __future__ import annotations

import struct
import sys

import nacl.bindings
import nacl.exceptions

PREFIX = b"govledger/event/v1\n"


def _read(stream: object, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))  # type: ignore[attr-defined]
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def serve(inp: object, out: object) -> None:
    sign = nacl.bindings.crypto_sign
    open_ = nacl.bindings.crypto_sign_open
    while True:
        try:
            head = _read(inp, 5)
        except EOFError:
            return
        op, n = head[:1], struct.unpack(">I", head[1:])[0]
        if op == b"S":
            data = _read(inp, 64 + 32 * n)
            secret = data[:64]
            answer = b"".join(
                sign(PREFIX + data[64 + 32 * i : 96 + 32 * i], secret)[:64] for i in range(n)
            )
        elif op == b"V":
            data = _read(inp, 128 * n)
            flags = bytearray(n)
            for i in range(n):
                rec = data[128 * i : 128 * (i + 1)]
                try:
                    open_(rec[32:96] + PREFIX + rec[96:128], rec[:32])
                    flags[i] = 1
                except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
                    pass
            answer = bytes(flags)
        else:
            return
        out.write(answer)  # type: ignore[attr-defined]
        out.flush()  # type: ignore[attr-defined]


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
