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


class GradioEndpoint:
    """One named endpoint of a running Gradio app, called the way its web page calls it."""

    def __init__(self, url: str, api_name: str):
        self._url = url.rstrip("/")
        config = httpx.get(f"{self._url}/config", timeout=30).json()
        dependency = next(d for d in config["dependencies"] if d.get("api_name") == api_name.lstrip("/"))
        types = {c["id"]: c["type"] for c in config["components"]}
        self._fn_index = dependency["id"]
        self._state_slots = [types[i] == "state" for i in dependency["inputs"]]

    def stream(self, *args, session: str | None = None) -> Iterator[tuple[float, dict]]:
        """Yield (seconds since the call, message) for every generating/completed message."""
        values = iter(args)
        data = [None if is_state else next(values) for is_state in self._state_slots]
        session = session or uuid.uuid4().hex
        started = time.perf_counter()
        httpx.post(
            f"{self._url}/gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": self._fn_index,
                "session_hash": session,
                "event_data": None,
                "trigger_id": None,
            },
            timeout=30,
        ).raise_for_status()
        with httpx.stream("GET", f"{self._url}/gradio_api/queue/data?session_hash={session}", timeout=600) as sse:
            for line in sse.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") in ("process_generating", "process_completed"):
                    yield time.perf_counter() - started, message
                if message.get("msg") == "process_completed":
                    return
