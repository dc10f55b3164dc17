"""An OpenAI-compatible server: `lmdeploy serve api_server`, LMDeploy's proxy, or any other."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import openai
from openai import AsyncOpenAI

from .base import (
    AuthenticationFailed,
    BackendError,
    BackendInfo,
    BackendUnavailable,
    ChatRequest,
    Delta,
    Finish,
    PromptTooLong,
    TextDelta,
    Usage,
)

DEFAULT_BASE_URL = "http://127.0.0.1:23333/v1"
API_KEY_ENV = "LMDEPLOY_CONSOLE_API_KEY"
# A dead host or wrong port must fail in seconds; a slow reply may take minutes.
_TIMEOUT = httpx.Timeout(connect=3.0, read=300.0, write=30.0, pool=10.0)
_FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "abort": "cancelled"}


class RemoteBackend:
    """Streams chat completions from a server through the `openai` client."""

    supports_tools = True
    supports_kv_quant = False  # the server decides its own quantization

    def __init__(self, client: AsyncOpenAI, model: str, base_url: str):
        self._client, self._model, self._base_url = client, model, base_url

    @classmethod
    async def connect(
        cls, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None, model: str | None = None
    ) -> RemoteBackend:
        """Reach the server and pick the model (the first it serves, unless one is named)."""
        api_key = api_key or os.environ.get(API_KEY_ENV) or "none"
        client = AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=_TIMEOUT, max_retries=0)
        try:
            served = [m.id async for m in client.models.list()]
        except openai.APIError as exc:
            await client.close()
            raise _translate(exc, base_url) from exc
        if model and served and model not in served:
            await client.close()
            raise BackendError(f"{base_url} does not serve {model!r}; it serves: {', '.join(served)}")
        if not (model or served):
            await client.close()
            raise BackendError(f"{base_url} lists no models; name one with --model")
        return cls(client, model or served[0], base_url)

    def info(self) -> BackendInfo:
        return BackendInfo(
            kind="remote", model=self._model, engine="OpenAI-compatible server", details={"base_url": self._base_url}
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        p = request.params
        try:
            stream = await self._client.chat.completions.create(
                model=self._model,
                messages=request.messages,
                stream=True,
                stream_options={"include_usage": True},
                temperature=p.temperature,
                top_p=p.top_p,
                max_tokens=p.max_new_tokens,
                seed=p.seed,
                stop=list(p.stop) or None,
                # api_server reads these two; other servers ignore unknown fields
                extra_body={"top_k": p.top_k, "repetition_penalty": p.repetition_penalty},
            )
            finish = "stop"
            async with stream:
                async for chunk in stream:
                    if chunk.usage:
                        yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    for choice in chunk.choices:
                        if choice.delta and choice.delta.content:
                            yield TextDelta(choice.delta.content)
                        if choice.finish_reason:
                            finish = _FINISH_REASONS.get(choice.finish_reason, "stop")
            yield Finish(finish)
        except openai.APIError as exc:
            raise _translate(exc, self._base_url) from exc

    async def close(self) -> None:
        await self._client.close()


def _translate(exc: openai.APIError, base_url: str) -> BackendError:
    """Turn an openai error into one that says what to do about it."""
    if isinstance(exc, openai.APITimeoutError):
        return BackendUnavailable(f"{base_url} did not answer in time; is the server overloaded or stuck?")
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnavailable(
            f"cannot reach {base_url}: is `lmdeploy serve api_server` running there, on that port? "
            "Check --base-url"
        )
    message = _server_message(exc)
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
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return exc.message


def _is_context_error(message: str) -> bool:
    lowered = message.lower()
    return any(key in lowered for key in ("context length", "too long", "session_len", "maximum context"))
