"""One engine shared by the console processes of a room: a host process serves its backend over a socket
of this machine (an `EngineHost`), and each console process talks to it through `HostedBackend`, a backend
like any other.

Why: a room spreads its pages over several console processes (one process is one core), and an engine
loaded in each would hold the model, and its GPU memory, once per process. The host runs the engine the
operator's flags name, in-process (the CPU engine) or in its worker (LMDeploy), so a room on a GPU
needs no `lmdeploy serve api_server` in front of it, and the CPU engine's line is one line for the room.

What crosses the socket: a request (`Ask`) or its cancel (`Cancel`) one way, and batches of replies the
other way, everything one turn of the host's event loop replies to one process as one message (as the
engine worker's pipe does, `batches`). Each process is told what the engine is as it connects, and again
whenever that changes (`News`).
The socket is a file in a folder only this user can open, and the connection is authenticated with a key
the room hands its processes: what crosses is pickled, which must only come from the room itself.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import itertools
import logging
import os
import socket
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, Literal, NamedTuple

from .base import (
    Backend,
    BackendError,
    BackendInfo,
    BackendUnavailable,
    ChatRequest,
    Delta,
    EngineCrashed,
    NextTokenLogprobs,
    Refusal,
    SchedulerMetrics,
    TextScore,
)
from .batches import Inbox, Outbox, route

logger = logging.getLogger(__name__)

Method = Literal["stream_chat", "score_text", "next_token_logprobs", "scheduler_metrics", "control"]
_METHODS = frozenset(Method.__args__)  # type: ignore[attr-defined]
_CAPABILITIES = ("supports_tools", "supports_perplexity", "supports_logprobs")
MAIN = "main"  # the engine every host serves
_CONNECT_TIMEOUT_S = 10.0
_WATCH_EVERY_S = 1.0
_NEWS_READS_A_WATCH = 4  # how often the news is read, a watch: a switch's stages reach every page within 0.25 s
ENGINE_STARTING_AGAIN = (
    "the room's engine ended and is starting again; the reply so far is kept: send again in a minute"
)


class Facts(NamedTuple):
    """One engine, as the host tells it."""

    info: BackendInfo
    capabilities: dict[str, bool]
    pid: int | None


class News(NamedTuple):
    """What a connecting process is told first, and every process again whenever it changes: each engine
    the host serves now, by name (MAIN, and any other its subclass serves), and what the host adds
    (`about`, e.g. the preset the main engine came from and a switch under way)."""

    engines: dict[str, Facts]
    about: Any


class Ask(NamedTuple):
    """Run `method` of the host's engine `engine` with `args` (or, for "control", the host's control
    `args[0]` with the rest): a stream's deltas come back one `Answer` each, a call's value as one; then
    `Ended`, or `Failed` instead."""

    rid: int
    engine: str
    method: Method
    args: tuple


class Cancel(NamedTuple):
    rid: int


class Answer(NamedTuple):
    rid: int
    value: Any


class Ended(NamedTuple):
    rid: int


class Failed(NamedTuple):
    rid: int
    error: Refusal


class EngineHost(abc.ABC):
    """Serves the engines that `running` names to every process that connects with the room's key; a
    subclass names them, tells more of them (`about`), takes controls (`control`) and decides when to end
    (`keep_serving`)."""

    def __init__(self):
        self._served: list[_Served] = []
        self._news: News | None = None

    @abc.abstractmethod
    def running(self) -> dict[str, Backend]:
        """The engines running now, by name (MAIN among them), as the news tells them."""

    async def engine(self, name: str) -> Backend:
        """The engine a request names, to run on."""
        if (backend := self.running().get(name)) is None:
            raise BackendUnavailable(f"the room's engine host serves no engine {name!r}")
        return backend

    def about(self) -> Any:
        return None

    async def control(self, name: str, *args) -> Any:
        raise BackendError(f"the room's engine host takes no {name!r}")

    async def keep_serving(self) -> bool:
        """Asked every second; False ends the host."""
        return True

    def news(self) -> News:
        engines = {
            name: Facts(backend.info(), {c: getattr(backend, c) for c in _CAPABILITIES}, backend.pid)
            for name, backend in self.running().items()
        }
        return News(engines, self.about())

    async def serve(self, path: str, key: bytes) -> None:
        if os.path.exists(path):  # left by a host that ended: a new listener cannot bind over it
            os.unlink(path)
        listener = Listener(path, family="AF_UNIX", authkey=key)
        loop = asyncio.get_running_loop()
        stopped = threading.Event()
        accepting = threading.Thread(
            target=self._accept, args=(listener, loop, stopped), name="engine-host-accept", daemon=True
        )
        accepting.start()
        try:
            while await self.keep_serving():
                for _ in range(_NEWS_READS_A_WATCH):
                    await asyncio.sleep(_WATCH_EVERY_S / _NEWS_READS_A_WATCH)
                    self.tell_news()
            logger.error("the engine stopped serving; the room's engine host ends so that the room starts it again")
        finally:
            stopped.set()
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as waking:
                waking.connect(path)  # closing a listener does not wake an accept() waiting on it; a caller does
            accepting.join(timeout=_CONNECT_TIMEOUT_S)
            listener.close()

    def tell_news(self) -> None:
        if (news := self.news()) != self._news:
            self._news = news
            self._served = [served for served in self._served if served.tell(news)]

    def _accept(self, listener: Listener, loop: asyncio.AbstractEventLoop, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                connection = listener.accept()
            except (OSError, EOFError, AuthenticationError) as exc:  # a wrong key, a client gone mid-handshake
                if not stopped.is_set():
                    logger.warning("refused a connection to the engine host: %s", exc)
                continue
            loop.call_soon_threadsafe(self._admit, connection)

    def _admit(self, connection: Connection) -> None:
        served = _Served(self, connection)
        if served.tell(self.news()):
            self._served.append(served)


class OneEngineHost(EngineHost):
    """Serves one backend until it stops serving (its worker died), and then ends, so that the room starts
    it again."""

    def __init__(self, backend: Backend):
        super().__init__()
        self._backend = backend

    def running(self) -> dict[str, Backend]:
        return {MAIN: self._backend}

    async def keep_serving(self) -> bool:
        return self._backend.serving


class _Served:
    """One connected console process: its requests, each a task on the host's loop, and its replies."""

    def __init__(self, host: EngineHost, connection: Connection):
        self._host, self._connection = host, connection
        loop = asyncio.get_running_loop()
        self._outbox = Outbox(loop, self._send)
        self._running: dict[int, asyncio.Task] = {}
        loop.add_reader(connection.fileno(), self._read)

    def tell(self, news: News) -> bool:
        """Send the news; False where this process is gone."""
        self._send(news)
        return not self._connection.closed

    def _read(self) -> None:
        try:
            while self._connection.poll():
                match self._connection.recv():
                    case Ask(rid, engine, method, args) if method in _METHODS:
                        task = self._running[rid] = asyncio.get_running_loop().create_task(
                            self._answer(rid, engine, method, args)
                        )
                        task.add_done_callback(functools.partial(self._forget, rid))
                    case Cancel(rid) if rid in self._running:
                        self._running[rid].cancel()
        except (EOFError, OSError):
            self._drop()

    async def _answer(self, rid: int, engine: str, method: Method, args: tuple) -> None:
        try:
            if method == "control":
                value = await self._host.control(*args)
                self._host.tell_news()  # sent at once, so the asking process knows what runs before its answer
                self._outbox.put(Answer(rid, value))
            elif method == "stream_chat":
                async for delta in (await self._host.engine(engine)).stream_chat(*args):
                    self._outbox.put(Answer(rid, delta))
            else:
                self._outbox.put(Answer(rid, await getattr(await self._host.engine(engine), method)(*args)))
        except EngineCrashed as exc:  # the host starts its main engine again, or ends and the room starts it
            self._outbox.put(Failed(rid, EngineCrashed(ENGINE_STARTING_AGAIN) if engine == MAIN else exc))
        except Refusal as exc:
            self._outbox.put(Failed(rid, _portable(exc)))
        except Exception as exc:  # a fault: reported to the process that asked, kept in the host's log
            logger.exception("the engine host's %s failed", method)
            self._outbox.put(Failed(rid, BackendError(f"unexpected {type(exc).__name__}: {exc}")))
        else:
            self._outbox.put(Ended(rid))

    def _forget(self, rid: int, _task: asyncio.Task) -> None:
        self._running.pop(rid, None)

    def _send(self, message) -> None:
        try:
            self._connection.send(message)
        except OSError:  # the process went away; its requests end with it
            self._drop()

    def _drop(self) -> None:
        if self._connection.closed:
            return
        asyncio.get_running_loop().remove_reader(self._connection.fileno())
        self._connection.close()
        for task in self._running.values():
            task.cancel()


