"""The LMDeploy worker's faults on a real GPU: a switch or a restart while people chat, and a
crash followed by Restart (skipped elsewhere; scripts/gpu_bundle/ brings LMDeploy to a GPU machine)."""

import asyncio
import os
import signal

import pytest

from backends import GenerationParams
from console.chat import ChatSession, Turn, stream_reply
from console.core import Console
from console.engine_state import NoEngine
from presets.store import PresetCatalog
from telemetry.vram import VramSampler
from tests.conftest import ROOT

pytestmark = pytest.mark.gpu

LONG = GenerationParams(temperature=0, max_new_tokens=2000)
SHORT = GenerationParams(temperature=0, max_new_tokens=30)


@pytest.fixture
async def console():
    sampler = VramSampler(interval_s=0.5).start()
    catalog = PresetCatalog(user_dir=ROOT / "bench" / "gpu_presets")
    console = Console(NoEngine("not started"), "test", catalog=catalog, sampler=sampler)
    yield console
    await console.close()


def presets(console) -> tuple[str, str]:
    """Two presets of the embedded model on the engine that loads fastest here."""
    return ("tm-bf16", "tm-kv8") if console.checks.machine.turbomind else ("pt-bf16", "pt-kv8")


def chat(text: str, params: GenerationParams) -> ChatSession:
    return ChatSession(params=params, turns=[Turn("user", text)])


async def started_reply(console, session: ChatSession):
    """A reply streaming from the running engine, read until its first text has arrived."""
    stream = stream_reply(console.backend, session)
    async for painted in stream:
        if painted.turns[-1].content:
            return stream
    raise AssertionError("the reply ended before any text")


async def finish(stream) -> None:
    async for _ in stream:
        pass


async def reply_to(console, text: str, params: GenerationParams = SHORT) -> Turn:
    session = chat(text, params)
    await finish(stream_reply(console.backend, session))
    return session.turns[-1]


async def reply_through_console(console, text: str) -> Turn:
    """As the Chat tab asks: a message sent during a switch waits for the new engine."""
    session = chat(text, SHORT)
    await finish(console.replies.stream(session))
    return session.turns[-1]


async def no_engine_running(console) -> None:
    while not isinstance(console.backend, NoEngine):
        await asyncio.sleep(0.01)


async def test_a_switch_mid_reply_keeps_the_reply_and_tells_others_why(console):
    first, second = presets(console)
    await console.switch_preset(first)
    writer = chat("Count from 1 to 1000, one number a line.", LONG)
    stream = await started_reply(console, writer)

    switching = asyncio.create_task(console.switch_preset(second))
    await asyncio.wait_for(no_engine_running(console), timeout=60)
    meanwhile = await reply_through_console(console, "What is 2+3?")  # waits for the switch, then runs
    await finish(stream)
    await switching

    reply = writer.turns[-1]
    assert writer.turns[0].content.startswith("Count from 1")
    assert reply.content and reply.stats.finish == "error"
    assert "closed (a preset switch" in reply.stats.error and "kept" in reply.stats.error
    assert "5" in meanwhile.content and not meanwhile.stats.error
    assert "5" in (await reply_to(console, "What is 2+3?")).content


async def test_after_a_crash_restart_tells_others_it_is_restarting_then_answers(console):
    first, _ = presets(console)
    await console.switch_preset(first)
    writer = chat("Count from 1 to 1000, one number a line.", LONG)
    stream = await started_reply(console, writer)
    os.kill(console.state().info.details["worker_pid"], signal.SIGKILL)
    await finish(stream)
    crashed = writer.turns[-1]
    assert crashed.content and "Restart the engine" in crashed.stats.error

    restarting = asyncio.create_task(console.restart())
    await asyncio.wait_for(no_engine_running(console), timeout=60)
    meanwhile = await reply_through_console(console, "What is 2+3?")
    await restarting

    assert "5" in meanwhile.content and not meanwhile.stats.error  # it waited for the restart
    assert "5" in (await reply_to(console, "What is 2+3?")).content
    labels = [e.label for e in console.sampler.events() if e.label.startswith("engine")]  # chats mark theirs too
    assert labels[-3:] == ["engine restart", "engine closed", f"engine loaded: {first}"]


def test_a_rooms_engine_that_crashes_is_restarted_by_its_host_and_the_room_chats_on(tmp_path):
    """In a room on its own engine, no page's Restart reaches the engine first: its host restarts it."""
    import time

    from gradio_client import Client

    from tests.conftest import start_console, stop_process

    room, url = start_console(["--backend", "lmdeploy", "--room-processes", "2"], tmp_path / "app.log", timeout_s=900)
    try:
        visitor = Client(url, verbose=False)
        crashed = visitor.predict(api_name="/engine_status")["details"]["worker_pid"]
        os.kill(crashed, signal.SIGKILL)
        deadline = time.monotonic() + 600
        while True:
            chatbot, _ = visitor.predict(message="What is 2+3?", max_new_tokens=8, temperature=0, api_name="/chat")
            if "send again in a minute" not in chatbot[-1]["content"][0]["text"]:
                break
            assert time.monotonic() < deadline, "the room's engine was not restarted"
            time.sleep(2)
        assert "5" in chatbot[-1]["content"][0]["text"]
        assert visitor.predict(api_name="/engine_status")["details"]["worker_pid"] != crashed
    finally:
        stop_process(room)
