import json

import pytest

from backends import BackendInfo, GenerationParams
from console.chat import ChatSession, ReplyStats, Turn
from console.transcript import FORMAT, MAX_IMPORT_BYTES, TranscriptError, export_chat, import_chat

INFO = BackendInfo(kind="cpu", model="SmolLM2-135M-Instruct", engine="transformers (CPU, fp32)")


def sample() -> ChatSession:
    session = ChatSession(system_prompt="sys", params=GenerationParams(temperature=0.2, seed=7, stop=("\n\n",)))
    session.turns += [Turn("user", "2+3?"), Turn("assistant", "5", ReplyStats(ttft_ms=12.5, tokens=1, finish="stop"))]
    return session


def test_round_trip_keeps_messages_params_and_stats():
    exported = export_chat(sample(), INFO, preset="cpu")
    document = json.loads(exported)
    assert document["format"] == FORMAT
    assert document["produced_by"] == {
        "backend": "cpu",
        "model": "SmolLM2-135M-Instruct",
        "engine": "transformers (CPU, fp32)",
        "preset": "cpu",
    }
    restored = import_chat(exported)
    assert restored.system_prompt == "sys" and restored.params == sample().params
    assert restored.turns == sample().turns


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("{not json", "not JSON"),
        ('{"format": "other"}', "not a chat export"),
        (json.dumps({"format": FORMAT, "messages": {}}), '"messages" must be a list'),
        (json.dumps({"format": FORMAT, "messages": [{"role": "root", "content": "x"}]}), "messages[0].role"),
        (json.dumps({"format": FORMAT, "messages": [{"role": "user", "content": 5}]}), "messages[0].content"),
        (json.dumps({"format": FORMAT, "params": {"temprature": 1}, "messages": []}), "temprature"),
    ],
)
def test_bad_imports_name_the_problem(raw, complaint):
    with pytest.raises(TranscriptError, match=None) as caught:
        import_chat(raw)
    assert complaint in str(caught.value)


def test_oversized_import_is_refused_before_parsing():
    with pytest.raises(TranscriptError, match="can be imported"):
        import_chat(b" " * (MAX_IMPORT_BYTES + 1))


def test_an_import_nested_thousands_deep_is_refused_with_a_reason():
    with pytest.raises(TranscriptError, match="nested too deeply"):
        import_chat('{"a":' * 5000 + "1" + "}" * 5000)
