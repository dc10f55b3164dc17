"""Will this preset load here? Checked before the running engine is touched.

The rules are facts measured with LMDeploy 0.18 (see ../shared/ARCHITECTURE.md):
TurboMind loads AWQ only with group size 128 and weight sizes divisible by it; TurboMind
with KV int4 aborted the process on a head_dim-64 model while the PyTorch engine ran it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from backends.lmdeploy_memory import head_dim, read_model_config
from backends.lmdeploy_tools import tool_parsers

from .schema import Preset

TURBOMIND_AWQ_GROUP = 128


@dataclass(frozen=True)
class Machine:
    """What the checks need to know about this machine."""

    gpu_count: int
    turbomind: bool  # TurboMind's library loads
    no_gpu_reason: str | None = None
    ray: bool = False  # the PyTorch engine runs tp > 1 through ray


@dataclass(frozen=True)
class Verdict:
    """Errors refuse the switch; notes are shown with it. `engine` is what will run."""

    errors: tuple[str, ...]
    notes: tuple[str, ...]
    engine: Literal["turbomind", "pytorch", "auto"]

    @property
    def ok(self) -> bool:
        return not self.errors


def check(preset: Preset, model_dir: Path | None, machine: Machine) -> Verdict:
    """Check an lmdeploy preset against its model's config and this machine."""
    errors: list[str] = []
    notes: list[str] = []
    if preset.tool_parser and preset.tool_parser not in tool_parsers():
        errors.append(f"tool_parser: {preset.tool_parser!r} is not one of LMDeploy's: {', '.join(tool_parsers())}")
    if preset.backend not in ("lmdeploy", "auto"):
        return Verdict(tuple(errors), (), preset.engine)
    if machine.gpu_count == 0:
        if preset.backend == "lmdeploy":
            errors.append(
                f"LMDeploy needs a CUDA GPU and none is usable here ({machine.no_gpu_reason}); use the cpu preset"
            )
        return Verdict(tuple(errors), tuple(notes), preset.engine)
    if preset.tp > machine.gpu_count:
        errors.append(f"tp: {preset.tp} needs {preset.tp} GPUs; this machine has {machine.gpu_count}")
    config = read_model_config(model_dir) if model_dir else {}
    quant = config.get("quantization_config") or {}
    is_awq = str(quant.get("quant_method", "")).lower() == "awq"
    if preset.model_format == "awq" and not is_awq:
        errors.append(
            "model_format: awq needs an AWQ model folder (make one with `lmdeploy lite auto_awq`) and "
            "`model:` pointing at it; this model has no AWQ quantization_config"
        )
    turbomind_blockers = _turbomind_blockers(preset, config, quant, is_awq)
    engine = preset.engine
    if preset.tp > 1 and not machine.ray:
        # measured: PytorchEngineConfig(tp=2) exits with "Multi-nodes support requires `ray`"
        pytorch_tp = "tp > 1 on the PyTorch engine needs ray (`pip install ray`)"
        if engine == "pytorch" or (engine == "auto" and (turbomind_blockers or not machine.turbomind)):
            errors.append(f"{pytorch_tp}; or use engine: turbomind")
        elif engine == "auto":
            engine = "turbomind"
            notes.append(f"auto picks TurboMind: {pytorch_tp}")
    if engine == "turbomind":
        if not machine.turbomind:
            errors.append("engine: turbomind, but TurboMind's library does not load here; use engine: pytorch")
        errors += [f"{reason}; use engine: pytorch" for reason in turbomind_blockers]
    elif engine == "auto":
        if machine.turbomind and turbomind_blockers:
            engine = "pytorch"
            notes += [f"auto picks the PyTorch engine: {reason}" for reason in turbomind_blockers]
    return Verdict(tuple(errors), tuple(notes), engine)


def _turbomind_blockers(preset: Preset, config: dict, quant: dict, is_awq: bool) -> list[str]:
    reasons = []
    if preset.quant_policy == 4 and head_dim(config) == 64:
        reasons.append("TurboMind with quant_policy 4 aborted the process on a head_dim-64 model")
    if is_awq:
        group = quant.get("group_size") or quant.get("q_group_size")
        if group != TURBOMIND_AWQ_GROUP:
            reasons.append(f"TurboMind loads AWQ only with group size {TURBOMIND_AWQ_GROUP}, this model has {group}")
        sizes = [config.get("hidden_size"), config.get("intermediate_size")]
        if any(size and size % TURBOMIND_AWQ_GROUP for size in sizes):
            reasons.append(
                f"TurboMind AWQ needs weight sizes divisible by {TURBOMIND_AWQ_GROUP} (hidden "
                f"{sizes[0]}, intermediate {sizes[1]})"
            )
    return reasons
