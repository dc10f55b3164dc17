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

from backends import Backend, BackendError, ChatRequest, Finish, GenerationParams, TextDelta, ToolCall, ToolCallPiece
from backends.base import ToolPrompt
from backends.tool_prompt import readable, strip_tool_calls

from .toolbox import BUILTIN, ToolOutcome, argument_problem, run_tool

MAX_ROUNDS = 8


@dataclass
class Step:
    """One line of the transcript: what the model said, a call it made, or what came back."""

    kind: str  # "user", "assistant", "tool_call", "tool_result", "error", "note"
    content: str
    name: str = ""
    ok: bool = True
    changed_by_user: str = ""  # step mode: what the user put in place of the model's, in words


@dataclass
class ToolRun:
    steps: list[Step] = field(default_factory=list)
    wire: list[dict] = field(default_factory=list)  # each round's request and response, as sent

    def as_json(self) -> dict:
        return {"steps": [dataclasses.asdict(s) for s in self.steps], "wire": self.wire}


@dataclass
class ToolConversation:
    """A tool loop that can stop between its steps: the model's round, then the calls it made.
    Plain data, so a browser session can hold it while the user edits a call (step mode)."""

    tools: list[dict]
    tool_choice: str | dict
    max_rounds: int
    messages: list[dict]
    run: ToolRun
    rounds: int = 0
    pending: list[ToolCall] = field(default_factory=list)  # calls made, not yet run
    live_text: str = ""  # what the model has written so far in the round under way
    live_calls: dict[int, list[str]] = field(default_factory=dict)  # index -> [name, arguments] being written
    finished: bool = False
    tool_prompt: ToolPrompt = "model"  # see ChatRequest.tool_prompt

    @classmethod
    def start(
        cls,
        prompt: str,
        tools: list[dict],
        tool_choice: str | dict = "auto",
        max_rounds: int = 4,
        tool_prompt: ToolPrompt = "model",
        notes: tuple[str, ...] = (),
    ):
        """`notes`: what the console read differently in the tool definitions, shown after the prompt."""
        messages = [{"role": "user", "content": prompt}]
        run = ToolRun([Step("user", prompt), *(Step("note", note) for note in notes)])
        return cls(tools, tool_choice, min(max_rounds, MAX_ROUNDS), messages, run, tool_prompt=tool_prompt)


async def ask_model(
    backend: Backend, conversation: ToolConversation, params: GenerationParams | None = None
) -> AsyncIterator[None]:
    """One round: send the conversation; the calls the model makes become `pending`, or its
    answer ends the conversation. Yields whenever `live_text`, `live_calls` or `pending` grew, so a page can
    show the round as it is written. `tool_choice` binds the first round only: forcing a call
    every round would never let the model answer."""
    c = conversation
    if c.rounds >= c.max_rounds:
        c.run.steps.append(
            Step("error", f"stopped after {c.max_rounds} rounds: the model kept calling tools", ok=False)
        )
        c.finished = True
        return
    choice = c.tool_choice if c.rounds == 0 else "auto"
    params = params or GenerationParams(temperature=0, max_new_tokens=256)
    request = ChatRequest(list(c.messages), params, c.tools, choice, c.tool_prompt)
    c.rounds += 1
    finish = "stop"
    try:
        async with aclosing(backend.stream_chat(request)) as deltas:
            async for delta in deltas:
                if isinstance(delta, TextDelta):
                    c.live_text += delta.text
                elif isinstance(delta, ToolCallPiece):
                    call = c.live_calls.setdefault(delta.index, ["", ""])
                    call[0] += delta.name
                    call[1] += delta.arguments
                elif isinstance(delta, ToolCall):
                    c.pending.append(delta)
                elif isinstance(delta, Finish):
                    finish = delta.reason
                yield
    except BackendError as exc:
        c.run.steps.append(Step("error", str(exc), ok=False))
        c.finished, c.live_text, c.live_calls, c.pending = True, "", {}, []
        return
    text, calls, c.live_text, c.live_calls = strip_tool_calls(c.live_text), c.pending, "", {}
    c.run.wire.append(_wire_round(request, text, calls, finish))
    if text.strip() or not calls:
        c.run.steps.append(Step("assistant", readable(text)))
    c.finished = not calls
    if calls:
        c.messages.append({"role": "assistant", "content": text, "tool_calls": [_call_json(call) for call in calls]})


