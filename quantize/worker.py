"""Run LMDeploy's weight quantization (AWQ or SmoothQuant) in a process of its own, on local
calibration text.

`python -m quantize.worker SETTINGS_JSON`. Its stdout is LMDeploy's own progress lines
(one per layer calibrated, smoothed and packed), which `quantize.progress` reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .calibration import load_text, windows
from .methods import METHODS


def main(settings: dict) -> None:
    import torch
    from lmdeploy.lite.apis import auto_awq, calibrate, smooth_quant

    text = load_text(Path(settings["calibration_file"]) if settings.get("calibration_file") else None)

    def local_windows(name, tokenizer, nsamples=128, seed=0, seqlen=2048):
        ids = tokenizer(text, return_tensors="pt").input_ids[0].tolist()
        return [torch.tensor([window]) for window in windows(ids, nsamples, seqlen, seed)]

    # both methods take a dataset *name* and fetch it from a hub; this feeds them the local text instead
    calibrate.get_calib_loaders = local_windows
    method = METHODS[settings["method"]]
    print(f"{method.label}: calibrating on {len(text):,} characters of local text", flush=True)
    common = dict(
        work_dir=settings["output"],
        calib_samples=settings["samples"],
        calib_seqlen=settings["seqlen"],
        dtype=settings["dtype"],
        device=settings["device"],
    )
    if method.lmdeploy_call == "auto_awq":
        auto_awq.auto_awq(settings["model"], w_bits=4, w_group_size=settings["group_size"], **common)
    else:
        smooth_quant.smooth_quant(settings["model"], w_bits=8, quant_dtype=method.quant_dtype, **common)
    print("Saved the quantized model to " + settings["output"], flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
