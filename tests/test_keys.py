"""Private key files (SPEC §2.3): permissions, passphrases, key ids."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from ledger.cli import main
from ledger.crypto.keyfiles import KeyRing
from ledger.crypto.signing import key_id
from ledger.errors import InputError, KeyFileError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_key_is_0600_in_a_0700_directory(keyring: KeyRing) -> None:
    keyring.create("root")
    assert mode(keyring.directory) == 0o700
    assert mode(keyring.path("root")) == 0o600
    assert keyring.names() == ["root"]


def test_key_file_is_unencrypted_pkcs8_pem_without_passphrase(keyring: KeyRing) -> None:
    keyring.create("root")
    pem = keyring.path("root").read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    serialization.load_pem_private_key(pem, password=None)


def test_key_id_is_first_16_bytes_of_sha256_of_the_raw_public_key(keyring: KeyRing) -> None:
    signer = keyring.create("root")
    assert len(signer.public_key) == 32
    assert signer.key_id == hashlib.sha256(signer.public_key).hexdigest()[:32]
    assert key_id(bytes(32)) == hashlib.sha256(bytes(32)).hexdigest()[:32]
    assert keyring.load("root").key_id == signer.key_id


def test_signer_repr_never_shows_the_private_key(keyring: KeyRing) -> None:
    signer = keyring.create("root")
    assert repr(signer) == f"Signer(name='root', key_id='{signer.key_id}')"


def test_existing_key_is_never_overwritten(keyring: KeyRing) -> None:
    keyring.create("root")
    before = keyring.path("root").read_bytes()
    with pytest.raises(InputError, match=r"^key 'root' already exists at "):
        keyring.create("root")
    assert keyring.path("root").read_bytes() == before


@pytest.mark.parametrize("file_mode", [0o640, 0o604, 0o644, 0o660])
def test_key_readable_by_others_is_refused_with_the_chmod(keyring: KeyRing, file_mode: int) -> None:
    keyring.create("rec")
    path = keyring.path("rec")
    path.chmod(file_mode)
    with pytest.raises(KeyFileError) as e:
        keyring.load("rec")
    assert e.value.message == (
        f"key file {path} is accessible by group or others (mode {file_mode:04o}); "
        f"run: chmod 600 {path}"
    )
    assert e.value.exit_code == 3


def test_key_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    with pytest.raises(KeyFileError) as e:
        KeyRing(directory).create("root")
    assert e.value.message == (
        f"key directory {directory} is accessible by group or others (mode 0755); "
        f"run: chmod 700 {directory}"
    )
    assert list(directory.iterdir()) == []


def test_missing_key_is_an_environment_error(keyring: KeyRing) -> None:
    with pytest.raises(KeyFileError) as e:
        keyring.load("ghost")
    assert e.value.message == f"key 'ghost' not found: no file {keyring.path('ghost')}"


def test_damaged_key_file_is_refused(keyring: KeyRing) -> None:
    keyring.create("root")
    keyring.path("root").write_bytes(b"not a key\n")
    with pytest.raises(KeyFileError) as e:
        keyring.load("root")
    assert (
        e.value.message == f"key 'root': cannot load {keyring.path('root')}: not a PKCS#8 PEM key"
    )


@pytest.mark.parametrize("name", ["", "-x", "a/b", "../up", "a b", "x.pem", "k" * 65])
def test_key_names_are_safe_file_names(keyring: KeyRing, name: str) -> None:
    with pytest.raises(InputError, match="is not valid: use letters, digits"):
        keyring.path(name)


# --- passphrases ------------------------------------------------------------------------------


def test_passphrase_encrypts_new_keys(keyring: KeyRing, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVLEDGER_PASSPHRASE", "correct horse")
    signer = keyring.create("root")
    pem = keyring.path("root").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert keyring.load("root").key_id == signer.key_id


def test_encrypted_key_without_passphrase_is_refused(
    keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVLEDGER_PASSPHRASE", "correct horse")
    keyring.create("root")
    monkeypatch.delenv("GOVLEDGER_PASSPHRASE")
    with pytest.raises(KeyFileError) as e:
        keyring.load("root")
    assert e.value.message == "key 'root' is encrypted: set GOVLEDGER_PASSPHRASE to its passphrase"


def test_encrypted_key_with_wrong_passphrase_is_refused(
    keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVLEDGER_PASSPHRASE", "correct horse")
    keyring.create("root")
    monkeypatch.setenv("GOVLEDGER_PASSPHRASE", "battery staple")
    with pytest.raises(KeyFileError) as e:
        keyring.load("root")
    assert e.value.message == (
        f"key 'root': cannot load {keyring.path('root')}: wrong passphrase or damaged file"
    )


def test_plain_key_still_loads_when_a_passphrase_is_set(
    keyring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = keyring.create("root")
    monkeypatch.setenv("GOVLEDGER_PASSPHRASE", "anything")
    assert keyring.load("root").key_id == signer.key_id


# --- through the command line (exit 3) ---------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["--db", str(tmp_path / "l.db"), "--keys", str(tmp_path / "keys"), *args],
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def test_cli_refuses_a_loose_key_with_exit_3(tmp_path: Path) -> None:
    assert _cli(tmp_path, "init", "--origin", "test.example/log")[0] == 0
    assert _cli(tmp_path, "keys", "new", "rec", "--role", "recorder")[0] == 0
    path = tmp_path / "keys" / "rec.pem"
    path.chmod(0o644)
    code, out, err = _cli(tmp_path, "append", "x.note", "--signer", "rec", "--payload", "{}")
    assert code == 3
    assert err == (
        f"error: key file {path} is accessible by group or others (mode 0644); "
        f"run: chmod 600 {path}\n"
    )
    assert out == ""


def test_cli_encrypted_key_without_passphrase_is_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVLEDGER_PASSPHRASE", "pw")
    assert _cli(tmp_path, "init", "--origin", "test.example/log")[0] == 0
    monkeypatch.delenv("GOVLEDGER_PASSPHRASE")
    code, _, err = _cli(tmp_path, "keys", "new", "rec", "--role", "recorder")
    assert code == 3
    assert err == "error: key 'root' is encrypted: set GOVLEDGER_PASSPHRASE to its passphrase\n"
    assert not (tmp_path / "keys" / "rec.pem").exists()
