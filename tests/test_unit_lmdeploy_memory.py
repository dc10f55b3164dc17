from backends.lmdeploy_memory import kv_bytes_per_block
from model_folders.folder import checkpoint_bytes, head_dim

SMOLLM2 = {"hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3, "num_hidden_layers": 30}


def test_bf16_block_size_from_the_config():
    # 64 tokens x 30 layers x 3 KV heads x (K and V) x 64 dims x 2 bytes
    assert kv_bytes_per_block(SMOLLM2, 64, 0) == 64 * 30 * 3 * 2 * 64 * 2


def test_quantized_kv_matches_the_capacity_gains_measured_on_smollm2():
    bf16, int8, int4 = (kv_bytes_per_block(SMOLLM2, 64, q) for q in (0, 8, 4))
    assert round(bf16 / int8, 2) == 1.88
    assert round(bf16 / int4, 2) == 3.56  # measured: 3.55x the blocks


def test_fp8_and_turboquant_blocks_follow_lmdeploys_cache_layout():
    """fp8: 1 byte an element, one scale per tensor (none per token); TurboQuant: keys 4-bit plus an fp16
    scale and zero point, values 2-bit plus an fp16 scale (lmdeploy/pytorch/engine/cache_engine/schema.py)."""
    bf16, fp8, e5m2, turbo = (kv_bytes_per_block(SMOLLM2, 64, q) for q in (0, 16, 17, 42))
    assert bf16 / fp8 == bf16 / e5m2 == 2.0
    assert turbo == 64 * 30 * 3 * ((32 + 4) + (16 + 2))  # head_dim 64: K 32 + 4 bytes, V 16 + 2 bytes
    assert round(bf16 / turbo, 2) == 4.74
    assert (
        round(
            kv_bytes_per_block({**SMOLLM2, "head_dim": 128}, 64, 0)
            / kv_bytes_per_block({**SMOLLM2, "head_dim": 128}, 64, 42),
            2,
        )
        == 5.02
    )


def test_head_dim_prefers_the_explicit_field():
    assert head_dim(SMOLLM2) == 64 and head_dim({**SMOLLM2, "head_dim": 128}) == 128
    assert kv_bytes_per_block({}, 64, 0) is None


def test_checkpoint_size_counts_weight_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "tokenizer.json").write_bytes(b"x" * 7)
    assert checkpoint_bytes(tmp_path) == 100
