"""LMDeploy for real, on a CUDA GPU (skipped elsewhere; scripts/gpu_bundle/ brings LMDeploy to a GPU machine)."""

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

from backends import (
    ChatRequest,
    EngineCrashed,
    EngineOptions,
    Finish,
    GenerationParams,
    PromptTooLong,
    TextDelta,
    TokenLogprobs,
    ToolCall,
    ToolCallPiece,
    Usage,
)
from backends.lmdeploy_backend import LmdeployBackend
from telemetry.vram import VramSampler
from tests.conftest import start_console, stop_process

pytestmark = pytest.mark.gpu

GREEDY = GenerationParams(temperature=0, max_new_tokens=48)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def gpu_used_mib() -> float:
    """GPU memory in use on the GPUs this process may use (CUDA_VISIBLE_DEVICES), as the VRAM tab reads it."""
    return VramSampler().sample().used_mib()


def turbomind_loads() -> bool:
    probe = "from lmdeploy import turbomind; raise SystemExit(0 if turbomind.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


ENGINES = ["pytorch", pytest.param("turbomind", marks=pytest.mark.skipif(not turbomind_loads(), reason="no TurboMind"))]


@pytest.fixture(scope="module", params=ENGINES)
async def engine(request, embedded_folder):
    backend = await LmdeployBackend.start(str(embedded_folder), EngineOptions(engine=request.param, session_len=2048))
    yield backend
    await backend.close()


async def test_real_pipeline_answers_in_streamed_deltas(engine):
    deltas = [d async for d in engine.stream_chat(ChatRequest(ask("What is 2+3?"), GREEDY))]
    texts = [d.text for d in deltas if isinstance(d, TextDelta)]
    assert "5" in "".join(texts) and len(texts) >= 3
    usage = next(d for d in deltas if isinstance(d, Usage))
    assert usage.prompt_tokens > 5 and usage.completion_tokens >= 3
    assert deltas[-1] == Finish("stop")
    assert engine.info().details["session_len"] == 2048


async def test_min_p_one_keeps_only_the_likeliest_token(engine):
    """min_p reaches the engine by its name: at 1 only the likeliest token survives, so hot sampling
    answers as greedy decoding does, where without it the same sampling wanders off."""

    async def reply(**knobs) -> str:
        request = ChatRequest(ask("Name three colours."), GenerationParams(max_new_tokens=24, **knobs))
        return "".join([d.text async for d in engine.stream_chat(request) if isinstance(d, TextDelta)])

    hot = {"temperature": 2.0, "top_p": 1.0, "top_k": 1000, "seed": 7}
    greedy = await reply(temperature=0)
    assert await reply(**hot, min_p=1.0) == greedy
    assert await reply(**hot) != greedy


async def test_sixteen_concurrent_streams_all_complete(engine):
    async def one(i):
        request = ChatRequest(ask(f"Count from {i} to {i + 5}."), GREEDY)
        return [d async for d in engine.stream_chat(request)]

    results = await asyncio.gather(*(one(i) for i in range(16)))
    assert all(r[-1].reason in ("stop", "length") for r in results)


async def test_stop_mid_reply_then_chat_goes_on(engine):
    stream = engine.stream_chat(ChatRequest(ask("Write a very long story."), GenerationParams(max_new_tokens=2000)))
    [await anext(stream) for _ in range(3)]
    await stream.aclose()
    deltas = [d async for d in engine.stream_chat(ChatRequest(ask("What is 2+3?"), GREEDY))]
    assert "5" in "".join(d.text for d in deltas if isinstance(d, TextDelta))


async def test_prompt_over_session_len_is_refused(engine):
    with pytest.raises(PromptTooLong, match="Clear the chat"):
        [d async for d in engine.stream_chat(ChatRequest(ask("word " * 3000), GREEDY))]


async def test_perplexity_of_the_fixed_text_matches_the_cpu_backend(engine, cpu_backend):
    from compare.prompts import PERPLEXITY_TEXT

    text = PERPLEXITY_TEXT.read_text()
    on_gpu, on_cpu = await engine.score_text(text), await cpu_backend.score_text(text)
    assert on_gpu.tokens > 1000
    assert on_gpu.perplexity == pytest.approx(on_cpu.perplexity, rel=0.05)  # bf16 on the GPU, fp32 on the CPU


async def test_token_probabilities_spell_the_reply(engine):
    params = GenerationParams(temperature=0, max_new_tokens=16, logprobs=3)
    deltas = [d async for d in engine.stream_chat(ChatRequest(ask("What is the capital of France?"), params))]
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    [probabilities] = [d for d in deltas if isinstance(d, TokenLogprobs)]
    assert "".join(t.text for t in probabilities.tokens).startswith(text[:5])
    assert all(t.logprob <= 0 and len(t.alternatives) <= 3 for t in probabilities.tokens)


async def test_kv_cache_in_use_rises_while_generating(engine):
    idle = await engine.scheduler_metrics()
    stream = engine.stream_chat(
        ChatRequest(ask("Write a very long story. " * 200), GenerationParams(max_new_tokens=1500))
    )
    [await anext(stream) for _ in range(5)]
    busy = await engine.scheduler_metrics()
    await stream.aclose()
    assert busy.running >= 1 and busy.cache_usage > idle.cache_usage


