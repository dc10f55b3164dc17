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
    KindName,
    ModelLoadError,
    NextTokenLogprobs,
    PromptTooLong,
    Queued,
    Refusal,
    SchedulerMetrics,
    TextDelta,
    TextScore,
    TokenChoice,
    TokenLogprobs,
    ToolCall,
    ToolCallPiece,
    Usage,
)
from .cpu_options import CpuKvCache, CpuWeights
from .embedded_model import EMBEDDED_MODEL_NAME, embedded_hf_folder, resolve_model_path
from .lmdeploy_config import EngineOptions
from .redact import hide_credentials
from .reproduce import cpu_code, lmdeploy_commands, remote_commands

__all__ = [
    "AuthenticationFailed",
    "Backend",
    "BackendError",
    "BackendInfo",
    "BackendKind",
    "BackendSpec",
    "BackendUnavailable",
    "ChatRequest",
    "CpuKvCache",
    "CpuWeights",
    "Delta",
    "EMBEDDED_MODEL_NAME",
    "EngineCrashed",
    "EngineDetails",
    "EngineOptions",
    "Finish",
    "GenerationParams",
    "KindName",
    "KINDS",
    "ModelLoadError",
    "NextTokenLogprobs",
    "PromptTooLong",
    "Queued",
    "Refusal",
    "SAMPLING_RANGES",
    "SchedulerMetrics",
    "TextDelta",
    "TextScore",
    "TokenChoice",
    "TokenLogprobs",
    "ToolCall",
    "ToolCallPiece",
    "Usage",
    "create_backend",
    "embedded_hf_folder",
    "hide_credentials",
    "kind_of",
    "kinds_for",
    "resolve_model_path",
    "running_kind",
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
    # LMDeploy: the GPUs the engine runs on, as NVML numbers them; None: the first `tp` of those CUDA shows
    gpus: tuple[int, ...] | None = None
    read_timeout_s: float = 300.0  # remote: how long a silent server may keep a reply waiting
    proxy: bool = False  # remote: `base_url` is LMDeploy's proxy (`lmdeploy serve proxy`) in front of api_servers
    cpu_weights: CpuWeights = "fp32"  # cpu: how the weights are held (see `backends.cpu_options`)
    cpu_kv_cache: CpuKvCache = "full"  # cpu: how the KV cache is held (see `backends.cpu_options`)


@dataclass(frozen=True)
class BackendKind:
    """A kind of backend and what follows from it, so that nothing above backends/ asks for its name."""

    name: KindName
    needs_gpu: bool  # holds GPU memory: the running engine must close before one of these loads
    # an LMDeploy engine in the console's worker process: LMDeploy's engine options apply (checked
    # against the model and the card, shown on the engine card), and its raw `pipeline` is the reference
    lmdeploy_engine: bool
    takes_local_model: bool  # `model` is a folder or file here (not a name the server knows)
    memory_seen_here: bool  # NVML on this machine sees what its engine holds (not a remote server's)
    engine_outside: bool  # the engine is a server of its own, which several console processes can share
    server_parses_tools: bool  # the server's chat template renders tools and its own parser reads calls
    # of the preset fields that only some kinds read, those this kind reads (the rest must stay unset)
    preset_fields: frozenset[str]
    start: Callable[[BackendSpec, Callable[[str], None]], Awaitable[Backend]]  # (spec, on_stage)
    reproduce: Callable[[BackendSpec, BackendInfo], str]  # commands that run it without the console


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


def kinds_for(name: BackendKindName) -> tuple[BackendKind, ...]:
    """The kinds a preset's or a command line's `backend` may start: both of `auto`'s, else its own."""
    return (KINDS["lmdeploy"], KINDS["cpu"]) if name == "auto" else (KINDS[name],)


def running_kind(info: BackendInfo) -> BackendKind | None:
    """The kind of the engine that runs; None where none does."""
    return KINDS.get(info.kind)


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
    from .lmdeploy_backend import LmdeployBackend

    return await LmdeployBackend.start(str(resolve_model_path(spec.model)), spec.engine, on_stage, gpus=spec.gpus)


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
    return await asyncio.to_thread(CpuBackend, spec.model, spec.engine.tool_parser, spec.cpu_weights, spec.cpu_kv_cache)


KINDS: dict[str, BackendKind] = {
    kind.name: kind
    for kind in (
        BackendKind(
            "lmdeploy",
            needs_gpu=True,
            lmdeploy_engine=True,
            takes_local_model=True,
            memory_seen_here=True,
            engine_outside=False,
            server_parses_tools=False,
            preset_fields=frozenset(EngineOptions.model_fields),
            start=_start_lmdeploy,
            reproduce=lmdeploy_commands,
        ),
        BackendKind(
            "remote",
            needs_gpu=False,
            lmdeploy_engine=False,
            takes_local_model=False,
            memory_seen_here=False,
            engine_outside=True,
            server_parses_tools=True,
            preset_fields=frozenset({"base_url", "api_key_env", "read_timeout_s", "proxy"}),
            start=_start_remote,
            reproduce=remote_commands,
        ),
        BackendKind(
            "cpu",
            needs_gpu=False,
            lmdeploy_engine=False,
            takes_local_model=True,
            memory_seen_here=True,
            engine_outside=False,
            server_parses_tools=False,
            preset_fields=frozenset({"tool_parser", "cpu_weights", "cpu_kv_cache"}),
            start=_start_cpu,
            reproduce=cpu_code,
        ),
    )
}
