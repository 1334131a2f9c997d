"""The service's counters in the Prometheus text exposition format (``GET /metrics``).

Appends and their requests, group sizes (mean = ``_sum / _count``), the latency of append
requests as a histogram and the part of it spent reading and validating bodies, the writer's
time per group, requests by status and errors by kind.

The counters of one server process are one *slot*: a fixed row of 8-byte numbers. A service of
several processes (``govledger serve --workers N``) keeps the slots in one shared memory
mapping made by the parent, one slot a process (a replacement for a dead process takes over
its slot and its counts), and ``render`` sums every slot, so ``/metrics`` from any process
describes the whole service. Each slot has one writer (its process, under a thread lock);
readers of other slots may see a count one update behind, never a torn number.
"""

from __future__ import annotations

import mmap
import os
import threading

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the append latency histogram."""

ERROR_KINDS = (
    "malformed",
    "unauthenticated",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "duplicate_id",
    "too_large",
    "unsupported_media_type",
    "invalid",
    "unavailable",
    "internal",
)
"""The error kinds of the service's answers (an unknown one is counted as ``internal``)."""

_SCALARS = (
    "events",
    "append_requests",
    "groups",
    "group_requests",
    "group_events",
    "group_seconds",
    "latency_sum",
    "restarts",
    "read_seconds",
)
_LOW_STATUS, _HIGH_STATUS = 100, 600
_LATENCY = len(_SCALARS)
_ERRORS = _LATENCY + len(LATENCY_BUCKETS) + 1
_STATUS = _ERRORS + len(ERROR_KINDS)
SLOT_SIZE = _STATUS + (_HIGH_STATUS - _LOW_STATUS)
"""Numbers in one slot."""
_AT = {name: i for i, name in enumerate(_SCALARS)}
_KIND = {kind: _ERRORS + i for i, kind in enumerate(ERROR_KINDS)}


def shared_file(slots: int) -> int:
    """A file descriptor of an unnamed file (already unlinked: nothing is left behind, even
    after SIGKILL) large enough for ``slots`` slots, zeroed; child processes map it by
    inheriting the descriptor."""
    import tempfile

    directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryFile(dir=directory) as f:
        fd = os.dup(f.fileno())
    os.ftruncate(fd, slots * SLOT_SIZE * 8)
    return fd


