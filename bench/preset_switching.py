"""Preset switching: load time and memory left behind over N switches, against the raw engine.

    python -m bench.preset_switching --dir bench/gpu_presets pt-bf16 pt-kv8 --switches 10
    python -m bench.preset_switching cpu fp32-cpu --dir FOLDER --switches 4

Layers, one after the other, each alternating between the two presets (`--layers`, `--rounds` to
run them all again, interleaved, so that drift in disk cache or clocks falls on every layer alike):
  console        `Console.switch_preset`: the old engine closes and the new one loads in the same
                 worker process where it closed cleanly, else in a fresh one;
  console-fresh  the same with a fresh worker process for every engine (the console before workers were reused,
                 and `LMDEPLOY_CONSOLE_REUSE_WORKER=0` now);
  raw            the same engine closed and built in this process, as a script would:
                 `pipe.close()` of the last one, then `lmdeploy.pipeline(...)` (for cpu presets, the
                 cpu backend); a switch's time includes the close, as the console's does.
After each load: its time and the memory in use (every GPU's through NVML; without a GPU, this
process's RSS and the engine worker's). Then the median switch (loads after the first) of each layer
against raw's (target: console within 1.5x), and where each console layer's time goes, stage by
stage, as the Presets tab shows them while a switch runs. Memory targets: after ten switches, GPU
memory within 256 MiB of the first load of the same preset; on the CPU, RSS within
100 MiB of it over 50 switches.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from backends import create_backend, kind_of
from backends.lmdeploy_process import WORKERS
from bench.cli import emit
from console.core import Console
from console.engine_state import NoEngine
from presets.store import PresetCatalog
from telemetry.machine import describe_machine
from telemetry.vram import VramSampler

TARGET_MIB = 256  # GPU memory
RSS_TARGET_MIB = 100


@dataclass
class Load:
    preset: str
    seconds: float
    used_mib: float
    stages: tuple[tuple[str, float], ...] = ()  # the console's: (stage, seconds)
    cold: bool = False  # the layer's first load of a round: nothing to switch from


def memory_mib(sampler: VramSampler) -> float:
    sample = sampler.sample()
    return sample.used_mib() if sample.gpus else sample.console_rss_mib


async def console_switches(catalog: PresetCatalog, names: list[str], count: int, reuse: bool = True) -> list[Load]:
    sampler = VramSampler()
    console = Console(NoEngine("not started"), "benchmark", catalog=catalog, sampler=sampler)
    WORKERS.enabled = reuse
    loads = []
    try:
        for i in range(count):
            report = await console.switch_preset(names[i % 2])
            loads.append(Load(report.preset, report.load_seconds, memory_mib(sampler), report.stages, cold=i == 0))
    finally:
        await console.close()
        WORKERS.enabled = True
    return loads


async def raw_loads(catalog: PresetCatalog, names: list[str], count: int) -> list[Load]:
    sampler = VramSampler()
    loads, close = [], None
    for i in range(count):
        spec = catalog.get(names[i % 2]).to_spec()
        started = time.perf_counter()
        if close:
            await close()
            gc.collect()
        close = await _build(spec)
        loads.append(Load(names[i % 2], time.perf_counter() - started, memory_mib(sampler), cold=i == 0))
    await close()
    return loads


LAYERS = {
    "console": lambda catalog, names, count: console_switches(catalog, names, count),
    "console-fresh": lambda catalog, names, count: console_switches(catalog, names, count, reuse=False),
    "raw": raw_loads,
}


async def _build(spec):
    """Build the preset's engine in this process; returns how to close it."""
    if not kind_of(spec).lmdeploy_engine:
        backend, _ = await create_backend(spec)
        return backend.close
    from lmdeploy import pipeline

    from backends.embedded_model import resolve_model_path
    from backends.lmdeploy_config import engine_config, resolve_engine

    model = str(resolve_model_path(spec.model))
    config = engine_config(spec.engine, resolve_engine(spec.engine, model))
    pipe = await asyncio.to_thread(pipeline, model, backend_config=config, log_level="ERROR")

    async def close():
        pipe.close()

    return close


