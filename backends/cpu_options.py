"""How the CPU backend holds a model's weights and its KV cache: preset options, importable without torch.

Measured on the embedded SmolLM2-135M on a 2-core machine through Compare (docs/results.md, "Quantization
on the CPU"): bf16 halves the memory at fp32's quality; both int8 modes quarter the Linear layers, one
trading quality for speed, the other speed for quality; a quantized KV cache holds a token's keys and
values in a fraction of the bytes and decodes slower.
"""

from typing import Literal

# fp32: transformers' default on the CPU. bf16: half the memory.
# int8-dynamic: torch's dynamic quantization, Linear weights int8 and activations quantized on the fly
#   (fbgemm's int8 matmuls: faster; on SmolLM2-135M the quality falls sharply, the cause not measured apart).
# int8-weight-only: torchao's int8 weights dequantized for each matmul (the quality kept, slower).
CpuWeights = Literal["fp32", "bf16", "int8-dynamic", "int8-weight-only"]

# full: keys and values in the weights' float type (transformers' DynamicCache).
# int4, int2: transformers' QuantizedCache with optimum-quanto (KIVI's scheme): keys and values quantized
#   in groups, the newest RESIDUAL_TOKENS kept in the float type until there are that many again.
CpuKvCache = Literal["full", "int4", "int2"]
KV_GROUP = 64  # values sharing one scale and one zero point
RESIDUAL_TOKENS = 128  # transformers' default: recent tokens stay exact, then join the quantized store
KV_BITS = {"int4": 4, "int2": 2}


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, float_bytes: int, kv_cache: CpuKvCache) -> float:
    """Bytes one token's keys and values take in the cache once it is past the residual window: the
    quantized values plus each group's scale and zero point, held in the float type."""
    values = 2 * layers * kv_heads * head_dim
    if kv_cache == "full":
        return values * float_bytes
    return values * (KV_BITS[kv_cache] / 8 + 2 * float_bytes / KV_GROUP)
