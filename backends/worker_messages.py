"""What the console and its LMDeploy worker process (`lmdeploy_worker`) say to each other over their pipe.

Each message is a NamedTuple, matched by its type at each end: the types are the wire format, and a
NamedTuple pickles as a tuple does (plus its class, once a batch), which counts at the thousands of text
pieces a second that hundreds of streams send. Requests carry an id (`rid`) that their replies repeat.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from .base import FinishReason, GenerationParams, TokenChoice
from .lmdeploy_config import EngineOptions

# --- console -> worker: between engines ------------------------------------------------------


class Load(NamedTuple):
    """Load an engine; the worker answers with Stage messages, then Ready or LoadFailed."""

    model_path: str
    options: EngineOptions
    gpus: tuple[int, ...] | None = None  # CUDA_VISIBLE_DEVICES for the engine; None: the console's own


class Exit(NamedTuple):
    """End the process, and its engine if one runs."""


# --- console -> worker: while an engine runs ---------------------------------------------------


class Chat(NamedTuple):
    rid: int
    messages: list[dict]
    params: GenerationParams
    response_format: dict | None  # guided decoding: a forced call through the console's tool prompt


class ToolsChat(NamedTuple):
    """A chat with tools through LMDeploy's own chat template and tool parser, as api_server runs one."""

    rid: int
    messages: list[dict]
    params: GenerationParams
    tools: list[dict]
    tool_choice: str | dict


class Score(NamedTuple):
    """The perplexity of a text (no chat template)."""

    rid: int
    text: str


class Logprobs(NamedTuple):
    """The next-token distributions over a text's first `max_tokens` tokens."""

    rid: int
    text: str
    max_tokens: int


class Metrics(NamedTuple):
    """The scheduler's figures now."""

    rid: int


class Cancel(NamedTuple):
    rid: int


class Close(NamedTuple):
    """Close the engine; the process answers Closed and waits for the next Load."""


Request = Chat | ToolsChat | Score | Logprobs | Metrics


# --- worker -> console -------------------------------------------------------------------------


class Stage(NamedTuple):
    """What the load is doing now, e.g. "making the CUDA context"."""

    text: str


class Ready(NamedTuple):
    info: dict  # the engine as it runs: engine, session_len, config, kv_cache, weights_bytes, ...


class LoadFailed(NamedTuple):
    """The process ends after it: a failed load may leave CUDA in any state."""

    message: str


class Replies(NamedTuple):
    """Everything one turn of the engine's event loop replied, sent as one message."""

    replies: list[Reply]


class Closed(NamedTuple):
    gpu_used_mib: float | None  # GPU memory in use after the close, every GPU (None: NVML unreadable)
    reusable: bool  # False after LMDeploy's get_logits, whose engines garble the replies of the next


# --- a reply, to the request `rid` -------------------------------------------------------------


class Text(NamedTuple):
    rid: int
    text: str


class CallPiece(NamedTuple):
    """A piece of a tool call, as LMDeploy's parser finds it (see `tool_calls.CallPieces`)."""

    rid: int
    call_index: int
    call_id: str | None
    name: str | None
    arguments: str | None


class TokenChoices(NamedTuple):
    rid: int
    tokens: tuple[TokenChoice, ...]


class Usage(NamedTuple):
    rid: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int


class Finish(NamedTuple):
    rid: int
    reason: FinishReason


class Failed(NamedTuple):
    rid: int
    kind: Literal["prompt_too_long", "request", "engine", "crashed"]  # "crashed": said by the console's reader
    message: str


class Scored(NamedTuple):
    rid: int
    mean_nll: float
    tokens: int


class Distributions(NamedTuple):
    rid: int
    token_ids: list[int]
    logprobs: Any  # numpy float16 array, tokens x vocabulary: a few MB a hundred tokens


class SchedulerFigures(NamedTuple):
    rid: int
    cache_usage: float | None
    running: int | None
    waiting: int | None
    prefix_cache_hit_rate: float | None


Reply = Text | CallPiece | TokenChoices | Usage | Finish | Failed | Scored | Distributions | SchedulerFigures
LAST_REPLIES = (Finish, Failed, Scored, Distributions, SchedulerFigures)  # a request gets nothing after these
