"""How much an LMDeploy engine's weights and KV cache take, from the model's own files.

A KV block holds `block_size` tokens of keys and values for every layer and KV head, stored as
the KV quant policy says (`KV_MODES`): int8 / int4 keep an fp16 scale and zero point per head and
token beside 1 byte / half a byte an element (with head_dim 64, 1.88x / 3.55x the blocks of bf16,
as measured on the PyTorch engine); fp8 keeps 1 byte and one scale per tensor; TurboQuant keeps
keys in 4 bits and values in 2.
"""

from __future__ import annotations

import json
from pathlib import Path

from .lmdeploy_config import KV_MODES, KvQuant

# Set in config.json by bench.random_llama (and carried to its AWQ copies): the weights are random,
# so speed and memory figures are real and quality figures mean nothing.
RANDOM_WEIGHTS_KEY = "lmdeploy_console_random_weights"


def read_model_config(model_dir: str | Path) -> dict:
    try:
        return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def has_random_weights(model_dir: str | Path | None) -> bool:
    return bool(model_dir) and bool(read_model_config(model_dir).get(RANDOM_WEIGHTS_KEY))


def mark_random_weights(model_dir: str | Path) -> None:
    """Mark a model folder's config as random-weight (for a copy made from a marked model)."""
    path = Path(model_dir) / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config[RANDOM_WEIGHTS_KEY] = True
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def kv_bytes_per_block(config: dict, block_size: int, quant_policy: int) -> int | None:
    """Bytes of one KV-cache block, or None when the config lacks the sizes."""
    text = config.get("text_config", config)
    layers, heads = text.get("num_hidden_layers"), text.get("num_attention_heads")
    kv_heads = text.get("num_key_value_heads") or heads
    dim = head_dim(config)
    if not (layers and kv_heads and dim):
        return None
    return int(block_size * layers * kv_heads * KV_MODES[KvQuant(quant_policy)].bytes_per_head_token(dim))


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
