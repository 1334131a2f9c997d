"""What a runtime hands the recorder, turned into what the log holds (SPEC §2.2, §2.4).

Signed content holds no floats and no raw tool arguments: arguments and results become
SHA-256 digests of their RFC 8785 form, money becomes integer micro-USD, ratios integer basis
points, and an exception the failure class of ``run.failed``. Each conversion is made here,
once, so every event of a run is converted the same way (docs/api.md, "Values").
"""

from __future__ import annotations

import hashlib
import math
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final, get_args

import rfc8785

from ledger.errors import EncodingError, InputError
from ledger.event.catalog import FailureClass

FAILURE_CLASSES: Final = frozenset(get_args(FailureClass))
"""The ``run.failed`` taxonomy of the catalog."""

CANCELLATIONS: Final[tuple[type[BaseException], ...]] = (KeyboardInterrupt, SystemExit)
"""Exceptions that end a run as ``run.cancelled`` (``asyncio.CancelledError`` too: see
``is_cancellation``), not ``run.failed``."""

FAILURE_NAMES: Final[tuple[tuple[str, str], ...]] = (
    ("RateLimit", "rate_limit"),
    ("ContextWindow", "context_overflow"),
    ("ContextLength", "context_overflow"),
    ("TokenLimit", "context_overflow"),
    ("Timeout", "llm_timeout"),
    ("APIConnectionError", "llm_error"),
    ("APIStatusError", "llm_error"),
    ("APIError", "llm_error"),
    ("ValidationError", "validation_error"),
    ("ToolError", "tool_error"),
    ("PromptRejected", "prompt_rejection"),
    ("ContentFilter", "prompt_rejection"),
)
"""Exception class name fragments (of any class in its MRO, first match wins) and their failure
class: the common SDKs name their errors this way (``RateLimitError``, ``APITimeoutError``,
``ValidationError``...) and this keeps them optional imports."""

FAILURE_TYPES: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (TimeoutError, "llm_timeout"),
    (ConnectionError, "dependency_failed"),
    (ValueError, "validation_error"),
)
"""Built-in exception types and their failure class, tried after ``FAILURE_NAMES``."""


def digest_of(value: Any, where: str = "value") -> str:
    """Lowercase hex SHA-256 of the RFC 8785 form of ``value`` (floats allowed here: the
    digest, not the value, is signed). ``EncodingError`` naming ``where`` when ``value`` has no
    RFC 8785 form (NaN, an integer beyond ±(2^53 − 1), bytes, an object)."""
    try:
        raw = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise EncodingError(f"{where}: has no RFC 8785 form ({e})") from e
    return hashlib.sha256(raw).hexdigest()


def _decimal(value: Any, where: str) -> Decimal:
    """The exact decimal a number is written as: an int or ``Decimal`` as is, a float as the
    shortest decimal that reads back as it (``repr``), so ``0.1`` is 0.1, not 0.1000000000000000055."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InputError(f"{where}: expected a number, found {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: {value!r} is not a finite number")
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as e:  # pragma: no cover - every finite float has a repr
        raise InputError(f"{where}: {value!r} is not a number") from e
    if not d.is_finite():
        raise InputError(f"{where}: {value!r} is not a finite number")
    return d


def scaled_int(value: Any, scale: int, where: str) -> int:
    """``value × scale`` as an integer, rounded once, half to even, from the decimal the value
    is written as (``_decimal``). Negative values are refused."""
    d = _decimal(value, where)
    if d < 0:
        raise InputError(f"{where}: {value!r} is negative")
    return int((d * scale).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def micro_usd(cost_usd: Any) -> int:
    """US dollars as integer micro-USD (SPEC §2.2): ``0.0000025`` → 2, ``0.0000035`` → 4,
    ``0.1 + 0.2`` → 300000."""
    return scaled_int(cost_usd, 1_000_000, "cost_usd")


def basis_points(ratio: Any, where: str = "confidence") -> int:
    """A ratio in [0, 1] as integer basis points (0–10000), rounded half to even."""
    bp = scaled_int(ratio, 10_000, where)
    if bp > 10_000:
        raise InputError(f"{where}: {ratio!r} is above 1")
    return bp


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` cancels a run: ``KeyboardInterrupt``, ``SystemExit``,
    ``asyncio.CancelledError``, ``GeneratorExit``."""
    import asyncio

    return isinstance(exc, (*CANCELLATIONS, asyncio.CancelledError, GeneratorExit))


def failure_class_of(exc: BaseException) -> str:
    """The ``run.failed`` failure class of ``exc`` (docs/api.md, "Failure classes"):

    1. an attribute ``failure_class`` on the exception holding a class of the taxonomy;
    2. a fragment of ``FAILURE_NAMES`` in the name of a class of its MRO (SDK errors);
    3. a built-in type of ``FAILURE_TYPES`` (``TimeoutError`` → ``llm_timeout``...);
    4. else ``unknown``.
    """
    own = getattr(exc, "failure_class", None)
    if isinstance(own, str) and own in FAILURE_CLASSES:
        return own
    names = [cls.__name__ for cls in type(exc).__mro__]
    for fragment, failure in FAILURE_NAMES:
        if any(fragment in name for name in names):
            return failure
    for kind, failure in FAILURE_TYPES:
        if isinstance(exc, kind):
            return failure
    return "unknown"


MAX_MESSAGE = 2000
"""Longest exception text kept in a ``run.failed`` message or ``run.cancelled`` reason."""


def describe(exc: BaseException) -> str:
    """``ClassName: message`` of an exception, cut to ``MAX_MESSAGE`` characters."""
    # A lone surrogate has no UTF-8 form, so no canonical form: it is replaced, not refused.
    text = str(exc).encode("utf-8", "replace").decode("utf-8")
    out = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return out if len(out) <= MAX_MESSAGE else out[: MAX_MESSAGE - 1] + "…"
