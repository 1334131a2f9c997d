"""The service's counters in the Prometheus text exposition format (``GET /metrics``).

Appends and their requests, group sizes (mean = ``_sum / _count``), the latency of append
requests as a histogram, requests by status and errors by kind.
"""

from __future__ import annotations

import threading
from collections import Counter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the append latency histogram."""


class Metrics:
    """Thread-safe counters; ``render()`` gives the exposition text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events = 0
        self.append_requests = 0
        self.groups = 0
        self.group_requests = 0
        self.group_events = 0
        self.group_seconds = 0.0
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.errors: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()

    def group(self, requests: int, events: int, seconds: float) -> None:
        with self._lock:
            self.groups += 1
            self.group_requests += requests
            self.group_events += events
            self.group_seconds += seconds

    def appended(self, events: int, seconds: float) -> None:
        with self._lock:
            self.events += events
            self.append_requests += 1
            self._observe(seconds)

    def _observe(self, seconds: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency[i] += 1
                break
        else:
            self.latency[-1] += 1
        self.latency_sum += seconds

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def response(self, status: int) -> None:
        with self._lock:
            self.responses[status] += 1

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP govledger_appended_events_total Events appended through the service.",
                "# TYPE govledger_appended_events_total counter",
                f"govledger_appended_events_total {self.events}",
                "# HELP govledger_append_requests_total Append requests answered 201.",
                "# TYPE govledger_append_requests_total counter",
                f"govledger_append_requests_total {self.append_requests}",
                "# HELP govledger_group_requests Requests per group commit.",
                "# TYPE govledger_group_requests summary",
                f"govledger_group_requests_sum {self.group_requests}",
                f"govledger_group_requests_count {self.groups}",
                "# HELP govledger_group_events Events per group commit.",
                "# TYPE govledger_group_events summary",
                f"govledger_group_events_sum {self.group_events}",
                f"govledger_group_events_count {self.groups}",
                "# HELP govledger_group_commit_seconds Time spent appending and committing groups.",
                "# TYPE govledger_group_commit_seconds counter",
                f"govledger_group_commit_seconds_total {self.group_seconds:.6f}",
                "# HELP govledger_append_seconds Latency of successful append requests.",
                "# TYPE govledger_append_seconds histogram",
            ]
            total = 0
            for bound, n in zip((*LATENCY_BUCKETS, "+Inf"), self.latency, strict=True):
                total += n
                lines.append(f'govledger_append_seconds_bucket{{le="{bound}"}} {total}')
            lines += [
                f"govledger_append_seconds_sum {self.latency_sum:.6f}",
                f"govledger_append_seconds_count {total}",
                "# HELP govledger_errors_total Error responses by kind.",
                "# TYPE govledger_errors_total counter",
                *(
                    f'govledger_errors_total{{kind="{k}"}} {n}'
                    for k, n in sorted(self.errors.items())
                ),
                "# HELP govledger_http_responses_total Responses by status code.",
                "# TYPE govledger_http_responses_total counter",
                *(
                    f'govledger_http_responses_total{{code="{c}"}} {n}'
                    for c, n in sorted(self.responses.items())
                ),
            ]
        return "\n".join(lines) + "\n"
