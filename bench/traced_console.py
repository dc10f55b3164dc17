"""The console (`app.py`, same arguments) with each chat's way through it timed, step by step.

    python bench/traced_console.py --model ... --server-port 7860    # then: kill -USR1 PID; ...; kill -USR2 PID

Between SIGUSR1 and SIGUSR2 it notes, for every Chat-tab message (the `chat` and `chat_from_page` events), when
- its queue join reached the console (the first byte of the ASGI app),
- Gradio's queue took it (`Queue.push`), and the console answered the join,
- Gradio's queue started it (`Queue.process_events`),
- the chat's own code began (`ui.chat`'s reply stream),
- its first paint (the question) was handed to the page's event stream (`Queue.send_message`),
- the page asked for its event stream, which began (its HTTP response started),
- the event stream wrote that paint to the page's connection (ASGI send);
and, for the whole console, each hand-off of work to a worker thread and back (`anyio.to_thread.run_sync`,
which FastAPI and Gradio use for plain functions), by function: each one waits for the GIL while the event
loop holds it. SIGUSR2 writes each step's first, median and last time, in ms from the first join's arrival, to
$CONSOLE_PROFILE as a markdown table (`bench.many_users --trace` sends both signals around a round).
Unlike a profiler it costs the console next to nothing, so the round's own figures stand beside it.
"""

from __future__ import annotations

import os
import re
import runpy
import signal
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
STEPS = {
    "arrived": "the join reached the console",
    "pushed": "Gradio's queue took it",
    "answered": "the console answered the join",
    "started": "Gradio's queue started the event",
    "chat": "the chat's own code began",
    "handed": "the question's paint handed to the page's event stream",
    "asked": "the page asked for its event stream",
    "streaming": "the event stream began",
    "written": "the event stream wrote it to the page's connection",
}
SESSION_IN_BODY = re.compile(rb'"session_hash"\s*:\s*"([^"]+)"')


