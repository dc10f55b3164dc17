"""Gradio's own streaming floor, no model: a generator yielding every 50 ms.

    python -m bench.gradio_transport

Prints when the 1st, 5th and last outputs arrive through the raw SSE stream (what a
browser reads) and through gradio_client; then, through the raw stream, the median first
and last output when 1, 4 or 16 streams start at once (each its own session, the event
with no concurrency limit, as the console's chat): what Gradio alone adds under load.
On an H100 machine (Python 3.12, gradio 6.31.0, gradio_client 2.7.2) gradio_client handed
every output over at once when the stream ended (342 / 342 / 2233 ms) while the raw stream
arrived every 50 ms; figures for both machines are in docs/results.md.

The app runs in a process of its own, served as `app.py` serves the console (`app.serve`: queue
size, events at once, Gradio's bookkeeping), so that this floor and `bench.chat_overhead`'s
console layer are served and read alike: a server sharing the readers' interpreter, as this
benchmark once had it, pays for their threads too.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


def serve(port: int) -> None:
    """The bare generator's app, served as `app.py` serves the console."""
    import app

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(_ticks, box, out, api_name="ticks", concurrency_limit=None)
    app.serve(demo, server_port=port, quiet=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, metavar="PORT", help="(internal) serve the app on PORT")
    parser.add_argument("--log", type=Path, default=Path("/tmp/gradio-transport-server.log"))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    from tests.conftest import free_port, start_process, stop_process, wait_for_http

    port = free_port()
    server = start_process([sys.executable, "-m", "bench.gradio_transport", "--serve", str(port)], args.log)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, server, args.log)
        measure(url)
    finally:
        stop_process(server)


def measure(url: str) -> None:
    from gradio_client import Client

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


def _arrivals(endpoint: GradioEndpoint) -> list[float]:
    """Seconds from the call to each output of one stream, from a session of its own."""
    return [elapsed for elapsed, _ in endpoint.stream("go")]


if __name__ == "__main__":
    main()
