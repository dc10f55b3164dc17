"""LMDeploy's pipeline, hosted in a worker process and streamed over a pipe.

See `lmdeploy_worker` for why the engine lives in its own process and for the wire format.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import multiprocessing
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from .base import (
    Backend,
    BackendError,
    BackendInfo,
    ChatRequest,
    Delta,
    EngineCrashed,
    Finish,
    ModelLoadError,
    NextTokenLogprobs,
    PromptTooLong,
    SchedulerMetrics,
    TextScore,
    TokenChoice,
    TokenLogprobs,
    Usage,
)
from .lmdeploy_config import EngineOptions
from .lmdeploy_worker import main as worker_main
from .tool_calls import CallPieces
from .tool_prompt import ToolTurn

_CLOSED = "the engine was closed (a preset switch or shutdown); the reply so far is kept"
_LOAD_TIMEOUT_S = 1800  # a 70B model from a slow disk takes many minutes
_CLOSE_TIMEOUT_S = 30


class LmdeployBackend(Backend):
    """Chat through `lmdeploy.pipeline` in a child process; `close()` ends the process."""

    supports_tools = True  # LMDeploy's parser for the model, or the console's tool-prompt template
    supports_perplexity = True
    supports_logprobs = True  # LMDeploy's get_logits, on both engines

    def __init__(self, model_path: str, options: EngineOptions, on_stage: Callable[[str], None] | None = None):
        self._model_path, self._options = model_path, options
        self._on_stage = on_stage or (lambda stage: None)
        context = multiprocessing.get_context("spawn")  # CUDA cannot survive a fork
        self._conn, child_conn = context.Pipe()
        # Not a daemon: LMDeploy's engines start processes of their own, which daemons may not.
        self._process = context.Process(
            target=worker_main, args=(child_conn, model_path, options), name="lmdeploy-engine-worker"
        )
        self._process.start()
        child_conn.close()
        # multiprocessing joins live children at exit; the worker only ends once told to
        atexit.register(self._shutdown)
        self._send_lock = threading.Lock()
        self._streams: dict[int, _Replies] = {}
        self._ids = itertools.count(1)
        self._crashed: str | None = None
        self._closing = False
        self._engine_info: dict = {}
        self.load_seconds = 0.0

    @classmethod
    async def start(
        cls, model_path: str, options: EngineOptions, on_stage: Callable[[str], None] | None = None
    ) -> LmdeployBackend:
        """Spawn the worker and wait until the model is loaded (or say why it was not); `on_stage` hears
        each stage of the load as the worker reaches it (from another thread)."""
        if on_stage:
            on_stage("starting the engine worker")
        backend = cls(model_path, options, on_stage)
        started = time.perf_counter()
        try:
            backend._engine_info = await asyncio.to_thread(backend._wait_until_ready)
        except BaseException:
            backend._kill()
            raise
        backend.load_seconds = time.perf_counter() - started
        threading.Thread(target=backend._read_replies, name="lmdeploy-engine-reader", daemon=True).start()
        return backend

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def info(self) -> BackendInfo:
        details = {**self._engine_info, "load_seconds": round(self.load_seconds, 1), "worker_pid": self.pid}
        engine = details.pop("engine", self._options.engine)
        return BackendInfo(kind="lmdeploy", model=self._model_path, engine=engine, details=details)

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """With a `tool_parser`, a chat with tools runs through LMDeploy's own tool path (the
        model's chat template and parser); without one, through the console's tool-prompt template."""
        try:
            turn = ToolTurn.of(request.messages, request.tools, request.tool_choice)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        if turn.forced and self._engine_info.get("engine") == "turbomind":
            raise BackendError(
                "forced tool calls (tool_choice required or a named function) need the PyTorch engine: "
                'TurboMind\'s guided decoding stopped a forced call after `{"name":` (measured, lmdeploy 0.18). '
                "Use tool_choice auto, or a preset with engine: pytorch"
            )
        params = request.params.as_dict()
        if turn.tools and self._options.tool_parser and request.tool_prompt == "model":
            command = ("tools_chat", request.messages, params, request.tools, request.tool_choice)
            turn = ToolTurn(request.messages, None, None)  # the worker parses; its text passes through
        else:
            command = ("chat", turn.messages, params, turn.response_format)  # guided decoding when forced
        pieces = CallPieces()
        async with self._request(*command) as replies:
            while True:
                kind, *payload = await replies.get()
                if kind == "text":
                    for delta in turn.deltas(payload[0]):
                        yield delta
                elif kind == "call":
                    yield pieces.add(*payload)
                elif kind == "token_logprobs":
                    yield TokenLogprobs(
                        tuple(TokenChoice(text, lp, tuple(map(tuple, alts))) for text, lp, alts in payload[0])
                    )
                elif kind == "usage":
                    yield Usage(*payload)
                elif kind == "finish":
                    calls = [*turn.finish(), *pieces.whole()]
                    for call in calls:
                        yield call
                    yield Finish("tool_calls" if calls else payload[0])
                    return
                else:
                    raise _error(*payload)

    async def score_text(self, text: str) -> TextScore:
        mean_nll, tokens = await self._one_reply("score", text)
        return TextScore(mean_nll=mean_nll, tokens=tokens)

    async def next_token_logprobs(self, text: str, max_tokens: int) -> NextTokenLogprobs:
        token_ids, logprobs = await self._one_reply("logprobs", text, max_tokens)
        return NextTokenLogprobs(tuple(token_ids), logprobs)

    async def scheduler_metrics(self) -> SchedulerMetrics:
        """LMDeploy's scheduler now (`AsyncEngine.get_schedule_metrics`)."""
        (metrics,) = await self._one_reply("metrics")
        return SchedulerMetrics(
            metrics["cache_usage"], metrics["active_seqs"], metrics["waiting_seqs"], metrics["prefix_cache_hit_rate"]
        )

    async def _one_reply(self, kind: str, *args) -> list:
        """A request the worker answers once, with a reply of its own kind (or an error)."""
        async with self._request(kind, *args) as replies:
            reply_kind, *payload = await replies.get()
        if reply_kind != kind:
            raise _error(*payload)
        return payload

    @asynccontextmanager
    async def _request(self, kind: str, *args) -> AsyncIterator[_Replies]:
        """Send one request to the worker and hand over its replies. Leaving before the
        last reply (a closed stream, a cancelled task) cancels the request in the worker."""
        if self._crashed:
            raise EngineCrashed(self._crashed)
        rid = next(self._ids)
        replies = _Replies(asyncio.get_running_loop())
        self._streams[rid] = replies
        try:
            self._send(kind, rid, *args)
            yield replies
        finally:
            self._streams.pop(rid, None)
            if not replies.ended and not self._crashed:
                self._send("cancel", rid)

    async def close(self) -> None:
        await asyncio.to_thread(self._shutdown)

    def _send(self, *message) -> None:
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, EOFError) as exc:
            raise EngineCrashed(self._crashed or "the engine worker is gone; restart the engine") from exc

    def _wait_until_ready(self) -> dict:
        deadline = time.monotonic() + _LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._conn.poll(0.5):
                try:
                    kind, payload = self._conn.recv()
                except EOFError:
                    break
                if kind == "ready":
                    return payload
                if kind == "stage":
                    self._on_stage(payload)
                    continue
                raise ModelLoadError(f"LMDeploy could not load {self._model_path}: {payload}")
            if not self._process.is_alive():
                break
        self._process.join(timeout=1)
        raise ModelLoadError(
            f"the LMDeploy worker exited (code {self._process.exitcode}) while loading {self._model_path}; "
            "its log is in the console's terminal"
        )

    def _read_replies(self) -> None:
        """Route each reply to its stream; if the worker dies, fail every open stream."""
        while True:
            try:
                rid, *reply = self._conn.recv()
            except (EOFError, OSError):
                break
            if replies := self._streams.get(rid):
                replies.put(tuple(reply))
        self._process.join(timeout=5)
        if self._closing:
            self._crashed = _CLOSED
        else:
            self._crashed = (
                f"the LMDeploy engine process ended (exit code {self._process.exitcode}); "
                "the reply so far is kept. Restart the engine (Presets tab) to go on"
            )
        for replies in list(self._streams.values()):
            replies.put(("error", "crashed", self._crashed))

    def _shutdown(self) -> None:
        if self._conn.closed:
            return
        atexit.unregister(self._shutdown)
        self._closing = True
        # Replies still streaming end here, with what they have so far: what the worker does
        # with them on its way out (TurboMind was seen to end one as "length") is not theirs to say.
        for replies in list(self._streams.values()):
            replies.put(("error", "crashed", _CLOSED))
        try:
            self._send("close")
        except EngineCrashed:
            pass
        self._process.join(timeout=_CLOSE_TIMEOUT_S)
        self._kill()
        self._conn.close()

    def _kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)


class _Replies:
    """One request's replies, handed from the reader thread to the requester's event loop."""

    _LAST = ("finish", "error", "score", "logprobs", "metrics")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop, self._queue = loop, asyncio.Queue()
        self.ended = False

    def put(self, reply: tuple) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, reply)
        except RuntimeError:  # its event loop is closed (the console is exiting): nobody is reading
            pass

    async def get(self) -> tuple:
        reply = await self._queue.get()
        self.ended = reply[0] in self._LAST
        return reply


def _error(kind: str, message: str) -> BackendError:
    if kind == "prompt_too_long":
        return PromptTooLong(f"{message} Clear the chat or shorten the message.")
    if kind == "crashed":
        return EngineCrashed(message)
    return BackendError(f"LMDeploy: {message}")
