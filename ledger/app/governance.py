"""Recording tier changes and policies in a ledger, and reading tiers as of any seq.

``apply_due`` is ``govledger tiers apply`` for library code (the demo uses it): inside one write
transaction it catches the read models up, computes the changes due under the policy in force
and appends them as signed ``tier.*`` events carrying their evidence, so no event can slip in
between the computation and the record. ``set_policy`` records a ``policy.set`` with the next
version, also under the write lock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledger.crypto.keyfiles import Signer
from ledger.errors import InputError
from ledger.event.drafts import Draft, prepare
from ledger.event.envelope import Event
from ledger.event.rows import parse_stored
from ledger.store.base import EventFilter, ReadModels, Store
from projections.current import read_models_current

if TYPE_CHECKING:
    from projections.tiers.rules import Due

# The tiers and policy modules, and the replay driver, are imported by the functions that
# record changes: a reading command needs only ``read_models``, and its read models are usually
# current (no fold runs, and ``projections.current`` says so without the driver).


@contextmanager
def read_models(ledger: Store, at_seq: int | None = None) -> Iterator[ReadModels]:
    """The read models caught up to the head (``at_seq`` None or at/after the head: the stored
    ones), or as they stood after ``at_seq`` (a scratch rebuild; the stored ones untouched)."""
    size = ledger.size
    if at_seq is None or at_seq >= size:
        db = ledger.read_models()
        if not read_models_current(ledger, db):
            from projections.driver import catch_up

            catch_up(ledger, db)
        yield db
        return
    from projections.driver import build_at

    with build_at(ledger, at_seq) as db:
        yield db


@dataclass(frozen=True, slots=True)
class Applied:
    """What ``apply_changes`` did: the events recorded, and the promotions still awaiting an
    explicit human decision (``--approve AGENT``)."""

    recorded: list[Event]
    awaiting: list[Due] = field(default_factory=list)


def apply_changes(
    ledger: Store, signer: Signer, approve: Collection[str] = (), *, strict: bool = False
) -> Applied:
    """Record every change due now as a signed ``tier.*`` event (SPEC §2.4).

    Promotions into tiers at or above the policy's ``human_approval_from_tier`` are recorded
    only for agents in ``approve`` (their evidence then says ``"human_approval": true``).
    Re-running with nothing new due records nothing. Raises ``UnauthorizedWrite`` (exit 2)
    unless ``signer`` is a governor key. With ``strict`` (the CLI's ``--approve``), an agent in
    ``approve`` with no promotion awaiting a human decision raises ``InputError`` (exit 2,
    nothing recorded); otherwise ``approve`` is a standing permission.
    """
    from projections.driver import catch_up
    from projections.tiers.queries import compute_due

    ledger.require_governor(signer, "tier changes")
    with ledger.write() as tx:
        db = ledger.read_models()
        catch_up(ledger, db)
        due = compute_due(db)
        waiting = {d.agent for d in due if d.needs_approval}
        unknown = sorted(set(approve) - waiting) if strict else []
        if unknown:
            # A user approving something that is not there made a mistake: report it.
            raise InputError(
                f"--approve {unknown[0]}: no promotion of agent {unknown[0]!r} awaits a human "
                "decision (`tiers compute` lists the changes due)"
            )
        record = [d for d in due if not d.needs_approval or d.agent in approve]
        awaiting = [d for d in due if d.needs_approval and d.agent not in approve]
        drafts = [
            Draft(f"tier.{d.change}", d.payload(approved=d.needs_approval), agent=d.agent)
            for d in record
        ]
        prepared = [prepare(dr, f"tier change for {dr.agent}") for dr in drafts]
        events = tx.append(prepared, signer=signer)
    return Applied(events, awaiting)


def apply_due(ledger: Store, signer: Signer, approve: Collection[str] = ()) -> list[Event]:
    """``tiers apply`` from library code: the ``tier.*`` events recorded (see ``apply_changes``)."""
    return apply_changes(ledger, signer, approve).recorded


def set_policy(ledger: Store, document: dict[str, Any], signer: Signer) -> Event:
    """Record ``document`` (validated) as a ``policy.set`` with the next version (SPEC §2.4)."""
    from projections.driver import catch_up
    from projections.policy.document import policy_set_payload
    from projections.tiers.queries import policy_in_force

    with ledger.write() as tx:
        db = ledger.read_models()
        catch_up(ledger, db)
        version = max(policy_in_force(db).version, _last_version(ledger)) + 1
        prepared = [prepare(Draft("policy.set", policy_set_payload(document, version)))]
        return tx.append(prepared, signer=signer)[0]


def _last_version(ledger: Store) -> int:
    """The highest version any ``policy.set`` of the log claims (valid or not: a number)."""
    last = 0
    for row in ledger.iter_rows(filter=EventFilter(types=("policy.set",))):
        try:
            version = parse_stored(row[7]).get("version")
        except (ValueError, AttributeError):
            continue
        if isinstance(version, int | float) and not isinstance(version, bool):
            last = max(last, int(version))
    return last


def require_agent(db: ReadModels, agent: str) -> None:
    """``InputError`` (exit 2) when ``agent`` has no tier in the read model."""
    row = db.execute(
        "SELECT 1 FROM tiers WHERE agent = ? AND (registered_seq IS NOT NULL OR changes > 0)",
        [agent],
    ).fetchone()
    if row is None:
        raise InputError(
            f"agent {agent!r} is not registered (no agent.registered or tier.* event names it)"
        )
