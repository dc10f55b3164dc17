"""What pages cost the console's memory: many opened and closed, and many held open at once.

    python -m bench.page_memory [--closed 1000] [--open 256] [--kept-s 5] [--out FILE]
    python -m bench.page_memory --kept-s 1000000     # closed pages kept, as Gradio alone keeps them

Starts the console in front of bench/paced_server.py (no model), with closed pages let go of after
`--kept-s` (LMDEPLOY_CONSOLE_CLOSED_PAGE_KEPT_S), then measures its resident memory (RSS):
- at the start, after 16 pages opened and closed (Gradio and the console warmed);
- after `--closed` pages, 250 at a time, each opened as a browser does (its load events, its heartbeat
  stream) and closed (the heartbeat stream ends), then as many again: memory the allocator keeps
  after a session is let go of is reused by the next, so where sessions are let go of the second
  round leaves the console where the first did, and where they are kept it grows again;
- with `--open` pages open at once, idle.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from bench.cli import emit
from bench.many_users import PageSession, read_page, run_load_events
from telemetry.machine import describe_machine

AT_ONCE = 250


async def _open_pages(url: str, count: int, http: httpx.AsyncClient) -> list:
    """`count` pages opened, each with its heartbeat stream held; returns the open streams."""
    page = read_page(url)

    async def one():
        session = PageSession(http, page)
        beat = await http.send(http.build_request("GET", f"{url}gradio_api/heartbeat/{session.session}"), stream=True)
        lines = beat.aiter_lines()  # held with the stream: dropped, it would close the stream
        await anext(lines)
        await run_load_events(session)
        return beat, lines

    return await asyncio.gather(*(one() for _ in range(count)))


async def _close(beats: list) -> None:
    await asyncio.gather(*(beat.aclose() for beat, _ in beats))


def _mib(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


async def measure(url: str, pid: int, closed: int, held_open: int, kept_s: float) -> list[tuple[str, float]]:
    console = psutil.Process(pid)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=900), limits=limits) as http:
        await _close(await _open_pages(url, 16, http))
        grace = min(kept_s, 30) + 3  # a grace longer than that (Gradio's way, nothing let go of) is not waited for
        await asyncio.sleep(grace)
        rows = [("start (16 pages opened and closed)", _mib(console))]
        for rounds in (1, 2):  # freed memory is not given back to the system, but reused: the second round shows it
            for done in range(0, closed, AT_ONCE):
                await _close(await _open_pages(url, min(AT_ONCE, closed - done), http))
            rows.append((f"{rounds * closed} pages opened and closed, before the last grace passed", _mib(console)))
            await asyncio.sleep(grace)
            rows.append((f"{rounds * closed} pages opened and closed, {grace:g} s later", _mib(console)))
        beats = await _open_pages(url, held_open, http)
        await asyncio.sleep(3)
        rows.append((f"{held_open} pages open and idle", _mib(console)))
        await _close(beats)
    return rows


def run(args) -> str:
    from tests.conftest import start_console, start_paced_server, stop_process

    folder = Path(tempfile.mkdtemp(prefix="page-memory-"))
    server, base_url = start_paced_server(folder / "paced-server.log")
    env = {"LMDEPLOY_CONSOLE_CLOSED_PAGE_KEPT_S": str(args.kept_s)}
    console, url = start_console(["--backend", "remote", "--base-url", base_url], folder / "console.log", env=env)
    try:
        started = time.perf_counter()
        rows = asyncio.run(measure(url, console.pid, args.closed, args.open, args.kept_s))
        took = time.perf_counter() - started
    finally:
        stop_process(console)
        stop_process(server)
    start = rows[0][1]
    lines = [
        f"The console's resident memory (RSS) as pages come and go; in front of bench/paced_server.py, "
        f"closed pages let go of after {args.kept_s:g} s; {took:.0f} s in all. {describe_machine()}",
        "",
        "| pages | console RSS (MiB) | against the start (MiB) |",
        "| --- | --- | --- |",
        *(f"| {what} | {mib:,.0f} | {mib - start:+,.0f} |" for what, mib in rows),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--closed", type=int, default=1000)
    parser.add_argument("--open", type=int, default=256)
    parser.add_argument("--kept-s", type=float, default=5.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    emit(run(args), args.out)


if __name__ == "__main__":
    main()
