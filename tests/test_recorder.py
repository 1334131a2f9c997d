"""The recording API (SPEC §6): runs recorded through ``Recorder`` as the CLI and verify see
them, arguments never stored, cost conversion, the failure policy, threads and asyncio, the
gate and correction memory. Real SQLite files and real keys throughout."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger import Recorder
from ledger.errors import EventValidationError, InputError, LedgerError, UnauthorizedWrite
from ledger.recording import failure_class_of, micro_usd
from ledger.store.base import EventFilter
from ledger.store.sqlite import Draft, Ledger, root_key_payload
from ledger.verify.verifier import verify_ledger
from tests.conftest import Cli, LedgerKeys, digest

AGENT = "planner-1"


def contract(tier: int, forbidden: list[str] | None = None) -> dict[str, Any]:
    return {
        "owner": "team-a",
        "version": "1",
        "initial_tier": tier,
        "allowed_side_effects": ["read", "write", "network"],
        "forbidden_actions": forbidden if forbidden is not None else ["payment", "shell.exec"],
        "confidence_threshold_bp": 7000,
    }


@pytest.fixture
def recorder(ledger: Ledger, keys: LedgerKeys, tmp_path: Path) -> Iterator[Recorder]:
    """A recorder on the ``ledger`` fixture's file, signing with its recorder key; ``AGENT``
    registered at T2 (its low-risk runs are approved by the default policy's rule)."""
    ledger.append(Draft("agent.registered", contract(2), agent=AGENT), signer=keys.root)
    rec = Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="recorder")
    yield rec
    rec.close()


def events(ledger: Ledger, run: str | None = None) -> list[Any]:
    if run is None:
        return list(ledger.iter_events())
    return list(ledger.iter_events(filter=EventFilter(run=run)))


def types(ledger: Ledger, run: str) -> list[str]:
    return [e.type for e in events(ledger, run)]


# --- opening ------------------------------------------------------------------------------


def test_recorder_is_exported_lazily_from_ledger() -> None:
    import ledger as pkg
    from ledger.recording import Recorder as Direct

    assert pkg.Recorder is Direct
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pkg.Nope  # noqa: B018


def test_open_refuses_a_governor_key(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(UnauthorizedWrite) as e:
        Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="root")
    assert e.value.message == (
        "key root is a governor key; runs are recorded by recorder or agent keys"
    )


def test_importing_a_core_module_does_not_load_the_recording_api() -> None:
    code = (
        "import sys, ledger, ledger.event.canonical, ledger.store; "
        "print(sorted(m for m in sys.modules if m.startswith(('ledger.recording', 'projections'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_open_refuses_a_revoked_key(ledger: Ledger, keys: LedgerKeys, tmp_path: Path) -> None:
    ledger.append(Draft("key.revoked", {"key_id": keys.recorder.key_id, "reason": "rotated"}),
                  signer=keys.root)  # fmt: skip
    with pytest.raises(UnauthorizedWrite) as e:
        Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="recorder")
    assert e.value.message == "key recorder was revoked at seq 3"


def test_open_refuses_a_key_not_registered(ledger: Ledger, tmp_path: Path) -> None:
    from ledger.crypto.keyfiles import KeyRing

    stray = KeyRing(tmp_path / "keys").create("stray")
    with pytest.raises(UnauthorizedWrite) as e:
        Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="stray")
    assert e.value.message == f"key stray ({stray.key_id}) is not registered in this ledger"


def test_open_refuses_an_unknown_failure_policy(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="on_error: expected closed, open or auto"):
        Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="recorder",
                      on_error="sometimes")  # type: ignore[arg-type]  # fmt: skip


def test_open_a_missing_ledger_is_an_environment_error(tmp_path: Path, keys: LedgerKeys) -> None:
    with pytest.raises(LedgerError) as e:
        Recorder.open(tmp_path / "none.db", keys=tmp_path / "keys", signer="recorder")
    assert e.value.exit_code == 3


# --- lifecycle ----------------------------------------------------------------------------


def test_completed_run_is_shown_by_runs_show(recorder: Recorder, ledger: Ledger, cli: Cli) -> None:
    with recorder.run(agent=AGENT, objective="summarize", run="r-ok", user="u1") as run:
        call = run.tool_called("search", {"q": "ledgers"}, "read")
        run.tool_completed(call, "ok", 12, result={"hits": 3})
        run.usage("anthropic", "m-1", 100, 20, cost_micro_usd=1500)
        run.decision("EXECUTE", 9000, "clear")
        run.set_outputs({"summary": "done"})
    assert types(ledger, "r-ok") == [
        "run.submitted", "run.started", "tool.called", "tool.completed", "llm.usage",
        "decision.recorded", "run.completed",
    ]  # fmt: skip
    shown = cli.json("runs", "show", "r-ok")
    assert (shown["state"], shown["compliant"], shown["verified"]) == ("completed", True, True)
    assert shown["findings"] == []
    done = events(ledger, "r-ok")[-1].payload
    assert done == {"steps_completed": 1, "outputs_digest": digest('{"summary":"done"}')}


