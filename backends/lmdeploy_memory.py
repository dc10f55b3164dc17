"""How much an LMDeploy engine's KV cache takes a block, from the model's config.

A KV block holds `block_size` tokens of keys and values for every layer and KV head, stored as
the KV quant policy says (`KV_MODES`): int8 / int4 keep an fp16 scale and zero point per head and
token beside 1 byte / half a byte an element (with head_dim 64, 1.88x / 3.55x the blocks of bf16,
as measured on the PyTorch engine); fp8 keeps 1 byte and one scale per tensor; TurboQuant keeps
keys in 4 bits and values in 2.
"""

from __future__ import annotations

from model_folders.folder import head_dim

from .lmdeploy_config import KV_MODES, KvQuant


def kv_bytes_per_block(config: dict, block_size: int, quant_policy: int) -> int | None:
    """Bytes of one KV-cache block, or None when the config lacks the sizes."""
    text = config.get("text_config", config)
    layers, heads = text.get("num_hidden_layers"), text.get("num_attention_heads")
    kv_heads = text.get("num_key_value_heads") or heads
    dim = head_dim(config)
    if not (layers and kv_heads and dim):
        return None
    return int(block_size * layers * kv_heads * KV_MODES[KvQuant(quant_policy)].bytes_per_head_token(dim))
