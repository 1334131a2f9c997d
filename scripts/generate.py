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
from collections.abc import Callable, Generator, Iterable, Iterator
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


@dataclass
class Agent:
    id: str
    profile: Profile
    tier: int
    owner: str
    version: int = 1
    weight: float = 1.0
    """How busy this agent is relative to the others (Pareto: a few agents do most runs)."""
    runs: int = 0
    critical: bool = False
    """Whether the agent broke a critical rule (SPEC §3: its effective tier is then 0, so the
    tasks it is given afterwards require T0; no tier events are generated to restore it)."""

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
    """What every run shares: the one random stream, the agents and the simulated clock."""

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
    """Every event of one run, in order; the caller interleaves several runs.

    (1) submitted, (2) planned, (3) escalated, approved or rejected, granted, (4) started, tool
    calls with usage and decisions, (5) completed, failed or cancelled, (6) feedback and
    corrections. A run may stop early at several points, as real ones do.
    """
    r = _Run(w, agent)
    if agent.runs > 1 and w.rng.random() < 0.003:
        # A contract change: same agent, new version (SPEC §2.4: the tier is kept).
        agent.version += 1
        yield (
            GOVERNOR,
            Draft("agent.registered", agent.contract(), agent=agent.id, actor=agent.owner),
        )
    steps = yield from r.submit()
    if steps is None or not (yield from r.approve(steps)):
        return
    done = yield from r.execute(steps)
    if done is not None:
        yield from r.finish(done)


