"""RSS of a room of 2 on the CPU default, each process with its role, beside a console of one process.
Run from the checkout's root: python docs/cpu-runs/2026-12-05-room-engine/room_memory.py"""

import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, ".")
from tests.conftest import start_console, stop_process  # noqa: E402 - the checkout's root, put on the path above


def roles(console):
    rows = [("room (router)", psutil.Process(console.pid))]
    for child in psutil.Process(console.pid).children():
        role = child.environ().get("LMDEPLOY_CONSOLE_ROOM_MEMBER", "?")
        rows.append(("engine host" if role == "engine" else f"page process {role.split(':')[0]}", child))
    return rows


for options, name in ((["--room-processes", "2"], "room of 2"), ([], "one process")):
    console, url = start_console(options, Path(f"/tmp/mem-{len(options)}.log"))
    time.sleep(5)
    rows = roles(console) if options else [("console", psutil.Process(console.pid))]
    print(f"## {name}: app.py {' '.join(options)}")
    for role, process in rows:
        print(f"{role:22s} pid {process.pid:7d} RSS {process.memory_info().rss / 2**20:8.1f} MiB")
    print(f"in all: {sum(p.memory_info().rss for _, p in rows) / 2**20:.1f} MiB\n")
    stop_process(console)
