"""LMDeploy's pipeline, hosted in a worker process and streamed over a pipe.

See `lmdeploy_worker` for why the engine lives in its own process and for the wire format.
"""

from __future__ import annotations

import asyncio
import itertools
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
from .lmdeploy_process import WORKERS, EngineWorker
from .tool_calls import CallPieces
from .tool_prompt import ToolTurn

_CLOSED = "the engine was closed (a preset switch or shutdown); the reply so far is kept"
_CLOSE_TIMEOUT_S = 30


class LmdeployBackend(Backend):
    """Chat through `lmdeploy.pipeline` in a worker process; `close()` closes the engine, and ends the
    process unless the next engine may load in it."""

    supports_tools = True  # LMDeploy's parser for the model, or the console's tool-prompt template
    supports_perplexity = True
    supports_logprobs = True  # LMDeploy's get_logits, on both engines

    def __init__(self, worker: EngineWorker, model_path: str, options: EngineOptions, engine_info: dict):
        self._worker, self._model_path, self._options = worker, model_path, options
        self._engine_info = engine_info
        self._streams: dict[int, _Replies] = {}
        self._ids = itertools.count(1)
        self._crashed: str | None = None
        self._closing = False
        self._closed_cleanly: tuple[float | None, bool] | None = None  # the worker's ("closed", ...) report
        self.load_seconds = 0.0
        self._reader = threading.Thread(target=self._read_replies, name="lmdeploy-engine-reader", daemon=True)
        self._reader.start()

    @classmethod
    async def start(
        cls, model_path: str, options: EngineOptions, on_stage: Callable[[str], None] | None = None
    ) -> LmdeployBackend:
        """Load the engine in the idle worker where there is one, else in the spare or a new worker
        process, and wait until it is ready (or say why it is not); `on_stage` hears each stage of the
        load as the worker reaches it (from another thread). A reused worker that fails to load gets one
        retry in a fresh process: the failure may be the reused process's, not the preset's. Once loaded,
        a spare worker is started for the next switch that cannot reuse this one."""
        on_stage = on_stage or (lambda stage: None)
        started = time.perf_counter()
        if worker := WORKERS.take_idle():
            on_stage(
                f"reusing the engine worker (LMDeploy imported, CUDA context made; engine {worker.engines_loaded + 1})"
            )
            try:
                info = await _load_in(worker, model_path, options, on_stage)
            except ModelLoadError as exc:
                on_stage(f"the reused worker failed ({exc}); loading in a fresh process")
                worker = None
        if worker is None:
            worker, spare = await asyncio.to_thread(WORKERS.fresh)
            on_stage("taking the spare engine worker (LMDeploy imported)" if spare else "starting the engine worker")
            info = await _load_in(worker, model_path, options, on_stage)
        await asyncio.to_thread(WORKERS.prepare_spare)
        backend = cls(worker, model_path, options, info)
        backend.load_seconds = time.perf_counter() - started
        return backend

    @property
    def pid(self) -> int | None:
        return self._worker.pid

    @property
    def serving(self) -> bool:
        return self._crashed is None

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
        await asyncio.to_thread(self._shutdown, False)

    async def close_for_next_engine(self) -> None:
        await asyncio.to_thread(self._shutdown, True)

    def _send(self, *message) -> None:
        try:
            self._worker.send(*message)
        except EngineCrashed as exc:
            raise EngineCrashed(self._crashed or str(exc)) from exc

    def _read_replies(self) -> None:
        """Route each reply to its stream until the engine closes; if the worker dies, fail every open stream."""
        while True:
            try:
                kind, payload = self._worker.conn.recv()
            except (EOFError, OSError):
                break
            if kind == "closed":
                self._closed_cleanly = payload
                break
            self._route(payload)
        if self._closing:
            self._crashed = _CLOSED
        else:
            self._worker.process.join(timeout=5)
            self._crashed = (
                f"the LMDeploy engine process ended (exit code {self._worker.process.exitcode}); "
                "the reply so far is kept. Restart the engine (Presets tab) to go on"
            )
        for replies in list(self._streams.values()):
            replies.put(("error", "crashed", self._crashed))

    def _route(self, replies: list[tuple]) -> None:
        """Hand a batch of the worker's replies to their streams, waking each event loop once a batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Replies, tuple]]] = {}
        for rid, *reply in replies:
            if stream := self._streams.get(rid):
                by_loop.setdefault(stream.loop, []).append((stream, tuple(reply)))
        for loop, deliveries in by_loop.items():
            _Replies.deliver(loop, deliveries)

    def _shutdown(self, for_next_engine: bool) -> None:
        if self._closing:
            return
        self._closing = True
        # Replies still streaming end here, with what they have so far: what the worker does
        # with them on its way out (TurboMind was seen to end one as "length") is not theirs to say.
        for replies in list(self._streams.values()):
            replies.put(("error", "crashed", _CLOSED))
        if not for_next_engine:
            self._worker.end()
            return
        try:
            self._send("close")
        except EngineCrashed:
            pass
        self._reader.join(timeout=_CLOSE_TIMEOUT_S)
        if self._closed_cleanly and self._worker.may_host_another(*self._closed_cleanly):
            WORKERS.keep_idle(self._worker)
        else:
            self._worker.end()


async def _load_in(worker: EngineWorker, model_path: str, options: EngineOptions, on_stage) -> dict:
    """Load an engine in `worker`; a worker that did not load one (a failure, a cancel) is ended."""
    try:
        return await asyncio.to_thread(worker.load, model_path, options, on_stage)
    except BaseException:
        worker.kill()
        raise


class _Replies:
    """One request's replies, handed from the reader thread to the requester's event loop."""

    _LAST = ("finish", "error", "score", "logprobs", "metrics")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self._queue = loop, asyncio.Queue()
        self.ended = False

    def put(self, reply: tuple) -> None:
        _Replies.deliver(self.loop, [(self, reply)])

    @staticmethod
    def deliver(loop: asyncio.AbstractEventLoop, deliveries: list[tuple[_Replies, tuple]]) -> None:
        """Put replies for streams of `loop` from another thread, with one wake-up of that loop: each
        wake-up is a write that may wait up to 5 ms for the GIL while the loop is busy."""
        try:
            loop.call_soon_threadsafe(_Replies._receive_all, deliveries)
        except RuntimeError:  # its event loop is closed (the console is exiting): nobody is reading
            pass

    @staticmethod
    def _receive_all(deliveries: list[tuple[_Replies, tuple]]) -> None:
        for replies, reply in deliveries:
            replies._queue.put_nowait(reply)

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
