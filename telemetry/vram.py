"""One NVML sampler, about 1 Hz, with a ring buffer of history and event markers.

Modeled on nvitop's device API: a NamedTuple per reading with units in the field names,
and no exceptions: no GPU or an NVML error is a value (`Sample.error`) the UI shows.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import NamedTuple

import psutil

from .nvml import open_nvml

MIB = 2**20


class ProcessMemory(NamedTuple):
    pid: int
    used_mib: float
    role: str  # "engine worker", "console" or "other"


class GpuReading(NamedTuple):
    index: int  # type: ignore[assignment]  # NVML's index of the GPU; it shadows tuple.index, which nothing calls
    name: str
    used_mib: float
    total_mib: float
    util_pct: int | None
    processes: tuple[ProcessMemory, ...]

    @property
    def free_mib(self) -> float:
        return self.total_mib - self.used_mib


class Sample(NamedTuple):
    time_s: float  # time.time()
    gpus: tuple[GpuReading, ...]
    console_rss_mib: float  # this process and the engine worker: what the cpu backend costs
    error: str | None  # why there are no GPU readings, if there are none

    def used_mib(self) -> float:
        return sum(g.used_mib for g in self.gpus)


class Event(NamedTuple):
    time_s: float
    label: str


class VramSampler:
    """Samples every GPU on a background thread; safe to read from any thread."""

    def __init__(self, interval_s: float = 1.0, history: int = 3600, nvml=None):
        self._interval_s = interval_s
        self._history: deque[Sample] = deque(maxlen=history)
        self._events: deque[Event] = deque(maxlen=500)
        self._roles: dict[int, str] = {os.getpid(): "console"}
        self._processes_by_pid: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml, self._nvml_error = open_nvml(nvml)

    def start(self) -> VramSampler:
        """Sample in the background (again, after `pause`)."""
        self._paused.clear()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vram-sampler", daemon=True)
            self._thread.start()
        return self

    def pause(self) -> None:
        """Stop background sampling until `start` (the benchmark's "off")."""
        self._paused.set()

    def stop(self) -> None:
        self._stop.set()

    def name_process(self, pid: int | None, role: str) -> None:
        """Label a process (e.g. the engine worker) in per-process readings."""
        if pid:
            with self._lock:
                self._roles[pid] = role

    def mark(self, label: str) -> None:
        """Record an event the console caused, for the timeline's markers."""
        with self._lock:
            self._events.append(Event(time.time(), label))

    def sample(self) -> Sample:
        """Read every GPU now (and keep the reading); never raises."""
        gpus, error = self._read_gpus()
        reading = Sample(time.time(), gpus, self._console_rss_mib(), error)
        with self._lock:
            self._history.append(reading)
        return reading

    def latest(self) -> Sample:
        with self._lock:
            if self._history:
                return self._history[-1]
        return self.sample()

    def history(self, seconds: float | None = None) -> list[Sample]:
        with self._lock:
            samples = list(self._history)
        if seconds is None:
            return samples
        cutoff = time.time() - seconds
        return [s for s in samples if s.time_s >= cutoff]

    def events(self, seconds: float | None = None) -> list[Event]:
        with self._lock:
            events = list(self._events)
        cutoff = time.time() - seconds if seconds else 0
        return [e for e in events if e.time_s >= cutoff]

    def _console_rss_mib(self) -> float:
        """RSS of this process and the ones it named (the engine worker): walking every child
        through /proc would cost a millisecond a sample."""
        with self._lock:
            pids = list(self._roles)
        total = 0
        for pid in pids:
            try:
                process = self._processes_by_pid.get(pid) or self._processes_by_pid.setdefault(pid, psutil.Process(pid))
                total += process.memory_info().rss
            except psutil.Error:
                self._processes_by_pid.pop(pid, None)
        return total / MIB

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            if not self._paused.is_set():
                self.sample()

    def _read_gpus(self) -> tuple[tuple[GpuReading, ...], str | None]:
        if self._nvml is None:
            return (), self._nvml_error
        nvml = self._nvml
        try:
            indices = _visible_indices(nvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
        except nvml.NVMLError as exc:
            return (), f"NVML error: {exc}"
        # one GPU at a time, as nvitop does: a card NVML cannot read leaves the others on the page
        readings, problems = [], []
        for index in indices:
            try:
                readings.append(self._read_gpu(nvml, index))
            except nvml.NVMLError as exc:
                problems.append(f"GPU {index}: NVML error: {exc}")
        return tuple(readings), "; ".join(problems) or None

    def _read_gpu(self, nvml, index: int) -> GpuReading:
        """One GPU's memory (which it cannot do without), with its name, load and processes where NVML gives them."""
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            name = _text(nvml.nvmlDeviceGetName(handle))
        except nvml.NVMLError:
            name = f"GPU {index}"
        return GpuReading(
            index=index,
            name=name,
            used_mib=memory.used / MIB,
            total_mib=memory.total / MIB,
            util_pct=_utilization(nvml, handle),
            processes=self._processes(nvml, handle),
        )

    def _processes(self, nvml, handle) -> tuple[ProcessMemory, ...]:
        try:
            running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except nvml.NVMLError:
            return ()
        with self._lock:
            roles = dict(self._roles)
        return tuple(ProcessMemory(p.pid, (p.usedGpuMemory or 0) / MIB, roles.get(p.pid, "other")) for p in running)


def _visible_indices(nvml, visible: str | None) -> list[int]:
    """The NVML indices of the GPUs this process's engines can use: those CUDA_VISIBLE_DEVICES names (by
    index or UUID, in its order), else all. NVML itself sees every card, so a console pinned to one GPU
    of a shared machine would otherwise count the others' memory as its own."""
    count = nvml.nvmlDeviceGetCount()
    if visible is None:
        return list(range(count))
    uuids = None
    indices = []
    for entry in filter(None, (part.strip() for part in visible.split(","))):
        if entry.isdigit():
            index = int(entry)
        elif entry.startswith("MIG-"):
            return list(range(count))  # a MIG slice does not name its card here: every card, as NVML sees them
        else:  # GPU-8f2a... (a unique prefix is enough for CUDA)
            uuids = uuids or [_text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
            index = next((i for i, uuid in enumerate(uuids) if uuid.startswith(entry)), count)
        if index >= count:
            break  # CUDA ignores an invalid entry and every one after it
        indices.append(index)
    return indices


def _utilization(nvml, handle) -> int | None:
    try:
        return int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except nvml.NVMLError:
        return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
