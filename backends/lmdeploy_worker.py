"""The child process that hosts `lmdeploy.pipeline`, one engine after another.

Why a process: a TurboMind abort (measured: CUDA misaligned address on KV int4 with
head_dim 64) kills the whole process, and a closed pipeline still leaves its CUDA context
behind. Hosting the engine here keeps the console alive through an abort and gives every
byte of VRAM back when the process ends.

Why one process for several engines: a fresh process spends most of a switch importing torch and
LMDeploy and making its CUDA context (measured on an H100: 16-34 s a switch against 2-3.5 s for the
same engine rebuilt in one process). So a worker whose engine closed cleanly hosts the next one, as
a script's `pipe.close()` then `pipeline(...)` would; after each close it reports the GPU memory in
use, and the console ends a worker whose closes leave more and more behind (`lmdeploy_process`).

Why the requests are read on the engine's own event loop, and the replies sent in batches: a
thread waiting on a pipe must win the GIL back from a busy thread after every read, up to the
switch interval (5 ms) each time. The PyTorch engine runs its Python on the pipeline's event
loop, so a main thread reading 16 requests sent at once took them in one by one, ~2 ms apart
(36 ms for 16 beside a thread running Python, 0.1 ms beside an idle one), and the engine started
them in several batches: on an H200, 16 chats' median TTFT through this worker was 70-107 ms
against 42-54 in-process, and is now the in-process figure (docs/results.md). The console's
reader thread meets the same with Gradio's loop busy painting, once a pipe message: so
everything one turn of the engine's loop replies goes as one message.

What crosses the pipe, in both directions, is the messages of `worker_messages`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import os
import threading
import time
import traceback

from model_folders.folder import checkpoint_bytes, has_random_weights, read_model_config

from . import worker_messages as wire
from .base import ChatRequest, FinishReason, TokenChoice
from .batches import Outbox
from .heap import collect_everything, set_aside
from .lmdeploy_config import EngineOptions, engine_config, generation_config, resolve_engine
from .lmdeploy_memory import kv_bytes_per_block
from .lmdeploy_tools import parsed_pieces, response_parser_class, tool_chat_request

_COALESCE_S = 0.005
_CLOSE_WAIT_S = 5
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "abort": "cancelled",
    "error": "error",
}


def main(conn) -> None:
    """Entry point of the worker process (spawned: it imports nothing from the parent)."""
    send_lock = threading.Lock()

    def send(message) -> None:
        with send_lock:
            conn.send(message)

    _import_ahead(lambda stage: send(wire.Stage(stage)))
    try:
        while isinstance(load := _next_command(conn), wire.Load):
            try:
                pipe, info = _load(load.model_path, load.options, load.gpus, lambda stage: send(wire.Stage(stage)))
            except BaseException as exc:  # noqa: BLE001 - every load failure goes back as a message
                send(wire.LoadFailed(_describe_load_error(exc)))
                break  # a failed load may leave CUDA in any state: the process ends, and its memory with it
            set_aside()  # the engine's objects, out of the collector's way while it answers
            send(wire.Ready(info))
            loop = pipe.internal_thread.loop
            outbox = Outbox(loop, lambda replies: send(wire.Replies(replies)))
            answering = _answer_requests(conn, pipe, load.options, outbox)
            ended_by, ran_get_logits = asyncio.run_coroutine_threadsafe(answering, loop).result()
            pipe.close()
            del pipe
            send(wire.Closed(_release_gpu_memory(), reusable=not ran_get_logits))
            if not isinstance(ended_by, wire.Close):
                break
    finally:
        conn.close()
        os._exit(0)  # engine threads may linger; the VRAM comes back with the process


def _import_ahead(stage) -> None:
    """Import LMDeploy and torch now, while the console is still sending the first load."""
    stage("importing LMDeploy and torch")
    try:
        import lmdeploy  # noqa: F401
    except Exception:  # noqa: BLE001 - the load reports it, with the rest of its errors
        pass


def _use_gpus(gpus: tuple[int, ...], cuda_initialized: bool, stage) -> None:
    """Give the engine these GPUs only, numbered as NVML numbers them (by PCI bus, which CUDA's own order,
    fastest first, need not follow). CUDA reads both variables as it makes the process's context, so a
    worker that made one already stays where it is (the pool hands such a worker only the same GPUs);
    LMDeploy's tensor-parallel processes, started later, inherit them."""
    visible = ",".join(map(str, gpus))
    if os.environ.get("CUDA_VISIBLE_DEVICES") == visible:
        return
    if cuda_initialized:
        raise RuntimeError(f"this worker's CUDA context is on other GPUs than {visible}")
    stage(f"on GPU {visible} (CUDA_VISIBLE_DEVICES={visible})")
    os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    os.environ["CUDA_VISIBLE_DEVICES"] = visible