class Trace:
    """When each chat reached each step (monotonic seconds), while tracing is on."""

    def __init__(self):
        self.on = False
        self.chats: dict[str, dict[str, float]] = {}  # session -> step -> when (its first time)
        self.joins: dict[str, float] = {}  # session -> when its last join arrived (the chat's, once it is pushed)
        self.hand_offs: Counter[str] = Counter()  # function -> times it ran in a worker thread

    def start(self, *_) -> None:
        self.chats.clear()
        self.joins.clear()
        self.hand_offs.clear()
        self.on = True

    def note(self, session: str | None, step: str) -> None:
        if self.on and session in self.chats:
            self.chats[session].setdefault(step, time.monotonic())

    def chat_pushed(self, session: str) -> None:
        if self.on:
            self.chats.setdefault(session, {"arrived": self.joins.get(session, time.monotonic())})
            self.note(session, "pushed")

    def table(self) -> str:
        complete = list(self.chats.values())  # each from its push on, with its join's arrival
        if not complete:
            return "No chat was traced.\n"
        zero = min(steps["arrived"] for steps in complete)
        lines = [
            f"{len(complete)} chats; ms from the first chat's join reaching the console.",
            "",
            "| step | chats | first | median | last |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for step, meaning in STEPS.items():
            times = sorted((steps[step] - zero) * 1000 for steps in complete if step in steps)
            if times:
                lines.append(
                    f"| {meaning} | {len(times)} | {times[0]:,.0f} | {statistics.median(times):,.0f} | {times[-1]:,.0f} |"
                )
        lines += ["", f"Hand-offs to a worker thread and back: {sum(self.hand_offs.values())}", ""]
        lines += ["| function | times |", "| --- | ---: |"]
        lines += [f"| `{name}` | {times} |" for name, times in self.hand_offs.most_common()]
        return "\n".join(lines) + "\n"

    def write(self, *_) -> None:
        self.on = False
        Path(os.environ["CONSOLE_PROFILE"]).write_text(self.table(), encoding="utf-8")


TRACE = Trace()


CHAT_EVENTS = {"chat", "chat_from_page"}  # the API's and the page's Send


def _is_chat(block_function) -> bool:
    return getattr(block_function, "api_name", None) in CHAT_EVENTS


def _trace_the_asgi_app(app_class) -> None:
    """Joins as they arrive and are answered, and the first paint each page's event stream writes."""
    served = app_class.__call__

    async def traced(self, scope, receive, send):
        path = scope.get("path", "")
        if not TRACE.on or scope.get("type") != "http":
            return await served(self, scope, receive, send)
        if path.endswith("/queue/join"):
            arrived, session = time.monotonic(), []

            async def reading():
                message = await receive()
                if found := SESSION_IN_BODY.search(message.get("body", b"")):
                    session.append(found.group(1).decode())
                    TRACE.joins[session[0]] = arrived
                return message

            async def answering(message):
                if message["type"] == "http.response.start" and session:
                    TRACE.note(session[0], "answered")
                await send(message)

            return await served(self, scope, reading, answering)
        if path.endswith("/queue/data"):
            session = (parse_qs(scope.get("query_string", b"").decode()).get("session_hash") or [None])[0]
            TRACE.note(session, "asked")

            async def writing(message):
                await send(message)
                if message["type"] == "http.response.start":
                    TRACE.note(session, "streaming")
                if message["type"] == "http.response.body" and b'"process_generating"' in message.get("body", b""):
                    TRACE.note(session, "written")

            return await served(self, scope, receive, writing)
        return await served(self, scope, receive, send)

    app_class.__call__ = traced


def _trace_the_queue(queue_class) -> None:
    from gradio import route_utils
    from gradio.server_messages import ProcessGeneratingMessage

    push, process_events, send_message = queue_class.push, queue_class.process_events, queue_class.send_message

    async def traced_push(self, body, request, username):
        if _is_chat(route_utils.get_fn(self.blocks, None, body)):
            TRACE.chat_pushed(body.session_hash)
        return await push(self, body, request, username)

    async def traced_process_events(self, events, *args, **kwargs):
        if _is_chat(events[0].fn):  # not the same page's header tick, which may start meanwhile
            TRACE.note(events[0].session_hash, "started")
        return await process_events(self, events, *args, **kwargs)

    def traced_send_message(self, event, message):
        if isinstance(message, ProcessGeneratingMessage) and _is_chat(event.fn):
            TRACE.note(event.session_hash, "handed")
        return send_message(self, event, message)

    queue_class.push, queue_class.process_events = traced_push, traced_process_events
    queue_class.send_message = traced_send_message


def _trace_the_chat(chat_module) -> None:
    stream = chat_module._stream

    async def traced_stream(console, state, painter, request):
        TRACE.note(getattr(request, "session_hash", None), "chat")
        async for painted in stream(console, state, painter, request):
            yield painted

    chat_module._stream = traced_stream


def _count_hand_offs(to_thread) -> None:
    """Every call of `to_thread.run_sync` (Starlette's and Gradio's hand-offs go through it), by function."""
    run_sync = to_thread.run_sync

    async def counted(function, *args, **kwargs):
        if TRACE.on:
            named = getattr(function, "func", function)  # Starlette hands over a functools.partial
            TRACE.hand_offs[getattr(named, "__qualname__", type(named).__name__)] += 1
        return await run_sync(function, *args, **kwargs)

    to_thread.run_sync = counted


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, TRACE.start)
    signal.signal(signal.SIGUSR2, TRACE.write)
    sys.path.insert(0, str(ROOT))
    import anyio.to_thread

    _count_hand_offs(anyio.to_thread)  # before Gradio's modules import it by name
    import gradio.queueing
    import gradio.routes

    import ui.chat

    _trace_the_asgi_app(gradio.routes.App)
    _trace_the_queue(gradio.queueing.Queue)
    _trace_the_chat(ui.chat)
    sys.argv = [str(ROOT / "app.py"), *sys.argv[1:]]
    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
