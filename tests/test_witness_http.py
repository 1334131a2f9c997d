"""C2SP tlog-witness over HTTP, both sides: ``govledger witness serve`` in a real process on
127.0.0.1, asked by a real HTTP client and by ``govledger witness request``, with real ledger
files, real keys and the witness's state on disk. Statuses are checked against the spec text
(``tests/vectors/c2sp/tlog-witness.md``)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import signal
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from ledger.service.witness_app import SIZE_TYPE, STATUSES
from ledger.store.sqlite import Draft, Ledger
from ledger.tlog.cosignatures import parse_witness_vkey, verify_cosignatures
from ledger.tlog.notes import (
    format_witness_request,
    parse_unverified_checkpoint,
    sign_checkpoint,
    sign_note,
    split_note,
)
from tests.conftest import ORIGIN, Cli, log_vkey, new_witness, tls_for_localhost
from tests.test_service import Server

pytestmark = pytest.mark.slow

SPEC = (Path(__file__).parent / "vectors" / "c2sp" / "tlog-witness.md").read_text("utf-8")
ADD_CHECKPOINT = SPEC[SPEC.index("### add-checkpoint") : SPEC.index("### sign-subtree")]
DIGEST = hashlib.sha256(ORIGIN.encode()).hexdigest()


@dataclass
class Witnessed:
    """A ledger of ``size`` events, witness key ``w1`` and a witness server following it."""

    cli: Cli
    server: Server
    log_vkey: str
    w1: str
    state: Path

    @property
    def url(self) -> str:
        return self.server.url

    def add(self, body: str | bytes, **kw: object) -> httpx.Response:
        return self.server.client.post("/add-checkpoint", content=body, **kw)  # type: ignore[arg-type]

    def request(self, *args: str, ok: bool = True, cli: Cli | None = None) -> Result:
        return (cli or self.cli)("witness", "request", self.url, "--witness", self.w1, *args, ok=ok)

    def restart(self) -> None:
        self.server.stop()
        self.server = serve(self.cli, self.log_vkey, self.state)


def serve(
    cli: Cli, log_vkey: str, state: Path, *extra: str, verify: ssl.SSLContext | bool = True
) -> Server:
    args = ["--key", "w1", "--log", log_vkey, "--state", str(state), *extra]
    return Server(cli, *args, command=("witness", "serve"), verify=verify)


@pytest.fixture
def witnessed(log: Cli) -> Iterator[Witnessed]:
    w1 = log("witness", "new", "w1", "--name", "witness.example/w1").stdout.strip()
    log_vkey = log("keys", "vkey", "root").stdout.strip()
    state = log.tmp / "witness-state"
    w = Witnessed(log, serve(log, log_vkey, state), log_vkey, w1, state)
    yield w
    if w.server.proc.poll() is None:
        w.server.stop()


def grow(cli: Cli, n: int) -> None:
    with Ledger.open(cli.db) as ledger:
        signer = cli.ring().load("rec")
        ledger.append_many([Draft("x.note", {"m": i}) for i in range(n)], signer=signer)


def checkpoint_at(cli: Cli, size: int, key: str = "root") -> str:
    """A checkpoint of the log at ``size`` (a past size too), signed by ``key``."""
    with Ledger.open(cli.db) as ledger:
        root = ledger.root_at(size)
    return sign_checkpoint(
        origin=ORIGIN, size=size, root=root, private_key=cli.ring().load(key).private_key
    )


def body(cli: Cli, old: int, note: str) -> str:
    """An add-checkpoint body from ``old`` to the checkpoint ``note`` of the log."""
    size = parse_unverified_checkpoint(note).size
    with Ledger.open(cli.db) as ledger:
        proof = ledger.consistency_proof(old, size) if 0 < old < size else []
    return format_witness_request(old_size=old, proof=proof, checkpoint_note=note)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    return response.status_code, response.headers["content-type"], response.text


# --- the protocol as the spec words it --------------------------------------------------------


def test_the_statuses_are_those_of_the_spec_text() -> None:
    # 'respond with a "404 Not Found" HTTP status code', a line break where the text has one
    named = r'"(\d{3})\s+[A-Z][A-Za-z ]+"\s+HTTP status code'
    in_add_checkpoint = {int(s) for s in re.findall(named, ADD_CHECKPOINT)}
    assert in_add_checkpoint == {200, 400, 403, 404, 409, 422}
    ours = {status for _, status, _ in STATUSES}
    # 413 (body limit) and 500 (state unusable) are HTTP's own; the rest are the spec's.
    assert ours - {413, 500} == in_add_checkpoint - {200}
    assert f"`Content-Type` of `{SIZE_TYPE}`" in ADD_CHECKPOINT


def test_a_log_is_cosigned_over_http_as_it_grows(witnessed: Witnessed) -> None:
    w, cli = witnessed, witnessed.cli
    # (1) the first request: nothing is known, old size 0
    first = w.request("-o", str(cli.tmp / "cp.txt"))
    assert "old 0: 200" in first.stderr and "cosigned" in first.stderr
    cp = (cli.tmp / "cp.txt").read_text(encoding="utf-8")
    assert cp.startswith(checkpoint_at(cli, 6).split("\n\n")[0] + "\n\n")
    assert [name for name, _ in split_note(cp)[1]] == [ORIGIN, "witness.example/w1"]
    cli("witness", "verify", str(cli.tmp / "cp.txt"), "--vkey", w.log_vkey, "--witness", w.w1)
    # (2) the log grows: one request, from the size cosigned, with a consistency proof
    grow(cli, 5)
    out = json.loads(
        w.request("--old", str(cli.tmp / "cp.txt"), "-o", str(cli.tmp / "cp2.txt"), "--json").stdout
    )
    assert out["ok"] is True and (out["origin"], out["size"]) == (ORIGIN, 11)
    (req,) = out["requests"]
    assert (req["url"], req["result"]) == (w.url, "cosigned")
    assert req["attempts"] == [{"old_size": 6, "status": 200, "detail": ""}]
    assert req["cosigned_by"] == [parse_witness_vkey(w.w1).label]
    assert out["quorum"] == 1 and out["witnesses"][0]["cosigned"] is True
    cp2 = (cli.tmp / "cp2.txt").read_text(encoding="utf-8")
    assert out["text"] == cp2 and out["output"] == str(cli.tmp / "cp2.txt")
    # (3) what an auditor checks: the proof, the checkpoint, the whole log
    proof = cli.tmp / "p"
    cli("prove", "9", "--checkpoint", str(cli.tmp / "cp2.txt"), "-o", str(proof))
    done = cli("verify-proof", str(proof), "--vkey", w.log_vkey, "--witness", w.w1)
    assert done.stdout.splitlines()[2].startswith("cosigned by 1 of 1 witnesses (quorum 1): ")
    done = cli("verify", "--checkpoint", str(cli.tmp / "cp2.txt"), "--witness", w.w1)
    assert "cosigned by 1 of 1 witnesses (quorum 1): witness.example/w1\n" in done.stdout
    # (4) the witness serves what it cosigned last: the body, the log's line and its own
    kept = w.server.client.get(f"/{DIGEST}/checkpoint")
    assert kept.status_code == 200 and kept.headers["content-type"].startswith("text/plain")
    assert kept.text == cp2


def test_a_conflict_answers_the_size_last_cosigned_as_text_x_tlog_size(
    witnessed: Witnessed,
) -> None:
    w, cli = witnessed, witnessed.cli
    assert w.add(body(cli, 0, checkpoint_at(cli, 6))).status_code == 200
    grow(cli, 3)
    for old in (0, 3, 9):
        got = w.add(body(cli, old, checkpoint_at(cli, 9)))
        assert (got.status_code, got.headers["content-type"], got.content) == (
            409,
            "text/x.tlog.size",
            b"6\n",
        )
    assert parse_unverified_checkpoint((w.state / DIGEST / "checkpoint").read_text()).size == 6
    assert w.add(body(cli, 6, checkpoint_at(cli, 9))).status_code == 200


def test_the_client_asks_again_from_the_size_a_conflict_names(witnessed: Witnessed) -> None:
    w, cli = witnessed, witnessed.cli
    assert w.add(body(cli, 0, checkpoint_at(cli, 4))).status_code == 200
    grow(cli, 2)
    out = json.loads(w.request("--json").stdout)
    assert [(a["old_size"], a["status"]) for a in out["requests"][0]["attempts"]] == [
        (0, 409),
        (4, 200),
    ]
    assert out["ok"] is True and out["size"] == 8
    assert verify_cosignatures(out["text"], [w.w1]).cosigned


def test_the_same_checkpoint_is_cosigned_again_and_another_root_is_refused(
    witnessed: Witnessed,
) -> None:
    w, cli = witnessed, witnessed.cli
    note = checkpoint_at(cli, 6)
    assert w.add(body(cli, 0, note)).status_code == 200
    assert w.add(body(cli, 6, note)).status_code == 200  # equal roots at equal sizes
    with Ledger.open(cli.db) as ledger:
        other_root = ledger.root_at(5)
    forged = sign_checkpoint(
        origin=ORIGIN, size=6, root=other_root, private_key=cli.ring().load("root").private_key
    )
    assert refusal(w.add(body(cli, 6, forged))) == (
        422,
        "text/plain; charset=utf-8",
        f"checkpoint of size 6 has root {other_root.hex()}, the one this witness cosigned at "
        f"that size {checkpoint_root(note)}: the log forked\n",
    )


def checkpoint_root(note: str) -> str:
    return parse_unverified_checkpoint(note).root.hex()


def test_a_forked_log_is_refused_and_the_client_says_so_with_exit_1(witnessed: Witnessed) -> None:
    w, cli = witnessed, witnessed.cli
    w.request()  # the witness is at size 6 of the real log
    fork = Cli(cli.tmp / "fork")  # the same origin and root key, another history
    fork.tmp.mkdir()
    fork.keys = cli.keys
    fork("init", "--origin", ORIGIN)
    for i in range(8):
        fork("keys", "new", f"r{i}", "--role", "recorder")
    result = w.request("--json", ok=False, cli=fork)
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    (req,) = out["requests"]
    assert [(a["old_size"], a["status"]) for a in req["attempts"]] == [(0, 409), (6, 422)]
    assert req["result"] == "inconsistent"
    assert req["detail"].startswith(
        "422: this checkpoint is not consistent with the one it last cosigned (consistency "
        "proof from size 6 (last cosigned) to 9: "
    )
    assert (out["ok"], out["text"], out["output"]) == (False, None, None)
    assert result.stderr == (
        f"error: witness request: 0 of 1 witnesses cosigned, want at least 1; {w.url}: "
        f"{req['detail']}; nothing written\n"
    )
    # the witness kept the real log's checkpoint
    assert parse_unverified_checkpoint((w.state / DIGEST / "checkpoint").read_text()).size == 6


def test_a_checkpoint_without_a_valid_log_signature_is_403(witnessed: Witnessed) -> None:
    w, cli = witnessed, witnessed.cli
    cli("keys", "new", "ops", "--role", "governor")
    by_ops = checkpoint_at(cli, 6, key="ops")  # a governor of the log, not the key followed
    status, _, text = refusal(w.add(body(cli, 0, by_ops)))
    assert status == 403 and text.startswith("note: no signature by a known key (found ")
    note = checkpoint_at(cli, 6)
    head = note.split("\n\n")[0]
    name, sig = split_note(note)[1][0]
    flipped = sig[:-1] + bytes([sig[-1] ^ 1])
    tampered = f"{head}\n\n\u2014 {name} {base64.b64encode(flipped).decode()}\n"
    key_id = sig[:4].hex()
    assert refusal(w.add(body(cli, 0, tampered))) == (
        403,
        "text/plain; charset=utf-8",
        f"note signature 1: signature by {ORIGIN}+{key_id} does not verify\n",
    )
    assert not (w.state / DIGEST).exists() or not (w.state / DIGEST / "checkpoint").exists()


def test_an_origin_not_followed_is_404(witnessed: Witnessed) -> None:
    w, cli = witnessed, witnessed.cli
    other = Cli(cli.tmp / "other")
    other.tmp.mkdir()
    other.keys = cli.keys
    other("init", "--origin", "other.example/log")
    note = other("checkpoint", "--signer", "root").stdout
    assert refusal(w.add(f"old 0\n\n{note}")) == (
        404,
        "text/plain; charset=utf-8",
        f"checkpoint origin 'other.example/log' is not a log this witness follows (it "
        f"follows: {ORIGIN})\n",
    )
    # the spec's own example request: a log this witness does not follow
    example = ADD_CHECKPOINT.split("Example request body:\n\n")[1].split("\n\nThe witness")[0]
    example = "\n".join(line.removeprefix("    ") for line in example.split("\n")) + "\n"
    assert w.add(example).status_code == 404
    result = w.request(ok=False, cli=other)
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"{w.url}: 404: it does not follow this origin (checkpoint origin 'other.example/log' "
        f"is not a log this witness follows (it follows: {ORIGIN})); nothing written\n"
    )


def _malformed(cli: Cli) -> list[tuple[str, bytes, str]]:
    note = checkpoint_at(cli, 6)
    proof_line = base64.b64encode(bytes(32)).decode()
    return [
        ("empty", b"", "witness request: no blank line before the checkpoint"),
        ("bare checkpoint", note.encode(), "witness request line 1: "),
        ("leading zero", f"old 01\n\n{note}".encode(), "witness request line 1: old size: '01'"),
        ("not utf-8", b"old 0\n\n\xff", "witness request: not valid UTF-8 at byte 7"),
        (
            "64 proof lines",
            ("old 3\n" + f"{proof_line}\n" * 64 + f"\n{note}").encode(),
            "witness request: 64 proof lines, at most 63",
        ),
        (
            "old over size",
            f"old 7\n\n{note}".encode(),
            "old size 7 is larger than the checkpoint's",
        ),
        ("no signature", f"old 0\n\n{note.split(chr(10) * 2)[0]}\n\n".encode(), "witness request"),
    ]


def test_malformed_requests_are_400(witnessed: Witnessed) -> None:
    w = witnessed
    for what, content, message in _malformed(w.cli):
        got = w.add(content)
        assert got.status_code == 400, (what, got.text)
        assert got.headers["content-type"] == "text/plain; charset=utf-8"
        assert got.text.startswith(message), (what, got.text)
        assert got.text.endswith("\n") and got.text.count("\n") == 1


def test_proofs_that_do_not_verify_are_422(witnessed: Witnessed) -> None:
    w, cli = witnessed, witnessed.cli
    proof_line = base64.b64encode(bytes(32)).decode()
    status, _, text = refusal(w.add(f"old 0\n{proof_line}\n\n{checkpoint_at(cli, 6)}"))
    assert (status, text) == (422, "old size 0 takes no consistency proof, found 1\n")
    root_key = cli.ring().load("root").private_key
    wrong_root = base64.b64encode(bytes(32)).decode()
    empty = sign_note(text=f"{ORIGIN}\n0\n{wrong_root}\n", name=ORIGIN, private_key=root_key)
    status, _, text = refusal(w.add(f"old 0\n\n{empty}"))
    assert status == 422 and text.startswith(f"checkpoint of size 0 has root {'00' * 32}, not ")
    assert w.add(body(cli, 0, checkpoint_at(cli, 3))).status_code == 200
    request = body(cli, 3, checkpoint_at(cli, 6)).split("\n")
    request[1], request[2] = request[2], request[1]  # two proof lines swapped
    status, _, text = refusal(w.add("\n".join(request)))
    assert status == 422
    assert text.startswith("consistency proof from size 3 (last cosigned) to 6: ")


def test_a_body_over_the_limit_is_413_whether_declared_or_chunked(log: Cli) -> None:
    log("witness", "new", "w1", "--name", "witness.example/w1")
    server = serve(
        log, log("keys", "vkey", "root").stdout.strip(), log.tmp / "s", "--max-body", "2000"
    )
    try:
        big = b"old 0\n" + b"x" * 3000
        got = server.client.post("/add-checkpoint", content=big)
        assert (got.status_code, got.text) == (413, "request body is 3006 bytes, over 2000\n")
        got = server.client.post("/add-checkpoint", content=iter([big[:1500], big[1500:]]))
        assert "content-length" not in got.request.headers
        assert (got.status_code, got.text) == (413, "request body is over 2000 bytes\n")
    finally:
        err = server.stop()
    kinds = [json.loads(line).get("kind") for line in err.splitlines()]
    assert kinds == ["too_large", "too_large"]


def test_only_the_protocols_paths_and_methods_answer(witnessed: Witnessed) -> None:
    client = witnessed.server.client
    got = client.get("/add-checkpoint")
    assert (got.status_code, got.headers["allow"]) == (405, "POST")
    assert client.get("/nowhere").status_code == 404
    assert client.get(f"/{DIGEST}/checkpoint").status_code == 404  # nothing cosigned yet
    assert client.get("/not-a-digest/checkpoint").status_code == 404


# --- one decision per log at a time -----------------------------------------------------------


def test_racing_requests_from_one_old_size_get_one_cosignature(witnessed: Witnessed) -> None:
    w, cli = witnessed, witnessed.cli
    grow(cli, 24)  # 30 events
    assert w.add(body(cli, 0, checkpoint_at(cli, 6))).status_code == 200
    old = 6
    for _ in range(3):
        bodies = [body(cli, old, checkpoint_at(cli, old + k)) for k in range(1, 9)]
        barrier = threading.Barrier(len(bodies))
        answers: list[httpx.Response | None] = [None] * len(bodies)

        def send(i: int, bodies: list[str] = bodies, answers: list[httpx.Response | None] = answers,
                 barrier: threading.Barrier = barrier) -> None:  # fmt: skip
            with httpx.Client(base_url=w.url, timeout=60) as client:
                barrier.wait()
                answers[i] = client.post("/add-checkpoint", content=bodies[i])

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = [a.status_code for a in answers if a is not None]
        assert sorted(statuses) == [200] + [409] * 7, statuses
        won = statuses.index(200)
        size = old + won + 1
        kept = (w.state / DIGEST / "checkpoint").read_text(encoding="utf-8")
        assert parse_unverified_checkpoint(kept).size == size
        line = answers[won].text  # type: ignore[union-attr]
        assert kept.endswith(line)
        assert {a.text for a in answers if a is not None and a.status_code == 409} == {f"{size}\n"}
        old = size


def test_the_witness_keeps_its_state_across_a_restart_and_logs_each_request(
    witnessed: Witnessed,
) -> None:
    w, cli = witnessed, witnessed.cli
    assert w.add(body(cli, 0, checkpoint_at(cli, 6))).status_code == 200
    assert w.add(b"nonsense").status_code == 400
    server = w.server
    w.restart()
    # uvicorn ends by re-raising the signal it handled, after the graceful shutdown.
    assert server.proc.returncode in (0, -signal.SIGTERM)
    got = w.add(body(cli, 0, checkpoint_at(cli, 6)))
    assert (got.status_code, got.text) == (409, "6\n")
    # the state is the one `witness cosign` keeps: by hand, the same conflict
    cp = cli.tmp / "cp.txt"
    cp.write_text(checkpoint_at(cli, 6), encoding="utf-8")
    args = ["--key", "w1", "--log", w.log_vkey, "--state", str(w.state)]
    by_hand = cli("witness", "cosign", str(cp), *args, ok=False)
    assert by_hand.exit_code == 2 and "this witness last cosigned" in by_hand.stderr
    err = w.server.stop()
    lines = [json.loads(line) for line in err.splitlines()]
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("POST", "/add-checkpoint", 409)
    ]
    assert (lines[0]["origin"], lines[0]["old"], lines[0]["size"], lines[0]["kind"]) == (
        ORIGIN,
        0,
        6,
        "conflict",
    )


# --- the client's reports and exit codes ------------------------------------------------------


def test_a_witness_that_does_not_answer_is_reported_and_the_quorum_decides(
    witnessed: Witnessed,
) -> None:
    w, cli = witnessed, witnessed.cli
    down = f"http://127.0.0.1:{closed_port()}"
    out_file = cli.tmp / "cp.txt"
    # w1 cosigned: the one witness given is the whole quorum, whatever the other URL did
    result = cli("witness", "request", w.url, down, "--witness", w.w1, "-o", str(out_file))
    assert "unavailable" in result.stderr and "Connection refused" in result.stderr
    w2 = cli("witness", "new", "w2", "--name", "witness.example/w2").stdout.strip()
    grow(cli, 1)
    args = ["--witness", w.w1, "--witness", w2, "--json"]
    result = cli("witness", "request", w.url, down, *args, ok=False)
    assert result.exit_code == 3
    out = json.loads(result.stdout)
    assert [r["result"] for r in out["requests"]] == ["cosigned", "unavailable"]
    assert out["requests"][1]["attempts"] == [
        {"old_size": 0, "status": None, "detail": "Connection refused"}
    ]
    assert result.stderr == (
        f"error: witness request: 1 of 2 witnesses cosigned, want at least 2; {down}: no "
        "answer: Connection refused; nothing written\n"
    )
    result = cli(
        "witness", "request", w.url, down, *args[:-1], "--quorum", "1", "-o", str(out_file)
    )
    assert "cosigned by 1 of 2 witnesses (quorum 1): witness.example/w1 at " in result.stderr
    assert parse_unverified_checkpoint(out_file.read_text(encoding="utf-8")).size == 7


def test_cosignatures_by_keys_not_given_are_ignored(witnessed: Witnessed) -> None:
    w, cli = witnessed, witnessed.cli
    w2 = cli("witness", "new", "w2", "--name", "witness.example/w2").stdout.strip()
    result = cli("witness", "request", w.url, "--witness", w2, "--json", ok=False)
    assert result.exit_code == 2
    (req,) = json.loads(result.stdout)["requests"]
    assert (req["result"], req["ignored"], req["cosigned_by"]) == ("no_cosignature", 1, [])
    assert (
        req["detail"] == "200, but no cosignature by a --witness key (lines by: witness.example/w1)"
    )


def test_a_witness_past_the_log_is_an_integrity_failure(witnessed: Witnessed) -> None:
    w, cli = witnessed, witnessed.cli
    cut = Cli(cli.tmp / "cut")  # the log as it was at size 6
    cut.tmp.mkdir()
    cut.keys = cli.keys
    cli("copy", str(cli.db), str(cut.db))
    grow(cli, 3)
    w.request()  # the witness is at size 9
    result = w.request(ok=False, cli=cut)
    assert result.exit_code == 1
    assert result.stderr.endswith(
        f"{w.url}: it cosigned size 9 of {ORIGIN}, the log has 6 events: the log was cut "
        "back, or another log uses this origin; nothing written\n"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "missing --witness: the witness keys whose cosignatures to keep"),
        (["ftp://w.example", "--witness", "W1"], 2, "witness URL 'ftp://w.example': expected "),
        (["http://w.example/?x=1", "--witness", "W1"], 2, "witness URL 'http://w.example/?x=1': "),
        (["http://w.example:port", "--witness", "W1"], 2, "witness URL 'http://w.example:port': "),
        (["URL", "--witness", "W1", "--old", "STRANGER"], 1, "note: no signature by a known key"),
    ],
    ids=["no witness", "scheme", "query", "port", "old of another log"],
)
def test_request_usage_errors(log: Cli, args: list[str], code: int, message: str) -> None:
    w1 = log("witness", "new", "w1", "--name", "witness.example/w1").stdout.strip()
    stranger = Cli(log.tmp / "stranger")
    stranger.tmp.mkdir()
    stranger("init", "--origin", ORIGIN)
    stranger("checkpoint", "--signer", "root", "-o", str(stranger.tmp / "cp.txt"))
    subs = {"W1": w1, "URL": f"http://127.0.0.1:{closed_port()}"}
    subs["STRANGER"] = str(stranger.tmp / "cp.txt")
    if not args:
        args = [subs["URL"]]
    result = log("witness", "request", *[subs.get(a, a) for a in args], ok=False)
    assert result.exit_code == code
    assert result.stderr.startswith("error: " + message)


# --- the server's own errors, before it listens --------------------------------------------


def test_witness_serve_refuses_to_start_without_what_it_needs(log: Cli) -> None:
    vkey = log("keys", "vkey", "root").stdout.strip()
    result = log("witness", "serve", "--key", "w1", "--log", vkey, ok=False)
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: witness key 'w1': no {log.keys / 'w1.vkey'}")
    log("witness", "new", "w1", "--name", "witness.example/w1")
    result = log("witness", "serve", "--key", "w1", "--log", "not-a-vkey", ok=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --log: vkey 'not-a-vkey': want <name>+<key id>+<key>")
    state = log.tmp / "st"
    (state / DIGEST).mkdir(parents=True)
    (state / DIGEST / "checkpoint").write_text("garbage\n", encoding="utf-8")
    args = ["--key", "w1", "--log", vkey, "--state", str(state)]
    result = log("witness", "serve", *args, ok=False)
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: witness state {state / DIGEST / 'checkpoint'} is")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = log("witness", "serve", *args[:4], "--port", port, ok=False)
    assert result.exit_code == 3
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port} (")


def test_an_ml_dsa_44_witness_cosigns_over_http(log: Cli) -> None:
    m1 = log("witness", "new", "w1", "--name", "pq.example/w1", "--type", "ml-dsa-44").stdout
    log_vkey = log("keys", "vkey", "root").stdout.strip()
    server = serve(log, log_vkey, log.tmp / "s")
    try:
        got = server.client.post("/add-checkpoint", content=body(log, 0, checkpoint_at(log, 6)))
        assert got.status_code == 200
        ((name, sig),) = split_note("x\n\n" + got.text)[1]
        assert (name, len(sig)) == ("pq.example/w1", 4 + 8 + 2420)
        grow(log, 2)
        cp = log.tmp / "cp.txt"
        out = json.loads(
            log(
                "witness", "request", server.url, "--witness", m1.strip(), "-o", str(cp), "--json"
            ).stdout
        )
        assert out["requests"][0]["result"] == "cosigned" and out["size"] == 8
        report = verify_cosignatures(cp.read_text(encoding="utf-8"), [m1.strip()])
        assert [w.witness.name for w in report.cosigned] == ["pq.example/w1"]
        log("witness", "verify", str(cp), "--vkey", log_vkey, "--witness", m1.strip())
    finally:
        server.stop()


class _Rendezvous(http.server.ThreadingHTTPServer):
    """A real HTTP front of a witness that passes a request on only once the other front has
    one too (a barrier of two, 10 s): answered 200 only when both are asked at the same time."""

    def __init__(self, witness: str, barrier: threading.Barrier) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    outer.barrier.wait()
                    answer = httpx.post(f"{outer.witness}/add-checkpoint", content=data)
                    status, body = answer.status_code, answer.content
                except threading.BrokenBarrierError:
                    status, body = 503, b"the other witness was not asked meanwhile\n"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.witness, self.barrier = witness, barrier
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def test_witnesses_are_asked_at_the_same_time(witnessed: Witnessed) -> None:
    """Each of two witnesses answers only while the other is being asked too: one after the
    other, the first would wait for the second in vain (503)."""
    w, cli = witnessed, witnessed.cli
    w2 = cli("witness", "new", "w2", "--name", "witness.example/w2").stdout.strip()
    second = serve(cli, w.log_vkey, cli.tmp / "w2-state", "--key", "w2")
    barrier = threading.Barrier(2, timeout=10)
    fronts = [_Rendezvous(w.url, barrier), _Rendezvous(second.url, barrier)]
    try:
        out = cli.json(
            "witness", "request", *(f.url for f in fronts), "--witness", w.w1, "--witness", w2
        )
    finally:
        for f in fronts:
            f.close()
        second.stop()
    assert [r["result"] for r in out["requests"]] == ["cosigned", "cosigned"]
    assert [r["url"] for r in out["requests"]] == [f.url for f in fronts]


def test_a_witness_over_https_is_asked_and_its_certificate_checked(
    witnessed: Witnessed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`witness serve --tls-cert --tls-key` serves HTTPS; `witness request` checks its
    certificate against the machine's trusted authorities (here SSL_CERT_FILE): a certificate
    nobody vouched for is no answer (exit 3), never a cosignature taken anyway."""
    w, cli = witnessed, witnessed.cli
    cert, key = tls_for_localhost(cli.tmp)
    # The same witness (its key and state) over HTTPS beside the plain one.
    trust = ssl.create_default_context(cafile=str(cert))
    tls = serve(
        cli, w.log_vkey, w.state, "--tls-cert", str(cert), "--tls-key", str(key), verify=trust
    )
    try:
        assert tls.url.startswith("https://127.0.0.1:")
        assert tls.client.get("/nowhere").status_code == 404  # TLS, with that certificate
        monkeypatch.setenv("SSL_CERT_FILE", str(cli.tmp / "no-such-authority.pem"))
        result = cli("witness", "request", tls.url, "--witness", w.w1, "--json", ok=False)
        assert result.exit_code == 3
        (req,) = json.loads(result.stdout)["requests"]
        assert req["result"] == "unavailable" and "CERTIFICATE_VERIFY_FAILED" in req["detail"]
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        out = cli.json("witness", "request", tls.url, "--witness", w.w1)
    finally:
        tls.stop()
    assert [r["result"] for r in out["requests"]] == ["cosigned"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--tls-cert", "c.pem"], 2, "error: --tls-cert and --tls-key go together: give both, or neither\n"),
        (["--tls-cert", "missing.pem", "--tls-key", "missing.pem"], 3,
         "error: --tls-cert missing.pem --tls-key missing.pem: not a certificate and its key "),
    ],
    ids=["cert-without-key", "missing-files"],
)  # fmt: skip
def test_tls_options_are_checked_before_listening(
    log: Cli, args: list[str], code: int, message: str
) -> None:
    new_witness(log, "w1", "witness.example/w1")
    result = log("witness", "serve", "--key", "w1", "--log", log_vkey(log), *args, ok=False)
    assert result.exit_code == code
    assert result.stderr.startswith(message)
