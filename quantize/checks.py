"""What to tell the user before a quantization starts: will it run, and which engine loads it.

Facts (LMDeploy 0.18, measured; docs/architecture.md): the group size must divide every weight
dimension it splits; TurboMind loads AWQ only with group size 128 (SmolLM2's hidden size 576
is refused), the PyTorch engine runs smaller groups (SmolLM2 with 64 measured).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from model_folders.folder import checkpoint_bytes, read_model_config
from presets.compat import TURBOMIND_AWQ_GROUP

from .methods import METHODS

GROUP_SIZES = (32, 64, 128)


@dataclass(frozen=True)
class Plan:
    """Errors stop the job before it starts; notes go with it. `engine` will load the result."""

    errors: tuple[str, ...]
    notes: tuple[str, ...]
    engine: str  # "turbomind" or "pytorch"

    @property
    def ok(self) -> bool:
        return not self.errors


def plan(model_dir: Path, output: Path, group_size: int, method: str = "awq") -> Plan:
    config = read_model_config(model_dir)
    errors, notes = [], []
    if not config:
        errors.append(f"{model_dir} has no config.json: pick a Hugging Face model folder")
    if config.get("quantization_config"):
        already = config["quantization_config"].get("quant_method", "some")
        errors.append(f"{model_dir.name} is already quantized ({already}); start from the fp16/bf16 model")
    chosen = METHODS[method]
    if not chosen.grouped:
        notes.append(f"only the PyTorch engine will load the result: TurboMind refuses {chosen.label} models")
        if chosen.quant_dtype == "fp8":
            notes.append("fp8 matrix multiplies need a GPU with fp8 (compute capability 8.9 or newer) to run it")
        errors += _output_problems(output, model_dir, chosen.size_ratio)
        return Plan(tuple(errors), tuple(notes), "pytorch")
    errors += _awq_problems(config, group_size)
    turbomind = group_size == TURBOMIND_AWQ_GROUP and not any(
        s % TURBOMIND_AWQ_GROUP for s in _split_dimensions(config).values()
    )
    if turbomind:
        notes.append("TurboMind and the PyTorch engine can both load the result")
    else:
        notes.append(
            f"only the PyTorch engine will load the result: TurboMind takes AWQ with group size "
            f"{TURBOMIND_AWQ_GROUP} and weight sizes divisible by it"
        )
    errors += _output_problems(output, model_dir, chosen.size_ratio)
    return Plan(tuple(errors), tuple(notes), "turbomind" if turbomind else "pytorch")


def _awq_problems(config: dict, group_size: int) -> list[str]:
    errors = []
    if group_size not in GROUP_SIZES:
        errors.append(f"group size {group_size}: pick one of {', '.join(map(str, GROUP_SIZES))}")
    sizes = _split_dimensions(config)
    misfits = {name: size for name, size in sizes.items() if size % group_size}
    if misfits:
        shown = ", ".join(f"{name} {size}" for name, size in misfits.items())
        errors.append(f"group size {group_size} does not divide {shown}; pick a group size that does")
    return errors


def _split_dimensions(config: dict) -> dict[str, int]:
    """The input sizes of the linear layers AWQ quantizes, which the groups split."""
    sizes = {"hidden size": config.get("hidden_size"), "intermediate size": config.get("intermediate_size")}
    heads, head_dim = config.get("num_attention_heads"), config.get("head_dim")
    if heads and head_dim:
        sizes["attention output"] = heads * head_dim
    return {name: int(size) for name, size in sizes.items() if size}


def _output_problems(output: Path, model_dir: Path, size_ratio: float) -> list[str]:
    if output.exists() and any(output.iterdir()):
        return [f"the output folder {output} is not empty; name a new folder"]
    if output.resolve() == model_dir.resolve():
        return ["the output folder is the source model's folder; name a new folder"]
    existing = next((p for p in [output, *output.parents] if p.exists()), None)
    needed = int(checkpoint_bytes(model_dir) * size_ratio)
    free = shutil.disk_usage(existing).free if existing is not None else None
    if free is not None and free < needed:
        return [f"{existing} has {free / 2**30:.1f} GiB free; the quantized model needs about {needed / 2**30:.1f} GiB"]
    return []
