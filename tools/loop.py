"""The tool-call loop: ask, run the calls the model makes, send the results back, repeat.

It ends when the model answers without calling a tool, or at the round limit. Every problem
(an unknown tool, arguments that are not JSON or do not fit the schema, a tool that fails or
runs too long, a missing mock result) becomes a step of the transcript and a `tool` message
the model sees; nothing stops the session.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

from backends import Backend, BackendError, ChatRequest, Finish, GenerationParams, TextDelta, ToolCall
from backends.tool_prompt import strip_tool_calls

from .toolbox import BUILTIN, ToolOutcome, run_tool

MAX_ROUNDS = 8


@dataclass
class Step:
    """One line of the transcript: what the model said, a call it made, or what came back."""

    kind: str  # "user", "assistant", "tool_call", "tool_result", "error"
    content: str
    name: str = ""
    ok: bool = True


@dataclass
class ToolRun:
    steps: list[Step] = field(default_factory=list)
    wire: list[dict] = field(default_factory=list)  # each round's request and response, as sent

    def as_json(self) -> dict:
        return {"steps": [dataclasses.asdict(s) for s in self.steps], "wire": self.wire}


async def run_tool_loop(
    backend: Backend,
    prompt: str,
    tools: list[dict],
    tool_choice: str | dict = "auto",
    mock_results: dict[str, str] | None = None,
    params: GenerationParams | None = None,
    max_rounds: int = 4,
) -> AsyncIterator[ToolRun]:
    """Yield the transcript after every round. `tool_choice` binds the first round only:
    forcing a call every round would never let the model answer."""
    params = params or GenerationParams(temperature=0, max_new_tokens=256)
    run = ToolRun([Step("user", prompt)])
    messages = [{"role": "user", "content": prompt}]
    for round_index in range(min(max_rounds, MAX_ROUNDS)):
        choice = tool_choice if round_index == 0 else "auto"
        request = ChatRequest(messages=list(messages), params=params, tools=tools, tool_choice=choice)
        try:
            text, calls, finish = await _ask(backend, request)
        except BackendError as exc:
            run.steps.append(Step("error", str(exc), ok=False))
            yield run
            return
        run.wire.append(_wire_round(request, text, calls, finish))
        if text.strip() or not calls:
            run.steps.append(Step("assistant", text))
        if not calls:
            yield run
            return
        messages.append({"role": "assistant", "content": text, "tool_calls": [_call_json(c) for c in calls]})
        for call in calls:
            outcome = _run_call(call, tools, mock_results or {})
            run.steps.append(Step("tool_call", call.arguments, name=call.name or "(malformed)", ok=bool(call.name)))
            run.steps.append(Step("tool_result", outcome.content, name=call.name, ok=outcome.ok))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.content})
        yield run
    run.steps.append(Step("error", f"stopped after {max_rounds} rounds: the model kept calling tools", ok=False))
    yield run


async def _ask(backend: Backend, request: ChatRequest) -> tuple[str, list[ToolCall], str]:
    text, calls, finish = "", [], "stop"
    async with aclosing(backend.stream_chat(request)) as deltas:
        async for delta in deltas:
            if isinstance(delta, TextDelta):
                text += delta.text
            elif isinstance(delta, ToolCall):
                calls.append(delta)
            elif isinstance(delta, Finish):
                finish = delta.reason
    return strip_tool_calls(text), calls, finish


def _run_call(call: ToolCall, tools: list[dict], mock_results: dict[str, str]) -> ToolOutcome:
    if not call.name:
        return ToolOutcome(
            False, f'not a tool call: {call.arguments[:200]!r} is not {{"name": ..., "arguments": {{...}}}}'
        )
    defined = {t["function"]["name"]: t for t in tools}
    if call.name not in defined:
        return ToolOutcome(False, f"there is no tool named {call.name!r}; the tools are: {', '.join(defined)}")
    builtin = BUILTIN.get(call.name)
    if builtin and defined[call.name]["function"].get("parameters") == builtin.parameters:
        return run_tool(builtin, call.arguments)
    if call.name in mock_results:  # a schema-only tool: its result is what the user typed
        return ToolOutcome(True, str(mock_results[call.name]))
    return ToolOutcome(False, f"{call.name} is schema-only: type its result under Mock results to go on")


def _call_json(call: ToolCall) -> dict:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _wire_round(request: ChatRequest, text: str, calls: list[ToolCall], finish: str) -> dict:
    return {
        "request": {
            "messages": request.messages,
            "tools": request.tools,
            "tool_choice": request.tool_choice,
            **{k: v for k, v in request.params.as_dict().items() if k in ("temperature", "max_new_tokens")},
        },
        "response": {"content": text, "tool_calls": [_call_json(c) for c in calls], "finish_reason": finish},
    }


def _request_body(wire_round: dict, model: str) -> dict:
    request = wire_round["request"]
    return {
        "model": model,
        "messages": request["messages"],
        "tools": request["tools"],
        "tool_choice": request["tool_choice"],
        "temperature": request.get("temperature", 0),
    }


def curl_snippet(wire_round: dict, base_url: str = "http://127.0.0.1:23333/v1", model: str = "MODEL") -> str:
    """One round's request as a `curl` against an OpenAI-compatible server."""
    body = json.dumps(_request_body(wire_round, model))
    return f"curl {base_url}/chat/completions -H 'Content-Type: application/json' \\\n  -d '{body}'"


def openai_snippet(wire_round: dict, base_url: str = "http://127.0.0.1:23333/v1", model: str = "MODEL") -> str:
    """One round's request as Python with the `openai` client."""
    arguments = ",\n    ".join(f"{key}={value!r}" for key, value in _request_body(wire_round, model).items())
    return (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base_url}", api_key="YOUR_KEY")\n'
        f"response = client.chat.completions.create(\n    {arguments},\n)\n"
        "print(response.choices[0].message)"
    )