class Metrics:
    """Thread-safe counters of one process, in slot ``slot`` of the ``slots`` mapped from
    ``fd`` (default: one private slot); ``render()`` gives the exposition text of all the
    slots, for a service of ``processes`` server processes."""

    def __init__(
        self, *, fd: int | None = None, slot: int = 0, slots: int = 1, processes: int = 1
    ) -> None:
        self._lock = threading.Lock()
        self.slots = slots
        self.processes = processes
        if fd is None:
            self._buffer: mmap.mmap | bytearray = bytearray(slots * SLOT_SIZE * 8)
        else:
            self._buffer = mmap.mmap(fd, slots * SLOT_SIZE * 8)
        self._all = memoryview(self._buffer).cast("d")
        self._mine = self._all[slot * SLOT_SIZE : (slot + 1) * SLOT_SIZE]

    def _add(self, index: int, value: float = 1.0) -> None:
        self._mine[index] += value

    def group(self, requests: int, events: int, seconds: float) -> None:
        with self._lock:
            self._add(_AT["groups"])
            self._add(_AT["group_requests"], requests)
            self._add(_AT["group_events"], events)
            self._add(_AT["group_seconds"], seconds)

    def appended(self, events: int, seconds: float, read: float = 0.0) -> None:
        """An append request answered 201 after ``seconds``, ``read`` of them spent reading
        and validating its body (before the writer had it)."""
        with self._lock:
            self._add(_AT["events"], events)
            self._add(_AT["append_requests"])
            self._add(_AT["read_seconds"], read)
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self._add(_LATENCY + i)
                    break
            else:
                self._add(_LATENCY + len(LATENCY_BUCKETS))
            self._add(_AT["latency_sum"], seconds)

    def error(self, kind: str) -> None:
        with self._lock:
            self._add(_KIND.get(kind, _KIND["internal"]))

    def response(self, status: int) -> None:
        if _LOW_STATUS <= status < _HIGH_STATUS:
            with self._lock:
                self._add(_STATUS + status - _LOW_STATUS)

    def restarted(self) -> None:
        """One more server process replaced after it died (counted by the parent)."""
        with self._lock:
            self._add(_AT["restarts"])

    def totals(self) -> list[float]:
        """Every number summed over the slots."""
        out = [0.0] * SLOT_SIZE
        for s in range(self.slots):
            row = self._all[s * SLOT_SIZE : (s + 1) * SLOT_SIZE].tolist()
            out = [a + b for a, b in zip(out, row, strict=True)]
        return out

    def render(self) -> str:
        t = self.totals()

        def n(name: str) -> int:
            return int(t[_AT[name]])

        lines = [
            "# HELP govledger_appended_events_total Events appended through the service.",
            "# TYPE govledger_appended_events_total counter",
            f"govledger_appended_events_total {n('events')}",
            "# HELP govledger_append_requests_total Append requests answered 201.",
            "# TYPE govledger_append_requests_total counter",
            f"govledger_append_requests_total {n('append_requests')}",
            "# HELP govledger_group_requests Requests per group commit.",
            "# TYPE govledger_group_requests summary",
            f"govledger_group_requests_sum {n('group_requests')}",
            f"govledger_group_requests_count {n('groups')}",
            "# HELP govledger_group_events Events per group commit.",
            "# TYPE govledger_group_events summary",
            f"govledger_group_events_sum {n('group_events')}",
            f"govledger_group_events_count {n('groups')}",
            "# HELP govledger_group_commit_seconds Time spent appending and committing groups.",
            "# TYPE govledger_group_commit_seconds counter",
            f"govledger_group_commit_seconds_total {t[_AT['group_seconds']]:.6f}",
            "# HELP govledger_append_read_seconds Time successful append requests spent reading "
            "and validating their bodies, before the writer had them.",
            "# TYPE govledger_append_read_seconds counter",
            f"govledger_append_read_seconds_total {t[_AT['read_seconds']]:.6f}",
            "# HELP govledger_append_seconds Latency of successful append requests.",
            "# TYPE govledger_append_seconds histogram",
        ]
        total = 0
        for i, bound in enumerate((*LATENCY_BUCKETS, "+Inf")):
            total += int(t[_LATENCY + i])
            lines.append(f'govledger_append_seconds_bucket{{le="{bound}"}} {total}')
        lines += [
            f"govledger_append_seconds_sum {t[_AT['latency_sum']]:.6f}",
            f"govledger_append_seconds_count {total}",
            "# HELP govledger_errors_total Error responses by kind.",
            "# TYPE govledger_errors_total counter",
            *(
                f'govledger_errors_total{{kind="{kind}"}} {int(t[_KIND[kind]])}'
                for kind in sorted(ERROR_KINDS)
                if t[_KIND[kind]]
            ),
            "# HELP govledger_http_responses_total Responses by status code.",
            "# TYPE govledger_http_responses_total counter",
            *(
                f'govledger_http_responses_total{{code="{code}"}} {int(t[_STATUS + i])}'
                for i, code in enumerate(range(_LOW_STATUS, _HIGH_STATUS))
                if t[_STATUS + i]
            ),
            "# HELP govledger_server_processes Server processes of the service.",
            "# TYPE govledger_server_processes gauge",
            f"govledger_server_processes {self.processes}",
            "# HELP govledger_server_restarts_total Server processes replaced after they died.",
            "# TYPE govledger_server_restarts_total counter",
            f"govledger_server_restarts_total {n('restarts')}",
        ]
        return "\n".join(lines) + "\n"