def _next_command(conn):
    try:
        return conn.recv()
    except (EOFError, OSError):  # the console went away
        return wire.Exit()


async def _answer_requests(conn, pipe, options: EngineOptions, outbox: Outbox) -> tuple[wire.Close | wire.Exit, bool]:
    """Start a task for each request as it arrives, until the engine is to close; returns what ended it
    (Close, or Exit where the process ends too) and whether LMDeploy's get_logits ran: after it,
    LMDeploy 0.18's engines garble replies, so that worker is not given another engine.

    Runs on the engine's event loop, which reads the pipe itself (see the module's docstring): every
    request already in the pipe is started in the same turn of the loop, as one `stream_infer` batch is."""
    tool_context = _tool_context(pipe, options.tool_parser) if options.tool_parser else None
    loop = asyncio.get_running_loop()
    running: dict[int, asyncio.Task] = {}
    ended: asyncio.Future[wire.Close | wire.Exit] = loop.create_future()
    ran_get_logits = False

    def start_arrived() -> None:
        nonlocal ran_get_logits
        while not ended.done() and conn.poll():
            match command := _next_command(conn):
                case wire.Close() | wire.Exit():
                    ended.set_result(command)
                case wire.Cancel(rid):
                    if task := running.get(rid):
                        task.cancel()
                case wire.Chat() | wire.ToolsChat() | wire.Score() | wire.Logprobs() | wire.Metrics():
                    ran_get_logits |= isinstance(command, wire.Logprobs)
                    task = running[command.rid] = loop.create_task(_job(pipe, tool_context, command, outbox.put))
                    task.add_done_callback(functools.partial(_forget, running, command.rid))

    loop.add_reader(conn.fileno(), start_arrived)
    try:
        ended_by = await ended
    finally:
        loop.remove_reader(conn.fileno())
    for task in running.values():
        task.cancel()
    if running:  # cancelled replies end before the engine closes
        await asyncio.wait(list(running.values()), timeout=_CLOSE_WAIT_S)
    outbox.flush()  # the last replies go before the worker says "closed"
    return ended_by, ran_get_logits


def _forget(running: dict[int, asyncio.Task], rid: int, _task: asyncio.Task) -> None:
    running.pop(rid, None)


def _job(pipe, tool_context, request: wire.Request, send):
    """The coroutine that answers one request."""
    match request:
        case wire.Chat(rid, messages, params, response_format):
            return _serve(pipe, rid, messages, generation_config(params, response_format), send)
        case wire.ToolsChat(rid, messages, params, tools, tool_choice):
            chat = ChatRequest(messages, params, tools, tool_choice)
            return _serve_tools(tool_context, rid, tool_chat_request(pipe.async_engine.model_name, chat), send)
        case wire.Score(rid, text):
            return _score(pipe, rid, text, send)
        case wire.Logprobs(rid, text, max_tokens):
            return _logprobs(pipe, rid, text, max_tokens, send)
        case wire.Metrics(rid):
            return _metrics(pipe, rid, send)


def _release_gpu_memory() -> float | None:
    """Hand the closed engine's cached blocks back to the driver; returns the GPU memory in use after
    (MiB, every GPU), which tells the console whether this process can host another engine."""
    collect_everything()
    try:
        import torch

        torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - nothing cached to give back
        pass
    used = _gpus_used_bytes()
    return used / 2**20 if used is not None else None


def _load(model_path: str, options: EngineOptions, gpus: tuple[int, ...] | None, stage):
    import torch
    from lmdeploy import pipeline

    if gpus is not None:
        _use_gpus(gpus, torch.cuda.is_initialized(), stage)
    if not torch.cuda.is_initialized():  # its own stage: a cost a worker hosting a second engine saves
        stage("making the CUDA context")
        torch.zeros(1, device="cuda")
    engine = resolve_engine(options, model_path)
    config = engine_config(options, engine)
    free_before = _gpu0_free_bytes()
    template = None
    if options.chat_template:
        from lmdeploy import ChatTemplateConfig

        template = ChatTemplateConfig(model_name=options.chat_template)
    stage(f"building the {engine} engine: weights, KV cache, warm-up")
    pipe = pipeline(model_path, backend_config=config, chat_template_config=template, log_level="WARNING")
    info = {
        "engine": engine,
        "session_len": pipe.async_engine.session_len,
        "config": {  # as the engine runs them, LMDeploy's defaults filled in
            name: _plain(getattr(config, name, None))
            for name in EngineOptions.model_fields
            if EngineOptions.option_meta(name)["config"]
        },
        "tool_parser": options.tool_parser,
        "weights_bytes": checkpoint_bytes(model_path),
        "random_weights": has_random_weights(model_path),
        "kv_cache": _kv_cache(pipe.async_engine.backend_config, engine, model_path, free_before),
    }
    return pipe, info


