"""Will this preset load here? Checked before the running engine is touched.

The rules are facts measured with LMDeploy 0.18 (see docs/architecture.md) or read in its
source: TurboMind loads AWQ only with group size 128 and weight sizes divisible by it; TurboMind
with KV int4 aborted the process on a head_dim-64 model while the PyTorch engine ran it;
TurboMind's config refuses the fp8 KV modes and only the PyTorch engine has TurboQuant's kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backends import kinds_for
from backends.lmdeploy_config import Engine, KvQuant
from backends.lmdeploy_tools import tool_parsers
from model_folders.folder import checkpoint_bytes, head_dim, read_model_config

from .schema import Preset

TURBOMIND_AWQ_GROUP = 128


@dataclass(frozen=True)
class Machine:
    """What the checks need to know about this machine."""

    gpu_count: int
    turbomind: bool  # TurboMind's library loads
    no_gpu_reason: str | None = None
    ray: bool = False  # the PyTorch engine runs tp > 1 through ray
    compute_capability: tuple[int, int] | None = None  # the oldest GPU's; None: not known
    # GPU memory a new engine could have on each card it uses: free now, plus what the running engine
    # holds and gives back before an LMDeploy preset loads; None: not known
    available_mib: float | None = None


@dataclass(frozen=True)
class Verdict:
    """Errors refuse the switch; notes are shown with it. `engine` is what will run."""

    errors: tuple[str, ...]
    notes: tuple[str, ...]
    engine: Engine

    @property
    def ok(self) -> bool:
        return not self.errors


def check(preset: Preset, model_dir: Path | None, machine: Machine) -> Verdict:
    """Check an lmdeploy preset against its model's config and this machine."""
    errors: list[str] = []
    notes: list[str] = []
    if preset.tool_parser and preset.tool_parser not in tool_parsers():
        errors.append(f"tool_parser: {preset.tool_parser!r} is not one of LMDeploy's: {', '.join(tool_parsers())}")
    kinds = kinds_for(preset.backend)
    if not any(kind.lmdeploy_engine for kind in kinds):  # what follows is LMDeploy's
        return Verdict(tuple(errors), (), preset.engine)
    if machine.gpu_count == 0:
        if all(kind.lmdeploy_engine for kind in kinds):  # `auto` falls back to the CPU
            errors.append(
                f"LMDeploy needs a CUDA GPU and none is usable here ({machine.no_gpu_reason}); use the cpu preset"
            )
        return Verdict(tuple(errors), tuple(notes), preset.engine)
    if preset.tp > machine.gpu_count:
        errors.append(f"tp: {preset.tp} needs {preset.tp} GPUs; this machine has {machine.gpu_count}")
    config = read_model_config(model_dir) if model_dir else {}
    quant = config.get("quantization_config") or {}
    method = str(quant.get("quant_method", "")).lower()
    is_awq = method == "awq"
    errors += _format_problems(preset.model_format, method)
    if preset.model_format == "fp8" and not method:
        errors += _fp8_block_problems(config)
    errors += _architecture_problems(preset, method, machine.compute_capability)
    dim = head_dim(config)
    if preset.kv_mode.power_of_two_head_dim and dim and dim & (dim - 1):
        errors.append(
            f"quant_policy {int(preset.quant_policy)} ({preset.kv_mode.label}) rotates each head with a Hadamard "
            f"transform, which needs a power-of-two head_dim; this model's is {dim}: pick another KV mode"
        )
    fit_errors, fit_notes = _memory_fit(preset, model_dir, quant, machine.available_mib)
    errors += fit_errors
    notes += fit_notes
    engine, engine_errors, engine_notes = _pick_engine(
        preset.engine,
        machine.turbomind,
        turbomind_blockers=_turbomind_blockers(preset, config, quant, is_awq),
        pytorch_blockers=_pytorch_blockers(preset, machine),
    )
    return Verdict(tuple(errors + engine_errors), tuple(notes + engine_notes), engine)


def _pick_engine(
    asked: Engine, turbomind_loads: bool, turbomind_blockers: list[str], pytorch_blockers: list[str]
) -> tuple[Engine, list[str], list[str]]:
    """The engine that runs (an explicit one, or what `auto` settles on), with errors and notes:
    each engine's blockers refuse it when asked for, and steer `auto` to the other one."""
    if not turbomind_loads:
        turbomind_blockers = ["TurboMind's library does not load here", *turbomind_blockers]
    if asked == "turbomind":
        return asked, [f"{reason}; use engine: pytorch" for reason in turbomind_blockers], []
    if asked == "pytorch":
        return asked, [f"{reason}; or use engine: turbomind" for reason in pytorch_blockers], []
    if pytorch_blockers and turbomind_blockers:
        return asked, [f"neither engine can run it: {'; '.join(turbomind_blockers + pytorch_blockers)}"], []
    if pytorch_blockers:
        return "turbomind", [], [f"auto picks TurboMind: {reason}" for reason in pytorch_blockers]
    if turbomind_blockers and turbomind_loads:
        return "pytorch", [], [f"auto picks the PyTorch engine: {reason}" for reason in turbomind_blockers]
    return asked, [], []


_HOW_TO_MAKE = {"awq": "make one with `lmdeploy lite auto_awq` or the Quantize tab"}


