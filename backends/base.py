"""The one protocol every engine speaks, and the values that cross it.

A backend turns a :class:`ChatRequest` into an async stream of typed deltas. Callers never
see engine objects, only these values and the errors below, whose messages say what to do.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

FinishReason = Literal["stop", "length", "tool_calls", "cancelled", "error"]
KindName = Literal["lmdeploy", "remote", "cpu"]
ToolPrompt = Literal["model", "console"]  # see ChatRequest.tool_prompt  # what `backends.KINDS` can start


@dataclass(frozen=True)
class KnobRange:
    """A sampling knob's declaration: the values it may take (both ends included), the step its slider
    moves by, and how engines read it. Every engine the console drives (LMDeploy's `GenerationConfig`,
    api_server's request, transformers' `generate`) names a knob as GenerationParams does, so a knob
    reaches each of them by its name; `openai_name` is its name in OpenAI's chat request, where it is
    one of OpenAI's fields (None: it rides in `extra_body`, as api_server and vLLM read it)."""

    low: float
    high: float
    step: float
    label: str | None = None  # the slider's label, where it says more than the name
    sampling_only: bool = True  # means nothing under greedy decoding (not sent to transformers then)
    openai_name: str | None = None


def _knob(default, low: float, high: float, step: float, **declared):
    return field(default=default, metadata={"knob": KnobRange(low, high, step, **declared)})


_SEED_RANGE = (0, 2**63 - 1)  # what the engines' random generators take
MAX_LOGPROBS = 20  # alternatives per token: OpenAI's top_logprobs allows 20


@dataclass(frozen=True)
class GenerationParams:
    """Sampling knobs shared by every backend. A knob declared here with `_knob` is the whole of it:
    the Chat tab's slider and its `/chat` and `/regenerate` parameter, the presets' `generation:`
    field, chat import and export, and every engine's request follow from the declaration.
    Out-of-range values raise ValueError naming the knob."""

    temperature: float = _knob(0.7, 0.0, 2.0, 0.05, label="temperature (0 = greedy)", openai_name="temperature")
    top_p: float = _knob(0.95, 0.01, 1.0, 0.01, openai_name="top_p")
    top_k: int = _knob(40, 1, 1000, 1)
    min_p: float = _knob(0.0, 0.0, 1.0, 0.01, label="min_p (0 = off)")
    max_new_tokens: int = _knob(512, 1, 32768, 1, sampling_only=False, openai_name="max_tokens")
    repetition_penalty: float = _knob(1.0, 0.5, 2.0, 0.01, sampling_only=False)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # generate exactly max_new_tokens (a load test's fixed output length, as LMDeploy's
    # profile_throughput runs); never set from the Chat tab
    ignore_eos: bool = False
    # report each generated token's log-probability and this many likeliest alternatives (0: none)
    logprobs: int = 0

    def __post_init__(self):
        for name, allowed in SAMPLING_RANGES.items():
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not allowed.low <= value <= allowed.high
            ):
                raise ValueError(f"{name} must be between {allowed.low:g} and {allowed.high:g} ({value!r} given)")
        if (
            isinstance(self.logprobs, bool)
            or not isinstance(self.logprobs, int)
            or not 0 <= self.logprobs <= MAX_LOGPROBS
        ):
            raise ValueError(f"logprobs must be a whole number from 0 to {MAX_LOGPROBS} ({self.logprobs!r} given)")
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not _SEED_RANGE[0] <= self.seed <= _SEED_RANGE[1]
        ):
            raise ValueError(
                f"seed must be a whole number from 0 to 2**63 - 1, or none for random ({self.seed!r} given)"
            )

    @classmethod
    def from_form(cls, knobs: dict, **rest) -> GenerationParams:
        """From the knobs' values as a form or an API call sends them (a slider's 40.0 for top_k), each
        made the number its declaration takes; TypeError where one is no number."""
        whole = {f.name for f in dataclasses.fields(cls) if f.type == "int"}
        numbers: dict[str, Any] = {name: int(v) if name in whole else float(v) for name, v in knobs.items()}
        return cls(**numbers, **rest)

    def knob_values(self) -> dict:
        """The sampling knobs by name, in their declared order."""
        return {name: getattr(self, name) for name in SAMPLING_RANGES}

    def openai_knobs(self) -> tuple[dict, dict]:
        """The knobs for an OpenAI-style chat request: OpenAI's own fields under OpenAI's names, and the
        rest under their own names (api_server and vLLM read those from the request body)."""
        standard, extras = {}, {}
        for name, value in self.knob_values().items():
            if openai_name := SAMPLING_RANGES[name].openai_name:
                standard[openai_name] = value
            else:
                extras[name] = value
        return standard, extras

    def engine_knobs(self) -> dict:
        """The knobs an engine reads by name: all of them, less those that mean nothing when decoding
        greedily (temperature 0: each engine's own greedy switch decides)."""
        return {
            name: value
            for name, value in self.knob_values().items()
            if not (self.greedy and SAMPLING_RANGES[name].sampling_only)
        }

    @property
    def greedy(self) -> bool:
        """Temperature 0 means greedy decoding, and so does anything below 0.01: dividing the logits by a
        temperature that small overflows them (found by fuzzing: 1e-212 made transformers fail)."""
        return self.temperature < 0.01

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> GenerationParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown generation parameter(s): {', '.join(unknown)}")
        values = dict(data)
        if "stop" in values:
            values["stop"] = tuple(values["stop"] or ())
        return cls(**values)


