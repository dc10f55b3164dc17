"""Random-weight Llamas for what no model here can show: TurboMind's 128-aligned paths (KV int4
needs head_dim 128 there, AWQ group size 128) and memory and speed at the scale people deploy.

    python -m bench.random_llama OUTPUT_FOLDER [--shape small|7b] [--tokenizer SMOLLM2_FOLDER]

`small`: hidden 1024, 8 heads of 128, 4 layers (seconds to build). `7b`: Llama-2-7B's shape
(hidden 4096, 32 layers, 32 heads of 128, intermediate 11008) with SmolLM2's vocabulary, 13 GB
in bf16; build it on a GPU machine (about a minute). Their answers are noise: their memory,
capacity and speed figures are real, and their config marks them so that the console shows no
quality figure for them (`backends.lmdeploy_memory.RANDOM_WEIGHTS_KEY`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from model_folders.folder import RANDOM_WEIGHTS_KEY

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
SHAPES = {
    "small": {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 4, "num_attention_heads": 8},
    "7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32},
}


def make_random_llama(output: Path, tokenizer_folder: Path, shape: str = "small") -> Path:
    """A bf16 Llama of `shape` (every size a multiple of 128, head_dim 128), built where a GPU
    is (initialising 7B parameters on a CPU takes minutes) and saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (output / "config.json").exists():
        return output
    torch.manual_seed(0)
    sizes = SHAPES[shape]
    config = LlamaConfig(
        **sizes,
        num_key_value_heads=sizes["num_attention_heads"],
        head_dim=128,
        vocab_size=49152,
        max_position_embeddings=8192,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="bfloat16",
    )
    setattr(config, RANDOM_WEIGHTS_KEY, True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    model.save_pretrained(output)
    del model
    for name in TOKENIZER_FILES:
        if (tokenizer_folder / name).exists():
            shutil.copy(tokenizer_folder / name, output / name)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small")
    parser.add_argument("--tokenizer", type=Path, default=Path("/tmp/models/SmolLM2-135M-Instruct"))
    args = parser.parse_args()
    print(make_random_llama(args.output, args.tokenizer, args.shape))


if __name__ == "__main__":
    main()
