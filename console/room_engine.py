"""A room's one engine (`backends.hosted`): the room's engine host runs a Console of its own, whose engine
(and side B) every console process of the room chats with; a preset switch, a restart, side B's load or a
job (a comparison, a quantization) asked in any process runs there, and every process follows what runs
(the preset, its generation settings, a switch under way, side B, the job)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable
from typing import Literal, NamedTuple

from backends import Backend, BackendSpec, BackendUnavailable, GenerationParams
from backends.heap import set_aside
from backends.hosted import MAIN, EngineHost, HostLink

from .core import Console
from .engine_state import NoEngine, SwitchProgress, SwitchReport
from .jobs import JobOrder, JobStatus, RunningJob
from .side_by_side import SideBySide, SideLoad

logger = logging.getLogger(__name__)

_SWITCH_END_POLL_S = 0.1
_HOST_STARTING_S = 1800  # a 70B model from a slow disk takes many minutes
SIDE_B = "side B"  # the host's name for side B's engine


class RunningEngine(NamedTuple):
    """What the host tells of its engine beyond the backend's own info: how the Console runs it."""

    reason: str
    preset: str | None
    previous_preset: str | None
    spec: BackendSpec | None
    default_params: GenerationParams
    switching: SwitchProgress | None
    last_switch: SwitchReport | None
    side_b: SideLoad | None  # side B as loaded, where one is
    side_b_loading: SwitchProgress | None
    job: HostedJob | None  # the job running, or the last one


class ConsoleHost(EngineHost):
    """The engine host of a room: serves whichever engine its Console runs (a request sent during a switch
    waits for the new one), switches and restarts it when a console process asks, and restarts an engine
    that crashed by itself (nobody's page has a Restart that would reach it otherwise)."""

    def __init__(self, console: Console):
        super().__init__()
        self._console = console
        self._restart: asyncio.Task | None = None

    async def engine(self, name: str) -> Backend:
        if name == SIDE_B:
            if (side_b := self._console.side_b.backend) is None:
                raise BackendUnavailable("side B was unloaded: load a preset as side B, then send again")
            return side_b
        await self._console.switch_ended.wait()
        return self._console.backend

    def running(self) -> dict[str, Backend]:
        side_b = self._console.side_b.backend
        return {MAIN: self._console.backend, **({SIDE_B: side_b} if side_b else {})}

    def about(self) -> RunningEngine:
        console = self._console
        state, snapshot, job = console.state(), console.snapshot(), console.current_job()
        return RunningEngine(
            state.reason,
            state.preset,
            state.previous_preset,
            snapshot.spec,
            state.default_params,
            console.switching,
            console.last_switch,
            console.side_b.loaded,
            console.side_b.loading,
            HostedJob.of(job) if job else None,
        )

    async def control(self, name: str, *args):
        """The console process asking has checked who may; the host's own Console lets it."""
        match name, args:
            case "switch_preset", (str(preset), bool(fresh)):
                return await self._console.switch_preset(preset, fresh=fresh)
            case "restart", ():
                return await self._console.restart()
            case "load_side_b", (str(preset),):
                return await self._console.side_b.load(preset)
            case "unload_side_b", ():
                return await self._console.side_b.unload()
            case "start_job", (str(kind), JobOrder() as order):
                job = await self._console.start_job(kind, lambda: order)
                return HostedJob.of(job)
            case "cancel_job", (str(kind),):
                return await self._console.cancel_job(kind)
        return await super().control(name, *args)

    async def keep_serving(self) -> bool:
        """Restart a crashed engine, in a task of its own: the news of its stages goes on meanwhile. One
        that fails to load leaves "no engine", which the pages show, and an admin switches from. A crashed
        side B is unloaded: the pages then offer to load it again."""
        console = self._console
        backend = console.backend
        crashed = not backend.serving and not isinstance(backend, NoEngine)
        if crashed and console.switch_ended.is_set() and (self._restart is None or self._restart.done()):
            logger.error("the room's engine ended; starting it again")
            self._restart = asyncio.create_task(console.restart())
            self._restart.add_done_callback(_log_failed_restart)
        if console.side_b.backend is not None and not console.side_b.backend.serving:
            logger.error("side B's engine ended; unloading it")
            await console.side_b.unload()
        return True


def _log_failed_restart(restart: asyncio.Task) -> None:
    if not restart.cancelled() and (error := restart.exception()) is not None:
        logger.error("the room's engine did not start again: %s", error)


async def host_engine(starting: Awaitable[Console], path: str, key: bytes) -> None:
    """Start the Console's engine, then serve it on `path` (until the room ends this process)."""
    console = await starting
    set_aside()  # what starting built is kept while the host serves (backends/heap.py)
    await ConsoleHost(console).serve(path, key)


