"""The child process that hosts `lmdeploy.pipeline`.

Why a process: a TurboMind abort (measured: CUDA misaligned address on KV int4 with
head_dim 64) kills the whole process, and a closed pipeline still leaves its CUDA context
behind. Hosting the engine here keeps the console alive through an abort and gives every
byte of VRAM back when the process ends.

Wire format over the pipe (tuples, pickled by multiprocessing):
  parent -> child: ("chat", rid, messages, params_dict, response_format)
                   | ("tools_chat", rid, messages, params_dict, tools, tool_choice)
                   | ("score", rid, text) | ("logprobs", rid, text, max_tokens) | ("metrics", rid)
                   | ("cancel", rid) | ("close",)
  child -> parent: ("ready", info) | ("load_failed", message)
                   | (rid, "text", str) | (rid, "call", index, id, name, arguments_piece)
                   | (rid, "usage", prompt, completion)
                   | (rid, "score", mean_nll, tokens) | (rid, "logprobs", token_ids, float16 array)
                   | (rid, "metrics", dict)
                   | (rid, "finish", reason) | (rid, "error", kind, message)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import threading
import time
import traceback

from .base import ChatRequest, GenerationParams
from .lmdeploy_config import EngineOptions, engine_config, generation_config, resolve_engine
from .lmdeploy_memory import checkpoint_bytes, has_random_weights, kv_bytes_per_block, read_model_config
from .lmdeploy_tools import parsed_replies, response_parser_class, tool_chat_request

_COALESCE_S = 0.005
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "abort": "cancelled", "error": "error"}


def main(conn, model_path: str, options: EngineOptions) -> None:
    """Entry point of the worker process (spawned: it imports nothing from the parent)."""
    send_lock = threading.Lock()

    def send(*message):
        with send_lock:
            conn.send(message)

    try:
        pipe, info = _load(model_path, options, lambda stage: send("stage", stage))
        tool_context = _tool_context(pipe, options.tool_parser) if options.tool_parser else None
    except BaseException as exc:  # noqa: BLE001 - every load failure goes back as a message
        send("load_failed", _describe_load_error(exc))
        return
    send("ready", info)
    loop = pipe.internal_thread.loop
    running: dict[int, asyncio.Future] = {}
    try:
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):  # the console went away
                break
            kind, *args = command
            if kind == "close":
                break
            if kind == "cancel":
                if future := running.get(args[0]):
                    future.cancel()
                continue
            rid = args[0]
            if kind == "chat":
                job = _serve(pipe, rid, args[1], generation_config(GenerationParams.from_dict(args[2]), args[3]), send)
            elif kind == "tools_chat":
                messages, params, tools, tool_choice = args[1:]
                chat = ChatRequest(messages, GenerationParams.from_dict(params), tools, tool_choice)
                job = _serve_tools(tool_context, rid, tool_chat_request(pipe.async_engine.model_name, chat), send)
            elif kind == "score":
                job = _score(pipe, rid, args[1], send)
            elif kind == "logprobs":
                job = _logprobs(pipe, rid, args[1], args[2], send)
            else:
                job = _metrics(pipe, rid, send)
            running[rid] = asyncio.run_coroutine_threadsafe(job, loop)
            running[rid].add_done_callback(lambda _f, rid=rid: running.pop(rid, None))
    finally:
        pipe.close()
        conn.close()
        os._exit(0)  # engine threads may linger; the VRAM comes back with the process


def _load(model_path: str, options: EngineOptions, stage):
    stage("importing LMDeploy and torch")
    from lmdeploy import pipeline

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
    block_size = getattr(engine_cfg, "block_size", None) or getattr(engine_cfg, "cache_block_seq_len", 64)
    per_block = kv_bytes_per_block(read_model_config(model_path), block_size, int(engine_cfg.quant_policy))
    blocks, source = getattr(engine_cfg, "num_gpu_blocks", 0) or None, "engine"
    if engine == "turbomind" and engine_cfg.cache_max_entry_count >= 1:  # a block count, asked for outright
        blocks, source = int(engine_cfg.cache_max_entry_count), "engine"
    elif engine == "turbomind" and per_block and free_before:
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


def _token_choices(tokenizer, token_ids: list[int], logprobs: list[dict[int, float]]) -> list:
    """(text, logprob, [(alternative, logprob), ...]) for each token, as api_server builds its
    `logprobs` (`serve/openai/chat_completions/logprobs.py`), with texts decoded for reading."""
    choices = []
    for chosen, tops in zip(token_ids, logprobs, strict=False):
        others = sorted(((i, lp) for i, lp in tops.items() if i != chosen), key=lambda pair: -pair[1])
        alternatives = [(tokenizer.decode([i]), float(lp)) for i, lp in others]
        choices.append((tokenizer.decode([chosen]), float(tops.get(chosen, float("nan"))), alternatives))
    return choices


def _plain(value):
    """A config value as plain data for the pipe and the UI (LMDeploy's QuantPolicy is an enum)."""
    return int(value) if isinstance(value, enum.IntEnum) else value


def _gpu0_free_bytes() -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).free
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - without NVML the estimate is just left out
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
        send(rid, "finish", "cancelled")
    except RequestError as exc:
        kind = "prompt_too_long" if exc.code == ErrorCode.CONTEXT_LENGTH_EXCEEDED else "request"
        send(rid, "error", kind, exc.message or exc.code.name)
    except Exception as exc:  # noqa: BLE001 - reported to the console, which shows it
        send(rid, "error", "engine", f"{type(exc).__name__}: {exc}")