def left_behind(loads: list[Load]) -> float:
    """The most any load sat above the first load of the same preset."""
    first = {}
    for load in loads:
        first.setdefault(load.preset, load.used_mib)
    return max(load.used_mib - first[load.preset] for load in loads)


def table(layers: dict[str, list[Load]], on_gpu: bool) -> str:
    """Each load of each layer side by side, the median switch against raw's, and the stage tables."""
    memory = "GPU memory in use" if on_gpu else "RSS"
    names = list(layers)
    loads = list(zip(*layers.values(), strict=True))
    lines = [
        describe_machine(),
        "",
        "| load | preset | " + " | ".join(f"{n}: load (s) | {n}: {memory} after (MiB)" for n in names) + " |",
        "|" + " --- |" * (2 + 2 * len(names)),
    ]
    for i, row in enumerate(loads):
        cells = " | ".join(f"{load.seconds:.1f} | {load.used_mib:.0f}" for load in row)
        lines.append(f"| {i + 1} | {row[0].preset} | {cells} |")
    target = f"target: within {TARGET_MIB if on_gpu else RSS_TARGET_MIB} MiB"
    behind = ", ".join(f"{n} {left_behind(layer):+.0f} MiB" for n, layer in layers.items())
    lines += ["", f"Most {memory} above the first load of the same preset: {behind} ({target}).", ""]
    lines += switch_medians(layers)
    for name, layer in layers.items():
        if any(load.stages for load in layer):
            lines += ["", *stage_table(name, layer)]
    return "\n".join(lines)


def switch_medians(layers: dict[str, list[Load]]) -> list[str]:
    """The median switch (every load but a round's first) of each layer, and its ratio to raw's."""
    medians = {
        name: statistics.median(load.seconds for load in layer if not load.cold) for name, layer in layers.items()
    }
    raw = medians.get("raw")
    lines = ["| layer | median switch (s) | x raw (target: console <= 1.5x) |", "| --- | --- | --- |"]
    for name, median in medians.items():
        ratio = f"{median / raw:.2f}x" if raw else "-"
        lines.append(f"| {name} | {median:.1f} | {ratio} |")
    return lines


def stage_table(layer: str, loads: list[Load]) -> list[str]:
    """Where a console switch's time goes: each stage's median seconds, per preset."""
    stages = list(dict.fromkeys(_stage_kind(stage) for load in loads for stage, _ in load.stages))
    lines = [
        f"Where a switch's time goes, {layer} (median seconds over the switches to each preset, first loads left out):",
        "",
        "| preset | " + " | ".join(stages) + " | total |",
        "|" + " --- |" * (len(stages) + 2),
    ]
    for preset in dict.fromkeys(load.preset for load in loads):
        switches = [load for load in loads if load.preset == preset and not load.cold] or [
            load for load in loads if load.preset == preset
        ]
        mine = [{_stage_kind(stage): spent for stage, spent in load.stages} for load in switches]
        cells = [_median([spent[stage] for spent in mine if stage in spent]) for stage in stages]
        total = _median([load.seconds for load in switches])
        lines.append(f"| {preset} | " + " | ".join(cells) + f" | {total} |")
    return lines


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def _stage_kind(stage: str) -> str:
    """A stage without its particulars ("reusing the engine worker (...; engine 3)"), to line up loads."""
    return stage.split(" (")[0]


async def run(args) -> str:
    catalog = PresetCatalog(user_dir=Path(args.dir)) if args.dir else PresetCatalog()
    names = [args.first, args.second]
    layers: dict[str, list[Load]] = {name: [] for name in args.layers}
    for _ in range(args.rounds):
        for name in args.layers:
            layers[name] += await LAYERS[name](catalog, names, args.switches)
    return table(layers, on_gpu=bool(VramSampler().sample().gpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--dir", help="a folder of extra preset files (as for LMDEPLOY_CONSOLE_PRESETS)")
    parser.add_argument("--switches", type=int, default=10, help="loads per layer and round")
    parser.add_argument("--layers", nargs="+", choices=list(LAYERS), default=["console", "raw"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    emit(report, args.out)


if __name__ == "__main__":
    main()
