"""An OpenAI Agents SDK agent recorded into a fresh ledger through ``ledger.adapters.openai_agents``.

Offline: the model is scripted (``ScriptedModel``: the SDK's ``Model`` interface answering from
a list of prepared responses), so no network and no API key. The agent looks a customer up,
then tries a refund, which its contract forbids: the gate denies it, the refund never runs, and
the model is told so. The script ends by showing the run and its findings with the CLI:

    python scripts/example_agent.py            # in a temporary directory, removed afterwards
    python scripts/example_agent.py --keep DIR # leave the ledger in DIR

Needs the extra: ``pip install 'govledger[openai-agents]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from agents import Agent, ModelResponse, ModelSettings, RunConfig, Runner, Usage, function_tool
from agents.models.interface import Model
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from ledger import Recorder
from ledger.adapters.openai_agents import LedgerHooks

AGENT = "support-bot"
CONTRACT = {
    "owner": "support",
    "version": "1",
    "initial_tier": 2,
    "allowed_side_effects": ["read", "write"],
    "forbidden_actions": ["payment"],
    "confidence_threshold_bp": 7000,
}
SIDE_EFFECTS = {"lookup_customer": "read", "issue_refund": "payment"}
REFUNDS: list[str] = []
"""Refunds the tool really issued: stays empty, the gate denies the call."""


def tool_call(name: str, args: dict[str, Any], call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=call_id, call_id=call_id, type="function_call", name=name, arguments=json.dumps(args)
    )


def message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg-1", type="message", role="assistant", status="completed",
        content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
    )  # fmt: skip


class ScriptedModel(Model):
    """The SDK's ``Model`` answering each call with the next prepared output, and a usage of
    ``tokens`` in and out per call: an offline stand-in for a provider's model."""

    def __init__(self, turns: Sequence[list[Any]], tokens: tuple[int, int] = (100, 20)) -> None:
        self.turns = list(turns)
        self.tokens = tokens
        self.inputs: list[Any] = []

    async def get_response(self, system_instructions: Any, input: Any, *args: Any,
                           **kwargs: Any) -> ModelResponse:  # fmt: skip
        self.inputs.append(input)
        tokens_in, tokens_out = self.tokens
        usage = Usage(requests=1, input_tokens=tokens_in, output_tokens=tokens_out,
                      total_tokens=tokens_in + tokens_out)  # fmt: skip
        return ModelResponse(output=self.turns.pop(0), usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the scripted model does not stream")


@function_tool
def lookup_customer(email: str) -> dict[str, Any]:
    """Find a customer by email."""
    return {"customer": "c-17", "email": email, "plan": "pro"}


@function_tool
def issue_refund(customer: str, amount_cents: int) -> str:
    """Refund a customer."""
    REFUNDS.append(customer)
    return f"refunded {amount_cents} cents to {customer}"


def support_agent() -> Agent[Any]:
    model = ScriptedModel([
        [tool_call("lookup_customer", {"email": "ann@example.com"}, "call-1")],
        [tool_call("issue_refund", {"customer": "c-17", "amount_cents": 4200}, "call-2")],
        [message("I found your account; a refund needs a person, I have asked one.")],
    ])  # fmt: skip
    return Agent(
        name="support", instructions="Help the customer.", model=model,
        model_settings=ModelSettings(), tools=[lookup_customer, issue_refund],
    )  # fmt: skip


def govledger(where: Path, *args: str) -> str:
    """The same Python's ``govledger`` command on the ledger in ``where``."""
    exe = Path(sys.executable).with_name("govledger")
    out = subprocess.run(
        [str(exe), "--db", str(where / "govledger.db"), "--keys", str(where / "keys"), *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout


async def record(where: Path) -> str:
    """Run the agent once, recorded; the run id."""
    with Recorder.open(where / "govledger.db", keys=where / "keys", signer="rec") as recorder:
        async with recorder.arun(agent=AGENT, objective="answer ticket 4711", user="ann") as run:
            hooks = LedgerHooks(run, side_effects=SIDE_EFFECTS)
            result = await Runner.run(
                hooks.govern(support_agent()), "Refund me", hooks=hooks,
                run_config=RunConfig(tracing_disabled=True),  # offline: no trace export
            )  # fmt: skip
            print(f"agent: {result.final_output}")
        return run.id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="make the ledger in this directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        govledger(where, "init", "--origin", "example.com/support")
        govledger(where, "keys", "new", "rec", "--role", "recorder")
        govledger(where, "append", "agent.registered", "--signer", "root", "--agent", AGENT,
                  "--payload", json.dumps(CONTRACT))  # fmt: skip
        run = asyncio.run(record(where))
        assert not REFUNDS, "the gate denied issue_refund, yet it ran"
        print(f"$ govledger runs show {run}")
        print(govledger(where, "runs", "show", run), end="")
        print(f"$ govledger findings --run {run}")
        print(govledger(where, "findings", "--run", run), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
