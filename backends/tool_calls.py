"""Tool calls that arrive in pieces, put back together.

An OpenAI-compatible server streams a call as pieces tagged with the call's index (name and id
first, then the arguments a few characters at a time); LMDeploy's tool parsers, run in the
engine worker, give the same pieces. Each piece is passed on as a `ToolCallPiece`, so the
Tools tab shows the call being written, and the whole calls follow at the end.
"""

from __future__ import annotations

from .base import ToolCall, ToolCallPiece


def piece_fields(delta) -> tuple:
    """(index, id, name, arguments piece) of one OpenAI-style tool-call delta: the openai
    client's, as a server streams it, or LMDeploy's, as its parser finds it."""
    function = delta.function
    return delta.index, delta.id, function and function.name, function and function.arguments


class CallPieces:
    def __init__(self):
        self._calls: dict[int, dict] = {}

    def add(self, index: int, call_id: str | None, name: str | None, arguments: str | None) -> ToolCallPiece:
        call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        call["id"] = call_id or call["id"]
        call["name"] += name or ""
        call["arguments"] += arguments or ""
        return ToolCallPiece(index, name or "", arguments or "")

    def whole(self) -> list[ToolCall]:
        return [
            ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"] or "{}") for i, c in sorted(self._calls.items())
        ]
