"""One line naming the machine and the versions a measurement was made with."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path


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
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            found = [tuple(pynvml.nvmlDeviceGetCudaComputeCapability(h)) for h in handles]
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVML: not known
        return None
    return min(found) if found else None


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
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        names = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
        driver = pynvml.nvmlSystemGetDriverVersion()
        pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVML means no GPU to name
        return None
    return f"{count} x {names[0]} (driver {driver})" if names else None
