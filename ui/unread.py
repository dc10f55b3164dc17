"""Whether anyone still reads a streaming event's paints.

Gradio runs a queued event whether or not its page reads the session's event stream. A client that
gave up waiting for the answer to its queue join (gradio_client gives up after 5 s) never opens that
stream, and its chat was generated all the same, holding the engine from the chats people watch
(120 such clients made the next real chat wait 85 s for its first token). A page that closes
mid-reply Gradio notices itself (its stream ends); one that never opened its stream it does not.
The paints of such a chat pile up unread in the session's queue of messages: that is the sign.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import gradio as gr
from gradio.context import LocalContext

# long past the few seconds a busy page takes to open its stream after joining
UNREAD_FOR_S = float(os.environ.get("LMDEPLOY_CONSOLE_UNREAD_S", "10"))


class UnreadPaints:
    """Told at each paint how many of the session's messages wait unread; says when nobody reads."""

    def __init__(
        self,
        waiting: Callable[[], int],
        unread_for_s: float = UNREAD_FOR_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._waiting, self.unread_for_s, self._clock = waiting, unread_for_s, clock
        self._unread_since: float | None = None

    @classmethod
    def of_request(cls, request: gr.Request | None) -> UnreadPaints:
        """For the session of the event that `request` (its handler's gr.Request) runs."""
        session_hash = request.session_hash if request else None
        return cls(lambda: _messages_waiting(session_hash))

    def nobody_reads(self) -> bool:
        """True once, at every look for `unread_for_s`, earlier messages were still waiting (a reader
        takes each as it comes, so at most the newest one waits)."""
        if self._waiting() < 2:
            self._unread_since = None
            return False
        now = self._clock()
        if self._unread_since is None:
            self._unread_since = now
        return now - self._unread_since >= self.unread_for_s


def _messages_waiting(session_hash: str | None) -> int:
    blocks = LocalContext.blocks.get(None)
    if blocks is None or session_hash is None or blocks._queue is None:
        return 0
    messages = blocks._queue.pending_messages_per_session.get(session_hash)
    return 0 if messages is None else messages.qsize()
