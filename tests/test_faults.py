"""Faults the console survives: a server that dies mid-reply, many users at once, bad input."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import yaml
from gradio_client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends import BackendError, BackendSpec, BackendUnavailable, ChatRequest, GenerationParams, create_backend
from console.chat import ChatSession, Turn, stream_reply
from console.transcript import FORMAT, TranscriptError, import_chat
from presets.store import PresetError, parse_preset
from tests.conftest import start_openai_server, stop_process

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
PRESET_KEYS = st.sampled_from(
    [
        "backend",
        "model",
        "engine",
        "model_format",
        "quant_policy",
        "cache_max_entry_count",
        "session_len",
        "tp",
        "dtype",
        "base_url",
        "api_key_env",
        "generation",
        "description",
        "unknown",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(PRESET_KEYS, JSON, max_size=6))
def test_any_preset_file_parses_or_says_why(data):
    try:
        parse_preset(yaml.safe_dump(data), "fuzz.yaml")
    except PresetError as exc:
        assert str(exc).startswith("fuzz.yaml: ")


@settings(max_examples=300)
@given(
    st.dictionaries(st.sampled_from(["format", "messages", "params", "system_prompt", "x"]), JSON, max_size=5),
    st.booleans(),
)
def test_any_chat_import_loads_or_says_why(document, right_format):
    if right_format:
        document["format"] = FORMAT
    try:
        session = import_chat(json.dumps(document))
    except TranscriptError as exc:
        assert str(exc)
    else:
        assert all(turn.role in ("user", "assistant") for turn in session.turns)


@pytest.mark.remote
async def test_server_dying_mid_reply_keeps_the_reply_and_says_so(embedded_folder, tmp_path):
    server, base_url = start_openai_server(embedded_folder, tmp_path)
    try:
        backend, _ = await create_backend(BackendSpec("remote", model=str(embedded_folder), base_url=base_url))
        session = ChatSession()
        session.turns.append(Turn("user", "Write a very long story about the sea."))
        async for painted in stream_reply(backend, session):
            if painted.turns[-1].content and server.poll() is None:
                server.kill()
        reply = session.turns[-1]
        assert reply.content and reply.stats.finish == "error"
        assert "broke mid-reply" in reply.stats.error and "kept" in reply.stats.error
        with pytest.raises(BackendUnavailable, match="cannot reach"):
            [d async for d in backend.stream_chat(ChatRequest([{"role": "user", "content": "hi"}]))]
        await backend.close()
    finally:
        stop_process(server)


@pytest.mark.app
def test_thirty_two_sessions_at_once_complete_without_crossed_histories(app_url):
    def one_user(i: int) -> list[dict]:
        client = Client(app_url, verbose=False)
        chatbot, _ = client.predict(message=f"User {i} says hello.", temperature=0, max_new_tokens=4, api_name="/chat")
        return chatbot

    with ThreadPoolExecutor(32) as pool:
        chats = list(pool.map(one_user, range(32)))
    for i, chatbot in enumerate(chats):
        assert len(chatbot) == 2, f"user {i} sees someone else's turns"
        assert chatbot[0]["content"][0]["text"] == f"User {i} says hello."
        assert "Error" not in chatbot[1]["content"][0]["text"]


@pytest.mark.remote
@pytest.mark.parametrize(
    ("status", "error", "complaint"),
    [
        (503, BackendUnavailable, "is not ready (503): test server failing with 503; try again shortly"),
        (500, BackendError, "answered 500: test server failing with 500"),
    ],
)
async def test_server_error_statuses_say_what_happened(embedded_folder, tmp_path, status, error, complaint):
    server, base_url = start_openai_server(embedded_folder, tmp_path, "--fail-status", str(status))
    try:
        backend, _ = await create_backend(BackendSpec("remote", model=str(embedded_folder), base_url=base_url))
        with pytest.raises(error) as caught:
            [d async for d in backend.stream_chat(ChatRequest([{"role": "user", "content": "hi"}]))]
        assert complaint in str(caught.value)
        await backend.close()
    finally:
        stop_process(server)


@pytest.mark.remote
async def test_a_server_that_never_answers_is_given_up_on_with_a_message(embedded_folder, tmp_path):
    from presets.store import parse_preset

    server, base_url = start_openai_server(embedded_folder, tmp_path, "--stall")
    try:
        preset = parse_preset(f"backend: remote\nbase_url: {base_url}\nread_timeout_s: 2\n", "stuck.yaml")
        backend, _ = await create_backend(replace(preset.to_spec(), model=str(embedded_folder)))
        with pytest.raises(BackendUnavailable, match="sent nothing for 2 s; is the server overloaded or stuck"):
            [d async for d in backend.stream_chat(ChatRequest([{"role": "user", "content": "hi"}]))]
        await backend.close()
    finally:
        stop_process(server)


@pytest.mark.remote
def test_more_chats_than_gradios_forty_run_at_once(embedded_folder, tmp_path):
    """Gradio runs at most `max_threads` events at a time (40 by default), async ones too: on a shared
    console the 41st chat would wait for one of the first 40 to end. Against a server that holds every
    request (it never answers; the console gives up after 30 s), each of 48 chats must start at once:
    its first paint, the user's own message, comes before any of the others has ended."""
    from bench.gradio_stream import GradioEndpoint, chat_knobs
    from tests.conftest import start_console

    chats, read_timeout_s = 48, 30
    server, base_url = start_openai_server(embedded_folder, tmp_path, "--stall", "--list-model")
    try:
        preset = tmp_path / "held.yaml"
        preset.write_text(f"backend: remote\nbase_url: {base_url}\nread_timeout_s: {read_timeout_s}\n")
        app, url = start_console(["--preset", str(preset)], tmp_path / "app.log")
        try:
            endpoint = GradioEndpoint(url, "chat")

            events, lock = [], threading.Lock()

            def chat(index: int) -> None:
                stream = endpoint.stream(f"question {index}", *chat_knobs(GenerationParams()))
                next(stream)
                with lock:
                    events.append("first paint")
                for _ in stream:  # to the console giving up on the silent server
                    pass
                with lock:
                    events.append("ended")

            with ThreadPoolExecutor(chats) as pool:
                list(pool.map(chat, range(chats)))
            assert events[:chats] == ["first paint"] * chats, events  # no chat waited for another to end
        finally:
            stop_process(app)
    finally:
        stop_process(server)


