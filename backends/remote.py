"""An OpenAI-compatible server: `lmdeploy serve api_server`, LMDeploy's proxy, or any other."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Self

import httpx
import httpx2  # the openai client's HTTP library (its fork of httpx): what its streams raise
import openai
from openai import AsyncOpenAI
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall, ChoiceLogprobs

from .base import (
    SAMPLING_RANGES,
    AuthenticationFailed,
    Backend,
    BackendError,
    BackendInfo,
    BackendUnavailable,
    ChatRequest,
    Delta,
    EngineDetails,
    Finish,
    FinishReason,
    PromptTooLong,
    SchedulerMetrics,
    TextDelta,
    TextScore,
    TokenChoice,
    TokenLogprobs,
    Usage,
)
from .prometheus import lmdeploy_series, scheduler_from_series
from .redact import hide_credentials, mask_secret
from .tool_calls import CallPieces, piece_fields

DEFAULT_BASE_URL = "http://127.0.0.1:23333/v1"
API_KEY_ENV = "LMDEPLOY_CONSOLE_API_KEY"
DEFAULT_READ_TIMEOUT_S = 300.0


def _timeout(read_s: float = DEFAULT_READ_TIMEOUT_S) -> httpx.Timeout:
    """A dead host or wrong port must fail in seconds; a slow reply may take minutes (`read` is
    each wait for the next bytes, so a long reply that keeps streaming never hits it)."""
    return httpx.Timeout(connect=3.0, read=read_s, write=30.0, pool=10.0)


# the knobs beyond OpenAI's, which ride in extra_body (with ignore_eos, when a load test asks for it)
_SAMPLING_EXTRAS = (*(name for name, knob in SAMPLING_RANGES.items() if knob.openai_name is None), "ignore_eos")
# optional request fields a stricter server may refuse (transformers serve refuses all of these): the
# names its error message would name, and what the status card says is lost without them
_OPTIONAL = {
    "extra_body": (_SAMPLING_EXTRAS, ", ".join(_SAMPLING_EXTRAS[:-1])),
    "logprobs": (("logprobs",), "token probabilities"),
    "top_logprobs": (("logprobs",), "token probabilities"),
}
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "abort": "cancelled",
}
# api_server's --tool-call-parser names (lmdeploy 0.18), by what the model's name contains
_TOOL_PARSERS = (
    ("qwen3-coder", "qwen3coder"),
    ("qwen", "qwen"),
    ("intern", "internlm"),
    ("llama-3", "llama3"),
    ("llama3", "llama3"),
    ("glm-4.7", "glm47"),
    ("kimi-k2", "kimi_k2"),
    ("deepseek-v3.2", "deepseek-v32"),
)


async def served_models(client: AsyncOpenAI, base_url: str) -> list[str]:
    """The models the server lists (`/v1/models`); its errors as the console's."""
    try:
        return [m.id async for m in client.models.list()]
    except openai.APIError as exc:
        raise _translate(exc, base_url, client.api_key) from exc


