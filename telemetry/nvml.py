"""The one way into NVML: the VRAM sampler's long-lived handle and the machine description's short reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def open_nvml(nvml=None):
    """(the initialised NVML module, None), or (None, why there is none): a missing library or driver is
    a value, not a crash. `nvml`: a stand-in module with pynvml's functions (the tests' scripted cards)."""
    try:
        if nvml is None:
            import pynvml

            nvml = pynvml
        nvml.nvmlInit()
        return nvml, None
    except Exception as exc:  # noqa: BLE001 - whatever NVML raises, the console runs on without it
        # plain words first: NVML's exception names (NVMLError_LibraryNotFound) mean nothing to most people
        return None, f"no NVIDIA driver or GPU was found (NVML says: {exc})"


def read_nvml(read: Callable[[Any], T]) -> T | None:
    """`read(nvml)` with NVML open for it and shut down after; None where there is no NVML or the read
    fails (an old driver lacks some queries)."""
    nvml, _ = open_nvml()
    if nvml is None:
        return None
    try:
        return read(nvml)
    except Exception:  # noqa: BLE001 - not known, as without NVML
        return None
    finally:
        nvml.nvmlShutdown()
