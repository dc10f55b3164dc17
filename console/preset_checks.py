"""Whether a preset loads here, checked before any engine is touched: the model folder it names (under
the allowed roots), this machine (GPUs, TurboMind, ray) and the GPU memory it could have."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

from backends import (
    BackendError,
    BackendSpec,
    ModelLoadError,
    create_backend,
    embedded_hf_folder,
    kinds_for,
    usable_gpu_reason,
)
from model_folders.folder import read_model_config
from presets import compat
from presets.schema import Preset
from presets.store import PresetCatalog, PresetError
from telemetry.machine import lowest_compute_capability
from telemetry.vram import VramSampler

from .paths import ModelRoots

REACH_TIMEOUT_S = 5.0  # a Check that waits longer than this for a server reads as a hung page


class PresetChecks:
    """As a switch would meet it: the running engine (`running_engine_pid`, its worker process) closes
    before the preset loads, so its GPU memory counts as available; `beside_running`: the preset loads
    beside it (Side by side's B), on GPUs of its own where the machine has more than the running engine
    holds (`running_engine_gpus`: the first so many), else on the running engine's, with the memory free
    now only."""

    def __init__(
        self,
        catalog: PresetCatalog,
        model_roots: ModelRoots,
        sampler: VramSampler,
        running_engine_pid: Callable[[], int | None] = lambda: None,
        running_engine_gpus: Callable[[], int] = lambda: 0,
    ):
        self.catalog, self.model_roots, self.sampler = catalog, model_roots, sampler
        self._running_engine_pid = running_engine_pid
        self._running_engine_gpus = running_engine_gpus

    def vet(self, name: str) -> tuple[Preset, compat.Verdict, int | None]:
        """A named preset, what switching to it would meet here, and the session length it will
        run with where that is known before loading (its own `session_len`, else its model's
        `max_position_embeddings`, which LMDeploy and transformers default to). Raises PresetError."""
        preset = self.catalog.get(name)
        source = self.catalog.locate(name).name
        verdict = self.check(preset, source)
        model_dir = self.model_dir(preset, source) if verdict.ok else None
        config = read_model_config(model_dir) if model_dir else {}
        return preset, verdict, preset.session_len or config.get("max_position_embeddings")

    def check(self, preset: Preset, source: str, beside_running: bool = False) -> compat.Verdict:
        """What loading this preset would meet here now; no engine is touched."""
        own_gpus = self.gpus_of_its_own(preset) if beside_running else None
        return self._check(preset, source, beside_running, own_gpus)

    def _check(
        self, preset: Preset, source: str, beside_running: bool, own_gpus: tuple[int, ...] | None
    ) -> compat.Verdict:
        model_dir = self.model_dir(preset, source)
        giving_back = None if beside_running else self._running_engine_pid()
        available = self._available_mib(own_gpus or range(preset.tp), giving_back)
        return compat.check(preset, model_dir, dataclasses.replace(self.machine, available_mib=available))

    def gpus_of_its_own(self, preset: Preset) -> tuple[int, ...] | None:
        """For a preset loaded beside the running engine: the next `tp` GPUs after those the running engine
        holds, where the machine has them; None where it shares the running engine's GPUs (one GPU, the
        running engine on all of them, or one holding none). Not under CUDA_VISIBLE_DEVICES: it renumbers
        the GPUs CUDA shows, while NVML, which the checks read, numbers them all."""
        held = self._running_engine_gpus()
        if (
            not held
            or "CUDA_VISIBLE_DEVICES" in os.environ
            or not any(kind.needs_gpu for kind in kinds_for(preset.backend))
        ):
            return None
        if held + preset.tp > self.machine.gpu_count:
            return None
        return tuple(range(held, held + preset.tp))

    def spec(self, preset: Preset, source: str, beside_running: bool = False) -> tuple[BackendSpec, tuple[str, ...]]:
        """The spec to load for a preset, as checked, with the check's notes; PresetError where refused."""
        own_gpus = self.gpus_of_its_own(preset) if beside_running else None  # the GPUs checked are those loaded
        verdict = self._check(preset, source, beside_running, own_gpus)
        if not verdict.ok:
            raise PresetError(f"{source}: " + "; ".join(verdict.errors))
        spec, notes = preset.to_spec(), verdict.notes
        if own_gpus:
            spec = dataclasses.replace(spec, gpus=own_gpus)
            notes = (*notes, f"on {_named(own_gpus)} of its own: the running engine is on {_named(range(own_gpus[0]))}")
        if preset.model and (folder := self.model_dir(preset, source)) is not None:
            spec = dataclasses.replace(spec, model=str(folder))  # the path checked is the path loaded
        if any(kind.lmdeploy_engine for kind in kinds_for(spec.kind)):
            spec = dataclasses.replace(spec, engine=spec.engine.model_copy(update={"engine": verdict.engine}))
        return spec, notes

    async def unreachable(self, preset: Preset, source: str) -> str | None:
        """Why a remote preset's server cannot be reached now, by connecting as a switch would (then
        letting go); None where it answers, and for every other backend."""
        if any(kind.takes_local_model for kind in kinds_for(preset.backend)):
            return None
        spec, _ = self.spec(preset, source, beside_running=True)
        try:
            backend, _ = await asyncio.wait_for(create_backend(spec), REACH_TIMEOUT_S)
        except TimeoutError:
            return f"its server did not answer in {REACH_TIMEOUT_S:g} s"
        except BackendError as exc:
            return str(exc)
        await backend.close()
        return None

    def _available_mib(self, cards: Iterable[int], giving_back: int | None) -> float | None:
        """GPU memory an LMDeploy engine could have on the least free of `cards`: free now plus what the
        process `giving_back` holds there."""
        seen = self.sampler.latest().gpus
        gpus = [seen[card] for card in cards if card < len(seen)]
        if not gpus:
            return None
        return min(
            g.free_mib + sum(p.used_mib for p in g.processes if giving_back and p.pid == giving_back) for g in gpus
        )

    async def read_machine(self) -> compat.Machine:
        """Read the machine's facts now, off the event loop, as the console starts: the TurboMind probe
        takes seconds in a child process, which no page or check should wait for later."""
        return await asyncio.to_thread(lambda: self.machine)

    @cached_property
    def machine(self) -> compat.Machine:
        reason = usable_gpu_reason()
        gpus = len(self.sampler.latest().gpus) if reason is None else 0
        return compat.Machine(
            gpu_count=gpus,
            compute_capability=lowest_compute_capability() if gpus else None,
            turbomind=gpus > 0 and _turbomind_loads(),
            no_gpu_reason=reason,
            ray=importlib.util.find_spec("ray") is not None,
        )

    def model_dir(self, preset: Preset, source: str) -> Path | None:
        kinds = kinds_for(preset.backend)
        if not any(kind.takes_local_model for kind in kinds):
            return None
        if not preset.model:  # the embedded model: LMDeploy's checks read its folder; the CPU reads the GGUF
            if not any(kind.lmdeploy_engine for kind in kinds):
                return None
            return embedded_hf_folder()
        try:
            return self.model_roots.resolve(preset.model)
        except (ValueError, ModelLoadError) as exc:
            raise PresetError(f"{source}: model: {exc}") from exc


def _named(gpus: Iterable[int]) -> str:
    numbers = list(gpus)
    return f"GPU{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"


def _turbomind_loads() -> bool:
    """Probe in a child process: loading TurboMind's library here would cost the UI ~400 MB."""
    probe = "from lmdeploy import turbomind; raise SystemExit(0 if turbomind.is_available() else 1)"
    try:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
