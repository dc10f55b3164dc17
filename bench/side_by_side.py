"""Two presets loaded side by side, against each loaded alone, through the console's own Side by side code.

    python -m bench.side_by_side --pair cpu cpu-int8-dynamic --out docs/cpu-runs/x.md
    python -m bench.side_by_side --dir bench/gpu_presets --pair pt-bf16 pt-kv4 --pair tm-7b-cache04 tm-7b-kv4 --out y.md

For each pair A, B: A alone, B alone (each in a fresh console, then closed), then A running with B
loaded beside it (`console.side_b.load`), one greedy message answered by both at once, and B loaded
again beside A (what changing one side costs); then B alone once more with the KV reserve it had
beside A (the "same reserve" row). Per side: load seconds, the memory it holds (its worker's GPU
memory where it has one, else its weights), the KV reserve, the memory besides the KV reserve
(weights, activations, CUDA context: what must match the side loaded alone; the KV reserve is a
share of the memory free when a side loads, so B's is smaller beside A), and the round's TTFT and
decode rate (the two share the machine: not Compare's clean figures); then side B's load stage by
stage, alone, beside A and again (where a load beside A spends its time).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from backends import GenerationParams
from console.core import Console
from presets.store import PresetCatalog, to_yaml
from telemetry.vram import VramSampler

MIB = 2**20
MESSAGE = "Explain in a few sentences why the sky is blue."


@dataclass
class Held:
    """What one side holds once loaded."""

    load_s: float
    memory_mib: float
    kind: str  # "GPU" or "weights"
    kv_mib: float | None
    stages: tuple[tuple[str, float], ...]  # the load's (stage, seconds), in order

    @property
    def beside_kv_mib(self) -> float:
        return self.memory_mib - (self.kv_mib or 0)


def held(console: Console, backend, load_s: float, stages: tuple[tuple[str, float], ...]) -> Held:
    sample = console.sampler.sample()
    info = backend.info()
    kv = (info.details.get("kv_cache") or {}).get("bytes")
    gpu = sum(p.used_mib for g in sample.gpus for p in g.processes if backend.pid and p.pid == backend.pid)
    if gpu:
        return Held(load_s, gpu, "GPU", kv / MIB if kv else None, stages)
    return Held(load_s, (info.details.get("weights_bytes") or 0) / MIB, "weights", None, stages)


async def alone(catalog: PresetCatalog, name: str) -> Held:
    console = await Console.start_preset(name, catalog=catalog, sampler=VramSampler())
    try:
        switch = console.last_switch
        return held(console, console.backend, switch.load_seconds, switch.stages)
    finally:
        await console.close()


async def alone_with_reserve(catalog: PresetCatalog, name: str, lone: Held, beside: Held, folder: Path) -> Held | None:
    """`name` loaded alone with the KV reserve it had beside A: its share of the free memory scaled by the
    two reserves (each is that share of the memory free after the weights load), so that what a side holds
    beside its reserve can be set against the same preset with the same reserve, not a larger one."""
    if not (lone.kv_mib and beside.kv_mib):
        return None
    preset = catalog.get(name)
    share = (preset.cache_max_entry_count or 0.8) * beside.kv_mib / lone.kv_mib  # LMDeploy's own default 0.8
    path = folder / f"{name}-reserve-beside-a.yaml"
    path.write_text(to_yaml(preset.model_copy(update={"cache_max_entry_count": round(share, 4)})), encoding="utf-8")
    return await alone(catalog, str(path))


async def side_by_side(catalog: PresetCatalog, a: str, b: str, max_new_tokens: int):
    console = await Console.start_preset(a, catalog=catalog, sampler=VramSampler())
    try:
        switch_a = console.last_switch
        load = await console.side_b.load(b)
        side_b = held(console, console.side_b.backend, load.load_seconds, load.stages)
        side_a = held(console, console.backend, switch_a.load_seconds, switch_a.stages)  # read once B shares the card
        params = GenerationParams(temperature=0.0, max_new_tokens=max_new_tokens)
        round_ = console.side_b.start_round(MESSAGE, "", params, blind=False)
        async for _ in console.side_b.stream(round_):
            pass
        reload = await console.side_b.load(b)
        return side_a, side_b, round_, reload, load.notes
    finally:
        await console.close()


def stages_text(stages: tuple[tuple[str, float], ...]) -> str:
    return ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in stages) or "-"


def table(rows: list[str]) -> str:
    head = (
        "| pair | side | preset | load alone s | load beside s | B loaded again s | memory alone MiB | memory beside MiB "
        "| KV reserve alone / beside MiB | memory besides KV: alone / beside MiB (diff) | TTFT ms | tok/s | reply |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    return "\n".join([head, *rows])


def row(pair: str, side: str, name: str, lone: Held, beside: Held, reload_s: float | None, round_side) -> str:
    stats = round_side.turns[-1].stats
    kv = f"{lone.kv_mib:,.0f} / {beside.kv_mib:,.0f}" if lone.kv_mib and beside.kv_mib else "-"
    diff = (beside.beside_kv_mib - lone.beside_kv_mib) / lone.beside_kv_mib if lone.beside_kv_mib else 0.0
    reply = round_side.turns[-1].content.replace("\n", " ").replace("|", "/")[:60]
    return (
        f"| {pair} | {side} | {name} | {lone.load_s:.1f} | {beside.load_s:.1f} | "
        f"{'-' if reload_s is None else f'{reload_s:.1f}'} | {lone.memory_mib:,.0f} {lone.kind} | "
        f"{beside.memory_mib:,.0f} {beside.kind} | {kv} | {lone.beside_kv_mib:,.0f} / {beside.beside_kv_mib:,.0f} "
        f"({diff:+.1%}) | {stats.ttft_ms or 0:.0f} | {stats.tokens_per_s or 0:.1f} | {reply} |"
    )


async def run(args) -> str:
    catalog = PresetCatalog(user_dir=Path(args.dir)) if args.dir else PresetCatalog()
    rows, notes = [], []
    for a, b in args.pair:
        pair = f"{a} + {b}"
        started = time.monotonic()
        lone_a, lone_b = await alone(catalog, a), await alone(catalog, b)
        side_a, side_b, round_, reload, fit = await side_by_side(catalog, a, b, args.max_new_tokens)
        with tempfile.TemporaryDirectory() as folder:
            same_reserve = await alone_with_reserve(catalog, b, lone_b, side_b, Path(folder))
        rows.append(row(pair, "A", a, lone_a, side_a, None, round_.a))
        rows.append(row(pair, "B", b, lone_b, side_b, reload.load_seconds, round_.b))
        if same_reserve is not None:
            rows.append(row(pair, "B, same reserve alone", b, same_reserve, side_b, None, round_.b))
        notes.append(
            f"- {pair}: B's fit check said: {'; '.join(fit) or 'nothing'} ({time.monotonic() - started:.0f} s). "
            f"B's load, stage by stage: alone: {stages_text(lone_b.stages)}; beside A: {stages_text(side_b.stages)}; "
            f"again: {stages_text(reload.stages)}"
        )
        print(rows[-2], rows[-1], notes[-1], sep="\n", flush=True)
    return table(rows) + "\n\n" + "\n".join(notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=2, action="append", required=True, metavar=("A", "B"))
    parser.add_argument("--dir", help="a folder of extra preset files (as for LMDEPLOY_CONSOLE_PRESETS)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args()
    text = asyncio.run(run(args))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