class Overloaded(Exception):
    """An SDK-style error whose name says what failed."""


class RateLimitError(Exception):
    pass


def test_failed_run_records_the_failure_class_and_reraises(
    recorder: Recorder, ledger: Ledger, cli: Cli
) -> None:
    with pytest.raises(TimeoutError), recorder.run(agent=AGENT, objective="o", run="r-fail"):
        raise TimeoutError("model did not answer in 30 s")
    last = events(ledger, "r-fail")[-1]
    assert last.type == "run.failed"
    assert last.payload == {
        "failure_class": "llm_timeout",
        "message": "TimeoutError: model did not answer in 30 s",
    }
    shown = cli.json("runs", "show", "r-fail")
    assert (shown["state"], shown["failure_class"]) == ("failed", "llm_timeout")


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (TimeoutError(), "llm_timeout"),
        (RateLimitError(), "rate_limit"),
        (ConnectionResetError(), "dependency_failed"),
        (ValueError("bad"), "validation_error"),
        (Overloaded(), "unknown"),
        (KeyError("k"), "unknown"),
    ],
    ids=["timeout", "sdk-rate-limit", "connection", "value", "unnamed", "other"],
)
def test_failure_class_of_exception(exc: BaseException, failure: str) -> None:
    assert failure_class_of(exc) == failure


def test_failure_class_attribute_wins() -> None:
    e = RuntimeError("tool broke")
    e.failure_class = "tool_error"  # type: ignore[attr-defined]
    assert failure_class_of(e) == "tool_error"


def test_keyboard_interrupt_cancels_the_run(recorder: Recorder, ledger: Ledger, cli: Cli) -> None:
    with pytest.raises(KeyboardInterrupt), recorder.run(agent=AGENT, objective="o", run="r-c"):
        raise KeyboardInterrupt
    last = events(ledger, "r-c")[-1]
    assert (last.type, last.payload) == ("run.cancelled", {"reason": "KeyboardInterrupt"})
    assert cli.json("runs", "show", "r-c")["state"] == "cancelled"


def test_async_cancellation_cancels_the_run(recorder: Recorder, ledger: Ledger) -> None:
    async def body() -> None:
        async with recorder.arun(agent=AGENT, objective="o", run="r-ac"):
            await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.create_task(body())
        while "run.started" not in types(ledger, "r-ac"):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert types(ledger, "r-ac")[-1] == "run.cancelled"
    assert events(ledger, "r-ac")[-1].payload == {"reason": "CancelledError"}


def test_events_after_the_run_ended_are_refused(recorder: Recorder) -> None:
    with recorder.run(agent=AGENT, objective="o", run="r-end") as run:
        pass
    with pytest.raises(InputError, match=r"cannot record tool\.called on a run that is completed"):
        run.tool_called("search", {}, "read")


def test_generated_run_ids_are_distinct(recorder: Recorder) -> None:
    a = recorder.run(agent=AGENT, objective="o")
    b = recorder.run(agent=AGENT, objective="o")
    assert a.id != b.id and a.id.startswith("run-")


# --- values -------------------------------------------------------------------------------


def test_tool_arguments_are_never_stored(
    recorder: Recorder, ledger: Ledger, tmp_path: Path
) -> None:
    secret = "sk-live-DO-NOT-STORE"
    args = {"api_key": secret, "temperature": 0.7, "q": "x"}
    with recorder.run(agent=AGENT, objective="o", run="r-args") as run:
        call = run.tool_called("search", args, "read")
        run.tool_completed(call, "ok", 5, result={"echo": secret})
    called = events(ledger, "r-args")[2]
    expected = digest('{"api_key":"sk-live-DO-NOT-STORE","q":"x","temperature":0.7}')
    assert called.payload == {"tool": "search", "args_digest": expected, "side_effect": "read"}
    assert call.args_digest == expected
    ledger.close()
    assert secret.encode() not in (tmp_path / "l.db").read_bytes()
    wal = tmp_path / "l.db-wal"
    assert not wal.exists() or secret.encode() not in wal.read_bytes()


