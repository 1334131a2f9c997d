"""`govledger witness serve` and `govledger witness request`: the C2SP tlog-witness protocol
over HTTP, the witness's side and the log's (docs/service.md, "The witness over HTTP")."""

from __future__ import annotations

import click

from ledger.cli.context import Context, echo_json, json_option, pass_ctx, print_table
from ledger.cli.proofs import (
    cosignature_fields,
    cosignature_summary,
    now,
    read_text,
    witness_policy,
    write_output,
)
from ledger.cli.service import announce, listening, server_options, tls_files
from ledger.cli.witness_keys import (
    followed_logs,
    log_option,
    state_option,
    witness_signer,
    witness_state,
)
from ledger.errors import (
    EnvironmentProblem,
    InputError,
    LedgerError,
    StateError,
    VerificationError,
)
from ledger.service.witness_client import Outcome, check_url, request_cosignatures
from ledger.tlog.cosignatures import CosignatureReport, check_cosignatures
from ledger.tlog.notes import parse_unverified_checkpoint
from ledger.tlog.proofs import latest_checkpoint, sign_current_checkpoint, this_logs_checkpoint

DEFAULT_PORT = 8081


@click.command("serve")
@click.option("--key", required=True, help="The witness key that cosigns (govledger witness new).")
@log_option
@state_option
@server_options(port=DEFAULT_PORT, max_body=64 * 1024)
@pass_ctx
def witness_serve(
    ctx: Context,
    key: str,
    log_vkeys: tuple[str, ...],
    state_dir: str | None,
    host: str,
    port: int,
    max_body: int,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run witness KEY over HTTP (C2SP tlog-witness), for the --log logs to ask.

    \b
    POST /add-checkpoint         body: `old <N>`, the consistency proof from size N (one
                                 base64 hash a line), a blank line, the checkpoint note
                                 200: the cosignature line (text/plain), Ed25519 or
                                 ML-DSA-44 as KEY is
    GET  /<hex SHA-256 of origin>/checkpoint
                                 the latest checkpoint cosigned of that log (404: none)

    \b
    A refused request gets one line of text saying why, and the status tlog-witness gives:
      400  malformed body, or an old size over the checkpoint's size
      403  no valid signature by the --log key of the checkpoint's origin
      404  an origin that is not a --log
      409  the old size is not that of the last checkpoint cosigned of the log; the body is
           that size and a newline (Content-Type: text/x.tlog.size): ask again from there
      413  a body over --max-body
      422  the checkpoint is not consistent with the last one cosigned (a proof that fails,
           another root at the same size, a proof from size 0): the log forked or rewrote
           history
      500  the state cannot be read or written (the access log says why)

    The checks, the cosignature and the new state are one step per log (a lock in --state):
    of two requests from one old size, one is cosigned and the other gets 409. The state is
    what `govledger witness cosign` keeps, so the two can take turns on one witness. With
    --tls-cert and --tls-key it serves HTTPS.

    \b
    Example:
      govledger witness serve --key w1 --log "$(govledger keys vkey root)" --port 8081
      govledger witness request http://127.0.0.1:8081 --witness "$(govledger witness vkey w1)"

    Prints the address it listens on (with --port 0, the port the system chose), then one
    JSON access-log line per request on stderr (origin, old size, size, and why a request was
    refused). Stops gracefully on SIGINT or SIGTERM: requests in flight are answered first.
    Needs the service extra: pip install 'govledger[serve]'.
    """
    try:
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as e:
        raise EnvironmentProblem(
            "witness serve needs the service extra: pip install 'govledger[serve]'"
        ) from e
    from ledger.service.server import run
    from ledger.service.witness_app import Witness, create_app

    tls = tls_files(tls_cert, tls_key)
    logs = followed_logs(log_vkeys)
    private_key, identity = witness_signer(ctx, key)
    state = witness_state(key, state_dir)
    # A state that cannot be used is exit 3 here, not a 500 on the first request.
    try:
        state.directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StateError(f"witness state {state.directory}: cannot create it ({e.strerror})") from e
    for log in logs:
        state.last(log.name)
    witness = Witness(
        name=identity.name,
        private_key=private_key,
        logs=tuple(logs),
        state=state,
        max_body=max_body,
        clock=now,
    )
    sock = listening(host, port)
    announce("witness serve", host, sock, tls)
    run(create_app(witness), sock, tls)


@click.command("request")
@click.argument("urls", nargs=-1, required=True, metavar="URL...")
@click.option(
    "--witness",
    "witness_vkeys",
    multiple=True,
    metavar="VKEY",
    help="A witness whose cosignatures to keep (its vkey, `govledger witness vkey`); repeat "
    "it, or give @FILE: one vkey a line. Required: answers are checked against these keys.",
)
@click.option(
    "--quorum",
    type=click.IntRange(min=1),
    metavar="K",
    help="How many of the --witness witnesses must cosign for the checkpoint to be written "
    "[default: all].",
)
@click.option(
    "--signer",
    help="Sign a fresh checkpoint with this governor key [default: the latest stored one at "
    "the log's size, else a fresh one signed by root].",
)
@click.option(
    "--old",
    "old_file",
    type=click.Path(dir_okay=False),
    help="A checkpoint of this log the witnesses last cosigned (say, the file this command "
    "wrote last time): the first request is sent from its size, not from 0.",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="How long to wait for a witness to connect, and for each read of its answer.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write the cosigned checkpoint here."
)
@json_option
@pass_ctx
def witness_request(
    ctx: Context,
    urls: tuple[str, ...],
    witness_vkeys: tuple[str, ...],
    quorum: int | None,
    signer: str | None,
    old_file: str | None,
    timeout: float,
    output: str | None,
    as_json: bool,
) -> None:
    """Ask the witnesses at URL... to cosign this log's checkpoint (C2SP tlog-witness).

    URL is a witness's submission prefix (http://HOST:PORT, or with a path before
    /add-checkpoint). All are asked at once. For each one: send the checkpoint with a
    consistency proof from the size the witness is believed to be at (0, or that of --old);
    on 409 the witness answers its size, and the request goes once more with a proof from
    there. The cosignatures answered
    are kept only when they verify for a --witness key (lines by other keys are ignored).

    The checkpoint with the cosignatures appended is printed, or written to -o FILE, once at
    least --quorum (default: all) of the --witness witnesses cosigned it and no witness found
    it inconsistent; the table of what each witness did goes to stderr (--json: one object on
    stdout). Exit 1 when a witness says the log is not consistent with what it cosigned (422),
    or answers a bad cosignature; else, short of the quorum, 2 for a refusal (400, 403, 404,
    413: the request or the configuration) and 3 for a witness that did not answer, timed
    out or failed (5xx). Nothing is written unless the exit is 0.

    \b
    Example:
      govledger witness request http://w1.example:8081 http://w2.example:8081 \\
          --witness @witnesses.txt --quorum 1 -o cp.txt
      govledger witness request http://w1.example:8081 --witness @witnesses.txt \\
          --old cp.txt -o cp2.txt                 later: one request each, from cp.txt's size
      govledger prove 42 --checkpoint cp2.txt      a proof that carries the cosignatures
    """
    # (1) the usage: witness keys, quorum, URLs, before anything is signed or sent
    witnesses, want = witness_policy(witness_vkeys, quorum)
    if not witnesses:
        raise InputError("missing --witness: the witness keys whose cosignatures to keep")
    prefixes = [check_url(url) for url in urls]
    # (2) the checkpoint: a fresh one, or the latest stored at the log's size
    ledger = ctx.ledger()
    if signer is not None:
        note = sign_current_checkpoint(ledger, ctx.signer(signer))
    else:
        stored = latest_checkpoint(ledger, ledger.size)
        note = stored or sign_current_checkpoint(ledger, ctx.signer("root"))
    cp = parse_unverified_checkpoint(note)
    old_size = 0
    if old_file is not None:
        old = this_logs_checkpoint(ledger, read_text(old_file, "--old"))
        if old.size > cp.size:
            raise InputError(f"--old: its size {old.size} is past the checkpoint's {cp.size}")
        old_size = old.size
    # (3) each witness in turn
    outcomes = request_cosignatures(
        ledger, note, prefixes, witnesses=witnesses, old_size=old_size, timeout=timeout, now=now
    )
    # (4) the checkpoint with the lines kept, and the verdict
    lines = dict.fromkeys(line for o in outcomes for line in o.lines)
    cosigned = note + "".join(lines)
    report = CosignatureReport(check_cosignatures(cosigned, witnesses, now=now()), want)
    error = _verdict(outcomes, report)
    written = None
    if error is None and output not in (None, "-"):
        write_output(cosigned, output)
        written = output
    if as_json:
        echo_json(
            {
                "ok": error is None,
                "origin": cp.origin,
                "size": cp.size,
                "root": cp.root.hex(),
                "requests": [_request_json(o) for o in outcomes],
                **cosignature_fields(report),
                "text": cosigned if error is None else None,
                "output": written,
            }
        )
    else:
        _print_outcomes(outcomes)
        if error is None:
            if written is None:
                click.echo(cosigned, nl=False)
            click.echo(cosignature_summary(report), err=True)
    if error is not None:
        raise error


def _verdict(outcomes: list[Outcome], report: CosignatureReport) -> LedgerError | None:
    """None when the quorum cosigned and no witness found the log inconsistent; else the
    error of the first witness that failed (exit 1 before any other), naming it."""
    failed = [o for o in outcomes if not o.cosigned]
    integrity = [o for o in failed if o.exit_code == 1]
    short = len(report.cosigned) < report.quorum
    if not integrity and not short:
        return None
    parts = []
    if short:
        parts.append(
            f"{len(report.cosigned)} of {len(report.witnesses)} witnesses cosigned, want at "
            f"least {report.quorum}"
        )
    first = next(iter(integrity or failed), None)
    if first is not None:
        parts.append(f"{first.url}: {first.detail}")
    else:  # every witness asked cosigned: the others were not asked
        parts.append("missing: " + ", ".join(w.witness.label for w in report.missing))
    message = f"witness request: {'; '.join(parts)}; nothing written"
    code = 2 if first is None else first.exit_code
    if code == 1:
        return VerificationError(message)
    return InputError(message) if code == 2 else EnvironmentProblem(message)


def _attempts(o: Outcome) -> str:
    return "; ".join(
        f"old {a.old_size}: " + ("no answer" if a.status is None else str(a.status))
        for a in o.attempts
    )


def _print_outcomes(outcomes: list[Outcome]) -> None:
    rows = [[o.url, o.result, _attempts(o), o.detail] for o in outcomes]
    print_table(None, ["witness", "result", "requests", "detail"], rows, err=True)


def _request_json(o: Outcome) -> dict[str, object]:
    return {
        "url": o.url,
        "result": o.result,
        "detail": o.detail,
        "cosigned_by": [w.label for w in o.cosigners],
        "ignored": o.ignored,
        "attempts": [
            {"old_size": a.old_size, "status": a.status, "detail": a.detail} for a in o.attempts
        ],
    }
