from backends.lmdeploy_memory import checkpoint_bytes, head_dim, kv_bytes_per_block

SMOLLM2 = {"hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3, "num_hidden_layers": 30}


def test_bf16_block_size_from_the_config():
    # 64 tokens x 30 layers x 3 KV heads x (K and V) x 64 dims x 2 bytes
    assert kv_bytes_per_block(SMOLLM2, 64, 0) == 64 * 30 * 3 * 2 * 64 * 2


def test_quantized_kv_matches_the_capacity_gains_measured_on_smollm2():
    bf16, int8, int4 = (kv_bytes_per_block(SMOLLM2, 64, q) for q in (0, 8, 4))
    assert round(bf16 / int8, 2) == 1.88
    assert round(bf16 / int4, 2) == 3.56  # measured: 3.55x the blocks


def test_head_dim_prefers_the_explicit_field():
    assert head_dim(SMOLLM2) == 64 and head_dim({**SMOLLM2, "head_dim": 128}) == 128
    assert kv_bytes_per_block({}, 64, 0) is None


def test_checkpoint_size_counts_weight_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "tokenizer.json").write_bytes(b"x" * 7)
    assert checkpoint_bytes(tmp_path) == 100