# Each sampling knob's declaration, by name, in the order the Chat tab shows them.
SAMPLING_RANGES = {f.name: f.metadata["knob"] for f in dataclasses.fields(GenerationParams) if "knob" in f.metadata}


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn: OpenAI-style messages (`role`/`content` dicts) and the sampling knobs.

    `tools` are OpenAI `tools` entries; `tool_choice` is "auto", "none", "required" or
    {"type": "function", "function": {"name": ...}}, as in the OpenAI API. `tool_prompt` picks
    how a local engine shows the model its tools: "model" is the model's own chat template and
    LMDeploy's parser for its family, where the preset names one (`tool_parser`), else the
    console's prompt; "console" is always the console's prompt (tools listed in the system
    prompt, calls as `<tool_call>` JSON), which works with any model."""

    messages: list[dict]
    params: GenerationParams = field(default_factory=GenerationParams)
    tools: list[dict] | None = None
    tool_choice: str | dict = "auto"
    tool_prompt: ToolPrompt = "model"


@dataclass(frozen=True)
class TextDelta:
    """New text since the previous delta (never the whole reply so far)."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A whole tool call the model made; `arguments` is the JSON text it wrote, unparsed."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolCallPiece:
    """Part of tool call `index` as the model writes it: its name once, then its arguments a
    few characters at a time. For showing a call being written; the whole `ToolCall` follows."""

    index: int
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Token counts of the request, as the engine reports them. `cached_tokens`: prompt tokens whose
    KV the prefix cache already held (None where the engine does not say)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None


@dataclass(frozen=True)
class TokenChoice:
    """One generated token: its text, its log-probability, and the likeliest alternatives as
    (text, log-probability) pairs, most likely first."""

    text: str
    logprob: float
    alternatives: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class TokenLogprobs:
    """The reply's tokens with their probabilities, once, at the end of the reply (when `logprobs` was
    asked for and the engine gives them)."""

    tokens: tuple[TokenChoice, ...]


@dataclass(frozen=True)
class Finish:
    """The last delta of every stream that did not raise."""

    reason: FinishReason


@dataclass(frozen=True)
class Queued:
    """Before any text: the request waits for its turn, `ahead` requests before it on `engine`."""

    ahead: int
    engine: str  # e.g. "this CPU engine"

    def describe(self) -> str:
        return f"{self.ahead} chat{'s' if self.ahead != 1 else ''} ahead of yours on {self.engine}"


Delta = TextDelta | ToolCallPiece | ToolCall | TokenLogprobs | Usage | Finish | Queued


@dataclass(frozen=True)
class TextScore:
    """How well the model predicts a text: the mean negative log-likelihood per scored token
    (nats), as LMDeploy's `get_ppl` returns it. `tokens` is None where the server does not say."""

    mean_nll: float
    tokens: int | None

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll)


@dataclass(frozen=True)
class NextTokenLogprobs:
    """The model's whole next-token distribution at each position of a text: row i holds the
    log-probabilities of every vocabulary entry after the text's first i + 1 tokens.
    `logprobs` is a float16 numpy array (positions x vocabulary)."""

    token_ids: tuple[int, ...]
    logprobs: object  # numpy.ndarray; numpy is not imported by the protocol


class KvCacheDetails(TypedDict, total=False):
    """The KV cache an LMDeploy engine reserved: counted by the PyTorch engine, estimated for TurboMind."""

    blocks: int | None
    block_size: int
    bytes_per_block: int | None
    tokens: int | None
    bytes: int | None
    source: Literal["engine", "estimate"]


