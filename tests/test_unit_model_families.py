"""The checks and the KV arithmetic on the config.json values of the models people deploy:
InternLM2.5-7B-chat (the seed's model), Qwen2.5-7B-Instruct and Llama-3.1-8B-Instruct (GQA,
untied embeddings, rope scaling); until now only Llama-style test configs had met them."""

import json

import pytest

from backends.lmdeploy_memory import kv_bytes_per_block
from model_folders.folder import head_dim
from presets.compat import Machine, check
from presets.schema import Preset
from quantize.checks import plan

# The fields the checks read, as each model's own config.json has them.
FAMILIES = {
    "internlm2_5-7b-chat": {
        "architectures": ["InternLM2ForCausalLM"],
        "model_type": "internlm2",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 8,
        "vocab_size": 92544,
        "max_position_embeddings": 32768,
        "rope_scaling": {"type": "dynamic", "factor": 2.0},
        "torch_dtype": "bfloat16",
    },
    "Qwen2.5-7B-Instruct": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_attention_heads": 28,
        "num_hidden_layers": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
    "Llama-3.1-8B-Instruct": {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_scaling": {"factor": 8.0, "rope_type": "llama3", "original_max_position_embeddings": 8192},
        "torch_dtype": "bfloat16",
    },
}
# bytes of one 64-token block in bf16: layers x KV heads x (K and V) x head_dim x 2 bytes x 64
BF16_BLOCK = {
    "internlm2_5-7b-chat": 32 * 8 * 2 * 128 * 2 * 64,  # 8 MiB: 128 KiB a token
    "Qwen2.5-7B-Instruct": 28 * 4 * 2 * 128 * 2 * 64,  # 3.5 MiB: 56 KiB a token
    "Llama-3.1-8B-Instruct": 32 * 8 * 2 * 128 * 2 * 64,
}
TURBOMIND_HERE = Machine(gpu_count=1, turbomind=True)


def model(tmp_path, name: str, folder_name: str | None = None, **extra):
    folder = tmp_path / (folder_name or name)
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**FAMILIES[name], **extra}))
    return folder


@pytest.mark.parametrize("name", FAMILIES)
def test_kv_block_bytes_follow_the_kv_heads_not_the_attention_heads(name):
    config = FAMILIES[name]
    assert head_dim(config) == 128
    assert kv_bytes_per_block(config, 64, 0) == BF16_BLOCK[name]
    # int8 / int4: 1 byte / half a byte an element plus an fp16 scale and zero point a head and token
    per_head_token = {8: 128 + 4, 4: 64 + 4}
    for policy, expected_ratio in ((8, 256 / 132), (4, 256 / 68)):
        quantized = kv_bytes_per_block(config, 64, policy)
        assert quantized == BF16_BLOCK[name] // 256 * per_head_token[policy]
        assert BF16_BLOCK[name] / quantized == pytest.approx(expected_ratio)  # 1.94x / 3.76x


@pytest.mark.parametrize("name", FAMILIES)
def test_every_kv_mode_and_awq_g128_loads_on_turbomind(tmp_path, name):
    folder = model(tmp_path, name)
    for policy in (0, 8, 4):
        verdict = check(Preset(engine="turbomind", quant_policy=policy), folder, TURBOMIND_HERE)
        assert verdict.ok and verdict.engine == "turbomind", verdict.errors
    quantization = {"quant_method": "awq", "bits": 4, "group_size": 128}
    awq = model(tmp_path, name, quantization_config=quantization, folder_name=f"{name}-awq")
    verdict = check(Preset(engine="auto", model_format="awq"), awq, TURBOMIND_HERE)
    assert verdict.ok and verdict.engine == "auto" and not verdict.notes  # nothing steers it off TurboMind


@pytest.mark.parametrize("name", FAMILIES)
def test_quantize_plans_group_128_for_both_engines(tmp_path, name):
    checked = plan(model(tmp_path, name), tmp_path / "out", 128)
    assert checked.ok and checked.engine == "turbomind", checked.errors
