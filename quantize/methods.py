"""The weight quantization methods the Quantize tab offers: LMDeploy's own, declared once.

Read in LMDeploy 0.18: `lite/apis/auto_awq.py` (AWQ W4A16) and `lite/apis/smooth_quant.py`
(W8A8 SmoothQuant, int8 or fp8 e4m3); TurboMind refuses `smooth_quant` models
(`turbomind/supported_models.py`), so only the PyTorch engine loads W8A8.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantMethod:
    """One method: what it does to weights, KV and speed (a line each), and how LMDeploy runs it."""

    name: str
    label: str
    weights: str
    kv: str
    speed: str
    lmdeploy_call: str  # the function of lmdeploy.lite.apis that runs it
    quant_dtype: str | None = None  # smooth_quant's quant_dtype
    grouped: bool = False  # takes a group size
    size_ratio: float = 0.5  # weight files after / before, at most (the disk check)

    def describe(self) -> str:
        return f"**{self.label}** · weights: {self.weights} · KV cache: {self.kv} · speed: {self.speed}"


METHODS = {
    method.name: method
    for method in (
        QuantMethod(
            "awq",
            "AWQ W4A16",
            "4-bit integers in groups of 32-128 with fp16 scales (a 7B model: 0.30x on disk, measured)",
            "unchanged (pair it with a KV quant policy)",
            "less to read per token; TurboMind (group 128) or the PyTorch engine",
            "auto_awq",
            grouped=True,
        ),
        QuantMethod(
            "w8a8-int8",
            "W8A8 SmoothQuant, int8",
            "8-bit integers per channel, activation outliers moved into the weights (about 0.55x)",
            "unchanged",
            "int8 matrix multiplies for weights and activations; the PyTorch engine only",
            "smooth_quant",
            quant_dtype="int8",
            size_ratio=0.7,
        ),
        QuantMethod(
            "w8a8-fp8",
            "W8A8 SmoothQuant, fp8",
            "fp8 e4m3 per channel (about 0.55x)",
            "unchanged",
            "fp8 matrix multiplies; the PyTorch engine only, on GPUs with fp8 (Ada, Hopper and newer)",
            "smooth_quant",
            quant_dtype="fp8",
            size_ratio=0.7,
        ),
    )
}
