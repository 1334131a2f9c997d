"""The service's writer (``GroupCommitter``) on a real ledger file with real keys: requests
queued together are one group; consecutive requests of one key are chained as one batch; each
request gets its own events back, and a refusal fails only its own request."""

from __future__ import annotations

import asyncio
from typing import Any

from ledger.crypto.keyfiles import Signer
from ledger.errors import DuplicateEventId, LedgerError
from ledger.event.drafts import Draft, Prepared, prepare
from ledger.event.envelope import Event
from ledger.service import tokens
from ledger.service.groupcommit import GroupCommitter
from ledger.store.sqlite import Ledger
from ledger.verify.verifier import verify_ledger
from tests.conftest import LedgerKeys


def request(n: int, tag: str, ids: bool = False) -> list[Prepared]:
    """``n`` x.note drafts of one request, validated as the service validates them."""
    where = (lambda i: "event") if n == 1 else (lambda i: f"event {i + 1}")
    return [
        prepare(Draft("x.note", {"tag": tag, "i": i}, id=f"{tag}-{i}" if ids else None), where(i))
        for i in range(n)
    ]


def submit_together(
    ledger: Ledger,
    requests: list[tuple[list[Prepared], Signer]],
    names: list[str | None] | None = None,
) -> tuple[list[list[Event] | LedgerError], list[tuple[int, int]]]:
    """Queue every request before the writer runs (so they form one group); each request's
    outcome, and the (requests, events) of each group committed."""
    groups: list[tuple[int, int]] = []

    async def main() -> list[Any]:
        committer = GroupCommitter(ledger, on_group=lambda r, e, _s: groups.append((r, e)))
        committer.start()
        try:
            tokens = names or [None] * len(requests)
            return await asyncio.gather(
                *(committer.submit(p, s, t) for (p, s), t in zip(requests, tokens, strict=True)),
                return_exceptions=True,
            )
        finally:
            await committer.close()

    return asyncio.run(main()), groups


def test_a_group_of_requests_of_two_keys_commits_each_request_whole_and_in_order(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    rec, root = keys.recorder, keys.root
    plan = [(1, "a", rec), (3, "b", rec), (2, "c", root), (1, "d", rec), (4, "e", rec)]
    outcomes, groups = submit_together(ledger, [(request(n, t), s) for n, t, s in plan])
    assert groups == [(5, 11)]
    seq = 3  # after ledger.created and the recorder's key.registered
    for (n, tag, signer), events in zip(plan, outcomes, strict=True):
        assert isinstance(events, list)
        assert [e.seq for e in events] == list(range(seq, seq + n))
        assert [(e.payload["tag"], e.payload["i"]) for e in events] == [(tag, i) for i in range(n)]
        assert {e.key for e in events} == {signer.key_id}
        seq += n
    report = verify_ledger(ledger)
    assert report.ok and report.events == 2 + 11


def test_a_refusal_in_a_group_fails_only_its_own_request(ledger: Ledger, keys: LedgerKeys) -> None:
    """Request 2 reuses an id of request 1: the group's one batch is refused, so each
    request is appended alone; request 2 alone is refused, naming its own event."""
    rec = keys.recorder
    first, third = request(2, "one", ids=True), request(1, "three", ids=True)
    second = [prepare(Draft("x.note", {"tag": "two"}, id="one-1"), "event")]
    outcomes, _ = submit_together(ledger, [(first, rec), (second, rec), (third, rec)])
    assert isinstance(outcomes[1], DuplicateEventId)
    assert outcomes[1].message == "event: id 'one-1' is already in the log at seq 4"
    assert [e.id for e in outcomes[0]] == ["one-0", "one-1"]  # type: ignore[union-attr]
    assert [e.id for e in outcomes[2]] == ["three-0"]  # type: ignore[union-attr]
    report = verify_ledger(ledger)
    assert report.ok and report.events == 2 + 3


def test_a_token_revoked_before_the_commit_refuses_only_its_requests(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    """The service found both tokens valid; ``gone`` is revoked before the writer commits
    the group: its request is refused (401 in the service), the other appended."""
    tokens.ensure_table(ledger)
    for name in ("gone", "kept"):
        tokens.new_token(ledger, name, signer="recorder", agent=None, types=[])
    tokens.revoke_token(ledger, "gone")
    rec = keys.recorder
    outcomes, groups = submit_together(
        ledger, [(request(1, "a"), rec), (request(2, "b"), rec)], ["gone", "kept"]
    )
    assert isinstance(outcomes[0], tokens.Revoked)
    assert outcomes[0].message == "unknown or revoked token"
    assert [(e.seq, e.payload["tag"]) for e in outcomes[1]] == [(3, "b"), (4, "b")]  # type: ignore[union-attr]
    assert groups == [(2, 3)]
    assert verify_ledger(ledger).events == 2 + 2
