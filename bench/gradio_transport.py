"""Gradio's own streaming floor, no model: a generator yielding every 50 ms.

    python -m bench.gradio_transport

Prints when the 1st, 5th and last outputs arrive through the raw SSE stream (what a
browser reads) and through gradio_client; then, through the raw stream, the median first
and last output when 1, 4 or 16 streams start at once (each its own session, the event
with no concurrency limit, as the console's chat): what Gradio alone adds under load.
On an H100 machine (Python 3.12, gradio 6.31.0, gradio_client 2.7.2) gradio_client handed
every output over at once when the stream ended (342 / 342 / 2233 ms) while the raw stream
arrived every 50 ms; figures for both machines are in docs/results.md.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import gradio as gr

from bench.gradio_stream import GradioEndpoint
from telemetry.machine import describe_machine

TICKS = 30
CONCURRENCY = (1, 4, 16)


async def _ticks(_message):
    for i in range(TICKS):
        yield "x" * i
        await asyncio.sleep(0.05)


def _arrivals_ms(times: list[float]) -> str:
    return " / ".join(f"{times[i] * 1000:.0f}" for i in (0, 4, -1))


def main() -> None:
    from gradio_client import Client

    from tests.conftest import free_port

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(_ticks, box, out, api_name="ticks", concurrency_limit=None)
    port = free_port()
    demo.queue().launch(server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    endpoint = GradioEndpoint(url, "ticks")
    client = Client(url, verbose=False)
    print(describe_machine())
    print("| run | raw SSE: 1st / 5th / last output (ms) | gradio_client: 1st / 5th / last (ms) |")
    print("| --- | --- | --- |")
    for run in range(1, 4):
        raw = _arrivals(endpoint)
        started, through_client = time.perf_counter(), []
        for _ in client.submit("go", api_name="/ticks"):
            through_client.append(time.perf_counter() - started)
        print(f"| {run} | {_arrivals_ms(raw)} | {_arrivals_ms(through_client)} |")
    print()
    print("| streams at once | median 1st output (ms) | median last output (ms) |")
    print("| --- | --- | --- |")
    for count in CONCURRENCY:
        with ThreadPoolExecutor(count) as pool:
            streams = list(pool.map(lambda _: _arrivals(endpoint), range(count)))
        first, last = (1000 * statistics.median(s[i] for s in streams) for i in (0, -1))
        print(f"| {count} | {first:.0f} | {last:.0f} |")
    demo.close()


def _arrivals(endpoint: GradioEndpoint) -> list[float]:
    """Seconds from the call to each output of one stream, from a session of its own."""
    return [elapsed for elapsed, _ in endpoint.stream("go")]


if __name__ == "__main__":
    main()
