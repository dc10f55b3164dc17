"""Two LMDeploy presets loaded together, each in its own worker, answering one message at once: on one GPU,
and on two (side B on the second)."""

import pytest

from backends import GenerationParams
from console.core import Console
from console.engine_state import NoEngine
from console.side_by_side import SIDE_B_ROLE
from presets.store import PresetCatalog
from telemetry.vram import VramSampler
from tests.conftest import ROOT

pytestmark = [pytest.mark.gpu, pytest.mark.gpu_alone]


async def test_two_presets_load_together_and_both_answer():
    sampler = VramSampler(interval_s=0.5).start()
    catalog = PresetCatalog(user_dir=ROOT / "bench" / "gpu_presets")
    console = Console(NoEngine("not started"), "test", catalog=catalog, sampler=sampler)
    try:
        await console.switch_preset("pt-bf16")
        await console.side_b.load("pt-kv8")
        params = GenerationParams(temperature=0, max_new_tokens=24)
        round_ = console.side_b.start_round("What is 2+3?", "", params, blind=False)
        async for _ in console.side_b.stream(round_):
            pass
        assert all("5" in session.turns[-1].content for session in (round_.a, round_.b))
        sample = sampler.sample()
        held = {p.role: p.used_mib for gpu in sample.gpus for p in gpu.processes}
        assert held["engine worker"] > 0 and held[SIDE_B_ROLE] > 0  # two workers, each holding its own
    finally:
        await console.close()


async def test_side_b_loaded_again_reuses_its_worker():
    """Changing side B costs no more than loading it alone: its worker, LMDeploy imported and its CUDA
    context made, hosts the next side B (a fresh spare was seen still importing, 2.7 to 5.2 s)."""
    catalog = PresetCatalog(user_dir=ROOT / "bench" / "gpu_presets")
    console = Console(NoEngine("not started"), "test", catalog=catalog, sampler=VramSampler(interval_s=0.5).start())
    try:
        await console.switch_preset("pt-bf16")
        await console.side_b.load("pt-kv8")
        first_pid = console.side_b.backend.pid
        again = await console.side_b.load("pt-kv4")
        assert console.side_b.backend.pid == first_pid
        assert any(stage.startswith("reusing the engine worker") for stage, _ in again.stages)
    finally:
        await console.close()


async def test_on_two_gpus_side_b_loads_on_the_second_with_a_reserve_of_its_own():
    """Where the machine has a GPU more than side A holds, side B gets it: each side a card of its own."""
    sampler = VramSampler(interval_s=0.5).start()
    if len(sampler.sample().gpus) < 2:
        pytest.skip("needs two GPUs")
    catalog = PresetCatalog(user_dir=ROOT / "bench" / "gpu_presets")
    console = Console(NoEngine("not started"), "test", catalog=catalog, sampler=sampler)
    try:
        await console.switch_preset("pt-bf16")
        loaded = await console.side_b.load("pt-bf16")
        assert any(note.startswith("on GPU 1 of its own") for note in loaded.notes), loaded.notes
        params = GenerationParams(temperature=0, max_new_tokens=24)
        round_ = console.side_b.start_round("What is 2+3?", "", params, blind=False)
        async for _ in console.side_b.stream(round_):
            pass
        assert round_.a.turns[-1].content == round_.b.turns[-1].content  # the same preset, greedy
        roles_on = [{p.role for p in gpu.processes} for gpu in sampler.sample().gpus[:2]]
        assert "engine worker" in roles_on[0] and SIDE_B_ROLE not in roles_on[0]
        assert SIDE_B_ROLE in roles_on[1] and "engine worker" not in roles_on[1]
    finally:
        await console.close()
