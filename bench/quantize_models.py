"""Weight quantization through the console's own job, timed, with offline calibration.

    python -m bench.quantize_models SOURCE:OUTPUT:HOW [...] [--samples 128 --seqlen 2048]

HOW is an AWQ group size (64, 128) or a method (w8a8-int8, w8a8-fp8), e.g.
/tmp/models/SmolLM2-135M-Instruct:/tmp/models/smollm2-awq-g64:64. Prints one row a model:
time, weight files before and after, the engine that can load the result.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench.cli import emit
from console.core import Console
from console.engine_state import NoEngine
from console.jobs import Job
from presets.store import PresetCatalog
from quantize.job import QuantizeSettings, run_quantization
from telemetry.machine import describe_machine

MIB = 2**20


async def quantize(spec: str, samples: int, seqlen: int) -> list[str]:
    source, output, how = spec.split(":")
    method, group = ("awq", int(how)) if how.isdigit() else (how, 128)
    console = Console(NoEngine("none"), "bench", catalog=PresetCatalog(user_dir=Path(tempfile.mkdtemp())))
    settings = QuantizeSettings(
        model=Path(source),
        output=Path(output),
        preset_name=Path(output).name.lower(),
        group_size=group,
        method=method,
        samples=samples,
        seqlen=seqlen,
        unload_engine=False,
    )
    status = await console.jobs.start(Job("quantization", lambda job: run_quantization(console, settings, job))).wait()
    if status.state != "done":
        return [Path(source).name, how, "failed", status.error or status.state, "", "", ""]
    result = status.result
    return [
        Path(source).name,
        how,
        f"{result.seconds:.1f}",
        f"{result.weights_bytes_before / MIB:,.0f}",
        f"{result.weights_bytes_after / MIB:,.0f}",
        f"{result.weights_bytes_after / result.weights_bytes_before:.2f}",
        result.engine,
    ]


async def run(args) -> str:
    rows = [await quantize(spec, args.samples, args.seqlen) for spec in args.models]
    header = ["model", "AWQ group or method", "time (s)", "weights before (MiB)", "after (MiB)", "ratio", "loads on"]
    return "\n".join(
        [
            describe_machine(),
            "",
            f"Calibration: the built-in offline text, {args.samples} samples x {args.seqlen} tokens.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + " --- |" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="SOURCE:OUTPUT:HOW (an AWQ group size, or w8a8-int8, w8a8-fp8)")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--seqlen", type=int, default=2048)
    parser.add_argument("--out")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    emit(report, args.out)


if __name__ == "__main__":
    main()
