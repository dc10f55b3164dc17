"""The console launched as users launch it, driven through gradio_client."""

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from backends import GenerationParams
from bench.gradio_stream import GradioEndpoint, chat_knobs
from tests.conftest import ROOT

pytestmark = pytest.mark.app

GREEDY = {"temperature": 0, "max_new_tokens": 40}


def chat(client: Client, message: str, **knobs):
    return client.predict(message=message, **{**GREEDY, **knobs}, api_name="/chat")


def texts(chatbot: list[dict]) -> list[str]:
    return ["".join(part["text"] for part in m["content"] if part.get("type") == "text") for m in chatbot]


def test_chat_endpoint_answers_with_the_real_model(app_url):
    chatbot, cleared_input = chat(Client(app_url, verbose=False), "What is 2+3?")
    assert [m["role"] for m in chatbot] == ["user", "assistant"]
    reply = texts(chatbot)[1]
    assert "5" in reply and "tok/s" in reply and "stop" in reply
    assert cleared_input == ""  # taken: nothing given back for the box


def test_min_p_reaches_the_engine_from_the_chat_endpoint(app_url):
    """The knob declared once in GenerationParams is a `/chat` parameter that the engine obeys: min_p 1
    turns hot sampling into greedy decoding."""
    client = Client(app_url, verbose=False)
    hot = {"temperature": 2.0, "top_p": 1.0, "top_k": 1000, "seed": 7, "max_new_tokens": 24}
    greedy, _ = chat(client, "Name three colours.", max_new_tokens=24)
    filtered, _ = chat(Client(app_url, verbose=False), "Name three colours.", **hot, min_p=1.0)
    without_stats = [texts(chatbot)[1].rsplit("\n\n<sub>", 1)[0] for chatbot in (filtered, greedy)]
    assert without_stats[0] == without_stats[1] and without_stats[0]


def test_two_clients_keep_separate_histories(app_url):
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    chat(alice, "My name is Alice.")
    alice_chat, _ = chat(alice, "What is my name?")
    bob_chat, _ = chat(bob, "Hello!")
    assert len(alice_chat) == 4
    assert len(bob_chat) == 2 and "Alice" not in " ".join(texts(bob_chat))


def test_a_lone_surrogate_is_repaired_and_the_session_goes_on(app_url):
    """Half an emoji, which a page can send, once broke every later paint and call of its session."""
    endpoint, session = GradioEndpoint(app_url, "chat"), uuid.uuid4().hex
    knobs = chat_knobs(GenerationParams(temperature=0, max_new_tokens=8))
    for message in ("half an emoji: \ud83d", "What is 2+3?"):
        *_, (_, last) = endpoint.stream(message, *knobs, session=session)
        assert last["msg"] == "process_completed" and last["success"], last
    shown = json.dumps(last["output"], ensure_ascii=False)
    assert "half an emoji: \ufffd" in shown and "What is 2+3?" in shown


def test_empty_message_sends_nothing(app_url):
    chatbot, kept = chat(Client(app_url, verbose=False), "   ")
    assert chatbot == [] and kept == "   "


def test_a_seed_beyond_64_bits_sends_nothing_and_keeps_the_message(app_url):
    chatbot, kept = Client(app_url, verbose=False).predict(
        message="What is 2+3?", seed=2**70, max_new_tokens=8, api_name="/chat"
    )
    assert chatbot == [] and kept == "What is 2+3?"


def test_stop_ends_the_streaming_chat_of_the_same_client(app_url):
    client = Client(app_url, verbose=False)
    job = client.submit(
        message="Count from 1 to 2000, one number per line.", **{**GREEDY, "max_new_tokens": 4000}, api_name="/chat"
    )
    deadline = time.monotonic() + 120
    while not job.outputs() and time.monotonic() < deadline:  # the first paint: the reply is streaming
        time.sleep(0.1)
    client.predict(api_name="/stop")
    chatbot, _ = job.result(timeout=60)
    reply = texts(chatbot)[1]
    assert reply.rstrip().endswith("stopped</sub>") and "tok/s" not in reply