def _kv_cache(engine_cfg, engine: str, model_path: str, free_before: int | None) -> dict:
    """The KV cache's size: counted by the PyTorch engine, estimated for TurboMind.

    TurboMind does not report its block count; it sizes the cache as
    cache_max_entry_count x the free memory left after the weights, which is what the
    estimate repeats.
    """
    block_size = int(getattr(engine_cfg, "block_size", 0) or getattr(engine_cfg, "cache_block_seq_len", 64))
    per_block = kv_bytes_per_block(read_model_config(model_path), block_size, int(engine_cfg.quant_policy))
    blocks: int | None = getattr(engine_cfg, "num_gpu_blocks", 0) or None
    source = "engine"
    if engine == "turbomind" and per_block and free_before:
        free_after_weights = free_before - checkpoint_bytes(model_path) / engine_cfg.tp
        blocks, source = int(engine_cfg.cache_max_entry_count * free_after_weights // per_block), "estimate"
    return {
        "blocks": blocks,
        "block_size": block_size,
        "bytes_per_block": per_block,
        "tokens": blocks * block_size if blocks else None,
        "bytes": blocks * per_block if blocks and per_block else None,
        "source": source,
    }


def _token_choices(tokenizer, token_ids: list[int], logprobs: list[dict[int, float]]) -> tuple[TokenChoice, ...]:
    """Each token with its log-probability and the likeliest alternatives, as api_server builds its
    `logprobs` (`serve/openai/chat_completions/logprobs.py`), with texts decoded for reading."""
    choices = []
    for chosen, tops in zip(token_ids, logprobs, strict=False):
        others = sorted(((i, lp) for i, lp in tops.items() if i != chosen), key=lambda pair: -pair[1])
        alternatives = tuple((tokenizer.decode([i]), float(lp)) for i, lp in others)
        choices.append(TokenChoice(tokenizer.decode([chosen]), float(tops.get(chosen, float("nan"))), alternatives))
    return tuple(choices)


def _plain(value):
    """A config value as plain data for the pipe and the UI (LMDeploy's QuantPolicy is an enum)."""
    return int(value) if isinstance(value, enum.IntEnum) else value


def _gpu0_free_bytes() -> int | None:
    return _nvml(lambda pynvml: pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).free)


def _gpus_used_bytes() -> int | None:
    return _nvml(
        lambda pynvml: sum(
            pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).used
            for i in range(pynvml.nvmlDeviceGetCount())
        )
    )


def _nvml(read):
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return read(pynvml)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - without NVML the figure is just left out
        return None


def _tool_context(pipe, parser: str):
    """What LMDeploy's api_server keeps for tool calls, around this pipeline's engine: the
    model's chat template renders the tools, `parser` finds the calls in the output, and a
    forced call is decoded under the parser's structural tag (`--tool-call-parser parser`)."""
    from lmdeploy.serve.openai.api_server import ServerContext

    context = ServerContext()
    context.async_engine = pipe.async_engine
    context.response_parser_cls = response_parser_class(parser)
    return context


@contextlib.asynccontextmanager
async def _replying(rid: int, send):
    """Every way a request can end, reported to the console."""
    from lmdeploy.serve.core.exceptions import ErrorCode, RequestError, SafeRunException

    try:
        yield
    except (asyncio.CancelledError, SafeRunException):  # LMDeploy wraps a cancel in SafeRunException
        send(wire.Finish(rid, "cancelled"))
    except RequestError as exc:
        too_long = exc.code == ErrorCode.CONTEXT_LENGTH_EXCEEDED
        send(wire.Failed(rid, "prompt_too_long" if too_long else "request", exc.message or exc.code.name))
    except Exception as exc:  # noqa: BLE001 - reported to the console, which shows it
        send(wire.Failed(rid, "engine", f"{type(exc).__name__}: {exc}"))


