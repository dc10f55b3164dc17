"""A room's one engine (`backends.hosted`): the room's engine host runs the Console's engine for every
console process of the room, and each process builds its Console on that engine, telling its pages the
preset, the reason and the generation settings the host started with."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import NamedTuple

from backends import BackendSpec, GenerationParams
from backends.hosted import EngineHost, HostedBackend

from .core import Console


class RunningEngine(NamedTuple):
    """What the host says of its engine beyond the backend's own info: how the Console started it."""

    reason: str
    preset: str | None
    spec: BackendSpec | None
    default_params: GenerationParams


async def host_engine(starting: Awaitable[Console], path: str, key: bytes) -> None:
    """Start the Console's engine, then serve it on `path` until it stops serving."""
    console = await starting
    state, snapshot = console.state(), console.snapshot()
    running = RunningEngine(state.reason, snapshot.preset, snapshot.spec, snapshot.default_params)
    await EngineHost(console.backend, running).serve(path, key)


async def join_engine(path: str, key: bytes, **console_options) -> Console:
    """A Console on the room's engine: the host's preset and settings, none of its own to load."""
    backend = await HostedBackend.connect(path, key)
    running: RunningEngine = backend.greeting.about
    console = Console(
        backend,
        running.reason,
        preset=running.preset,
        spec=running.spec,
        default_params=running.default_params,
        **console_options,
    )
    await console.checks.read_machine()
    return console
