"""What the console says about its engine: the state pages show, a switch's progress and report, and
the stand-in engine after a failed switch. Plain values, no Gradio."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from backends import Backend, BackendError, BackendInfo, BackendSpec, BackendUnavailable, Delta, GenerationParams


@dataclass(frozen=True)
class EngineState:
    """What the UI shows about the running engine."""

    info: BackendInfo
    reason: str
    preset: str | None
    previous_preset: str | None
    default_params: GenerationParams


@dataclass(frozen=True)
class EngineSnapshot:
    """The engine a job found running: a preset, or the command line's spec."""

    preset: str | None
    spec: BackendSpec | None
    default_params: GenerationParams


@dataclass(frozen=True)
class SwitchReport:
    """The outcome of a successful preset switch."""

    preset: str
    load_seconds: float
    vram_before_mib: float | None
    vram_after_mib: float | None
    notes: tuple[str, ...]
    stages: tuple[tuple[str, float], ...] = ()  # (stage, seconds), in order: where the load's time went

    @property
    def vram_delta_mib(self) -> float | None:
        if self.vram_before_mib is None or self.vram_after_mib is None:
            return None
        return self.vram_after_mib - self.vram_before_mib


@dataclass(frozen=True)
class SwitchProgress:
    """A switch or restart under way: what it loads, since when, and each stage with when it began."""

    action: str  # "switching to kv-int8", "restarting kv-int8"
    started: float  # time.monotonic()
    stages: tuple[tuple[str, float], ...]  # (stage, time.monotonic() it began)

    @property
    def stage(self) -> str:
        return self.stages[-1][0]

    def describe(self) -> str:
        return f"{self.action}: {self.stage} ({time.monotonic() - self.started:.0f} s)"

    def entered(self, stage: str) -> SwitchProgress:
        return dataclasses.replace(self, stages=(*self.stages, (stage, time.monotonic())))

    def durations(self, ended: float) -> tuple[tuple[str, float], ...]:
        """Seconds spent in each stage, the last one until `ended`."""
        ends = [began for _, began in self.stages[1:]] + [ended]
        return tuple((stage, end - began) for (stage, began), end in zip(self.stages, ends, strict=True))


class SwitchFailed(BackendError):
    """The new engine did not load; no engine runs until the user picks one (or goes back)."""


class EngineBusy(BackendError):
    """A job (a comparison, a quantization) holds the engine: switching it now would pull it from
    under the job. The running engine is untouched."""


class NoEngine(Backend):
    """Stands in after a failed switch: every chat says what happened and what to do."""

    def __init__(self, reason: str):
        self.reason = reason

    def info(self) -> BackendInfo:
        return BackendInfo(kind="none", model="-", engine="no engine running", details={"reason": self.reason})

    async def stream_chat(self, request) -> AsyncGenerator[Delta]:
        raise BackendUnavailable(self.reason)
        yield  # an async generator, like every backend's stream_chat

    async def score_text(self, text: str):
        raise BackendUnavailable(self.reason)

    async def next_token_logprobs(self, text: str, max_tokens: int):
        raise BackendUnavailable(self.reason)

    async def close(self) -> None:
        pass

    @property
    def serving(self) -> bool:
        return False
