import json

import pytest

from presets.compat import Machine, check
from presets.schema import Preset

ONE_GPU_WITH_TURBOMIND = Machine(gpu_count=1, turbomind=True)
SMOLLM2 = {
    "hidden_size": 576,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
}


def model(tmp_path, **extra):
    (tmp_path / "config.json").write_text(json.dumps({**SMOLLM2, **extra}))
    return tmp_path


def test_kv_int4_on_turbomind_with_head_dim_64_is_refused_with_advice(tmp_path):
    verdict = check(Preset(engine="turbomind", quant_policy=4), model(tmp_path), ONE_GPU_WITH_TURBOMIND)
    assert not verdict.ok
    assert "head_dim-64" in verdict.errors[0] and "use engine: pytorch" in verdict.errors[0]


def test_auto_engine_steers_around_turbomind_limits(tmp_path):
    verdict = check(Preset(quant_policy=4), model(tmp_path), ONE_GPU_WITH_TURBOMIND)
    assert verdict.ok and verdict.engine == "pytorch"
    assert "auto picks the PyTorch engine" in verdict.notes[0]


def test_auto_keeps_auto_where_turbomind_fits(tmp_path):
    verdict = check(Preset(quant_policy=8), model(tmp_path), ONE_GPU_WITH_TURBOMIND)
    assert verdict.ok and verdict.engine == "auto" and not verdict.notes


def test_turbomind_awq_needs_group_128_and_divisible_sizes(tmp_path):
    awq64 = {"quantization_config": {"quant_method": "awq", "group_size": 64, "bits": 4}}
    verdict = check(Preset(engine="turbomind", model_format="awq"), model(tmp_path, **awq64), ONE_GPU_WITH_TURBOMIND)
    assert any("group size 128, this model has 64" in e for e in verdict.errors)
    assert any("divisible by 128 (hidden 576" in e for e in verdict.errors)


def test_pytorch_engine_runs_awq_group_64(tmp_path):
    awq64 = {"quantization_config": {"quant_method": "awq", "group_size": 64, "bits": 4}}
    assert check(Preset(engine="pytorch", model_format="awq"), model(tmp_path, **awq64), ONE_GPU_WITH_TURBOMIND).ok


def test_awq_format_on_a_plain_model_says_how_to_make_one(tmp_path):
    verdict = check(Preset(model_format="awq"), model(tmp_path), ONE_GPU_WITH_TURBOMIND)
    assert "lmdeploy lite auto_awq" in verdict.errors[0]


@pytest.mark.parametrize(("tp", "gpus", "ok"), [(2, 1, False), (2, 2, True), (1, 1, True)])
def test_tp_cannot_exceed_the_gpus(tmp_path, tp, gpus, ok):
    verdict = check(
        Preset(tp=tp, engine="pytorch"), model(tmp_path), Machine(gpu_count=gpus, turbomind=False, ray=True)
    )
    assert verdict.ok is ok
    if not ok:
        assert "tp: 2 needs 2 GPUs; this machine has 1" in verdict.errors[0]


def test_lmdeploy_without_a_gpu_points_to_the_cpu_preset(tmp_path):
    verdict = check(Preset(), model(tmp_path), Machine(gpu_count=0, turbomind=False, no_gpu_reason="no driver"))
    assert "use the cpu preset" in verdict.errors[0] and "no driver" in verdict.errors[0]


def test_turbomind_without_its_library_is_refused(tmp_path):
    verdict = check(Preset(engine="turbomind"), model(tmp_path), Machine(gpu_count=1, turbomind=False))
    assert "does not load here" in verdict.errors[0]


def test_other_backends_are_not_checked_against_the_gpu():
    assert check(Preset(backend="cpu"), None, Machine(gpu_count=0, turbomind=False)).ok


def test_tp2_on_the_pytorch_engine_needs_ray_and_auto_turns_to_turbomind(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 1024, "num_attention_heads": 8, "head_dim": 128}')
    no_ray = Machine(gpu_count=2, turbomind=True, ray=False)
    refused = check(Preset(engine="pytorch", tp=2), model, no_ray)
    assert "needs ray (`pip install ray`); or use engine: turbomind" in refused.errors[0]
    auto = check(Preset(tp=2), model, no_ray)
    assert auto.ok and auto.engine == "turbomind" and "auto picks TurboMind" in auto.notes[0]
    assert check(Preset(engine="pytorch", tp=2), model, Machine(gpu_count=2, turbomind=True, ray=True)).ok


def test_a_tool_parser_must_be_one_of_lmdeploys(tmp_path):
    assert check(Preset(tool_parser="qwen", engine="pytorch"), model(tmp_path), ONE_GPU_WITH_TURBOMIND).ok
    verdict = check(Preset(tool_parser="qwen2.5"), model(tmp_path), ONE_GPU_WITH_TURBOMIND)
    assert "tool_parser: 'qwen2.5' is not one of LMDeploy's: " in verdict.errors[0] and "qwen2d5" in verdict.errors[0]


