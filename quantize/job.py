"""The quantization job: LMDeploy's AWQ or SmoothQuant in a child process, followed line by line.

A child process because calibration needs the GPU memory the engine may hold, and because
Cancel must stop it at once (the process group is killed). On success the result becomes a
preset the user can switch to (`model_format: awq`; a W8A8 model is read by its own config).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from console.core import Console
from console.jobs import Job, JobFailed
from model_folders.folder import checkpoint_bytes, has_random_weights, mark_random_weights, read_model_config
from presets.schema import Preset
from presets.store import PresetError

from .calibration import CalibrationError, load_text
from .checks import plan
from .methods import METHODS
from .progress import parse_line

_ROOT = Path(__file__).resolve().parents[1]
_STATS_FILES = ("inputs_stats.pth", "outputs_stats.pth")  # calibration statistics, not needed to load


@dataclass(frozen=True)
class QuantizeSettings:
    """One quantization run (`method`: a key of `METHODS`). `model` and `output` are already
    resolved under the model roots; `group_size` is AWQ's alone."""

    model: Path
    output: Path
    preset_name: str
    group_size: int = 128
    samples: int = 128
    seqlen: int = 2048
    dtype: str = "auto"
    calibration_file: Path | None = None
    unload_engine: bool = True
    device: str = "cuda"
    method: str = "awq"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not 1 <= self.samples <= 1024:
            raise ValueError("calibration samples must be between 1 and 1024")
        if not 16 <= self.seqlen <= 8192:
            raise ValueError("calibration sequence length must be between 16 and 8192 tokens")
        if self.dtype not in ("auto", "float16", "bfloat16"):
            raise ValueError("dtype must be auto, float16 or bfloat16")


@dataclass(frozen=True)
class QuantizeResult:
    output: str
    preset: str
    engine: str
    seconds: float
    weights_bytes_before: int
    weights_bytes_after: int


async def run_quantization(console: Console, settings: QuantizeSettings, job: Job) -> QuantizeResult:
    """The job's work: check, free the GPU if asked, quantize, register the preset."""
    checked = plan(settings.model, settings.output, settings.group_size, settings.method)
    if not checked.ok:
        raise JobFailed("; ".join(checked.errors))
    try:
        load_text(settings.calibration_file)
    except CalibrationError as exc:
        raise JobFailed(str(exc)) from exc
    for note in checked.notes:
        job.log(note)
    snapshot = console.snapshot()
    started = time.monotonic()
    if settings.unload_engine:
        job.report(0.01, "unloading the engine to free its GPU memory")
        await console.unload("a quantization job needs the GPU memory; the engine comes back after it")
    try:
        await _quantize(settings, job)
    except BaseException:
        shutil.rmtree(settings.output, ignore_errors=True)  # half a model is worse than none
        raise
    finally:
        if settings.unload_engine:
            await console.restore_after_job(snapshot, job)
    for name in _STATS_FILES:
        (settings.output / name).unlink(missing_ok=True)
    if has_random_weights(settings.model):  # quantized noise is still noise: no quality figures for it
        mark_random_weights(settings.output)
    method = METHODS[settings.method]
    group = f" (group {settings.group_size})" if method.grouped else ""
    preset = Preset(
        description=f"{method.label}{group} of {settings.model.name}, quantized by the console on "
        f"{time.strftime('%Y-%m-%d')}",
        backend="lmdeploy",
        model=str(settings.output),
        model_format="awq" if settings.method == "awq" else "hf",
        engine=checked.engine,
    )
    try:
        console.catalog.save(settings.preset_name, preset)
    except PresetError as exc:
        raise JobFailed(f"the model is saved in {settings.output}, but the preset was not: {exc}") from exc
    return QuantizeResult(
        str(settings.output),
        settings.preset_name,
        checked.engine,
        time.monotonic() - started,
        checkpoint_bytes(settings.model),
        checkpoint_bytes(settings.output),
    )


async def _quantize(settings: QuantizeSettings, job: Job) -> None:
    layers = int(read_model_config(settings.model).get("num_hidden_layers") or 1)
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quantize.worker",
        json.dumps(arguments),
        cwd=_ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # Cancel kills the whole group, with any helper processes
    )
    job.report(0.02, f"loading {settings.model.name}")
    tail: deque[str] = deque(maxlen=30)
    assert process.stdout is not None  # a pipe, as asked above
    try:
        async for line in _lines(process.stdout):
            tail.append(line)
            if step := parse_line(line, layers):
                job.report(*step)
            if not line.startswith(("Move ", "Loading weights", "Writing model shards")):  # noise
                job.log(line)
        code = await process.wait()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if code != 0:
        raise JobFailed(explain_failure("\n".join(tail), settings))


async def _lines(stream: asyncio.StreamReader):
    """Lines of the child's output; tqdm's carriage-return updates count as lines too."""
    buffer = ""
    while chunk := await stream.read(4096):
        buffer += chunk.decode(errors="replace")
        *complete, buffer = buffer.replace("\r", "\n").split("\n")
        for line in complete:
            if line.strip():
                yield line.strip()
    if buffer.strip():
        yield buffer.strip()


def explain_failure(output: str, settings: QuantizeSettings) -> str:
    """What went wrong, in terms of what to change."""
    lowered = output.lower()
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    if "out of memory" in lowered:
        return (
            "the GPU ran out of memory: tick 'Unload the engine first', or lower the calibration samples "
            f"({settings.samples}) or sequence length ({settings.seqlen})"
        )
    if "not supported" in lowered:
        return f"LMDeploy cannot quantize this model's architecture: {last}"
    if "does not support bfloat16" in lowered:
        return "this device has no bfloat16: set dtype to float16"
    if "no space left on device" in lowered:
        return f"the disk is full: free space where {settings.output} lives, or pick another output folder"
    if "no nvidia driver" in lowered or "cuda" in lowered and "available" in lowered:
        return "AWQ calibration needs a CUDA GPU and none is usable here"
    return f"the quantization failed: {last}"
