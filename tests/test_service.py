"""`govledger serve` as a client meets it: a real server process on 127.0.0.1, a real HTTP
client, a real ledger file and real keys (SPEC §7)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sqlite3
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.service.tiles import TileId, encode_index, parse_path, tiles_for
from ledger.tlog.merkle import verify_consistency
from ledger.tlog.notes import verify_checkpoint
from ledger.tlog.proofs import verify_event_proof
from tests.conftest import Cli, agent_registration
from tests.merkle_reference import mth

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}


class Server:
    """``govledger serve --port 0`` in a child process (or another server ``command``, say
    ``("witness", "serve")``); ``url`` once it listens."""

    def __init__(
        self,
        cli: Cli,
        *extra: str,
        command: tuple[str, ...] = ("serve",),
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        env = {**os.environ, "GOVLEDGER_KEYS": str(cli.keys)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from ledger.cli import main; main()",
             "--db", str(cli.db), *command, "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        assert "listening on http" in line, (line, self.proc.stderr)
        self.url = line.split("listening on ")[1].strip()
        self.client = httpx.Client(base_url=self.url, timeout=60, verify=verify)
        # The access log is read as it comes: a full pipe would stop the server.
        self._err: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err.append(line)

    def post(self, body: Any, token: str | None, **kw: Any) -> httpx.Response:
        headers = {**JSON, **kw.pop("headers", {})}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        return self.client.post("/v1/events", content=content, headers=headers, **kw)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        self.client.close()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        self._reader.join(timeout=60)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return b"".join(self._err).decode()


@pytest.fixture
def served(ready: Cli) -> Iterator[tuple[Cli, Server, str]]:
    """A ledger with recorder key ``rec``, a token ``t`` for it, and a server on it."""
    token = ready("tokens", "new", "t", "--signer", "rec").stdout.strip()
    server = Server(ready)
    yield ready, server, token
    if server.proc.poll() is None:
        server.stop()


def note(i: int, **kw: Any) -> dict[str, Any]:
    return {"type": "x.note", "payload": {"i": i}, **kw}


def exported(cli: Cli) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cli("export").stdout.splitlines()]


def size(cli: Cli) -> int:
    return int(cli.json("verify")["events"])


def verified(cli: Cli) -> dict[str, Any]:
    report = cli.json("verify")
    assert report["ok"], report["problems"][:2]
    return dict(report)


# --- appends --------------------------------------------------------------------------------


def append_concurrently(
    url: str,
    token: str,
    clients: int,
    each: int,
    *,
    body: Any = None,
    per_connection: int | None = None,
) -> list[dict[str, Any]]:
    """``clients`` threads each post ``each`` requests (``body(c, i)``, one event of agent
    ``a<c>`` by default), each waiting for its 201, a new connection every ``per_connection``
    requests; the receipts of all."""
    make = body or (lambda c, i: note(i, agent=f"a{c}"))
    per = per_connection or each

    def work(c: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for start in range(0, each, per):
            with httpx.Client(base_url=url, timeout=60) as client:
                for i in range(start, min(start + per, each)):
                    r = client.post(
                        "/v1/events",
                        content=json.dumps(make(c, i)),
                        headers={**JSON, "authorization": f"Bearer {token}"},
                    )
                    assert r.status_code == 201, r.text
                    out += r.json()
        return out

    with ThreadPoolExecutor(clients) as pool:
        return [a for part in pool.map(work, range(clients)) for a in part]


def assert_stored_and_verified(cli: Any, acks: list[dict[str, Any]], total: int) -> None:
    """The receipts are seq 3.. (after init's two events) with no gap, each is stored as
    acknowledged, and the log of 2 + ``total`` events verifies."""
    assert sorted(a["seq"] for a in acks) == list(range(3, 3 + total))
    stored = {e["seq"]: e for e in exported(cli)}
    assert len(stored) == 2 + total
    for a in acks:
        assert (stored[a["seq"]]["hash"], stored[a["seq"]]["id"]) == (a["hash"], a["id"])
    assert verified(cli)["events"] == 2 + total


def test_concurrent_single_appends_make_one_contiguous_verified_log(
    served: tuple[Cli, Server, str],
) -> None:
    cli, server, token = served
    clients, each = 16, 15
    acks = append_concurrently(server.url, token, clients, each)
    assert_stored_and_verified(cli, acks, clients * each)
    metrics = server.client.get("/metrics").text
    assert f"govledger_appended_events_total {clients * each}" in metrics
    assert "govledger_group_events_count" in metrics


class Load:
    """16 threads posting pairs of events until the service goes away; ``wait()`` returns
    once ``enough`` events are acknowledged, ``join()`` once every thread has stopped."""

    def __init__(self, url: str, token: str, enough: int) -> None:
        self.acks: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._enough = enough
        self._reached = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, args=(c, url, token)) for c in range(16)
        ]
        for t in self._threads:
            t.start()

    def _work(self, c: int, url: str, token: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(10_000):
                try:
                    r = client.post(
                        "/v1/events",
                        content=json.dumps([note(i, agent=f"a{c}"), note(i, agent=f"a{c}")]),
                        headers={**JSON, "authorization": f"Bearer {token}"},
                    )
                except httpx.HTTPError:
                    return  # the service is gone
                assert r.status_code == 201, r.text
                with self._lock:
                    self.acks.extend(r.json())
                    if len(self.acks) >= self._enough:
                        self._reached.set()

    def wait(self) -> None:
        self._reached.wait(timeout=120)

    def join(self) -> list[dict[str, Any]]:
        for t in self._threads:
            t.join()
        return self.acks


def test_acknowledged_events_survive_sigkill_mid_load(served: tuple[Cli, Server, str]) -> None:
    cli, server, token = served
    load = Load(server.url, token, 200)
    load.wait()
    server.stop(signal.SIGKILL)
    acks = load.join()
    assert len(acks) >= 200
    restarted = Server(cli)
    try:
        assert restarted.client.get("/healthz").json()["ok"] is True
        stored = {e["seq"]: e["hash"] for e in exported(cli)}
        assert all(stored.get(a["seq"]) == a["hash"] for a in acks)
        assert verified(cli)["events"] == len(stored)
        # A request's events are contiguous: pairs were acknowledged as seq n, n + 1.
        r = restarted.post(note(1), token)
        assert r.status_code == 201
    finally:
        restarted.stop()


def test_one_request_error_fails_no_other(served: tuple[Cli, Server, str]) -> None:
    """Eight concurrent requests, two of them with the same id: whatever groups they land in,
    exactly one of the two is refused (409) and the other seven are appended whole."""
    cli, server, token = served
    bodies = [[note(i, id=f"req-{i}-a"), note(i, id=f"req-{i}-b")] for i in range(8)]
    bodies[5][1]["id"] = "req-2-b"

    def send(body: list[dict[str, Any]]) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            return client.post(
                "/v1/events", content=json.dumps(body),
                headers={**JSON, "authorization": f"Bearer {token}"},
            )  # fmt: skip

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, bodies))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 7 + [409]
    refused = next(r for r in responses if r.status_code == 409).json()["error"]
    assert refused["kind"] == "duplicate_id"
    assert "'req-2-b' is already in the log at seq" in refused["detail"]
    for r in responses:
        if r.status_code == 201:
            seqs = [a["seq"] for a in r.json()]
            assert seqs[1] == seqs[0] + 1
    assert verified(cli)["events"] == 2 + 14


# --- bad input ------------------------------------------------------------------------------


def _bad_cases(cli: Cli, token: str) -> list[tuple[str, dict[str, Any], int, str, str]]:
    """(name, request, status, kind, detail) for each bad request."""
    bound = cli("tokens", "new", "bound", "--signer", "rec", "--agent", "a1").stdout.strip()
    typed = cli("tokens", "new", "typed", "--signer", "rec", "--types", "x.note").stdout.strip()
    gone = cli("tokens", "new", "gone", "--signer", "rec").stdout.strip()
    cli("tokens", "revoke", "gone")
    d = agent_registration("a1")
    registration = {"type": d.type, "payload": d.payload, "agent": d.agent}
    return [
        ("malformed JSON", {"body": b'{"type": "x.note",', "token": token}, 400, "malformed",
         "request body: invalid JSON"),
        ("10 MB body", {"body": b"[" + b" " * 10_000_000 + b"]", "token": token}, 413,
         "too_large", "request body is 10000002 bytes, over 4194304"),
        ("wrong content type", {"body": json.dumps(note(1)), "token": token,
                                "headers": {"content-type": "text/plain"}}, 415,
         "unsupported_media_type", "Content-Type 'text/plain': expected application/json"),
        ("float", {"body": b'{"type": "x.note", "payload": {"a": 1.5}}', "token": token}, 400,
         "malformed", "request body: $.payload.a: number 1.5 is not an integer"),
        ("missing payload", {"body": {"type": "x.note"}, "token": token}, 400, "malformed",
         "event: missing field 'payload'"),
        ("ledger field", {"body": [note(1), {**note(2), "seq": 9}], "token": token}, 400,
         "malformed", "event 2: field 'seq' is assigned by the ledger and cannot be imported"),
        ("unknown type", {"body": {"type": "nope", "payload": {}}, "token": token}, 422,
         "invalid", "event: type: unknown event type 'nope'"),
        ("one bad event of a batch", {"body": [note(1), {"type": "run.started", "payload": {}}],
                                      "token": token}, 422, "invalid", "event 2: "),
        ("token for another agent", {"body": note(1, agent="a2"), "token": bound}, 403,
         "forbidden", "event: token bound appends only for agent 'a1', not 'a2'"),
        ("type not allowed", {"body": {"type": "x.other", "payload": {}}, "token": typed}, 403,
         "forbidden", "event: token typed may not append x.other (allowed: x.note)"),
        ("signer not allowed", {"body": registration, "token": token}, 403, "forbidden",
         "event: a recorder key may not sign agent.registered (key rec)"),
        ("revoked token", {"body": note(1), "token": gone}, 401, "unauthenticated",
         "unknown or revoked token"),
        ("no token", {"body": note(1), "token": None}, 401, "unauthenticated",
         "missing Authorization: Bearer <token>"),
        ("unknown token", {"body": note(1), "token": "glt_nope"}, 401, "unauthenticated",
         "unknown or revoked token"),
        ("duplicate id", {"body": note(1, id="first"), "token": token}, 409, "duplicate_id",
         "event: id 'first' is already in the log at seq 3"),
        ("oversized event body", {"body": {"type": "x.note", "payload": {"b": "x" * 50_000}},
                                  "token": token}, 422, "invalid",
         "event: event body is 50"),
        ("empty array", {"body": [], "token": token}, 400, "malformed",
         "request body holds no event"),
    ]  # fmt: skip


def test_bad_requests_get_their_status_and_write_nothing(
    served: tuple[Cli, Server, str],
) -> None:
    cli, server, token = served
    assert server.post(note(0, id="first"), token).status_code == 201
    failures = []
    for name, req, status, kind, detail in _bad_cases(cli, token):
        before = server.client.get("/healthz").json()["size"]
        r = server.post(req["body"], req["token"], headers=req.get("headers", {}))
        body = r.json()
        after = server.client.get("/healthz").json()["size"]
        got = (r.status_code, body["error"]["kind"], detail in body["error"]["detail"], after)
        if got != (status, kind, True, before):
            failures.append((name, r.status_code, body))
    assert failures == [], json.dumps(failures, indent=1)
    assert verified(cli)["events"] == 3


def test_json_lines_requests_name_their_lines(served: tuple[Cli, Server, str]) -> None:
    _, server, token = served
    lines = json.dumps(note(1)) + "\n" + json.dumps({"type": "x.note"}) + "\n"
    r = server.post(lines, token, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 400
    assert r.json()["error"]["detail"] == "line 2: missing field 'payload'"
    r = server.post(
        json.dumps(note(1)) + "\n\n" + json.dumps(note(2)) + "\n", token,
        headers={"content-type": "application/x-ndjson"},
    )  # fmt: skip
    assert r.status_code == 201
    assert [a["seq"] for a in r.json()] == [3, 4]


def test_revoking_a_token_takes_effect_at_once(served: tuple[Cli, Server, str]) -> None:
    cli, server, token = served
    assert server.post(note(1), token).status_code == 201
    cli("tokens", "revoke", "t")
    assert server.post(note(2), token).status_code == 401
    listed = cli.json_lines("tokens", "list")
    assert [(t["name"], t["revoked"] is not None) for t in listed] == [("t", True)]
    assert "glt_" not in json.dumps(listed)


def test_tokens_store_only_a_digest(ready: Cli) -> None:
    token = ready("tokens", "new", "t", "--signer", "rec").stdout.strip()
    assert token.startswith("glt_")
    with sqlite3.connect(ready.db) as db:
        rows = db.execute("SELECT * FROM service_tokens").fetchall()
    assert len(rows) == 1 and token not in rows[0]
    assert hashlib.sha256(token.encode()).hexdigest() in rows[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["t2", "--signer", "nobody"], "error: key 'nobody' not found: no file "),
        (["bad name", "--signer", "rec"], "error: token name 'bad name': expected 1-64"),
        (
            ["t", "--signer", "rec", "--types", "x.note,tool.calld"],
            "error: --types: unknown event type 'tool.calld'",
        ),
    ],
    ids=["unknown-signer", "bad-name", "unknown-type"],
)
def test_tokens_new_refuses_bad_input(ready: Cli, args: list[str], message: str) -> None:
    result = ready("tokens", "new", *args, ok=False)
    assert result.exit_code in (2, 3)
    assert result.stderr.startswith(message), result.stderr
    assert ready.json_lines("tokens", "list") == []


def test_a_second_token_of_the_same_name_is_refused(ready: Cli) -> None:
    ready("tokens", "new", "t", "--signer", "rec")
    result = ready("tokens", "new", "t", "--signer", "rec", ok=False)
    assert result.exit_code == 2
    assert result.stderr == ("error: token t already exists (revoke it or choose another name)\n")


# --- reads, proofs ------------------------------------------------------------------------


def test_reads_filter_events_and_prove_them(served: tuple[Cli, Server, str]) -> None:
    cli, server, token = served
    r = server.post([note(i, agent=f"a{i % 2}", run=f"r{i}") for i in range(6)], token)
    assert r.status_code == 201
    got = server.client.get("/v1/events", params={"agent": "a1", "limit": 2})
    assert got.headers["content-type"].startswith("application/jsonl")
    events = [json.loads(line) for line in got.text.splitlines()]
    assert [(e["seq"], e["agent"]) for e in events] == [(4, "a1"), (6, "a1")]
    seq4 = cli("export", "--from", "4", "--to", "4").stdout
    assert got.text.splitlines()[0] == seq4.strip()
    assert server.client.get("/v1/proof/4").status_code == 404  # no checkpoint signed yet
    cli("checkpoint", "--signer", "root")
    proof = server.client.get("/v1/proof/4")
    assert proof.status_code == 200, proof.text
    vkey = cli("keys", "vkey", "root").stdout.strip()
    assert verify_event_proof(proof.text, vkey=vkey).hash == events[0]["hash"]
    consistency = server.client.get("/v1/consistency", params={"old": 3}).json()
    assert consistency["old"] == 3 and consistency["size"] == 8
    leaves = [bytes.fromhex(e["hash"]) for e in exported(cli)]
    verify_consistency(
        size1=3, size2=8, root1=mth(leaves[:3]), root2=mth(leaves),
        proof=[base64.b64decode(h) for h in consistency["proof"]],
    )  # fmt: skip
    assert verify_checkpoint(consistency["checkpoint"], vkey).root == mth(leaves)
    assert server.client.get("/v1/proof/99").json()["error"]["kind"] == "not_found"
    assert server.client.get("/v1/runs/nope").json() == {
        "error": {"kind": "not_found", "detail": "no run 'nope' in the ledger"}
    }
    assert server.client.get("/v1/tiers").status_code == 200
    assert server.client.get("/v1/findings").status_code == 200
    assert server.client.get("/nowhere").json()["error"]["kind"] == "not_found"


def test_shutdown_is_graceful_and_logs_one_line_per_request(
    served: tuple[Cli, Server, str],
) -> None:
    cli, server, token = served
    assert server.post(note(1), token).status_code == 201
    assert server.client.get("/healthz").status_code == 200
    err = server.stop(signal.SIGTERM)
    # uvicorn ends by re-raising the signal it handled, after the graceful shutdown.
    assert server.proc.returncode in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("POST", "/v1/events", 201),
        ("GET", "/healthz", 200),
    ]
    assert lines[0]["token"] == "t" and lines[0]["events"] == 1
    assert verified(cli)["events"] == 3


# --- tiles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "path"),
    [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_tile_indexes_are_written_in_groups_of_three(n: int, path: str) -> None:
    assert encode_index(n) == path
    assert parse_path(f"tile/0/{path}") == TileId(0, n)


def _entries(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        (length,) = struct.unpack(">H", data[i : i + 2])
        out.append(data[i + 2 : i + 2 + length])
        i += 2 + length
    return out


def _leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def test_tiles_recompute_the_signed_root(served: tuple[Cli, Server, str], tmp_path: Path) -> None:
    """At sizes with partial and full tiles, the entries and hash tiles served give the root
    of the signed checkpoint, and `govledger tiles DIR` writes the same bytes."""
    cli, server, token = served
    vkey = cli("keys", "vkey", "root").stdout.strip()
    appended = 2
    for target in (7, 256, 300, 513):
        while appended < target:
            batch = [note(i) for i in range(appended, min(target, appended + 100))]
            assert server.post(batch, token).status_code == 201
            appended += len(batch)
        cli("checkpoint", "--signer", "root")
        cp = verify_checkpoint(server.client.get("/checkpoint").text, vkey)
        assert cp.size == target
        leaves: list[bytes] = []
        for n in range(0, (target + 255) // 256):
            w = min(256, target - n * 256)
            suffix = "" if w == 256 else f".p/{w}"
            entries = _entries(
                server.client.get(f"/tile/entries/{encode_index(n)}{suffix}").content
            )
            hashes = server.client.get(f"/tile/0/{encode_index(n)}{suffix}").content
            assert len(entries) == w and len(hashes) == 32 * w
            assert b"".join(_leaf(e) for e in entries) == hashes
            leaves += [hashes[i : i + 32] for i in range(0, len(hashes), 32)]
        assert mth(leaves) == cp.root
        if target >= 256:
            full = target // 256
            level1 = server.client.get(f"/tile/1/000.p/{full}").content
            assert level1 == b"".join(mth(leaves[i * 256 : (i + 1) * 256]) for i in range(full))
        out = tmp_path / f"tiles-{target}"
        cli("tiles", str(out))
        assert (out / "checkpoint").read_text() == server.client.get("/checkpoint").text
        for tile in tiles_for(target):
            assert (out / tile.path).read_bytes() == server.client.get("/" + tile.path).content
    assert server.client.get("/tile/0/003").status_code == 404
    assert server.client.get("/tile/0/000.p/0").status_code == 404
    body = base64.b64decode(json.loads(server.client.get("/v1/events?from=3&to=3").text)["sig"])
    assert len(body) == 64


def test_an_oversized_event_body_is_refused_by_append_and_import(ready: Cli) -> None:
    big = json.dumps({"b": "x" * 49_100})
    result = ready("append", "x.note", "--signer", "rec", "--payload", big, ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: event: event body is ")
    assert "bytes, over the limit of 49146 bytes" in result.stderr
    line = json.dumps({"type": "x.note", "payload": {"b": "x" * 49_100}}) + "\n"
    path = ready.tmp / "big.jsonl"
    path.write_text(line)
    result = ready("import", str(path), "--signer", "rec", ok=False)
    assert result.exit_code == 2
    assert "line 1: event body is " in result.stderr
    assert size(ready) == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_over_tls_appends_for_a_client_that_trusts_its_certificate(
    ready: Cli, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """`serve --tls-cert --tls-key` (one process or several) serves HTTPS: bearer tokens never
    cross the network in clear; `Recorder.connect` checks the certificate like any client."""
    from ledger.event.drafts import Draft
    from ledger.recording import Recorder
    from tests.conftest import tls_for_localhost

    token = ready("tokens", "new", "t", "--signer", "rec").stdout.strip()
    cert, key = tls_for_localhost(ready.tmp)
    trust = ssl.create_default_context(cafile=str(cert))
    server = Server(ready, "--tls-cert", str(cert), "--tls-key", str(key),
                    "--workers", str(workers), verify=trust)  # fmt: skip
    try:
        assert server.url.startswith("https://127.0.0.1:")
        assert server.post(note(1), token).status_code == 201
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.url + "/healthz")  # the machine's own authorities do not know it
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        receipts = Recorder.connect(server.url, token=token).record([Draft("x.note", {"i": 2})])
        assert receipts is not None and receipts[0].seq == 4
    finally:
        server.stop()
    assert [e["payload"] for e in exported(ready)[2:]] == [{"i": 1}, {"i": 2}]
    assert verified(ready)["ok"]


def test_serve_refuses_tls_files_that_are_not_a_certificate_and_its_key(ready: Cli) -> None:
    (ready.tmp / "not.pem").write_text("not a certificate\n", encoding="utf-8")
    args = ["--tls-cert", str(ready.tmp / "not.pem"), "--tls-key", str(ready.tmp / "not.pem")]
    result = ready("serve", "--port", "0", *args, ok=False)
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: --tls-cert {ready.tmp / 'not.pem'} --tls-key ")
    result = ready("serve", "--port", "0", "--tls-key", "k.pem", ok=False)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --tls-cert and --tls-key go together: give both, or neither\n",
    )