class EngineDetails(TypedDict, total=False):
    """What a backend says of itself; each fills the keys that apply to it. Plain data, as it crosses
    the worker's pipe and the `/engine_status` endpoint."""

    config: dict  # lmdeploy: the EngineOptions fields as the engine runs them, LMDeploy's defaults filled in
    session_len: int  # lmdeploy: the session length the engine settled on
    kv_cache: KvCacheDetails  # lmdeploy
    load_seconds: float
    worker_pid: int | None  # lmdeploy: the process holding the engine's GPU memory
    context_tokens: int  # cpu: the model's context length
    torch_threads: int  # cpu
    kv_bytes_per_token: float | None  # cpu: a token's keys and values, past a quantized cache's exact window
    weights_bytes: int  # the checkpoint's weight files
    random_weights: bool  # a stand-in model (bench.random_llama): speed and memory are real, quality is noise
    tool_parser: str | None  # LMDeploy's tool-call parser in use (lmdeploy, cpu)
    base_url: str  # remote
    proxy: str  # remote: LMDeploy's proxy in front of the nodes
    ignored_params: str  # remote: sampling knobs the server refused
    reason: str  # no engine: why


@dataclass(frozen=True)
class BackendInfo:
    """What the UI header and exports say about the running engine."""

    kind: KindName | Literal["none"]  # "none": no engine runs
    model: str
    engine: str  # e.g. "pytorch", "turbomind", "transformers (cpu)", "openai-compatible"
    details: EngineDetails = field(default_factory=lambda: EngineDetails())


@dataclass(frozen=True)
class SchedulerMetrics:
    """An engine's scheduler now, as LMDeploy reports it (in process, or from api_server's `/metrics`);
    None where it does not say. `series`: every `lmdeploy:*` Prometheus series of a remote server."""

    cache_usage: float | None  # share of the KV-cache blocks in use
    running: int | None  # requests being generated
    waiting: int | None  # requests queued for room in the KV cache
    prefix_cache_hit_rate: float | None = None
    series: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """An engine behind one async interface. Backends subclass it: what a backend cannot do has a
    default here (a capability flag False, a method that says so), so callers ask, never probe."""

    supports_tools: bool = False
    supports_perplexity: bool = False  # score_text works
    supports_logprobs: bool = False  # next_token_logprobs works

    @property
    def pid(self) -> int | None:
        """The local process that holds the engine's GPU memory, where there is one."""
        return None

    @property
    def serving(self) -> bool:
        """False once the engine is known to be gone (its process died): it must be loaded again."""
        return True

    def stream_chat(self, request: ChatRequest) -> AsyncGenerator[Delta]:
        """Yield deltas for one reply; closing the iterator early cancels the generation."""
        ...

    def info(self) -> BackendInfo: ...

    async def score_text(self, text: str) -> TextScore:
        """Perplexity of `text` (no chat template); BackendError where `supports_perplexity` is False."""
        raise BackendError(f"{self.info().engine} does not score text (no perplexity)")

    async def next_token_logprobs(self, text: str, max_tokens: int) -> NextTokenLogprobs:
        """The next-token distributions over the first `max_tokens` tokens of `text` (no chat
        template); BackendError where `supports_logprobs` is False."""
        raise BackendError(f"{self.info().engine} does not give next-token distributions")

    async def scheduler_metrics(self) -> SchedulerMetrics | None:
        """The scheduler's view now (KV cache in use, requests running and waiting); None where the
        engine has no such view; BackendError where it has one that cannot be read now."""
        return None

    async def close(self) -> None:
        """Stop the engine and free what it holds (VRAM, worker processes, connections)."""
        ...

    async def close_for_next_engine(self) -> None:
        """Stop the engine because another GPU engine loads right after: what the next one can reuse
        may be kept for it (LMDeploy's worker process, with its imports and CUDA context)."""
        await self.close()


class Refusal(Exception):
    """A request the console will not or cannot carry out, for a reason the user can act on: the
    message says what to do. Every tab shows one as a notice, never as a fault with a traceback."""


class BackendError(Refusal):
    """The engine or its server could not do what was asked; the message says what to do."""


class BackendUnavailable(BackendError):
    """The engine or server cannot be reached or is not running."""


class AuthenticationFailed(BackendError):
    """The server refused the API key."""


class PromptTooLong(BackendError):
    """The conversation no longer fits the model's session length."""


class ModelLoadError(BackendError):
    """The model could not be loaded (bad path, not a model, out of memory, ...)."""


class EngineCrashed(BackendUnavailable):
    """The engine process died; it must be restarted before the next request."""
