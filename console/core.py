"""The Console: the one running backend every browser session shares."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from backends import Backend, BackendInfo, BackendSpec, create_backend


@dataclass(frozen=True)
class EngineState:
    """What the UI header shows: the backend's info and why it was chosen."""

    info: BackendInfo
    reason: str
    preset: str | None


class Console:
    """Owns the backend. Switching is serialized; chats read `backend` per request."""

    def __init__(self, backend: Backend, reason: str, preset: str | None = None):
        self._backend, self._reason, self._preset = backend, reason, preset
        self._switch_lock = asyncio.Lock()

    @classmethod
    async def start(cls, spec: BackendSpec, preset: str | None = None) -> Console:
        backend, reason = await create_backend(spec)
        return cls(backend, reason, preset)

    @property
    def backend(self) -> Backend:
        return self._backend

    def state(self) -> EngineState:
        return EngineState(self._backend.info(), self._reason, self._preset)

    async def close(self) -> None:
        async with self._switch_lock:
            await self._backend.close()
