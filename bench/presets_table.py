"""Presets side by side: load time, VRAM, KV-cache capacity and decode speed, one run.

    python -m bench.presets_table cpu                      # shipped or saved preset names
    python -m bench.presets_table --dir bench/gpu_presets pt-bf16 pt-kv8 pt-kv4 tm-bf16 tm-kv8

Each preset is switched to through the console's own `Console.switch_preset`, warmed up,
then measured: decode tokens/s of one stream (median of the prompts) and the aggregate of
16 at once, greedy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from backends import GenerationParams
from bench.chat_overhead import PROMPTS, backend_sample, prompt_at
from console.core import Console, NoEngine
from presets.store import PresetCatalog
from telemetry.machine import describe_machine
from telemetry.vram import VramSampler

GIB = 2**30


async def measure(console: Console, name: str, params: GenerationParams, streams: int) -> list[str]:
    report = await console.switch_preset(name)
    backend = console.backend
    await backend_sample(backend, "Hello!", params)
    single = statistics.median([(await backend_sample(backend, p, params)).decode_tok_s for p in PROMPTS])
    started = time.perf_counter()
    batch = await asyncio.gather(*(backend_sample(backend, prompt_at(i), params) for i in range(streams)))
    aggregate = sum(s.tokens for s in batch) / (time.perf_counter() - started)
    details = console.state().info.details
    kv = details.get("kv_cache") or {}
    approx = "≈" if kv.get("source") == "estimate" else ""
    return [
        name,
        console.state().info.engine,
        f"{report.load_seconds:.1f}",
        f"{report.vram_after_mib / 1024:.2f}" if report.vram_after_mib is not None else "n/a",
        f"{details['weights_bytes'] / GIB:.2f}" if details.get("weights_bytes") else "n/a",
        f"{approx}{kv['bytes'] / GIB:.2f}" if kv.get("bytes") else "n/a",
        f"{approx}{kv['tokens']:,}" if kv.get("tokens") else "n/a",
        f"{single:.1f}",
        f"{aggregate:.1f}",
    ]


async def run(args) -> str:
    catalog = PresetCatalog(user_dir=Path(args.dir)) if args.dir else PresetCatalog()
    console = Console(NoEngine("not started"), "benchmark", catalog=catalog, sampler=VramSampler())
    params = GenerationParams(temperature=0, max_new_tokens=args.max_new_tokens)
    rows = []
    try:
        for name in args.presets:
            rows.append(await measure(console, name, params, args.streams))
    finally:
        await console.close()
    header = [
        "preset",
        "engine",
        "load (s)",
        "GPU used after (GiB)",
        "weights (GiB)",
        "KV cache (GiB)",
        "KV tokens",
        "decode tok/s, 1 stream",
        f"aggregate tok/s, {args.streams} streams",
    ]
    lines = [
        describe_machine(),
        "",
        f"Greedy, max_new_tokens {args.max_new_tokens}; ≈ marks TurboMind's estimated KV figures.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--dir", help="a folder of extra preset files (as for LMDEPLOY_CONSOLE_PRESETS)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--out")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
