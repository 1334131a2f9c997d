"""The recording API on PostgreSQL: ``Recorder.open("postgresql://…")`` shared by threads and
asyncio tasks, the gate and correction memory answered from the read models of the database.
The tests of ``test_recorder`` and ``test_recorder_gate`` again, with their fixtures on a fresh
database each (``tests/pg_stores.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Recorder
from ledger.store.postgres import PgLedger
from ledger.store.sqlite import Draft
from ledger.verify.verifier import verify_ledger
from tests.conftest import LedgerKeys
from tests.pg_stores import PgCli, ledger
from tests.test_recorder import (
    AGENT,
    contract,
    test_completed_run_is_shown_by_runs_show,
    test_eight_threads_share_one_recorder_without_gaps,
    test_hundred_async_runs_record_concurrently,
)
from tests.test_recorder_gate import (
    T1,
    T2,
    test_async_run_checks_tools_through_the_gate,
    test_denial_is_recorded_as_a_guardrail_before_returning,
    test_grants_decide_for_an_approved_run_below_the_contract_tier,
    test_lessons_are_the_emerged_correction_patterns,
    test_the_gate_predicts_the_finding_of_the_call,
    test_threads_check_and_record_through_one_recorder,
)

__all__ = [
    "ledger",
    "test_async_run_checks_tools_through_the_gate",
    "test_completed_run_is_shown_by_runs_show",
    "test_denial_is_recorded_as_a_guardrail_before_returning",
    "test_eight_threads_share_one_recorder_without_gaps",
    "test_grants_decide_for_an_approved_run_below_the_contract_tier",
    "test_hundred_async_runs_record_concurrently",
    "test_lessons_are_the_emerged_correction_patterns",
    "test_the_gate_predicts_the_finding_of_the_call",
    "test_threads_check_and_record_through_one_recorder",
]


@pytest.fixture
def cli(tmp_path: Path, pg_url: str) -> PgCli:
    return PgCli(tmp_path, pg_url)


def _open(pg_url: str, tmp_path: Path, **kw: object) -> Recorder:
    return Recorder.open(pg_url, keys=tmp_path / "keys", signer="recorder", **kw)  # type: ignore[arg-type]


@pytest.fixture
def recorder(ledger: PgLedger, keys: LedgerKeys, tmp_path: Path, pg_url: str) -> Iterator[Recorder]:
    """``test_recorder.recorder`` on PostgreSQL."""
    ledger.append(Draft("agent.registered", contract(2), agent=AGENT), signer=keys.root)
    rec = _open(pg_url, tmp_path)
    yield rec
    rec.close()


@pytest.fixture
def rec(ledger: PgLedger, keys: LedgerKeys, tmp_path: Path, pg_url: str) -> Iterator[Recorder]:
    """``test_recorder_gate.rec`` on PostgreSQL."""
    ledger.append(Draft("agent.registered", contract(2), agent=T2), signer=keys.root)
    ledger.append(Draft("agent.registered", contract(1), agent=T1), signer=keys.root)
    r = _open(pg_url, tmp_path)
    yield r
    r.close()


def test_the_recorder_opens_the_postgres_store(recorder: Recorder) -> None:
    assert isinstance(recorder.ledger, PgLedger)


def test_threads_and_tasks_share_one_recorder_and_its_gate(
    rec: Recorder, ledger: PgLedger, cli: PgCli
) -> None:
    """Threads each running an asyncio loop of runs, all through one recorder: every event
    lands without a gap, every denial is a finding of its run."""
    import asyncio
    import threading

    errors: list[BaseException] = []

    async def one(t: int, i: int) -> None:
        async with rec.arun(agent=T2, objective="o", run=f"r-{t}-{i}") as run:
            assert (await run.check_tool("search", "read")).allowed
            call = await run.tool_called("search", {"i": i}, "read")
            await run.tool_completed(call, "ok")
            assert not (await run.check_tool("pay", "payment")).allowed

    def work(t: int) -> None:
        async def main() -> None:
            await asyncio.gather(*(one(t, i) for i in range(10)))

        try:
            asyncio.run(main())
        except BaseException as e:  # collected for the assertion below
            errors.append(e)

    before = ledger.size
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert ledger.size == before + 4 * 10 * 6
    assert [e.seq for e in ledger.iter_events()] == list(range(1, ledger.size + 1))
    assert verify_ledger(ledger).ok
    findings = cli.json_lines("findings", "--kind", "guardrail_triggered")
    assert len(findings) == 40
