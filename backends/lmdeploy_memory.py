"""How much an LMDeploy engine's weights and KV cache take, from the model's own files.

A KV block holds `block_size` tokens of keys and values for every layer and KV head.
Quantized KV (quant_policy 8 / 4) stores each element in 1 byte / half a byte plus an fp16
scale and zero point per head and token; with head_dim 64 that gives 1.88x / 3.55x the
blocks of bf16, which is what was measured on the PyTorch engine.
"""

from __future__ import annotations

import json
from pathlib import Path

_ELEMENT_BYTES = {0: 2.0, 8: 1.0, 4: 0.5}
_SCALE_ZERO_BYTES = 4  # fp16 scale + fp16 zero point, per head and token, for K and for V


def read_model_config(model_dir: str | Path) -> dict:
    try:
        return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def kv_bytes_per_block(config: dict, block_size: int, quant_policy: int) -> int | None:
    """Bytes of one KV-cache block, or None when the config lacks the sizes."""
    text = config.get("text_config", config)
    layers, heads = text.get("num_hidden_layers"), text.get("num_attention_heads")
    kv_heads = text.get("num_key_value_heads") or heads
    dim = head_dim(config)
    if not (layers and kv_heads and dim):
        return None
    per_head_token = dim * _ELEMENT_BYTES[quant_policy] + (_SCALE_ZERO_BYTES if quant_policy else 0)
    return int(block_size * layers * kv_heads * 2 * per_head_token)


def head_dim(config: dict) -> int | None:
    text = config.get("text_config", config)
    if text.get("head_dim"):
        return int(text["head_dim"])
    hidden, heads = text.get("hidden_size"), text.get("num_attention_heads")
    return hidden // heads if hidden and heads else None


def checkpoint_bytes(model_dir: str | Path) -> int:
    """Size of the weight files: what the weights take in GPU memory, unsharded."""
    folder = Path(model_dir)
    return sum(p.stat().st_size for pattern in ("*.safetensors", "*.bin") for p in folder.glob(pattern))
