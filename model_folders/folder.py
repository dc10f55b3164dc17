"""What a model folder says of itself, read from its files: its config, the head size, what its weights
weigh, and whether its weights are a random stand-in. The lowest floor: presets/, backends/, quantize/
and the console read model folders through it, and it imports nothing of theirs."""

from __future__ import annotations

import json
from pathlib import Path

# Set in config.json by bench.random_llama (and carried to its AWQ copies): the weights are random,
# so speed and memory figures are real and quality figures mean nothing.
RANDOM_WEIGHTS_KEY = "lmdeploy_console_random_weights"


def read_model_config(model_dir: str | Path) -> dict:
    """The folder's config.json; empty where it has none or it is not JSON."""
    try:
        return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def has_random_weights(model_dir: str | Path | None) -> bool:
    return model_dir is not None and bool(read_model_config(model_dir).get(RANDOM_WEIGHTS_KEY))


def mark_random_weights(model_dir: str | Path) -> None:
    """Mark a model folder's config as random-weight (for a copy made from a marked model)."""
    path = Path(model_dir) / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config[RANDOM_WEIGHTS_KEY] = True
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


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