@pytest.mark.remote
@pytest.mark.parametrize("room_processes", [1, 2])
def test_sixty_four_chats_at_once_complete_each_with_its_own_history(tmp_path, room_processes):
    """The class on one link, functionally: 64 pages, each with two turns of its own, sent together
    to a console in front of a paced server (no model: nothing here measures speed); also to a room
    of two console processes, through one client whose cookie jar all 64 pages share."""
    import uuid

    from bench.gradio_stream import GradioEndpoint, chat_knobs
    from tests.conftest import start_console, start_paced_server

    server, base_url = start_paced_server(tmp_path / "server.log", "--tokens-per-s", "200")
    console, url = start_console(
        ["--backend", "remote", "--base-url", base_url, "--room-processes", str(room_processes)], tmp_path / "app.log"
    )
    try:
        endpoint = GradioEndpoint(url, "chat")
        knobs = chat_knobs(GenerationParams(max_new_tokens=16))

        def two_turns(index: int) -> str:
            session = uuid.uuid4().hex
            endpoint.open_page(session)
            for turn in ("first", "second"):
                *_, (_, last) = endpoint.stream(f"chat {index}, {turn} question", *knobs, session=session)
                assert last["msg"] == "process_completed" and last["success"], last
            return json.dumps(last["output"])

        with ThreadPoolExecutor(64) as pool:
            shown = list(pool.map(two_turns, range(64)))
        for index, chat in enumerate(shown):
            assert f"chat {index}, first question" in chat and f"chat {index}, second question" in chat
            others = [f"chat {other}," for other in range(64) if other != index]
            assert not any(other in chat for other in others), index
    finally:
        stop_process(console)
        stop_process(server)


