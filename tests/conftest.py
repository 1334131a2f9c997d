"""Shared fixtures: real key files, real SQLite ledgers in ``tmp_path``, a realistic workload.

Every test runs with ``GOVLEDGER_STATE`` (verify's remembered state) and ``GOVLEDGER_KEYS``
pointed into its own temporary directory, so nothing touches the home directory.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings

from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.store.sqlite import Draft, Ledger, root_key_payload
from projections.projection import Projection

settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=20,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# HYPOTHESIS_PROFILE=thorough for a long local run; CI gets the deterministic ``ci`` profile.
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
)

ORIGIN = "test.example/log"

PG_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_HOW = (
    "PostgreSQL tests need a server: set GOVLEDGER_TEST_PG_URL (default "
    f"{PG_DEFAULT_URL}) to a database where the user may CREATE DATABASE and CREATE ROLE"
)


def pg_required() -> bool:
    """``GOVLEDGER_PG_REQUIRED=1`` (CI): PostgreSQL tests fail instead of skipping."""
    return os.environ.get("GOVLEDGER_PG_REQUIRED") == "1"


def with_database(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead of its own."""
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


def connect_admin() -> Any:
    """An autocommit connection to the test server (``GOVLEDGER_TEST_PG_URL``, its URL as
    ``.url``), or a skip saying how to run the PostgreSQL tests (a failure under
    ``GOVLEDGER_PG_REQUIRED=1``)."""
    try:
        import psycopg
    except ImportError:
        if pg_required():
            raise
        pytest.skip("PostgreSQL tests need pip install -e '.[postgres]'")
    url = os.environ.get("GOVLEDGER_TEST_PG_URL", PG_DEFAULT_URL)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        if pg_required():
            pytest.fail(f"GOVLEDGER_PG_REQUIRED=1 but PostgreSQL is unreachable at {url}: {e}")
        pytest.skip(f"{PG_HOW} ({e})")
    conn.url = url  # type: ignore[attr-defined]
    return conn


@pytest.fixture
def admin() -> Iterator[Any]:
    """``connect_admin()`` for one test."""
    conn = connect_admin()
    yield conn
    conn.close()


@pytest.fixture
def pg_url(admin: Any) -> Iterator[str]:
    """A fresh database of its own on the test server, dropped afterwards."""
    name = f"gl_test_{secrets.token_hex(6)}"
    admin.execute(f"CREATE DATABASE {name}")
    yield with_database(admin.url, name)
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(autouse=True)
def _isolated_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep verify's remembered state and key lookups out of the home directory."""
    monkeypatch.setenv("GOVLEDGER_STATE", str(tmp_path_factory.mktemp("state")))
    monkeypatch.delenv("GOVLEDGER_PASSPHRASE", raising=False)
    monkeypatch.delenv("GOVLEDGER_DB", raising=False)
    monkeypatch.delenv("GOVLEDGER_BUSY_TIMEOUT_MS", raising=False)
    monkeypatch.setenv("GOVLEDGER_KEYS", str(tmp_path_factory.mktemp("nokeys") / "keys"))


class Cli:
    """``govledger --db DB --keys DIR ...`` through click's runner, in one temporary place."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.db = tmp_path / "l.db"
        self.keys = tmp_path / "keys"

    def __call__(self, *args: str, input: str | bytes | None = None, ok: bool = True) -> Result:
        from ledger.cli import main  # imported here: a broken command module fails only CLI tests

        result = CliRunner().invoke(
            main,
            ["--db", str(self.db), "--keys", str(self.keys), *args],
            input=input,
            catch_exceptions=False,
        )
        if ok:
            assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    def json(self, *args: str, input: str | None = None) -> Any:
        return json.loads(self(*args, "--json", input=input).stdout)

    def json_lines(self, *args: str) -> list[Any]:
        return [json.loads(line) for line in self(*args, "--json").stdout.splitlines()]

    def ring(self) -> KeyRing:
        return KeyRing(self.keys)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def ready(cli: Cli) -> Cli:
    """A ledger made by ``govledger init``, with a recorder key ``rec`` (seq 2)."""
    cli("init", "--origin", ORIGIN)
    cli("keys", "new", "rec", "--role", "recorder")
    return cli


@pytest.fixture
def log(ready: Cli) -> Cli:
    """``ready`` and four ``x.note`` events: a ledger of 6 events (the witness tests' log; a
    test module may define a ``log`` of its own)."""
    for n in range(4):
        ready("append", "x.note", "--signer", "rec", "--payload", json.dumps({"n": n}))
    return ready


def log_vkey(cli: Cli) -> str:
    """The vkey of the ledger's root key (the log's checkpoint key)."""
    return str(cli("keys", "vkey", "root").stdout.strip())


def new_witness(cli: Cli, key: str, name: str, *args: str) -> str:
    """``witness new KEY --name NAME``; its vkey."""
    return str(cli("witness", "new", key, "--name", name, *args).stdout.strip())


def digest(text: str) -> str:
    """A lowercase hex SHA-256, for the ``*_digest`` payload fields."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    return KeyRing(tmp_path / "keys")


