"""The world of the synthetic workload: agent profiles, tools, users, models and the texts of
corrections, failures and rationales, and how often a run breaks which rule.

Pure data (plus two small dataclasses): ``ledger.sample.runs`` draws from it, always in the
same order for a seed, so changing a table changes every generated stream.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

GOVERNOR = "governor"
RECORDER = "recorder"
EPOCH = datetime(2030, 1, 6, 8, 0, tzinfo=UTC)
EXPIRED = datetime(2020, 1, 1, tzinfo=UTC)
ORIGIN = "govledger.example/synthetic"

PRODUCED_TYPES = frozenset(
    {
        "agent.registered",
        "run.submitted",
        "run.planned",
        "run.approved",
        "run.rejected",
        "capability.granted",
        "run.started",
        "tool.called",
        "tool.completed",
        "llm.usage",
        "decision.recorded",
        "guardrail.triggered",
        "run.completed",
        "run.failed",
        "run.cancelled",
        "feedback.quality",
        "correction.recorded",
    }
)
"""Every catalog type this generator emits (the rest: ledger.created and key.registered come
from ``build_ledger``; policy, key revocation and tier events are left to their own tools)."""

GOVERNOR_TYPES = frozenset(
    {"agent.registered", "run.approved", "run.rejected", "capability.granted"}
)

# --- the world -----------------------------------------------------------------------------

Tool = tuple[str, str, bool]
"""(tool name, side effect class, reversible)."""


def _tools(spec: str) -> tuple[Tool, ...]:
    """``"fs.read:read shell.exec:execute!"``: name, side effect, ``!`` for irreversible."""
    return tuple(
        (n, se.rstrip("!"), not se.endswith("!")) for n, se in (t.split(":") for t in spec.split())
    )


@dataclass(frozen=True)
class Profile:
    """A kind of agent: its usual tools, its contract and what it tends to get wrong."""

    kind: str
    tools: tuple[Tool, ...]
    allowed: tuple[str, ...]
    forbidden: tuple[str, ...]
    forbidden_tool: Tool
    """A tool this agent must never use (its name or side effect is forbidden)."""
    stray_tool: Tool
    """A tool whose side effect is outside ``allowed`` (and not forbidden)."""
    threshold_bp: int
    objectives: tuple[str, ...]
    weak_topics: tuple[str, ...]
    """Correction topics users raise most with this kind of agent."""


def _profile(
    kind: str,
    tools: str,
    allowed: str,
    forbidden: str,
    rogue: str,
    threshold_bp: int,
    objectives: tuple[str, ...],
    topics: str,
) -> Profile:
    forbidden_tool, stray_tool = _tools(rogue)
    return Profile(
        kind,
        _tools(tools),
        tuple(allowed.split()),
        tuple(forbidden.split()),
        forbidden_tool,
        stray_tool,
        threshold_bp,
        objectives,
        tuple(topics.split()),
    )


PROFILES: tuple[Profile, ...] = (
    _profile(
        "planner",
        "kb.search:read memory.read:read web.search:network memory.write:write docs.write:write",
        "read write network",
        "payment delete shell.exec",
        "shell.exec:execute! code.run:execute!",
        7000,
        (
            "draft the Q3 migration plan for the billing service",
            "break the onboarding epic into tickets",
            "plan the rollout of feature flag {n}",
            "summarize open risks for release {n}",
        ),
        "concise timezone",
    ),
    _profile(
        "researcher",
        "web.search:network web.fetch:network kb.search:read pdf.extract:read memory.write:write",
        "read network write",
        "email.send payment",
        "email.send:network! shell.exec:execute!",
        6000,
        (
            "compare vector databases for the support bot",
            "collect pricing of the top {n} competitors",
            "find prior art on signed audit logs",
            "write a literature note on agent evaluation",
        ),
        "cite-sources metric-units",
    ),
    _profile(
        "coder",
        "fs.read:read fs.write:write shell.exec:execute! git.commit:write "
        "github.create_pr:network tests.run:execute",
        "read write execute network",
        "payment git.push_force",
        "git.push_force:write! fs.delete:delete!",
        7500,
        (
            "fix flaky test in module {n}",
            "upgrade the pydantic dependency",
            "add pagination to the /runs endpoint",
            "refactor the retry helper (issue #{n})",
        ),
        "run-tests confirm-delete",
    ),
    _profile(
        "support",
        "kb.search:read crm.read:read ticket.update:write email.draft:write email.send:network!",
        "read write network",
        "payment crm.delete",
        "crm.delete:delete! payments.refund:payment!",
        8000,
        (
            "answer ticket #{n} about a failed login",
            "triage the overnight support queue",
            "reply to the refund request in ticket #{n}",
            "update the FAQ entry on SSO",
        ),
        "no-direct-email formal-tone redact-pii",
    ),
    _profile(
        "billing",
        "billing.lookup:read crm.read:read invoice.create:write payments.refund:payment!",
        "read write payment",
        "delete payments.charge",
        "payments.charge:payment! slack.post:network",
        9000,
        (
            "issue the refund for order {n}",
            "reconcile invoices for March",
            "correct the VAT on invoice {n}",
            "prepare the dunning list",
        ),
        "currency redact-pii",
    ),
    _profile(
        "ops",
        "metrics.query:read logs.search:read k8s.scale:execute k8s.restart:execute "
        "slack.post:network pager.ack:network",
        "read execute network",
        "delete k8s.delete_namespace",
        "k8s.delete_namespace:delete! config.write:write",
        8500,
        (
            "investigate p95 latency alert on api-{n}",
            "scale the ingest workers for the batch",
            "restart the stuck consumer group {n}",
            "write the incident timeline for INC-{n}",
        ),
        "timezone no-friday-deploys",
    ),
    _profile(
        "data",
        "db.query:read warehouse.export:write sheets.write:write db.update:write!",
        "read write",
        "delete db.drop_table",
        "db.drop_table:delete! web.fetch:network",
        7000,
        (
            "build the weekly churn report",
            "backfill missing events for cohort {n}",
            "export usage by customer to the finance sheet",
            "dedupe the accounts table",
        ),
        "metric-units redact-pii cite-sources",
    ),
)

CORRECTIONS: dict[str, tuple[str, ...]] = {
    "cite-sources": (
        "always cite sources",
        "please link where each number comes from",
        "you didn't say where this came from, add references",
        "cite the docs you used, every time",
        "no claims without a source link please",
    ),
    "metric-units": (
        "use metric units",
        "give distances in km, not miles",
        "please convert to kilograms",
        "we use the metric system here, fix the units",
    ),
    "no-direct-email": (
        "don't email customers directly",
        "never send mail to a customer yourself, draft it for me",
        "customer emails go through a human, stop sending them",
        "only draft replies, do not send",
    ),
    "confirm-delete": (
        "ask before deleting anything",
        "never remove files without checking with me first",
        "confirm with me before any delete",
    ),
    "timezone": (
        "use UTC timestamps",
        "times should be in UTC, not local time",
        "please write all times as UTC",
    ),
    "concise": (
        "keep summaries short",
        "too long, three bullet points max",
        "shorter please, nobody reads walls of text",
        "be more concise",
    ),
    "redact-pii": (
        "redact personal data",
        "don't paste customer emails or phone numbers into the report",
        "mask the PII before sharing",
        "remove names and addresses from the output",
    ),
    "currency": (
        "always state the currency",
        "show amounts in EUR with the currency code",
        "amounts need a currency, is this USD or EUR?",
    ),
    "run-tests": (
        "run the tests before opening a PR",
        "the PR broke CI, run the suite locally first",
        "never push without running tests",
    ),
    "formal-tone": (
        "use a formal tone with customers",
        "too casual for a customer reply",
        "no emojis in customer-facing text",
    ),
    "no-friday-deploys": ("don't deploy on Fridays", "no production changes on a Friday afternoon"),
}
"""Correction topics, each with paraphrases as users actually type them."""
TOPICS = tuple(CORRECTIONS)

_NAMES = "alice bob chen dana emre farah gus hana ivan jo kwame lena mo nadia omar priya quinn"
USERS = tuple(f"{n}@example.com" for n in _NAMES.split())
APPROVERS = (
    "lead-ops@example.com",
    "security@example.com",
    "cto@example.com",
    "eng-manager@example.com",
)
OWNERS = ("platform-team", "support-team", "data-team", "finance-team", "research-team")
MODELS = (
    ("anthropic", "claude-sonnet-4-5", 300, 1500),
    ("anthropic", "claude-haiku-4-5", 100, 500),
    ("openai", "gpt-4.1", 200, 800),
    ("openai", "gpt-4.1-mini", 40, 160),
    ("google", "gemini-2.5-pro", 125, 1000),
)
"""(provider, model, price in, price out): prices in micro-USD per 100 tokens ($ per 10M)."""

FAILURE_MESSAGES = {
    "llm_timeout": "model call timed out after 60 s",
    "llm_error": "provider returned 500 internal error",
    "tool_error": "tool returned a non-retryable error",
    "context_overflow": "prompt exceeded the context window",
    "rate_limit": "rate limited by the provider (429) after 5 retries",
    "dependency_failed": "upstream service unavailable",
    "memory_corruption": "memory store returned an inconsistent snapshot",
    "validation_error": "output failed schema validation",
    "prompt_rejection": "model refused the request",
    "unknown": "worker exited unexpectedly",
}
FAILURE_CLASSES = tuple(FAILURE_MESSAGES)
TOOL_FAILURES = ("tool_error", "rate_limit", "dependency_failed", "validation_error")
RATIONALES = {
    "EXECUTE": (
        "plan matches the request and all steps are reversible",
        "evidence is sufficient and within the contract",
        "same action succeeded on the previous run",
    ),
    "SKIP": ("nothing to do: already up to date", "duplicate of an earlier request"),
    "ESCALATE": (
        "irreversible step on production data",
        "high risk: needs a human",
        "ambiguous request, asking the owner",
    ),
    "INSUFFICIENT_INFORMATION": ("missing account id", "the ticket has no reproduction steps"),
    "ERROR": ("planner crashed while scoring options",),
}
REJECTIONS = (
    "plan touches production data",
    "scope is larger than the request",
    "missing rollback step",
)
CAPABILITIES = {
    "read": "data:read",
    "write": "data:write",
    "network": "net:outbound",
    "execute": "proc:exec",
    "delete": "data:delete",
    "payment": "payments:move",
}

AUTO_FROM_TIER = {"low": 2, "medium": 3, "high": 5}
"""The default policy's ``[approval] auto_from_tier``: the effective tier from which a run
submitted with ``auto_approve`` starts with no governor's ``run.approved``."""

