"""One synthetic run of one agent, event by event, and the world the runs share.

``run_events`` yields the events of a run in order (SPEC §2.4: submitted, planned, approved or
rejected, granted, started, tool calls with usage and decisions, an outcome, feedback and
corrections); ``ledger.sample.build`` interleaves several. Every random draw comes from the one
``World.rng``, in a fixed order, so a seed fixes the whole stream.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger.event.canonical import canonical
from ledger.sample.data import (
    APPROVERS,
    AUTO_FROM_TIER,
    CAPABILITIES,
    CORRECTIONS,
    CRITICAL_VIOLATIONS,
    EPOCH,
    EXPIRED,
    FAILURE_CLASSES,
    FAILURE_MESSAGES,
    GOVERNOR,
    MODELS,
    OWNERS,
    PROFILES,
    RATIONALES,
    RECORDER,
    REJECTIONS,
    TOOL_FAILURES,
    TOPICS,
    USERS,
    VIOLATIONS,
    Conduct,
    Profile,
)
from ledger.store.sqlite import Draft


@dataclass
class Agent:
    """A generated agent: its contract, and what the generator remembers of it."""

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
    conduct: Conduct = field(default_factory=Conduct)
    """How often its runs break which rules."""

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
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the ts form: one spelling per instant


@dataclass
class World:
    """What every run shares: the one random stream, the agents and the simulated clock."""

    rng: random.Random
    seed: int
    agents: list[Agent]
    clock: datetime = EPOCH
    runs_started: int = 0
    weights: list[float] = field(default_factory=list)
    tiers: Mapping[str, int] = field(default_factory=dict)
    """The agents' effective tiers as the ledger has them (``generate_drafts``)."""

    def effective_tier(self, agent: Agent) -> int:
        """0 once the agent broke a critical rule, else its tier as known (SPEC §3)."""
        return 0 if agent.critical else self.tiers.get(agent.id, agent.tier)

    def tick(self) -> datetime:
        self.clock += timedelta(milliseconds=self.rng.randint(5, 900))
        return self.clock

    def digest(self, *parts: object) -> str:
        text = "\x1f".join(str(p) for p in parts) + f"\x1f{self.rng.getrandbits(32)}"
        return hashlib.sha256(text.encode()).hexdigest()

    def pick_agent(self) -> Agent:
        return self.rng.choices(self.agents, self.weights)[0]


Yield = tuple[str, Draft]


def make_agents(rng: random.Random, conduct: Sequence[Conduct]) -> list[Agent]:
    """One agent per ``conduct``: the first ones of each profile in turn, then random ones."""
    out = []
    counts: dict[str, int] = {}
    for i, c in enumerate(conduct):
        prof = PROFILES[i % len(PROFILES)] if i < len(PROFILES) else rng.choice(PROFILES)
        counts[prof.kind] = counts.get(prof.kind, 0) + 1
        # Tier, owner and weight are drawn even when ``c`` fixes them, so that fixing one
        # agent's leaves every other draw of the stream where it was.
        tier = rng.choices((0, 1, 2), (2, 5, 3))[0]
        owner = rng.choice(OWNERS)
        weight = rng.paretovariate(1.5)
        out.append(
            Agent(
                f"{prof.kind}-{counts[prof.kind]}",
                prof,
                tier if c.tier is None else c.tier,
                owner,
                weight=weight if c.weight is None else c.weight,
                conduct=c,
            )
        )
    return out


# --- one run ---------------------------------------------------------------------------------


def run_events(w: World, agent: Agent) -> Iterator[Yield]:
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
    def __init__(self, w: World, agent: Agent) -> None:
        w.runs_started += 1
        agent.runs += 1
        self.w, self.rng, self.agent, self.p = w, w.rng, agent, agent.profile
        self.id = f"run-{w.seed}-{w.runs_started:07d}"
        self.user = self.rng.choice(USERS)
        pick, acc = self.rng.random(), 0.0
        self.violation: str | None = None
        c = agent.conduct
        for name, p in VIOLATIONS:
            acc += p * (c.critical if name in CRITICAL_VIOLATIONS else c.warnings)
            if pick < acc:
                self.violation = name
                break
        self.escalated = False
        self.model = self.rng.choice(MODELS)
        self.mishaps = c.failures  # scales the chances of a failure, cancellation or rejection

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
        # Approved by its tier (SPEC §3 approval rule): no governor's run.approved needed.
        self.by_tier = self.auto and w.effective_tier(self.agent) >= AUTO_FROM_TIER[risk]
        if self.by_tier and self.violation == "unapproved":
            self.violation = None  # a start the tier approves breaks no rule
        objective = rng.choice(p.objectives).format(n=rng.randint(2, 9999))
        yield self.rec(
            "run.submitted",
            {"objective": objective, "user": self.user, "risk": risk, "auto_approve": self.auto},
            actor=self.user,
        )
        w.tick()
        if rng.random() < 0.005 * self.mishaps:
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
        if rng.random() < 0.01 * self.mishaps:
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
        if self.by_tier:
            yield self.gov("capability.granted", self.grant(steps), actor=approver)
            w.tick()
            return True
        mode = (
            "auto"
            if self.auto
            else "council"
            if self.risk == "high" and rng.random() < 0.3
            else "human"
        )
        if self.violation != "unapproved":
            verdict: dict[str, object] = {
                "approver": approver,
                "mode": mode,
                "plan_digest": self.plan_digest,
            }
            if rng.random() < 0.04 * self.mishaps:
                yield self.gov(
                    "run.rejected", {**verdict, "reason": rng.choice(REJECTIONS)}, actor=approver
                )
                if rng.random() < 0.3:
                    yield self.rec("correction.recorded", self.correction(), actor=self.user)
                return False
            if rng.random() < 0.3:
                verdict["expires_at"] = _iso(w.clock + timedelta(hours=rng.choice((1, 4, 24))))
            yield self.gov("run.approved", verdict, actor=approver)
            yield self.gov("capability.granted", self.grant(steps), actor=approver)
            w.tick()
        if rng.random() < 0.01 * self.mishaps:
            yield self.rec(
                "run.cancelled", {"reason": "superseded by a newer request"}, actor=self.user
            )
            return False
        return True

    def grant(self, steps: list[dict[str, object]]) -> dict[str, object]:
        """The run's ``capability.granted``: the plan's tools (an expired one for that violation)."""
        rng, w = self.rng, self.w
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
        return grant

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
                        "severity": "warning",
                        "detail": "run spent over its 2 USD budget",
                    },
                )
                yield self.rec("run.cancelled", {"reason": "budget exceeded"})
                return None
            if rng.random() < 0.012 * self.mishaps:
                yield self.failed()
                return None
        return len(calls)

    def finish(self, done: int) -> Iterator[Yield]:
        """(5), (6): outcome, then feedback and corrections."""
        rng, p = self.rng, self.p
        if rng.random() < 0.02 * self.mishaps:
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
        if decision == "ERROR" or rng.random() < 0.04 * self.mishaps:
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
