"""Synthetic production-like workload for govledger: agents, runs, tools, usage, violations.

Follows the v1 event catalog (SPEC §2.4) and who signs what (§2.5). Deterministic for a seed:
the same ``(n_events, n_agents, seed)`` always gives the same sequence of ``(type, payload)``
(the ledger adds ``seq``, ``ts``, ``id``, hashes and signatures). Streaming: only the runs that
are open at a time are held in memory, so a million events cost no more memory than a thousand.

Library::

    from scripts.generate import generate_drafts, build_ledger
    for role, draft in generate_drafts(2_000, n_agents=5, seed=7): ...   # role: governor|recorder
    ledger = build_ledger("l.db", "keys", 2_000, 5, seed=7)

Command line::

    python scripts/generate.py --db l.db --keys keys --events 100000 --agents 20 --seed 1
    python scripts/generate.py --jsonl rec.jsonl --events 5000 --agents 5 --seed 1

Payload times (``expires_at``) run on a simulated clock starting at ``EPOCH`` (2030), so grants
and approvals are live when appended today; a few grants are deliberately expired (2020) to
exercise ``grant_expired``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

if __package__ in (None, ""):  # run as ``python scripts/generate.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.encoding import canonical
from ledger.keys import KeyRing, Signer
from ledger.store import Draft, Ledger, root_key_payload

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


PROFILES: tuple[Profile, ...] = (
    Profile(
        "planner",
        (
            ("kb.search", "read", True),
            ("memory.read", "read", True),
            ("web.search", "network", True),
            ("memory.write", "write", True),
            ("docs.write", "write", True),
        ),
        ("read", "write", "network"),
        ("payment", "delete", "shell.exec"),
        ("shell.exec", "execute", False),
        ("code.run", "execute", False),
        7000,
        (
            "draft the Q3 migration plan for the billing service",
            "break the onboarding epic into tickets",
            "plan the rollout of feature flag {n}",
            "summarize open risks for release {n}",
        ),
        ("concise", "timezone"),
    ),
    Profile(
        "researcher",
        (
            ("web.search", "network", True),
            ("web.fetch", "network", True),
            ("kb.search", "read", True),
            ("pdf.extract", "read", True),
            ("memory.write", "write", True),
        ),
        ("read", "network", "write"),
        ("email.send", "payment"),
        ("email.send", "network", False),
        ("shell.exec", "execute", False),
        6000,
        (
            "compare vector databases for the support bot",
            "collect pricing of the top {n} competitors",
            "find prior art on signed audit logs",
            "write a literature note on agent evaluation",
        ),
        ("cite-sources", "metric-units"),
    ),
    Profile(
        "coder",
        (
            ("fs.read", "read", True),
            ("fs.write", "write", True),
            ("shell.exec", "execute", False),
            ("git.commit", "write", True),
            ("github.create_pr", "network", True),
            ("tests.run", "execute", True),
        ),
        ("read", "write", "execute", "network"),
        ("payment", "git.push_force"),
        ("git.push_force", "write", False),
        ("fs.delete", "delete", False),
        7500,
        (
            "fix flaky test in module {n}",
            "upgrade the pydantic dependency",
            "add pagination to the /runs endpoint",
            "refactor the retry helper (issue #{n})",
        ),
        ("run-tests", "confirm-delete"),
    ),
    Profile(
        "support",
        (
            ("kb.search", "read", True),
            ("crm.read", "read", True),
            ("ticket.update", "write", True),
            ("email.draft", "write", True),
            ("email.send", "network", False),
        ),
        ("read", "write", "network"),
        ("payment", "crm.delete"),
        ("crm.delete", "delete", False),
        ("payments.refund", "payment", False),
        8000,
        (
            "answer ticket #{n} about a failed login",
            "triage the overnight support queue",
            "reply to the refund request in ticket #{n}",
            "update the FAQ entry on SSO",
        ),
        ("no-direct-email", "formal-tone", "redact-pii"),
    ),
    Profile(
        "billing",
        (
            ("billing.lookup", "read", True),
            ("crm.read", "read", True),
            ("invoice.create", "write", True),
            ("payments.refund", "payment", False),
        ),
        ("read", "write", "payment"),
        ("delete", "payments.charge"),
        ("payments.charge", "payment", False),
        ("slack.post", "network", True),
        9000,
        (
            "issue the refund for order {n}",
            "reconcile invoices for March",
            "correct the VAT on invoice {n}",
            "prepare the dunning list",
        ),
        ("currency", "redact-pii"),
    ),
    Profile(
        "ops",
        (
            ("metrics.query", "read", True),
            ("logs.search", "read", True),
            ("k8s.scale", "execute", True),
            ("k8s.restart", "execute", True),
            ("slack.post", "network", True),
            ("pager.ack", "network", True),
        ),
        ("read", "execute", "network"),
        ("delete", "k8s.delete_namespace"),
        ("k8s.delete_namespace", "delete", False),
        ("config.write", "write", True),
        8500,
        (
            "investigate p95 latency alert on api-{n}",
            "scale the ingest workers for the batch",
            "restart the stuck consumer group {n}",
            "write the incident timeline for INC-{n}",
        ),
        ("timezone", "no-friday-deploys"),
    ),
    Profile(
        "data",
        (
            ("db.query", "read", True),
            ("warehouse.export", "write", True),
            ("sheets.write", "write", True),
            ("db.update", "write", False),
        ),
        ("read", "write"),
        ("delete", "db.drop_table"),
        ("db.drop_table", "delete", False),
        ("web.fetch", "network", True),
        7000,
        (
            "build the weekly churn report",
            "backfill missing events for cohort {n}",
            "export usage by customer to the finance sheet",
            "dedupe the accounts table",
        ),
        ("metric-units", "redact-pii", "cite-sources"),
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
    "no-friday-deploys": (
        "don't deploy on Fridays",
        "no production changes on a Friday afternoon",
    ),
}
TOPICS = tuple(CORRECTIONS)

USERS = tuple(
    f"{n}@example.com"
    for n in (
        "alice",
        "bob",
        "chen",
        "dana",
        "emre",
        "farah",
        "gus",
        "hana",
        "ivan",
        "jo",
        "kwame",
        "lena",
        "mo",
        "nadia",
        "omar",
        "priya",
        "quinn",
        "rosa",
        "sam",
        "tariq",
    )
)
APPROVERS = (
    "lead-ops@example.com",
    "security@example.com",
    "cto@example.com",
    "eng-manager@example.com",
)
OWNERS = ("platform-team", "support-team", "data-team", "finance-team", "research-team")

# (provider, model, price in, price out): prices in micro-USD per 100 tokens (= $ per 10M).
MODELS = (
    ("anthropic", "claude-sonnet-4-5", 300, 1500),
    ("anthropic", "claude-haiku-4-5", 100, 500),
    ("openai", "gpt-4.1", 200, 800),
    ("openai", "gpt-4.1-mini", 40, 160),
    ("google", "gemini-2.5-pro", 125, 1000),
)

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
CAPABILITIES = {
    "read": "data:read",
    "write": "data:write",
    "network": "net:outbound",
    "execute": "proc:exec",
    "delete": "data:delete",
    "payment": "payments:move",
}


@dataclass
class Agent:
    id: str
    profile: Profile
    tier: int
    owner: str
    version: int = 1
    weight: float = 1.0
    runs: int = 0

    def contract(self) -> dict[str, object]:
        p = self.profile
        return {
            "owner": self.owner,
            "version": f"{self.version}.0.0",
            "initial_tier": self.tier,
            "allowed_side_effects": list(p.allowed),
            "forbidden_actions": list(p.forbidden),
            "confidence_threshold_bp": p.threshold_bp,
        }


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _World:
    rng: random.Random
    seed: int
    agents: list[Agent]
    clock: datetime = EPOCH
    runs_started: int = 0
    weights: list[float] = field(default_factory=list)

    def tick(self) -> datetime:
        self.clock += timedelta(milliseconds=self.rng.randint(5, 900))
        return self.clock

    def digest(self, *parts: object) -> str:
        text = "\x1f".join(str(p) for p in parts) + f"\x1f{self.rng.getrandbits(32)}"
        return hashlib.sha256(text.encode()).hexdigest()

    def pick_agent(self) -> Agent:
        return self.rng.choices(self.agents, self.weights)[0]


Yield = tuple[str, Draft]


def _agents(rng: random.Random, n: int) -> list[Agent]:
    out = []
    counts: dict[str, int] = {}
    for i in range(n):
        prof = PROFILES[i % len(PROFILES)] if i < len(PROFILES) else rng.choice(PROFILES)
        counts[prof.kind] = counts.get(prof.kind, 0) + 1
        tier = rng.choices((0, 1, 2), (2, 5, 3))[0]
        out.append(
            Agent(
                f"{prof.kind}-{counts[prof.kind]}",
                prof,
                tier,
                rng.choice(OWNERS),
                weight=rng.paretovariate(1.5),
            )
        )
    return out


# --- one run ---------------------------------------------------------------------------------


def _run(w: _World, agent: Agent) -> Iterator[Yield]:
    """Every event of one run, in order; the caller interleaves several runs."""
    rng = w.rng
    p = agent.profile
    w.runs_started += 1
    agent.runs += 1
    run = f"run-{w.seed}-{w.runs_started:07d}"
    a = agent.id
    user = rng.choice(USERS)

    def rec(
        type_: str, payload: dict[str, object], *, run_: str | None = run, actor: str | None = None
    ) -> Yield:
        return RECORDER, Draft(type_, payload, agent=a, run=run_, actor=actor)

    def gov(type_: str, payload: dict[str, object], actor: str | None = None) -> Yield:
        return GOVERNOR, Draft(type_, payload, agent=a, run=run, actor=actor)

    # Rare contract change: same agent, new version (SPEC §2.4 keeps the tier).
    if agent.runs > 1 and rng.random() < 0.003:
        agent.version += 1
        yield GOVERNOR, Draft("agent.registered", agent.contract(), agent=a, actor=agent.owner)

    # Which violation, if any, this run carries (about one run in seven).
    v = rng.random()
    violation = (
        "outside_grant"
        if v < 0.03
        else "forbidden"
        if v < 0.045
        else "low_confidence"
        if v < 0.075
        else "unapproved"
        if v < 0.085
        else "tool_loop"
        if v < 0.105
        else "expired_grant"
        if v < 0.11
        else "tier"
        if v < 0.125
        else "side_effect"
        if v < 0.135
        else "budget"
        if v < 0.14
        else None
    )

    # (1) submission
    n_steps = rng.choices((1, 2, 3, 4, 5, 6), (2, 4, 5, 4, 2, 1))[0]
    steps_tools = [rng.choice(p.tools) for _ in range(n_steps)]
    irreversible = any(not t[2] for t in steps_tools)
    risk = (
        "high"
        if irreversible and rng.random() < 0.5
        else rng.choices(("low", "medium", "high"), (6, 3, 1))[0]
    )
    auto = risk == "low" and rng.random() < 0.8
    objective = rng.choice(p.objectives).format(n=rng.randint(2, 9999))
    yield rec(
        "run.submitted",
        {"objective": objective, "user": user, "risk": risk, "auto_approve": auto},
        actor=user,
    )
    w.tick()
    if rng.random() < 0.005:
        yield rec(
            "guardrail.triggered",
            {
                "kind": "duplicate_submission",
                "severity": "info",
                "detail": f"same objective as an open run of {user}",
            },
        )
        yield rec("run.cancelled", {"reason": "duplicate submission"}, actor=user)
        return
    if rng.random() < 0.01:
        yield rec("run.cancelled", {"reason": "cancelled by the user before approval"}, actor=user)
        return

    # (2) plan
    steps = [
        {"tool": t, "args_digest": w.digest(run, i, t), "side_effect": se, "reversible": rev}
        for i, (t, se, rev) in enumerate(steps_tools)
    ]
    required = min(agent.tier, {"low": 0, "medium": 1, "high": 2}[risk])
    if violation == "tier":
        required = min(4, agent.tier + 1)
    plan = {"steps": steps, "risk": risk, "required_tier": required}
    yield rec("run.planned", plan)
    plan_digest = hashlib.sha256(canonical(plan)).hexdigest()
    w.tick()

    # (3) approval: escalation for risky plans, then human, council or auto approval
    escalated = False
    if risk != "low" and rng.random() < 0.35:
        escalated = True
        yield rec(
            "decision.recorded",
            {
                "decision": "ESCALATE",
                "confidence_bp": rng.randint(3000, 7000),
                "rationale": rng.choice(RATIONALES["ESCALATE"]),
            },
        )
    approver = "policy-engine" if auto else rng.choice(APPROVERS)
    mode = "auto" if auto else ("council" if risk == "high" and rng.random() < 0.3 else "human")
    if violation != "unapproved":
        if rng.random() < 0.04:
            yield gov(
                "run.rejected",
                {
                    "approver": approver,
                    "mode": mode,
                    "plan_digest": plan_digest,
                    "reason": rng.choice(
                        (
                            "plan touches production data",
                            "scope is larger than the request",
                            "missing rollback step",
                        )
                    ),
                },
                actor=approver,
            )
            if rng.random() < 0.3:
                yield rec("correction.recorded", _correction(w, agent), run_=run, actor=user)
            return
        approval: dict[str, object] = {
            "approver": approver,
            "mode": mode,
            "plan_digest": plan_digest,
        }
        if rng.random() < 0.3:
            approval["expires_at"] = _iso(w.clock + timedelta(hours=rng.choice((1, 4, 24))))
        yield gov("run.approved", approval, actor=approver)
        tools = sorted({t for t, _, _ in steps_tools})
        grant: dict[str, object] = {
            "tools": tools,
            "capabilities": sorted({CAPABILITIES.get(se, se) for _, se, _ in steps_tools}),
            "token_digest": w.digest("token", run),
        }
        if violation == "expired_grant":
            grant["expires_at"] = _iso(EXPIRED + timedelta(minutes=w.runs_started % 5000))
        elif rng.random() < 0.5:
            grant["expires_at"] = _iso(w.clock + timedelta(minutes=rng.choice((15, 30, 60))))
        yield gov("capability.granted", grant, actor=approver)
        w.tick()
    if rng.random() < 0.01:
        yield rec("run.cancelled", {"reason": "superseded by a newer request"}, actor=user)
        return

    # (4) execution
    yield rec("run.started", {})
    model = rng.choice(MODELS)
    done = 0
    calls = [(s["tool"], s["side_effect"], s["args_digest"]) for s in steps]
    if violation in ("outside_grant", "forbidden", "side_effect"):
        ungranted = [t for t in p.tools if t not in steps_tools]
        rogue = {
            "outside_grant": rng.choice(ungranted or [p.stray_tool]),
            "forbidden": p.forbidden_tool,
            "side_effect": p.stray_tool,
        }[violation]
        calls.insert(
            rng.randrange(len(calls) + 1), (rogue[0], rogue[1], w.digest(run, "rogue", rogue[0]))
        )
    for i, (tool, se, args) in enumerate(calls):
        if rng.random() < 0.75:
            yield rec("llm.usage", _usage(rng, model))
        if rng.random() < 0.15:
            yield rec(
                "decision.recorded",
                {
                    "decision": "EXECUTE",
                    "confidence_bp": rng.randint(p.threshold_bp, 10000),
                    "rationale": rng.choice(RATIONALES["EXECUTE"]),
                },
            )
        repeats = rng.randint(3, 6) if violation == "tool_loop" and i == 0 else 1
        for r in range(repeats):
            yield rec("tool.called", {"tool": tool, "args_digest": args, "side_effect": se})
            w.tick()
            failed = r + 1 < repeats or rng.random() < 0.04
            completed: dict[str, object] = {
                "tool": tool,
                "status": "error" if failed else "ok",
                "duration_ms": int(rng.lognormvariate(5.5, 1.0)),
            }
            if failed:
                completed["failure_class"] = rng.choice(TOOL_FAILURES)
            else:
                completed["result_digest"] = w.digest(run, "result", i)
            yield rec("tool.completed", completed)
        if repeats > 1:
            yield rec(
                "guardrail.triggered",
                {
                    "kind": "tool_loop",
                    "severity": "warning",
                    "detail": f"{tool} called {repeats} times in a row with the same arguments",
                },
            )
            if rng.random() < 0.6:
                yield rec(
                    "run.failed",
                    {"failure_class": "tool_error", "message": f"stopped after a loop on {tool}"},
                )
            else:
                yield rec("run.cancelled", {"reason": "circuit breaker: tool loop"})
            return
        if (tool, se) == p.forbidden_tool[:2] and rng.random() < 0.7:
            yield rec(
                "guardrail.triggered",
                {
                    "kind": "forbidden_action",
                    "severity": "critical",
                    "detail": f"{tool} is forbidden for {a}",
                },
            )
        if violation == "budget" and i == 0:
            yield rec(
                "guardrail.triggered",
                {
                    "kind": "budget_exceeded",
                    "severity": "critical",
                    "detail": "run spent over its 2 USD budget",
                },
            )
            yield rec("run.cancelled", {"reason": "budget exceeded"})
            return
        done += 1
        if rng.random() < 0.012:
            fc = rng.choice(FAILURE_CLASSES)
            yield rec("run.failed", {"failure_class": fc, "message": FAILURE_MESSAGES[fc]})
            return

    # (5) outcome
    if rng.random() < 0.02:
        yield rec(
            "run.cancelled",
            {"reason": rng.choice(("user stopped the run", "owner paused the agent"))},
            actor=user,
        )
        return
    yield rec("llm.usage", _usage(rng, model))
    if violation == "low_confidence" and not escalated:
        confidence = rng.randint(max(0, p.threshold_bp - 3000), p.threshold_bp - 1)
        decision = "EXECUTE"
    else:
        decision = rng.choices(
            ("EXECUTE", "SKIP", "INSUFFICIENT_INFORMATION", "ERROR"), (90, 5, 4, 1)
        )[0]
        confidence = rng.randint(p.threshold_bp, 10000)
    yield rec(
        "decision.recorded",
        {
            "decision": decision,
            "confidence_bp": confidence,
            "rationale": rng.choice(RATIONALES[decision]),
        },
    )
    if decision == "ERROR" or rng.random() < 0.04:
        fc = rng.choice(FAILURE_CLASSES)
        yield rec("run.failed", {"failure_class": fc, "message": FAILURE_MESSAGES[fc]})
    else:
        completed_p: dict[str, object] = {"steps_completed": done}
        if rng.random() < 0.9:
            completed_p["outputs_digest"] = w.digest(run, "outputs")
        yield rec("run.completed", completed_p)
    w.tick()

    # (6) feedback and corrections, sometimes a while later
    if rng.random() < 0.4:
        score = rng.randint(2000, 10000) if violation is None else rng.randint(0, 7000)
        yield rec("feedback.quality", {"score_bp": score, "by": user}, actor=user)
    if rng.random() < (0.25 if violation is not None else 0.08):
        yield rec("correction.recorded", _correction(w, agent), actor=user)
    if rng.random() < 0.03:
        yield rec("llm.usage", _usage(rng, model), run_=None)  # background memory consolidation


def _usage(rng: random.Random, model: tuple[str, str, int, int]) -> dict[str, object]:
    provider, name, price_in, price_out = model
    tokens_in = int(rng.lognormvariate(7.5, 0.9))
    tokens_out = int(rng.lognormvariate(5.8, 0.8))
    cache_read = int(tokens_in * rng.choice((0, 0, 0.3, 0.6, 0.9)))
    cache_write = 0 if cache_read else int(tokens_in * rng.choice((0, 0.5)))
    # Cache reads cost a tenth, cache writes 1.25×; prices are micro-USD per 100 tokens.
    cost = (
        tokens_in * price_in
        + tokens_out * price_out
        + cache_read * price_in // 10
        + cache_write * price_in * 5 // 4
    ) // 100
    return {
        "provider": provider,
        "model": name,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "cost_micro_usd": cost,
        "wallclock_ms": int(300 + tokens_out * rng.uniform(8, 25)),
    }


def _correction(w: _World, agent: Agent) -> dict[str, object]:
    rng = w.rng
    topic = rng.choice(agent.profile.weak_topics) if rng.random() < 0.7 else rng.choice(TOPICS)
    out: dict[str, object] = {"text": rng.choice(CORRECTIONS[topic]), "by": rng.choice(USERS)}
    if rng.random() < 0.65:
        out["topic"] = topic
    return out


# --- the stream ------------------------------------------------------------------------------


def generate_drafts(
    n_events: int, n_agents: int, seed: int, *, ids: bool = False, open_runs: int | None = None
) -> Iterator[tuple[str, Draft]]:
    """Yield exactly ``n_events`` ``(role, draft)`` pairs in log order (fewer never).

    ``role`` is ``"governor"`` or ``"recorder"``: the key that must sign the draft (SPEC §2.5).
    Agents are registered first; then runs of randomly chosen agents (a few agents are much
    busier than the rest) interleave, ``open_runs`` at a time (default ``min(2 × agents, 64)``).
    The stream stops after ``n_events``, leaving the runs still open in flight, as a live log
    would. With ``ids`` every draft gets a deterministic id ``gen-<seed>-<index>``.
    """
    if n_agents < 1:
        raise ValueError("n_agents must be at least 1")
    rng = random.Random(seed)
    agents = _agents(rng, n_agents)
    world = _World(rng, seed, agents, weights=[a.weight for a in agents])
    target = open_runs or min(2 * n_agents, 64)
    count = 0

    def out(item: Yield) -> Yield:
        if ids:
            role, d = item
            return role, Draft(d.type, d.payload, d.agent, d.run, d.actor, f"gen-{seed}-{count}")
        return item

    for agent in agents:
        if count >= n_events:
            return
        yield out(
            (
                GOVERNOR,
                Draft("agent.registered", agent.contract(), agent=agent.id, actor=agent.owner),
            )
        )
        count += 1
    running: list[Iterator[Yield]] = []
    while count < n_events:
        while len(running) < target:
            running.append(_run(world, world.pick_agent()))
        i = rng.randrange(len(running))
        item = next(running[i], None)
        if item is None:
            running[i] = running[-1]
            running.pop()
            continue
        yield out(item)
        count += 1


def _flush(
    ledger: Ledger, signer: Signer, drafts: list[Draft], progress: Callable[[int], None] | None
) -> None:
    ledger.append_many(drafts, signer=signer)
    if progress is not None:
        progress(len(drafts))


def build_ledger(
    path: str | Path,
    keys_dir: str | Path,
    n_events: int,
    n_agents: int,
    seed: int,
    batch: int = 1000,
    progress: Callable[[int], None] | None = None,
    *,
    origin: str = ORIGIN,
    synchronous: str | None = None,
    drafts: Iterable[tuple[str, Draft]] | None = None,
) -> Ledger:
    """Create a ledger at ``path`` holding the generated workload and return it (open).

    The root key ``root`` (governor) and a ``recorder`` key are loaded from ``keys_dir`` or
    created there. Consecutive drafts of the same role are appended with one ``append_many``
    (one transaction), flushed when the role changes or ``batch`` drafts are pending.
    ``progress`` is called with the number of events of each committed batch. ``drafts``
    replaces the generated stream (e.g. a tee of it). ``n_events`` excludes the two setup
    events (``ledger.created``, ``key.registered``).
    """
    ring = KeyRing(keys_dir)
    root = ring.load("root") if ring.exists("root") else ring.create("root")
    recorder = ring.load("recorder") if ring.exists("recorder") else ring.create("recorder")
    ledger = Ledger.create(path, origin=origin, root=root, synchronous=synchronous)
    ledger.append(Draft("key.registered", root_key_payload(recorder, RECORDER)), signer=root)
    signers = {GOVERNOR: root, RECORDER: recorder}
    stream = drafts if drafts is not None else generate_drafts(n_events, n_agents, seed)
    pending: list[Draft] = []
    role = RECORDER
    for r, d in stream:
        if pending and (r != role or len(pending) >= batch):
            _flush(ledger, signers[role], pending, progress)
            pending = []
        role = r
        pending.append(d)
    if pending:
        _flush(ledger, signers[role], pending, progress)
    return ledger


def import_line(draft: Draft) -> str:
    """One ``govledger import`` line for ``draft`` (SPEC §5)."""
    obj = {
        "type": draft.type,
        "payload": draft.payload,
        "agent": draft.agent,
        "run": draft.run,
        "actor": draft.actor,
        "id": draft.id,
    }
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def write_jsonl(stream: Iterable[tuple[str, Draft]], out: TextIO) -> Iterator[tuple[str, Draft]]:
    """Pass ``stream`` through, writing its recorder-signed drafts as import lines to ``out``."""
    for role, draft in stream:
        if role == RECORDER:
            out.write(import_line(draft) + "\n")
        yield role, draft


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--db", help="ledger file to create (must not exist)")
    ap.add_argument("--keys", help="key directory (root and recorder keys; created if missing)")
    ap.add_argument("--events", type=int, default=10_000, help="generated events (default 10000)")
    ap.add_argument("--agents", type=int, default=10, help="number of agents (default 10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1000, help="max events per transaction")
    ap.add_argument(
        "--synchronous",
        default="NORMAL",
        choices=("NORMAL", "FULL", "EXTRA"),
        help="SQLite synchronous for the build (default NORMAL: a synthetic ledger "
        "need not survive a power cut)",
    )
    ap.add_argument(
        "--jsonl",
        help="also write the recorder-signed events as import lines "
        "(with deterministic ids) to this file",
    )
    args = ap.parse_args(argv)
    if args.db is None and args.jsonl is None:
        ap.error("give --db and/or --jsonl")
    if args.db is not None and args.keys is None:
        ap.error("--db needs --keys")
    start = time.perf_counter()
    stream: Iterable[tuple[str, Draft]] = generate_drafts(
        args.events, args.agents, args.seed, ids=args.jsonl is not None
    )
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if before // 100_000 != done // 100_000:
            rate = done / (time.perf_counter() - start)
            print(f"  {done:>10,} events  {rate:,.0f}/s", file=sys.stderr, flush=True)

    jsonl = open(args.jsonl, "w", encoding="utf-8") if args.jsonl else None  # noqa: SIM115
    with jsonl or contextlib.nullcontext():
        if jsonl is not None:
            stream = write_jsonl(stream, jsonl)
        if args.db is not None:
            ledger = build_ledger(
                args.db,
                args.keys,
                args.events,
                args.agents,
                args.seed,
                batch=args.batch,
                progress=progress,
                synchronous=args.synchronous,
                drafts=stream,
            )
            size = ledger.size
            ledger.close()
        else:
            size = sum(1 for _ in stream)
    elapsed = time.perf_counter() - start
    where = args.db or args.jsonl
    print(
        f"{args.events:,} events ({size:,} in the log) to {where} in {elapsed:.1f} s: "
        f"{args.events / elapsed:,.0f} events/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