@pytest.mark.parametrize(
    ("cost", "micro"),
    [
        (0.0000025, 2),
        (0.0000035, 4),
        (0.1 + 0.2, 300000),
        (1.23, 1230000),
        (Decimal("0.0000005"), 0),
        (Decimal("0.0000015"), 2),
        (3, 3000000),
        (0.0, 0),
    ],
    ids=[
        "half-down-to-even",
        "half-up-to-even",
        "float-noise",
        "plain",
        "dec-half-to-0",
        "dec-half-to-2",
        "int",
        "zero",
    ],
)
def test_float_cost_becomes_micro_usd_once_half_to_even(cost: Any, micro: int) -> None:
    assert micro_usd(cost) == micro


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        (float("nan"), "cost_usd: nan is not a finite number"),
        (-0.5, "cost_usd: -0.5 is negative"),
        ("1.0", "cost_usd: expected a number, found str"),
        (True, "cost_usd: expected a number, found bool"),
    ],
    ids=["nan", "negative", "text", "bool"],
)
def test_bad_cost_is_refused_naming_the_field(cost: Any, message: str) -> None:
    with pytest.raises(InputError) as e:
        micro_usd(cost)
    assert e.value.message == message


def test_usage_records_the_converted_cost(recorder: Recorder, ledger: Ledger) -> None:
    with recorder.run(agent=AGENT, objective="o", run="r-cost") as run:
        run.usage("openai", "gpt-x", 10, 5, cost_usd=0.0000025, wallclock_ms=40)
        with pytest.raises(InputError, match="give cost_micro_usd or cost_usd, not both"):
            run.usage("openai", "gpt-x", 10, 5, 3, cost_usd=0.1)
    usage = events(ledger, "r-cost")[2]
    assert usage.payload["cost_micro_usd"] == 2


def test_decision_confidence_ratio_becomes_basis_points(recorder: Recorder, ledger: Ledger) -> None:
    with recorder.run(agent=AGENT, objective="o", run="r-dec") as run:
        run.decision("ESCALATE", confidence=0.55, rationale="unsure")
    assert events(ledger, "r-dec")[2].payload["confidence_bp"] == 5500


def test_plan_digests_step_arguments(recorder: Recorder, ledger: Ledger) -> None:
    with recorder.run(agent=AGENT, objective="o", run="r-plan") as run:
        run.plan([{"tool": "search", "args": {"q": "x"}, "side_effect": "read",
                   "reversible": True}], required_tier=1)  # fmt: skip
    planned = events(ledger, "r-plan")[2].payload
    assert planned["steps"][0]["args_digest"] == digest('{"q":"x"}')
    assert "args" not in planned["steps"][0] and planned["risk"] == "low"


# --- failure policy -----------------------------------------------------------------------


def test_closed_policy_raises_the_refusal_with_the_cli_message(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path
) -> None:
    ledger.append(Draft("agent.registered", contract(2), agent=AGENT), signer=keys.root)
    rec = Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="recorder",
                        on_error="closed")  # fmt: skip
    with rec.run(agent=AGENT, objective="o") as run, pytest.raises(EventValidationError) as e:
        run.decision("MAYBE", 100, "?")
    rec.close()
    assert e.value.message.startswith("event: payload.decision: ")


