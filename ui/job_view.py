"""How a running job looks: a progress line and the log tail, shared by Compare and Quantize."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from console.jobs import JobStatus, RunningJob

_BAR_CELLS = 30


async def follow(job: RunningJob, interval_s: float = 0.5) -> AsyncIterator[JobStatus]:
    """The job's status every `interval_s` until it ends (the job goes on if the page closes)."""
    while not (status := job.status()).finished:
        yield status
        await asyncio.sleep(interval_s)
    yield status


def status_markdown(status: JobStatus | None) -> str:
    if status is None:
        return "No job has run yet."
    filled = round(status.fraction * _BAR_CELLS)
    bar = "█" * filled + "░" * (_BAR_CELLS - filled)
    minutes, seconds = divmod(int(status.elapsed_s), 60)
    head = {"running": "Running", "done": "Done", "failed": "**Failed**", "cancelled": "Cancelled"}[status.state]
    if status.state == "done" and status.message != "done":  # it ended, but not all of it went well
        head = "**Finished**"
    return f"{head} · `{bar}` {status.fraction:.0%} · {minutes}:{seconds:02d} · {status.message}"


_JOB_EFFECT = {
    "comparison": "it switches the engine preset by preset, so chats are slower or wait until it ends",
    "quantization": "the engine may be unloaded for it, so chats wait until it ends",
}


def switch_banner(progress) -> str:
    """A line for every page while the engine is being switched or restarted (a `SwitchProgress`)."""
    if progress is None:
        return ""
    return f"**{progress.describe().capitalize()}**: chats sent now wait for it, then run."


def job_banner(job: RunningJob | None) -> str:
    """A line for every page while a job holds the engine: what runs, how far, and what it does to chats."""
    if job is None or (status := job.status()).finished:
        return ""
    effect = _JOB_EFFECT.get(status.kind, "chats may be slower until it ends")
    return f"**A {status.kind} is running** ({status.message}, {status.fraction:.0%}): {effect}."


def job_summary(status: JobStatus) -> dict:
    """A job as the API tells it."""
    return {
        "kind": status.kind,
        "state": status.state,
        "progress": round(status.fraction, 3),
        "message": status.message,
    }


def log_tail(status: JobStatus | None, lines: int = 40) -> str:
    return "\n".join(status.log[-lines:]) if status else ""
