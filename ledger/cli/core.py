"""Core commands: init, append, import, export, log, verify (README, docs/formats.md).

The import, signed-note (``cryptography``) and verify modules are imported by the commands that
use them, so ``log`` loads only what it reads with.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from ledger.cli.context import (
    PAGE,
    Context,
    ProgressBar,
    add_witness_options,
    echo_event,
    echo_json,
    echo_more,
    json_option,
    pass_ctx,
    plural,
    progress_bar,
)
from ledger.errors import CheckpointError, InputError, StateError, VerificationError
from ledger.event.canonical import loads
from ledger.event.envelope import normalize_time
from ledger.store import check_new_store, create_store
from ledger.store.sqlite import Draft

if TYPE_CHECKING:
    from ledger.verify.verifier import VerifyReport


@click.command()
@click.option(
    "--origin",
    required=True,
    help="The log's origin name, e.g. example.com/agents (appears in every checkpoint).",
)
@click.option(
    "--app-role",
    metavar="ROLE",
    help="PostgreSQL only: also create ROLE, which may only insert and read (see README).",
)
@json_option
@pass_ctx
def init(ctx: Context, origin: str, app_role: str | None, as_json: bool) -> None:
    """Create a ledger and its root governor key `root`.

    Writes the key to the key directory (0600), or uses the key `root` already there (and
    says so on stderr), and appends `ledger.created` (seq 1) signed by
    it. Give auditors the printed root key id: they pin it with `verify --trust`.
    """
    keyring = ctx.keyring
    check_new_store(ctx.db)
    _check_origin(origin)
    existing = keyring.exists("root")
    root = keyring.load_or_create("root")
    with create_store(ctx.db, origin=origin, root=root, app_role=app_role) as ledger:
        size, head = ledger.head()
        if existing:
            click.echo(
                f"note: using the existing key root ({keyring.path('root')}, key id {root.key_id}) "
                "as this ledger's root key; give --keys DIR (before the command) for a new one",
                err=True,
            )
    _warn_known_origin(origin, root.key_id)
    if as_json:
        echo_json(
            {"db": ctx.db, "origin": origin, "root_key_id": root.key_id, "seq": size, "hash": head}
        )
        return
    click.echo(f"created ledger {ctx.db} (origin {origin})")
    click.echo(f"root key: {keyring.path('root')} (key id {root.key_id})")
    click.echo(f"auditors pin it with: govledger verify --trust {root.key_id}")


def _check_origin(origin: str) -> None:
    """The origin is the key name of the log's checkpoints: a signed-note key name (no Unicode
    space, no '+', no control character), 1–256 characters."""
    from ledger.tlog.notes import bad_key_name_char

    bad = bad_key_name_char(origin)
    if not origin:
        found = "is empty"
    elif len(origin) > 256:
        found = f"is {len(origin)} characters long"
    elif bad is not None:
        found = f"has U+{ord(origin[bad]):04X} at offset {bad}"
    else:
        return
    raise InputError(
        f"--origin {found}; want 1–256 characters without spaces, '+' or control characters "
        "(it names the log's checkpoint key), e.g. example.com/agents"
    )


def _warn_known_origin(origin: str, root_key_id: str) -> None:
    """Warn when this machine has verified another log of this origin: `verify` will report
    the new log as a different one (remembered state is kept per log of an origin)."""
    from ledger.verify.consistency import known_logs, state_path

    try:
        seen = known_logs(origin)
    except StateError:
        return  # `verify` reports the unreadable state file; creating a log does not need it
    if not seen:
        return
    way_out = "give it its own origin, or verify it with --no-state"
    if all(log.root_key_id != root_key_id for log in seen):
        way_out = f"pin its root with `verify --trust {root_key_id}`, " + way_out
    click.echo(
        f"warning: this machine has verified another log of origin {origin!r} "
        f"({state_path(origin)}): `verify` reports this new log as a different log; {way_out}",
        err=True,
    )


def _payload_arg(value: str) -> Any:
    if value.startswith("@"):
        path = value[1:]
        try:
            data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as e:
            raise InputError(f"--payload: cannot read {path}: {e.strerror}") from e
        return loads(data, f"--payload {path}")
    return loads(value, "--payload")


@click.command()
@click.argument("event_type", metavar="TYPE")
@click.option("--signer", required=True, help="Name of the key that signs the event.")
@click.option("--agent", help="The agent concerned.")
@click.option("--run", help="The run the event belongs to.")
@click.option("--actor", help="The human or service that caused it.")
@click.option(
    "--id", "event_id", help="Event id (a retry with the same id is refused, not recorded twice)."
)
@click.option(
    "--payload",
    default="{}",
    show_default=True,
    metavar="JSON|@FILE",
    help="The payload: JSON text, @FILE, or @- for stdin.",
)
@json_option
@pass_ctx
def append(
    ctx: Context,
    event_type: str,
    signer: str,
    agent: str | None,
    run: str | None,
    actor: str | None,
    event_id: str | None,
    payload: str,
    as_json: bool,
) -> None:
    """Append one signed event; prints its seq and hash.

    \b
    Example:
      govledger append tool.called --signer recorder --agent planner-1 --run run-42 \\
        --payload '{"tool": "memory.read", "args_digest": "<64 hex>", "side_effect": "read"}'
    """
    value = _payload_arg(payload)
    if not isinstance(value, dict):
        raise InputError("--payload: must be a JSON object")
    ledger = ctx.ledger()
    key = ctx.signer(signer)
    event = ledger.append(Draft(event_type, value, agent, run, actor, event_id), signer=key)
    if as_json:
        echo_event(event)
    else:
        click.echo(f"seq {event.seq} {event.hash}")


@click.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--signer", required=True, help="Name of the key that signs every event.")
@json_option
@pass_ctx
def import_(ctx: Context, file: str, signer: str, as_json: bool) -> None:
    """Append events from a JSON Lines file, all or nothing.

    One JSON object per line with `type` and `payload` (required) and `agent`, `run`,
    `actor`, `id` (optional). Ledger-assigned fields (`v`, `seq`, `ts`, `prev`,
    `key`, `hash`, `sig`) are refused. Every bad line is reported with its line number
    and nothing is written.
    """
    from ledger.exchange.import_lines import import_file

    ledger = ctx.ledger()
    key = ctx.signer(signer)
    bar = ProgressBar("import", enabled=not as_json)
    with bar:
        done = import_file(ledger, file, signer=key, progress=bar.advance, total=bar.start)
    first, last, count = done.first_seq, done.last_seq, done.count
    if as_json:
        echo_json(
            {
                "imported": count,
                "first_seq": first,
                "last_seq": last,
                "head": {"seq": ledger.head()[0], "hash": ledger.head()[1]},
            }
        )
    elif count:
        click.echo(f"imported {plural(count, 'event')}: seq {first}–{last}")
    else:
        click.echo("imported 0 events (empty file)")


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "cloudevents", "otlp", "aat"]),
    default="jsonl",
    show_default=True,
    help="jsonl: signed events (docs/formats.md); cloudevents, otlp, aat: docs/exports.md.",
)
@click.option("--from", "from_seq", type=click.IntRange(min=1), default=1, help="First seq.")
@click.option("--to", "to_seq", type=click.IntRange(min=1), default=None, help="Last seq.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="Write to FILE (complete or not at all) instead of stdout.",
)
@click.option("--json", "as_json", is_flag=True, help="Accepted: the export is JSON Lines already.")
@pass_ctx
def export(
    ctx: Context, fmt: str, from_seq: int, to_seq: int | None, output: str, as_json: bool
) -> None:
    """Export events as JSON Lines (verifiable with `verify --file`), CloudEvents, OTLP or AAT.

    `jsonl` (the default) is the signed log itself (docs/formats.md); `cloudevents` wraps each
    signed event in a CloudEvent, `otlp` maps runs, tool calls and model calls to OpenTelemetry
    GenAI spans, `aat` writes Agent Audit Trail records (docs/exports.md). With `-o FILE` the
    file appears complete or not at all.
    """
    from ledger.exchange.export import atomic_output, counted, export_items, format_chunks

    ledger = ctx.ledger()
    origin = ledger.origin if fmt != "jsonl" else ""
    items = export_items(ledger, from_seq=from_seq, to_seq=to_seq)
    if output == "-":
        out = sys.stdout.buffer
        for chunk in format_chunks(fmt, items, origin=origin):
            out.write(chunk)
        out.flush()
        return
    total = (to_seq or ledger.size) - from_seq + 1
    n = 0
    with progress_bar("export", total) as advance, atomic_output(output) as f:

        def tick(count: int) -> None:
            nonlocal n
            n = count
            if count % 1000 == 0:
                advance(1000)

        for chunk in format_chunks(fmt, counted(items, tick), origin=origin):
            f.write(chunk)
    click.echo(f"exported {plural(n, 'event')} to {output}", err=True)


@click.command(name="log")
@click.option("--run", help="Only this run.")
@click.option("--agent", help="Only this agent.")
@click.option("--type", "event_type", help="Only this event type.")
@click.option("--since", metavar="TS", help="Events at or after this time.")
@click.option("--until", metavar="TS", help="Events at or before this time.")
@click.option("--from", "from_seq", type=click.IntRange(min=1), default=1, help="First seq.")
@click.option("--to", "to_seq", type=click.IntRange(min=1), default=None, help="Last seq.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help=f"At most N events, the first by seq [table default: {PAGE}; --json: all].",
)
@json_option
@pass_ctx
def log(
    ctx: Context,
    run: str | None,
    agent: str | None,
    event_type: str | None,
    since: str | None,
    until: str | None,
    from_seq: int,
    to_seq: int | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List events, oldest first (`--json`: one full event per line).

    The table shows one page (the first N events, default 50) and says how many more match;
    `--json` streams every matching event (or the first `--limit N`).
    """
    from ledger.exchange.export import event_filter, summarize

    ledger = ctx.ledger()
    selected = event_filter(
        run=run,
        agent=agent,
        event_type=event_type,
        since=normalize_time(since, "--since") if since else None,
        until=normalize_time(until, "--until") if until else None,
    )
    # Streams: one line per event as it is read, whatever the size of the log.
    fmt = "{:>8}  {:<27}  {:<20}  {:<14}  {:<16}  {}"
    page = limit if as_json or limit is not None else PAGE
    n = 0
    for n, event in enumerate(
        ledger.iter_events(from_seq=from_seq, to_seq=to_seq, filter=selected), start=1
    ):
        if page is not None and n > page:
            break
        if as_json:
            echo_event(event)
            continue
        if n == 1:
            click.echo(fmt.format("seq", "ts", "type", "agent", "run", "summary"))
        click.echo(
            fmt.format(
                event.seq,
                event.ts,
                event.type,
                event.agent or "-",
                event.run or "-",
                summarize(event),
            )
        )
    if n == 0:
        filtered = any((run, agent, event_type, since, until, to_seq)) or from_seq > 1
        click.echo("no event matches" if filtered else "no events in the log", err=True)
    if not as_json and page is not None and n > page:
        total = ledger.count_events(from_seq=from_seq, to_seq=to_seq, filter=selected)
        echo_more("event(s)", page, total, "by seq")


