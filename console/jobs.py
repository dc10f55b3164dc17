"""Long jobs that take over the GPU (AWQ quantization, comparisons): one at a time, each
running on the console's event loop, independent of the browser tab that started it."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from backends import Refusal

from .engine_state import EngineBusy

if TYPE_CHECKING:
    from .core import Console

JobState = Literal["running", "done", "failed", "cancelled"]
_LOG_LINES = 200


class JobBusy(Refusal, RuntimeError):
    """Another job holds the GPU; the message names it."""


class JobFailed(Refusal):
    """A job ended on a problem the user can act on; the message says what to change."""


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job for the UI: progress in [0, 1], the latest step and the log tail."""

    kind: str
    state: JobState
    fraction: float
    message: str
    log: tuple[str, ...]
    elapsed_s: float
    result: Any = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state != "running"


JobWork = Callable[["Job"], Awaitable[Any]]  # what a job runs; it reports through the job it is given


class JobOrder(NamedTuple):
    """A job asked for, as data: `run(console, settings, job)`, with `run` a module's function and
    `settings` plain values, so that a room's process can hand it to the room's engine host to run."""

    run: Callable[[Console, Any, Job], Awaitable[Any]]
    settings: Any

    def work(self, console: Console) -> JobWork:
        return lambda job: self.run(console, self.settings, job)


class RunningJob(Protocol):
    """A job as the pages follow it: a Job of this console's, or one running in a room's engine host."""

    kind: str
    number: int

    def status(self) -> JobStatus: ...


class Job:
    """One run of `work(job)`; the work reports progress and log lines through the job."""

    _numbers = itertools.count(1)

    def __init__(self, kind: str, work: JobWork):
        self.kind, self._work = kind, work
        self.number = next(self._numbers)  # tells a page following it from the job after it
        self._fraction, self._message = 0.0, "starting"
        self._log: deque[str] = deque(maxlen=_LOG_LINES)
        self._started = time.monotonic()
        self._ended: float | None = None
        self._state: JobState = "running"
        self._result: Any = None
        self._error: str | None = None
        self._conclusion = "done"
        self._task: asyncio.Task | None = None

    def report(self, fraction: float, message: str) -> None:
        """Move the progress bar; `message` says what is happening now (log lines go to `log`)."""
        self._fraction, self._message = min(max(fraction, 0.0), 1.0), message

    def log(self, line: str) -> None:
        self._log.append(line.rstrip())

    def conclude(self, message: str) -> None:
        """What the job's status says when its work returns (default "done"): e.g. that part of it failed."""
        self._conclusion = message

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"console job: {self.kind}")

    def cancel(self) -> None:
        if self._task and not self._task.done():
            self._task.cancel()

    async def wait(self) -> JobStatus:
        if self._task:
            await asyncio.shield(self._task)
        return self.status()

    def status(self) -> JobStatus:
        end = self._ended or time.monotonic()
        return JobStatus(
            self.kind,
            self._state,
            self._fraction,
            self._message,
            tuple(self._log),
            end - self._started,
            self._result,
            self._error,
        )

    async def _run(self) -> None:
        try:
            self._result = await self._work(self)
            self._state, self._fraction, self._message = "done", 1.0, self._conclusion
        except asyncio.CancelledError:
            self._state, self._message = "cancelled", "cancelled"
        except Exception as exc:  # noqa: BLE001 - a failed job is a status the UI shows, never a crash
            self._state, self._error = (
                "failed",
                str(exc) if isinstance(exc, JobFailed) else f"{type(exc).__name__}: {exc}",
            )
            self._message = f"failed: {self._error}"
        finally:
            self._ended = time.monotonic()
            self.log(self._message)


class JobSlot:
    """Holds the one job that may run; the last one stays readable after it ends."""

    def __init__(self) -> None:
        self.current: Job | None = None

    def start(self, job: Job) -> Job:
        if self.current and not self.current.status().finished:
            raise JobBusy(
                f"a {self.current.kind} job is running ({self.current.status().message}); "
                "wait for it or cancel it first"
            )
        self.current = job
        job.start()
        return job

    def refuse_while_running(self, what: str, job: Job | None = None) -> None:
        """EngineBusy while a job other than `job` holds the engine."""
        running = self.current
        if running and not running.status().finished and running is not job:
            raise EngineBusy(
                f"cannot {what} now: a {running.kind} job holds the engine ({running.status().message}); "
                f"wait for it, or Cancel it on its tab"
            )

    def cancel(self, kind: str) -> None:
        """Cancel the running job if it is of this kind (a page's Cancel names its own)."""
        if self.current and self.current.kind == kind:
            self.current.cancel()
