"""The console's knobs map onto LMDeploy's own config classes (they import without a GPU)."""

import pytest
from lmdeploy import GenerationConfig, PytorchEngineConfig, TurbomindEngineConfig

from backends import GenerationParams
from backends.lmdeploy_config import (
    KV_MODES,
    EngineOptions,
    KvQuant,
    engine_config,
    generation_config,
    resolve_engine,
)


def test_turbomind_config_carries_the_deployment_knobs():
    options = EngineOptions(
        engine="turbomind",
        model_format="awq",
        quant_policy=8,
        cache_max_entry_count=0.4,
        session_len=4096,
        max_batch_size=16,
        tp=2,
        dtype="float16",
    )
    config = engine_config(options, "turbomind")
    assert isinstance(config, TurbomindEngineConfig)
    assert (config.model_format, config.quant_policy, config.cache_max_entry_count) == ("awq", 8, 0.4)
    assert (config.session_len, config.max_batch_size, config.tp, config.dtype) == (4096, 16, 2, "float16")


def test_pytorch_config_keeps_lmdeploy_defaults_for_unset_knobs():
    config = engine_config(EngineOptions(quant_policy=4, model_format="hf"), "pytorch")
    assert isinstance(config, PytorchEngineConfig)
    assert config.quant_policy == 4
    assert config.cache_max_entry_count == PytorchEngineConfig().cache_max_entry_count
    assert config.model_format is None  # "hf" is the engines' own default


def test_sampling_maps_onto_generation_config():
    config = generation_config(
        GenerationParams(
            temperature=0.3, top_p=0.9, top_k=20, max_new_tokens=64, repetition_penalty=1.1, seed=42, stop=("###",)
        )
    )
    assert isinstance(config, GenerationConfig)
    assert config.do_sample and config.temperature == 0.3
    assert (config.top_p, config.top_k, config.max_new_tokens) == (0.9, 20, 64)
    assert (config.repetition_penalty, config.random_seed, config.stop_words) == (1.1, 42, ["###"])


def test_temperature_zero_is_greedy():
    config = generation_config(GenerationParams(temperature=0))
    assert not config.do_sample and config.stop_words is None


def test_explicit_engine_is_kept_and_auto_falls_back_without_turbomind(embedded_folder):
    assert resolve_engine(EngineOptions(engine="turbomind"), "unused") == "turbomind"
    from lmdeploy import turbomind

    expected = "turbomind" if turbomind.is_available() else "pytorch"
    assert resolve_engine(EngineOptions(engine="auto"), str(embedded_folder)) == expected


def test_kv_modes_are_lmdeploys_own_policies():
    from lmdeploy.messages import QuantPolicy

    assert {int(mode) for mode in KvQuant} == {int(policy) for policy in QuantPolicy}
    assert set(KV_MODES) == set(KvQuant)


@pytest.mark.parametrize(
    ("policy", "engine"),
    [
        (KvQuant.FP8, "pytorch"),
        (KvQuant.FP8_E5M2, "pytorch"),
        (KvQuant.TURBO_QUANT, "pytorch"),
        (KvQuant.INT8, "turbomind"),
    ],
)
def test_every_kv_mode_and_prefix_caching_reach_lmdeploys_config(policy, engine):
    config = engine_config(EngineOptions(quant_policy=policy, enable_prefix_caching=True), engine)
    assert int(config.quant_policy) == int(policy) and config.enable_prefix_caching


def test_turbomind_refuses_fp8_itself():
    with pytest.raises(ValueError, match="FP8 quantization is not supported"):
        engine_config(EngineOptions(quant_policy=KvQuant.FP8), "turbomind")


def test_a_number_of_kv_blocks_is_refused_with_what_each_engine_does_with_it():
    """LMDeploy's own classes: PyTorch's asserts; TurboMind's takes 2000, and its C++ then aborts the process."""
    with pytest.raises(AssertionError, match="invalid cache_max_entry_count"):
        PytorchEngineConfig(cache_max_entry_count=2000)
    assert TurbomindEngineConfig(cache_max_entry_count=2000).cache_max_entry_count == 2000
    with pytest.raises(ValueError, match="TurboMind aborts its process"):
        EngineOptions(cache_max_entry_count=2000)
    assert EngineOptions(cache_max_entry_count=0.99).cache_max_entry_count == 0.99


@pytest.mark.parametrize(
    ("name", "policy"), [("int8", 8), ("FP8", 16), ("fp8_e4m3", 16), ("turbo_quant", 42), (17, 17)]
)
def test_kv_policies_are_taken_by_lmdeploys_names_or_numbers(name, policy):
    assert EngineOptions(quant_policy=name).quant_policy == policy


def test_only_the_options_set_reach_lmdeploy_as_plain_values():
    options = EngineOptions(engine="pytorch", quant_policy="turbo_quant", tool_parser="qwen")
    assert options.changed() == {"engine": "pytorch", "quant_policy": 42, "tool_parser": "qwen"}
    assert type(options.changed()["quant_policy"]) is int


def test_eager_mode_and_a_fixed_kv_block_count_reach_the_pytorch_engine():
    config = engine_config(EngineOptions(eager_mode=True, num_gpu_blocks=512), "pytorch")
    assert (config.eager_mode, config.num_gpu_blocks) == (True, 512)
    assert engine_config(EngineOptions(), "pytorch").eager_mode is False  # LMDeploy's default stays
