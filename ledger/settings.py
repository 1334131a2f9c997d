"""The environment variables govledger reads as numbers or choices, parsed in one place.

A malformed value is a usage error (exit 2) that names the variable, the value and what is
wanted; ``check_environment`` checks them all before a command reads or writes anything.
"""

from __future__ import annotations

import os
import re

from ledger.errors import InputError

INTEGERS: dict[str, int] = {
    "GOVLEDGER_BUSY_TIMEOUT_MS": 0,
    "GOVLEDGER_WORKERS": 0,
    "GOVLEDGER_PARALLEL_MIN": 0,
}
"""Integer variables and the least value each takes."""

CHOICES: dict[str, tuple[str, ...]] = {
    "GOVLEDGER_SYNCHRONOUS": ("FULL", "NORMAL", "EXTRA"),
}
"""Variables that take one of a few words (any case)."""

_INTEGER = re.compile(r"-?[0-9]+")


def env_int(name: str, default: int) -> int:
    """The integer in variable ``name`` (unset or empty: ``default``)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    least = INTEGERS[name]
    if not _INTEGER.fullmatch(raw) or int(raw) < least:
        raise InputError(f"{name} is {raw!r}, want a whole number ≥ {least}")
    return int(raw)


def env_choice(name: str, default: str) -> str:
    """The word in variable ``name``, upper-cased (unset or empty: ``default``)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    choices = CHOICES[name]
    if raw.upper() not in choices:
        raise InputError(f"{name} is {raw!r}, want one of {', '.join(choices)}")
    return raw.upper()


def check_environment() -> None:
    """Refuse a malformed value of any of these variables (``InputError``, exit 2)."""
    for name in INTEGERS:
        env_int(name, 0)
    for name, choices in CHOICES.items():
        env_choice(name, choices[0])
