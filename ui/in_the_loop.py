"""Two of Gradio's hand-offs to a worker thread that run nothing worth a thread, kept in the event loop.

A hand-off costs little CPU, but its result comes back only when the event loop next reaches it: with
hundreds of chats at once the loop is busy, and each hand-off is one more wait in line for every chat
(`bench.many_users --trace` counts them). Gradio makes two per chat that need no thread:
- it starts an event whose function is an async generator (every streaming chat) by calling that
  function in a thread; calling an async generator function only binds its arguments, its body runs
  later, in the loop, as Gradio iterates it;
- at the end of every event its queue refreshes the summary of recent events that its monitoring page
  shows; the console turns that page off, and with the refresh kept to once in a million events
  (`app.lighten_gradio_bookkeeping`) the call returns the summary it keeps.
"""

from __future__ import annotations

import inspect

import anyio.to_thread
import gradio.queueing

_SUMMARY = "compute_analytics_summary"


def keep_in_the_loop() -> None:
    """Run both in the event loop from now on; everything else still goes to its worker thread."""
    if getattr(anyio.to_thread.run_sync, "keeps_generators_in_the_loop", False):
        return
    to_thread = anyio.to_thread.run_sync
    queue_to_thread = gradio.queueing.run_sync  # Gradio's queue imported anyio's by name

    async def run_sync(function, *args, **kwargs):
        if inspect.isasyncgenfunction(function):
            return function(*args)
        return await to_thread(function, *args, **kwargs)

    async def queue_run_sync(function, *args, **kwargs):
        if getattr(function, "__name__", None) == _SUMMARY:
            return function(*args, **kwargs)
        return await queue_to_thread(function, *args, **kwargs)

    run_sync.keeps_generators_in_the_loop = True
    anyio.to_thread.run_sync = run_sync
    gradio.queueing.run_sync = queue_run_sync
