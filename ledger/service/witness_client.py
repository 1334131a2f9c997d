"""The log's side of C2SP tlog-witness: ask witnesses over HTTP to cosign a checkpoint of this
log (``govledger witness request``).

Every witness is asked at the same time (a thread each, up to ``MAX_PARALLEL``); the outcomes
come back in the order of the URLs. For each witness URL (its submission prefix), (1) POST
``<url>/add-checkpoint`` with the old size the witness is believed to be at (0 when nothing is
known) and the RFC 9162 consistency proof from that size to the checkpoint's; (2) on 409 the answer is the size the witness last
cosigned, and the request is sent once more with a proof from that size (the log proves
consistency from any earlier size of itself); (3) of a 200's signature lines, keep those that
are valid cosignatures of this checkpoint by one of the given witness keys, and ignore lines by
other keys (tlog-witness: clients ignore unknown keys). Every other answer is reported with the
witness's own words and the exit code of its kind (``Outcome``).

HTTP is the standard library's ``http.client``: one keep-alive connection per witness for both
attempts, a timeout on each, no redirect followed (a witness answers where it was asked).
"""

from __future__ import annotations

import http.client
import re
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ledger.errors import CheckpointError, InputError
from ledger.tlog.cosignatures import WitnessKey, check_cosignatures
from ledger.tlog.notes import (
    SIG_PREFIX,
    Checkpoint,
    format_witness_request,
    parse_unverified_checkpoint,
    split_note,
)
from ledger.tlog.proofs import ProvableLog

TIMEOUT = 30.0
"""Seconds to wait for a witness to connect, and then for each read of its answer."""
MAX_ANSWER = 1024 * 1024
"""Bytes of an answer read at most (a longer one is not a witness's)."""
USER_AGENT = "govledger-witness-request"
MAX_PARALLEL = 16
"""Witnesses asked at the same time at most."""

_SIZE = re.compile(rb"(0|[1-9][0-9]{0,19})\n")

# The exit codes of the outcomes (README "Exit codes").
OK, INTEGRITY, USAGE, ENVIRONMENT = 0, 1, 2, 3


@dataclass(frozen=True)
class Attempt:
    """One add-checkpoint request and what came back."""

    old_size: int
    status: int | None
    """The HTTP status (None: no answer)."""
    detail: str
    """The witness's refusal in its own words, or why there was no answer ('' on 200)."""


@dataclass(frozen=True)
class Outcome:
    """What one witness did with the checkpoint."""

    result: str
    """``cosigned``, or why not: ``inconsistent`` (422: its view of this log differs),
    ``bad_cosignature``, ``beyond_log`` (it cosigned more of this origin than the log holds),
    ``refused`` (400, 403, 404, 413 and other 4xx), ``stale`` (it cosigned past this
    checkpoint), ``no_cosignature`` (no line by a given witness key), ``conflict`` (409 twice),
    ``unavailable`` (no answer, or 5xx), ``bad_answer`` (not the protocol's)."""
    exit_code: int
    """0 cosigned, 1 integrity, 2 usage or configuration, 3 environment."""
    detail: str
    lines: tuple[str, ...] = ()
    """The cosignature lines kept (valid, by a given witness key)."""
    cosigners: tuple[WitnessKey, ...] = ()
    ignored: int = 0
    """Lines of the answer by keys not given (ignored)."""
    url: str = ""
    attempts: tuple[Attempt, ...] = ()

    @property
    def cosigned(self) -> bool:
        return self.result == "cosigned"


