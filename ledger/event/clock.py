"""Event ids and times as the ledger makes them: UUIDv7 ids and the wall clock in ``ts`` form."""

from __future__ import annotations

import os
import time
from functools import lru_cache

_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid7s(n: int) -> list[str]:
    """``n`` UUIDv7 strings (RFC 9562: 48-bit Unix milliseconds, version 7, variant 10, 74
    random bits), sharing one clock reading and one ``os.urandom`` call."""
    ms = f"{(time.time_ns() // 1_000_000) & ((1 << 48) - 1):012x}"
    head = f"{ms[:8]}-{ms[8:]}-7"
    rand = os.urandom(10 * n).hex()
    return [
        f"{head}{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:19]}"
        for r in (rand[20 * i : 20 * i + 19] for i in range(n))
    ]


@lru_cache(maxsize=1)
def _second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def now_ts() -> str:
    """The wall clock as SPEC §2.1's ts (RFC 3339 UTC, six fractional digits, ``Z``); the
    date and time part is formatted once per second."""
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{_second(second)}.{micro:06d}Z"
