"""LMDeploy's pipeline, hosted in a worker process and streamed over a pipe.

See `lmdeploy_worker` for why the engine lives in its own process, and `worker_messages` for what
crosses the pipe.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar, cast

from . import worker_messages as wire
from .base import (
    Backend,
    BackendError,
    BackendInfo,
    ChatRequest,
    Delta,
    EngineCrashed,
    EngineDetails,
    Finish,
    ModelLoadError,
    NextTokenLogprobs,
    PromptTooLong,
    SchedulerMetrics,
    TextScore,
    TokenLogprobs,
    Usage,
)
from .batches import Inbox, route
from .lmdeploy_config import EngineOptions
from .lmdeploy_process import WORKERS, EngineWorker
from .tool_calls import CallPieces
from .tool_prompt import ToolTurn

_Answer = TypeVar("_Answer", wire.Scored, wire.Distributions, wire.SchedulerFigures)
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
        self._streams: dict[int, Inbox] = {}
        self._ids = itertools.count(1)
        self._crashed: str | None = None
        self._closing = False
        self._closed_cleanly: wire.Closed | None = None  # the worker's report of a clean close
        self.load_seconds = 0.0
        self._reader = threading.Thread(target=self._read_replies, name="lmdeploy-engine-reader", daemon=True)
        self._reader.start()

    @classmethod
    async def start(
        cls,
        model_path: str,
        options: EngineOptions,
        on_stage: Callable[[str], None] | None = None,
        *,
        gpus: tuple[int, ...] | None = None,
    ) -> LmdeployBackend:
        """Load the engine in the idle worker where there is one on the same `gpus`, else in the spare or
        a new worker process, and wait until it is ready (or say why it is not); `on_stage` hears each stage
        of the load as the worker reaches it (from another thread). A reused worker that fails to load gets
        one retry in a fresh process: the failure may be the reused process's, not the preset's. A spare
        worker starts as the load does (`WorkerPool`), for the next load that cannot reuse this one."""
        on_stage = on_stage or (lambda stage: None)
        started = time.perf_counter()
        loaded = None
        if idle := WORKERS.take_idle(gpus):
            on_stage(
                f"reusing the engine worker (LMDeploy imported, CUDA context made; engine {idle.engines_loaded + 1})"
            )
            await asyncio.to_thread(WORKERS.prepare_spare)
            try:
                loaded = idle, await _load_in(idle, model_path, options, gpus, on_stage)
            except ModelLoadError as exc:
                on_stage(f"the reused worker failed ({exc}); loading in a fresh process")
        if loaded is None:
            worker, spare = await asyncio.to_thread(WORKERS.fresh)
            on_stage("taking the spare engine worker (LMDeploy imported)" if spare else "starting the engine worker")
            loaded = worker, await _load_in(worker, model_path, options, gpus, on_stage)
        worker, info = loaded
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
        engine = details.pop("engine", self._options.engine)  # the rest is what EngineDetails names
        return BackendInfo(kind="lmdeploy", model=self._model_path, engine=engine, details=cast(EngineDetails, details))

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[Delta]:
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
        params = request.params
        command: Callable[..., wire.Request]
        if turn.tools and self._options.tool_parser and request.tool_prompt == "model":
            command = functools.partial(wire.ToolsChat, messages=request.messages, params=params,
                                        tools=turn.tools, tool_choice=request.tool_choice)  # fmt: skip
            turn = ToolTurn(request.messages, None, None)  # the worker parses; its text passes through
        else:  # guided decoding when a call is forced
            command = functools.partial(wire.Chat, messages=turn.messages, params=params,
                                        response_format=turn.response_format)  # fmt: skip
        pieces = CallPieces()
        async with self._request(command) as replies:
            while True:
                match await replies.get():
                    case wire.Text(_, text):
                        for delta in turn.deltas(text):
                            yield delta
                    case wire.CallPiece(_, index, call_id, name, arguments):
                        yield pieces.add(index, call_id, name, arguments)
                    case wire.TokenChoices(_, tokens):
                        yield TokenLogprobs(tokens)
                    case wire.Usage(_, prompt, completion, cached):
                        yield Usage(prompt, completion, cached)
                    case wire.Finish(_, reason):
                        calls = [*turn.finish(), *pieces.whole()]
                        for call in calls:
                            yield call
                        yield Finish("tool_calls" if calls else reason)
                        return
                    case reply:
                        raise _error(reply)

    async def score_text(self, text: str) -> TextScore:
        scored = await self._one_reply(functools.partial(wire.Score, text=text), wire.Scored)
        return TextScore(mean_nll=scored.mean_nll, tokens=scored.tokens)

    async def next_token_logprobs(self, text: str, max_tokens: int) -> NextTokenLogprobs:
        request = functools.partial(wire.Logprobs, text=text, max_tokens=max_tokens)
        found = await self._one_reply(request, wire.Distributions)
        return NextTokenLogprobs(tuple(found.token_ids), found.logprobs)

    async def scheduler_metrics(self) -> SchedulerMetrics:
        """LMDeploy's scheduler now (`AsyncEngine.get_schedule_metrics`)."""
        figures = await self._one_reply(wire.Metrics, wire.SchedulerFigures)
        return SchedulerMetrics(figures.cache_usage, figures.running, figures.waiting, figures.prefix_cache_hit_rate)

    async def _one_reply(self, request: Callable[..., wire.Request], answer: type[_Answer]) -> _Answer:
        """A request the worker answers once, with an `answer` (or a Failed)."""
        async with self._request(request) as replies:
            reply = await replies.get()
        if not isinstance(reply, answer):
            raise _error(reply)
        return reply

    @asynccontextmanager
    async def _request(self, request: Callable[..., wire.Request]) -> AsyncIterator[Inbox]:
        """Send one request (`request(rid=...)` builds it) to the worker and hand over its replies.
        Leaving before the last reply (a closed stream, a cancelled task) cancels it in the worker."""
        if self._crashed:
            raise EngineCrashed(self._crashed)
        rid = next(self._ids)
        replies = Inbox(asyncio.get_running_loop(), wire.LAST_REPLIES)
        self._streams[rid] = replies
        try:
            self._send(request(rid=rid))
            yield replies
        finally:
            self._streams.pop(rid, None)
            if not replies.ended and not self._crashed:
                self._send(wire.Cancel(rid))

    async def close(self) -> None:
        await asyncio.to_thread(self._shutdown, False)

    async def close_for_next_engine(self) -> None:
        await asyncio.to_thread(self._shutdown, True)

    def _send(self, message) -> None:
        try:
            self._worker.send(message)
        except EngineCrashed as exc:
            raise EngineCrashed(self._crashed or str(exc)) from exc

    def _read_replies(self) -> None:
        """Route each reply to its stream until the engine closes; if the worker dies, fail every open stream."""
        while True:
            try:
                message = self._worker.conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, wire.Closed):
                self._closed_cleanly = message
                break
            route(self._streams, message.replies)
        if self._closing:
            self._crashed = _CLOSED
        else:
            self._worker.process.join(timeout=5)
            self._crashed = (
                f"the LMDeploy engine process ended (exit code {self._worker.process.exitcode}); "
                "the reply so far is kept. Restart the engine (Presets tab) to go on"
            )
        for rid, replies in list(self._streams.items()):
            replies.put(wire.Failed(rid, "crashed", self._crashed))

    def _shutdown(self, for_next_engine: bool) -> None:
        if self._closing:
            return
        self._closing = True
        # Replies still streaming end here, with what they have so far: what the worker does
        # with them on its way out (TurboMind was seen to end one as "length") is not theirs to say.
        for rid, replies in list(self._streams.items()):
            replies.put(wire.Failed(rid, "crashed", _CLOSED))
        if not for_next_engine:
            self._worker.end()
            return
        try:
            self._send(wire.Close())
        except EngineCrashed:
            pass
        self._reader.join(timeout=_CLOSE_TIMEOUT_S)
        if self._closed_cleanly and self._worker.may_host_another(
            self._closed_cleanly.gpu_used_mib, self._closed_cleanly.reusable
        ):
            WORKERS.keep_idle(self._worker)
        else:
            self._worker.end()


async def _load_in(
    worker: EngineWorker, model_path: str, options: EngineOptions, gpus: tuple[int, ...] | None, on_stage
) -> dict:
    """Load an engine in `worker`; a worker that did not load one (a failure, a cancel) is ended."""
    try:
        return await asyncio.to_thread(worker.load, model_path, options, on_stage, gpus)
    except BaseException:
        worker.kill()
        raise


def _error(reply: wire.Reply) -> BackendError:
    """The error a request's Failed reply (or a reply it did not expect) stands for."""
    match reply:
        case wire.Failed(_, "prompt_too_long", message):
            return PromptTooLong(f"{message} Clear the chat or shorten the message.")
        case wire.Failed(_, "crashed", message):
            return EngineCrashed(message)
        case wire.Failed(_, _, message):
            return BackendError(f"LMDeploy: {message}")
    return BackendError(f"LMDeploy: the worker answered {type(reply).__name__} where it was not expected")
