"""The CPU the remote backend spends a streamed chunk, against the openai client's own stream, in one run.

    python -m bench.remote_stream

A console in front of fast servers (a fleet behind LMDeploy's proxy) takes in thousands of
chunks a second in one Python process; what each costs sets how many tokens a second it can pass on.
Both layers read the same api_server-shaped stream (chunks built with LMDeploy's protocol classes),
played back in memory so that the network and the server cost nothing:
  openai client        `chat.completions.create(stream=True)`, iterated: a pydantic object a chunk
  console's backend     `RemoteBackend.stream_chat`: the same request, the stream read as plain JSON
Prints CPU µs a chunk (process time, median of the rounds) and the chunks a second one core could take;
then the CPU of sending one request as the conversation grows (2, 20 and 100 messages, a one-chunk
answer): the openai client walks every message through its typed-dict transform, the backend sends the
conversation as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx2
import openai
from lmdeploy.serve.openai.protocol import (
    ChatCompletionResponseStreamChoice,
    ChatCompletionStreamResponse,
    DeltaMessage,
)

from backends import ChatRequest, GenerationParams
from backends.remote import RemoteBackend
from bench.cli import emit
from telemetry.machine import describe_machine

REQUEST = ChatRequest([{"role": "user", "content": "Tell a story."}], GenerationParams(temperature=0))
CONVERSATION_LENGTHS = (2, 20, 100)


def conversation(messages: int) -> ChatRequest:
    """A chat of `messages` messages: questions and 48-word answers in turn, a question last."""
    turns = [
        {"role": "assistant", "content": "word " * 48} if i % 2 else {"role": "user", "content": f"Question {i}?"}
        for i in range(messages - 1)
    ]
    return ChatRequest([*turns, {"role": "user", "content": "And the last one?"}], REQUEST.params)


def api_server_stream(chunks: int) -> bytes:
    """`chunks` chunks of one token each, the last with its finish reason, framed as api_server frames them."""

    def event(text: str, finish: str | None) -> str:
        choice = ChatCompletionResponseStreamChoice(index=0, delta=DeltaMessage(content=text), finish_reason=finish)
        return f"data: {ChatCompletionStreamResponse(model='m', choices=[choice]).model_dump_json()}\n\n"

    return ("".join(event(" word", None) for _ in range(chunks - 1)) + event(".", "stop") + "data: [DONE]\n\n").encode()


def client_playing(body: bytes) -> openai.AsyncOpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return openai.AsyncOpenAI(base_url="http://api-server/v1", api_key="none", http_client=http, max_retries=0)


async def openai_client(client: openai.AsyncOpenAI, request: ChatRequest) -> None:
    stream = await client.chat.completions.create(model="m", messages=request.messages, stream=True)
    async for _ in stream:
        pass


async def consoles_backend(client: openai.AsyncOpenAI, request: ChatRequest) -> None:
    async for _ in RemoteBackend(client, "m", "http://api-server/v1").stream_chat(request):
        pass


LAYERS = {"openai client": openai_client, "console's backend": consoles_backend}


async def cpu_seconds(body: bytes, read, request: ChatRequest) -> float:
    client = client_playing(body)
    started = time.process_time()
    await read(client, request)
    spent = time.process_time() - started
    await client.close()
    return spent


async def measure(chunks: int, rounds: int) -> dict[str, list[float]]:
    """CPU µs a chunk of a `chunks`-chunk reply, per layer, one value a round."""
    body = api_server_stream(chunks)
    costs: dict[str, list[float]] = {name: [] for name in LAYERS}
    for _ in range(rounds):  # interleaved
        for name, read in LAYERS.items():
            costs[name].append(await cpu_seconds(body, read, REQUEST) / chunks * 1e6)
    return costs


async def measure_requests(rounds: int) -> dict[int, dict[str, list[float]]]:
    """CPU ms of a request and its one-chunk answer, per conversation length and layer."""
    body = api_server_stream(1)
    costs = {length: {name: [] for name in LAYERS} for length in CONVERSATION_LENGTHS}
    for _ in range(rounds):
        for length in CONVERSATION_LENGTHS:
            for name, read in LAYERS.items():
                costs[length][name].append(await cpu_seconds(body, read, conversation(length)) * 1000)
    return costs


def table(costs: dict[str, list[float]], requests: dict[int, dict[str, list[float]]], args) -> str:
    base = statistics.median(costs["openai client"])
    lines = [
        describe_machine(),
        "",
        f"{args.chunks:,} chunks of one token, {args.rounds} rounds, layers interleaved; medians.",
        "",
        "| layer | CPU a chunk (µs) | x openai client | chunks a second on one core |",
        "| --- | --- | --- | --- |",
    ]
    for name, values in costs.items():
        cost = statistics.median(values)
        lines.append(f"| {name} | {cost:.1f} | {cost / base:.2f}x | {1e6 / cost:,.0f} |")
    lines += [
        "",
        "| messages in the conversation | " + " | ".join(f"{name}: CPU a request (ms)" for name in LAYERS) + " |",
    ]
    lines.append("| --- |" + " --- |" * len(LAYERS))
    for length, by_layer in requests.items():
        lines.append(f"| {length} | " + " | ".join(f"{statistics.median(v):.2f}" for v in by_layer.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out")
    args = parser.parse_args()
    costs = asyncio.run(measure(args.chunks, args.rounds))
    emit(table(costs, asyncio.run(measure_requests(args.rounds)), args), args.out)


if __name__ == "__main__":
    main()
