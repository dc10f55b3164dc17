"""The engine worker processes, seen from the console: start one, load an engine in it, and keep a
worker whose engine closed cleanly for the next load (see `lmdeploy_worker` for why)."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
import time
from collections.abc import Callable

from . import worker_messages as wire
from .base import EngineCrashed, ModelLoadError
from .lmdeploy_config import EngineOptions
from .lmdeploy_worker import main as worker_main

_LOAD_TIMEOUT_S = 1800  # a 70B model from a slow disk takes many minutes
_EXIT_TIMEOUT_S = 30
# A worker is given another engine only while its closes leave no more GPU memory in use than its
# first close did, give or take this much (the raw pipeline keeps 18-50 MiB more after each build,
# measured on an H100): so ten switches cannot pile up more than this.
REUSE_SLACK_MIB = 64
REUSE_ENV = "LMDEPLOY_CONSOLE_REUSE_WORKER"  # 0: a new worker process for every engine, no spare (slower switches)


class EngineWorker:
    """One worker process and its pipe. It hosts one engine at a time, and another after a clean close."""

    def __init__(self):
        context = multiprocessing.get_context("spawn")  # CUDA cannot survive a fork
        self.conn, child_conn = context.Pipe()
        # Not a daemon: LMDeploy's engines start processes of their own, which daemons may not.
        self.process = context.Process(target=worker_main, args=(child_conn,), name="lmdeploy-engine-worker")
        self.process.start()
        child_conn.close()
        self.engines_loaded = 0
        self.gpus: tuple[int, ...] | None = None  # those its CUDA context is on, once it loaded an engine
        self._first_close_mib: float | None = None
        self._send_lock = threading.Lock()
        # multiprocessing joins live children at exit; the worker only ends once told to
        atexit.register(self.end)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def send(self, message: wire.Load | wire.Exit | wire.Close | wire.Request | wire.Cancel) -> None:
        try:
            with self._send_lock:
                self.conn.send(message)
        except (OSError, EOFError) as exc:
            raise EngineCrashed("the engine worker is gone; restart the engine") from exc

    def load(
        self,
        model_path: str,
        options: EngineOptions,
        on_stage: Callable[[str], None],
        gpus: tuple[int, ...] | None = None,
    ) -> dict:
        """Load an engine on `gpus` (None: the console's own) (blocking); returns what the worker reports
        of it, or raises ModelLoadError."""
        self.send(wire.Load(model_path, options, gpus))
        deadline = time.monotonic() + _LOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.conn.poll(0.5):
                try:
                    message = self.conn.recv()
                except (EOFError, OSError):
                    break
                match message:
                    case wire.Ready(info):
                        self.engines_loaded += 1
                        self.gpus = gpus
                        return info
                    case wire.Stage(text):
                        on_stage(text)
                        continue
                    case wire.LoadFailed(why):
                        self.process.join(timeout=_EXIT_TIMEOUT_S)  # after a failed load the worker ends itself
                        raise ModelLoadError(f"LMDeploy could not load {model_path}: {why}")
            if not self.process.is_alive():
                break
        self.process.join(timeout=1)
        raise ModelLoadError(
            f"the LMDeploy worker exited (code {self.process.exitcode}) while loading {model_path}; "
            "its log is in the console's terminal"
        )

    def may_host_another(self, used_mib: float | None, reusable: bool) -> bool:
        """After a clean close that left `used_mib` in use: whether the next engine may load here."""
        if not reusable or used_mib is None or not self.process.is_alive():
            return False
        if self._first_close_mib is None:
            self._first_close_mib = used_mib
        return used_mib <= self._first_close_mib + REUSE_SLACK_MIB

    def end(self) -> None:
        """End the process (its engine with it, if one runs); every byte of its VRAM comes back."""
        if self.conn.closed:
            return
        atexit.unregister(self.end)
        try:
            self.send(wire.Exit())
        except EngineCrashed:
            pass
        self.process.join(timeout=_EXIT_TIMEOUT_S)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        atexit.unregister(self.end)
        self.conn.close()


class WorkerPool:
    """Workers ready for the next engine: the one whose engine just closed cleanly (imports and CUDA
    context done; kept a short while only, since its context holds GPU memory a job may want back), and
    a spare started ahead (imports done, no CUDA context, so no GPU memory) for when none can be reused:
    after a crash, after `get_logits`, or when a worker's closes leave memory behind."""

    def __init__(self, wait_s: float = 60, enabled: bool = True):
        self._idle: EngineWorker | None = None
        self._spare: EngineWorker | None = None
        self._lock = threading.Lock()
        self._wait_s = wait_s
        self.enabled = enabled

    def take_idle(self, gpus: tuple[int, ...] | None = None) -> EngineWorker | None:
        """The idle worker, where its CUDA context is on `gpus` (a context cannot move to other GPUs)."""
        with self._lock:
            if self._idle is None or self._idle.gpus != gpus:
                return None
            worker, self._idle = self._idle, None
        return _alive(worker)

    def keep_idle(self, worker: EngineWorker) -> None:
        if not self.enabled:
            worker.end()
            return
        with self._lock:
            previous, self._idle = self._idle, worker
        if previous is not None:
            previous.end()
        timer = threading.Timer(self._wait_s, self._end_unless_taken, args=(worker,))
        timer.daemon = True
        timer.start()

    def fresh(self) -> tuple[EngineWorker, bool]:
        """A worker with no engine yet: the spare where one is ready (True), else a new one (False).
        The next spare starts at once: its imports then overlap this worker's load, so a second load
        right after (side B's, after side A's) finds LMDeploy imported instead of waiting for it."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and not self.enabled:  # reuse turned off since it was started
            spare.end()
            spare = None
        spare = _alive(spare)
        worker = (spare, True) if spare else (EngineWorker(), False)
        self.prepare_spare()
        return worker

    def prepare_spare(self) -> None:
        """Start a spare worker unless one is ready (its imports run while the engine serves)."""
        if not self.enabled:
            return
        with self._lock:
            if _alive(self._spare):
                return
            self._spare = EngineWorker()

    def _end_unless_taken(self, worker: EngineWorker) -> None:
        with self._lock:
            if self._idle is not worker:
                return
            self._idle = None
        worker.end()


def _alive(worker: EngineWorker | None) -> EngineWorker | None:
    if worker is not None and not worker.process.is_alive():
        worker.kill()
        return None
    return worker


WORKERS = WorkerPool(enabled=os.environ.get(REUSE_ENV, "1") != "0")