def test_a_message_sent_while_a_reply_streams_is_given_back_not_lost(app_url):
    client = Client(app_url, verbose=False)
    job = client.submit(
        message="Count from 1 to 2000, one number per line.", **{**GREEDY, "max_new_tokens": 4000}, api_name="/chat"
    )
    try:
        deadline = time.monotonic() + 120
        while not job.outputs() and time.monotonic() < deadline:  # the first paint: the reply is streaming
            time.sleep(0.1)
        unchanged, given_back = chat(client, "Next question: what is 7*6?")
        assert given_back == "Next question: what is 7*6?" and unchanged == {"__type__": "update"}
    finally:
        client.predict(api_name="/stop")
    chatbot, _ = job.result(timeout=60)
    assert len(chatbot) == 2 and "Next question" not in " ".join(texts(chatbot))


def test_edit_regenerate_export_and_clear(app_url):
    client = Client(app_url, verbose=False)
    chat(client, "What is 2+3?")
    regenerated = client.predict(**GREEDY, api_name="/regenerate")
    assert len(regenerated) == 2 and "5" in texts(regenerated)[1]
    exported = json.loads(open(client.predict(api_name="/export_chat")["value"], encoding="utf-8").read())
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    assert exported["produced_by"]["backend"] == "cpu" and exported["params"]["temperature"] == 0
    chatbot, text = client.predict(api_name="/edit_last")
    assert chatbot == [] and text == "What is 2+3?"
    chat(client, "Hi")
    assert client.predict(api_name="/clear") == []


def run_app(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_missing_model_path_is_a_clear_error():
    result = run_app("--backend", "cpu", "--model", "/no/such/model")
    assert result.returncode != 0
    assert "does not exist" in result.stderr


def test_folder_that_is_not_a_model_is_a_clear_error(tmp_path):
    result = run_app("--backend", "lmdeploy", "--model", str(tmp_path))
    assert result.returncode != 0
    assert "not a model folder" in result.stderr


def test_a_megabyte_message_is_refused_and_the_chat_kept(app_url):
    client = Client(app_url, verbose=False)
    chat(client, "What is 2+3?")
    chatbot, kept = chat(client, "x" * 1_000_000)
    assert len(chatbot) == 2 and len(kept) == 1_000_000


def test_a_message_over_the_context_goes_back_to_the_box_and_the_next_one_works(app_url):
    client = Client(app_url, verbose=False)
    chatbot, kept = chat(client, "word " * 9000)  # over SmolLM2's 8,192-token context
    assert chatbot == [] and kept == "word " * 9000
    chatbot, _ = chat(client, "What is 2+3?")
    assert len(chatbot) == 2 and "5" in texts(chatbot)[-1]


def test_gradio_hardening_as_launched(app_url):
    """What `app.py` asks of Gradio, seen from outside: monitoring is off, an upload over 5 MB is
    refused before it is stored, and files outside Gradio's own folders are not served."""
    assert httpx.get(f"{app_url}monitoring", timeout=30).status_code == 403
    big = {"files": ("big.json", b"x" * (6 * 2**20), "application/json")}
    upload = httpx.post(f"{app_url}gradio_api/upload", files=big, timeout=60)
    assert upload.status_code == 413 and "maximum allowed size" in upload.text
    for path in ("/etc/passwd", str(Path(__file__).resolve())):
        assert httpx.get(f"{app_url}gradio_api/file={path}", timeout=30).status_code in (403, 404)


def test_nothing_flashes_a_progress_timer_over_the_header(app_url):
    """Gradio shows a running event's timer ("0.1s") over each of its outputs; the header is refreshed
    by the page's opening, its ticks and every switch's follow-up, none of which anyone waits for."""
    config = httpx.get(app_url.rstrip("/") + "/config", timeout=30).json()
    header = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "engine-header")
    writers = [d for d in config["dependencies"] if header in d["outputs"]]
    assert len(writers) >= 3  # the opening, the tick, the follow-up of a switch
    assert {d["show_progress"] for d in writers} == {"hidden"}
