"""Governance policy: the TOML document, its validated model, version and digest.

A policy is written in TOML and recorded in the log as a ``policy.set`` event whose ``document``
is the TOML content as a JSON object (integers only) and whose ``digest`` is SHA-256 of its
RFC 8785 bytes. The policy in force at seq N is the one of the last ``policy.set`` at or before
N; before any, the shipped default (``default_policy.toml``) with version 0. Field by field
documentation: docs/policy.md.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledger.errors import LedgerError, PolicyError
from ledger.event.canonical import canonical
from ledger.event.envelope import PolicySet

Bp = Annotated[int, Field(ge=0, le=10000)]
NonNeg = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]


RUN_NOT_COMPLETED = 1
"""Outcome bit of a finished run that did not complete (failed, cancelled, rejected)."""
SEVERITY_BITS: dict[str, int] = {"info": 2, "warning": 4, "critical": 8}
"""Outcome bit of a finished run holding at least one finding of that severity."""


class _Section(BaseModel):
    # Schemas built when a policy is first validated, not at import: a reading command whose
    # read models are current never validates one.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, defer_build=True)


class Compliance(_Section):
    noncompliant_severities: list[Literal["info", "warning", "critical"]] = ["warning", "critical"]
    """A run is compliant when it completed with no finding of these severities."""


class TierCriteria(_Section):
    min_compliant_runs: NonNeg = 0
    """Compliant runs the agent must have in total."""
    min_streak: NonNeg = 0
    """Consecutive compliant runs, ending with the latest finished run."""
    max_violation_rate_bp: Bp = 10000
    """Non-compliant share of the last ``window_runs`` finished runs, at most."""
    window_runs: Positive = 20
    min_seconds_at_tier: NonNeg = 0
    """Log time (event ``ts``) spent at the current tier."""


class Demotion(_Section):
    window_runs: Positive = 10
    max_violations: NonNeg = 3
    """Demote when more than this many of the last ``window_runs`` finished runs are non-compliant."""
    by: Annotated[int, Field(ge=1, le=4)] = 1


class Revocation(_Section):
    on_critical: bool = True


class Corrections(_Section):
    threshold: Positive = 3
    similarity_bp: Bp = 3000
    max_examples: Positive = 3


class Reliability(_Section):
    tool_loop_repeats: Annotated[int, Field(ge=2)] = 3
    run_cost_cap_micro_usd: NonNeg = 5_000_000
    agent_daily_cost_cap_micro_usd: NonNeg = 50_000_000
    quality_window_runs: Annotated[int, Field(ge=2)] = 5
    quality_drop_bp: Bp = 1500
    failure_repeat: Annotated[int, Field(ge=2)] = 3


Risk = Literal["low", "medium", "high"]
TierOrNever = Annotated[int, Field(ge=0, le=5)]
"""A tier 0–4, or 5 for never (no agent holds T5)."""
NEVER = 5


class Approval(_Section):
    auto_from_tier: dict[Risk, TierOrNever] = {"low": 2, "medium": 3, "high": 5}
    """Effective tier at submission from which a run submitted with ``auto_approve: true``
    needs no governor's ``run.approved``, per risk (a missing risk or 5: never)."""

    def needed(self, risk: str | None) -> int:
        """The effective tier that auto-approves a run of ``risk`` (``NEVER``: none does)."""
        need = self.auto_from_tier.get(risk) if risk in self.auto_from_tier else None
        return NEVER if need is None else int(need)

    def auto_approves(self, tier: int, risk: str | None) -> bool:
        """Whether an agent at effective ``tier`` may start a run of ``risk`` on its own."""
        need = self.needed(risk)
        return need < NEVER and tier >= need


class Grants(_Section):
    contract_suffices_from_tier: TierOrNever = 2
    """Effective tier at a run's start from which a run with no ``capability.granted`` is
    held to the agent's registered contract alone (below it, each of its tool calls is
    ``tool_outside_grant``; 5: never)."""


