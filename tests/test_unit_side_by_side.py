"""Where two greedy replies part, by token where both sides gave tokens, else by character."""

from backends import TokenChoice
from console.chat import ChatSession, Turn
from console.side_by_side import parting_point


def reply(text: str, tokens: tuple[str, ...] = ()) -> ChatSession:
    choices = tuple(TokenChoice(token, -0.1, ()) for token in tokens)
    return ChatSession(turns=[Turn("user", "q"), Turn("assistant", text, tokens=choices)])


def test_replies_part_at_the_first_token_that_differs():
    a = reply("The answer is 5.", ("The", " answer", " is", " 5", "."))
    b = reply("The answer is five.", ("The", " answer", " is", " five", "."))
    assert parting_point(a, b) == 3


def test_without_tokens_replies_part_at_the_first_character_that_differs():
    assert parting_point(reply("abcd"), reply("abXd")) == 2


def test_the_same_replies_do_not_part_and_a_longer_one_parts_where_the_shorter_ends():
    assert parting_point(reply("same"), reply("same")) is None
    assert parting_point(reply("same"), reply("same and more")) == 4


def test_side_b_is_checked_against_the_memory_free_now_and_refused_with_the_figures():
    """A switch may count what the running engine gives back; side B loads beside it and may not."""
    from console.paths import ModelRoots
    from console.preset_checks import PresetChecks
    from presets.compat import Machine
    from presets.schema import Preset
    from presets.store import PresetCatalog
    from telemetry.vram import VramSampler
    from tests.scripted_nvml import ScriptedNvml

    engine_pid = 4242  # side A's worker, holding 100,000 MiB of the card; 500 MiB are free
    card = {"name": "H200", "used_mib": 142_500, "total_mib": 143_000, "util": 0, "processes": [(engine_pid, 100_000)]}
    checks = PresetChecks(PresetCatalog(), ModelRoots(), VramSampler(nvml=ScriptedNvml([card])), lambda: engine_pid)
    checks.__dict__["machine"] = Machine(gpu_count=1, turbomind=True, compute_capability=(9, 0))
    smollm2 = Preset(cache_max_entry_count=0.4)  # the embedded model: 0.3 GiB of weights
    assert checks.check(smollm2, "fp16.yaml").ok
    beside = checks.check(smollm2, "fp16.yaml", beside_running=True)
    assert not beside.ok and "and 0.5 GiB is available" in beside.errors[0]


def two_gpu_checks(side_a_gpus: int, gpu_count: int = 2):
    """Checks on a machine of `gpu_count` scripted H200s, side A (worker 4242) on its first `side_a_gpus`
    and nearly filling each (500 MiB free there), the other cards empty."""
    from console.paths import ModelRoots
    from console.preset_checks import PresetChecks
    from presets.compat import Machine
    from presets.store import PresetCatalog
    from telemetry.vram import VramSampler
    from tests.scripted_nvml import ScriptedNvml

    def card(held_by_a: bool) -> dict:
        used, processes = (142_500, [(4242, 100_000)]) if held_by_a else (500, [])
        return {"name": "H200", "used_mib": used, "total_mib": 143_000, "util": 0, "processes": processes}

    cards = [card(index < side_a_gpus) for index in range(gpu_count)]
    sampler = VramSampler(nvml=ScriptedNvml(cards))
    checks = PresetChecks(PresetCatalog(), ModelRoots(), sampler, lambda: 4242, lambda: side_a_gpus)
    checks.__dict__["machine"] = Machine(gpu_count=gpu_count, turbomind=True, compute_capability=(9, 0))
    return checks


def test_side_b_gets_the_gpu_side_a_does_not_hold_and_is_checked_against_its_memory(monkeypatch):
    from presets.schema import Preset

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    checks = two_gpu_checks(side_a_gpus=1)
    smollm2 = Preset(cache_max_entry_count=0.4)
    assert checks.gpus_of_its_own(smollm2) == (1,)
    assert checks.check(smollm2, "fp16.yaml", beside_running=True).ok  # card 1's memory, not card 0's 500 MiB
    spec, notes = checks.spec(smollm2, "fp16.yaml", beside_running=True)
    assert spec.gpus == (1,)
    assert "on GPU 1 of its own: the running engine is on GPU 0" in notes
    assert checks.spec(smollm2, "fp16.yaml")[0].gpus is None  # a switch replaces side A where it runs


def test_side_b_shares_side_as_gpus_where_none_is_left_or_side_a_holds_none(monkeypatch):
    from presets.schema import Preset

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    smollm2 = Preset(cache_max_entry_count=0.4)
    assert two_gpu_checks(side_a_gpus=1, gpu_count=1).gpus_of_its_own(smollm2) is None  # one GPU
    assert two_gpu_checks(side_a_gpus=2).gpus_of_its_own(smollm2) is None  # side A on both (tp 2)
    assert two_gpu_checks(side_a_gpus=1).gpus_of_its_own(Preset(cache_max_entry_count=0.4, tp=2)) is None
    assert two_gpu_checks(side_a_gpus=0).gpus_of_its_own(smollm2) is None  # side A on the CPU
    refused = two_gpu_checks(side_a_gpus=1, gpu_count=1).check(smollm2, "fp16.yaml", beside_running=True)
    assert not refused.ok  # on side A's card: its 500 MiB
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # CUDA's numbers are not NVML's then
    assert two_gpu_checks(side_a_gpus=1).gpus_of_its_own(smollm2) is None
