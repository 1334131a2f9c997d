"""Synthetic production-like workload for govledger: agents, runs, tools, usage, violations.

Follows the v1 event catalog (SPEC §2.4) and who signs what (§2.5). Deterministic for a seed:
the same ``(n_events, n_agents, seed)`` always gives the same sequence of ``(type, payload)``
(the ledger adds ``seq``, ``ts``, ``id``, hashes and signatures). Streaming: only the runs that
are open at a time are held in memory, so a million events cost no more memory than a thousand.

::

    from ledger.sample import generate_drafts, build_ledger
    for role, draft in generate_drafts(2_000, n_agents=5, seed=7): ...   # role: governor|recorder
    ledger = build_ledger("l.db", "keys", 2_000, 5, seed=7)

Payload times (``expires_at``) run on a simulated clock starting at ``EPOCH`` (2030), so grants
and approvals are live when appended today; a few grants are deliberately expired (2020) to
exercise ``grant_expired``. The command line is ``scripts/generate.py`` (in the repository);
``govledger demo`` builds its ledger from this package.

Modules: ``data`` (the world's tables), ``runs`` (one run, event by event), ``build`` (the
interleaved stream and a ledger built from it).
"""

from __future__ import annotations

from ledger.sample.build import (
    append_stream,
    build_ledger,
    generate_drafts,
    import_line,
    write_jsonl,
)
from ledger.sample.data import (
    CRITICAL_VIOLATIONS,
    EPOCH,
    EXPIRED,
    GOVERNOR,
    GOVERNOR_TYPES,
    ORIGIN,
    PRODUCED_TYPES,
    RECORDER,
    VIOLATIONS,
    Conduct,
)

__all__ = [
    "CRITICAL_VIOLATIONS",
    "EPOCH",
    "EXPIRED",
    "GOVERNOR",
    "GOVERNOR_TYPES",
    "ORIGIN",
    "PRODUCED_TYPES",
    "RECORDER",
    "VIOLATIONS",
    "Conduct",
    "append_stream",
    "build_ledger",
    "generate_drafts",
    "import_line",
    "write_jsonl",
]