def run_pending(
    conversation: ToolConversation, mock_results: dict[str, str], edits: dict[str, dict] | None = None
) -> None:
    """Run the pending calls and append their results. `edits` maps a call's id to what the
    user changed in step mode: `arguments` (JSON text) and/or `result` (used instead of running)."""
    for call in conversation.pending:
        edit = (edits or {}).get(call.id, {})
        arguments = edit.get("arguments", call.arguments)
        if edit.get("result") is not None:
            outcome = ToolOutcome(True, str(edit["result"]))
        else:
            outcome = _run_call(dataclasses.replace(call, arguments=arguments), conversation.tools, mock_results)
        edited = _edited(arguments, call.arguments)
        conversation.run.steps += [
            Step(
                "tool_call",
                arguments,
                name=call.name or "(malformed)",
                ok=bool(call.name),
                changed_by_user=f"arguments edited by you; the model wrote {call.arguments}" if edited else "",
            ),
            Step(
                "tool_result",
                outcome.content,
                name=call.name,
                ok=outcome.ok,
                changed_by_user="typed by you, not run" if edit.get("result") is not None else "",
            ),
        ]
        conversation.messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.content})
    conversation.pending = []


def _edited(arguments: str, written: str) -> bool:
    """Whether the user changed a call's arguments (spacing and key order aside, where both are JSON)."""
    if arguments == written:
        return False
    try:
        return json.loads(arguments) != json.loads(written)
    except (json.JSONDecodeError, RecursionError):
        return True


def pending_as_json(calls: list[ToolCall]) -> str:
    """The calls waiting in step mode, as the JSON the user edits."""

    def readable(arguments: str):
        try:
            return json.loads(arguments)
        except (json.JSONDecodeError, RecursionError):
            return arguments  # shown as the text the model wrote, for the user to fix

    return json.dumps(
        [{"id": c.id, "name": c.name, "arguments": readable(c.arguments), "result": None} for c in calls], indent=2
    )


def edits_from_json(text: str) -> dict[str, dict]:
    """The user's edits of `pending_as_json`: call id -> `arguments` (JSON text) and `result`.
    ValueError says what is wrong with the text."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the waiting calls are not JSON any more: {exc}") from exc
    except RecursionError as exc:  # json gives up past Python's recursion limit
        raise ValueError("the waiting calls are nested too deeply; keep the list of calls as it was") from exc
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e for e in entries):
        raise ValueError('keep the list of calls, each with its "id"; edit "arguments" or "result"')
    edits = {}
    for entry in entries:
        arguments, result = entry.get("arguments"), entry.get("result")
        edits[entry["id"]] = {
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            "result": result if result is None or isinstance(result, str) else json.dumps(result),
        }
    return edits


async def drive(
    backend: Backend,
    conversation: ToolConversation,
    mock_results: dict[str, str],
    *,
    pause_before_tools: bool = False,
    params: GenerationParams | None = None,
) -> AsyncIterator[None]:
    """The one driver of the loop, for the API and the Tools tab alike: rounds until the model
    answers or the round limit, or, with `pause_before_tools` (step mode), until calls wait for
    the user. Yields whenever the conversation changed: as the model writes, and after calls ran."""
    while not conversation.finished:
        async for _ in ask_model(backend, conversation, params):
            yield
        if pause_before_tools and conversation.pending:
            return
        run_pending(conversation, mock_results)
        yield


async def run_tool_loop(
    backend: Backend,
    prompt: str,
    tools: list[dict],
    tool_choice: str | dict = "auto",
    mock_results: dict[str, str] | None = None,
    params: GenerationParams | None = None,
    max_rounds: int = 4,
    tool_prompt: ToolPrompt = "model",
    notes: tuple[str, ...] = (),
) -> ToolRun:
    """Ask, run the calls, repeat without stopping; the whole transcript."""
    conversation = ToolConversation.start(prompt, tools, tool_choice, max_rounds, tool_prompt, notes)
    async for _ in drive(backend, conversation, mock_results or {}, params=params):
        pass
    return conversation.run


def _run_call(call: ToolCall, tools: list[dict], mock_results: dict[str, str]) -> ToolOutcome:
    if not call.name:
        return ToolOutcome(
            False, f'not a tool call: {call.arguments[:200]!r} is not {{"name": ..., "arguments": {{...}}}}'
        )
    defined = {t["function"]["name"]: t for t in tools}
    if call.name not in defined:
        return ToolOutcome(False, f"there is no tool named {call.name!r}; the tools are: {', '.join(defined)}")
    builtin = BUILTIN.get(call.name)
    parameters = defined[call.name]["function"].get("parameters", {"type": "object"})
    if builtin and parameters == builtin.parameters:
        return run_tool(builtin, call.arguments)
    if call.name in mock_results:  # a schema-only tool: its result is what the user typed
        return ToolOutcome(True, str(mock_results[call.name]))
    if builtin:  # the user's own definition of a built-in's name: run it where both schemas take the call
        if problem := argument_problem(call.arguments, parameters, f"your definition of {call.name}'s"):
            return ToolOutcome(False, problem)
        return run_tool(builtin, call.arguments)
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