class RemoteBackend(Backend):
    """Streams chat completions from a server through the `openai` client."""

    supports_tools = True  # the server parses calls (api_server: --tool-call-parser)
    supports_perplexity = True  # where the server is lmdeploy's api_server (`/get_ppl`)
    supports_logprobs = False  # an OpenAI server returns at most 20 top logprobs, not the whole distribution

    def __init__(self, client: AsyncOpenAI, model: str, base_url: str, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S):
        self._client, self._model, self._base_url = client, model, base_url
        self._shown_url = hide_credentials(base_url)  # what messages and the status show
        self._read_timeout_s = read_timeout_s  # what the client was made with, for the message
        self._refused: set[str] = set()  # optional fields this server refused: left out from then on

    @classmethod
    async def connect(
        cls,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        model: str | None = None,
        read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
        *,
        models_may_come_later: bool = False,
    ) -> Self:
        """Reach the server and pick the model (the first it serves, unless one is named; none yet where
        `models_may_come_later`: a proxy before its first node). A server silent for `read_timeout_s`
        during a reply is given up on."""
        api_key = api_key or os.environ.get(API_KEY_ENV) or "none"

        def make_client() -> AsyncOpenAI:
            return AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=_timeout(read_timeout_s), max_retries=0)

        # The probe gets a client of its own: an httpx pool is bound to the event loop that
        # first used it, and the console chats from another loop than the one it started in.
        probe = make_client()
        try:
            served = await served_models(probe, base_url)
        finally:
            await probe.close()
        shown = hide_credentials(base_url)
        if model and served and model not in served:
            raise BackendError(f"{shown} does not serve {model!r}; it serves: {', '.join(served)}")
        if not (model or served or models_may_come_later):
            raise BackendError(f"{shown} lists no models; name one with --model")
        return cls(make_client(), model or (served[0] if served else ""), base_url, read_timeout_s)

    def info(self) -> BackendInfo:
        details = EngineDetails(base_url=self._shown_url)
        if self._refused:
            lost = dict.fromkeys(_OPTIONAL[key][1] for key in sorted(self._refused))
            details["ignored_params"] = f"{', '.join(lost)} (the server does not accept them)"
        return BackendInfo(kind="remote", model=self._model, engine="OpenAI-compatible server", details=details)

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[Delta]:
        started = False
        try:
            response = await self._open_stream(request)
            started, finish, calls, tokens = True, None, CallPieces(), []
            try:
                async for chunk in _stream_chunks(response):
                    if usage := chunk.get("usage"):
                        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                        yield Usage(usage["prompt_tokens"], usage["completion_tokens"], cached)
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            yield TextDelta(delta["content"])
                        for piece in delta.get("tool_calls") or ():
                            yield calls.add(*piece_fields(ChoiceDeltaToolCall.model_validate(piece)))
                        if choice.get("finish_reason"):
                            finish = _FINISH_REASONS.get(choice["finish_reason"], "stop")
                        if choice.get("logprobs"):
                            tokens += _token_choices(ChoiceLogprobs.model_validate(choice["logprobs"]))
            finally:
                await response.aclose()
            if finish is None:  # a proxy whose node died ends the stream with no finish reason, and no error
                raise BackendUnavailable(
                    f"the reply stream from {self._shown_url} ended without a finish reason: the server (or the node "
                    "behind a proxy) stopped; the reply so far is kept"
                )
            if tokens:
                yield TokenLogprobs(tuple(tokens))
            whole = calls.whole()
            for call in whole:
                yield call
            yield Finish("tool_calls" if whole else finish)
        except openai.APIConnectionError as exc:
            if isinstance(exc, openai.APITimeoutError):
                raise BackendUnavailable(
                    f"{self._shown_url} sent nothing for {self._read_timeout_s:g} s; is the server overloaded or "
                    "stuck? The reply so far is kept (a preset's read_timeout_s sets this limit)"
                ) from exc
            if not started:
                raise _translate(exc, self._base_url, self._client.api_key) from exc
            raise BackendUnavailable(
                f"the connection to {self._shown_url} broke mid-reply (the server stopped or restarted); "
                "the reply so far is kept"
            ) from exc
        except openai.APIError as exc:
            if "--tool-call-parser" in _server_message(exc):
                raise BackendError(_parser_hint(self._shown_url, self._model)) from exc
            raise _translate(exc, self._base_url, self._client.api_key) from exc

    async def _open_stream(self, request: ChatRequest) -> httpx2.Response:
        """The request sent through the openai client (its errors, its auth); the stream it answers
        with is read by `_stream_chunks`."""
        p = request.params
        openai_knobs, extras = p.openai_knobs()
        standard = dict(
            model=self._model,
            messages=[],  # the conversation rides in extra_body, below
            stream=True,
            stream_options={"include_usage": True},
            **(openai_knobs | ({"temperature": 0.0} if p.greedy else {})),
            seed=p.seed,
            stop=list(p.stop) or None,
        )
        if request.tools:
            standard.update(tools=request.tools, tool_choice=request.tool_choice)
        # api_server and vLLM read top_k and repetition_penalty and give token logprobs; a stricter server
        # refuses what it does not know, so each refused field is dropped for good after its first refusal
        optional: dict[str, Any] = {"extra_body": extras | ({"ignore_eos": True} if p.ignore_eos else {})}
        if p.logprobs:
            optional.update(logprobs=True, top_logprobs=p.logprobs)
        while True:
            offered = {key: value for key, value in optional.items() if key not in self._refused}
            # extra_body goes out as it is; `messages` would first go through the client's typed-dict
            # transform, ~0.1 ms a message on the event loop every chat shares (11 ms a request at
            # turn 50; bench/remote_stream.py)
            body = {**offered.get("extra_body", {}), "messages": request.messages}
            try:
                raw = await self._client.chat.completions.with_raw_response.create(
                    **standard, **(offered | {"extra_body": body})
                )
                return raw.http_response
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                message = _server_message(exc)
                refused = {key for key in offered if any(name in message for name in _OPTIONAL[key][0])}
                if not refused:
                    raise
                self._refused |= refused

    async def scheduler_metrics(self) -> SchedulerMetrics:
        """From the server's Prometheus `/metrics` (api_server 0.18 serves them unless started with
        `--disable-metrics`); BackendError where the server has no such page. api_server 0.18 refreshes
        its scheduler gauges (running, waiting, cache usage) every 10 s: a reading may be that old."""
        response = await self._beside_v1("GET", "/metrics", "the server exposes no metrics there")
        return scheduler_from_series(lmdeploy_series(response.text))

    async def score_text(self, text: str) -> TextScore:
        """lmdeploy api_server's `/get_ppl`; other servers have none (BackendError)."""
        response = await self._beside_v1(
            "POST", "/get_ppl", "only lmdeploy's api_server reports perplexity", json={"input": text}
        )
        try:
            return TextScore(mean_nll=float(response.json()["ppl"]), tokens=None)
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"/get_ppl answered something else than {{'ppl': ...}}: {response.text[:200]}") from exc

    async def _beside_v1(self, method: str, path: str, missing: str, **kwargs) -> httpx.Response:
        """A request to one of api_server's own endpoints, which sit beside /v1."""
        url = server_root(self._base_url) + path
        headers = {"Authorization": f"Bearer {self._client.api_key}"}
        try:
            async with httpx.AsyncClient(timeout=_timeout()) as http:
                response = await http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"cannot reach {hide_credentials(url)}: {hide_credentials(str(exc))}") from exc
        if response.status_code != 200:
            raise BackendError(f"{hide_credentials(url)} answered {response.status_code}: {missing}")
        return response

    async def close(self) -> None:
        await self._client.close()