def check_url(url: str) -> str:
    """A witness's submission prefix: http:// or https://, a host, no query or fragment; the
    URL without its trailing slash (``InputError`` otherwise)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as e:
        raise InputError(f"witness URL {url!r}: {e}") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"witness URL {url!r}: expected http://HOST[:PORT][/PREFIX] or https://…")
    if parts.query or parts.fragment:
        raise InputError(f"witness URL {url!r}: a submission prefix has no query or fragment")
    return url.rstrip("/")


class _Connection:
    """One keep-alive HTTP connection to a witness, opened when first used; a request on a
    reused connection that the witness had closed is sent once more on a new one."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.path = parts.path.rstrip("/") + "/add-checkpoint"
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> tuple[int, str, bytes]:
        """Status, Content-Type and body of the answer (``OSError``, ``HTTPException``)."""
        reused = self.conn is not None
        try:
            return self._post(body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            return self._post(body)

    def _post(self, body: bytes) -> tuple[int, str, bytes]:
        if self.conn is None:
            if self.https:
                self.conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.request("POST", self.path, body=body, headers={"User-Agent": USER_AGENT})
        response = self.conn.getresponse()
        data = response.read(MAX_ANSWER + 1)
        if len(data) > MAX_ANSWER:
            self.close()
            raise http.client.HTTPException(f"answer over {MAX_ANSWER} bytes")
        if response.will_close:
            self.close()
        return response.status, response.getheader("Content-Type") or "", data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def request_cosignatures(
    log: ProvableLog,
    note: str,
    urls: Sequence[str],
    *,
    witnesses: Sequence[WitnessKey],
    old_size: int = 0,
    timeout: float = TIMEOUT,
    now: Callable[[], int] | None = None,
) -> list[Outcome]:
    """Ask each witness at ``urls`` to cosign ``note``, a checkpoint of ``log`` (verified by
    the caller), starting from ``old_size``; what each did, in order. Never raises for a
    witness's answer: each one is an ``Outcome``; ``now`` (POSIX seconds) refuses
    cosignatures dated after it by more than the allowed skew."""
    cp = parse_unverified_checkpoint(note)
    checked = [check_url(url) for url in urls]  # every URL checked before any is asked

    def ask(url: str) -> Outcome:
        attempts: list[Attempt] = []
        conn = _Connection(url, timeout)
        try:
            got = _ask(log, note, cp, conn, witnesses, old_size, now, attempts)
        finally:
            conn.close()
        return replace(got, url=url, attempts=tuple(attempts))

    if len(checked) < 2:
        return [ask(url) for url in checked]
    # All at once: a slow or silent witness costs its own timeout, not the others' turns. The
    # store gives each thread its own connection for the consistency proofs.
    with ThreadPoolExecutor(max_workers=min(len(checked), MAX_PARALLEL)) as pool:
        return list(pool.map(ask, checked))


def _ask(
    log: ProvableLog,
    note: str,
    cp: Checkpoint,
    conn: _Connection,
    witnesses: Sequence[WitnessKey],
    old: int,
    now: Callable[[], int] | None,
    attempts: list[Attempt],
) -> Outcome:
    for attempt in (1, 2):
        # (1) old size, the proof from it, the checkpoint
        proof = log.consistency_proof(old, cp.size) if 0 < old < cp.size else []
        body = format_witness_request(old_size=old, proof=proof, checkpoint_note=note)
        try:
            status, _, data = conn.post(body.encode("utf-8"))
        except (OSError, http.client.HTTPException) as e:
            attempts.append(Attempt(old, None, _why(e)))
            return Outcome("unavailable", ENVIRONMENT, f"no answer: {_why(e)}")
        said = _said(data)
        attempts.append(Attempt(old, status, "" if status == 200 else said))
        if status == 200:
            # (3) the cosignatures of the given witnesses, checked
            return _cosigned(cp.text, data, witnesses, now)
        if status != 409:
            return _refused(status, said)
        # (2) the witness's size: from there once more
        match = _SIZE.fullmatch(data)
        if match is None:
            return Outcome("bad_answer", ENVIRONMENT, f"409 with {said!r}, not a tree size")
        size = int(match[1])
        if attempt == 2:
            return Outcome(
                "conflict", ENVIRONMENT, f"409 again: it cosigned size {size} meanwhile; ask again"
            )
        if size > log.size:
            return Outcome(
                "beyond_log",
                INTEGRITY,
                f"it cosigned size {size} of {cp.origin}, the log has {log.size} events: "
                "the log was cut back, or another log uses this origin",
            )
        if size > cp.size:
            return Outcome(
                "stale",
                USAGE,
                f"it cosigned size {size}, past this checkpoint's {cp.size}: ask with a fresh "
                "checkpoint",
            )
        old = size
    raise AssertionError("two attempts at most")  # pragma: no cover


def _why(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _said(data: bytes) -> str:
    """A refusal's text, one line, cut short."""
    text = data.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return text if len(text) <= 300 else text[:300] + "…"


_REFUSALS = {
    400: "the request is malformed to it",
    403: "it finds no valid signature by the key it follows this origin with",
    404: "it does not follow this origin",
    413: "the request is over its size limit",
    422: "this checkpoint is not consistent with the one it last cosigned",
}


def _refused(status: int, said: str) -> Outcome:
    why = _REFUSALS.get(status)
    detail = f"{status} {said}".strip() if why is None else f"{status}: {why}"
    if why is not None and said:
        detail += f" ({said})"
    if status == 422:
        return Outcome("inconsistent", INTEGRITY, detail)
    if 400 <= status < 500:
        return Outcome("refused", USAGE, detail)
    return Outcome("unavailable", ENVIRONMENT, detail)


def _cosigned(
    body: str, data: bytes, witnesses: Sequence[WitnessKey], now: Callable[[], int] | None
) -> Outcome:
    """A 200's cosignature lines: each one ``— <name> <base64>``; those by a given witness
    must verify on this checkpoint's body, the others are ignored."""
    try:
        text = data.decode("utf-8")
        lines = text.splitlines(keepends=True)
        if not lines or any(not (ln.startswith(SIG_PREFIX) and ln.endswith("\n")) for ln in lines):
            raise CheckpointError("not signature lines")
        results = check_cosignatures(
            body + "\n" + text, witnesses, now=None if now is None else now()
        )
        keys = [_line_key(ln) for ln in lines]
    except (UnicodeDecodeError, CheckpointError) as e:
        reason = e.reason if isinstance(e, UnicodeDecodeError) else e.message
        return Outcome("bad_answer", ENVIRONMENT, f"200 with {_said(data)!r}: {reason}")
    bad = [r.problem for r in results if r.problem is not None]
    if bad:
        return Outcome("bad_cosignature", INTEGRITY, "; ".join(str(p) for p in bad))
    cosigners = tuple(r.witness for r in results if r.cosigned)
    mine = {(w.name, w.key_id) for w in cosigners}
    kept = tuple(ln for ln, key in zip(lines, keys, strict=True) if key in mine)
    ignored = len(lines) - len(kept)
    if not cosigners:
        names = ", ".join(sorted({name for name, _ in keys}))
        return Outcome(
            "no_cosignature",
            USAGE,
            f"200, but no cosignature by a --witness key (lines by: {names})",
            ignored=ignored,
        )
    return Outcome(
        "cosigned",
        OK,
        "cosigned by " + ", ".join(w.name for w in cosigners),
        lines=kept,
        cosigners=cosigners,
        ignored=ignored,
    )


def _line_key(line: str) -> tuple[str, bytes]:
    """The key name and key id of a signature line."""
    _, sigs = split_note("x\n\n" + line, "answer")
    name, sig = sigs[0]
    return name, sig[:4]