def _format_problems(model_format: str, method: str) -> list[str]:
    """A checkpoint format must be the checkpoint's own (fp8 may also quantize a bf16 model as it loads)."""
    if model_format in ("awq", "gptq", "compressed-tensors") and method != model_format:
        how = _HOW_TO_MAKE.get(model_format, f"point `model:` at a {model_format} checkpoint")
        found = f"its quantization_config says {method}" if method else "it has no quantization_config"
        return [f"model_format: {model_format} needs a {model_format} model folder ({how}); {found}"]
    if model_format == "fp8" and method not in ("", "fp8"):
        return [f"model_format: fp8 is for an fp8 checkpoint or a bf16/fp16 model; this one is {method}"]
    return []


ENGINE_OVERHEAD_MIB = 1024  # CUDA context, activations and workspace beside weights and KV (the status card's "other")
LMDEPLOY_DEFAULT_KV_SHARE = 0.8  # both engines' cache_max_entry_count


def _memory_fit(preset: Preset, model_dir: Path | None, quant: dict, available_mib: float | None):
    """What the preset will take of the GPU, said before it loads: its weights (the checkpoint, per
    card under tp) and the KV reserve, a share of what is left; refused where the weights alone do not fit."""
    if available_mib is None or model_dir is None:
        return [], []
    weights_mib = checkpoint_bytes(model_dir) / 2**20 / preset.tp
    if preset.model_format == "fp8" and not quant:
        weights_mib /= 2  # quantized to fp8 as it loads
    needed = weights_mib + ENGINE_OVERHEAD_MIB
    if needed > available_mib:
        return [
            f"its weights need about {weights_mib / 1024:.1f} GiB a GPU (+ about {ENGINE_OVERHEAD_MIB / 1024:.0f} GiB "
            f"for the engine), and {available_mib / 1024:.1f} GiB is available: use a quantized model, tp, or a "
            "bigger GPU"
        ], []
    share = preset.cache_max_entry_count or LMDEPLOY_DEFAULT_KV_SHARE
    reserve = f"KV reserve of {share:g} x the rest (about {share * (available_mib - needed) / 1024:.1f} GiB)"
    return [], [
        f"needs about {weights_mib / 1024:.1f} GiB of weights a GPU + a {reserve}, of {available_mib / 1024:.1f} GiB available"
    ]


FP8_BLOCK = 128  # the PyTorch engine quantizes a bf16 model's weights to fp8 in blocks of 128 x 128


def _fp8_block_problems(config: dict) -> list[str]:
    """Measured on the H200: SmolLM2 (3 KV heads of 64) failed to load with model_format fp8
    ("split_with_sizes expects split_sizes to sum exactly to 8"); its K and V projections are 192 wide."""
    text = config.get("text_config", config)
    dim, heads = head_dim(config), text.get("num_attention_heads")
    sizes = {
        "hidden": text.get("hidden_size"),
        "intermediate": text.get("intermediate_size"),
        "attention heads x head_dim": heads and dim and heads * dim,
        "KV heads x head_dim": dim and (text.get("num_key_value_heads") or heads) * dim,
    }
    misfits = ", ".join(f"{name} {size}" for name, size in sizes.items() if size and size % FP8_BLOCK)
    if not misfits:
        return []
    return [
        f"model_format: fp8 quantizes weights in blocks of {FP8_BLOCK}, and this model's sizes are no multiple of it ({misfits})"
    ]


def _architecture_problems(preset: Preset, method: str, capability: tuple[int, int] | None) -> list[str]:
    """fp8 needs a GPU that has it, as LMDeploy's own checks say (`pytorch/check_env/cuda.py`)."""
    if capability is None:
        return []
    shown = f"{capability[0]}.{capability[1]}"
    if preset.model_format == "fp8" and method == "" and capability < (9, 0):
        return [
            f"model_format: fp8 quantizes the weights on Hopper or newer (compute capability 9.0); this GPU is {shown}"
        ]
    needed = preset.kv_mode.min_compute_capability
    if needed and capability < needed:
        return [
            f"{preset.kv_mode.label} needs a GPU with fp8 (compute capability {needed[0]}.{needed[1]} or newer); "
            f"this GPU is {shown}"
        ]
    return []


def _pytorch_blockers(preset: Preset, machine: Machine) -> list[str]:
    reasons = []
    if preset.tp > 1 and not machine.ray:
        # measured: PytorchEngineConfig(tp=2) exits with "Multi-nodes support requires `ray`"
        reasons.append("tp > 1 on the PyTorch engine needs ray (`pip install ray`)")
    return reasons


def _turbomind_blockers(preset: Preset, config: dict, quant: dict, is_awq: bool) -> list[str]:
    reasons = [f"TurboMind has no {name} (a PyTorch engine option)" for name in preset.pytorch_only_set()]
    if not preset.kv_mode.turbomind:
        reasons.append(
            f"TurboMind in LMDeploy 0.18 does not take {preset.kv_mode.label} (quant_policy {int(preset.quant_policy)})"
        )
    if preset.model_format == "fp8" and not quant:
        reasons.append(
            "TurboMind's model_format fp8 is for fp8 checkpoints; the PyTorch engine quantizes this one as it loads"
        )
    if str(quant.get("quant_method", "")).lower() == "smooth_quant":
        reasons.append("TurboMind does not load SmoothQuant (W8A8) models")
    if preset.quant_policy == KvQuant.INT4 and head_dim(config) == 64:
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
