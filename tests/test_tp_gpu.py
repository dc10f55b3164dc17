"""Tensor parallelism on two GPUs: a `tp: 2` preset loads, answers, and both cards hold it."""

import pytest

from backends import ChatRequest, GenerationParams, Usage
from bench.random_llama import make_random_llama
from console.core import Console
from console.engine_state import NoEngine
from presets.store import PresetCatalog
from telemetry.vram import VramSampler
from tests.test_lmdeploy_gpu import turbomind_loads
from ui.vram_figures import sample_as_json

pytestmark = [pytest.mark.gpu, pytest.mark.gpu_alone]

ENGINES = ["pytorch", pytest.param("turbomind", marks=pytest.mark.skipif(not turbomind_loads(), reason="no TurboMind"))]


@pytest.fixture(scope="module")
def llama(embedded_folder, tmp_path_factory):
    """8 heads of 128: SmolLM2's 9 heads do not split over 2 GPUs."""
    return make_random_llama(tmp_path_factory.mktemp("models") / "llama128", embedded_folder)


@pytest.mark.parametrize("engine", ENGINES)
async def test_tp2_splits_the_model_over_both_gpus(engine, llama, tmp_path):
    sampler = VramSampler()
    before = sampler.sample()
    if len(before.gpus) < 2:
        pytest.skip("needs two GPUs")
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "tp2.yaml").write_text(
        f"backend: lmdeploy\nmodel: {llama}\nengine: {engine}\ntp: 2\ncache_max_entry_count: 0.2\n"
    )
    console = Console(NoEngine("none"), "test", catalog=PresetCatalog(user_dir=presets), sampler=sampler)
    if engine == "pytorch" and not console.checks.machine.ray:  # the refusal itself: tests/test_unit_compat.py
        pytest.skip("the PyTorch engine splits a model over GPUs through ray, which is not installed here")
    try:
        await console.switch_preset("tp2")
        loaded, info = sampler.sample(), console.state().info
        request = ChatRequest(
            [{"role": "user", "content": "Hello"}], GenerationParams(temperature=0, max_new_tokens=16)
        )
        deltas = [d async for d in console.backend.stream_chat(request)]
    finally:
        await console.close()
    grown = [after.used_mib - start.used_mib for start, after in zip(before.gpus, loaded.gpus, strict=True)]
    assert all(mib > 1024 for mib in grown), grown  # weights and KV cache on each card
    assert len(sample_as_json(loaded, [])["gpus"]) == 2  # what /vram and the gauges show
    assert info.details["config"]["tp"] == 2
    assert next(d for d in deltas if isinstance(d, Usage)).completion_tokens > 0
