"""The remote backend against a real OpenAI-compatible server on 127.0.0.1 (transformers serve)."""

import json

import pytest

from backends import (
    AuthenticationFailed,
    BackendError,
    BackendSpec,
    BackendUnavailable,
    ChatRequest,
    Finish,
    GenerationParams,
    TextDelta,
    TokenLogprobs,
    Usage,
    create_backend,
)
from console.paths import ModelRoots
from tests.conftest import free_port
from tools.scenarios import SCENARIOS

pytestmark = pytest.mark.remote


async def connect(server, **overrides):
    spec = {"kind": "remote", "base_url": server["base_url"], "api_key": server["api_key"], "model": server["model"]}
    backend, _ = await create_backend(BackendSpec(**{**spec, **overrides}))
    return backend


async def test_streams_the_answer_with_usage(openai_server):
    backend = await connect(openai_server)
    request = ChatRequest(
        [{"role": "user", "content": "What is 2+3?"}], GenerationParams(temperature=0, max_new_tokens=32)
    )
    deltas = [d async for d in backend.stream_chat(request)]
    texts = [d.text for d in deltas if isinstance(d, TextDelta)]
    assert "5" in "".join(texts) and len(texts) >= 3
    usage = next(d for d in deltas if isinstance(d, Usage))
    assert usage.prompt_tokens > 5 and usage.completion_tokens > 0
    assert deltas[-1] == Finish("stop")
    # transformers serve rejects top_k/repetition_penalty; the backend drops them and says so
    assert "ignored_params" in backend.info().details
    await backend.close()


async def test_a_server_without_token_probabilities_still_answers(openai_server):
    backend = await connect(openai_server)
    request = ChatRequest(
        [{"role": "user", "content": "What is 2+3?"}], GenerationParams(temperature=0, max_new_tokens=16, logprobs=5)
    )
    deltas = [d async for d in backend.stream_chat(request)]
    assert "5" in "".join(d.text for d in deltas if isinstance(d, TextDelta))
    assert not [d for d in deltas if isinstance(d, TokenLogprobs)]  # transformers serve gives none
    await backend.close()


async def test_wrong_api_key_says_so(openai_server):
    with pytest.raises(AuthenticationFailed, match="refused the API key"):
        await connect(openai_server, api_key="wrong")


async def test_key_from_environment_is_used(openai_server, monkeypatch):
    from backends.remote import API_KEY_ENV

    monkeypatch.setenv(API_KEY_ENV, openai_server["api_key"])
    backend = await connect(openai_server, api_key=None)
    assert backend.info().kind == "remote"
    await backend.close()


async def test_nothing_listening_fails_with_advice():
    spec = BackendSpec(kind="remote", base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(BackendUnavailable, match="is `lmdeploy serve api_server` running"):
        await create_backend(spec)


async def test_server_error_keeps_its_message(openai_server):
    backend = await connect(openai_server)
    request = ChatRequest([], GenerationParams(max_new_tokens=8))  # a chat with no message
    with pytest.raises(BackendError) as caught:
        [d async for d in backend.stream_chat(request)]
    assert openai_server["base_url"] in str(caught.value)
    await backend.close()


def test_the_api_key_is_never_shown_back(openai_server, tmp_path):
    from gradio_client import Client

    from backends.remote import API_KEY_ENV
    from tests.conftest import start_console, stop_process

    options = ["--backend", "remote", "--base-url", openai_server["base_url"], "--model", openai_server["model"]]
    log = tmp_path / "app.log"
    process, url = start_console(options, log, env={API_KEY_ENV: openai_server["api_key"]})
    try:
        client = Client(url, verbose=False)
        chatbot, _ = client.predict(message="What is 2+3?", temperature=0, max_new_tokens=20, api_name="/chat")
        shown = [str(client.predict(api_name=name)) for name in ("/engine_status", "/presets", "/vram")]
        assert "5" in chatbot[-1]["content"][0]["text"]
        assert all(openai_server["api_key"] not in text for text in shown)
        tools = json.dumps(SCENARIOS["add and multiply: (3 + 5) x 2"].tools)
        played = client.predict(prompt="What is 3 + 5?", tools_json=tools, max_rounds=1, api_name="/tool_call")
        # the tools went to the server; SmolLM2's chat template knows none, so it answers in words
        assert played["wire"][0]["request"]["tools"][0]["function"]["name"] == "add"
        assert played["steps"][-1]["kind"] == "assistant" and played["steps"][-1]["content"]
    finally:
        stop_process(process)
    assert openai_server["api_key"] not in log.read_text()


async def test_a_server_without_metrics_says_so(openai_server):
    backend = await connect(openai_server)
    with pytest.raises(BackendError, match="exposes no metrics there"):
        await backend.scheduler_metrics()
    await backend.close()


async def test_check_says_when_a_remote_preset_s_server_does_not_answer(openai_server, monkeypatch):
    """Before a switch: a server that answers passes, a port nothing listens on is named with what to do."""
    from console.preset_checks import PresetChecks
    from presets.schema import Preset
    from presets.store import PresetCatalog
    from telemetry.vram import VramSampler

    checks = PresetChecks(PresetCatalog(), ModelRoots(), VramSampler())
    monkeypatch.setenv("SERVER_KEY_FOR_TEST", openai_server["api_key"])
    up = Preset(
        backend="remote",
        base_url=openai_server["base_url"],
        model=openai_server["model"],
        api_key_env="SERVER_KEY_FOR_TEST",
    )
    assert await checks.unreachable(up, "up.yaml") is None
    down = Preset(backend="remote", base_url=f"http://127.0.0.1:{free_port()}/v1")
    assert "running there, on that port?" in await checks.unreachable(down, "down.yaml")
