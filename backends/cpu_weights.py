"""How the CPU backend holds a model's weights: a preset option, importable without torch.

Measured on the embedded SmolLM2-135M on a 2-core machine through Compare (docs/results.md, "Quantization
on the CPU"): bf16 halves the memory at fp32's quality; both int8 modes quarter the Linear layers, one
trading quality for speed, the other speed for quality.
"""

from typing import Literal

# fp32: transformers' default on the CPU. bf16: half the memory.
# int8-dynamic: torch's dynamic quantization, Linear weights int8 and activations quantized on the fly
#   (fbgemm's int8 matmuls: faster; on SmolLM2-135M the quality falls sharply, the cause not measured apart).
# int8-weight-only: torchao's int8 weights dequantized for each matmul (the quality kept, slower).
CpuWeights = Literal["fp32", "bf16", "int8-dynamic", "int8-weight-only"]
