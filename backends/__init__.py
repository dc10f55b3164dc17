"""Backend registry: build any engine from a `BackendSpec`, importing only what it needs."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from .base import (
    SAMPLING_RANGES,
    AuthenticationFailed,
    Backend,
    BackendError,
    BackendInfo,
    BackendUnavailable,
    ChatRequest,
    Delta,
    EngineCrashed,
    EngineDetails,
    Finish,
    GenerationParams,
    ModelLoadError,
    NextTokenLogprobs,
    PromptTooLong,
    Queued,
    SchedulerMetrics,
    TextDelta,
    TextScore,
    TokenChoice,
    TokenLogprobs,
    ToolCall,
    ToolCallPiece,
    Usage,
)
from .cpu_weights import CpuWeights
from .lmdeploy_config import EngineOptions
from .redact import hide_credentials

__all__ = [
    "AuthenticationFailed",
    "Backend",
    "BackendError",
    "BackendInfo",
    "BackendKind",
    "BackendSpec",
    "BackendUnavailable",
    "CpuWeights",
    "ChatRequest",
    "Delta",
    "EngineCrashed",
    "EngineDetails",
    "EngineOptions",
    "Finish",
    "GenerationParams",
    "KINDS",
    "ModelLoadError",
    "NextTokenLogprobs",
    "PromptTooLong",
    "Queued",
    "SAMPLING_RANGES",
    "SchedulerMetrics",
    "TextDelta",
    "TextScore",
    "ToolCall",
    "TokenChoice",
    "TokenLogprobs",
    "ToolCallPiece",
    "Usage",
    "create_backend",
    "hide_credentials",
    "kind_of",
    "usable_gpu_reason",
]

BackendKindName = Literal["auto", "lmdeploy", "remote", "cpu"]
_INSTALL_HINT = "install the console's requirements: pip install -r requirements.txt"


@dataclass(frozen=True)
class BackendSpec:
    """Everything needed to start one backend; `model=None` means the embedded model."""

    kind: BackendKindName = "auto"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)
    read_timeout_s: float = 300.0  # remote: how long a silent server may keep a reply waiting
    proxy: bool = False  # remote: `base_url` is LMDeploy's proxy (`lmdeploy serve proxy`) in front of api_servers
    cpu_weights: CpuWeights = "fp32"  # cpu: how the weights are held (see `backends.cpu_weights`)


@dataclass(frozen=True)
class BackendKind:
    """What the console needs to know of a kind of backend before it starts one."""

    name: str
    needs_gpu: bool  # holds GPU memory: the running engine must close before one of these loads
    takes_local_model: bool  # `model` is a folder or file here (not a name the server knows)
    start: Callable[[BackendSpec, Callable[[str], None]], Awaitable[Backend]]  # (spec, on_stage)


async def create_backend(spec: BackendSpec, on_stage: Callable[[str], None] | None = None) -> tuple[Backend, str]:
    """Start the backend a spec names; returns it with a line saying which one and why. `on_stage`
    hears what the start is doing, stage by stage (for "switching to X: loading weights (12 s)")."""
    on_stage = on_stage or (lambda stage: None)
    if spec.kind == "auto":
        reason = usable_gpu_reason()
        if reason is None:
            try:
                return await KINDS["lmdeploy"].start(spec, on_stage), "auto: a CUDA GPU and LMDeploy are usable"
            except ModelLoadError as exc:
                reason = f"LMDeploy failed to load ({exc})"
        return await KINDS["cpu"].start(spec, on_stage), f"auto: CPU fallback, because {reason}"
    return await KINDS[spec.kind].start(spec, on_stage), f"{spec.kind}: chosen explicitly"


def kind_of(spec: BackendSpec) -> BackendKind:
    """The kind a spec will start here (`auto`: LMDeploy where a GPU is usable, else the CPU)."""
    if spec.kind == "auto":
        return KINDS["lmdeploy" if usable_gpu_reason() is None else "cpu"]
    return KINDS[spec.kind]


def usable_gpu_reason() -> str | None:
    """None where LMDeploy can run on a CUDA GPU here, else why not (never raises)."""
    if importlib.util.find_spec("lmdeploy") is None:
        return f"LMDeploy is not installed ({_INSTALL_HINT})"
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no driver, no library: all mean "no GPU" (NVML's own names say no more)
        return "no NVIDIA driver or GPU was found"
    return None if count > 0 else "NVML reports no GPU"


async def _start_lmdeploy(spec: BackendSpec, on_stage: Callable[[str], None]) -> Backend:
    from .embedded_model import resolve_model_path
    from .lmdeploy_backend import LmdeployBackend

    return await LmdeployBackend.start(str(resolve_model_path(spec.model)), spec.engine, on_stage)


async def _start_remote(spec: BackendSpec, on_stage: Callable[[str], None]) -> Backend:
    from .remote import DEFAULT_BASE_URL, RemoteBackend

    base_url = spec.base_url or DEFAULT_BASE_URL
    if spec.proxy:
        from .fleet import ProxyBackend

        on_stage("connecting to the proxy")
        return await ProxyBackend.connect_proxy(base_url, spec.api_key, spec.model, spec.read_timeout_s)
    on_stage("connecting to the server")
    return await RemoteBackend.connect(base_url, spec.api_key, spec.model, spec.read_timeout_s)


async def _start_cpu(spec: BackendSpec, on_stage: Callable[[str], None]) -> Backend:
    import asyncio

    on_stage("loading the model with transformers")
    try:
        from .cpu import CpuBackend
    except ImportError as exc:
        raise ModelLoadError(f"the cpu backend needs torch and transformers: {_INSTALL_HINT}") from exc
    return await asyncio.to_thread(CpuBackend, spec.model, spec.engine.tool_parser, spec.cpu_weights)


KINDS = {
    kind.name: kind
    for kind in (
        BackendKind("lmdeploy", needs_gpu=True, takes_local_model=True, start=_start_lmdeploy),
        BackendKind("remote", needs_gpu=False, takes_local_model=False, start=_start_remote),
        BackendKind("cpu", needs_gpu=False, takes_local_model=True, start=_start_cpu),
    )
}