@dataclass
class LedgerKeys:
    """The keys of the ``ledger`` fixture: ``root`` (governor) and ``recorder``."""

    root: Signer
    recorder: Signer


@pytest.fixture
def keys(keyring: KeyRing) -> LedgerKeys:
    return LedgerKeys(root=keyring.create("root"), recorder=keyring.create("recorder"))


@pytest.fixture
def ledger(tmp_path: Path, keys: LedgerKeys) -> Iterator[Ledger]:
    """A ledger at ``tmp_path/"l.db"``: seq 1 ``ledger.created``, seq 2 the recorder key."""
    lg = Ledger.create(tmp_path / "l.db", origin=ORIGIN, root=keys.root)
    lg.append(
        Draft("key.registered", root_key_payload(keys.recorder, "recorder")), signer=keys.root
    )
    yield lg
    lg.close()


def agent_registration(agent: str = "planner-1", version: str = "1") -> Draft:
    """``agent.registered``: signed by a governor."""
    return Draft(
        "agent.registered",
        {
            "owner": "team-a",
            "version": version,
            "initial_tier": 1,
            "allowed_side_effects": ["read", "write"],
            "forbidden_actions": ["payment"],
            "confidence_threshold_bp": 7000,
        },
        agent=agent,
    )


def run_drafts(agent: str, run: str, *, tools: int = 2, actor: str | None = "u1") -> list[Draft]:
    """One run's lifecycle, all signed by a recorder: submitted … completed."""
    ar = {"agent": agent, "run": run}
    out = [
        Draft(
            "run.submitted",
            {
                "objective": f"objective of {run} — ünïcödé \u2028 ok",
                "user": "u1",
                "risk": "low",
                "auto_approve": True,
            },
            actor=actor,
            **ar,
        ),
        Draft(
            "run.planned",
            {
                "steps": [
                    {
                        "tool": f"tool.{i}",
                        "args_digest": digest(f"{run}/{i}"),
                        "side_effect": "read",
                        "reversible": True,
                    }
                    for i in range(tools)
                ],
                "risk": "low",
                "required_tier": 1,
            },
            **ar,
        ),
        Draft("run.started", {}, **ar),
    ]
    for i in range(tools):
        out.append(
            Draft(
                "tool.called",
                {"tool": f"tool.{i}", "args_digest": digest(f"{run}/{i}"), "side_effect": "read"},
                **ar,
            )
        )
        out.append(
            Draft(
                "tool.completed",
                {
                    "tool": f"tool.{i}",
                    "status": "ok",
                    "result_digest": digest(f"{run}/{i}/out"),
                    "duration_ms": 12,
                },
                **ar,
            )
        )
    out.append(
        Draft(
            "llm.usage",
            {
                "provider": "anthropic",
                "model": "m-1",
                "tokens_in": 100,
                "tokens_out": 20,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "cost_micro_usd": 1500,
                "wallclock_ms": 800,
            },
            **ar,
        )
    )
    out.append(
        Draft(
            "decision.recorded",
            {"decision": "EXECUTE", "confidence_bp": 9000, "rationale": "clear"},
            **ar,
        )
    )
    out.append(Draft("run.completed", {"steps_completed": tools}, **ar))
    return out


def approval(agent: str, run: str) -> Draft:
    """``run.approved``: signed by a governor."""
    return Draft(
        "run.approved",
        {"approver": "alice", "mode": "human", "plan_digest": digest(run)},
        agent=agent,
        run=run,
    )


def populate(ledger: Ledger, keys: LedgerKeys, *, runs: int = 2, agent: str = "planner-1") -> None:
    """A small realistic log: an agent registered by the governor, then ``runs`` runs."""
    ledger.append(agent_registration(agent), signer=keys.root)
    for r in range(runs):
        drafts = run_drafts(agent, f"run-{r}")
        ledger.append_many(drafts[:2], signer=keys.recorder)
        ledger.append(approval(agent, f"run-{r}"), signer=keys.root)
        ledger.append_many(drafts[2:], signer=keys.recorder)


def sign(signer: Signer, digest: bytes) -> str:
    """SPEC §2.1 signature, made here with ``cryptography`` independently of the library."""
    return base64.b64encode(signer.private_key.sign(b"govledger/event/v1\n" + digest)).decode()


def snapshot(path: str | Path) -> tuple[int, str]:
    """(size, head hash) of the ledger at ``path``, read through a fresh connection."""
    with Ledger.open(path) as lg:
        return lg.head()


def bump_version(monkeypatch: pytest.MonkeyPatch, projection: Projection[Any]) -> None:
    """Raise the version of a built-in ``projection`` by one for this test, in its class and in
    its declaration (``projections.registry``), as a real version bump does."""
    from projections import registry

    monkeypatch.setattr(type(projection), "version", projection.version + 1)
    monkeypatch.setattr(
        registry,
        "_BUILT_IN_DECLARED",
        tuple(
            dataclasses.replace(d, version=projection.version) if d.name == projection.name else d
            for d in registry._BUILT_IN_DECLARED
        ),
    )


def tls_for_localhost(tmp: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1 and its key, as PEM files in ``tmp``:
    (certificate, key). The certificate is its own authority: a client trusts it by name."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "govledger test server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "tls-cert.pem", tmp / "tls-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file
