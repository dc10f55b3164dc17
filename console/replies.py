"""The running engine's replies to chats: paced for repainting, marked on the VRAM timeline, and told why
they wait before their first token (a switch, a job, a full engine)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from backends import BackendError

from .chat import ChatSession, RepaintPacer, ReplyStats, Turn, stream_reply

if TYPE_CHECKING:
    from .core import Console

QUEUE_READ_EVERY_S = 1.0


class Replies:
    def __init__(self, console: Console):
        self._console = console
        self.pacer = RepaintPacer()  # shared by every reply of this console, side by side's included
        self._queue_read: tuple[float, asyncio.Future] | None = None  # the scheduler read waiting chats share

    async def stream(self, session: ChatSession) -> AsyncIterator[ChatSession]:
        """The running engine's reply to the session's last user turn, paced for repainting, with the
        generation marked on the VRAM timeline (see `console.chat.stream_reply`). Sent while the engine
        is being switched, it waits for the new one, saying so, then runs there (Stop ends the wait)."""
        console = self._console
        if console.switching is not None:
            async for painted in self._wait_for_switch(session):
                yield painted
            if session.turns[-1].role == "assistant":  # stopped while waiting
                return
        console.sampler.mark("generation started")
        try:
            async for painted in stream_reply(console.backend, session, self.pacer, self.why_waiting):
                yield painted
        finally:
            console.sampler.mark("generation ended")

    async def why_waiting(self) -> str | None:
        """Why a reply has no first token yet, where the console can tell: a job on the engine, or an
        engine whose scheduler holds requests back (read once a second for every waiting chat)."""
        job = self._console.current_job()
        if job is not None and not (status := job.status()).finished:
            return f"waiting: a {job.kind} is running ({status.message})"
        now = time.monotonic()
        if self._queue_read is None or now - self._queue_read[0] > QUEUE_READ_EVERY_S:
            read = asyncio.ensure_future(self._console.backend.scheduler_metrics())
            # every chat that awaited it may have had its first token by the time it fails: its error is
            # taken here, or asyncio logs "exception was never retrieved" once a second
            read.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._queue_read = (now, read)
        try:
            metrics = await asyncio.shield(self._queue_read[1])
        except BackendError:
            return None
        if metrics is not None and metrics.waiting:
            return f"waiting: the engine is full: {metrics.waiting} requests wait in its queue"
        return None

    async def _wait_for_switch(self, session: ChatSession) -> AsyncIterator[ChatSession]:
        """A reply that says what it waits for, repainted every second until the switch ends; it is
        taken away then, or kept as stopped if Stop ended the wait."""
        stats = ReplyStats()
        waiting = Turn("assistant", "", stats)
        session.turns.append(waiting)
        session.reply_task = asyncio.create_task(self._console.switch_ended.wait())
        while not session.reply_task.done():
            progress = self._console.switching
            stats.waiting = f"waits for the engine, {progress.describe()}" if progress else "starting"
            yield session
            await asyncio.wait({session.reply_task}, timeout=1.0)
        if session.reply_task.cancelled():
            stats.finish = "stopped"
            yield session
            return
        session.turns.remove(waiting)
