"""Compare's load test and quality measures on both LMDeploy engines (SmolLM2, real weights).

With GPU_RESULTS_DIR set, each comparison's exports are written there, so that the run that
proves the path also keeps its figures (docs/results.md).
"""

import os
from pathlib import Path

import pytest

from compare import report
from compare.load import LoadSettings
from compare.prompts import builtin_prompts
from compare.quality import builtin_questions
from compare.runner import CompareSettings, run_comparison
from console.core import Console
from console.engine_state import NoEngine
from console.jobs import Job
from presets.store import PresetCatalog
from telemetry.vram import VramSampler
from tests.conftest import ROOT

pytestmark = pytest.mark.gpu

PRESETS = ROOT / "bench" / "gpu_presets"
LOAD = LoadSettings(requests=128, prompt_tokens=512, output_tokens=64)


async def compare(presets: tuple[str, ...], name: str):
    console = Console(
        NoEngine("not started"),
        "test",
        catalog=PresetCatalog(user_dir=PRESETS),
        sampler=VramSampler(interval_s=0.5).start(),
    )
    prompts = builtin_prompts()
    settings = CompareSettings(
        presets,
        (prompts["math"], prompts["short story"]),
        64,
        8,
        questions=tuple(builtin_questions()),
        questions_source="the built-in questions",
        load=LOAD,
    )
    try:
        status = await console.jobs.start(Job("comparison", lambda job: run_comparison(console, settings, job))).wait()
    finally:
        await console.close()
    assert status.state == "done", status.error
    if folder := os.environ.get("GPU_RESULTS_DIR"):
        for suffix, write in report.EXPORTS.items():
            (Path(folder) / f"{name}.{suffix}").write_text(write(status.result), encoding="utf-8")
    return {result.preset: result for result in status.result.results}


def check_load(result) -> None:
    load = result.load
    assert result.load_note == "" and load.completed == LOAD.requests and load.failed == 0
    assert load.mean_output_tokens == LOAD.output_tokens  # EOS ignored: exactly as many tokens each
    assert abs(load.mean_prompt_tokens - LOAD.prompt_tokens) <= 0.02 * LOAD.prompt_tokens
    assert load.peak_running > 8 and 0 < load.peak_kv_usage <= 1  # the scheduler was read while it was busy
    assert load.requests_per_s > 0 and load.ttft_p99_ms >= load.ttft_p50_ms > 0


def check_quality(reference, quantized) -> None:
    assert (reference.top1_agreement, reference.mean_kl) == (1.0, 0.0) and reference.agreement_note == "reference"
    # KV int8 moves the distributions a little, not to another model's
    assert 0.8 < quantized.top1_agreement <= 1 and 0 < quantized.mean_kl < 0.5, quantized.agreement_note
    for result in (reference, quantized):
        assert 0 <= result.exact_match <= 1 and result.exact_match_note.endswith(f"of {len(builtin_questions())}")
    assert quantized.differs == "quant_policy 8 vs 0"


@pytest.mark.parametrize(
    ("engine", "reference", "quantized"), [("pytorch", "pt-bf16", "pt-kv8"), ("turbomind", "tm-bf16", "tm-kv8")]
)
async def test_load_test_and_quality_on_both_engines(engine, reference, quantized):
    results = await compare((reference, quantized), f"smollm2-{engine}")
    for result in results.values():
        assert result.engine == engine
        check_load(result)
    check_quality(results[reference], results[quantized])
