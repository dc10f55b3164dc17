"""A room's engine host (backends/hosted.py): the real CPU engine served over a socket of this machine
to HostedBackends, as a room's console processes reach it."""

import asyncio
import os

import pytest

from backends import (
    BackendUnavailable,
    ChatRequest,
    GenerationParams,
    PromptTooLong,
    Queued,
    TextDelta,
)
from backends.hosted import HostedBackend, OneEngineHost

pytestmark = pytest.mark.cpu

GREEDY = GenerationParams(temperature=0, max_new_tokens=24)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
async def host(cpu_backend, tmp_path_factory):
    """The CPU engine served on a socket; yields (path, key)."""
    path, key = str(tmp_path_factory.mktemp("host") / "engine.sock"), os.urandom(32)
    serving = asyncio.create_task(OneEngineHost(cpu_backend).serve(path, key))
    while not os.path.exists(path):
        await asyncio.sleep(0.05)
    yield path, key
    serving.cancel()


async def test_a_hosted_engine_streams_what_the_engine_itself_streams(cpu_backend, host):
    hosted = await HostedBackend.connect(*host)
    request = ChatRequest(ask("What is 2+3?"), GREEDY)
    through_host = [delta async for delta in hosted.stream_chat(request)]
    direct = [delta async for delta in cpu_backend.stream_chat(request)]
    assert through_host == direct and any(isinstance(d, TextDelta) for d in direct)
    assert hosted.info() == cpu_backend.info() and hosted.pid == cpu_backend.pid
    assert (hosted.supports_tools, hosted.supports_perplexity) == (cpu_backend.supports_tools, True)
    assert await hosted.score_text("The sea is blue.") == await cpu_backend.score_text("The sea is blue.")
    await hosted.close()


async def test_a_refusal_reaches_the_asking_process_as_its_own_kind(host):
    hosted = await HostedBackend.connect(*host)
    with pytest.raises(PromptTooLong, match="clear the chat"):
        [delta async for delta in hosted.stream_chat(ChatRequest(ask("word " * 9000), GREEDY))]
    await hosted.close()


async def test_leaving_a_hosted_stream_stops_the_generation_in_the_host(cpu_backend, host):
    hosted = await HostedBackend.connect(*host)
    forward_passes = []
    counting = cpu_backend._model.register_forward_hook(lambda *_: forward_passes.append(1))
    try:
        stream = hosted.stream_chat(
            ChatRequest(ask("Write a very long story."), GenerationParams(max_new_tokens=4000, ignore_eos=True))
        )
        received = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        # the model is let go of once the host has cancelled the generation (the host runs on this loop)
        await asyncio.to_thread(cpu_backend._generate_lock.acquire)
        cpu_backend._generate_lock.release()
        passes = len(forward_passes)
    finally:
        counting.remove()
    assert all(isinstance(d, TextDelta) for d in received)
    assert passes < 200  # a token a pass: it stopped near the deltas read, not at 4000 tokens
    await hosted.close()


async def test_the_engines_line_spans_every_process_of_the_room(host):
    """Two processes' chats on one CPU engine: the later one hears it waits behind the other's."""
    first_process, second_process = await HostedBackend.connect(*host), await HostedBackend.connect(*host)
    first = first_process.stream_chat(ChatRequest(ask("Count to fifty."), GREEDY))
    await anext(first)  # the first chat holds the model
    second = second_process.stream_chat(ChatRequest(ask("What is 2+3?"), GREEDY))
    told = await anext(second)
    await first.aclose()
    rest = [delta async for delta in second]
    assert told == Queued(1, "this CPU engine")
    assert any(isinstance(d, TextDelta) for d in rest)
    await first_process.close()
    await second_process.close()


async def test_a_process_without_the_rooms_key_is_refused(host):
    path, _ = host
    with pytest.raises(BackendUnavailable, match="not answering"):
        await HostedBackend.connect(path, b"not the room's key")
    hosted = await HostedBackend.connect(*host)  # the host still serves the room
    assert [d async for d in hosted.stream_chat(ChatRequest(ask("Hi"), GenerationParams(max_new_tokens=2)))]
    await hosted.close()