@pytest.mark.remote
def test_a_chat_whose_client_never_reads_its_stream_is_stopped(tmp_path):
    """A client that gave up waiting for its queue join never opens the session's event stream; its chat
    must leave the engine instead of running to its end (here 4,000 tokens at 20 a second: 200 s)."""
    from bench.gradio_stream import GradioEndpoint, chat_knobs
    from tests.conftest import completion_read_late, start_console, start_paced_server

    server, base_url = start_paced_server(tmp_path / "server.log", "--tokens-per-s", "20")
    console, url = start_console(
        ["--backend", "remote", "--base-url", base_url], tmp_path / "app.log", env={"LMDEPLOY_CONSOLE_UNREAD_S": "2"}
    )
    try:
        knobs = chat_knobs(GenerationParams(max_new_tokens=4000))
        # read 8 s late: the chat ended as stopped, long before its 200 s
        completed = completion_read_late(GradioEndpoint(url, "chat"), ("Tell me everything.", *knobs), unread_s=8)
        reply = json.dumps(completed["output"])
        assert "stopped" in reply and reply.count("word") < 1000, reply[-400:]
    finally:
        stop_process(console)
        stop_process(server)


@pytest.mark.remote
def test_a_tool_loop_whose_page_never_reads_its_stream_is_stopped(tmp_path):
    """The Tools tab's Run, joined and never read: the model's round (256 tokens at 20 a second here) must
    end with the loop, not write on for nobody."""
    from bench.gradio_stream import GradioEndpoint
    from tests.conftest import completion_read_late, start_console, start_paced_server
    from tools.scenarios import SCENARIOS

    server, base_url = start_paced_server(tmp_path / "server.log", "--tokens-per-s", "20")
    console, url = start_console(
        ["--backend", "remote", "--base-url", base_url], tmp_path / "app.log", env={"LMDEPLOY_CONSOLE_UNREAD_S": "2"}
    )
    try:
        tools = json.dumps(SCENARIOS["weather"].tools)
        run = ("What is the weather in Shanghai?", tools, "auto", 1, "{}", False, "console")
        # read 8 s late: the loop ended before its round did
        completed = completion_read_late(GradioEndpoint(url, "run_clicked"), run, unread_s=8)
        transcript = json.dumps(completed["output"]["data"][0])
        assert completed["success"] and 0 < transcript.count("word") < 200, transcript[-400:]
    finally:
        stop_process(console)
        stop_process(server)


@pytest.mark.remote
def test_a_closed_page_is_let_go_of_and_an_open_one_kept(tmp_path):
    """A page whose heartbeat stream ended is forgotten once its grace has passed (here 1 s), so a console
    shared with a room does not grow with every visitor; a page still open keeps its chat."""
    import uuid

    import httpx

    from bench.gradio_stream import GradioEndpoint, chat_knobs
    from tests.conftest import start_console, start_paced_server

    server, base_url = start_paced_server(tmp_path / "server.log")
    console, url = start_console(
        ["--backend", "remote", "--base-url", base_url],
        tmp_path / "app.log",
        env={"LMDEPLOY_CONSOLE_CLOSED_PAGE_KEPT_S": "1"},
    )
    http = httpx.Client(timeout=httpx.Timeout(30, read=600))
    try:
        endpoint = GradioEndpoint(url, "chat")
        knobs = chat_knobs(GenerationParams(max_new_tokens=4))

        def ask(session: str, question: str) -> str:
            *_, (_, last) = endpoint.stream(question, *knobs, session=session)
            assert last["msg"] == "process_completed" and last["success"], last
            return json.dumps(last["output"])

        def heartbeat(session: str):
            """The page's heartbeat stream, held open (its line iterator with it: dropped, it closes the stream)."""
            stream = http.send(http.build_request("GET", f"{url}gradio_api/heartbeat/{session}"), stream=True)
            lines = stream.iter_lines()
            next(lines)  # the page is there
            return stream, lines

        closed, still_open = uuid.uuid4().hex, uuid.uuid4().hex
        beats = {}
        for session in (closed, still_open):
            endpoint.open_page(session)
            beats[session] = heartbeat(session)
            ask(session, f"first question of {session}")
        beats[closed][0].close()  # the tab is closed
        time.sleep(6)  # Gradio notices, then the 1 s grace
        assert f"first question of {closed}" not in ask(closed, "a question after closing")
        assert f"first question of {still_open}" in ask(still_open, "a question while open")
        beats[still_open][0].close()
    finally:
        http.close()
        stop_process(console)
        stop_process(server)