def test_auto_policy_is_closed_for_write_and_open_for_read(
    recorder: Recorder, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    with recorder.run(agent=AGENT, objective="o", run="r-auto") as run:
        with pytest.raises(EventValidationError):
            run.tool_called("", {}, "write")
        with caplog.at_level(logging.ERROR, logger="ledger.recording"):
            call = run.tool_called("", {}, "read")
        assert call.seq is None
    assert "tool.called not recorded (on_error=auto)" in caplog.text
    assert types(ledger, "r-auto") == ["run.submitted", "run.started", "run.completed"]


def test_open_policy_goes_on_when_the_key_is_refused(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An agent key bound to another agent: every event of this run is refused by §2.5.
    from ledger.crypto.keyfiles import KeyRing

    other = KeyRing(tmp_path / "keys").create("agent-b")
    ledger.append(Draft("key.registered", root_key_payload(other, "agent", "agent-b")),
                  signer=keys.root)  # fmt: skip
    rec = Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="agent-b",
                        on_error="open")  # fmt: skip
    with caplog.at_level(logging.ERROR), rec.run(agent=AGENT, objective="o", run="r-open") as run:
        run.tool_called("deploy", {}, "write")
    rec.close()
    assert types(ledger, "r-open") == []
    assert "not recorded (on_error=open)" in caplog.text


def test_a_recording_error_never_replaces_the_bodys_exception(
    ledger: Ledger, keys: LedgerKeys, tmp_path: Path
) -> None:
    from ledger.crypto.keyfiles import KeyRing

    other = KeyRing(tmp_path / "keys").create("agent-b")
    ledger.append(Draft("key.registered", root_key_payload(other, "agent", "agent-b")),
                  signer=keys.root)  # fmt: skip
    rec = Recorder.open(tmp_path / "l.db", keys=tmp_path / "keys", signer="agent-b",
                        on_error="open")  # fmt: skip
    with pytest.raises(ZeroDivisionError) as e, rec.run(agent=AGENT, objective="o"):
        1 / 0  # noqa: B018
    [note] = e.value.__notes__
    assert note.startswith("govledger: run ") and "end not recorded: event: an agent key" in note
    rec.close()


# --- concurrency --------------------------------------------------------------------------


def test_eight_threads_share_one_recorder_without_gaps(recorder: Recorder, ledger: Ledger) -> None:
    before = ledger.size
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            with recorder.run(agent=AGENT, objective=f"thread {t}", run=f"r-t{t}") as run:
                # 2 + 98 × 2 + 1 + 1 = 200 events per thread
                for i in range(98):
                    call = run.tool_called("search", {"t": t, "i": i}, "read")
                    run.tool_completed(call, "ok", 1)
                run.usage("anthropic", "m-1", 1, 1, cost_micro_usd=1)
        except BaseException as e:  # collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert ledger.size == before + 8 * 200
    seqs = [e.seq for e in events(ledger)]
    assert seqs == list(range(1, ledger.size + 1))
    assert verify_ledger(ledger).ok
    for t in range(8):
        assert types(ledger, f"r-t{t}")[-1] == "run.completed"


def test_hundred_async_runs_record_concurrently(recorder: Recorder, ledger: Ledger) -> None:
    async def one(i: int) -> None:
        async with recorder.arun(agent=AGENT, objective=f"task {i}", run=f"r-a{i}") as run:
            call = await run.tool_called("search", {"i": i}, "read")
            await asyncio.sleep(0)
            await run.tool_completed(call, "ok")
            await run.usage("anthropic", "m-1", 10, 2, cost_usd=0.001)

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(100)))

    before = ledger.size
    asyncio.run(main())
    assert ledger.size == before + 100 * 6
    assert verify_ledger(ledger).ok
    for i in range(100):
        assert types(ledger, f"r-a{i}") == [
            "run.submitted", "run.started", "tool.called", "tool.completed", "llm.usage",
            "run.completed",
        ]  # fmt: skip


def test_batches_waiting_on_a_commit_are_committed_as_one_group_and_a_refusal_fails_no_other(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    """While a writer outside the recorder holds the database, four threads append; the first
    waits on the database, the other three queue behind it and go in as one group, in which
    one batch repeats an id already in the log: it alone is refused (the group is appended
    again batch by batch), the others land contiguous and in order, and the log verifies."""
    import sqlite3

    from ledger.errors import DuplicateEventId
    from ledger.recording.transport import LocalTransport

    ledger.append(Draft("x.note", {"n": 0}, id="taken"), signer=keys.recorder)
    transport = LocalTransport(Ledger.open(ledger.path), keys.recorder)
    holder = sqlite3.connect(ledger.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    results: dict[int, Any] = {}

    def append(i: int) -> None:
        drafts = [Draft("x.note", {"t": i, "k": k}) for k in range(3)]
        if i == 2:
            drafts[1] = Draft("x.note", {"t": i, "k": 1}, id="taken")
        try:
            results[i] = transport.append(drafts)
        except LedgerError as e:
            results[i] = e

    first = threading.Thread(target=append, args=(0,))
    first.start()
    while not transport._committing.locked():  # the first batch is committing (and waiting)
        pass
    others = [threading.Thread(target=append, args=(i,)) for i in (1, 2, 3)]
    for t in others:
        t.start()
    while len(transport._queue) < 3:  # all three queued behind it
        pass
    holder.rollback()
    holder.close()
    for t in [first, *others]:
        t.join(timeout=60)
    assert isinstance(results[2], DuplicateEventId) and "at seq" in str(results[2])
    landed = {i: [r.seq for r in results[i]] for i in (0, 1, 3)}
    for seqs in landed.values():
        assert seqs == list(range(seqs[0], seqs[0] + 3))
    assert sorted(s for seqs in landed.values() for s in seqs) == list(range(4, 13))
    stored = [e for e in ledger.iter_events(from_seq=4)]
    assert [(e.payload["t"], e.payload["k"]) for e in stored] == [
        (i, k) for i in sorted(landed, key=lambda i: landed[i][0]) for k in range(3)
    ]
    assert verify_ledger(ledger).ok
    transport.ledger.close()
