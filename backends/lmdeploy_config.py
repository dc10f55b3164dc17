"""The console's engine options, declared once, and their mapping onto LMDeploy's own config classes.

`EngineOptions` is the one list of deployment knobs: the preset schema extends it, and the
LMDeploy config, the reproduce snippets and the status card read its fields and their
metadata. These classes import without a GPU, so the mapping is tested on any machine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .base import GenerationParams

Engine = Literal["turbomind", "pytorch", "auto"]


class KvQuant(enum.IntEnum):
    """LMDeploy's `quant_policy` values (`lmdeploy.messages.QuantPolicy` in 0.18): how the KV cache is stored."""

    NONE = 0
    INT4 = 4
    INT8 = 8
    FP8 = 16  # float8 e4m3, one scale per tensor
    FP8_E5M2 = 17
    TURBO_QUANT = 42  # keys 4-bit, values 2-bit, after a Hadamard rotation


@dataclass(frozen=True)
class KvMode:
    """What a KV quant policy stores per head and token, and where LMDeploy 0.18 runs it
    (read in `pytorch/engine/cache_engine/schema.py` and `messages.py`)."""

    label: str
    key_bits: int
    value_bits: int
    key_extra_bytes: int  # fp16 scale and zero point (TurboQuant's values: a scale only)
    value_extra_bytes: int
    turbomind: bool  # TurbomindEngineConfig asserts on the fp8 modes; TurboQuant is PyTorch's kernels
    power_of_two_head_dim: bool = False  # the Hadamard transform's size
    min_compute_capability: tuple[int, int] | None = None  # fp8 (Triton's e4m3 needs Ada or newer)

    def bytes_per_head_token(self, head_dim: int) -> float:
        return head_dim * (self.key_bits + self.value_bits) / 8 + self.key_extra_bytes + self.value_extra_bytes


KV_MODES = {
    KvQuant.NONE: KvMode("fp16/bf16 KV", 16, 16, 0, 0, turbomind=True),
    KvQuant.INT8: KvMode("KV int8", 8, 8, 4, 4, turbomind=True),
    KvQuant.INT4: KvMode("KV int4", 4, 4, 4, 4, turbomind=True),
    KvQuant.FP8: KvMode("KV fp8 (e4m3)", 8, 8, 0, 0, turbomind=False, min_compute_capability=(8, 9)),
    KvQuant.FP8_E5M2: KvMode("KV fp8 (e5m2)", 8, 8, 0, 0, turbomind=False, min_compute_capability=(8, 9)),
    KvQuant.TURBO_QUANT: KvMode(
        "TurboQuant KV (K 4-bit, V 2-bit)", 4, 2, 4, 2, turbomind=False, power_of_two_head_dim=True
    ),
}
# the names LMDeploy's own command line takes for --quant-policy (`cli/utils.py`)
_KV_NAMES = {mode.name.lower(): mode for mode in KvQuant} | {"fp8_e4m3": KvQuant.FP8}


def _option(default, card: str, cli: str | None = None, config: bool = True, pytorch_only: bool = False, **bounds):
    """An engine option: `card` labels it on the status card, `cli` is LMDeploy's command-line flag,
    `config` says whether it is a field of LMDeploy's engine config classes, `pytorch_only` that only
    `PytorchEngineConfig` has it (set, it steers `auto` to the PyTorch engine)."""
    meta: dict[str, Any] = {"card": card, "cli": cli, "config": config, "pytorch_only": pytorch_only}
    return Field(default, json_schema_extra=meta, **bounds)