VIOLATIONS = (
    ("outside_grant", 0.03),  # a tool call outside the run's grant
    ("forbidden", 0.015),  # a forbidden tool or side effect (often a critical guardrail)
    ("low_confidence", 0.03),  # EXECUTE below the agent's threshold, no escalation
    ("unapproved", 0.01),  # started with no approval and no grant
    ("tool_loop", 0.02),  # the same tool with the same arguments 3–6 times in a row
    ("expired_grant", 0.005),  # the grant expired before the calls
    ("tier", 0.015),  # a plan that requires a tier above the agent's
    ("side_effect", 0.01),  # a side effect outside the agent's allowed ones
    ("budget", 0.005),  # cancelled by the budget guardrail
)
"""Guardrail violations and how often a run carries one (about one run in seven)."""

CRITICAL_VIOLATIONS = frozenset({"outside_grant", "forbidden", "unapproved", "side_effect"})
"""Violations whose run carries a critical finding (a tool outside the grant, a forbidden
action, a start with no approval): the log's checks zero the agent's effective tier (SPEC §3).
The others leave warnings (or a cancelled run) behind."""


@dataclass(frozen=True)
class Conduct:
    """How one agent behaves: scales of the per-run probabilities in ``VIOLATIONS``.

    ``Conduct()`` is the default agent; ``Conduct(warnings=0, critical=0)`` never breaks a
    rule (it still fails, is rejected or cancelled now and then, less with a low ``failures``);
    ``Conduct(warnings=4, critical=0)`` collects warnings without ever breaking a critical rule.
    """

    warnings: float = 1.0
    """Scale of the violations that leave warnings (low confidence, tool loop, tier...)."""
    critical: float = 1.0
    """Scale of the violations in ``CRITICAL_VIOLATIONS``."""
    failures: float = 1.0
    """Scale of the chances that a run fails, is cancelled or is rejected (not a violation,
    but a run that does not complete is not compliant either)."""
    tier: int | None = None
    """Initial tier of the agent's contract (None: drawn at random, 0–2)."""
    weight: float | None = None
    """How busy the agent is relative to the others (None: drawn, Pareto-distributed)."""

    def scaled(self, factor: float) -> Conduct:
        """Both scales multiplied by ``factor`` (``scaled(1.0)`` is the same conduct)."""
        if factor == 1.0:
            return self
        return replace(self, warnings=self.warnings * factor, critical=self.critical * factor)