class RoomConsole(Console):
    """A console process of a room, on the room's engine: a switch, a restart or side B's load asked here
    runs in the engine host, and this process follows what the host runs, as every other process does."""

    def __init__(self, link: HostLink, **options):
        running: RunningEngine = link.news.about
        super().__init__(
            link.backend(),
            running.reason,
            preset=running.preset,
            spec=running.spec,
            default_params=running.default_params,
            **options,
        )
        self.switch_ended = _SwitchEnded()  # set and cleared from the reader thread that hears the host
        self._link = link
        self.side_b = self._room_side_b = RoomSideB(self, link)
        self._job: HostedJob | None = None
        self._follow(running)
        link.on_news, link.on_lost = self._follow, self._host_lost

    async def switch_preset(self, name: str, job=None, *, user: str | None = None, fresh: bool = False) -> SwitchReport:
        self.access.require_admin(user, "switch presets")
        return await self._link.control("switch_preset", name, fresh)

    async def restart(self, *, user: str | None = None) -> None:
        self.access.require_admin(user, "restart the engine")
        await self._link.control("restart")

    async def start_job(self, kind: str, prepare, *, user: str | None = None) -> RunningJob:
        self.access.require_admin(user, f"start a {kind}")
        started = await self._link.control("start_job", kind, prepare())
        if self._job is None or self._job.number != started.number:  # the host's news may have told it first
            self._job = started
        return self._job

    async def cancel_job(self, kind: str, *, user: str | None = None) -> None:
        self.access.require_admin(user, f"cancel a {kind}")
        await self._link.control("cancel_job", kind)

    def current_job(self) -> RunningJob | None:
        return self._job

    def _follow(self, running: RunningEngine) -> None:
        self._reason, self._preset, self._previous = running.reason, running.preset, running.previous_preset
        self._spec, self._default_params = running.spec, running.default_params
        self.switching, self.last_switch = running.switching, running.last_switch
        if running.switching is None:
            self.switch_ended.set()
        else:
            self.switch_ended.clear()
        self._room_side_b.follow(running)
        self._follow_job(running.job)
        self._name_engine_process()

    def _host_lost(self) -> None:
        """The host ended (the room starts it again), and a switch or a job under way there with it: nothing
        here may wait for their end, since no news comes until a request connects to the new host."""
        self.switching = None
        self.switch_ended.set()
        if self._job is not None and not (now := self._job.now).finished:
            error = f"the room's engine ended while the {now.kind} ran; start it again in a minute"
            self._job.now = dataclasses.replace(now, state="failed", message=f"failed: {error}", error=error)

    def _follow_job(self, told: HostedJob | None) -> None:
        """Keep the job a page follows the same object while it runs: a page that started it knows it so."""
        if told is None or self._job is None or self._job.number != told.number:
            self._job = told
        else:
            self._job.now = told.now


class HostedJob:
    """A job running in the room's engine host, as the news last told it."""

    def __init__(self, kind: str, number: int, now: JobStatus):
        self.kind, self.number, self.now = kind, number, now

    @classmethod
    def of(cls, job: RunningJob) -> HostedJob:
        """The host's job as it is now, to tell the room's processes."""
        return cls(job.kind, job.number, job.status())

    def status(self) -> JobStatus:
        return self.now

    def __eq__(self, other) -> bool:  # the host tells news only when it differs from the last
        return isinstance(other, HostedJob) and (self.number, self.now) == (other.number, other.now)


class RoomSideB(SideBySide):
    """Side B of a room: the engine host's, loaded and unloaded there for every process of the room."""

    def __init__(self, console: RoomConsole, link: HostLink):
        super().__init__(console)
        self._link = link

    async def load(self, name: str, *, user: str | None = None) -> SideLoad:
        self._console.access.require_admin(user, "load a preset beside the running one")
        return await self._link.control("load_side_b", name)

    async def unload(self, *, user: str | None = None) -> None:
        self._console.access.require_admin(user, "unload side B")
        await self._link.control("unload_side_b")

    async def close(self) -> None:
        """Side B stays with the host, for the room's other processes."""

    def follow(self, running: RunningEngine) -> None:
        self.loaded, self.loading = running.side_b, running.side_b_loading
        self.backend = self._link.backend(SIDE_B) if running.side_b else None


class _SwitchEnded(asyncio.Event):
    """`Console.switch_ended` for a process that hears of switches from a thread: asyncio's Event may only
    be set from its own loop, so this one keeps a thread-safe event, and a wait polls it."""

    def __init__(self):
        super().__init__()
        self._ended = threading.Event()
        self._ended.set()

    def set(self) -> None:
        self._ended.set()

    def clear(self) -> None:
        self._ended.clear()

    def is_set(self) -> bool:
        return self._ended.is_set()

    async def wait(self) -> Literal[True]:
        while not self._ended.is_set():
            await asyncio.sleep(_SWITCH_END_POLL_S)
        return True


async def join_engine(path: str, key: bytes, **console_options) -> Console:
    """A Console on the room's engine: the host's preset and settings, none of its own to load. A process
    started while the host starts again (after it ended) waits for it, as long as a load may take."""
    deadline = time.monotonic() + _HOST_STARTING_S
    while True:
        try:
            link = await HostLink.connect(path, key)
            break
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)
    console = RoomConsole(link, **console_options)
    await console.checks.read_machine()
    return console