async def _serve(pipe, rid: int, messages: list[dict], gen_config, send) -> None:
    engine = pipe.async_engine
    async with _replying(rid, send):
        request = await engine.preprocess(messages=messages, session_id=pipe.session_mgr.get(), gen_config=gen_config)
        finish: FinishReason = "stop"
        completion, cached = 0, 0
        pending, last_sent = "", None
        token_ids, token_logprobs = [], []
        async for out in engine.generate(request, stream_response=True):
            pending += out.response or ""
            now = time.monotonic()
            # The first text goes at once (TTFT); after that, one message per few tokens
            # instead of one per token: at thousands of tokens/s the pipe is not free.
            if pending and (last_sent is None or now - last_sent >= _COALESCE_S):
                send(wire.Text(rid, pending))
                pending, last_sent = "", now
            completion, cached = out.generate_token_len, out.cached_tokens
            finish = _FINISH.get(out.finish_reason or "", finish)
            if gen_config.logprobs and out.logprobs:  # each chunk's new tokens, with their top logprobs
                token_ids += out.token_ids[-len(out.logprobs) :]
                token_logprobs += out.logprobs
        if pending:
            send(wire.Text(rid, pending))
        if token_logprobs:
            send(wire.TokenChoices(rid, _token_choices(engine.tokenizer, token_ids, token_logprobs)))
        send(wire.Usage(rid, request.input_token_len, completion, cached))
        send(wire.Finish(rid, finish))


async def _serve_tools(context, rid: int, request, send) -> None:
    """A chat with tools through LMDeploy's own chat runner, as its api_server serves one:
    text and call pieces go back as the parser finds them."""
    from lmdeploy.serve.core.chat_runner import ChatRunner

    async with _replying(rid, send):
        runner = await ChatRunner.prepare(context, request)
        finish: FinishReason = "stop"
        prompt, completion, cached = 0, 0, 0
        async for chunk in runner.stream():
            for piece in parsed_pieces(chunk.delta_message):
                send(wire.Text(rid, piece) if isinstance(piece, str) else wire.CallPiece(rid, *piece))
            prompt, completion, cached = chunk.input_token_len, chunk.generate_token_len, chunk.cached_tokens
            if chunk.finish_reason:
                finish = _FINISH.get(chunk.finish_reason, finish)
        send(wire.Usage(rid, prompt, completion, cached))
        send(wire.Finish(rid, finish))


async def _score(pipe, rid: int, text: str, send) -> None:
    """LMDeploy's perplexity of a text: the mean cross-entropy over its tokens."""
    engine = pipe.async_engine
    ids = engine.tokenizer.encode(text)[: engine.session_len - 1]
    try:
        send(wire.Scored(rid, await engine.async_get_ppl(ids), len(ids)))
    except Exception as exc:  # noqa: BLE001 - e.g. ValueError with prefix caching on
        send(wire.Failed(rid, "request", f"perplexity: {type(exc).__name__}: {exc}"))


async def _logprobs(pipe, rid: int, text: str, max_tokens: int, send) -> None:
    """The whole next-token distribution at each of the text's first tokens (LMDeploy's
    get_logits), as log-probabilities in float16: a few MB a hundred tokens, not the fp32 logits."""
    import torch

    engine = pipe.async_engine
    ids = engine.tokenizer.encode(text)[: min(max_tokens, engine.session_len - 1)]
    try:
        (logits,) = await engine.async_get_logits([ids])
        logprobs = torch.log_softmax(logits.float(), dim=-1).half().cpu().numpy()
    except Exception as exc:  # noqa: BLE001 - e.g. RequestError with prefix caching on
        send(wire.Failed(rid, "request", f"logits: {type(exc).__name__}: {exc}"))
        return
    send(wire.Distributions(rid, ids, logprobs))


async def _metrics(pipe, rid: int, send) -> None:
    """The scheduler's view now: the share of KV-cache blocks in use, requests running and waiting,
    the prefix cache's hit rate."""
    try:
        metrics = await pipe.async_engine.get_schedule_metrics()
        figures = (metrics.cache_usage, metrics.active_seqs, metrics.waiting_seqs, metrics.prefix_cache_hit_rate)
        send(wire.SchedulerFigures(rid, *figures))
    except Exception as exc:  # noqa: BLE001 - the VRAM tab shows it instead of the figures
        send(wire.Failed(rid, "request", f"scheduler metrics: {type(exc).__name__}: {exc}"))


def _describe_load_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in text.lower():
        return (
            f"{text}. The GPU is out of memory: lower cache_max_entry_count, use a quantized "
            "model (AWQ) or a smaller one, or free the GPU"
        )
    if "no nvidia driver" in text.lower() or "cuda" in text.lower() and "available" in text.lower():
        return f"{text}. No usable CUDA GPU: run with --backend cpu"
    return f"{text}\n{traceback.format_exc(limit=3)}"
