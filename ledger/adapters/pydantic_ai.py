"""Pydantic AI adapter (``pip install 'govledger[pydantic-ai]'``): a capability that asks the
gate before every tool execution (``wrap_tool_execute``), so a tool the gate denies never runs,
and records each model response's usage (``after_model_request``).

    async with recorder.arun(agent="support-bot", objective="answer ticket 4711") as run:
        agent = Agent(model, tools=[...], capabilities=[LedgerCapability(run, side_effects=...)])
        await agent.run("...")

Recorded: ``tool.called`` (the model's arguments digested) and ``tool.completed`` (``error``
when the tool raises; the result digested when it is JSON, else its text), and ``llm.usage``
with the response's model, provider and tokens. A denied call is the gate's
``guardrail.triggered``; the model gets a tool result naming the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.tools import ToolDefinition

from ledger.adapters.common import DEFAULT_SIDE_EFFECT, jsonable
from ledger.recording import AsyncRun, failure_class_of


class LedgerCapability(AbstractCapability[Any]):
    """Gate and record the tool calls and model usage of an agent's runs on ``run``."""

    def __init__(
        self,
        run: AsyncRun,
        *,
        side_effects: Mapping[str, str] | None = None,
        default_side_effect: str = DEFAULT_SIDE_EFFECT,
    ) -> None:
        self.run = run
        self.side_effects = dict(side_effects or {})
        self.default_side_effect = default_side_effect

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: Any,
        handler: Any,
    ) -> Any:
        name = call.tool_name
        side_effect = self.side_effects.get(name, self.default_side_effect)
        decision = await self.run.check_tool(name, side_effect)
        if not decision.allowed:
            return f"The tool {name} was not run: {decision.reason}."
        recorded = await self.run.tool_called(name, call.args_as_dict(), side_effect)
        try:
            result = await handler(args)
        except Exception as e:  # recorded, then left to the agent's own error handling
            await self.run.tool_completed(recorded, "error", failure_class=failure_class_of(e))
            raise
        await self.run.tool_completed(recorded, "ok", result=jsonable(result))
        return result

    async def after_model_request(
        self, ctx: RunContext[Any], *, request_context: Any, response: ModelResponse
    ) -> ModelResponse:
        usage = response.usage
        await self.run.usage(
            response.provider_name or "unknown",
            response.model_name or "unknown",
            usage.input_tokens,
            usage.output_tokens,
            0,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        return response
