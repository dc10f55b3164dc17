"""Loaded by every Python process started with this folder first on PYTHONPATH (`bench.many_users
--gc-pauses` starts the console so): where CONSOLE_GC_LOG names a file, each of the process's full
garbage collections is appended to it as "pid role start_unix_s duration_s". The role: the room's engine
host, a room process, an engine worker (any process a console process spawned), the room's router, or the
console (one process)."""

import gc
import multiprocessing
import os
import sys
import time

_LOG = os.environ.get("CONSOLE_GC_LOG")


def _role() -> str:
    if multiprocessing.parent_process() is not None:
        return "engine worker"
    if member := os.environ.get("LMDEPLOY_CONSOLE_ROOM_MEMBER"):
        return "engine host" if member == "engine" else "room process"
    return "router" if "--room-processes" in sys.argv else "console"


def _watch(phase: str, info: dict, started: list[float] = [0.0, 0.0]) -> None:  # noqa: B006 - kept between calls
    if info["generation"] != 2:
        return
    if phase == "start":
        started[:] = [time.time(), time.perf_counter()]
        return
    with open(_LOG, "a") as log:
        log.write(f"{os.getpid()} {_role()}\t{started[0]:.3f} {time.perf_counter() - started[1]:.4f}\n")


if _LOG:
    gc.callbacks.append(_watch)
