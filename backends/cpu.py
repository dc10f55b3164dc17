"""transformers on the CPU: the engine of last resort, so the console runs on any machine.

Imported only when the cpu backend is chosen (see `backends.create_backend`).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import threading
from collections.abc import AsyncGenerator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextStreamer,
)

from model_folders.folder import has_random_weights, head_dim

from .base import (
    Backend,
    BackendError,
    BackendInfo,
    ChatRequest,
    Delta,
    Finish,
    GenerationParams,
    ModelLoadError,
    NextTokenLogprobs,
    PromptTooLong,
    Queued,
    TextScore,
    TokenChoice,
    TokenLogprobs,
    ToolCall,
    Usage,
)
from .cpu_options import KV_BITS, KV_GROUP, RESIDUAL_TOKENS, CpuKvCache, CpuWeights, kv_bytes_per_token
from .embedded_model import EMBEDDED_MODEL_NAME, embedded_hf_folder
from .heap import collect_everything
from .lmdeploy_tools import ParsedTurn
from .stops import StopMatcher
from .tool_prompt import ToolTurn

_DONE = object()
_SCORED_CHUNK = 32  # tokens a forward pass takes when scoring through a quantized KV cache
_LOAD_DTYPE = {"bf16": torch.bfloat16}  # the others load in fp32 (int8: quantized once loaded)

logger = logging.getLogger(__name__)


class CpuBackend(Backend):
    """A causal LM from a Hugging Face folder or a GGUF file, generating in a thread.

    One generation runs at a time (a second waits its turn): on a few CPU cores, two at once
    would each run at half speed and both be late.
    """

    supports_tools = True
    supports_perplexity = True
    supports_logprobs = True

    def __init__(
        self,
        model_path: str | None = None,
        tool_parser: str | None = None,
        weights: CpuWeights = "fp32",
        kv_cache: CpuKvCache = "full",
    ):
        # The embedded GGUF is converted once and cached: a folder loads in ~1 s, the GGUF in ~25 s.
        path = Path(model_path) if model_path else embedded_hf_folder()
        if not path.exists():
            raise ModelLoadError(f"model path {str(path)!r} does not exist; pass a local folder or .gguf file")
        if path.suffix == ".gguf":
            source, extra = str(path.parent), {"gguf_file": path.name}
        else:
            source, extra = str(path), {}
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(source, **extra)
            self._model = AutoModelForCausalLM.from_pretrained(
                source, dtype=_LOAD_DTYPE.get(weights, torch.float32), **extra
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"could not load {str(path)!r} on the CPU: {exc}") from exc
        self._model.eval()
        self._model = _quantized(self._model, weights)
        self._weights, self._kv_cache = weights, kv_cache
        self._weights_bytes = weights_bytes(self._model)
        self._kv_bytes_per_token = _kv_bytes_per_token(self._model.config, weights, kv_cache)
        if kv_cache != "full":
            _build_quantized_cache_kernels(self._new_cache())
        self._path = path
        self._name = EMBEDDED_MODEL_NAME if not model_path else path.name.removesuffix(".gguf")
        self._context_len = int(getattr(self._model.config, "max_position_embeddings", 2048))
        self._generate_lock = threading.Lock()
        self._line = ArrivalLine()  # chats take the model in the order they came
        self._grammar_compiler: Any = None  # xgrammar's, built on the first forced tool call
        self._tool_parser = tool_parser  # LMDeploy's, for a model whose chat template knows tools

    def info(self) -> BackendInfo:
        return BackendInfo(
            kind="cpu",
            model=self._name,
            engine=f"transformers (CPU, {self._weights}{'' if self._kv_cache == 'full' else f', KV {self._kv_cache}'})",
            details={
                "context_tokens": self._context_len,
                "torch_threads": torch.get_num_threads(),
                "weights_bytes": self._weights_bytes,
                "kv_bytes_per_token": self._kv_bytes_per_token,
                "tool_parser": self._tool_parser,
                "random_weights": has_random_weights(self._path),
            },
        )

    async def score_text(self, text: str) -> TextScore:
        """Mean cross-entropy of `text` under the model, like LMDeploy's `get_ppl`."""
        ids = self._tokenizer(text, return_tensors="pt")["input_ids"][:, : self._context_len]
        if ids.shape[1] < 2:
            raise BackendError("perplexity needs a text of at least two tokens")

        def forward() -> float:
            logits = self._logits(ids)
            return float(torch.nn.functional.cross_entropy(logits[:-1].float(), ids[0, 1:]))

        return TextScore(mean_nll=await asyncio.to_thread(forward), tokens=int(ids.shape[1]))

    async def next_token_logprobs(self, text: str, max_tokens: int) -> NextTokenLogprobs:
        ids = self._tokenizer(text, return_tensors="pt")["input_ids"][:, : min(max_tokens, self._context_len)]

        def forward():
            return torch.log_softmax(self._logits(ids).float(), dim=-1).half().numpy()

        return NextTokenLogprobs(tuple(ids[0].tolist()), await asyncio.to_thread(forward))

    def _logits(self, ids):
        """The model's logits at each position of `ids`. With a quantized KV cache the text goes in
        chunks, each attending to the earlier ones through the cache, as a reply's tokens do: in one
        forward pass every position would see exact keys and values, and the quantization would not show."""
        with self._generate_lock, torch.inference_mode():
            if self._kv_cache == "full":
                return self._model(input_ids=ids).logits[0]
            cache = self._new_cache()
            chunks = ids.split(_SCORED_CHUNK, dim=1)
            return torch.cat([self._model(input_ids=chunk, past_key_values=cache).logits[0] for chunk in chunks])

    def _new_cache(self):
        """A fresh KV cache for one request; None is transformers' own (exact keys and values)."""
        if self._kv_cache == "full":
            return None
        from transformers.cache_utils import QuantizedCache

        return QuantizedCache(
            backend="quanto",
            config=self._model.config,
            nbits=KV_BITS[self._kv_cache],
            q_group_size=KV_GROUP,
            residual_length=RESIDUAL_TOKENS,
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[Delta]:
        try:
            plain = ToolTurn.of(request.messages, request.tools, request.tool_choice)
            turn: ToolTurn | ParsedTurn = plain
            if plain.tools and self._tool_parser and request.tool_prompt == "model":
                turn = ParsedTurn(self._tool_parser, request)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        prompt_ids = self._tokenizer.apply_chat_template(
            turn.messages, tools=turn.template_tools, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        prompt_len = prompt_ids.shape[1]
        if prompt_len >= self._context_len:
            raise PromptTooLong(
                f"the conversation is {prompt_len} tokens, over this model's {self._context_len}-token "
                "context; clear the chat or shorten the message"
            )
        max_new = min(request.params.max_new_tokens, self._context_len - prompt_len)
        constraint = self._constraint(turn.response_format) if turn.response_format else None
        run = _Run(StopMatcher(request.params.stop), constraint)
        async with self._line.turn() as waits:
            async for ahead in waits:  # the chats before this one, while there are any
                yield Queued(ahead, "this CPU engine")
            # aclosing: when our consumer closes this stream, the generation must stop now
            async with aclosing(self._stream_text(prompt_ids, request.params, max_new, run)) as pieces:
                async for piece in pieces:
                    for delta in turn.deltas(piece):
                        yield delta
        final = turn.finish()
        for last in final:
            yield last
        calls = [last for last in final if isinstance(last, ToolCall)]
        if run.token_logprobs:
            yield TokenLogprobs(run.token_logprobs)
        yield Usage(prompt_tokens=prompt_len, completion_tokens=run.tokens)
        hit_limit = run.tokens >= max_new and not run.stops.stopped
        yield Finish("tool_calls" if calls else "length" if hit_limit else "stop")

    async def _stream_text(self, prompt_ids, params: GenerationParams, max_new: int, run: _Run):
        """Visible text as it is generated (cut at a stop word); closing it stops generation."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        streamer = _QueueStreamer(self._tokenizer, loop, queue)
        worker = threading.Thread(
            target=self._generate,
            args=(prompt_ids, params, max_new, streamer, cancel, loop, queue, run),
            daemon=True,
        )
        worker.start()
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BackendError):
                    raise item
                if isinstance(item, BaseException):  # a fault in transformers: the chat says so and goes on
                    logger.error("generation failed", exc_info=item)
                    raise BackendError(f"generation failed: {type(item).__name__}: {item}") from item
                if visible := run.stops.feed(item):
                    yield visible
                if run.stops.stopped:
                    cancel.set()
                    break
            if tail := run.stops.flush():
                yield tail
        finally:
            cancel.set()  # a consumer that stops listening stops the generation too
            run.tokens = streamer.tokens

    def _token_choices(self, generated, prompt_len: int, alternatives: int) -> tuple[TokenChoice, ...]:
        """Each generated token with its log-probability and the likeliest alternatives."""
        choices = []
        for step, logits in enumerate(generated.logits):
            logprobs = torch.log_softmax(logits[0].float(), dim=-1)
            chosen = int(generated.sequences[0, prompt_len + step])
            top = torch.topk(logprobs, alternatives + 1)
            others = [(int(i), float(lp)) for lp, i in zip(top.values, top.indices, strict=True) if int(i) != chosen]
            choices.append(
                TokenChoice(
                    self._tokenizer.decode([chosen], skip_special_tokens=True),
                    float(logprobs[chosen]),
                    tuple((self._tokenizer.decode([i]), lp) for i, lp in others[:alternatives]),
                )
            )
        return tuple(choices)

    def _constraint(self, response_format: dict):
        """A logits processor holding the output to a response format (xgrammar): the console's
        JSON schema of a forced call, or the structural tag of LMDeploy's parser."""
        import xgrammar
        from lmdeploy._guided_decoding import compile_response_format  # what LMDeploy's engines compile with
        from xgrammar.contrib.hf import LogitsProcessor

        if self._grammar_compiler is None:
            info = xgrammar.TokenizerInfo.from_huggingface(
                self._tokenizer,
                vocab_size=self._model.config.vocab_size,
                stop_token_ids=self._stop_token_ids(),  # what generate() stops on
            )
            self._grammar_compiler = xgrammar.GrammarCompiler(info)
        if response_format["type"] == "json_schema":  # compact: a small model fills free whitespace
            schema = json.dumps(response_format["json_schema"]["schema"])
            return LogitsProcessor(self._grammar_compiler.compile_json_schema(schema, any_whitespace=False))
        return LogitsProcessor(compile_response_format(self._grammar_compiler, response_format))

    def _stop_token_ids(self) -> list[int]:
        # the generation config's, not the tokenizer's: SmolLM2's GGUF names <|im_start|> as eos
        eos = self._model.generation_config.eos_token_id
        return list(eos) if isinstance(eos, (list, tuple)) else [eos]

    def _generate(self, prompt_ids, params: GenerationParams, max_new, streamer, cancel, loop, queue, run: _Run):
        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return cancel.is_set()

        sampling = not params.greedy
        try:
            with self._generate_lock, torch.inference_mode():
                if cancel.is_set():
                    return
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                generated = self._model.generate(
                    input_ids=prompt_ids,
                    attention_mask=torch.ones_like(prompt_ids),
                    do_sample=sampling,
                    **_generate_knobs(params, max_new),
                    min_new_tokens=max_new if params.ignore_eos else None,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                    logits_processor=[run.constraint] if run.constraint else None,
                    past_key_values=self._new_cache(),
                    pad_token_id=self._tokenizer.eos_token_id,
                    # the model's own scores, before temperature and top-k/p: its confidence in each token
                    output_logits=params.logprobs > 0,
                    return_dict_in_generate=params.logprobs > 0,
                )
                if params.logprobs:
                    run.token_logprobs = self._token_choices(generated, prompt_ids.shape[1], params.logprobs)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it in its task
            _deliver(loop, queue, exc)
        finally:
            _deliver(loop, queue, _DONE)

    async def close(self) -> None:
        """Drop the weights and hand their memory back to the system: glibc keeps freed blocks for
        reuse, so without a trim each switch between CPU presets left the process larger."""
        self._model = self._grammar_compiler = None
        await asyncio.to_thread(_release_freed_memory)


class ArrivalLine:
    """One at a time, in arrival order; each waiting place learns how many are before it. (A
    threading.Lock wakes whichever waiter the OS picks: a chat could wait behind later ones.)"""

    def __init__(self):
        self._places: list[object] = []
        self._moved = asyncio.Event()

    @asynccontextmanager
    async def turn(self):
        """Enter the line; the context's value yields the count ahead each time it changes, and ends
        when this place is first. Leaving the context, served or not, leaves the line."""
        place = object()
        self._places.append(place)
        try:
            yield self._waits(place)
        finally:
            self._places.remove(place)
            self._moved.set()
            self._moved = asyncio.Event()

    async def _waits(self, place):
        while True:
            moved = self._moved  # taken before the count: a move while the caller paints still wakes it
            if (ahead := self._places.index(place)) == 0:
                return
            yield ahead
            await moved.wait()


def _generate_knobs(params: GenerationParams, max_new_tokens: int) -> dict:
    """The knobs as transformers' `generate` names them (as GenerationParams does); sampling ones left
    unset when decoding greedily, min_p 0 unset (transformers would add a filter that does nothing)."""
    knobs = params.engine_knobs() | {"max_new_tokens": max_new_tokens}
    return {name: value for name, value in knobs.items() if not (name == "min_p" and not value)}


def _quantized(model, weights: CpuWeights):
    """The model with its Linear layers in int8 where `weights` asks (the embedding stays fp32)."""
    if weights == "int8-dynamic":
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    if weights == "int8-weight-only":
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        quantize_(model, Int8WeightOnlyConfig())
    return model


def _kv_bytes_per_token(config, weights: CpuWeights, kv_cache: CpuKvCache) -> float | None:
    """A token's keys and values in the cache (they are in the float type the weights load in), or None
    when the config lacks the sizes."""
    sizes = config.to_dict()
    layers, heads, dim = sizes.get("num_hidden_layers"), sizes.get("num_attention_heads"), head_dim(sizes)
    if not (layers and heads and dim):
        return None
    float_bytes = torch.finfo(_LOAD_DTYPE.get(weights, torch.float32)).bits // 8
    kv_heads = sizes.get("num_key_value_heads") or heads
    return kv_bytes_per_token(layers, kv_heads, dim, float_bytes, kv_cache)


def _build_quantized_cache_kernels(cache) -> None:
    """Quantize a few values through `cache` now, so that a missing package or a failed build of
    optimum-quanto's C++ kernels (once per machine, ~40 s on 2 cores) refuses the preset as it loads,
    not the first chat."""
    try:
        layer = cache.layers[0]
        layer._quantize(torch.zeros(1, 1, KV_GROUP, KV_GROUP), axis=layer.axis_key)
    except Exception as exc:  # noqa: BLE001 - ImportError, or the compiler's failure as torch reports it
        raise ModelLoadError(
            f"a quantized KV cache on the CPU needs optimum-quanto, which builds its kernels with a C++ compiler "
            f"on first use ({type(exc).__name__}: {exc}); install the console's requirements and g++, or pick "
            "the cpu preset"
        ) from exc


def weights_bytes(model) -> int:
    """Bytes the model's weights take: its parameters (a quantized tensor by the tensors it is made of),
    plus the packed weights of dynamically quantized layers, which sit outside `parameters()`."""
    parameters = {id(p): p for p in model.parameters()}.values()  # a tied embedding counts once
    packed = [
        tensor
        for module in model.modules()
        if hasattr(getattr(module, "_packed_params", None), "_weight_bias")
        for tensor in module._packed_params._weight_bias()
        if tensor is not None
    ]
    return sum(_tensor_bytes(tensor) for tensor in [*parameters, *packed])


def _tensor_bytes(tensor) -> int:
    if hasattr(tensor, "__tensor_flatten__"):  # torchao's int8 tensor: its int8 data and its scales
        names, _ = tensor.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def _release_freed_memory() -> None:
    collect_everything()  # the model's tensors may sit in reference cycles until a collection
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator decides
        pass


def _deliver(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, item) -> None:
    """Hand an item from the generation thread to the stream's event loop."""
    try:
        loop.call_soon_threadsafe(queue.put_nowait, item)
    except RuntimeError:  # the loop has closed: nobody is listening any more
        pass


@dataclass
class _Run:
    """One generation's stop words, optional output constraint, and token count."""

    stops: StopMatcher
    constraint: object | None
    tokens: int = 0
    token_logprobs: tuple = ()  # TokenChoice for each token, where they were asked for


class _QueueStreamer(TextStreamer):
    """transformers' incremental detokenizer, delivering text into an asyncio queue."""

    def __init__(self, tokenizer, loop, queue):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._loop, self._queue = loop, queue
        self.tokens = 0
        self._prompt_seen = False

    def put(self, value):
        if self._prompt_seen:
            self.tokens += value.numel()
        self._prompt_seen = True
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False):
        if text:
            _deliver(self._loop, self._queue, text)