class HostLink:
    """One console process's connection to the room's engine host: its requests and their replies, and
    the host's news. A lost host (it ended, and the room starts it again) fails the replies streaming at
    that moment; the next request connects to the new one. `on_news(about)` hears the host's news (from
    a reader thread) whenever the host tells it, `on_lost()` that the host is gone (from that thread)."""

    def __init__(self, path: str, key: bytes):
        self._path, self._key = path, key
        self.on_news: Callable[[Any], None] = lambda about: None
        self.on_lost: Callable[[], None] = lambda: None
        self._connection: Connection | None = None
        self._news: News | None = None
        self._inboxes: dict[int, Inbox] = {}
        self._ids = itertools.count(1)
        self._connecting = asyncio.Lock()

    @classmethod
    async def connect(cls, path: str, key: bytes) -> HostLink:
        link = cls(path, key)
        await asyncio.to_thread(link._connect)
        return link

    @property
    def news(self) -> News:
        assert self._news is not None  # set by connect()
        return self._news

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def backend(self, name: str = MAIN) -> HostedBackend:
        """The host's engine `name` as a backend of this process."""
        return HostedBackend(self, name)

    async def control(self, name: str, *args) -> Any:
        """Run one of the host's controls (e.g. a preset switch) and return its value."""
        return await self.call(MAIN, "control", name, *args)

    async def call(self, engine: str, method: Method, *args):
        async with self.asking(engine, method, *args) as inbox:
            value = _answer(await inbox.get())
            _answer(await inbox.get())  # its Ended
            return value

    @asynccontextmanager
    async def asking(self, engine: str, method: Method, *args) -> AsyncIterator[Inbox]:
        """Send one request and hand over its replies; leaving before its end cancels it in the host."""
        connection = self._connection or await self._reconnect()
        rid = next(self._ids)
        inbox = self._inboxes[rid] = Inbox(asyncio.get_running_loop(), (Ended, Failed))
        try:
            self._send(connection, Ask(rid, engine, method, args))
            yield inbox
        finally:
            self._inboxes.pop(rid, None)
            if not inbox.ended and self._connection is connection:
                self._send(connection, Cancel(rid))

    async def close(self) -> None:
        if connection := self._connection:
            self._connection = None
            connection.close()

    async def _reconnect(self) -> Connection:
        async with self._connecting:
            if self._connection is None:
                await asyncio.to_thread(self._connect)
        assert self._connection is not None
        return self._connection

    def _connect(self) -> None:
        try:
            connection = _client(self._path, self._key)
            self._hear(connection.recv())
        except (OSError, EOFError, AuthenticationError) as exc:
            raise BackendUnavailable(
                f"the room's engine is not answering ({exc}); the room starts it again when it ends: send again "
                "in a minute"
            ) from exc
        self._connection = connection
        threading.Thread(target=self._read, args=(connection,), name="engine-host-reader", daemon=True).start()

    def _hear(self, news: News) -> None:
        self._news = news
        self.on_news(news.about)

    def _send(self, connection: Connection, message) -> None:
        try:
            connection.send(message)
        except OSError as exc:
            raise EngineCrashed(ENGINE_STARTING_AGAIN) from exc

    def _read(self, connection: Connection) -> None:
        """Route each batch of replies to its request, and hear the news, until the host goes; then fail
        what was open."""
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, News):
                self._hear(message)
            else:
                route(self._inboxes, message)
        if self._connection is connection:
            self._connection = None
            self.on_lost()
        route(self._inboxes, [Failed(rid, EngineCrashed(ENGINE_STARTING_AGAIN)) for rid in list(self._inboxes)])


