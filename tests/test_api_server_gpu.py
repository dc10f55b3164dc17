"""The remote backend against a real `lmdeploy serve api_server` on the GPU."""

import asyncio
import dataclasses
import json
import sys
import time

import pytest

from backends import BackendError, ChatRequest, Finish, GenerationParams, TextDelta, ToolCall, ToolCallPiece
from backends.remote import RemoteBackend
from tests.conftest import free_port, start_process, stop_process, wait_for_http
from tools.scenarios import SCENARIOS

pytestmark = pytest.mark.gpu


def serve(model, tmp_path_factory, *flags):
    """SmolLM2 behind `lmdeploy serve api_server` on the PyTorch engine (metrics are on by
    default in 0.18); yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("api-server") / "server.log"
    command = [sys.executable, "-m", "lmdeploy", "serve", "api_server", str(model), "--backend", "pytorch"]
    process = start_process([*command, "--server-port", str(port), "--cache-max-entry-count", "0.2", *flags], log)
    base_url = f"http://127.0.0.1:{port}/v1"
    wait_for_http(f"{base_url}/models", process, log, timeout_s=600)
    yield base_url
    stop_process(process)


@pytest.fixture(scope="module")
def api_server(embedded_folder, tmp_path_factory):
    """No tool-call parser."""
    yield from serve(embedded_folder, tmp_path_factory)


@pytest.fixture(scope="module")
def api_server_with_tools(tool_template_folder, tmp_path_factory):
    """A chat template that lists the tools, and LMDeploy's qwen parser to read the calls."""
    yield from serve(tool_template_folder, tmp_path_factory, "--tool-call-parser", "qwen")


@pytest.fixture
async def remote(api_server):
    backend = await RemoteBackend.connect(api_server)
    yield backend
    await backend.close()


async def test_chat_through_the_api_server(remote):
    request = ChatRequest(
        [{"role": "user", "content": "What is 2+3?"}], GenerationParams(temperature=0, max_new_tokens=30)
    )
    assert "5" in "".join([d.text async for d in remote.stream_chat(request) if isinstance(d, TextDelta)])


async def test_metrics_give_the_kv_cache_usage(remote):
    """The api_server's /metrics while replies stream: a request running, some of the cache in use.
    api_server refreshes these gauges every 10 s (LMDeploy 0.18), and one reply of SmolLM2 on an H200
    ends within a second, so replies are sent back to back until a reading shows them (30 s at most)."""
    request = ChatRequest(
        [{"role": "user", "content": "Count from 1 to 200."}], GenerationParams(temperature=0, max_new_tokens=400)
    )

    async def replies_back_to_back():
        while True:
            async for _ in remote.stream_chat(request):
                pass

    senders = [asyncio.create_task(replies_back_to_back()) for _ in range(4)]
    try:
        deadline = time.monotonic() + 30
        while not (reading := await remote.scheduler_metrics()).running and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    finally:
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
    assert reading.running and reading.cache_usage and 0 < reading.cache_usage <= 1, reading.series


async def test_perplexity_through_get_ppl(remote, cpu_backend):
    from compare.prompts import PERPLEXITY_TEXT

    text = PERPLEXITY_TEXT.read_text()
    served, local = await remote.score_text(text), await cpu_backend.score_text(text)
    assert served.perplexity == pytest.approx(local.perplexity, rel=0.05)


async def test_tools_without_a_parser_get_the_flag_to_add(remote):
    tools = SCENARIOS["add and multiply: (3 + 5) x 2"].tools
    request = ChatRequest([{"role": "user", "content": "3+5?"}], GenerationParams(max_new_tokens=20), tools, "auto")
    with pytest.raises(BackendError, match="--tool-call-parser"):
        [d async for d in remote.stream_chat(request)]


async def test_a_parser_server_streams_a_forced_call_in_pieces_and_the_loop_runs_it(api_server_with_tools):
    from tools.loop import run_tool_loop

    tools = SCENARIOS["add and multiply: (3 + 5) x 2"].tools
    backend = await RemoteBackend.connect(api_server_with_tools)
    try:
        request = ChatRequest(
            [{"role": "user", "content": "What is 3 + 5?"}], GenerationParams(temperature=0, max_new_tokens=80), tools
        )
        deltas = [d async for d in backend.stream_chat(dataclasses.replace(request, tool_choice="required"))]
        pieces = [d for d in deltas if isinstance(d, ToolCallPiece)]
        [call, *_] = [d for d in deltas if isinstance(d, ToolCall)]
        assert len(pieces) >= 2 and call.name in ("add", "multiply") and deltas[-1] == Finish("tool_calls")
        assert json.loads(call.arguments)  # the pieces add up to JSON arguments
        run = await run_tool_loop(backend, "What is 3 + 5?", tools, "required", max_rounds=2)
        assert next(s for s in run.steps if s.kind == "tool_result").ok
    finally:
        await backend.close()
