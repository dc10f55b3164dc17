"""A small random Llama with 128-aligned sizes, for the paths SmolLM2 cannot take on
TurboMind (KV int4 needs head_dim 128 there; AWQ needs group size 128).

    python -m bench.random_llama OUTPUT_FOLDER [--tokenizer SMOLLM2_FOLDER]

Its answers are noise; its memory, capacity and speed figures are real.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def make_random_llama(output: Path, tokenizer_folder: Path) -> Path:
    """hidden 1024, 8 heads of 128, 4 layers, intermediate 2816 (all multiples of 128), bf16."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (output / "config.json").exists():
        return output
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=49152,
        max_position_embeddings=8192,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="bfloat16",
    )
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(output)
    for name in TOKENIZER_FILES:
        if (tokenizer_folder / name).exists():
            shutil.copy(tokenizer_folder / name, output / name)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--tokenizer", type=Path, default=Path("/tmp/models/SmolLM2-135M-Instruct"))
    args = parser.parse_args()
    print(make_random_llama(args.output, args.tokenizer))


if __name__ == "__main__":
    main()
