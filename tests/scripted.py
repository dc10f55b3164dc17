"""A scripted backend for unit tests of pure logic (the only place a fake engine is used)."""

from __future__ import annotations

import asyncio

from backends import Backend, BackendError, BackendInfo, Finish, TextDelta, Usage


class ScriptedBackend(Backend):
    def __init__(self, chunks: list[str], fail_with: BackendError | None = None, delay_s: float = 0.0):
        self.chunks, self.fail_with, self.delay_s = chunks, fail_with, delay_s
        self.requests = []
        self.closed_early = False

    def info(self) -> BackendInfo:
        return BackendInfo(kind="scripted", model="script", engine="none")

    async def stream_chat(self, request):
        self.requests.append(request)
        finished = False
        try:
            for chunk in self.chunks:
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                yield TextDelta(chunk)
            if self.fail_with:
                raise self.fail_with
            yield Usage(prompt_tokens=3, completion_tokens=len(self.chunks))
            yield Finish("stop")
            finished = True
        finally:
            self.closed_early = not finished

    async def close(self):
        pass