@pytest.mark.parametrize("policy", [16, 17, 42])
def test_the_kv_modes_turbomind_lacks_are_refused_there_and_steer_auto_to_pytorch(tmp_path, policy):
    refused = check(Preset(engine="turbomind", quant_policy=policy), model(tmp_path), ONE_GPU_WITH_TURBOMIND)
    assert (
        "TurboMind in LMDeploy 0.18 does not take" in refused.errors[0] and "use engine: pytorch" in refused.errors[0]
    )
    auto = check(Preset(quant_policy=policy), model(tmp_path), ONE_GPU_WITH_TURBOMIND)
    assert auto.ok and auto.engine == "pytorch" and "auto picks the PyTorch engine" in auto.notes[0]


def test_turboquant_needs_a_power_of_two_head_dim(tmp_path):
    assert check(Preset(quant_policy="turbo_quant"), model(tmp_path), ONE_GPU_WITH_TURBOMIND).ok  # 576 / 9 = 64
    odd = model(tmp_path, hidden_size=864)  # head_dim 96
    verdict = check(Preset(quant_policy="turbo_quant"), odd, ONE_GPU_WITH_TURBOMIND)
    assert "needs a power-of-two head_dim; this model's is 96" in verdict.errors[0]


LLAMA_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32}


def test_fp8_weights_are_quantized_on_load_by_the_pytorch_engine_on_hopper(tmp_path):
    hopper = Machine(gpu_count=1, turbomind=True, compute_capability=(9, 0))
    verdict = check(Preset(model_format="fp8"), model(tmp_path, **LLAMA_7B), hopper)
    assert verdict.ok and verdict.engine == "pytorch" and "fp8 checkpoints" in verdict.notes[0]
    ampere = Machine(gpu_count=1, turbomind=True, compute_capability=(8, 0))
    assert (
        "Hopper or newer (compute capability 9.0); this GPU is 8.0"
        in check(Preset(model_format="fp8"), model(tmp_path, **LLAMA_7B), ampere).errors[0]
    )
    assert (
        "needs a GPU with fp8 (compute capability 8.9"
        in check(Preset(quant_policy=16), model(tmp_path), ampere).errors[0]
    )


def test_a_checkpoint_format_must_be_the_checkpoint_s_own(tmp_path):
    verdict = check(Preset(model_format="gptq"), model(tmp_path), ONE_GPU_WITH_TURBOMIND)
    assert (
        "model_format: gptq needs a gptq model folder" in verdict.errors[0]
        and "no quantization_config" in verdict.errors[0]
    )
    awq = {"quantization_config": {"quant_method": "awq", "group_size": 128}}
    assert (
        "its quantization_config says awq"
        in check(Preset(model_format="compressed-tensors"), model(tmp_path, **awq), ONE_GPU_WITH_TURBOMIND).errors[0]
    )


def test_fp8_weights_need_sizes_in_whole_blocks_of_128(tmp_path):
    """SmolLM2 failed to load so on the H200: its 3 KV heads of 64 make 192-wide K and V projections."""
    hopper = Machine(gpu_count=1, turbomind=True, compute_capability=(9, 0))
    verdict = check(Preset(model_format="fp8"), model(tmp_path), hopper)
    assert "blocks of 128" in verdict.errors[0] and "KV heads x head_dim 192" in verdict.errors[0]


def weights_of(tmp_path, gib: float):
    """A model folder whose weight file is `gib` GiB (sparse: nothing is written)."""
    folder = model(tmp_path, **LLAMA_7B)
    with open(folder / "model.safetensors", "wb") as weights:
        weights.truncate(int(gib * 2**30))
    return folder


def test_a_preset_says_what_it_will_take_of_the_gpu_before_it_loads(tmp_path):
    roomy = Machine(gpu_count=1, turbomind=True, available_mib=100 * 1024)
    verdict = check(Preset(cache_max_entry_count=0.4), weights_of(tmp_path, 12), roomy)
    assert verdict.ok
    assert (
        "needs about 12.0 GiB of weights a GPU + a KV reserve of 0.4 x the rest (about 34.8 GiB), "
        "of 100.0 GiB available" in verdict.notes
    )


def test_weights_that_cannot_fit_are_refused_with_the_figures(tmp_path):
    small = Machine(gpu_count=2, turbomind=True, ray=True, available_mib=10 * 1024)
    verdict = check(Preset(), weights_of(tmp_path, 12), small)
    assert (
        "its weights need about 12.0 GiB a GPU (+ about 1 GiB for the engine), and 10.0 GiB is available"
        in (verdict.errors[0])
    )
    assert check(Preset(tp=2), weights_of(tmp_path, 12), small).ok  # split over two cards: 6 GiB each
    assert check(Preset(model_format="fp8", engine="pytorch"), weights_of(tmp_path, 12), small).ok  # halved on load


@pytest.mark.parametrize("option", [{"eager_mode": True}, {"num_gpu_blocks": 512}])
def test_pytorch_engine_options_steer_auto_to_it_and_are_refused_on_turbomind(tmp_path, option):
    folder = model(tmp_path)
    described = {"description": "a preset as a file gives it", **option}  # a field of the preset, not an option
    auto = check(Preset(**described), folder, ONE_GPU_WITH_TURBOMIND)
    assert auto.ok and auto.engine == "pytorch" and "a PyTorch engine option" in auto.notes[0]
    turbomind = check(Preset(engine="turbomind", **described), folder, ONE_GPU_WITH_TURBOMIND)
    assert f"TurboMind has no {next(iter(option))}" in turbomind.errors[0]
