"""Comparing presets through the running console (gradio_client, the CPU backend)."""

import json
from pathlib import Path

import pytest
from gradio_client import Client

from tests.conftest import QUANTIZE_ARGS

pytestmark = pytest.mark.app


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_compare_two_cpu_presets_end_to_end(client):
    before = client.predict(api_name="/engine_status")
    progress, log, table, *_figures, outputs, exports = client.predict(
        ["cpu", "cpu-greedy"], ["math", "tool call"], "Name a colour.", 32, 2, True, api_name="/compare"
    )
    assert progress.startswith("Done"), progress
    rows = {row[0]: dict(zip(table["headers"], row, strict=True)) for row in table["data"]}
    assert set(rows) == {"cpu", "cpu-greedy"}
    for row in rows.values():
        assert row["engine"].startswith("transformers")
        assert 0.4 < float(row["weights (GiB)"]) < 0.6  # 135M parameters in fp32
        assert row["KV capacity (tokens)"] == "n/a"  # transformers grows its cache as it goes
        assert float(row["TTFT (ms)"].replace(",", "")) > 0
        assert float(row["tok/s, 2 streams"]) > 0
    # the same weights score the same fixed text the same
    assert rows["cpu"]["perplexity"] == rows["cpu-greedy"]["perplexity"]
    assert 1 < float(rows["cpu"]["perplexity"]) < 100

    exported = {Path(path).suffix: Path(path) for path in exports}
    assert set(exported) == {".csv", ".json", ".md"}
    data = json.loads(exported[".json"].read_text())
    assert "cpu-greedy" in data["presets_used"] and data["settings"]["concurrency"] == 2
    tool_output = data["results"][0]["outputs"][1]
    assert tool_output["prompt"] == "tool call" and tool_output["text"].startswith("add(")  # a forced call
    assert "| cpu-greedy | transformers" in exported[".md"].read_text()
    # greedy decoding on the same weights: identical outputs, nothing marked as different
    assert "<mark>" not in outputs and "your prompt 1" in outputs

    after = client.predict(api_name="/engine_status")
    assert (after["preset"], after["kind"]) == (before["preset"], before["kind"])  # the engine came back


def test_compare_refuses_one_preset_with_a_clear_error(client):
    with pytest.raises(Exception, match="pick 2 to 4 presets"):
        client.predict(["cpu"], ["math"], "", 16, 1, False, api_name="/compare")


def test_quantize_without_a_gpu_says_it_needs_one(client):
    with pytest.raises(Exception, match="quantization needs a CUDA GPU and none is usable here"):
        client.predict(*QUANTIZE_ARGS, api_name="/quantize")
