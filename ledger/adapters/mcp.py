"""MCP Python SDK adapter (``pip install 'govledger[mcp]'``, mcp 2.x): a server middleware
around ``tools/call`` that asks the gate before the tool and records the call, so a tool the
gate denies never runs.

    async with recorder.arun(agent="support-bot", objective="answer ticket 4711") as run:
        server.middleware.append(LedgerMiddleware(run, side_effects={"refund": "payment"}))
        ...  # serve: every tools/call on this server is recorded on ``run``

Recorded: for an allowed call ``tool.called`` (its arguments digested) before the tool and
``tool.completed`` after it (``error`` when the result is an error result or the handler
raises; the result digested). A denied call is the gate's ``guardrail.triggered``; the client
gets an error result naming the reason, and the tool is not called. Other methods pass through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from ledger.adapters.common import DEFAULT_SIDE_EFFECT
from ledger.recording import AsyncRun, failure_class_of


class LedgerMiddleware(ServerMiddleware[Any]):
    """Gate and record every ``tools/call`` of a server on ``run``. ``side_effects`` maps tool
    names to their side-effect class (``read``, ``write``, ``payment``...)."""

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

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        params = ctx.params or {}
        name = params.get("name")
        if ctx.method != "tools/call" or ctx.request_id is None or not isinstance(name, str):
            return await call_next(ctx)  # not a tool call; a malformed one the SDK refuses
        side_effect = self.side_effects.get(name, self.default_side_effect)
        decision = await self.run.check_tool(name, side_effect)
        if not decision.allowed:
            text = f"The tool {name} was not run: {decision.reason}."
            return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        call = await self.run.tool_called(name, params.get("arguments") or {}, side_effect)
        try:
            result = await call_next(ctx)
        except Exception as e:  # recorded, then the SDK turns it into the JSON-RPC error
            await self.run.tool_completed(call, "error", failure_class=failure_class_of(e))
            raise
        dumped = (
            result.model_dump(mode="json", by_alias=True)
            if isinstance(result, BaseModel)
            else result
        )
        failed = isinstance(dumped, dict) and dumped.get("isError") is True
        await self.run.tool_completed(
            call,
            "error" if failed else "ok",
            result=dumped,
            failure_class="tool_error" if failed else None,
        )
        return result