async def test_a_forced_tool_call_through_guided_decoding_runs_the_tool(engine):
    from tools.loop import run_tool_loop
    from tools.scenarios import SCENARIOS

    scenario = SCENARIOS["add and multiply: (3 + 5) x 2"]
    run = await run_tool_loop(engine, "What is 3 + 5?", scenario.tools, "required", max_rounds=2)
    steps = run.steps
    if engine.info().engine == "turbomind":  # its guided decoding cut forced calls short: refused, with the fix
        assert "need the PyTorch engine" in steps[-1].content and steps[-1].kind == "error"
        return
    call = next(s for s in steps if s.kind == "tool_call")
    assert call.name in ("add", "multiply")
    assert next(s for s in steps if s.kind == "tool_result").ok


async def test_lmdeploys_own_tool_path_forces_a_named_call_and_streams_it(tool_template_folder):
    """A `tool_parser` preset: the model's chat template lists the tools, LMDeploy's structural
    tag forces the call and its qwen parser reads it, pieces streamed."""
    from tools.loop import run_tool_loop
    from tools.scenarios import SCENARIOS

    tools = SCENARIOS["add and multiply: (3 + 5) x 2"].tools
    options = EngineOptions(engine="pytorch", session_len=4096, tool_parser="qwen")
    backend = await LmdeployBackend.start(str(tool_template_folder), options)
    try:
        named = {"type": "function", "function": {"name": "add"}}
        request = ChatRequest(ask("What is 3 + 5?"), GenerationParams(temperature=0, max_new_tokens=80), tools, named)
        deltas = [d async for d in backend.stream_chat(request)]
        pieces = [d for d in deltas if isinstance(d, ToolCallPiece)]
        [call] = [d for d in deltas if isinstance(d, ToolCall)]
        assert len(pieces) >= 2 and pieces[0].name == "add" and deltas[-1] == Finish("tool_calls")
        assert set(json.loads(call.arguments)) == {"a", "b"}
        run = await run_tool_loop(backend, "What is 3 + 5?", tools, named, max_rounds=2)
        result = next(s for s in run.steps if s.kind == "tool_result")
        assert result.ok
    finally:
        await backend.close()


@pytest.mark.gpu_alone
async def test_close_gives_the_vram_back(embedded_folder):
    before = gpu_used_mib()
    backend = await LmdeployBackend.start(str(embedded_folder), EngineOptions(engine="pytorch"))
    loaded = gpu_used_mib()
    await backend.close()
    after = gpu_used_mib()
    assert loaded - before > 1024  # the KV cache alone takes most of the free memory
    assert after - before < 256


@pytest.mark.gpu_alone
async def test_a_handed_over_worker_hosts_the_next_engine_and_all_its_memory_comes_back(embedded_folder):
    before = gpu_used_mib()
    first = await LmdeployBackend.start(str(embedded_folder), EngineOptions(engine="pytorch"))
    await first.close_for_next_engine()
    stages = []
    second = await LmdeployBackend.start(
        str(embedded_folder), EngineOptions(engine="pytorch", quant_policy=8), stages.append
    )
    try:
        assert second.pid == first.pid and stages[0].startswith("reusing the engine worker")
        assert "making the CUDA context" not in stages  # the reused process has one
        deltas = [d async for d in second.stream_chat(ChatRequest(ask("What is 2+3?"), GREEDY))]
        assert "5" in "".join(d.text for d in deltas if isinstance(d, TextDelta))
        assert second.info().details["config"]["quant_policy"] == 8
    finally:
        await second.close()
    assert gpu_used_mib() - before < 256


async def test_a_worker_that_ran_get_logits_is_not_given_another_engine(embedded_folder):
    """LMDeploy 0.18's engine garbles replies after get_logits: the next engine gets a fresh process."""
    first = await LmdeployBackend.start(str(embedded_folder), EngineOptions(engine="pytorch"))
    await first.next_token_logprobs("The capital of France is Paris.", 8)
    await first.close_for_next_engine()
    stages = []
    second = await LmdeployBackend.start(str(embedded_folder), EngineOptions(engine="pytorch"), stages.append)
    try:
        assert second.pid != first.pid and stages[0] == "taking the spare engine worker (LMDeploy imported)"
    finally:
        await second.close()


async def test_a_killed_worker_fails_streams_with_a_restart_hint(embedded_folder):
    backend = await LmdeployBackend.start(str(embedded_folder), EngineOptions(engine="pytorch"))
    stream = backend.stream_chat(ChatRequest(ask("Write a very long story."), GenerationParams(max_new_tokens=2000)))
    await anext(stream)
    os.kill(backend.pid, signal.SIGKILL)
    with pytest.raises(EngineCrashed, match=r"Restart the engine \(Presets tab\)"):
        async for _ in stream:
            pass
    with pytest.raises(EngineCrashed):
        [d async for d in backend.stream_chat(ChatRequest(ask("hi"), GREEDY))]
    await backend.close()


def test_console_on_the_gpu_chats_through_lmdeploy(tmp_path):
    from gradio_client import Client

    log = tmp_path / "app.log"
    process, url = start_console(["--backend", "auto"], log, timeout_s=900)
    try:
        client = Client(url, verbose=False)
        chatbot, _ = client.predict(message="What is 2+3?", temperature=0, max_new_tokens=40, api_name="/chat")
        reply = "".join(p.get("text", "") for p in chatbot[-1]["content"])
        assert "5" in reply and "tok/s" in reply
        assert "Backend ready: lmdeploy" in log.read_text()
    finally:
        stop_process(process)
