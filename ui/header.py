"""The line at the top of every page: which engine is running, and why it was chosen."""

from __future__ import annotations

from console.engine_state import EngineState


def engine_header(state: EngineState) -> str:
    info = state.info
    preset = f" · preset **{state.preset}**" if state.preset else ""
    return (
        f"**Backend:** {info.kind} · **model:** `{info.model}` · **engine:** {info.engine}{preset}  \n_{state.reason}_"
    )
