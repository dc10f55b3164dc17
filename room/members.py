"""The console processes of a room: `app.py` with the operator's own flags, each on a port of this
machine, started together and started again when one ends; and, where the room runs its own engine,
the engine host they share (`backends.hosted`), started before them."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import psutil

from .router import Member

# "K/N:PORT": this process is member K of N, serving PORT; ENGINE_HOST: it is the room's engine host
MEMBER_ENV = "LMDEPLOY_CONSOLE_ROOM_MEMBER"
ENGINE_HOST = "engine"
ROOM_PID_ENV = "LMDEPLOY_CONSOLE_ROOM_PID"  # the room's process, which its members end with
ENGINE_ENV = "LMDEPLOY_CONSOLE_ROOM_ENGINE"  # the socket the room's engine host listens on
ENGINE_KEY_ENV = "LMDEPLOY_CONSOLE_ROOM_ENGINE_KEY"  # what a member shows the host (hex)
_READY_TIMEOUT_S = 600
_RESTART_PAUSE_S = 2.0


class Place(NamedTuple):
    """A member's place in its room: member `position` (from 0) of `members`, listening on `port`."""

    position: int
    members: int
    port: int


class EngineSocket(NamedTuple):
    """Where the room's engine host listens, and the key it asks of a connecting process."""

    path: str
    key: bytes


def member_place() -> Place | None:
    """Where this process is a member of a room serving pages, else None."""
    value = os.environ.get(MEMBER_ENV)
    if not value or value == ENGINE_HOST:
        return None
    place, port = value.split(":")
    index, count = place.split("/")
    return Place(int(index), int(count), int(port))


def hosts_the_engine() -> bool:
    """Whether this process is its room's engine host."""
    return os.environ.get(MEMBER_ENV) == ENGINE_HOST


def room_engine() -> EngineSocket | None:
    """The engine host of this process's room, where the room runs one."""
    path = os.environ.get(ENGINE_ENV)
    return EngineSocket(path, bytes.fromhex(os.environ[ENGINE_KEY_ENV])) if path else None


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


def _listens(process: subprocess.Popen, port: int) -> bool:
    """Whether `process` itself listens on `port`: the port was free when chosen, not reserved, so a probe
    of the port alone could take another program that took it meanwhile for the member."""
    try:
        sockets = psutil.Process(process.pid).net_connections("tcp")
    except psutil.Error:  # ended meanwhile
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets)


class Members:
    """`count` console processes running `program` with `argv` (the flags the operator gave; each
    member is told its place and port through MEMBER_ENV)."""

    def __init__(self, program: Path, argv: list[str], count: int, host_the_engine: bool):
        self._command = [sys.executable, str(program), *argv]
        self.members = [Member("127.0.0.1", _free_port()) for _ in range(count)]
        self._processes: list[subprocess.Popen | None] = [None] * count
        self._listening = [False] * count
        self._started = False
        self._env = {**os.environ, ROOM_PID_ENV: str(os.getpid())}
        self.engine: EngineSocket | None = None
        self._engine_host: subprocess.Popen | None = None
        if host_the_engine:  # a folder only this user may open: what crosses the socket is pickled
            self._folder = tempfile.mkdtemp(prefix="lmdeploy-console-room-")
            self.engine = EngineSocket(os.path.join(self._folder, "engine.sock"), secrets.token_bytes(32))
            self._env |= {ENGINE_ENV: self.engine.path, ENGINE_KEY_ENV: self.engine.key.hex()}

    def alive(self, index: int) -> bool:
        """Whether member `index` runs and listens: may take clients, once every member has started (so that
        the room's first visitors spread over all of them)."""
        process = self._processes[index]
        return self._started and self._listening[index] and process is not None and process.poll() is None

    def start(self) -> None:
        """Starts the engine host, where the room runs one, and every member, and waits until each
        listens (SystemExit where one ends first)."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        if self.engine:
            self._start_engine_host()
            while not os.path.exists(self.engine.path):
                self._still_starting(self._engine_host, "the room's engine process", deadline)
        started = [self._start(index) for index in range(len(self.members))]
        for index, (member, process) in enumerate(zip(self.members, started, strict=True)):
            while not _listens(process, member.port):
                self._still_starting(process, f"room process {index + 1}", deadline)
            self._listening[index] = True
        self._started = True

    def _still_starting(self, process: subprocess.Popen | None, name: str, deadline: float) -> None:
        """Waits a moment for a process that is starting; SystemExit, the room stopped, where it ended or
        took too long."""
        if process is None or process.poll() is not None:
            self.stop()
            raise SystemExit(f"{name} ended while starting; its output is above")
        if time.monotonic() > deadline:
            self.stop()
            raise SystemExit(f"{name} did not start listening in {_READY_TIMEOUT_S} s")
        time.sleep(0.2)

    def _start(self, index: int) -> subprocess.Popen:
        if self._processes[index] is not None:  # started again: its port may be why it ended (taken meanwhile)
            self.members[index] = Member("127.0.0.1", _free_port())
        place = f"{index}/{len(self.members)}:{self.members[index].port}"
        self._listening[index] = False
        process = self._processes[index] = subprocess.Popen(self._command, env={**self._env, MEMBER_ENV: place})
        return process

    def _start_engine_host(self) -> None:
        self._engine_host = subprocess.Popen(self._command, env={**self._env, MEMBER_ENV: ENGINE_HOST})

    async def keep_running(self) -> None:
        """Starts again any member that ended (its pages reload into another meanwhile), and lets it
        take clients once it listens."""
        while True:
            await asyncio.sleep(_RESTART_PAUSE_S)
            if self._engine_host is not None and self._engine_host.poll() is not None:
                code = self._engine_host.returncode
                print(f"the room's engine process ended (exit {code}); starting it again", flush=True)
                self._start_engine_host()
            for index, process in enumerate(self._processes):
                if process is not None and process.poll() is not None:
                    print(f"room process {index + 1} ended (exit {process.returncode}); starting it again", flush=True)
                    self._start(index)
                elif not self._listening[index] and process is not None:
                    self._listening[index] = await asyncio.to_thread(_listens, process, self.members[index].port)

    def stop(self) -> None:
        processes = [process for process in (*self._processes, self._engine_host) if process is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.engine:
            shutil.rmtree(self._folder, ignore_errors=True)
