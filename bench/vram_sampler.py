"""What the VRAM sampler costs: one sample's time, and decode tokens/s with it on and off.

    python -m bench.vram_sampler --backend cpu
    python -m bench.vram_sampler --backend lmdeploy --engine pytorch --max-new-tokens 256

Targets (issue 4): a sample costs <= 1 ms; the sampler running at 1 Hz changes decode
tokens/s by <= 1%. On and off alternate, so drift hits both alike.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from backends import GenerationParams, create_backend
from bench.chat_overhead import PROMPTS, backend_sample
from bench.cli import backend_parser, backend_spec
from telemetry.machine import describe_machine
from telemetry.vram import VramSampler


def sample_cost_ms(sampler: VramSampler, count: int = 300) -> tuple[float, float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        sampler.sample()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


async def decode_rates(args, sampler: VramSampler) -> tuple[list[float], list[float]]:
    backend, _ = await create_backend(backend_spec(args))
    params = GenerationParams(temperature=0, max_new_tokens=args.max_new_tokens)
    sampler.name_process(getattr(backend, "pid", None), "engine worker")
    on, off = [], []
    try:
        await backend_sample(backend, "Hello!", params)  # warm-up
        for round_ in range(args.rounds):
            running = round_ % 2 == 0
            if running:
                sampler.start()  # resumes sampling at 1 Hz
            else:
                sampler.pause()
            for prompt in PROMPTS:
                (on if running else off).append((await backend_sample(backend, prompt, params)).decode_tok_s)
    finally:
        sampler.stop()
        await backend.close()
    return on, off


def main() -> None:
    parser = backend_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    sampler = VramSampler(interval_s=1.0)
    median_ms, p99_ms = sample_cost_ms(sampler)
    gpus = len(sampler.latest().gpus)
    on, off = asyncio.run(decode_rates(args, sampler))
    rate_on, rate_off = statistics.median(on), statistics.median(off)
    print(describe_machine())
    print(
        f"\n`{args.backend}` backend, engine `{args.engine}`, {len(PROMPTS)} prompts x {args.rounds // 2} rounds "
        f"each way, greedy, max_new_tokens {args.max_new_tokens}; {gpus} GPU(s) sampled.\n"
    )
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    print(f"| one sample, median / p99 | {median_ms:.3f} / {p99_ms:.3f} ms | <= 1 ms |")
    print(f"| decode tok/s, sampler off (median) | {rate_off:.1f} | |")
    print(f"| decode tok/s, sampler on at 1 Hz (median) | {rate_on:.1f} | |")
    print(f"| change | {100 * (rate_on - rate_off) / rate_off:+.2f}% | within ±1% |")


if __name__ == "__main__":
    main()
