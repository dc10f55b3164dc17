"""Gradio's hand-offs to a worker thread that run nothing worth a thread, kept in the event loop.

A hand-off costs little CPU, but its result comes back only when the event loop next reaches it: with
hundreds of chats at once the loop is busy, and each hand-off is one more wait in line for every chat
(`bench.many_users --trace` counts them). Three a chat need no thread:
- Gradio's log-in check of every queue join and every event stream (and of its other routes): a plain
  function, so FastAPI hands it to a thread, though it only compares the user it is given (Gradio reads
  that user in a coroutine already);
- the start of an event whose function is an async generator (every streaming chat): Gradio calls that
  function in a thread, though calling it only binds its arguments; its body runs later, in the loop;
- at the end of every event, the queue's refresh of the summary its monitoring page shows: the console
  turns that page off, and with the refresh kept to once in a million events
  (`app.lighten_gradio_bookkeeping`) the call returns the summary it keeps.
"""

from __future__ import annotations

import inspect

import anyio.to_thread
import gradio.queueing

NEVER_BLOCK = frozenset({"login_check", "compute_analytics_summary"})  # Gradio's, by name


def keep_in_the_loop() -> None:
    """Run those in the event loop from now on; everything else still goes to its worker thread."""
    if getattr(anyio.to_thread.run_sync, "keeps_work_in_the_loop", False):
        return
    anyio.to_thread.run_sync = _in_the_loop(anyio.to_thread.run_sync)
    gradio.queueing.run_sync = _in_the_loop(gradio.queueing.run_sync)  # Gradio's queue imported it by name


def _in_the_loop(to_thread):
    async def run_sync(function, *args, **kwargs):  # kwargs are anyio's own options (limiter, ...)
        if _never_blocks(function):
            return function(*args)
        return await to_thread(function, *args, **kwargs)

    run_sync.keeps_work_in_the_loop = True
    return run_sync


def _never_blocks(function) -> bool:
    named = getattr(function, "func", function)  # Starlette hands a dependency over as a functools.partial
    return inspect.isasyncgenfunction(function) or getattr(named, "__name__", None) in NEVER_BLOCK
