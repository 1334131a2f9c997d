"""OpenAI Agents SDK adapter (``pip install 'govledger[openai-agents]'``): run hooks that
record a ``Runner.run`` into an ``arun`` of the recorder, and a tool input guardrail that asks
the gate before every function tool, so a tool the gate denies never runs.

    async with recorder.arun(agent="support-bot", objective="answer ticket 4711") as run:
        hooks = LedgerHooks(run, side_effects={"kb_search": "read", "refund": "payment"})
        result = await Runner.run(hooks.govern(agent), "...", hooks=hooks)

Recorded: ``tool.called`` when a function tool starts (its arguments digested),
``tool.completed`` when it ends (its result digested), ``llm.usage`` after every model call,
and the final output as the run's ``outputs_digest``. A denied call is the gate's
``guardrail.triggered``; the model is told the call was refused and the run goes on.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from agents import Agent, FunctionTool, ModelResponse, RunContextWrapper, RunHooks, Tool
from agents.tool_context import ToolContext
from agents.tool_guardrails import (
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
)

from ledger.adapters.common import DEFAULT_SIDE_EFFECT, jsonable
from ledger.errors import ToolDenied
from ledger.recording import AsyncRun, ToolCall


class LedgerHooks(RunHooks[Any]):
    """Records one ``Runner.run`` into ``run``; ``govern(agent)`` adds the gate to its tools.

    ``side_effects`` maps tool names to their side-effect class (``read``, ``write``,
    ``payment``...); ``provider`` names the model provider in ``llm.usage``, and ``price(model,
    tokens_in, tokens_out)`` gives a call's cost in dollars (without it the cost is 0)."""

    def __init__(
        self,
        run: AsyncRun,
        *,
        side_effects: Mapping[str, str] | None = None,
        default_side_effect: str = DEFAULT_SIDE_EFFECT,
        provider: str = "openai",
        price: Callable[[str, int, int], Any] | None = None,
    ) -> None:
        self.run = run
        self.side_effects = dict(side_effects or {})
        self.default_side_effect = default_side_effect
        self.provider = provider
        self.price = price
        self.calls: dict[str, ToolCall] = {}
        self.llm_started: dict[str, int] = {}
        self.gated: set[str] = set()
        """Tool call ids the guardrail allowed: any other call is gated in on_tool_start."""
        self.guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(self._gate, name="govledger")

    def side_effect(self, tool: str) -> str:
        return self.side_effects.get(tool, self.default_side_effect)

    def govern(self, agent: Agent[Any]) -> Agent[Any]:
        """A copy of ``agent`` whose function tools first pass the gate (the SDK's tool input
        guardrails run before the tool and before ``on_tool_start``)."""
        return agent.clone(tools=[self._guarded(tool) for tool in agent.tools])

    def _guarded(self, tool: Tool) -> Tool:
        if not isinstance(tool, FunctionTool):
            return tool
        guards = [g for g in tool.tool_input_guardrails or [] if g is not self.guardrail]
        # A copy, so the caller's tool objects (maybe shared by other runs) stay unchanged.
        return _replace(tool, tool_input_guardrails=[self.guardrail, *guards])

    async def _gate(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        name = data.context.tool_name
        decision = await self.run.check_tool(name, self.side_effect(name))
        if decision.allowed:
            self.gated.add(data.context.tool_call_id)
            return ToolGuardrailFunctionOutput.allow(decision.reason)
        return ToolGuardrailFunctionOutput.reject_content(
            f"The tool {name} was not run: {decision.reason}.", decision.finding_kind
        )

    async def on_tool_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool
    ) -> None:
        args: Any = None
        key = tool.name
        if isinstance(context, ToolContext):
            key = context.tool_call_id
        if key not in self.gated:
            # A tool that did not pass govern() (a handoff target's, another tool family):
            # the last point before it runs, where a denial can only stop the run.
            decision = await self.run.check_tool(tool.name, self.side_effect(tool.name))
            if not decision.allowed:
                raise ToolDenied(f"tool {tool.name!r} denied by the gate: {decision.reason}")
        self.gated.discard(key)
        if isinstance(context, ToolContext):
            try:
                args = json.loads(context.tool_arguments or "null")
            except ValueError:
                args = context.tool_arguments  # digested as the text the model wrote
        self.calls[key] = await self.run.tool_called(tool.name, args, self.side_effect(tool.name))

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: object
    ) -> None:
        key = context.tool_call_id if isinstance(context, ToolContext) else tool.name
        call = self.calls.pop(key, None)
        if call is not None:
            await self.run.tool_completed(call, "ok", result=jsonable(result))

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[Any],
    ) -> None:
        self.llm_started[agent.name] = time.monotonic_ns()

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        usage = response.usage
        cached = usage.input_tokens_details.cached_tokens or 0
        started = self.llm_started.pop(agent.name, None)
        wallclock = 0 if started is None else (time.monotonic_ns() - started) // 1_000_000
        model, tokens_in, tokens_out = _model_name(agent), usage.input_tokens, usage.output_tokens
        cost = self.price(model, tokens_in, tokens_out) if self.price else 0
        await self.run.usage(
            self.provider,
            model,
            tokens_in,
            tokens_out,
            cost_usd=cost,
            cache_read_tokens=cached,
            wallclock_ms=wallclock,
        )

    async def on_agent_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], output: Any
    ) -> None:
        self.run.set_outputs(jsonable(output))


def _replace(tool: FunctionTool, **changes: Any) -> FunctionTool:
    return dataclasses.replace(tool, **changes)


def _model_name(agent: Agent[Any]) -> str:
    model = agent.model
    if isinstance(model, str):
        return model
    if model is None:
        return "default"
    name = getattr(model, "model", None)  # the SDK's OpenAI models keep their name here
    return name if isinstance(name, str) else type(model).__name__
