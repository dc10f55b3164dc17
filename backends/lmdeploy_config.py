"""Map the console's engine options and sampling knobs onto LMDeploy's own config classes.

These classes import without a GPU, so the mapping is tested on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .base import GenerationParams

Engine = Literal["turbomind", "pytorch", "auto"]


@dataclass(frozen=True)
class EngineOptions:
    """Engine-neutral deployment knobs; `None` keeps LMDeploy's own default."""

    engine: Engine = "auto"
    model_format: Literal["hf", "awq", "gptq"] | None = None
    quant_policy: Literal[0, 4, 8] = 0
    cache_max_entry_count: float | None = None
    session_len: int | None = None
    max_batch_size: int | None = None
    tp: int = 1
    dtype: Literal["auto", "float16", "bfloat16"] = "auto"
    chat_template: str | None = None  # an LMDeploy chat template name, overriding the model's own
    # LMDeploy's tool-call parser for the model's family (as `api_server --tool-call-parser`);
    # None: tools go through the console's own tool-prompt template
    tool_parser: str | None = None


def engine_config(options: EngineOptions, engine: Literal["turbomind", "pytorch"]):
    """Build `TurbomindEngineConfig` or `PytorchEngineConfig` for a resolved engine."""
    from lmdeploy import PytorchEngineConfig, TurbomindEngineConfig

    fields = {"tp": options.tp, "dtype": options.dtype, "quant_policy": options.quant_policy}
    optional = {
        "cache_max_entry_count": options.cache_max_entry_count,
        "session_len": options.session_len,
        "max_batch_size": options.max_batch_size,
        # "hf" is what both engines assume when no format is given
        "model_format": None if options.model_format == "hf" else options.model_format,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    config_class = TurbomindEngineConfig if engine == "turbomind" else PytorchEngineConfig
    return config_class(**fields)


def generation_config(params: GenerationParams, response_format: dict | None = None):
    """LMDeploy's `GenerationConfig` for the console's sampling knobs (temperature 0 is greedy);
    `response_format` turns on guided decoding (a JSON schema the output must match)."""
    from lmdeploy import GenerationConfig

    return GenerationConfig(
        max_new_tokens=params.max_new_tokens,
        do_sample=params.temperature > 0,
        temperature=params.temperature if params.temperature > 0 else 1.0,
        top_p=params.top_p,
        top_k=params.top_k,
        repetition_penalty=params.repetition_penalty,
        random_seed=params.seed,
        stop_words=list(params.stop) or None,
        ignore_eos=params.ignore_eos,
        response_format=response_format,
    )


def resolve_engine(options: EngineOptions, model_path: str) -> Literal["turbomind", "pytorch"]:
    """`auto` means TurboMind where its library loads and it supports the model, else PyTorch."""
    if options.engine != "auto":
        return options.engine
    from lmdeploy.archs import autoget_backend

    return autoget_backend(model_path)
