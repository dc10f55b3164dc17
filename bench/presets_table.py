"""Presets side by side through the console's own Compare job, exported as it exports.

    python -m bench.presets_table cpu cpu-greedy --streams 2 --max-new-tokens 32
    python -m bench.presets_table --dir bench/gpu_presets pt-bf16 pt-kv8 pt-kv4 pt-awq --out docs/gpu-runs/x
    python -m bench.presets_table --dir bench/gpu_presets tm-7b-cache04 tm-7b-kv8 tm-7b-kv4 tm-7b-awq \\
        --load 256:1024:256 --no-agreement --out docs/gpu-runs/y
    python -m bench.presets_table --dir bench/gpu_presets tm-7b-bf16 tm-7b-cache04 tm-7b-kv8 tm-7b-kv4 \
        --load 256:1024:256 --sweep 1,4,16,64,256 --goodput 1000:20 --no-agreement --out docs/gpu-runs/z

The same job the Compare tab runs (switch, warm up, greedy prompts, N at once, perplexity,
next-token agreement with the first preset, exact match on questions, a load test); prints its
Markdown table and, with --out PREFIX, writes PREFIX.csv / .json / .md. `bench.raw_engine` then
measures the same presets with LMDeploy alone and sets the two side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from compare import report
from compare.load import GoodputTarget, LoadSettings, parse_sweep
from compare.prompts import builtin_prompts
from compare.quality import builtin_questions, load_questions
from compare.runner import CompareSettings, run_comparison
from console.core import Console
from console.engine_state import NoEngine
from console.jobs import Job
from presets.store import PresetCatalog
from telemetry.vram import VramSampler


def load_settings(text: str | None, sweep: str | None, goodput: str | None) -> LoadSettings | None:
    """REQUESTS:PROMPT_TOKENS:OUTPUT_TOKENS[:IN_FLIGHT], a sweep's "1,4,16" and goodput's TTFT_MS:USER_TPS
    -> the LoadSettings the Compare tab would make of the same fields."""
    if not text:
        return None
    numbers = [int(part) for part in text.split(":")]
    target = GoodputTarget(*map(float, goodput.split(":"))) if goodput else None
    return LoadSettings(*numbers[:3], numbers[3] if len(numbers) > 3 else None, parse_sweep(sweep or ""), target)


def questions(source: str | None) -> tuple[tuple, str]:
    if not source:
        return (), ""
    if source == "builtin":
        return tuple(builtin_questions()), "the built-in questions"
    return tuple(load_questions(Path(source).read_text(encoding="utf-8"), source)), source


async def run(args) -> str:
    catalog = PresetCatalog(user_dir=Path(args.dir)) if args.dir else PresetCatalog()
    console = Console(NoEngine("not started"), "benchmark", catalog=catalog, sampler=VramSampler().start())
    prompts = builtin_prompts()
    asked, source = questions(args.questions)
    settings = CompareSettings(
        tuple(args.presets),
        tuple(prompts[name] for name in args.prompts),
        args.max_new_tokens,
        args.streams,
        perplexity=args.perplexity,
        agreement=args.agreement,
        questions=asked,
        questions_source=source,
        load=load_settings(args.load, args.sweep, args.goodput),
        second_turn=args.second_turn,
    )
    job = Job("comparison", lambda job: run_comparison(console, settings, job))
    started = time.monotonic()
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
    return report.to_markdown(comparison) + f"\n\nThe whole job took {time.monotonic() - started:.0f} s."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--dir", help="a folder of extra preset files (as for LMDEPLOY_CONSOLE_PRESETS)")
    parser.add_argument("--prompts", nargs="+", default=["short story", "math", "long context", "tool call"])
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--no-perplexity", dest="perplexity", action="store_false")
    parser.add_argument("--no-agreement", dest="agreement", action="store_false")
    parser.add_argument("--questions", help="'builtin', or a JSONL file of {question, answer} lines")
    parser.add_argument("--load", help="a load test: REQUESTS:PROMPT_TOKENS:OUTPUT_TOKENS[:IN_FLIGHT]")
    parser.add_argument("--sweep", help="with --load: requests in flight at each point, e.g. 1,4,16,64,256")
    parser.add_argument("--goodput", help="with --load: the target TTFT_MS:TOKENS_PER_S_PER_USER, e.g. 1000:20")
    parser.add_argument(
        "--second-turn", action="store_true", help="TTFT of a long system prompt sent twice (prefix caching)"
    )
    parser.add_argument("--out", help="write PREFIX.csv, PREFIX.json and PREFIX.md")
    args = parser.parse_args()
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
