"""The presets of a Compare export, measured again with LMDeploy alone, figure beside figure.

    python -m bench.presets_table --dir bench/gpu_presets tm-7b-cache04 tm-7b-kv4 --load 256:1024:256 --out X
    python -m bench.raw_engine X.json --dir bench/gpu_presets [--presets tm-7b-kv4] [--out X-raw.md]

For each preset, a fresh process (so that each starts on an empty GPU, as the console's worker
does) builds `lmdeploy.pipeline(...)` with the preset's engine config and measures what the
console's table shows, the way a script would: GPU memory in use after the load (NVML), batch-1
decode rate on the same greedy prompts (`Pipeline.stream_infer`), the KV capacity the engine
counts (the PyTorch engine's `num_gpu_blocks`; TurboMind reports none), and the same load test
sent as one batch (`Pipeline.infer`: the same prompts, exactly as many tokens out). The table gives
console / raw for each: the target is every ratio within 5% of 1. Run on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from pathlib import Path

from bench.cli import emit
from compare.load import LoadPrompts
from compare.prompts import builtin_prompts
from console.core import Console
from console.engine_state import NoEngine
from presets.store import PresetCatalog
from telemetry.machine import boot_id, describe_machine
from telemetry.timing import decode_rate

_WARMUP_TOKENS = 8


def _gpu_used_mib() -> float:
    import pynvml

    pynvml.nvmlInit()
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        return sum(pynvml.nvmlDeviceGetMemoryInfo(h).used for h in handles) / 2**20
    finally:
        pynvml.nvmlShutdown()


def _greedy(max_new_tokens: int, **extra):
    from lmdeploy import GenerationConfig

    return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, top_k=1, random_seed=0, **extra)


def _decode_tps(pipe, messages: list[dict], max_new_tokens: int) -> float | None:
    """Tokens after the first over the time after the first, as the console's table counts them."""
    first, tokens = None, 0
    for out in pipe.stream_infer(messages, gen_config=_greedy(max_new_tokens)):
        if first is None and out.generate_token_len:
            first = time.perf_counter()
        tokens = out.generate_token_len
    ended = time.perf_counter()
    return decode_rate(tokens, first, ended)


def measure(conn, model: str, options, engine: str, prompts: list[list[dict]], max_new_tokens: int, load) -> None:
    """In a fresh process: build the engine, measure, send the figures back."""
    from lmdeploy import pipeline

    from backends.lmdeploy_config import engine_config

    started = time.perf_counter()
    config = engine_config(options, engine)
    pipe = pipeline(model, backend_config=config, log_level="WARNING")
    figures = {"load_s": time.perf_counter() - started, "gpu_used_mib": _gpu_used_mib()}
    pipe.infer(prompts[0], gen_config=_greedy(_WARMUP_TOKENS))
    rates = [rate for messages in prompts if (rate := _decode_tps(pipe, messages, max_new_tokens))]
    figures["decode_tps"] = statistics.median(rates) if rates else None
    backend_config = pipe.async_engine.backend_config
    blocks = getattr(backend_config, "num_gpu_blocks", 0)
    block_size = getattr(backend_config, "block_size", 64)
    figures["kv_tokens"] = blocks * block_size if blocks and engine == "pytorch" else None
    if load:
        batch = [LoadPrompts().messages(i, load["prompt_words"]) for i in range(load["requests"])]
        pipe.infer(batch[:16], gen_config=_greedy(_WARMUP_TOKENS))  # capture the batch shapes first
        started = time.perf_counter()
        replies = pipe.infer(batch, gen_config=_greedy(load["output_tokens"], ignore_eos=True))
        elapsed = time.perf_counter() - started
        figures["load_requests_per_s"] = len(replies) / elapsed
        figures["load_output_tps"] = sum(r.generate_token_len for r in replies) / elapsed
    conn.send(figures)
    pipe.close()


