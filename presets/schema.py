"""The preset schema. A preset holds only overrides; LMDeploy's defaults fill in the rest.

Converted at the edge: `Preset.to_spec()` gives the `BackendSpec` the backends take, whose
`EngineOptions` map onto LMDeploy's own `TurbomindEngineConfig` / `PytorchEngineConfig`.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from backends import SAMPLING_RANGES, BackendKindName, BackendSpec, CpuWeights, EngineOptions, GenerationParams
from backends.lmdeploy_config import lmdeploy_only_options


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def apply_to(self, params: GenerationParams) -> GenerationParams:
        return replace(params, **self.model_dump(exclude_none=True))


# Sampling defaults the Chat tab starts from, one optional field a knob (unset ones keep the console's),
# each within the bounds GenerationParams enforces, so that the Chat tab takes it.
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
    cpu_weights: CpuWeights = "fp32"  # cpu: how the weights are held (see `backends.cpu_weights`)
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults)

    @model_validator(mode="after")
    def _fields_fit_the_backend(self) -> Preset:
        if self.backend in ("remote", "cpu"):
            misplaced = [f for f in lmdeploy_only_options() if getattr(self, f) != Preset.model_fields[f].default]
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)} only apply to the lmdeploy backend, not {self.backend}")
        if self.backend == "remote" and self.tool_parser:
            raise ValueError("tool_parser is the server's for the remote backend: `api_server --tool-call-parser`")
        if self.backend != "cpu" and self.cpu_weights != "fp32":
            raise ValueError("cpu_weights only applies to the cpu backend; LMDeploy's own is model_format")
        if self.backend != "remote" and (self.base_url or self.api_key_env or self.read_timeout_s or self.proxy):
            raise ValueError("base_url, api_key_env, read_timeout_s and proxy only apply to the remote backend")
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
        )
        return replace(spec, read_timeout_s=self.read_timeout_s) if self.read_timeout_s else spec
