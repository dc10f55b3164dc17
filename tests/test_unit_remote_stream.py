"""The remote backend reads an OpenAI-style event stream itself (plain JSON, not the openai client's
pydantic object a chunk). The chunks here are built with LMDeploy 0.18's own protocol classes and
framed as api_server frames them (`data: <model_dump_json()>`), so the shapes are api_server's: text,
usage with cached tokens, tool-call pieces, token logprobs, and the ways a stream goes wrong. They
reach the backend through the openai client over a transport that plays them back (no api_server
runs without a GPU; the GPU tier has the real one)."""

from __future__ import annotations

import httpx2
import openai
import pytest
from lmdeploy.serve.openai.protocol import (
    ChatCompletionResponseStreamChoice,
    ChatCompletionStreamResponse,
    ChatCompletionTokenLogprob,
    ChoiceLogprobs,
    DeltaFunctionCall,
    DeltaMessage,
    DeltaToolCall,
    PromptTokensDetails,
    TopLogprob,
    UsageInfo,
)

from backends import (
    BackendError,
    BackendUnavailable,
    ChatRequest,
    Finish,
    GenerationParams,
    TextDelta,
    TokenLogprobs,
    ToolCall,
    ToolCallPiece,
    Usage,
)
from backends.remote import RemoteBackend

ASK = ChatRequest([{"role": "user", "content": "What is 2+3?"}], GenerationParams(temperature=0, max_new_tokens=8))


def chunk(delta: DeltaMessage, finish: str | None = None, logprobs: ChoiceLogprobs | None = None) -> str:
    choice = ChatCompletionResponseStreamChoice(index=0, delta=delta, finish_reason=finish, logprobs=logprobs)
    return ChatCompletionStreamResponse(model="m", choices=[choice]).model_dump_json()


def usage_chunk(prompt: int, completion: int, cached: int) -> str:
    usage = UsageInfo(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )
    return ChatCompletionStreamResponse(model="m", choices=[], usage=usage).model_dump_json()


def playing(*events: str, then_cut: bool = False) -> RemoteBackend:
    """A backend whose server streams `events` (then [DONE], or a dropped connection)."""

    async def body():
        for event in events:
            yield f"data: {event}\n\n".encode()
        if then_cut:
            raise httpx2.ReadError("peer closed connection without sending complete message body")
        yield b"data: [DONE]\n\n"

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    client = openai.AsyncOpenAI(base_url="http://api-server/v1", api_key="none", http_client=http, max_retries=0)
    return RemoteBackend(client, "m", "http://api-server/v1")


async def deltas(backend: RemoteBackend) -> list:
    return [delta async for delta in backend.stream_chat(ASK)]


async def test_text_usage_and_the_finish_reason():
    backend = playing(
        chunk(DeltaMessage(role="assistant", content="2 + 3")),
        chunk(DeltaMessage(content=" = 5"), finish="stop"),
        usage_chunk(12, 2, cached=8),
    )
    assert await deltas(backend) == [TextDelta("2 + 3"), TextDelta(" = 5"), Usage(12, 2, 8), Finish("stop")]


async def test_tool_call_pieces_add_up_to_the_whole_call():
    def piece(name=None, arguments=None, call_id=None) -> DeltaMessage:
        return DeltaMessage(
            tool_calls=[DeltaToolCall(index=0, id=call_id, function=DeltaFunctionCall(name=name, arguments=arguments))]
        )

    backend = playing(
        chunk(piece(name="add", call_id="call_1")),
        chunk(piece(arguments='{"a": 2, ')),
        chunk(piece(arguments='"b": 3}'), finish="tool_calls"),
    )
    got = await deltas(backend)
    assert got[:3] == [ToolCallPiece(0, "add", ""), ToolCallPiece(0, "", '{"a": 2, '), ToolCallPiece(0, "", '"b": 3}')]
    assert got[3:] == [ToolCall("call_1", "add", '{"a": 2, "b": 3}'), Finish("tool_calls")]


async def test_token_logprobs_come_once_at_the_end_in_readable_text():
    top = [TopLogprob(token="Ġ5", logprob=-0.1), TopLogprob(token="Ġfive", logprob=-2.5)]
    logprobs = ChoiceLogprobs(content=[ChatCompletionTokenLogprob(token="Ġ5", logprob=-0.1, top_logprobs=top)])
    backend = playing(chunk(DeltaMessage(content=" 5"), finish="stop", logprobs=logprobs))
    *_, probabilities, finish = await deltas(backend)
    assert isinstance(probabilities, TokenLogprobs) and finish == Finish("stop")
    (token,) = probabilities.tokens
    assert (token.text, token.logprob, token.alternatives) == (" 5", -0.1, ((" five", -2.5),))


async def test_an_error_event_mid_stream_is_the_servers_message():
    backend = playing(chunk(DeltaMessage(content="2")), '{"error": {"message": "engine out of KV blocks"}}')
    with pytest.raises(BackendError, match="engine out of KV blocks"):
        await deltas(backend)


async def test_a_dropped_connection_mid_reply_says_the_reply_is_kept():
    backend = playing(chunk(DeltaMessage(content="2 + 3")), then_cut=True)
    with pytest.raises(BackendUnavailable, match="broke mid-reply"):
        await deltas(backend)


async def test_a_stream_that_ends_without_a_finish_reason_is_broken_not_finished():
    """What LMDeploy's proxy sends when the node behind it dies."""
    backend = playing(chunk(DeltaMessage(content="2 + 3")))
    with pytest.raises(BackendUnavailable, match="without a finish reason"):
        await deltas(backend)


async def test_a_chunk_that_is_not_json_is_named():
    backend = playing("<html>502 Bad Gateway</html>")
    with pytest.raises(BackendError, match="not JSON"):
        await deltas(backend)
