"""Gradio's own streaming floor, no model: a generator yielding every 50 ms, read two ways.

    python -m bench.gradio_transport

Prints when the 1st, 5th and last outputs arrive through the raw SSE stream (what a
browser reads) and through gradio_client. Measured so on an H100 machine (Python 3.12,
gradio 6.31.0, gradio_client 2.7.2): raw SSE 49 / 230 / 1547 ms, gradio_client 342 / 342 /
2233 ms, i.e. gradio_client handed every output over at once when the stream ended. On the
2-core CPU machine both streamed (raw SSE 48 / 228 / 1550 ms, gradio_client 87 / 265 / 1546).
"""

from __future__ import annotations

import asyncio
import time

import gradio as gr

from bench.gradio_stream import GradioEndpoint
from telemetry.machine import describe_machine

TICKS = 30


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
        box.submit(_ticks, box, out, api_name="ticks")
    port = free_port()
    demo.queue().launch(server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    endpoint = GradioEndpoint(url, "ticks")
    client = Client(url, verbose=False)
    print(describe_machine())
    print("| run | raw SSE: 1st / 5th / last output (ms) | gradio_client: 1st / 5th / last (ms) |")
    print("| --- | --- | --- |")
    for run in range(1, 4):
        raw = [elapsed for elapsed, _ in endpoint.stream("go")]
        started, through_client = time.perf_counter(), []
        for _ in client.submit("go", api_name="/ticks"):
            through_client.append(time.perf_counter() - started)
        print(f"| {run} | {_arrivals_ms(raw)} | {_arrivals_ms(through_client)} |")
    demo.close()


if __name__ == "__main__":
    main()