_NOT_SERVED = Facts(BackendInfo(kind="none", model="-", engine="not served by the room's engine host"), {}, None)


class HostedBackend(Backend):
    """One engine of the room's host (`name`), seen from one console process, as the host runs it now."""

    def __init__(self, link: HostLink, name: str = MAIN):
        self.link, self._name = link, name

    @classmethod
    async def connect(cls, path: str, key: bytes) -> HostedBackend:
        return cls(await HostLink.connect(path, key))

    @property
    def _facts(self) -> Facts:
        return self.link.news.engines.get(self._name, _NOT_SERVED)

    @property
    def supports_tools(self) -> bool:  # type: ignore[override]  # the engine the host runs now
        return self._facts.capabilities.get("supports_tools", False)

    @property
    def supports_perplexity(self) -> bool:  # type: ignore[override]  # the engine the host runs now
        return self._facts.capabilities.get("supports_perplexity", False)

    @property
    def supports_logprobs(self) -> bool:  # type: ignore[override]  # the engine the host runs now
        return self._facts.capabilities.get("supports_logprobs", False)

    @property
    def pid(self) -> int | None:
        return self._facts.pid

    @property
    def serving(self) -> bool:
        return self.link.connected and self._name in self.link.news.engines

    def info(self) -> BackendInfo:
        return self._facts.info

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[Delta]:
        async with self.link.asking(self._name, "stream_chat", request) as inbox:
            while not isinstance(reply := await inbox.get(), Ended):
                yield _answer(reply)

    async def score_text(self, text: str) -> TextScore:
        return await self.link.call(self._name, "score_text", text)

    async def next_token_logprobs(self, text: str, max_tokens: int) -> NextTokenLogprobs:
        return await self.link.call(self._name, "next_token_logprobs", text, max_tokens)

    async def scheduler_metrics(self) -> SchedulerMetrics | None:
        return await self.link.call(self._name, "scheduler_metrics")

    async def close(self) -> None:
        """The main engine's backend is the process's link to the host: closing it ends the link. Any other
        engine is the host's to close (a control)."""
        if self._name == MAIN:
            await self.link.close()


def _client(path: str, key: bytes) -> Connection:
    """A connection to the host; OSError where nothing listens there or it does not answer in time."""
    connection = Client(path, family="AF_UNIX", authkey=key)
    if not connection.poll(_CONNECT_TIMEOUT_S):
        connection.close()
        raise TimeoutError(f"the engine host at {path} did not greet in {_CONNECT_TIMEOUT_S:g} s")
    return connection


def _portable(error: Refusal) -> Refusal:
    """The error as the asking process can unpickle it: the backends' own kinds keep theirs."""
    return error if type(error).__module__ == Refusal.__module__ else BackendError(str(error))


def _answer(reply: Answer | Ended | Failed):
    match reply:
        case Failed(_, error):
            raise error
        case Answer(_, value):
            return value
    return None