class _Run:
    def __init__(self, w: _World, agent: Agent) -> None:
        w.runs_started += 1
        agent.runs += 1
        self.w, self.rng, self.agent, self.p = w, w.rng, agent, agent.profile
        self.id = f"run-{w.seed}-{w.runs_started:07d}"
        self.user = self.rng.choice(USERS)
        pick, acc = self.rng.random(), 0.0
        self.violation: str | None = None
        for name, p in VIOLATIONS:
            acc += p
            if pick < acc:
                self.violation = name
                break
        self.escalated = False
        self.model = self.rng.choice(MODELS)

    def rec(
        self, type_: str, payload: dict[str, object], *, run: bool = True, actor: str | None = None
    ) -> Yield:
        return RECORDER, Draft(
            type_, payload, agent=self.agent.id, run=self.id if run else None, actor=actor
        )

    def gov(self, type_: str, payload: dict[str, object], actor: str) -> Yield:
        return GOVERNOR, Draft(type_, payload, agent=self.agent.id, run=self.id, actor=actor)

    def decision(self, decision: str, low: int, high: int) -> Yield:
        return self.rec(
            "decision.recorded",
            {
                "decision": decision,
                "confidence_bp": self.rng.randint(low, high),
                "rationale": self.rng.choice(RATIONALES[decision]),
            },
        )

    def submit(self) -> Generator[Yield, None, list[dict[str, object]] | None]:
        """(1), (2): submitted and planned; None when cancelled before a plan."""
        rng, w, p = self.rng, self.w, self.p
        tools = [
            rng.choice(p.tools) for _ in range(rng.choices(range(1, 7), (2, 4, 5, 4, 2, 1))[0])
        ]
        irreversible = any(not t[2] for t in tools)
        risk = (
            "high"
            if irreversible and rng.random() < 0.5
            else rng.choices(("low", "medium", "high"), (6, 3, 1))[0]
        )
        self.risk, self.auto = risk, risk == "low" and rng.random() < 0.8
        objective = rng.choice(p.objectives).format(n=rng.randint(2, 9999))
        yield self.rec(
            "run.submitted",
            {"objective": objective, "user": self.user, "risk": risk, "auto_approve": self.auto},
            actor=self.user,
        )
        w.tick()
        if rng.random() < 0.005:
            yield self.rec(
                "guardrail.triggered",
                {
                    "kind": "duplicate_submission",
                    "severity": "info",
                    "detail": f"same objective as an open run of {self.user}",
                },
            )
            yield self.rec("run.cancelled", {"reason": "duplicate submission"}, actor=self.user)
            return None
        if rng.random() < 0.01:
            yield self.rec(
                "run.cancelled",
                {"reason": "cancelled by the user before approval"},
                actor=self.user,
            )
            return None
        steps: list[dict[str, object]] = [
            {
                "tool": t,
                "args_digest": w.digest(self.id, i, t),
                "side_effect": se,
                "reversible": rev,
            }
            for i, (t, se, rev) in enumerate(tools)
        ]
        tier = 0 if self.agent.critical else self.agent.tier
        required = min(tier, {"low": 0, "medium": 1, "high": 2}[risk])
        if self.violation == "tier":
            required = min(4, tier + 1)
        plan = {"steps": steps, "risk": risk, "required_tier": required}
        yield self.rec("run.planned", plan)
        self.plan_digest = hashlib.sha256(canonical(plan)).hexdigest()
        w.tick()
        return steps

    def approve(self, steps: list[dict[str, object]]) -> Generator[Yield, None, bool]:
        """(3): escalation, approval or rejection, grant; False when the run ends here."""
        rng, w = self.rng, self.w
        if self.risk != "low" and rng.random() < 0.35:
            self.escalated = True
            yield self.decision("ESCALATE", 3000, 7000)
        approver = "policy-engine" if self.auto else rng.choice(APPROVERS)
        mode = (
            "auto"
            if self.auto
            else "council"
            if self.risk == "high" and rng.random() < 0.3
            else "human"
        )
        if self.violation != "unapproved":
            verdict = {"approver": approver, "mode": mode, "plan_digest": self.plan_digest}
            if rng.random() < 0.04:
                yield self.gov(
                    "run.rejected", {**verdict, "reason": rng.choice(REJECTIONS)}, actor=approver
                )
                if rng.random() < 0.3:
                    yield self.rec("correction.recorded", self.correction(), actor=self.user)
                return False
            if rng.random() < 0.3:
                verdict["expires_at"] = _iso(w.clock + timedelta(hours=rng.choice((1, 4, 24))))
            yield self.gov("run.approved", verdict, actor=approver)
            grant: dict[str, object] = {
                "tools": sorted({str(s["tool"]) for s in steps}),
                "capabilities": sorted(
                    {CAPABILITIES.get(str(s["side_effect"]), "other") for s in steps}
                ),
                "token_digest": w.digest("token", self.id),
            }
            if self.violation == "expired_grant":
                grant["expires_at"] = _iso(EXPIRED + timedelta(minutes=w.runs_started % 5000))
            elif rng.random() < 0.5:
                grant["expires_at"] = _iso(w.clock + timedelta(minutes=rng.choice((15, 30, 60))))
            yield self.gov("capability.granted", grant, actor=approver)
            w.tick()
        if rng.random() < 0.01:
            yield self.rec(
                "run.cancelled", {"reason": "superseded by a newer request"}, actor=self.user
            )
            return False
        return True

    def execute(self, steps: list[dict[str, object]]) -> Generator[Yield, None, int | None]:
        """(4): started, then each tool call; the number of steps done, None when it ended."""
        rng, w, p, v = self.rng, self.w, self.p, self.violation
        if v == "unapproved":
            self.agent.critical = True  # started_without_approval is critical
        yield self.rec("run.started", {})
        rogue_args = ""
        calls = [(str(s["tool"]), str(s["side_effect"]), str(s["args_digest"])) for s in steps]
        if v in ("outside_grant", "forbidden", "side_effect"):
            planned = {c[0] for c in calls}
            ungranted = [t for t in p.tools if t[0] not in planned] or [p.stray_tool]
            rogue = {
                "outside_grant": rng.choice(ungranted),
                "forbidden": p.forbidden_tool,
                "side_effect": p.stray_tool,
            }[v]
            rogue_args = w.digest(self.id, "rogue", rogue[0])
            calls.insert(rng.randrange(len(calls) + 1), (rogue[0], rogue[1], rogue_args))
        for i, (tool, se, args) in enumerate(calls):
            if rng.random() < 0.75:
                yield self.rec("llm.usage", _usage(rng, self.model))
            if rng.random() < 0.15:
                yield self.decision("EXECUTE", p.threshold_bp, 10000)
            repeats = rng.randint(3, 6) if v == "tool_loop" and i == 0 else 1
            if args == rogue_args:
                self.agent.critical = True  # outside the grant: a critical finding
            for n in range(repeats):
                yield self.rec(
                    "tool.called", {"tool": tool, "args_digest": args, "side_effect": se}
                )
                w.tick()
                failed = n + 1 < repeats or rng.random() < 0.04
                done: dict[str, object] = {
                    "tool": tool,
                    "status": "error" if failed else "ok",
                    "duration_ms": int(rng.lognormvariate(5.5, 1.0)),
                }
                if failed:
                    done["failure_class"] = rng.choice(TOOL_FAILURES)
                else:
                    done["result_digest"] = w.digest(self.id, "result", i)
                yield self.rec("tool.completed", done)
            if repeats > 1:
                yield self.rec(
                    "guardrail.triggered",
                    {
                        "kind": "tool_loop",
                        "severity": "warning",
                        "detail": f"{tool} called {repeats} times in a row with the same arguments",
                    },
                )
                if rng.random() < 0.6:
                    yield self.rec(
                        "run.failed",
                        {
                            "failure_class": "tool_error",
                            "message": f"stopped after a loop on {tool}",
                        },
                    )
                else:
                    yield self.rec("run.cancelled", {"reason": "circuit breaker: tool loop"})
                return None
            if (tool, se) == p.forbidden_tool[:2] and rng.random() < 0.7:
                yield self.rec(
                    "guardrail.triggered",
                    {
                        "kind": "forbidden_action",
                        "severity": "critical",
                        "detail": f"{tool} is forbidden for {self.agent.id}",
                    },
                )
            if v == "budget":
                yield self.rec(
                    "guardrail.triggered",
                    {
                        "kind": "budget_exceeded",
                        "severity": "critical",
                        "detail": "run spent over its 2 USD budget",
                    },
                )
                yield self.rec("run.cancelled", {"reason": "budget exceeded"})
                return None
            if rng.random() < 0.012:
                yield self.failed()
                return None
        return len(calls)

    def finish(self, done: int) -> Iterator[Yield]:
        """(5), (6): outcome, then feedback and corrections."""
        rng, p = self.rng, self.p
        if rng.random() < 0.02:
            yield self.rec(
                "run.cancelled",
                {"reason": rng.choice(("user stopped the run", "owner paused the agent"))},
                actor=self.user,
            )
            return
        yield self.rec("llm.usage", _usage(rng, self.model))
        if self.violation == "low_confidence" and not self.escalated:
            yield self.decision("EXECUTE", max(0, p.threshold_bp - 3000), p.threshold_bp - 1)
            decision = "EXECUTE"
        else:
            decision = rng.choices(
                ("EXECUTE", "SKIP", "INSUFFICIENT_INFORMATION", "ERROR"), (90, 5, 4, 1)
            )[0]
            yield self.decision(decision, p.threshold_bp, 10000)
        if decision == "ERROR" or rng.random() < 0.04:
            yield self.failed()
        else:
            completed: dict[str, object] = {"steps_completed": done}
            if rng.random() < 0.9:
                completed["outputs_digest"] = self.w.digest(self.id, "outputs")
            yield self.rec("run.completed", completed)
        self.w.tick()
        if rng.random() < 0.4:
            score = rng.randint(2000, 10000) if self.violation is None else rng.randint(0, 7000)
            yield self.rec(
                "feedback.quality", {"score_bp": score, "by": self.user}, actor=self.user
            )
        if rng.random() < (0.25 if self.violation is not None else 0.08):
            yield self.rec("correction.recorded", self.correction(), actor=self.user)
        if rng.random() < 0.03:  # background memory consolidation, outside any run
            yield self.rec("llm.usage", _usage(rng, self.model), run=False)

    def failed(self) -> Yield:
        fc = self.rng.choice(FAILURE_CLASSES)
        return self.rec("run.failed", {"failure_class": fc, "message": FAILURE_MESSAGES[fc]})

    def correction(self) -> dict[str, object]:
        rng = self.rng
        topics = self.p.weak_topics
        topic = rng.choice(topics) if rng.random() < 0.7 else rng.choice(TOPICS)
        out: dict[str, object] = {"text": rng.choice(CORRECTIONS[topic]), "by": rng.choice(USERS)}
        if rng.random() < 0.65:
            out["topic"] = topic
        return out


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
