"""The policy in force while a projection folds the log (SPEC §2.4 ``policy.set``).

The policy in force at seq N is the one of the last valid ``policy.set`` at or before N, else
the shipped default (version 0); ``projections.policy.document`` parses and validates it. The tiers read
model keeps the whole policy history (``tier_policies``) and answers "policy at seq" for readers
(``tier_queries.policy_in_force``), but it is folded after the runs projection, so it cannot
serve projections folded before it. ``PolicyFold`` is the fold-time view those projections
(reliability signals, correction patterns) share: the policy in force as of the last event
applied, kept in a one-row table of the owning projection so an incremental catch-up resumes
with the same policy a full replay would have. A ``policy.set`` whose document does not validate
never takes force (the same rule as the tiers read model).
"""

from __future__ import annotations

import json

from ledger.errors import PolicyError
from ledger.event.envelope import PolicySet
from ledger.store.base import ReadModels
from projections.policy.document import (
    Policy,
    PolicyDocument,
    default_policy,
    make_policy,
    policy_from_event,
)
from projections.projection import Table


def policy_table(name: str) -> Table:
    """The one-row table ``name`` holding the policy in force of the projection that owns it."""
    return Table(
        name,
        (("name", str), ("seq", int), ("version", int), ("document", str)),
        pk=("name",),
    )


class PolicyFold:
    """The policy in force as of the last event folded, persisted in ``table`` at ``flush``."""

    __slots__ = ("changed", "db", "policy", "table")

    def __init__(self, db: ReadModels, table: Table) -> None:
        self.db = db
        self.table = table
        self.changed = False
        row = db.execute(
            f"SELECT seq, version, document FROM {table.name} WHERE name = 'current'"
        ).fetchone()
        if row is None:
            self.policy = default_policy()
        else:
            seq, version, document = row
            self.policy = make_policy(json.loads(document), version=version, seq=seq)

    @property
    def rules(self) -> PolicyDocument:
        return self.policy.rules

    def observe(self, payload: PolicySet, seq: int) -> None:
        """Fold a ``policy.set``: it takes force from its own seq, unless it does not validate."""
        try:
            self.policy = policy_from_event(payload, seq)
        except PolicyError:
            return  # recorded around the CLI: the previous policy stays in force
        self.changed = True

    def flush(self) -> None:
        if self.changed:
            p: Policy = self.policy
            self.db.insert(
                self.table,
                [("current", p.seq, p.version, json.dumps(p.document, sort_keys=True))],
                replace=True,
            )
            self.changed = False
