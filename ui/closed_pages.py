"""A closed page's session is let go of, so that a console shared with a room does not grow with every
visitor.

Gradio keeps a page's session after the page closes (its State values for an hour, and the session
itself, with a copy of every component's config, until 10,000 sessions are held). Here, once a page
has been closed for `kept_s` (its heartbeat stream ended and did not come back), the session is
deleted, as Gradio deletes its State values after its hour.
"""

from __future__ import annotations

import asyncio
import os

import gradio as gr

# long enough for a page that lost its connection to come back; LMDEPLOY_CONSOLE_CLOSED_PAGE_KEPT_S sets it
CLOSED_PAGE_KEPT_S = float(os.environ.get("LMDEPLOY_CONSOLE_CLOSED_PAGE_KEPT_S", "600"))


def let_go_of_closed_pages(demo: gr.Blocks, kept_s: float = CLOSED_PAGE_KEPT_S) -> None:
    """Within `demo`'s Blocks context: each page's session deleted `kept_s` after the page closes."""

    async def page_closed(request: gr.Request):
        asyncio.get_running_loop().call_later(kept_s, _delete_if_still_closed, demo, request.session_hash)

    demo.unload(page_closed)


def _delete_if_still_closed(demo: gr.Blocks, session_hash: str) -> None:
    holder = demo.state_holder
    session = holder.session_data.get(session_hash)
    if session is None or not session.is_closed:
        return
    holder.delete_state(session_hash)  # State values go through their delete callbacks
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        holder.time_last_used.pop(session_hash, None)