async def _serve(pipe, rid: int, messages: list[dict], gen_config, send) -> None:
    engine = pipe.async_engine
    async with _replying(rid, send):
        request = await engine.preprocess(messages=messages, session_id=pipe.session_mgr.get(), gen_config=gen_config)
        finish, completion, cached = "stop", 0, 0
        pending, last_sent = "", None
        token_ids, token_logprobs = [], []
        async for out in engine.generate(request, stream_response=True):
            pending += out.response or ""
            now = time.monotonic()
            # The first text goes at once (TTFT); after that, one message per few tokens
            # instead of one per token: at thousands of tokens/s the pipe is not free.
            if pending and (last_sent is None or now - last_sent >= _COALESCE_S):
                send(rid, "text", pending)
                pending, last_sent = "", now
            completion, cached = out.generate_token_len, out.cached_tokens
            finish = _FINISH.get(out.finish_reason or "", finish)
            if gen_config.logprobs and out.logprobs:  # each chunk's new tokens, with their top logprobs
                token_ids += out.token_ids[-len(out.logprobs) :]
                token_logprobs += out.logprobs
        if pending:
            send(rid, "text", pending)
        if token_logprobs:
            send(rid, "token_logprobs", _token_choices(engine.tokenizer, token_ids, token_logprobs))
        send(rid, "usage", request.input_token_len, completion, cached)
        send(rid, "finish", finish)


async def _serve_tools(context, rid: int, request, send) -> None:
    """A chat with tools through LMDeploy's own chat runner, as its api_server serves one:
    text and call pieces go back as the parser finds them."""
    from lmdeploy.serve.core.chat_runner import ChatRunner

    async with _replying(rid, send):
        runner = await ChatRunner.prepare(context, request)
        finish, prompt, completion, cached = "stop", 0, 0, 0
        async for chunk in runner.stream():
            for reply in parsed_replies(chunk.delta_message):
                send(rid, *reply)
            prompt, completion, cached = chunk.input_token_len, chunk.generate_token_len, chunk.cached_tokens
            if chunk.finish_reason:
                finish = _FINISH.get(chunk.finish_reason, finish)
        send(rid, "usage", prompt, completion, cached)
        send(rid, "finish", finish)


async def _score(pipe, rid: int, text: str, send) -> None:
    """LMDeploy's perplexity of a text: the mean cross-entropy over its tokens."""
    engine = pipe.async_engine
    ids = engine.tokenizer.encode(text)[: engine.session_len - 1]
    try:
        send(rid, "score", await engine.async_get_ppl(ids), len(ids))
    except Exception as exc:  # noqa: BLE001 - e.g. ValueError with prefix caching on
        send(rid, "error", "request", f"perplexity: {type(exc).__name__}: {exc}")


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
        send(rid, "error", "request", f"logits: {type(exc).__name__}: {exc}")
        return
    send(rid, "logprobs", ids, logprobs)


async def _metrics(pipe, rid: int, send) -> None:
    """The scheduler's view now: the share of KV-cache blocks in use, requests running and waiting,
    the prefix cache's hit rate."""
    try:
        metrics = await pipe.async_engine.get_schedule_metrics()
        fields = ("cache_usage", "active_seqs", "waiting_seqs", "prefix_cache_hit_rate")
        send(rid, "metrics", {k: getattr(metrics, k) for k in fields})
    except Exception as exc:  # noqa: BLE001 - the VRAM tab shows it instead of the figures
        send(rid, "error", "request", f"scheduler metrics: {type(exc).__name__}: {exc}")


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
