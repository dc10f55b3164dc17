"""What the console adds on top of the engine: TTFT and decode tokens/s, in one run.

    python -m bench.chat_overhead --backend cpu
    python -m bench.chat_overhead --backend lmdeploy --engine turbomind --concurrency 16 --max-new-tokens 256

Same prompts and greedy decoding through up to three layers, one after the other:
  engine   the raw engine in this process: `lmdeploy.pipeline(...).stream_infer`, or for
           cpu the transformers backend itself;
  backend  (lmdeploy only) the console's backend: the pipeline in its worker process;
  console  the running console (`app.py`), read through Gradio's SSE stream as a browser does.
Prints a Markdown table with the machine and versions; `--out FILE` also writes it there.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from backends import ChatRequest, GenerationParams, TextDelta, Usage, create_backend
from bench.cli import backend_parser, backend_spec
from bench.gradio_stream import GradioEndpoint
from telemetry.machine import describe_machine

PROMPTS = [
    "Write a long story about a lighthouse keeper.",
    "Explain how a bicycle works, in detail.",
    "Describe a walk through a forest in autumn.",
    "Write a letter to a friend about a journey by train.",
    "Tell the history of a small fishing village.",
]


@dataclass
class Sample:
    ttft_s: float
    tokens: int
    total_s: float

    @property
    def decode_tok_s(self) -> float:
        decode_s = self.total_s - self.ttft_s
        return (self.tokens - 1) / decode_s if decode_s > 0 and self.tokens > 1 else float("nan")


@dataclass
class Layer:
    name: str
    samples: list[Sample]
    aggregate_tok_s: float

    def median(self, key) -> float:
        return statistics.median(key(s) for s in self.samples)


def prompt_at(i: int) -> str:
    return PROMPTS[i % len(PROMPTS)]


# --- engine: lmdeploy.pipeline in this process ---------------------------------------------


def measure_pipeline(args, params: GenerationParams) -> Layer:
    from lmdeploy import pipeline

    from backends.embedded_model import resolve_model_path
    from backends.lmdeploy_config import engine_config, generation_config, resolve_engine

    model = str(resolve_model_path(args.model))
    options = backend_spec(args).engine
    pipe = pipeline(model, backend_config=engine_config(options, resolve_engine(options, model)), log_level="ERROR")
    gen = generation_config(params)

    def run(prompts: list[str]) -> list[Sample]:
        started = time.perf_counter()
        first: dict[int, float] = {}
        tokens: dict[int, int] = {}
        done: dict[int, float] = {}
        messages = [[{"role": "user", "content": p}] for p in prompts]
        for response in pipe.stream_infer(messages, gen_config=gen):
            now = time.perf_counter() - started
            if response.text and response.index not in first:
                first[response.index] = now
            tokens[response.index] = response.generate_token_len
            if response.finish_reason:
                done[response.index] = now
        return [Sample(first[i], tokens[i], done[i]) for i in range(len(prompts))]

    try:
        run(["Hello!"])  # warm-up
        samples = [run([p])[0] for p in PROMPTS[: args.prompts]]
        started = time.perf_counter()
        batch = run([prompt_at(i) for i in range(args.concurrency)])
        aggregate = sum(s.tokens for s in batch) / (time.perf_counter() - started)
    finally:
        pipe.close()
    return Layer("engine: lmdeploy.pipeline in-process", samples, aggregate)


# --- backend: the console's backend object, in this process --------------------------------


async def backend_sample(backend, prompt: str, params: GenerationParams) -> Sample:
    started = time.perf_counter()
    first, tokens = None, 0
    async for delta in backend.stream_chat(ChatRequest([{"role": "user", "content": prompt}], params)):
        if isinstance(delta, TextDelta) and first is None:
            first = time.perf_counter()
        elif isinstance(delta, Usage):
            tokens = delta.completion_tokens
    return Sample(first - started, tokens, time.perf_counter() - started)


async def measure_backend(args, params: GenerationParams, name: str) -> Layer:
    backend, _ = await create_backend(backend_spec(args))
    try:
        await backend_sample(backend, "Hello!", params)  # warm-up
        samples = [await backend_sample(backend, p, params) for p in PROMPTS[: args.prompts]]
        started = time.perf_counter()
        batch = await asyncio.gather(*(backend_sample(backend, prompt_at(i), params) for i in range(args.concurrency)))
        aggregate = sum(s.tokens for s in batch) / (time.perf_counter() - started)
    finally:
        await backend.close()
    return Layer(name, samples, aggregate)


# --- console: app.py in a subprocess, read through Gradio's SSE stream ---------------------


def console_sample(endpoint: GradioEndpoint, prompt: str, params: GenerationParams) -> Sample:
    knobs = (
        "",
        params.temperature,
        params.top_p,
        params.top_k,
        params.max_new_tokens,
        params.repetition_penalty,
        -1,
        "",
    )
    first, total, final = None, 0.0, None
    for elapsed, message in endpoint.stream(prompt, *knobs):
        if first is None:
            first = elapsed  # the chat paints for the first time when the first text arrives
        total, final = elapsed, message
    reply = final["output"]["data"][0][-1]["content"][0]["text"]
    match = re.search(r"(\d+) tokens", reply)
    return Sample(first, int(match.group(1)) if match else 0, total)


def measure_console(args, params: GenerationParams) -> Layer:
    from tests.conftest import free_port, start_process, stop_process, wait_for_http

    cli = ["--backend", args.backend, "--engine", args.engine] + (["--model", args.model] if args.model else [])
    port = free_port()
    log = Path(args.log_dir) / "bench-console.log"
    process = start_process([sys.executable, "app.py", *cli, "--server-port", str(port)], log)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, process, log, timeout_s=1200)
        endpoint = GradioEndpoint(url, "chat")
        console_sample(endpoint, "Hello!", params)  # warm-up
        samples = [console_sample(endpoint, p, params) for p in PROMPTS[: args.prompts]]
        with ThreadPoolExecutor(args.concurrency) as pool:
            started = time.perf_counter()
            batch = list(pool.map(lambda i: console_sample(endpoint, prompt_at(i), params), range(args.concurrency)))
        aggregate = sum(s.tokens for s in batch) / (time.perf_counter() - started)
    finally:
        stop_process(process)
    return Layer("console: app.py, Gradio SSE", samples, aggregate)


def table(layers: list[Layer], args) -> str:
    base = layers[0]
    base_ttft = base.median(lambda s: s.ttft_s * 1000)
    base_tps = base.median(lambda s: s.decode_tok_s)
    lines = [
        f"`{args.backend}` backend, engine `{args.engine}`: {args.prompts} prompts one at a time, then "
        f"{args.concurrency} at once; greedy, max_new_tokens {args.max_new_tokens}.",
        "",
        describe_machine(),
        "",
        "| layer | median TTFT (ms) | added TTFT (ms) | median decode tok/s | vs engine | "
        f"aggregate tok/s, {args.concurrency} streams | vs engine |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for layer in layers:
        ttft = layer.median(lambda s: s.ttft_s * 1000)
        tps = layer.median(lambda s: s.decode_tok_s)
        lines.append(
            f"| {layer.name} | {ttft:.1f} | {ttft - base_ttft:+.1f} | {tps:.1f} | {tps / base_tps:.3f}x | "
            f"{layer.aggregate_tok_s:.1f} | {layer.aggregate_tok_s / base.aggregate_tok_s:.3f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = backend_parser(__doc__)
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--log-dir", default="/tmp")
    parser.add_argument("--out")
    args = parser.parse_args()
    params = GenerationParams(temperature=0, max_new_tokens=args.max_new_tokens)
    if args.backend == "lmdeploy":
        layers = [
            measure_pipeline(args, params),
            asyncio.run(measure_backend(args, params, "backend: pipeline in its worker process")),
        ]
    else:
        layers = [asyncio.run(measure_backend(args, params, "engine: transformers on CPU, in-process"))]
    layers.append(measure_console(args, params))
    report = table(layers, args)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
