"""Exact error messages as parametrized cases: a call, the exception it must raise, and the
message it must carry, word for word (the checkpoint and witness tests' tables)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ledger.errors import CheckpointError


def case(
    call: Callable[[], object], message: str, exc: type[Exception] = CheckpointError
) -> object:
    """One case of a ``MESSAGES`` table (its id: the message's start)."""
    return pytest.param(call, exc, message, id=message[:60])


def check(call: Callable[[], object], exc: type[Exception], message: str) -> None:
    """``call`` raises exactly ``exc`` (not a subclass) with exactly ``message``."""
    with pytest.raises(exc) as e:
        call()
    assert type(e.value) is exc
    assert str(e.value) == message
