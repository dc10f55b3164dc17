"""What the console adds on top of the raw backend: TTFT and decode tokens/s, same run.

    python -m bench.chat_overhead --backend cpu
    python -m bench.chat_overhead --backend lmdeploy --engine pytorch --concurrency 16 --max-new-tokens 256

First the backend alone (`stream_chat` in this process), then the same backend behind the
running console, driven through `gradio_client` streaming, same prompts, greedy decoding.
Prints a Markdown table with the machine and versions; `--out FILE` also writes it there.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from backends import BackendSpec, ChatRequest, EngineOptions, GenerationParams, TextDelta, Usage, create_backend
from bench.machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]
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


def console_args(args) -> list[str]:
    cli = ["--backend", args.backend, "--engine", args.engine]
    if args.model:
        cli += ["--model", args.model]
    return cli


async def raw_sample(backend, prompt: str, params: GenerationParams) -> Sample:
    started = time.perf_counter()
    first, tokens = None, 0
    async for delta in backend.stream_chat(ChatRequest([{"role": "user", "content": prompt}], params)):
        if isinstance(delta, TextDelta) and first is None:
            first = time.perf_counter()
        elif isinstance(delta, Usage):
            tokens = delta.completion_tokens
    return Sample(first - started, tokens, time.perf_counter() - started)


async def measure_raw(args, params) -> tuple[list[Sample], float]:
    spec = BackendSpec(kind=args.backend, model=args.model, engine=EngineOptions(engine=args.engine))
    backend, _ = await create_backend(spec)
    try:
        await raw_sample(backend, "Hello!", params)  # warm-up
        samples = [await raw_sample(backend, p, params) for p in PROMPTS[: args.prompts]]
        started = time.perf_counter()
        batch = await asyncio.gather(
            *(raw_sample(backend, PROMPTS[i % len(PROMPTS)], params) for i in range(args.concurrency))
        )
        aggregate = sum(s.tokens for s in batch) / (time.perf_counter() - started)
    finally:
        await backend.close()
    return samples, aggregate


def console_sample(url: str, prompt: str, params: GenerationParams) -> Sample:
    from gradio_client import Client

    client = Client(url, verbose=False)
    started = time.perf_counter()
    job = client.submit(
        message=prompt,
        temperature=params.temperature,
        max_new_tokens=params.max_new_tokens,
        api_name="/chat",
    )
    first = None
    for chatbot, _ in job:
        if first is None and len(chatbot) == 2 and _text(chatbot[1]).strip():
            first = time.perf_counter()
    total = time.perf_counter() - started
    chatbot, _ = job.result()
    match = re.search(r"(\d+) tokens", _text(chatbot[-1]))
    return Sample(first - started, int(match.group(1)) if match else 0, total)


def _text(message: dict) -> str:
    return "".join(part.get("text", "") for part in message["content"])


def measure_console(args, params) -> tuple[list[Sample], float]:
    from tests.conftest import free_port, start_process, stop_process, wait_for_http

    port = free_port()
    log = Path(args.log_dir) / "bench-console.log"
    process = start_process([sys.executable, "app.py", *console_args(args), "--server-port", str(port)], log)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, process, log, timeout_s=1200)
        console_sample(url, "Hello!", params)  # warm-up
        samples = [console_sample(url, p, params) for p in PROMPTS[: args.prompts]]
        with ThreadPoolExecutor(args.concurrency) as pool:
            started = time.perf_counter()
            batch = list(pool.map(lambda i: console_sample(url, PROMPTS[i % len(PROMPTS)], params),
                                  range(args.concurrency)))
        aggregate = sum(s.tokens for s in batch) / (time.perf_counter() - started)
    finally:
        stop_process(process)
    return samples, aggregate


def table(raw, console, args) -> str:
    (raw_samples, raw_agg), (con_samples, con_agg) = raw, console

    def med(samples, key):
        return statistics.median(key(s) for s in samples)

    raw_ttft, con_ttft = med(raw_samples, lambda s: s.ttft_s * 1000), med(con_samples, lambda s: s.ttft_s * 1000)
    raw_tps, con_tps = med(raw_samples, lambda s: s.decode_tok_s), med(con_samples, lambda s: s.decode_tok_s)
    rows = [
        ("median TTFT, 1 stream (ms)", f"{raw_ttft:.1f}", f"{con_ttft:.1f}", f"+{con_ttft - raw_ttft:.1f} ms"),
        ("median decode tok/s, 1 stream", f"{raw_tps:.1f}", f"{con_tps:.1f}", f"{con_tps / raw_tps:.3f}x"),
        (f"aggregate tok/s, {args.concurrency} streams", f"{raw_agg:.1f}", f"{con_agg:.1f}", f"{con_agg / raw_agg:.3f}x"),
    ]
    lines = [
        f"Backend `{args.backend}` (engine {args.engine}), {args.prompts} prompts, greedy, "
        f"max_new_tokens {args.max_new_tokens}.",
        "",
        describe_machine(),
        "",
        "| metric | raw backend | through the console | console vs raw |",
        "| --- | --- | --- | --- |",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["cpu", "lmdeploy"], default="cpu")
    parser.add_argument("--engine", choices=["auto", "turbomind", "pytorch"], default="auto")
    parser.add_argument("--model")
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--log-dir", default="/tmp")
    parser.add_argument("--out")
    args = parser.parse_args()
    params = GenerationParams(temperature=0, max_new_tokens=args.max_new_tokens)
    raw = asyncio.run(measure_raw(args, params))
    console = measure_console(args, params)
    report = table(raw, console, args)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
