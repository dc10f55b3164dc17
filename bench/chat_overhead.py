"""What the console adds on top of the engine: TTFT and decode tokens/s, in one run.

    python -m bench.chat_overhead --backend cpu
    python -m bench.chat_overhead --backend lmdeploy --engine turbomind --concurrency 16 --max-new-tokens 256

Same prompts and greedy decoding through up to five layers, all loaded at once:
  engine   the raw engine in this process: `lmdeploy.pipeline(...).stream_infer`, or for
           cpu the transformers backend itself;
  backend  (lmdeploy only) the console's backend: the pipeline in its worker process;
  console  the running console (`app.py`), read through Gradio's SSE stream as a browser does,
           each chat from a page opened first (see `GradioEndpoint.open_page`);
  relay    with `--relay`, the backend behind the barest Gradio chat (`bench/gradio_relay.py`),
           read the same way: Gradio's floor with the engine in it;
  baseline with `--baseline DIR`, the console of another checkout (`git worktree add DIR REV`)
           read the same way: a change's before and after in the same rounds.
Each layer first warms up with one prompt and one batch of N. Rounds interleave the layers
(each round: every layer's prompts one at a time, then every layer's N at once), so drift on
the machine hits all layers alike; the table gives medians over rounds, the spread of the
per-round ratio to the engine, and the median TTFT of the N at once (what people see under
load). With lmdeploy every layer gets `--cache-max-entry-count` (default 0.2) so the
engines share one GPU.
Prints a Markdown table with the machine and versions; `--out FILE` also writes it there.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from backends import KINDS, ChatRequest, GenerationParams, TextDelta, Usage, create_backend
from bench.cli import backend_parser, backend_spec, emit
from bench.stream_layers import PROMPTS, Batch, ConsoleLayer, GradioChatLayer, Sample, prompts_at_once
from telemetry.machine import describe_machine


@dataclass
class Results:
    """One layer's measurements, kept per round so ratios can be taken round by round."""

    name: str
    rounds: list[list[Sample]] = field(default_factory=list)
    aggregates: list[float] = field(default_factory=list)
    loaded_ttfts_ms: list[float] = field(default_factory=list)  # median TTFT of each round's N at once

    def ttft_ms(self, round_: int | None = None) -> float:
        return 1000 * statistics.median(s.ttft_s for s in self._samples(round_))

    def decode_tok_s(self, round_: int | None = None) -> float:
        return statistics.median(s.decode_tok_s for s in self._samples(round_))

    def _samples(self, round_: int | None) -> list[Sample]:
        return self.rounds[round_] if round_ is not None else [s for r in self.rounds for s in r]


# --- engine: lmdeploy.pipeline in this process ---------------------------------------------


class PipelineLayer:
    name = "engine: lmdeploy.pipeline in-process"

    def __init__(self, args, params: GenerationParams):
        from lmdeploy import pipeline

        from backends.embedded_model import resolve_model_path
        from backends.lmdeploy_config import engine_config, generation_config, resolve_engine

        model = str(resolve_model_path(args.model))
        options = backend_spec(args).engine
        self._pipe = pipeline(
            model, backend_config=engine_config(options, resolve_engine(options, model)), log_level="ERROR"
        )
        self._gen = generation_config(params)

    async def run(self, prompts: list[str]) -> Batch:
        # blocks the event loop, which has nothing else to do while this layer has its turn
        return self._run(prompts)

    def _run(self, prompts: list[str]) -> Batch:
        started = time.perf_counter()
        first: dict[int, float] = {}
        tokens: dict[int, int] = {}
        done: dict[int, float] = {}
        messages = [[{"role": "user", "content": p}] for p in prompts]
        for response in self._pipe.stream_infer(messages, gen_config=self._gen):
            now = time.perf_counter() - started
            if response.text and response.index not in first:
                first[response.index] = now
            tokens[response.index] = response.generate_token_len
            if response.finish_reason:
                done[response.index] = now
        return Batch([Sample(first[i], tokens[i], done[i]) for i in range(len(prompts))], time.perf_counter() - started)

    async def close(self) -> None:
        self._pipe.close()


# --- backend: the console's backend object, in this process --------------------------------


class BackendLayer:
    def __init__(self, backend, name: str, params: GenerationParams):
        self.name, self.backend, self._params = name, backend, params

    @classmethod
    async def start(cls, args, name: str, params: GenerationParams) -> BackendLayer:
        backend, _ = await create_backend(backend_spec(args))
        return cls(backend, name, params)

    async def run(self, prompts: list[str]) -> Batch:
        started = time.perf_counter()
        samples = await asyncio.gather(*(self._sample(p) for p in prompts))
        return Batch(list(samples), time.perf_counter() - started)

    async def _sample(self, prompt: str) -> Sample:
        started = time.perf_counter()
        first, tokens = None, 0
        request = ChatRequest([{"role": "user", "content": prompt}], self._params)
        async for delta in self.backend.stream_chat(request):
            if isinstance(delta, TextDelta) and first is None:
                first = time.perf_counter()
            elif isinstance(delta, Usage):
                tokens = delta.completion_tokens
        return Sample(first - started, tokens, time.perf_counter() - started)

    async def close(self) -> None:
        await self.backend.close()