class PolicyDocument(_Section):
    """The policy, validated. Unknown fields are refused, so a typo never silently weakens it."""

    human_approval_from_tier: Annotated[int, Field(ge=1, le=5)] = 3
    """Promotions into this tier and above need ``tiers apply --approve AGENT`` (5: never)."""
    cooldown_seconds: NonNeg = 86400
    compliance: Compliance = Compliance()
    promotion: dict[Literal["T1", "T2", "T3", "T4"], TierCriteria]
    demotion: Demotion = Demotion()
    revocation: Revocation = Revocation()
    corrections: Corrections = Corrections()
    reliability: Reliability = Reliability()
    approval: Approval = Approval()
    grants: Grants = Grants()

    def criteria_for(self, tier: int) -> TierCriteria | None:
        """Criteria to be promoted into ``tier`` (None: no promotion into it)."""
        key = {1: "T1", 2: "T2", 3: "T3", 4: "T4"}.get(tier)
        return None if key is None else self.promotion.get(key)  # type: ignore[call-overload]

    def promotion_stops_at(self) -> int | None:
        """The lowest tier (1–4) without ``[promotion.Tn]``: promotion moves one tier at a
        time, so it and every tier above it can never be reached by promotion (None: all can)."""
        return next((t for t in range(1, 5) if self.criteria_for(t) is None), None)

    @property
    def noncompliant_mask(self) -> int:
        """Run-outcome bits that make a finished run non-compliant under this policy."""
        return RUN_NOT_COMPLETED | self.violation_mask

    @property
    def violation_mask(self) -> int:
        """Run-outcome bits that make a finished run a violation: a finding of a blocking
        severity. A run that failed or was cancelled without one is not compliant (it breaks a
        streak) but is no violation (it counts for neither demotion nor the violation rate)."""
        mask = 0
        for severity in self.compliance.noncompliant_severities:
            mask |= SEVERITY_BITS[severity]
        return mask


@dataclass(frozen=True)
class Policy:
    """A policy as in force: its document, version (0 = shipped default) and digest."""

    version: int
    digest: str
    document: dict[str, Any]
    rules: PolicyDocument
    seq: int = 0
    """Seq of the ``policy.set`` that recorded it (0 for the default)."""


def unreachable_warning(rules: PolicyDocument) -> str | None:
    """Why some tiers can never be reached by promotion under ``rules``, or None."""
    stop = rules.promotion_stops_at()
    if stop is None:
        return None
    above = "" if stop == 4 else f" (nor T{stop + 1}" + ("–T4)" if stop < 3 else ")")
    return (
        f"the policy has no [promotion.T{stop}]: no agent is ever promoted into T{stop}{above}; "
        f"add [promotion.T{stop}] to allow it"
    )


def digest_of(document: dict[str, Any]) -> str:
    """SHA-256 hex of the RFC 8785 bytes of ``document`` (SPEC §2.4 ``policy.set``)."""
    return hashlib.sha256(canonical(document, "policy")).hexdigest()


def validate(document: Any, where: str = "policy") -> PolicyDocument:
    if not isinstance(document, dict):
        raise PolicyError(f"{where}: must be a table / JSON object")
    try:
        canonical(document, where)
    except LedgerError as e:
        raise PolicyError(e.message) from e
    try:
        return PolicyDocument.model_validate(document)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise PolicyError(f"{where}: {loc}: {msg}{more}") from e


def load_toml(text: str, where: str = "policy") -> dict[str, Any]:
    """Parse TOML into a JSON object with integers only (no floats, no dates)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{where}: invalid TOML: {e}") from e
    validate(doc, where)
    return doc


def read_policy_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"{p}: cannot read policy file ({e})") from e
    return load_toml(text, str(p))


def default_document() -> dict[str, Any]:
    text = resources.files("projections.policy").joinpath("default_policy.toml").read_text("utf-8")
    return load_toml(text, "default policy")


def make_policy(document: dict[str, Any], *, version: int, seq: int = 0) -> Policy:
    return Policy(
        version=version,
        digest=digest_of(document),
        document=document,
        rules=validate(document),
        seq=seq,
    )


@cache
def default_policy() -> Policy:
    """The shipped default, version 0. Read, parsed and validated once per process: every
    batch of a replay starts three projections on it (a frozen ``Policy``, never mutated)."""
    return make_policy(default_document(), version=0)


def policy_from_event(payload: PolicySet, seq: int) -> Policy:
    """The policy a ``policy.set`` event recorded (``PolicyError`` if its document is invalid)."""
    where = f"seq {seq}: policy.set"
    rules = validate(payload.document, f"{where} document")
    digest = digest_of(payload.document)
    if digest != payload.digest:
        raise PolicyError(
            f"{where}: digest is {payload.digest[:12]}…, the document's is {digest[:12]}…"
        )
    return Policy(
        version=payload.version, digest=digest, document=payload.document, rules=rules, seq=seq
    )


def policy_set_payload(document: dict[str, Any], version: int) -> dict[str, Any]:
    """The ``policy.set`` payload recording ``document`` as ``version`` (validated first)."""
    validate(document)
    return {"version": version, "digest": digest_of(document), "document": document}
