"""The recording API (SPEC §6): ``Recorder``, its runs, the gate and correction memory.

An application-level package: it imports the core, the application layer and the read models;
nothing in the core imports it. ``from ledger import Recorder`` loads it on first use.
"""

from ledger.recording.gate import Decision
from ledger.recording.lessons import Lesson
from ledger.recording.recorder import CLOSED_SIDE_EFFECTS, Recorder
from ledger.recording.run import AsyncRun, Run, ToolCall
from ledger.recording.transport import HttpTransport, LocalTransport, Receipt, Transport
from ledger.recording.values import digest_of, failure_class_of, micro_usd

__all__ = [
    "CLOSED_SIDE_EFFECTS",
    "AsyncRun",
    "Decision",
    "HttpTransport",
    "Lesson",
    "LocalTransport",
    "Receipt",
    "Recorder",
    "Run",
    "ToolCall",
    "Transport",
    "digest_of",
    "failure_class_of",
    "micro_usd",
]
