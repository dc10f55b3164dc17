"""A minimal client of Gradio's queue protocol: the same SSE stream a browser reads.

The benchmarks read it directly because gradio_client 2.7.2 was seen (H100 machine, Python
3.12) to hand back a generator's outputs only when the generator ended, even for a
plain-Gradio generator, while this SSE stream delivered them every 50 ms; see
`bench/gradio_transport.py`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx

from backends import GenerationParams

# The event the page's Send runs. `/chat` is the API's: the same handler, with the message box among
# its outputs, where the page's event leaves the box to the user while the reply streams.
PAGE_CHAT = "chat_from_page"


class GradioEndpoint:
    """One named endpoint of a running Gradio app, called the way its web page calls it.

    One `httpx.Client` serves every call and thread: a new client per call costs ~25 ms of CPU
    (it builds a TLS context even for http://), which with 16 reader threads sharing one GIL
    was once measured as the console's latency.
    """

    def __init__(self, url: str, api_name: str):
        self._url = url.rstrip("/")
        self._http = httpx.Client(timeout=httpx.Timeout(30, read=600), limits=httpx.Limits(max_connections=None))
        config = self._http.get(f"{self._url}/config").json()
        self._dependencies = config["dependencies"]
        self._types = {c["id"]: c["type"] for c in config["components"]}
        self.fn_index = next(d["id"] for d in self._dependencies if d.get("api_name") == api_name.lstrip("/"))

    def open_page(self, session: str) -> None:
        """Run the app's page-load events for `session`, as a browser does when it opens the page.

        Gradio builds a session's state on its first event (~20 ms of CPU here for the console's
        six tabs); a user has paid that before typing, so a benchmark of chats opens its pages first.
        """
        for dependency in self._dependencies:
            if any(trigger == "load" for _, trigger in dependency["targets"]):
                for _ in self.events(dependency["id"], [], session):
                    pass

    def stream(self, *args, session: str | None = None) -> Iterator[tuple[float, dict]]:
        """Yield (seconds since the call, message) for every generating/completed message."""
        return self.events(self.fn_index, args, session or uuid.uuid4().hex)

    def events(self, fn_index: int, args, session: str) -> Iterator[tuple[float, dict]]:
        """The same for any event of the app; `args` are its inputs' values but the State ones (the server
        holds those)."""
        started = time.perf_counter()
        self.join(fn_index, args, session)
        yield from self.read(session, started)

    def join(self, fn_index: int, args, session: str) -> None:
        """Queue the event for `session`, as the page does before it reads the session's event stream."""
        inputs = next(d["inputs"] for d in self._dependencies if d["id"] == fn_index)
        values = iter(args)
        data = [None if self._types[i] == "state" else next(values) for i in inputs]
        join = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
        self._http.post(  # as the page's JSON.stringify writes it: ASCII, a lone surrogate escaped
            f"{self._url}/gradio_api/queue/join",
            content=json.dumps(join),
            headers={"Content-Type": "application/json"},
        ).raise_for_status()

    def read(self, session: str, started: float) -> Iterator[tuple[float, dict]]:
        """The session's event stream up to the completion of its event."""
        with self._http.stream("GET", f"{self._url}/gradio_api/queue/data?session_hash={session}") as sse:
            for line in sse.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") in ("process_generating", "process_completed"):
                    yield time.perf_counter() - started, message
                if message.get("msg") == "process_completed":
                    return


def chat_knobs(params: GenerationParams) -> tuple:
    """The Chat tab's knobs as `/chat` (after the message) and `/regenerate` take them, in their order:
    no system prompt, the declared knobs, no seed, no stop words, no token probabilities."""
    return ("", *params.knob_values().values(), -1, "", False)


WAITING = "waiting for the first token"


def carries_reply_text(message: dict) -> bool:
    """Whether a chat paint carries reply text: the first paint comes at once, with the user's message
    and a reply still waiting for its first token; later paints are Gradio's diffs of text."""
    data = (message.get("output") or {}).get("data") or [None]
    chat = data[0]
    if isinstance(chat, list) and chat and isinstance(chat[-1], dict):  # a whole value, not a diff
        return WAITING not in str(chat[-1].get("content")) and chat[-1].get("role") == "assistant"
    return True
