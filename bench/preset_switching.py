"""Preset switching: load time and memory left behind over N switches, against the raw engine.

    python -m bench.preset_switching --dir bench/gpu_presets pt-bf16 pt-kv8 --switches 10
    python -m bench.preset_switching cpu fp32-cpu --dir FOLDER --switches 4

Two layers, one after the other, alternating between the two presets:
  console  `Console.switch_preset`: the old engine's worker process ends, the new one loads;
  raw      the same engine built and closed in this process, as a script would:
           `lmdeploy.pipeline(...)` then `pipe.close()` (for cpu presets, the cpu backend).
After each load: its time and the memory in use (every GPU's through NVML; without a GPU, this
process's RSS and the engine worker's). Then where the console's time goes, stage by stage (closing
the old engine, starting the worker, importing LMDeploy, building the engine), as the Presets tab
shows them while a switch runs. Targets: after ten switches, GPU memory within
256 MiB of the first load of the same preset (issue 8); on the CPU, RSS within 100 MiB of it over
50 switches (issue 17: the cpu backend now hands its freed weights back to the system on close;
before, glibc kept them and RSS grew by up to 900 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from backends import create_backend
from bench.cli import emit
from console.core import Console, NoEngine
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


def memory_mib(sampler: VramSampler) -> float:
    sample = sampler.sample()
    return sample.used_mib() if sample.gpus else sample.console_rss_mib


async def console_switches(catalog: PresetCatalog, names: list[str], count: int) -> list[Load]:
    sampler = VramSampler()
    console = Console(NoEngine("not started"), "benchmark", catalog=catalog, sampler=sampler)
    loads = []
    try:
        for i in range(count):
            report = await console.switch_preset(names[i % 2])
            loads.append(Load(report.preset, report.load_seconds, memory_mib(sampler), report.stages))
    finally:
        await console.close()
    return loads


async def raw_loads(catalog: PresetCatalog, names: list[str], count: int) -> list[Load]:
    sampler = VramSampler()
    loads = []
    for i in range(count):
        spec = catalog.get(names[i % 2]).to_spec()
        started = time.perf_counter()
        close = await _build(spec)
        loads.append(Load(names[i % 2], time.perf_counter() - started, memory_mib(sampler)))
        await close()
        gc.collect()
    return loads


async def _build(spec):
    """Build the preset's engine in this process; returns how to close it."""
    if spec.kind != "lmdeploy":
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


def table(console: list[Load], raw: list[Load], on_gpu: bool) -> str:
    memory = "GPU memory in use" if on_gpu else "RSS"
    lines = [
        describe_machine(),
        "",
        f"| load | preset | console: load (s) | console: {memory} after (MiB) | raw: build (s) | "
        f"raw: {memory} after (MiB) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i, (c, r) in enumerate(zip(console, raw, strict=True)):
        lines.append(
            f"| {i + 1} | {c.preset} | {c.seconds:.1f} | {c.used_mib:.0f} | {r.seconds:.1f} | {r.used_mib:.0f} |"
        )
    target = f"target: console within {TARGET_MIB if on_gpu else RSS_TARGET_MIB} MiB"
    lines += [
        "",
        f"Most {memory} above the first load of the same preset: console {left_behind(console):+.0f} MiB, "
        f"raw {left_behind(raw):+.0f} MiB ({target}).",
        "",
        *stage_table(console),
    ]
    return "\n".join(lines)


def stage_table(loads: list[Load]) -> list[str]:
    """Where a console switch's time goes: each stage's median seconds, per preset, beside the raw build."""
    stages = list(dict.fromkeys(stage for load in loads for stage, _ in load.stages))
    lines = [
        "Where a console switch's time goes (median seconds over the switches to each preset):",
        "",
        "| preset | " + " | ".join(stages) + " | total |",
        "|" + " --- |" * (len(stages) + 2),
    ]
    for preset in dict.fromkeys(load.preset for load in loads):
        mine = [dict(load.stages) for load in loads if load.preset == preset]
        cells = [_median([spent[stage] for spent in mine if stage in spent]) for stage in stages]
        total = _median([load.seconds for load in loads if load.preset == preset])
        lines.append(f"| {preset} | " + " | ".join(cells) + f" | {total} |")
    return lines


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


async def run(args) -> str:
    catalog = PresetCatalog(user_dir=Path(args.dir)) if args.dir else PresetCatalog()
    names = [args.first, args.second]
    console = await console_switches(catalog, names, args.switches)
    raw = await raw_loads(catalog, names, args.switches)
    return table(console, raw, on_gpu=bool(VramSampler().sample().gpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--dir", help="a folder of extra preset files (as for LMDEPLOY_CONSOLE_PRESETS)")
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    emit(report, args.out)


if __name__ == "__main__":
    main()
