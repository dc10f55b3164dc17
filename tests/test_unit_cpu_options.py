from backends.cpu_options import kv_bytes_per_token

SMOLLM2 = {"layers": 30, "kv_heads": 3, "head_dim": 64}  # 11,520 key and value numbers a token


def test_a_full_cache_holds_each_key_and_value_in_the_float_type():
    assert kv_bytes_per_token(**SMOLLM2, float_bytes=4, kv_cache="full") == 11_520 * 4
    assert kv_bytes_per_token(**SMOLLM2, float_bytes=2, kv_cache="full") == 11_520 * 2


def test_a_quantized_cache_adds_a_scale_and_a_zero_point_per_group_of_64():
    # int4: half a byte a number, plus two fp32 numbers per 64 of them (8 / 64 = 0.125 bytes)
    assert kv_bytes_per_token(**SMOLLM2, float_bytes=4, kv_cache="int4") == 11_520 * 0.625
    assert kv_bytes_per_token(**SMOLLM2, float_bytes=4, kv_cache="int2") == 11_520 * 0.375
    assert kv_bytes_per_token(**SMOLLM2, float_bytes=2, kv_cache="int4") == 11_520 * (0.5 + 4 / 64)
