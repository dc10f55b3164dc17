"""One line naming the machine and the versions a measurement was made with."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

from .nvml import read_nvml


def describe_machine() -> str:
    versions = []
    for package in ("lmdeploy", "torch", "transformers", "gradio"):
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} absent")
    return f"Machine: {_gpus() or _cpu()}; Python {platform.python_version()}; {', '.join(versions)}."


def boot_id() -> str:
    """This boot of this machine (Linux's random boot id): two exports with the same one were
    measured on the same machine without a restart in between; "" where the system has none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def lowest_compute_capability() -> tuple[int, int] | None:
    """The oldest CUDA architecture among the GPUs (e.g. (9, 0) for Hopper); None without NVML."""

    def lowest(nvml) -> tuple[int, int] | None:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        return min((tuple(nvml.nvmlDeviceGetCudaComputeCapability(h)) for h in handles), default=None)

    return read_nvml(lowest)


def _cpu() -> str:
    import os

    model = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores of {model}, no GPU"


def _gpus() -> str | None:
    """The GPUs by name and driver; None where NVML names none."""

    def named(nvml) -> str | None:
        count = nvml.nvmlDeviceGetCount()
        names = [nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
        return f"{count} x {names[0]} (driver {nvml.nvmlSystemGetDriverVersion()})" if names else None

    return read_nvml(named)
