"""Tool calling for chat templates that know no tools (the embedded SmolLM2's does not).

The tools are listed in the system prompt and the model is asked to answer with
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`; earlier calls and their results
are written back as plain text in that same form. Where a call is forced (`tool_choice`
"required" or a named function), `forced_call_schema` gives the JSON schema that constrained
decoding holds the output to, so even a 135M model emits a valid call.
"""

from __future__ import annotations

import json
import re

from .base import TextDelta, ToolCall, ToolCallPiece

MAX_FORCED_STRING = 64
_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_MARKUP = re.compile(r"</?tool_(?:call|response)>")

INSTRUCTIONS = """You can call these tools:
{tools}

To call a tool, answer with one line per call:
<tool_call>{{"name": "<tool name>", "arguments": {{<arguments as JSON>}}}}</tool_call>
Tool results come back inside <tool_response></tool_response>. When you have what you need,
answer the user in plain text."""


def wants_tools(tools: list[dict] | None, tool_choice: str | dict) -> bool:
    return bool(tools) and tool_choice != "none"


class ToolTurn:
    """One request seen through the console's tool prompt: the messages to render (the tools
    are in them, so the chat template gets none), the response format a forced call is decoded
    under (None when the model may answer freely), and the reply turned into deltas as it
    arrives. A request without tools passes through unchanged."""

    template_tools = None

    def __init__(self, messages: list[dict], tools: list[dict] | None, forced: dict | None):
        self.messages, self.tools, self.forced = messages, tools, forced
        self.response_format = (
            {"type": "json_schema", "json_schema": {"name": "tool_call", "schema": forced}} if forced else None
        )
        self._text = ""

    @classmethod
    def of(cls, messages: list[dict], tools: list[dict] | None, tool_choice: str | dict) -> ToolTurn:
        """ValueError when `tool_choice` names a tool that is not there."""
        if not tools or not wants_tools(tools, tool_choice):
            return cls(messages, None, None)
        return cls(tool_messages(messages, tools), tools, forced_call_schema(tools, tool_choice))

    def deltas(self, piece: str) -> list[TextDelta | ToolCallPiece]:
        """What a piece of the reply is: text for the reader, or, when the call is forced, a
        piece of the call's JSON being written."""
        self._text += piece
        return [ToolCallPiece(0, "", piece) if self.forced else TextDelta(piece)]

    def finish(self) -> list[ToolCall]:
        """The calls in the whole reply; an unreadable one has an empty name and the raw text."""
        return [ToolCall(f"call_{i}", name, arguments) for i, (name, arguments) in enumerate(self._parsed())]

    def _parsed(self) -> list[tuple[str, str]]:
        if self.forced:
            try:
                return [parse_forced_call(self._text)]
            except (ValueError, KeyError):  # cut short by max_new_tokens or Stop
                return [("", self._text)]
        return parse_tool_calls(self._text) if self.tools else []


def tool_messages(messages: list[dict], tools: list[dict]) -> list[dict]:
    """The conversation with the tools in the system prompt and calls/results as text."""
    listing = "\n".join(json.dumps(tool["function"]) for tool in tools)
    system = INSTRUCTIONS.format(tools=listing)
    rendered, rest = [], list(messages)
    if rest and rest[0]["role"] == "system":
        system = f"{rest.pop(0)['content']}\n\n{system}"
    rendered.append({"role": "system", "content": system})
    for message in rest:
        if message["role"] == "tool":
            rendered.append({"role": "user", "content": f"<tool_response>{message['content']}</tool_response>"})
        elif message.get("tool_calls"):
            calls = "\n".join(
                f'<tool_call>{{"name": {json.dumps(c["function"]["name"])}, "arguments": {c["function"]["arguments"]}}}'
                "</tool_call>"
                for c in message["tool_calls"]
            )
            rendered.append({"role": "assistant", "content": f"{message.get('content') or ''}{calls}"})
        else:
            rendered.append({"role": message["role"], "content": message["content"]})
    return rendered


def forced_call_schema(tools: list[dict], tool_choice: str | dict) -> dict | None:
    """The schema of `{"name": ..., "arguments": ...}` for a forced call, or None when not forced."""
    if tool_choice == "required":
        chosen = tools
    elif isinstance(tool_choice, dict):
        name = tool_choice.get("function", {}).get("name")
        chosen = [t for t in tools if t["function"]["name"] == name]
        if not chosen:
            raise ValueError(f"tool_choice names {name!r}, which is not among the tools")
    else:
        return None
    options = [
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "arguments"],
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": _bounded(t["function"].get("parameters", {"type": "object"})),
            },
        }
        for t in chosen
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _bounded(schema: object) -> object:
    """The schema with a length cap on unbounded strings: a small model held to a schema can
    otherwise write one string until it runs out of tokens."""
    if isinstance(schema, list):
        return [_bounded(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: _bounded(value) for key, value in schema.items()}
    if bounded.get("type") == "string" and "maxLength" not in bounded and "enum" not in bounded:
        bounded["maxLength"] = MAX_FORCED_STRING
    return bounded


def parse_tool_calls(text: str) -> list[tuple[str, str]]:
    """(name, arguments JSON) for each `<tool_call>` block; a block that is not a call comes
    back with an empty name and its raw text, for the caller to report."""
    calls = []
    for block in _BLOCK.findall(text):
        try:
            call = json.loads(block)
            calls.append((str(call["name"]), json.dumps(call.get("arguments", {}))))
        except (json.JSONDecodeError, KeyError, TypeError):
            calls.append(("", block))
    return calls


def parse_forced_call(text: str) -> tuple[str, str]:
    call = json.loads(text)
    return call["name"], json.dumps(call["arguments"])


def strip_tool_calls(text: str) -> str:
    return _BLOCK.sub("", text).strip()


def readable(text: str) -> str:
    """Text as a person reads it: without the tool-call markup a model may echo back (seen from
    SmolLM2: "<tool_response>8</tool_response>" as its final answer). The wire keeps the raw text."""
    return _MARKUP.sub("", text).strip()
