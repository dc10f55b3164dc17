"""LMDeploy's own tool path, shared by the engine worker and the cpu backend.

The request LMDeploy's api_server would receive, its response parser for a model family (the
`--tool-call-parser` names: internlm, qwen, llama3, ...) reading calls out of the model's text
as it streams, and forced calls under the parser's structural tag. Only LMDeploy's
pure-Python serving code is imported, so all of it runs without a GPU.
"""

from __future__ import annotations

import functools
from typing import Any

from .base import ChatRequest, TextDelta, ToolCall, ToolCallPiece
from .tool_calls import CallPieces, piece_fields


@functools.cache
def response_parser_class(parser: str) -> type:
    """LMDeploy's default response parser bound to one tool parser. A subclass of its own:
    LMDeploy keeps the parser on the class, and the api_server sets it on the shared one."""
    from lmdeploy.serve.parsers import ResponseParserManager

    bound: Any = type(f"ResponseParser_{parser}", (ResponseParserManager.get("default"),), {})
    bound.set_parsers(tool_parser_name=parser)
    return bound


def tool_chat_request(model: str, request: ChatRequest):
    """The `ChatCompletionRequest` LMDeploy's api_server would receive for this chat, so its own
    tool path (the chat template rendering the tools, the parser, forced calls) serves it;
    `model` is the engine's model name (another name would be taken for a LoRA adapter's).

    A named function becomes "required" over that one tool: the api_server only forces
    "required", and with one tool the two mean the same."""
    from lmdeploy.serve.openai.protocol import ChatCompletionRequest

    tools, tool_choice, params = request.tools, request.tool_choice, request.params
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        tools, tool_choice = [t for t in tools or () if t["function"]["name"] == name], "required"
    return ChatCompletionRequest(
        model=model,
        messages=request.messages,
        tools=tools,
        tool_choice=tool_choice,
        stream=True,
        **_request_knobs(params),
        seed=params.seed,
        stop=list(params.stop) or None,
    )


def _request_knobs(params) -> dict:
    """The knobs under api_server's request names: OpenAI's where it has them, GenerationParams' for the rest."""
    standard, extras = params.openai_knobs()
    standard["max_completion_tokens"] = standard.pop("max_tokens")  # api_server deprecates max_tokens
    return standard | extras | ({"temperature": 1.0, "top_k": 1} if params.greedy else {})


def tool_parsers() -> list[str]:
    """The names LMDeploy's tool-call parsers are registered under (`--tool-call-parser`)."""
    from lmdeploy.serve.parsers.tool_parser import ToolParserManager

    return sorted(ToolParserManager.module_dict)


def parsed_pieces(message) -> list[str | tuple]:
    """What one `DeltaMessage` of LMDeploy's response parser holds: its text, and the (index, id, name,
    arguments piece) of each piece of a tool call it found."""
    pieces: list[str | tuple] = [message.content] if message.content else []
    return pieces + [piece_fields(call) for call in message.tool_calls or []]


class ParsedTurn:
    """One request with tools through LMDeploy's parser, for a backend that generates itself
    (the cpu backend): the messages and tools for the model's own chat template, the response
    format that forces a call, and the reply turned into deltas as it arrives."""

    def __init__(self, parser: str, request: ChatRequest):
        self._parser = response_parser_class(parser)(tool_chat_request("local", request))
        prepared = self._parser.request
        self.messages = [m if isinstance(m, dict) else m.model_dump(exclude_none=True) for m in prepared.messages]
        self.template_tools = prepared.tools
        self.response_format = prepared.response_format
        self._calls = CallPieces()

    def deltas(self, piece: str, final: bool = False) -> list[TextDelta | ToolCallPiece]:
        found: list[TextDelta | ToolCallPiece] = []
        for message, _ in self._parser.stream_chunk(piece, [], final=final):
            for parsed in parsed_pieces(message):
                found.append(TextDelta(parsed) if isinstance(parsed, str) else self._calls.add(*parsed))
        return found

    def finish(self) -> list[TextDelta | ToolCallPiece | ToolCall]:
        """What the parser still held, then the whole calls."""
        return [*self.deltas("", final=True), *self._calls.whole()]
