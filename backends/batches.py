"""Replies between processes, in batches: the engine worker's pipe and a room's engine host both send
everything one turn of their event loop replies as one message, and the receiving side's reader thread
hands a batch to its event loop with one wake-up (see `lmdeploy_worker` for the measurements behind both).

A reply is any tuple whose first field is the id of the request it answers (`rid`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Outbox:
    """Replies to send together: what one turn of `loop` replies goes as one message (`send(list)`),
    sent at the start of the next turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[list], None]):
        self._loop, self._send = loop, send
        self._pending: list = []

    def put(self, reply) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(reply)

    def flush(self) -> None:
        if self._pending:
            replies, self._pending = self._pending, []
            self._send(replies)


class Inbox:
    """One request's replies, handed from a reader thread to the requester's event loop; `last` are the
    reply types after which the request gets nothing more."""

    def __init__(self, loop: asyncio.AbstractEventLoop, last: tuple[type, ...]):
        self.loop, self._last = loop, last
        self._queue: asyncio.Queue = asyncio.Queue()
        self.ended = False

    def put(self, reply) -> None:
        _deliver(self.loop, [(self, reply)])

    async def get(self):
        reply = await self._queue.get()
        self.ended = isinstance(reply, self._last)
        return reply


def route(inboxes: dict[int, Inbox], replies: list) -> None:
    """Hand a batch of replies to their requests' inboxes (from a reader thread), waking each event loop
    once a batch: each wake-up is a write that may wait up to 5 ms for the GIL while that loop is busy.
    Replies to a request nobody waits for any more are dropped."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Inbox, object]]] = {}
    for reply in replies:
        if inbox := inboxes.get(reply[0]):
            by_loop.setdefault(inbox.loop, []).append((inbox, reply))
    for loop, deliveries in by_loop.items():
        _deliver(loop, deliveries)


def _deliver(loop: asyncio.AbstractEventLoop, deliveries: list[tuple[Inbox, object]]) -> None:
    try:
        loop.call_soon_threadsafe(_receive_all, deliveries)
    except RuntimeError:  # its event loop is closed (the process is exiting): nobody is reading
        pass


def _receive_all(deliveries: list[tuple[Inbox, object]]) -> None:
    for inbox, reply in deliveries:
        inbox._queue.put_nowait(reply)
