"""Presets side by side through the console's own Compare job, exported as it exports.

    python -m bench.presets_table cpu cpu-greedy --streams 2 --max-new-tokens 32
    python -m bench.presets_table --dir bench/gpu_presets pt-bf16 pt-kv8 pt-kv4 pt-awq --out docs/gpu-runs/x

The same job the Compare tab runs (switch, warm up, greedy prompts, N at once, perplexity);
prints its Markdown table and, with --out PREFIX, writes PREFIX.csv / .json / .md.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from compare import report
from compare.prompts import builtin_prompts
from compare.runner import CompareSettings, run_comparison
from console.core import Console, NoEngine
from console.jobs import Job
from presets.store import PresetCatalog
from telemetry.vram import VramSampler


async def run(args) -> str:
    catalog = PresetCatalog(user_dir=Path(args.dir)) if args.dir else PresetCatalog()
    console = Console(NoEngine("not started"), "benchmark", catalog=catalog, sampler=VramSampler().start())
    prompts = builtin_prompts()
    settings = CompareSettings(
        tuple(args.presets), tuple(prompts[name] for name in args.prompts), args.max_new_tokens, args.streams
    )
    job = Job("comparison", lambda job: run_comparison(console, settings, job))
    try:
        status = await console.jobs.start(job).wait()
    finally:
        await console.close()
    if status.state != "done":
        raise SystemExit(f"comparison {status.state}: {status.error}\n" + "\n".join(status.log[-20:]))
    comparison = status.result
    if args.out:
        for suffix, write in report.EXPORTS.items():
            Path(f"{args.out}.{suffix}").write_text(write(comparison), encoding="utf-8")
    return report.to_markdown(comparison)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--dir", help="a folder of extra preset files (as for LMDEPLOY_CONSOLE_PRESETS)")
    parser.add_argument("--prompts", nargs="+", default=["short story", "math", "long context", "tool call"])
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--out", help="write PREFIX.csv, PREFIX.json and PREFIX.md")
    args = parser.parse_args()
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
