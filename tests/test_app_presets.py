"""Switching presets in the running console, through gradio_client (the CPU backend)."""

import time

import pytest
from gradio_client import Client

pytestmark = pytest.mark.app


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def engine(client):
    return client.predict(api_name="/engine_status")


def answer_to_a_sum(app_url) -> str:
    """A fresh session, so no earlier turn sways the greedy answer."""
    chatbot, _ = Client(app_url, verbose=False).predict(
        message="What is 2+3?", temperature=0, max_new_tokens=40, api_name="/chat"
    )
    return chatbot[-1]["content"][0]["text"]


def test_presets_lists_shipped_and_user_presets_with_their_problems(client):
    listing = {entry["name"]: entry for entry in client.predict(api_name="/presets")}
    assert {"fp16", "kv-int8", "kv-int4", "awq", "cpu", "remote", "cpu-greedy", "broken"} <= set(listing)
    assert listing["kv-int8"]["quant_policy"] == 8
    assert "use the cpu preset" in listing["kv-int8"]["problems"][0]  # no GPU on this machine
    assert "quant_polcy" in listing["broken"]["problems"][0]
    assert listing["cpu-greedy"]["problems"] == []


def test_switch_to_another_cpu_preset_then_chat(client, app_url):
    outcome = client.predict("cpu-greedy", api_name="/switch_preset")
    assert outcome["ok"] and outcome["preset"] == "cpu-greedy" and outcome["load_seconds"] > 0
    assert outcome["engine_status"]["preset"] == "cpu-greedy" and outcome["engine_status"]["kind"] == "cpu"
    assert "5" in answer_to_a_sum(app_url)
    labels = [event["label"] for event in client.predict(api_name="/vram")["events"]]
    assert "switch to cpu-greedy" in labels and "engine loaded: cpu-greedy" in labels
    back = client.predict("cpu", api_name="/switch_preset")
    assert back["ok"] and back["engine_status"]["previous_preset"] == "cpu-greedy"


@pytest.mark.parametrize(
    ("preset", "complaint"),
    [
        ("kv-int8", "LMDeploy needs a CUDA GPU"),
        ("broken", "broken.yaml: quant_polcy: unknown field"),
        ("remote-down", "running there, on that port? Check the address: a preset's `base_url` field"),
        ("no-such-preset", "no preset named 'no-such-preset'"),
    ],
)
def test_a_failed_switch_leaves_the_running_engine_untouched(client, app_url, preset, complaint):
    before = engine(client)
    outcome = client.predict(preset, api_name="/switch_preset")
    assert not outcome["ok"] and complaint in outcome["error"]
    assert outcome["engine_status"] == before
    assert "5" in answer_to_a_sum(app_url)


def test_restart_engine_endpoint(client, app_url):
    outcome = client.predict(api_name="/restart_engine")
    assert outcome["ok"] and outcome["engine_status"]["kind"] == "cpu"
    assert "5" in answer_to_a_sum(app_url)


def test_a_switch_while_someone_is_generating_loses_no_chat(client, app_url):
    writer = Client(app_url, verbose=False)
    job = writer.submit(message="Write a long story about a ship.", temperature=0, max_new_tokens=200, api_name="/chat")
    deadline = time.monotonic() + 120
    while not job.outputs() and time.monotonic() < deadline:  # the reply has started streaming
        time.sleep(0.05)
    assert job.outputs(), "the reply never started"
    assert client.predict("cpu-greedy", api_name="/switch_preset")["ok"]
    chatbot, _ = job.result(timeout=300)
    reply = chatbot[-1]["content"][0]["text"]
    assert chatbot[0]["content"][0]["text"] == "Write a long story about a ship."
    assert len(reply) > 50 and ("stop" in reply or "length" in reply or "Error" in reply)
    assert "5" in answer_to_a_sum(app_url)
