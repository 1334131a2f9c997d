"""`govledger serve --workers 2` as a client meets it: two real server processes sharing one
port and one ledger file under a parent process, real HTTP clients on 127.0.0.1, real keys."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import test_recorder_service as recorder_tests
from tests.conftest import Cli
from tests.test_service import (
    JSON,
    Load,
    Server,
    append_concurrently,
    assert_stored_and_verified,
    exported,
    note,
    verified,
)

pytestmark = pytest.mark.slow

WORKERS = ("--workers", "2")


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc``)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def descendants(pid: int) -> list[int]:
    todo, out = [pid], []
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(what: str, ok: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def metric(server: Server, name: str) -> float:
    text = server.client.get("/metrics").text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert m is not None, (name, text)
    return float(m.group(1))


def post(url: str, token: str, body: Any) -> httpx.Response:
    """One request on a connection of its own: the kernel hands it to either process."""
    with httpx.Client(base_url=url, timeout=60) as c:
        return c.post(
            "/v1/events",
            content=json.dumps(body),
            headers={**JSON, "authorization": f"Bearer {token}"},
        )


@pytest.fixture
def two(ready: Cli) -> Iterator[tuple[Cli, Server, str]]:
    """A ledger with recorder key ``rec`` and token ``t``, served by two processes."""
    token = ready("tokens", "new", "t", "--signer", "rec").stdout.strip()
    server = Server(ready, *WORKERS)
    yield ready, server, token
    if server.proc.poll() is None:
        server.stop()


def test_many_clients_over_two_processes_make_one_contiguous_verified_log(
    two: tuple[Cli, Server, str],
) -> None:
    """64 clients × 200 single-event appends; each client opens a new connection every 20
    requests, so both processes serve many of them."""
    cli, server, token = two
    clients, each, per_connection = 64, 200, 20
    assert len(children(server.proc.pid)) == 2

    acks = append_concurrently(server.url, token, clients, each, per_connection=per_connection)
    total = clients * each
    assert_stored_and_verified(cli, acks, total)
    # /metrics, from whichever process answers, counts the appends of both.
    assert metric(server, "govledger_appended_events_total") == total
    assert metric(server, "govledger_append_requests_total") == total
    assert metric(server, "govledger_group_events_sum") == total
    assert metric(server, "govledger_append_seconds_count") == total
    # Reading and validating the bodies is a part of the appends' time, not all of it.
    read = metric(server, "govledger_append_read_seconds_total")
    assert 0 < read < metric(server, "govledger_append_seconds_sum")
    assert metric(server, 'govledger_http_responses_total{code="201"}') == total
    assert metric(server, "govledger_server_processes") == 2
    err = server.stop()
    served_by = Counter(
        line["worker"]
        for line in map(json.loads, filter(lambda x: x.startswith("{"), err.splitlines()))
        if line["path"] == "/v1/events"
    )
    assert set(served_by) == {0, 1} and sum(served_by.values()) == total


def test_acknowledged_events_survive_sigkill_of_the_whole_service(
    two: tuple[Cli, Server, str],
) -> None:
    cli, server, token = two
    load = Load(server.url, token, 400)
    load.wait()
    # The parent, both server processes and their signing workers, at once.
    everyone = descendants(server.proc.pid)
    for pid in everyone:
        os.kill(pid, signal.SIGKILL)
    server.stop(signal.SIGKILL)
    acks = load.join()
    assert len(acks) >= 400
    restarted = Server(cli, *WORKERS)
    try:
        assert restarted.client.get("/healthz").json()["ok"] is True
        stored = {e["seq"]: e["hash"] for e in exported(cli)}
        assert all(stored.get(a["seq"]) == a["hash"] for a in acks)
        assert verified(cli)["events"] == len(stored)
        # Every request's events are contiguous: the log holds whole pairs after the two
        # events of init.
        assert (len(stored) - 2) % 2 == 0
        assert post(restarted.url, token, note(1)).status_code == 201
    finally:
        restarted.stop()


def test_sigterm_stops_every_process_gracefully(two: tuple[Cli, Server, str]) -> None:
    cli, server, token = two
    pids = children(server.proc.pid)
    for i in range(6):
        assert post(server.url, token, note(i)).status_code == 201
    assert server.client.get("/healthz").json() == {"ok": True, "size": 8}
    err = server.stop(signal.SIGTERM)
    assert server.proc.returncode in (0, -signal.SIGTERM)
    assert not any(alive(p) for p in pids)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        *[("POST", "/v1/events", 201)] * 6,
        ("GET", "/healthz", 200),
    ]
    assert all(x["worker"] in (0, 1) for x in lines)
    assert verified(cli)["events"] == 8


def test_a_server_process_killed_alone_is_replaced(two: tuple[Cli, Server, str]) -> None:
    cli, server, token = two
    for i in range(10):
        assert post(server.url, token, note(i)).status_code == 201
    first = children(server.proc.pid)
    victim = first[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(
        "a replacement process",
        lambda: len(now := children(server.proc.pid)) == 2 and victim not in now,
    )
    # Served all along, by the survivor and then by both.
    for i in range(30):
        assert post(server.url, token, note(100 + i)).status_code == 201
    # The counts of the dead process stay: its replacement took over its slot.
    assert metric(server, "govledger_appended_events_total") == 40
    assert metric(server, "govledger_server_restarts_total") == 1
    err = server.stop()
    [line] = [x for x in err.splitlines() if "started another" in x]
    assert re.fullmatch(
        rf"govledger serve: server process [01] \(pid {victim}\) was killed by signal 9; "
        r"started another \(pid \d+\)",
        line,
    )
    assert verified(cli)["events"] == 42


def test_server_processes_stop_when_the_parent_is_killed(two: tuple[Cli, Server, str]) -> None:
    cli, server, token = two
    assert post(server.url, token, note(1)).status_code == 201
    pids = children(server.proc.pid)
    server.stop(signal.SIGKILL)
    wait_for("the server processes to stop", lambda: not any(alive(p) for p in pids))
    assert verified(cli)["events"] == 3


def test_revoking_a_token_takes_effect_in_every_process(two: tuple[Cli, Server, str]) -> None:
    cli, server, token = two
    # Enough connections that both processes have found (and cached) the token.
    for i in range(12):
        assert post(server.url, token, note(i)).status_code == 201
    cli("tokens", "revoke", "t")
    for i in range(12):
        r = post(server.url, token, note(i))
        assert r.status_code == 401, r.text
        assert r.json()["error"]["detail"] == "unknown or revoked token"
    assert verified(cli)["events"] == 14


def test_reads_tiles_and_checkpoints_from_either_process(ready: Cli) -> None:
    token = ready("tokens", "new", "t", "--signer", "rec").stdout.strip()
    server = Server(ready, *WORKERS, "--checkpoint-signer", "root")
    try:
        for i in range(5):
            assert post(server.url, token, note(i, run="r1")).status_code == 201
        for _ in range(6):  # each on a connection of its own: both processes answer
            with httpx.Client(base_url=server.url, timeout=60) as c:
                assert c.get("/healthz").json() == {"ok": True, "size": 7}
                assert len(c.get("/v1/events?run=r1").text.splitlines()) == 5
                assert c.get("/checkpoint").text.splitlines()[1] == "7"
                assert c.get("/v1/proof/4").status_code == 200
                assert c.get("/tile/0/000.p/7").content.__len__() == 7 * 32
                assert c.get("/v1/tiers").status_code == 200
                assert c.get("/v1/findings").status_code == 200
    finally:
        server.stop()
    assert verified(ready)["events"] == 7


def test_recorder_connect_over_two_processes(ready: Cli) -> None:
    served = recorder_tests.Served(ready, *WORKERS)
    try:
        recorder_tests.test_a_denied_call_in_a_connected_run_is_a_finding(served)
        recorder_tests.test_a_run_approved_remotely_is_judged_from_the_head(served)
    finally:
        served.server.stop()


def test_one_process_is_the_default(ready: Cli) -> None:
    server = Server(ready)
    try:
        assert children(server.proc.pid) == [] or all(
            "pool_worker" in Path(f"/proc/{p}/cmdline").read_text()
            for p in children(server.proc.pid)
        )
        assert metric(server, "govledger_server_processes") == 1
    finally:
        server.stop()


def test_a_process_that_cannot_start_stops_the_service(tmp_path: Path) -> None:
    from ledger.service.server import listen
    from ledger.service.workers import ServerFailed, Supervisor

    missing = tmp_path / "gone.db"  # there when the parent checked, gone when they start
    spec = {"db": str(missing), "keys_dir": None, "checkpoint_signer": None, "max_body": 100,
            "lock": None}  # fmt: skip
    with listen("127.0.0.1", 0) as sock:
        supervisor = Supervisor(spec, sock, 2)
        with pytest.raises(ServerFailed) as e:
            supervisor.start()
    assert re.fullmatch(
        r"server process [01] stopped before it was ready \(exited with code 3\)", e.value.message
    )
    assert e.value.exit_code == 3
    assert all(p.proc.returncode is not None for p in supervisor.processes)
