"""What the VRAM sampler costs: one sample's time, and decode tokens/s with it on and off.

    python -m bench.vram_sampler --backend cpu
    python -m bench.vram_sampler --backend lmdeploy --engine turbomind --max-new-tokens 256 --rounds 8

Targets: a sample costs <= 1 ms; the sampler running at 1 Hz changes decode
tokens/s by <= 1%. Three conditions take turns, round by round, in a rotating order so
neither drift nor position favours one: off, on at the console's 1 Hz, and on at 20 Hz (a
stress case: if 20 samples a second are lost in the noise, one is). The change is taken
round by round against that round's "off", so slow drift cancels.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from backends import GenerationParams
from bench.chat_overhead import BackendLayer
from bench.cli import backend_parser
from bench.stream_layers import PROMPTS
from telemetry.machine import describe_machine
from telemetry.vram import VramSampler

CONDITIONS = {"off": None, "on, 1 Hz": 1.0, "on, 20 Hz": 0.05}


def sample_cost_ms(sampler: VramSampler, count: int = 300) -> tuple[float, float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        sampler.sample()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


async def decode_rates(args) -> dict[str, list[float]]:
    """Median decode tok/s of each round, per condition."""
    params = GenerationParams(temperature=0, max_new_tokens=args.max_new_tokens)
    layer = await BackendLayer.start(args, "backend", params)
    samplers = {name: VramSampler(interval_s=interval) for name, interval in CONDITIONS.items() if interval}
    for sampler in samplers.values():
        sampler.name_process(getattr(layer.backend, "pid", None), "engine worker")
    rates: dict[str, list[float]] = {name: [] for name in CONDITIONS}
    order = list(CONDITIONS)
    try:
        await layer.run(["Hello!"])  # warm-up
        for round_ in range(args.rounds):
            for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                for sampler_name, sampler in samplers.items():
                    if sampler_name == name:
                        sampler.start()
                    else:
                        sampler.pause()
                decode = [(await layer.run([p])).samples[0].decode_tok_s for p in PROMPTS]
                rates[name].append(statistics.median(decode))
    finally:
        for sampler in samplers.values():
            sampler.stop()
        await layer.close()
    return rates


def change_cell(rates: list[float], off: list[float]) -> str:
    changes = [100 * (r - o) / o for r, o in zip(rates, off, strict=True)]
    return f"{statistics.median(changes):+.2f}% ({min(changes):+.1f} to {max(changes):+.1f})"


def main() -> None:
    parser = backend_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    sampler = VramSampler()
    median_ms, p99_ms = sample_cost_ms(sampler)
    gpus = len(sampler.latest().gpus)
    rates = asyncio.run(decode_rates(args))
    print(describe_machine())
    print(
        f"\n`{args.backend}` backend, engine `{args.engine}`, {args.rounds} rounds of {len(PROMPTS)} prompts per "
        f"condition, greedy, max_new_tokens {args.max_new_tokens}; {gpus} GPU(s) sampled. Change: median over "
        'rounds of the change against the same round\'s "off" (lowest to highest round).\n'
    )
    print(f"One sample, median / p99: {median_ms:.3f} / {p99_ms:.3f} ms (target <= 1 ms).\n")
    print("| sampler | decode tok/s (median of rounds) | change vs off | target |")
    print("| --- | --- | --- | --- |")
    for name, values in rates.items():
        change = "" if name == "off" else change_cell(values, rates["off"])
        target = "within ±1%" if name == "on, 1 Hz" else ""
        print(f"| {name} | {statistics.median(values):.1f} | {change} | {target} |")


if __name__ == "__main__":
    main()