def server_root(url: str) -> str:
    """A server's address without its OpenAI `/v1` path: where api_server's and the proxy's own routes sit."""
    return url.strip().rstrip("/").removesuffix("/v1")


async def _stream_chunks(response: httpx2.Response) -> AsyncIterator[dict]:
    """Each chunk of an OpenAI-style event stream, as the dict its JSON gives. The openai client's own
    stream builds a pydantic object a chunk: 55 of the 60 µs it spends on one (measured), and at a few
    thousand chunks a second (a console in front of a fleet) that was a core's worth. Errors
    are raised as the openai client raises them, so they are told apart in one place."""
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # SSE comments, event names and ids: OpenAI-style chat streams carry nothing there
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise BackendError(f"the server streamed something that is not JSON: {data[:200]!r}") from exc
            if isinstance(chunk, dict) and chunk.get("error"):
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise openai.APIError(message or "the server sent an error mid-stream", response.request, body=error)
            yield chunk
    except httpx2.TimeoutException as exc:
        raise openai.APITimeoutError(request=response.request) from exc
    except httpx2.RequestError as exc:
        raise openai.APIConnectionError(request=response.request) from exc


def _token_choices(logprobs) -> list[TokenChoice]:
    """A chunk's `logprobs.content` as TokenChoice; byte-level BPE markers (api_server returns raw
    tokens such as 'Ġthe') turned back into the spaces and newlines they stand for."""

    def readable(token: str) -> str:
        return token.replace("Ġ", " ").replace("Ċ", "\n") if token else ""

    return [
        TokenChoice(
            readable(item.token),
            item.logprob,
            tuple((readable(top.token), top.logprob) for top in item.top_logprobs or () if top.token != item.token),
        )
        for item in (logprobs.content if logprobs else None) or ()
    ]


def _parser_hint(base_url: str, model: str) -> str:
    lowered = model.lower()
    parser = next((name for key, name in _TOOL_PARSERS if key in lowered), None)
    fits = (
        f"`--tool-call-parser {parser}` fits {model}"
        if parser
        else f"pick the parser of {model}'s family: " + ", ".join(sorted({name for _, name in _TOOL_PARSERS}))
    )
    return (
        f"{base_url} has no tool-call parser: restart it as `lmdeploy serve api_server ... --tool-call-parser "
        f"<name>`; {fits}. (A model whose chat template knows no tools, like SmolLM2, will not call them.)"
    )


def _translate(exc: openai.APIError, base_url: str, api_key: str | None = None) -> BackendError:
    """Turn an openai error into one that says what to do about it, with no credential of the URL
    and no echo of the API key in it."""
    base_url = hide_credentials(base_url)
    if isinstance(exc, openai.APITimeoutError):
        return BackendUnavailable(f"{base_url} did not answer in time; is the server overloaded or stuck?")
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnavailable(
            f"cannot reach {base_url}: is `lmdeploy serve api_server` running there, on that port? "
            "Check the address: a preset's `base_url` field, or --base-url on the command line"
        )
    message = mask_secret(_server_message(exc), api_key)
    if isinstance(exc, openai.AuthenticationError):
        return AuthenticationFailed(
            f"{base_url} refused the API key (401); set the right one with --api-key or ${API_KEY_ENV}"
        )
    if isinstance(exc, openai.BadRequestError) and _is_context_error(message):
        return PromptTooLong(f"the server says the prompt is too long: {message}; clear the chat or shorten it")
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.APIStatusError) and status in (502, 503, 504):
        return BackendUnavailable(f"{base_url} is not ready ({status}): {message}; try again shortly")
    prefix = f"{base_url} answered {status}" if status else f"{base_url} failed"
    return BackendError(f"{prefix}: {message}")


def _server_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error") or body.get("detail") or body  # OpenAI's shape, then FastAPI's
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return exc.message


def _is_context_error(message: str) -> bool:
    lowered = message.lower()
    return any(key in lowered for key in ("context length", "too long", "session_len", "maximum context"))