def bench_preset(args) -> dict:
    """The console's preset: the same backend, model, engine and KV share as the other layers."""
    preset = {"description": "chat_overhead benchmark", "backend": args.backend, "model": args.model}
    if KINDS[args.backend].lmdeploy_engine:
        preset |= {"engine": args.engine, "cache_max_entry_count": args.cache_max_entry_count}
    return {k: v for k, v in preset.items() if v is not None}


# --- the run --------------------------------------------------------------------------------


async def start_layers(args, params: GenerationParams) -> list:
    if KINDS[args.backend].lmdeploy_engine:
        engine = PipelineLayer(args, params)
        backend = await BackendLayer.start(args, "backend: pipeline in its worker process", params)
        layers = [engine, backend]
    else:
        layers = [await BackendLayer.start(args, "engine: transformers on CPU, in-process", params)]
    log_dir = Path(args.log_dir)
    if args.relay:
        name = "Gradio alone around the backend: bench/gradio_relay.py, Gradio SSE"
        program, options = ("-m", "bench.gradio_relay"), relay_options(args)
        layers.append(await asyncio.to_thread(GradioChatLayer, name, params, log_dir, program, options))
    consoles = [("console: app.py, Gradio SSE", None)]
    if args.baseline:
        consoles.append((f"console of {args.baseline.name}: app.py, Gradio SSE", args.baseline))
    for name, root in consoles:
        layers.append(await asyncio.to_thread(ConsoleLayer, name, bench_preset(args), params, log_dir, root))
    return layers


def relay_options(args) -> list[str]:
    """bench/gradio_relay.py's options for the backend the other layers run."""
    options = ["--backend", args.backend, "--engine", args.engine]
    if args.model:
        options += ["--model", args.model]
    if args.cache_max_entry_count is not None:
        options += ["--cache-max-entry-count", str(args.cache_max_entry_count)]
    return options


async def measure(args, params: GenerationParams) -> list[Results]:
    layers = await start_layers(args, params)
    results = [Results(layer.name) for layer in layers]
    at_once = prompts_at_once(args.concurrency)
    try:
        for layer in layers:  # warm-up: the PyTorch engine captures a CUDA graph per batch size on first use
            await layer.run(["Hello!"])
            await layer.run(at_once)
        for _ in range(args.rounds):
            for layer, result in zip(layers, results, strict=True):
                result.rounds.append([(await layer.run([p])).samples[0] for p in PROMPTS[: args.prompts]])
            for layer, result in zip(layers, results, strict=True):
                batch = await layer.run(at_once)
                result.aggregates.append(batch.aggregate_tok_s)
                result.loaded_ttfts_ms.append(1000 * statistics.median(s.ttft_s for s in batch.samples))
    finally:
        for layer in layers:
            await layer.close()
    return results


def ratio_cell(values: list[float], base: list[float]) -> str:
    """Median ratio to the engine over rounds, and its range round by round."""
    ratios = [v / b for v, b in zip(values, base, strict=True)]
    return f"{statistics.median(ratios):.3f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def table(results: list[Results], args) -> str:
    base = results[0]
    rounds = range(args.rounds)
    lines = [
        f"`{args.backend}` backend, engine `{args.engine}`: {args.rounds} rounds, each {args.prompts} prompts one "
        f"at a time, then {args.concurrency} at once, layers interleaved; greedy, max_new_tokens "
        f"{args.max_new_tokens}"
        + (f", cache_max_entry_count {args.cache_max_entry_count} each" if KINDS[args.backend].lmdeploy_engine else "")
        + ". Ratios: median over rounds (lowest-highest round).",
        "",
        describe_machine(),
        "",
        "| layer | median TTFT (ms) | added TTFT (ms) | median decode tok/s | vs engine | "
        f"aggregate tok/s, {args.concurrency} streams | vs engine | median TTFT, {args.concurrency} streams (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        added = [result.ttft_ms(r) - base.ttft_ms(r) for r in rounds]
        decode = ratio_cell([result.decode_tok_s(r) for r in rounds], [base.decode_tok_s(r) for r in rounds])
        lines.append(
            f"| {result.name} | {result.ttft_ms():.1f} | {statistics.median(added):+.1f} "
            f"({min(added):+.0f} to {max(added):+.0f}) | {result.decode_tok_s():.1f} | {decode} | "
            f"{statistics.median(result.aggregates):.1f} | {ratio_cell(result.aggregates, base.aggregates)} | "
            f"{statistics.median(result.loaded_ttfts_ms):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = backend_parser(__doc__)
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--log-dir", default="/tmp")
    parser.add_argument("--relay", action="store_true", help="also measure the backend behind the barest Gradio chat")
    parser.add_argument("--baseline", type=Path, help="another checkout whose console is measured too")
    parser.add_argument("--out")
    args = parser.parse_args()
    if KINDS[args.backend].lmdeploy_engine and args.cache_max_entry_count is None:
        args.cache_max_entry_count = 0.2
    params = GenerationParams(temperature=0, max_new_tokens=args.max_new_tokens)
    report = table(asyncio.run(measure(args, params)), args)
    emit(report, args.out)


if __name__ == "__main__":
    main()
