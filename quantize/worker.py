"""Run LMDeploy's AWQ quantization in a process of its own, on local calibration text.

`python -m quantize.worker SETTINGS_JSON`. Its stdout is LMDeploy's own progress lines
(one per layer calibrated, smoothed and packed), which `quantize.progress` reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .calibration import load_text, windows


def main(settings: dict) -> None:
    import torch
    from lmdeploy.lite.apis import auto_awq, calibrate

    text = load_text(Path(settings["calibration_file"]) if settings.get("calibration_file") else None)

    def local_windows(name, tokenizer, nsamples=128, seed=0, seqlen=2048):
        ids = tokenizer(text, return_tensors="pt").input_ids[0].tolist()
        return [torch.tensor([window]) for window in windows(ids, nsamples, seqlen, seed)]

    # auto_awq takes a dataset *name* and fetches it from a hub; this feeds it the local text instead.
    calibrate.get_calib_loaders = local_windows
    print(f"Calibrating on {len(text):,} characters of local text", flush=True)
    auto_awq.auto_awq(
        settings["model"],
        work_dir=settings["output"],
        calib_samples=settings["samples"],
        calib_seqlen=settings["seqlen"],
        w_bits=settings["bits"],
        w_group_size=settings["group_size"],
        dtype=settings["dtype"],
        device=settings["device"],
    )
    print("Saved the AWQ model to " + settings["output"], flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
