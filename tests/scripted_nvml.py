"""A scripted NVML (the `pynvml` surface the sampler uses), for unit tests of telemetry."""

from __future__ import annotations

from types import SimpleNamespace


class ScriptedNvml:
    class NVMLError(Exception):
        pass

    def __init__(self, gpus: list[dict], fail_init: bool = False):
        self.gpus, self.fail_init, self.fail_reads = gpus, fail_init, False

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlDeviceGetCount(self):
        if self.fail_reads:
            raise self.NVMLError("GPU is lost")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu):
        if "name" not in gpu:
            raise self.NVMLError("Not Supported")
        return gpu["name"].encode()

    def nvmlDeviceGetUUID(self, gpu):
        return gpu.get("uuid", f"GPU-{self.gpus.index(gpu):08d}").encode()

    def nvmlDeviceGetMemoryInfo(self, gpu):
        if gpu.get("lost"):
            raise self.NVMLError("GPU is lost")
        return SimpleNamespace(used=gpu["used_mib"] * 2**20, total=gpu["total_mib"] * 2**20)

    def nvmlDeviceGetUtilizationRates(self, gpu):
        return SimpleNamespace(gpu=gpu["util"])

    def nvmlDeviceGetComputeRunningProcesses(self, gpu):
        return [SimpleNamespace(pid=pid, usedGpuMemory=mib * 2**20) for pid, mib in gpu["processes"]]