def read_checkpoint_file(checkpoint_file: str) -> str:
    """The note of ``--checkpoint FILE``: a usage error when it cannot be read or is not a
    checkpoint at all (one that does not verify against the log is a mismatch, found later)."""
    from ledger.tlog.notes import parse_unverified_checkpoint

    try:
        checkpoint = Path(checkpoint_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--checkpoint: cannot read {checkpoint_file}") from e
    try:
        parse_unverified_checkpoint(checkpoint, "checkpoint note")
    except CheckpointError as e:
        raise InputError(
            f"--checkpoint: {checkpoint_file} is not a checkpoint ({e.message})"
        ) from e
    return checkpoint


@click.command()
@click.option(
    "--from",
    "from_seq",
    type=click.IntRange(min=1),
    default=None,
    help="Check events from SEQ on, anchored on the stored hash of SEQ − 1 and the stored "
    "Merkle tree left of SEQ.",
)
@click.option(
    "--trust", multiple=True, metavar="KEY_ID", help="Pin the expected root key id (repeatable)."
)
@click.option(
    "--trusted-keys",
    type=click.Path(dir_okay=False),
    help="File of trusted root key ids, one per line.",
)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False),
    help="A checkpoint saved earlier: detects truncation, rewriting and forks.",
)
@add_witness_options
@click.option(
    "--file",
    "export_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Verify an exported JSON Lines file instead of the database.",
)
@click.option(
    "--no-state",
    is_flag=True,
    help="Do not check against, or remember, the last verified size and root.",
)
@json_option
@pass_ctx
def verify(
    ctx: Context,
    from_seq: int | None,
    trust: tuple[str, ...],
    trusted_keys: str | None,
    checkpoint_file: str | None,
    witness_vkeys: tuple[str, ...],
    quorum: int | None,
    export_file: str | None,
    no_state: bool,
    as_json: bool,
) -> None:
    """Verify integrity: framing, hashes, chain, seq, signatures, key authorization.

    Without a pinned root key (`--trust` / `--trusted-keys`) this proves only internal
    consistency, and says so. With `--checkpoint FILE`, the log must hold that checkpoint's
    tree; with `--witness` too, FILE must carry valid cosignatures from at least `--quorum`
    (default: all) of those witnesses (`unwitnessed` otherwise). Exit 1 when any problem is
    found.
    """
    from ledger.cli.proofs import now, witness_policy
    from ledger.verify.verifier import verify_export, verify_ledger

    witnesses, want = witness_policy(witness_vkeys, quorum)
    if witnesses and checkpoint_file is None:
        raise InputError("--witness needs --checkpoint: the checkpoint whose cosignatures to check")

    trusted = set(trust)
    if trusted_keys:
        try:
            text = Path(trusted_keys).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"--trusted-keys: cannot read {trusted_keys}") from e
        from_file = {
            ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")
        }
        if not from_file:
            # Asked to pin and given nothing to pin to: fail closed, never silently unpinned.
            raise InputError(f"--trusted-keys: {trusted_keys} holds no key id")
        trusted |= from_file
    for k in trusted:
        if len(k) != 32 or any(c not in "0123456789abcdef" for c in k):
            raise InputError(f"--trust: {k!r} is not a key id (32 lowercase hex)")
    checkpoint = read_checkpoint_file(checkpoint_file) if checkpoint_file else None
    report: VerifyReport
    if export_file:
        if from_seq is not None:
            raise InputError("--from cannot be used with --file")
        stream: BinaryIO
        try:
            stream = sys.stdin.buffer if export_file == "-" else open(export_file, "rb")  # noqa: SIM115
        except OSError as e:
            raise InputError(f"--file: cannot read {export_file}: {e.strerror}") from e
        with stream:
            report = verify_export(
                stream,
                trusted=trusted or None,
                checkpoint=checkpoint,
                witnesses=witnesses,
                quorum=want,
                now=now(),
            )
    else:
        ledger = ctx.ledger()
        with progress_bar("verify", ledger.size, enabled=not as_json) as advance:
            report = verify_ledger(
                ledger,
                from_seq=from_seq,
                trusted=trusted or None,
                checkpoint=checkpoint,
                progress=advance,
                use_state=not no_state,
                witnesses=witnesses,
                quorum=want,
                now=now(),
            )
    if as_json:
        echo_json(report.as_dict())
    elif report.ok:
        _print_ok(report)
    if not report.ok:
        first = report.problems[0]
        more = report.problem_count - 1
        raise VerificationError(
            f"{first}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
        )


def _print_ok(report: VerifyReport) -> None:
    scope = (
        f"seq {report.from_seq}–{report.head_seq}"
        if report.from_seq
        else plural(report.events, "event")
    )
    click.echo(f"ok: {scope}, head seq {report.head_seq} {report.head_hash}")
    click.echo(f"root {report.root.hex()}")
    if report.checkpoint:
        click.echo(f"consistent with checkpoint of size {report.checkpoint['size']}")
        cosigners = [w for w in report.checkpoint.get("witnesses", []) if w["cosigned"]]
        if "quorum" in report.checkpoint:
            names = ", ".join(w["name"] for w in cosigners)
            click.echo(
                f"cosigned by {len(cosigners)} of {len(report.checkpoint['witnesses'])} "
                f"witnesses (quorum {report.checkpoint['quorum']}): {names}"
            )
    if report.state_note:
        click.echo(f"remembered state: {report.state_note}")
    if not report.pinned:
        click.echo(
            "not pinned: this proves internal consistency only; pin the root key with "
            f"--trust {report.root_key_id}"
        )


COMMANDS = [init, append, import_, export, log, verify]
