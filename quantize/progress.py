"""Progress of `auto_awq` and `smooth_quant` from the lines they print: one per layer calibrated,
smoothed, packed (AWQ)."""

from __future__ import annotations

import re

# (pattern, start, share of the bar): calibration is the long phase
_PHASES = (
    (re.compile(r"layers\.(\d+), samples:"), 0.05, 0.45, "calibrating layer"),
    (re.compile(r"layers\.(\d+) smooth weight done"), 0.50, 0.20, "smoothing layer"),
    (re.compile(r"layers\.(\d+)\.\S+ weight (?:packed|skipped)"), 0.70, 0.28, "packing layer"),
)


def parse_line(line: str, layers: int) -> tuple[float, str] | None:
    """(fraction done, what is happening) for a progress line; None for other output."""
    if line.startswith("Loading calibrate dataset"):
        return 0.05, "tokenizing the calibration text"
    if line.startswith("Saved the quantized model"):
        return 1.0, "saved"
    for pattern, start, share, what in _PHASES:
        if match := pattern.search(line):
            layer = int(match.group(1))
            return start + share * min(layer + 1, layers) / layers, f"{what} {layer + 1} of {layers}"
    return None
