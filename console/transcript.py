"""Export and import a chat as JSON: messages, generation params, and what produced them."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any

from backends import BackendInfo, GenerationParams, Refusal

from .chat import ChatSession, ReplyStats, Turn

FORMAT = "lmdeploy-console.chat/1"
MAX_IMPORT_BYTES = 2 * 1024 * 1024


class TranscriptError(Refusal, ValueError):
    """An import file that is not a chat this console wrote; the message says what is wrong."""


def export_chat(session: ChatSession, produced_by: BackendInfo, preset: str | None) -> str:
    """The session as pretty JSON, with the backend, model and preset that produced it."""
    document = {
        "format": FORMAT,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "produced_by": {
            "backend": produced_by.kind,
            "model": produced_by.model,
            "engine": produced_by.engine,
            "preset": preset,
        },
        "system_prompt": session.system_prompt,
        "params": session.params.as_dict(),
        "messages": [_turn_to_json(turn) for turn in session.turns],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def import_chat(raw: bytes | str) -> ChatSession:
    """Parse an exported chat; raises TranscriptError naming the first problem found."""
    if not isinstance(raw, bytes | str):
        raise TranscriptError("no file came with the import")
    if len(raw) > MAX_IMPORT_BYTES:
        raise TranscriptError(f"the file is {len(raw):,} bytes; chats up to {MAX_IMPORT_BYTES:,} bytes can be imported")
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TranscriptError(f"not JSON: {exc}") from exc
    except RecursionError as exc:  # json gives up past Python's recursion limit
        raise TranscriptError("nested too deeply to be a chat export") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TranscriptError(f'not a chat export: expected "format": "{FORMAT}"')
    try:
        params = GenerationParams.from_dict(document.get("params") or {})
    except (TypeError, ValueError) as exc:
        raise TranscriptError(f"params: {exc}") from exc
    messages = document.get("messages")
    if not isinstance(messages, list):
        raise TranscriptError('"messages" must be a list')
    turns = [_turn_from_json(i, item) for i, item in enumerate(messages)]
    system_prompt = document.get("system_prompt") or ""
    if not isinstance(system_prompt, str):
        raise TranscriptError('"system_prompt" must be a string')
    return ChatSession(system_prompt=system_prompt, params=params, turns=turns)


def _turn_to_json(turn: Turn) -> dict:
    item: dict[str, Any] = {"role": turn.role, "content": turn.content}
    if turn.stats:
        item["stats"] = dataclasses.asdict(turn.stats)
    return item


def _turn_from_json(index: int, item: object) -> Turn:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise TranscriptError(f"{where} must be an object")
    role, content = item.get("role"), item.get("content")
    if role not in ("user", "assistant"):
        raise TranscriptError(f'{where}.role must be "user" or "assistant", not {role!r}')
    if not isinstance(content, str):
        raise TranscriptError(f"{where}.content must be a string")
    stats = None
    if isinstance(item.get("stats"), dict):
        try:
            stats = ReplyStats(**item["stats"])
        except TypeError as exc:
            raise TranscriptError(f"{where}.stats: {exc}") from exc
    return Turn(role, content, stats)
