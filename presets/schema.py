"""The preset schema. A preset holds only overrides; LMDeploy's defaults fill in the rest.

Converted at the edge: `Preset.to_spec()` gives the `BackendSpec` the backends take, whose
`EngineOptions` map onto LMDeploy's own `TurbomindEngineConfig` / `PytorchEngineConfig`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from backends import (
    KINDS,
    SAMPLING_RANGES,
    BackendKindName,
    BackendSpec,
    CpuKvCache,
    CpuWeights,
    EngineOptions,
    GenerationParams,
    KindName,
    kinds_for,
)


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def apply_to(self, params: GenerationParams) -> GenerationParams:
        return replace(params, **self.model_dump(exclude_none=True))


# Sampling defaults the Chat tab starts from, one optional field a knob (unset ones keep the console's),
# each within the bounds GenerationParams enforces, so that the Chat tab takes it.
if TYPE_CHECKING:  # the checker sees the base class; the knobs' fields are made from their declarations
    GenerationDefaults = _Defaults
else:
    GenerationDefaults = create_model(
        "GenerationDefaults",
        __base__=_Defaults,
        **{
            name: (GenerationParams.__dataclass_fields__[name].type + " | None", Field(None, ge=knob.low, le=knob.high))
            for name, knob in SAMPLING_RANGES.items()
        },
    )


class Preset(EngineOptions):
    """One way to run a model: the engine options (see `EngineOptions`, the one list of them) plus
    which backend and model, and the Chat tab's defaults. `model: null` means the embedded
    SmolLM2-135M-Instruct."""

    description: str = ""
    backend: BackendKindName = "lmdeploy"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    read_timeout_s: float | None = Field(None, ge=1, le=3600)  # remote: give up on a server silent this long
    proxy: bool = False  # remote: base_url is LMDeploy's proxy; the Fleet tab shows its nodes
    cpu_weights: CpuWeights = "fp32"  # cpu: how the weights are held (see `backends.cpu_options`)
    cpu_kv_cache: CpuKvCache = "full"  # cpu: how the KV cache is held (see `backends.cpu_options`)
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults)

    @model_validator(mode="after")
    def _fields_fit_the_backend(self) -> Preset:
        """A field set that this backend does not read is refused, naming the backends that do."""
        read_here = set().union(*(kind.preset_fields for kind in kinds_for(self.backend)))
        misplaced: dict[tuple[KindName, ...], list[str]] = {}  # the backends that read them -> the fields set
        for name, declared in Preset.model_fields.items():
            readers = tuple(kind.name for kind in KINDS.values() if name in kind.preset_fields)
            if readers and name not in read_here and getattr(self, name) != declared.default:
                misplaced.setdefault(readers, []).append(name)
        if misplaced:
            readers, fields = next(iter(misplaced.items()))
            verb, backends = ("applies" if len(fields) == 1 else "apply"), " and ".join(readers)
            raise ValueError(
                f"{_listed(fields)} only {verb} to the {backends} backend{'s' * (len(readers) > 1)}, "
                f"not {self.backend}{_MISPLACED_HINTS.get(fields[0], '')}"
            )
        return self

    def to_spec(self) -> BackendSpec:
        import os

        engine = EngineOptions(**self.model_dump(include=set(EngineOptions.model_fields)))
        api_key = os.environ.get(self.api_key_env) if self.api_key_env else None
        spec = BackendSpec(
            kind=self.backend,
            model=self.model,
            base_url=self.base_url,
            api_key=api_key,
            engine=engine,
            proxy=self.proxy,
            cpu_weights=self.cpu_weights,
            cpu_kv_cache=self.cpu_kv_cache,
        )
        return replace(spec, read_timeout_s=self.read_timeout_s) if self.read_timeout_s else spec


_MISPLACED_HINTS = {
    "tool_parser": ": a server parses with its own (`lmdeploy serve api_server --tool-call-parser`)",
    "cpu_weights": "; LMDeploy's own is model_format",
    "cpu_kv_cache": "; LMDeploy's own is quant_policy",
}


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
