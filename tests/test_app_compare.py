"""Comparing presets through the running console (gradio_client, the CPU backend)."""

import json
from pathlib import Path

import pytest
from gradio_client import Client

from tests.conftest import QUANTIZE_ARGS, submit_background_comparison

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


def test_a_concurrency_sweep_measures_each_point_with_goodput(client):
    progress, _log, table, *_figures, notes, _outputs, _exports = client.predict(
        presets=["cpu", "cpu-greedy"],
        names=["math"],
        max_new_tokens=8,
        with_perplexity=False,
        with_agreement=False,
        load_test=True,
        load_requests=4,
        load_prompt_tokens=32,
        load_output_tokens=4,
        load_sweep="1, 2",
        goodput_ttft_ms=600_000,  # every request meets it: goodput is then the requests/s
        goodput_user_tps=0,
        api_name="/compare",
    )
    assert progress.startswith("Done"), progress
    sweep_rows = [line.split(" | ") for line in notes.splitlines() if line.startswith("| cpu")]
    assert [(row[0], row[1]) for row in sweep_rows] == [
        ("| cpu", "1"),
        ("| cpu", "2"),
        ("| cpu-greedy", "1"),
        ("| cpu-greedy", "2"),
    ]
    for row in sweep_rows:
        requests_per_s, goodput, failed = row[4], row[7], row[8]
        assert float(requests_per_s) > 0 and goodput == requests_per_s and failed == "0 |"
    rows = [dict(zip(table["headers"], row, strict=True)) for row in table["data"]]
    assert all(row["load: goodput (req/s)"] == row["load: req/s"] for row in rows)  # the last point's


QUESTIONS = "\n".join(
    [
        '{"question": "What is the capital of France?", "answer": "Paris"}',
        '{"question": "What is 3 + 5?", "answer": "8"}',
        '{"question": "What is the opposite of hot?", "answer": "cold"}',
    ]
)


def test_compare_with_a_load_test_and_both_quality_measures(client):
    progress, log, table, *_figures, notes, outputs, exports = client.predict(
        presets=["cpu", "cpu-greedy"],
        names=["math"],
        max_new_tokens=16,
        requests_at_once=1,
        with_perplexity=False,
        own_questions=QUESTIONS,
        load_test=True,
        load_requests=4,
        load_prompt_tokens=64,
        load_output_tokens=8,
        second_turn=True,
        token_probabilities=True,
        api_name="/compare",
    )
    assert progress.startswith("Done"), progress
    rows = {row[0]: dict(zip(table["headers"], row, strict=True)) for row in table["data"]}
    cpu, greedy = rows["cpu"], rows["cpu-greedy"]
    # the same engine settings; the preset's own sampling named, and said to be unused
    assert greedy["differs from the first"] == "generation temperature 0.0 vs 0.7 (not used: Compare decodes greedily)"
    # the same weights on the same engine: the same distributions
    assert (cpu["top-1 agreement"], greedy["top-1 agreement"]) == ("100.0%", "100.0%")
    assert float(greedy["mean KL (nats)"]) < 1e-3
    assert cpu["exact match"] == greedy["exact match"] and cpu["exact match"].endswith("%")
    for row in rows.values():
        assert float(row["load: req/s"]) > 0 and float(row["load: output tok/s"]) > 0
        assert row["load: peak KV use"] == "n/a"  # transformers has no scheduler to ask
        # the cpu backend runs one generation at a time: three of the four wait for another to end
        assert row["load: requests that waited"] == "3"
        first, again = (
            float(row[f"TTFT, {turn} (ms)"].replace(",", "")) for turn in ("long system prompt", "same prompt again")
        )
        assert first > 0 and again > 0
        assert row["prompt tokens from the prefix cache"] == "n/a"  # transformers keeps no prefix cache
    data = json.loads({Path(p).suffix: Path(p) for p in exports}[".json"].read_text())
    load = data["results"][0]["load"]
    assert (load["completed"], load["mean_output_tokens"]) == (4, 8)  # exactly 8 each: EOS ignored
    assert abs(load["mean_prompt_tokens"] - 64) <= 2
    assert "your 3 questions" in notes and "4 requests of 64 prompt tokens" in notes
    assert outputs.count('class="token-probabilities"') == 2 and 'class="token"' in outputs  # one answer a preset
    assert "shaded by how likely the preset found each token" in notes


def test_compare_refuses_bad_load_settings_before_anything_runs(client):
    two = {"presets": ["cpu", "cpu-greedy"], "names": ["math"], "api_name": "/compare"}
    with pytest.raises(Exception, match="requests must be between 1 and 1024"):
        client.predict(**two, load_test=True, load_requests=2000)
    with pytest.raises(Exception, match="line 1: not JSON"):
        client.predict(**two, own_questions="oops")


def test_a_switch_is_refused_while_a_comparison_holds_the_engine(client):
    import time

    running = submit_background_comparison(client, requests=400, output_tokens=64)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # "broken" never loads: until the job runs, its own problem comes back
            outcome = client.predict("broken", api_name="/switch_preset")
            if "holds the engine" in outcome["error"]:
                break
            time.sleep(0.5)
        assert "a comparison job holds the engine" in outcome["error"] and "Cancel it on its tab" in outcome["error"]
    finally:  # the next tests need the engine: never leave the job running
        client.predict(api_name="/cancel_compare")
    assert running.result()[0].startswith("Cancelled")


def test_compare_refuses_one_preset_with_a_clear_error_and_one_log_line(client, app_log):
    tracebacks = app_log.read_text().count("Traceback")
    with pytest.raises(Exception, match="pick 2 to 4 presets"):
        client.predict(["cpu"], ["math"], "", 16, 1, False, api_name="/compare")
    log = app_log.read_text()
    assert "refused: pick 2 to 4 presets to compare (1 picked)" in log
    assert log.count("Traceback") == tracebacks  # a user's mistake is not a fault


def test_compare_takes_a_preset_saved_after_the_console_started(client, user_presets):
    """Gradio checks a list's choices as the page was built; the catalog grows while the console runs."""
    late = user_presets / "saved-late.yaml"
    late.write_text("backend: cpu\nmodel_format: awq\n", encoding="utf-8")  # invalid: refused by the check
    try:
        with pytest.raises(Exception, match="saved-late.yaml: .*model_format only applies to the lmdeploy backend"):
            client.predict(["cpu", "saved-late"], ["math"], "", 16, 1, False, api_name="/compare")
    finally:
        late.unlink()


def test_quantize_without_a_gpu_says_it_needs_one(client):
    with pytest.raises(Exception, match="quantization needs a CUDA GPU and none is usable here"):
        client.predict(*QUANTIZE_ARGS, api_name="/quantize")
