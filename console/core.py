"""The Console: the one running engine every browser session shares, and switching it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from backends import (
    Backend,
    BackendError,
    BackendSpec,
    BackendUnavailable,
    GenerationParams,
    create_backend,
    kind_of,
    running_kind,
)
from backends.heap import set_aside
from presets.schema import Preset
from presets.store import PresetCatalog, PresetError
from telemetry.vram import VramSampler

from .access import AccessPolicy, ChatSlots
from .engine_state import (
    EngineSnapshot,
    EngineState,
    NoEngine,
    SwitchFailed,
    SwitchProgress,
    SwitchReport,
)
from .fleet import FleetControl
from .jobs import Job, JobOrder, JobSlot, RunningJob
from .paths import ModelRoots
from .preset_checks import PresetChecks
from .replies import Replies
from .side_by_side import SideBySide

logger = logging.getLogger(__name__)


_SAME_ENGINE = "the running engine kept: only the generation settings change"


class Console:
    """Owns the backend. Switches are serialized; a chat reads `backend` once per request."""

    def __init__(
        self,
        backend: Backend,
        reason: str,
        preset: str | None = None,
        catalog: PresetCatalog | None = None,
        sampler: VramSampler | None = None,
        model_roots: ModelRoots | None = None,
        default_params: GenerationParams | None = None,
        spec: BackendSpec | None = None,
        access: AccessPolicy | None = None,
    ):
        self._backend, self._reason, self._preset, self._spec = backend, reason, preset, spec
        self._previous: str | None = None
        self._default_params = default_params or GenerationParams()
        self.catalog = catalog or PresetCatalog()
        self.sampler = sampler or VramSampler()
        self.model_roots = model_roots or ModelRoots()
        self.checks = PresetChecks(
            self.catalog, self.model_roots, self.sampler, lambda: self._backend.pid, self._gpus_held
        )
        self.last_switch: SwitchReport | None = None
        self.access = access or AccessPolicy()
        self.chat_slots = ChatSlots(self.access.limits.chats_at_once)
        self.jobs = JobSlot()
        self.fleet = FleetControl(self)  # the running proxy's nodes, for the Fleet tab
        self._switch_lock = asyncio.Lock()
        self.switching: SwitchProgress | None = None  # a switch or restart under way, for every page to show
        self.last_load_stages: tuple[tuple[str, float], ...] = ()  # the last load's stages, in seconds
        self.switch_ended = asyncio.Event()  # set but while a switch or restart is under way
        self.switch_ended.set()
        self.replies = Replies(self)  # every chat's reply, from the engine running at the time
        self.side_b = SideBySide(self)  # a second preset beside this engine, on the Side by side tab
        self._name_engine_process()

    @classmethod
    async def start(cls, spec: BackendSpec, **kwargs) -> Console:
        backend, reason = await create_backend(spec)
        console = cls(backend, reason, spec=spec, **kwargs)
        await console.checks.read_machine()
        return console

    @classmethod
    async def start_preset(cls, name: str, **kwargs) -> Console:
        """Start on a named preset (or a preset file); raises PresetError or BackendError."""
        console = cls(NoEngine("the console is starting"), "starting", **kwargs)
        await console.checks.read_machine()
        await console._switch(name)
        return console

    @property
    def backend(self) -> Backend:
        return self._backend

    def state(self) -> EngineState:
        return EngineState(self._backend.info(), self._reason, self._preset, self._previous, self._default_params)

    async def switch_preset(
        self, name: str, job: Job | None = None, *, user: str | None = None, fresh: bool = False
    ) -> SwitchReport:
        """Validate, then replace the running engine with the preset's. Only admins switch
        (`user`: who asks, as the page's log-in names them); a job switches for itself.

        A preset that fails validation leaves the running engine untouched. A preset whose engine
        is the one running (it differs in generation settings only) keeps it, unless `fresh`. An
        LMDeploy preset needs the GPU memory the old engine holds, so the old one is closed first;
        if the new one then fails to load, SwitchFailed says so and `previous_preset` names
        the way back. Other backends load first and replace the old one only on success.
        While a job runs, only that job (`job`) may switch: anyone else gets EngineBusy.
        """
        if job is None:
            self.access.require_admin(user, "switch presets")
        self.jobs.refuse_while_running(f"switch to {name!r}", job)
        return await self._switch(name, fresh)

    async def _switch(self, name: str, fresh: bool = False) -> SwitchReport:
        async with self._switch_lock:
            preset = self.catalog.get(name)
            spec, notes = self.checks.spec(preset, self.catalog.locate(name).name)
            before = self._gpu_used_mib()
            self.sampler.mark(f"switch to {name}")
            started = time.perf_counter()
            old_name = self._preset
            if fresh or spec != self._spec or not self._backend.serving:
                reason = await self._load(spec, name)
                self._reason = f"preset {name} ({reason})"
            else:
                self.last_load_stages = ((_SAME_ENGINE, 0.0),)
                self._reason = f"preset {name} ({_SAME_ENGINE}, as loaded for {old_name})"
            self._spec = spec
            self._previous = old_name if old_name and old_name != name else self._previous
            self._preset = name
            self._default_params = preset.generation.apply_to(GenerationParams())
            after = self._gpu_used_mib() if before is not None else None
            self.last_switch = SwitchReport(
                name, time.perf_counter() - started, before, after, notes, self.last_load_stages
            )
            return self.last_switch

    def snapshot(self) -> EngineSnapshot:
        """What runs now, so that a job that switches presets can bring it back."""
        return EngineSnapshot(self._preset, self._spec, self._default_params)

    async def restore(self, snapshot: EngineSnapshot, job=None, fresh: bool = False) -> None:
        """Run the snapshot's engine again, unless it still runs (`fresh`: load it anew even so)."""
        changed = isinstance(self._backend, NoEngine) or snapshot.preset != self._preset or snapshot.spec != self._spec
        if fresh or changed:
            if snapshot.preset:
                await self.switch_preset(snapshot.preset, job, fresh=fresh)
            elif snapshot.spec:
                async with self._switch_lock:
                    self._reason = await self._load(snapshot.spec, "the starting engine")
                    self._preset, self._spec, self._default_params = None, snapshot.spec, snapshot.default_params

    async def restore_after_job(self, snapshot: EngineSnapshot, job, fresh: bool = False) -> None:
        """At a job's end, bring back the engine it found (`fresh`: loaded anew, for a job that may have
        left state in it); a failure goes to the job's log (the job's own result stands) and tells the
        user where to pick one."""
        job.log("bringing back the engine that ran before")
        try:
            await self.restore(snapshot, job, fresh)
        except (BackendError, PresetError) as exc:
            job.log(f"the engine that ran before did not come back: {exc}; pick a preset on the Presets tab")

    async def unload(self, reason: str) -> None:
        """Close the engine to free its GPU memory (for a job that needs it)."""
        async with self._switch_lock:
            await self._retire(reason)

    async def restart(self, *, user: str | None = None) -> None:
        """Start the last engine that ran again: after an engine crash, or to reload it (admins only)."""
        self.access.require_admin(user, "restart the engine")
        self.jobs.refuse_while_running("restart the engine")
        async with self._switch_lock:
            if self._spec is None:
                raise BackendUnavailable("no engine has run yet: pick a preset on the Presets tab")
            self.sampler.mark("engine restart")
            self._reason = await self._load(
                self._spec,
                self._preset or "the engine",
                why="the engine is restarting; try again in a minute",
                action="restarting",
            )

    async def _load(self, spec: BackendSpec, name: str, why: str | None = None, action: str = "switching to") -> str:
        """Start the spec's backend and make it the running one: the one place the engine is replaced
        (besides `_retire`). The old one goes first if the new one needs its GPU memory, else after;
        meanwhile `switching` says how far it is, chats through `Replies.stream` wait for it, and anything
        reaching the closed engine is told `why`. Returns the line saying which backend runs and why."""
        now, needs_gpu = time.monotonic(), kind_of(spec).needs_gpu
        first = "closing the running engine" if needs_gpu else "starting the new engine"
        self.switching = SwitchProgress(f"{action} {name}", now, ((first, now),))
        self.switch_ended.clear()
        try:
            return await self._replace(spec, name, why, needs_gpu)
        finally:
            self.last_load_stages = self.switching.durations(time.monotonic())
            self.switching = None
            self.switch_ended.set()

    async def _replace(self, spec: BackendSpec, name: str, why: str | None, needs_gpu: bool) -> str:
        old, old_name = self._backend, self._preset
        if needs_gpu:
            await self._retire(
                why or f"the engine is being switched to {name!r}; try again in a minute", handing_over=True
            )

        def on_stage(stage: str) -> None:
            if self.switching:  # set for the whole switch; the stages come from within it
                self.switching = self.switching.entered(stage)

        try:
            backend, reason = await create_backend(spec, on_stage)
        except BaseException as exc:  # every failure, expected or not, ends in "what happened + the way back"
            what = _failure(exc)
            self.sampler.mark(f"load failed: {name}")
            if needs_gpu:
                back = f"use 'Back to {old_name}'" if old_name else "pick another preset"
                self._backend = NoEngine(f"no engine is running: loading {name!r} failed ({what}); {back}")
                self._preset, self._previous = None, old_name or self._previous
            if not isinstance(exc, Exception):
                raise  # cancelled (a job's Cancel): the state above says what happened
            if not isinstance(exc, BackendError):
                logger.exception("loading %r failed unexpectedly", name)  # a fault: keep its traceback
            raise SwitchFailed(f"loading preset {name!r} failed: {what}") from exc
        self._backend = backend  # serves from now on: pages asking meanwhile must not meet the old one
        self._name_engine_process()
        self.sampler.mark(f"engine loaded: {name}")
        if not needs_gpu:
            on_stage("closing the old engine")
            await old.close()
        set_aside()  # the new engine's objects, and again what a CPU engine's close let the collector reach
        return reason

    async def start_job(self, kind: str, prepare: Callable[[], JobOrder], *, user: str | None = None) -> RunningJob:
        """Run a job that drives the engine (a comparison, a quantization): admins only, one at a time.
        `prepare` checks the request and returns the job's order; it runs once the user may (so someone
        who may not is told that first), and its ValueError refuses the job."""
        self.access.require_admin(user, f"start a {kind}")
        return self.jobs.start(Job(kind, prepare().work(self)))

    async def cancel_job(self, kind: str, *, user: str | None = None) -> None:
        self.access.require_admin(user, f"cancel a {kind}")
        self.jobs.cancel(kind)

    def current_job(self) -> RunningJob | None:
        """The job running now, or the last one (its result stays readable)."""
        return self.jobs.current

    def save_preset(self, name: str, preset: Preset, *, replace: bool = False, user: str | None = None) -> Path:
        """Save a preset of the user's own (admins only: a preset names a model folder to load);
        one of that name is replaced only when asked to."""
        self.access.require_admin(user, "save presets")
        return self.catalog.save(name, preset, replace=replace)

    def _gpus_held(self) -> int:
        """How many GPUs the running engine holds: an LMDeploy engine the first `tp` (the console places it
        nowhere else), any other none."""
        kind = running_kind(self._backend.info())
        if kind is None or not kind.lmdeploy_engine or self._spec is None:
            return 0
        return self._spec.engine.tp

    def _gpu_used_mib(self) -> float | None:
        sample = self.sampler.sample()
        return sample.used_mib() if sample.gpus else None

    def reproduce(self) -> str:
        """Commands and code that run the current engine without the console."""
        info = self._backend.info()
        kind = running_kind(info)
        if self._spec is None or kind is None:
            return "# no engine is running"
        return kind.reproduce(self._spec, info)

    async def close(self) -> None:
        await self.side_b.close()
        async with self._switch_lock:
            await self._backend.close()
        self.sampler.stop()

    async def _retire(self, reason: str, handing_over: bool = False) -> None:
        """Close the running engine; `handing_over`: another GPU engine loads right after."""
        old, self._backend = self._backend, NoEngine(f"no engine is running: {reason}")
        await (old.close_for_next_engine() if handing_over else old.close())
        self.sampler.mark("engine closed")

    def _name_engine_process(self) -> None:
        self.sampler.name_process(self._backend.pid, "engine worker")


def _failure(exc: BaseException) -> str:
    if isinstance(exc, BackendError):
        return str(exc)
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return f"unexpected {type(exc).__name__}: {exc}"
