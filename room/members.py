"""The console processes of a room: `app.py` with the operator's own flags, each on a port of this
machine, started together and started again when one ends."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

from .router import Member

MEMBER_ENV = "LMDEPLOY_CONSOLE_ROOM_MEMBER"  # "K/N:PORT": this process is member K of N, serving PORT
ROOM_PID_ENV = "LMDEPLOY_CONSOLE_ROOM_PID"  # the room's process, which its members end with
_READY_TIMEOUT_S = 600
_RESTART_PAUSE_S = 2.0


class Place(NamedTuple):
    """A member's place in its room: member `position` (from 0) of `members`, listening on `port`."""

    position: int
    members: int
    port: int


def member_place() -> Place | None:
    """Where this process is a member of a room, else None."""
    value = os.environ.get(MEMBER_ENV)
    if not value:
        return None
    place, port = value.split(":")
    index, count = place.split("/")
    return Place(int(index), int(count), int(port))


def end_with_the_room() -> None:
    """In a member: end this process (as a kill would ask) once the room's process is gone, however it
    ended; a member left behind would hold its port and its share of the engine's server."""
    room = int(os.environ[ROOM_PID_ENV])  # not getppid(): the room may have ended before this process got here

    def watch() -> None:
        while os.getppid() == room:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="end-with-the-room", daemon=True).start()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Members:
    """`count` console processes running `program` with `argv` (the flags the operator gave; each
    member is told its place and port through MEMBER_ENV)."""

    def __init__(self, program: Path, argv: list[str], count: int):
        self._command = [sys.executable, str(program), *argv]
        self.members = [Member("127.0.0.1", _free_port()) for _ in range(count)]
        self._processes: list[subprocess.Popen | None] = [None] * count
        self._listening = [False] * count

    def alive(self, index: int) -> bool:
        """Whether member `index` runs and listens: may take clients."""
        process = self._processes[index]
        return self._listening[index] and process is not None and process.poll() is None

    def start(self) -> None:
        """Starts every member and waits until each listens (SystemExit where one ends first)."""
        started = [self._start(index) for index in range(len(self.members))]
        deadline = time.monotonic() + _READY_TIMEOUT_S
        for index, (member, process) in enumerate(zip(self.members, started, strict=True)):
            while not _listening(member.port):
                if process.poll() is not None:
                    self.stop()
                    raise SystemExit(f"room process {index + 1} ended while starting; its output is above")
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"room process {index + 1} did not start listening in {_READY_TIMEOUT_S} s")
                time.sleep(0.2)
            self._listening[index] = True

    def _start(self, index: int) -> subprocess.Popen:
        place = f"{index}/{len(self.members)}:{self.members[index].port}"
        self._listening[index] = False
        room = {MEMBER_ENV: place, ROOM_PID_ENV: str(os.getpid())}
        process = self._processes[index] = subprocess.Popen(self._command, env={**os.environ, **room})
        return process

    async def keep_running(self) -> None:
        """Starts again any member that ended (its pages reload into another meanwhile), and lets it
        take clients once it listens."""
        while True:
            await asyncio.sleep(_RESTART_PAUSE_S)
            for index, process in enumerate(self._processes):
                if process is not None and process.poll() is not None:
                    print(f"room process {index + 1} ended (exit {process.returncode}); starting it again", flush=True)
                    self._start(index)
                elif not self._listening[index]:
                    self._listening[index] = await asyncio.to_thread(_listening, self.members[index].port)

    def stop(self) -> None:
        for process in self._processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self._processes:
            if process is not None:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