def measure_in_child(*args) -> dict:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=measure, args=(send, *args))  # not a daemon: the engine starts its own
    process.start()
    send.close()
    try:
        figures = receive.recv()
    except EOFError:
        figures = {"error": f"the raw engine's process ended (exit code {process.exitcode})"}
    process.join(timeout=120)
    if process.is_alive():
        process.kill()
    return figures


_COMPARED = (
    ("GPU used after load (MiB)", "gpu_used_mib", "gpu_used_mib", 0),
    ("decode tok/s, 1 stream", "decode_tps", "decode_tps", 1),
    ("KV capacity (tokens)", "kv_tokens", "kv_tokens", 0),
    ("load: req/s", "load.requests_per_s", "load_requests_per_s", 2),
    ("load: output tok/s", "load.output_tps", "load_output_tps", 0),
)


def _console_value(result: dict, path: str):
    for key in path.split("."):
        result = (result or {}).get(key)
    return result


def side_by_side(console_results: list[dict], raw: dict[str, dict]) -> list[str]:
    header = ["preset", "engine"] + [f"{name}: console / raw (ratio)" for name, *_ in _COMPARED]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for result in console_results:
        figures = raw.get(result["preset"])
        if figures is None:
            continue
        cells = [result["preset"], result["engine"]]
        for _, console_path, raw_key, digits in _COMPARED:
            ours, theirs = _console_value(result, console_path), figures.get(raw_key)
            if ours is None or theirs is None:
                cells.append(f"{_fmt(ours, digits)} / {_fmt(theirs, digits)}")
            else:
                cells.append(f"{_fmt(ours, digits)} / {_fmt(theirs, digits)} ({ours / theirs:.3f}x)")
        if figures.get("error"):
            cells[2] = figures["error"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def same_run_or_exit(export: dict) -> None:
    """A ratio of the console to LMDeploy alone means something only on the same card, the same
    versions and the same boot (another boot can be another machine of the same kind)."""
    if export.get("machine") != describe_machine() or not export.get("boot_id") or export["boot_id"] != boot_id():
        raise SystemExit(
            f"this export was measured on another machine or before a restart ({export.get('machine')!r}, "
            f"boot {export.get('boot_id') or 'not recorded'}); here: {describe_machine()!r}, boot {boot_id()}. "
            "Run the Compare job and this benchmark in the same session on the same machine."
        )


def run(args) -> str:
    export = json.loads(Path(args.export).read_text(encoding="utf-8"))
    same_run_or_exit(export)
    catalog = PresetCatalog(user_dir=Path(args.dir)) if args.dir else PresetCatalog()
    console = Console(NoEngine("not started"), "benchmark", catalog=catalog)
    settings = export["settings"]
    prompts = [
        case.messages for name, case in builtin_prompts().items() if name in settings["prompts"] and not case.tools
    ]
    wanted = args.presets or [r["preset"] for r in export["results"] if not r["error"]]
    raw = {}
    for result in export["results"]:
        if result["preset"] not in wanted:
            continue
        preset, verdict, _ = console.checks.vet(result["preset"])
        spec = preset.to_spec()
        load = dict(settings["load"], prompt_words=result["load"]["prompt_words"]) if result.get("load") else None
        model = result["model"]
        raw[result["preset"]] = measure_in_child(
            model, spec.engine, verdict.engine, prompts, settings["max_new_tokens"], load
        )
        print(result["preset"], raw[result["preset"]], flush=True)
    return "\n".join(
        [
            f"Console (Compare job, {export['started']}) against LMDeploy alone on: {describe_machine()}",
            "",
            *side_by_side(export["results"], raw),
            "",
            "Raw: a fresh process per preset, `pipeline()` with the preset's engine config; decode is the "
            "median over the same greedy prompts; the load test is the same prompts sent as one `infer` batch.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", help="a Compare JSON export (bench.presets_table --out PREFIX writes PREFIX.json)")
    parser.add_argument("--dir", help="the folder of preset files the comparison used")
    parser.add_argument("--presets", nargs="+", help="only these presets of the export")
    parser.add_argument("--out")
    args = parser.parse_args()
    emit(run(args), args.out)


if __name__ == "__main__":
    main()
