"""Side by side: a second preset loaded beside the running one, one message answered by both at once.

Side A is the running engine (switched as always, which leaves side B loaded); side B is loaded
here, on the GPU in a worker of its own beside A's, its KV reserve a share of what A left free.
Both sides share the machine, so their speeds are a live view, not Compare's clean figures.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backends import Backend, BackendSpec, GenerationParams, Refusal, create_backend, kind_of

from .chat import ChatSession, Turn, stream_reply
from .engine_state import SwitchProgress
from .votes import Choice, VoteBook

if TYPE_CHECKING:
    from .core import Console

SIDE_B_ROLE = "side B worker"


@dataclass(frozen=True)
class SideLoad:
    """Side B as loaded: which preset, in how long, with what the fit check said."""

    preset: str
    load_seconds: float
    notes: tuple[str, ...]
    stages: tuple[tuple[str, float], ...]  # (stage, seconds), in order: where the load's time went


@dataclass
class Round:
    """One message answered by both sides; in blind mode the page shows them as Left and Right in a
    random order and names them only once the vote is in."""

    preset_a: str
    preset_b: str
    a: ChatSession
    b: ChatSession
    a_on_left: bool
    blind: bool
    voted: Choice | None = None
    started: float = field(default_factory=time.time)

    @property
    def left(self) -> ChatSession:
        return self.a if self.a_on_left else self.b

    @property
    def right(self) -> ChatSession:
        return self.b if self.a_on_left else self.a

    def side_names(self) -> tuple[str, str]:
        """The presets on the left and on the right."""
        return (self.preset_a, self.preset_b) if self.a_on_left else (self.preset_b, self.preset_a)

    def winner(self, choice: Choice) -> str:
        return {"left": self.side_names()[0], "right": self.side_names()[1], "tie": "tie"}[choice]

    def finished(self) -> bool:
        return all(not session.streaming() and session.turns[-1].role == "assistant" for session in (self.a, self.b))


class NoSideB(Refusal):
    """Nothing is loaded as side B."""


class SideBySide:
    """Side B, and the votes cast between the two sides."""

    def __init__(self, console: Console, votes: VoteBook | None = None):
        self._console = console
        self.votes = votes or VoteBook()
        self.backend: Backend | None = None
        self.loaded: SideLoad | None = None
        self.loading: SwitchProgress | None = None  # side B's load, stage by stage, while it runs
        self._lock = asyncio.Lock()

    async def load(self, name: str, *, user: str | None = None) -> SideLoad:
        """Load a preset as side B beside the running engine (admins only), replacing side B's last.
        The fit check counts only the GPU memory free now: side A keeps its own. Raises PresetError
        (refused, nothing changed) or BackendError (side B is then empty)."""
        console = self._console
        console.access.require_admin(user, "load a preset beside the running one")
        console.jobs.refuse_while_running(f"load {name!r} beside the running engine")
        async with self._lock:
            preset = console.catalog.get(name)
            spec, notes = console.checks.spec(preset, console.catalog.locate(name).name, beside_running=True)
            if kind_of(spec).needs_gpu:  # its GPU memory, and its worker with LMDeploy imported, go to the new B
                await self._close_b(handing_over=True)
            console.sampler.mark(f"side B: loading {name}")
            backend, loaded = await self._start(name, spec, notes)
            await self._close_b()
            self.backend, self.loaded = backend, loaded
            console.sampler.name_process(backend.pid, SIDE_B_ROLE)
            console.sampler.mark(f"side B loaded: {name}")
            return self.loaded

    async def _start(self, name: str, spec: BackendSpec, notes: tuple[str, ...]) -> tuple[Backend, SideLoad]:
        """Start side B's engine; while it loads, `loading` says which stage it is in, and since when."""
        started = time.monotonic()
        progress = self.loading = SwitchProgress(f"loading {name}", started, (("starting the engine", started),))

        def on_stage(stage: str) -> None:  # called from the loading thread
            nonlocal progress
            progress = self.loading = progress.entered(stage)

        try:
            backend, _ = await create_backend(spec, on_stage)
        finally:
            self.loading = None
        ended = time.monotonic()
        return backend, SideLoad(name, ended - started, notes, progress.durations(ended))

    async def unload(self, *, user: str | None = None) -> None:
        self._console.access.require_admin(user, "unload side B")
        async with self._lock:
            await self._close_b()

    async def close(self) -> None:
        async with self._lock:
            await self._close_b()

    def start_round(self, message: str, system_prompt: str, params: GenerationParams, blind: bool) -> Round:
        """A round for this message; raises NoSideB where only one side runs."""
        if self.backend is None or self.loaded is None:
            raise NoSideB("load a preset as side B first (pick one beside Load side B)")
        if not self._console.backend.serving:
            raise NoSideB("side A, the running engine, is not running: pick a preset on the Presets tab")
        preset_a = side_a_name(self._console)

        def session() -> ChatSession:
            return ChatSession(system_prompt=system_prompt, params=params, turns=[Turn("user", message)])

        a_on_left = random.random() < 0.5 if blind else True
        return Round(preset_a, self.loaded.preset, session(), session(), a_on_left, blind)

    async def stream(self, round_: Round) -> AsyncIterator[Round]:
        """Both replies streaming at once; yields the round whenever either side has something to paint."""
        console = self._console
        if (side_b := self.backend) is None:  # unloaded since the round was started
            raise NoSideB("side B was unloaded: load a preset as side B, then send again")
        changed: asyncio.Queue = asyncio.Queue()

        async def follow(backend: Backend, session: ChatSession) -> None:
            async with aclosing(stream_reply(backend, session, console.replies.pacer)) as paints:
                async for _ in paints:
                    changed.put_nowait(True)

        console.sampler.mark("side by side: generation started")
        sides = [
            asyncio.create_task(follow(console.backend, round_.a)),
            asyncio.create_task(follow(side_b, round_.b)),
        ]
        try:
            while not all(side.done() for side in sides):
                waiter = asyncio.ensure_future(changed.get())
                await asyncio.wait([waiter, *sides], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                while not changed.empty():
                    changed.get_nowait()
                yield round_
            for side in sides:
                side.result()  # a fault in either side's stream surfaces here (backend errors are in its stats)
            yield round_
        finally:
            for side in sides:
                side.cancel()
            await asyncio.gather(*sides, return_exceptions=True)
            console.sampler.mark("side by side: generation ended")

    def vote(self, round_: Round, choice: Choice) -> str:
        """Record this round's vote (once, blind rounds only, both replies in); returns the winner's name."""
        if not round_.blind:
            raise ValueError("only blind rounds are voted on: knowing which side is which sways the vote")
        if round_.voted is not None:
            raise ValueError("this round has its vote; send another message for the next one")
        if not round_.finished():
            raise ValueError("wait for both replies to finish before voting")
        winner = round_.winner(choice)
        self.votes.record(round_.preset_a, round_.preset_b, winner)
        round_.voted = choice
        return winner

    async def _close_b(self, handing_over: bool = False) -> None:
        """Close side B; `handing_over`: another GPU engine loads right after (it may reuse B's worker)."""
        backend, self.backend, self.loaded = self.backend, None, None
        if backend is not None:
            await (backend.close_for_next_engine() if handing_over else backend.close())
            self._console.sampler.mark("side B closed")


def side_a_name(console: Console) -> str:
    """Side A's name in rounds and votes: its preset, else what the command line started."""
    state = console.state()
    return state.preset or f"{state.info.model} on {state.info.kind} (command line)"


def parting_point(a: ChatSession, b: ChatSession) -> int | None:
    """Where two greedy replies part: the index of the first token (where both sides gave their
    tokens) or character that differs; None where they do not part."""
    reply_a, reply_b = a.turns[-1], b.turns[-1]
    if reply_a.tokens and reply_b.tokens:
        texts_a, texts_b = [t.text for t in reply_a.tokens], [t.text for t in reply_b.tokens]
    else:
        texts_a, texts_b = list(reply_a.content), list(reply_b.content)
    for index, (piece_a, piece_b) in enumerate(zip(texts_a, texts_b, strict=False)):
        if piece_a != piece_b:
            return index
    return None if len(texts_a) == len(texts_b) else min(len(texts_a), len(texts_b))