class EngineOptions(BaseModel):
    """Engine-neutral deployment knobs. Each default is LMDeploy's own (`None`: LMDeploy decides), so
    only the options set differ from it, and only those reach LMDeploy and the reproduce snippets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Engine = _option("auto", "engine", config=False)
    # awq, gptq, compressed-tensors and fp8 name a checkpoint's own format; on the PyTorch engine, fp8 on a
    # bf16/fp16 model quantizes its weights to fp8 as it loads
    model_format: Literal["hf", "awq", "gptq", "compressed-tensors", "fp8"] = _option(
        "hf", "model format", "--model-format"
    )
    quant_policy: KvQuant = _option(KvQuant.NONE, "KV quant policy", "--quant-policy")
    # the KV cache's share of the GPU memory free once the weights are in (0-1)
    cache_max_entry_count: float | None = _option(None, "cache_max_entry_count", "--cache-max-entry-count", gt=0)
    session_len: int | None = _option(None, "session length", "--session-len", ge=64, le=1_048_576)
    max_batch_size: int | None = _option(None, "max batch size", "--max-batch-size", ge=1, le=4096)
    tp: int = _option(1, "tensor parallel", "--tp", ge=1, le=64)
    dtype: Literal["auto", "float16", "bfloat16"] = _option("auto", "dtype", "--dtype")
    enable_prefix_caching: bool = _option(False, "prefix caching", "--enable-prefix-caching")
    # skip CUDA-graph capture: the PyTorch engine loads sooner and decodes slower
    eager_mode: bool = _option(False, "eager mode", "--eager-mode", pytorch_only=True)
    # a fixed number of KV blocks instead of cache_max_entry_count's share of the free memory
    num_gpu_blocks: int | None = _option(None, "KV blocks", "--num-gpu-blocks", pytorch_only=True, ge=1)
    # an LMDeploy chat template name, overriding the model's own
    chat_template: str | None = _option(None, "chat template", "--chat-template", config=False)
    # LMDeploy's tool-call parser for the model's family (as `api_server --tool-call-parser`); None: tools go
    # through the console's own tool-prompt template. The one option the cpu backend reads too.
    tool_parser: str | None = _option(
        None, "tool parser", "--tool-call-parser", config=False, pattern=r"^[A-Za-z0-9_.-]+$"
    )

    @field_validator("quant_policy", mode="before")
    @classmethod
    def _policy_by_name(cls, value):
        """`int8`, `fp8`, `turbo_quant`, ... as LMDeploy's command line takes them, or the number."""
        if isinstance(value, str) and value.strip().lower() in _KV_NAMES:
            return _KV_NAMES[value.strip().lower()]
        return value

    @field_validator("cache_max_entry_count")
    @classmethod
    def _a_share_of_free_memory(cls, value: float | None) -> float | None:
        if value is not None and value >= 1:
            raise ValueError(
                f"cache_max_entry_count {value:g}: LMDeploy 0.18 takes a share of the free GPU memory below 1 "
                "(e.g. 0.4). A number of KV blocks (1 or more) fails on both engines: the PyTorch engine's config "
                "refuses it, and TurboMind aborts its process ('object-cache path no longer accepts "
                "cache_max_block_count as a block count', measured on an H200)"
            )
        return value

    @property
    def kv_mode(self) -> KvMode:
        return KV_MODES[self.quant_policy]

    def changed(self) -> dict:
        """The options that differ from LMDeploy's defaults, in declaration order, as plain values (the
        engine options alone: a subclass's own fields, such as a preset's description, are none)."""
        return self.model_dump(mode="json", exclude_defaults=True, include=set(EngineOptions.model_fields))

    @classmethod
    def option_meta(cls, name: str) -> dict:
        meta = cls.model_fields[name].json_schema_extra
        assert isinstance(meta, dict), name  # every field is declared with _option
        return meta

    def pytorch_only_set(self) -> list[str]:
        """The options set that only the PyTorch engine takes."""
        return [name for name in self.changed() if self.option_meta(name)["pytorch_only"]]


def engine_config(options: EngineOptions, engine: Literal["turbomind", "pytorch"]):
    """Build `TurbomindEngineConfig` or `PytorchEngineConfig` for a resolved engine: the options set,
    under LMDeploy's own names; LMDeploy's defaults for the rest."""
    from lmdeploy import PytorchEngineConfig, TurbomindEngineConfig

    fields = {name: value for name, value in options.changed().items() if EngineOptions.option_meta(name)["config"]}
    if engine == "turbomind":
        return TurbomindEngineConfig(**fields)
    # the PyTorch engine gives token logprobs (the Chat tab's colouring) only with a logprobs mode set;
    # it computes them for the requests that ask alone (`pytorch/engine/logits_process.py`). Seen on the
    # H200: without it, a request asking for logprobs got none.
    return PytorchEngineConfig(**fields, logprobs_mode="raw_logprobs")


def generation_config(params: GenerationParams, response_format: dict | None = None):
    """LMDeploy's `GenerationConfig` for the console's sampling knobs (temperature 0 is greedy);
    `response_format` turns on guided decoding (a JSON schema the output must match)."""
    from lmdeploy import GenerationConfig

    knobs = params.knob_values() | ({"temperature": 1.0} if params.greedy else {})  # LMDeploy's names
    return GenerationConfig(
        **knobs,
        do_sample=not params.greedy,
        random_seed=params.seed,
        stop_words=list(params.stop) or None,
        ignore_eos=params.ignore_eos,
        response_format=response_format,
        logprobs=params.logprobs or None,
    )


def resolve_engine(options: EngineOptions, model_path: str) -> Literal["turbomind", "pytorch"]:
    """`auto` means TurboMind where its library loads and it supports the model, else PyTorch."""
    if options.engine != "auto":
        return options.engine
    from lmdeploy.archs import autoget_backend

    return autoget_backend(model_path)
