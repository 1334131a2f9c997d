"""LangChain v1 adapter (``pip install 'govledger[langchain]'``): agent middleware for
``create_agent`` that asks the gate before every tool call (``wrap_tool_call``), so a tool the
gate denies never runs, and records each model call's usage (``wrap_model_call``).

    with recorder.run(agent="support-bot", objective="answer ticket 4711") as run:
        agent = create_agent(model, tools, middleware=[LedgerMiddleware(run, side_effects=...)])
        agent.invoke({"messages": [...]})

Works for ``invoke`` and ``ainvoke`` (give a ``Run`` or an ``AsyncRun``). Recorded:
``tool.called`` (arguments digested) and ``tool.completed`` (``error`` for an error
``ToolMessage`` or a raising tool; the content digested), and ``llm.usage`` from the
``AIMessage``'s ``usage_metadata``. A denied call is the gate's ``guardrail.triggered``; the
model gets an error ``ToolMessage`` naming the reason.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from ledger.adapters.common import DEFAULT_SIDE_EFFECT
from ledger.recording import AsyncRun, Decision, Run, failure_class_of

ToolResult = ToolMessage | Command[Any]


class LedgerMiddleware(AgentMiddleware):
    """Gate and record the tool calls and model usage of an agent on ``run``."""

    def __init__(
        self,
        run: Run | AsyncRun,
        *,
        side_effects: Mapping[str, str] | None = None,
        default_side_effect: str = DEFAULT_SIDE_EFFECT,
    ) -> None:
        super().__init__()
        self.run = run.sync if isinstance(run, AsyncRun) else run
        self.arun = run if isinstance(run, AsyncRun) else AsyncRun(run)
        self.side_effects = dict(side_effects or {})
        self.default_side_effect = default_side_effect

    def _side_effect(self, request: ToolCallRequest) -> tuple[str, str]:
        name = request.tool_call["name"]
        return name, self.side_effects.get(name, self.default_side_effect)

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]
    ) -> ToolResult:
        name, side_effect = self._side_effect(request)
        decision = self.run.check_tool(name, side_effect)
        if not decision.allowed:
            return _refusal(request, decision)
        call = self.run.tool_called(name, request.tool_call["args"], side_effect)
        try:
            result = handler(request)
        except Exception as e:  # recorded, then re-raised to the agent's error handling
            self.run.tool_completed(call, "error", failure_class=failure_class_of(e))
            raise
        self.run.tool_completed(call, *_outcome(result))
        return result

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[ToolResult]]
    ) -> ToolResult:
        name, side_effect = self._side_effect(request)
        decision = await self.arun.check_tool(name, side_effect)
        if not decision.allowed:
            return _refusal(request, decision)
        call = await self.arun.tool_called(name, request.tool_call["args"], side_effect)
        try:
            result = await handler(request)
        except Exception as e:
            await self.arun.tool_completed(call, "error", failure_class=failure_class_of(e))
            raise
        await self.arun.tool_completed(call, *_outcome(result))
        return result

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        started = time.monotonic_ns()
        response = handler(request)
        for usage in _usages(request, response, started):
            self.run.usage(*usage[:4], **usage[4])
        return response

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        started = time.monotonic_ns()
        response = await handler(request)
        for usage in _usages(request, response, started):
            await self.arun.usage(*usage[:4], **usage[4])
        return response


def _refusal(request: ToolCallRequest, decision: Decision) -> ToolMessage:
    name = request.tool_call["name"]
    return ToolMessage(
        content=f"The tool {name} was not run: {decision.reason}.",
        tool_call_id=request.tool_call["id"] or "",
        name=name,
        status="error",
    )


def _outcome(result: ToolResult) -> tuple[Any, None, Any]:
    """``tool_completed``'s status, duration (measured) and result for ``result``."""
    if isinstance(result, ToolMessage):
        content = result.content if isinstance(result.content, str) else str(result.content)
        return ("error" if result.status == "error" else "ok"), None, content
    return "ok", None, None  # a Command: a state update, not a value to digest


def _usages(request: ModelRequest, response: ModelResponse, started: int) -> list[Any]:
    """The ``usage`` arguments for each ``AIMessage`` of ``response`` that reports usage."""
    wallclock = (time.monotonic_ns() - started) // 1_000_000
    get_params = getattr(request.model, "_get_ls_params", None)  # LangSmith's model metadata
    params = get_params() if callable(get_params) else {}
    provider = str(params.get("ls_provider") or type(request.model).__name__)
    out = []
    for message in response.result:
        meta = message.usage_metadata if isinstance(message, AIMessage) else None
        if meta is None:
            continue
        model = message.response_metadata.get("model_name") or params.get("ls_model_name")
        details = meta.get("input_token_details") or {}
        out.append(
            (
                provider,
                str(model or "unknown"),
                meta["input_tokens"],
                meta["output_tokens"],
                {
                    "cache_read_tokens": details.get("cache_read", 0),
                    "cache_write_tokens": details.get("cache_creation", 0),
                    "wallclock_ms": wallclock,
                },
            )
        )
    return out
