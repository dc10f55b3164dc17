"""What a page's opening costs the console's CPU: the page itself and the events it runs as it opens.

    python -m bench.page_opening [--pages 128] [--rounds 3] [--beside DIR] [--out FILE]

Starts the console in front of bench/paced_server.py (no model) and, in each round, opens `--pages` pages
at once as a browser does, in two parts measured apart: the page (`GET /`, the HTML with the app's config
in it), then, on pages already fetched, the events Gradio runs as a page opens (its load events, each
joined to the queue and read from the session's event stream, as bench.many_users opens its pages); and the
app's config as a gradio_client reads it when it connects (`GET /config`). Each
row: the console process's CPU seconds over that part, a page's share of them, and the wall time. A class
opening the link costs the console about (page + events) x its size, on the one core a console process has.
`--beside DIR`: another checkout of the console (e.g. a git worktree of an earlier commit) started too and
measured in turn, round by round, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar as http_cookiejar
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psutil

from bench.cli import emit
from bench.many_users import Page, PageSession, read_page, run_load_events
from telemetry.machine import describe_machine


async def _part(console: psutil.Process, pages: int, one: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """`pages` of `one` at once: the console's CPU seconds and the wall seconds they took."""
    cpu, started = sum(console.cpu_times()[:2]), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(pages)))
    return sum(console.cpu_times()[:2]) - cpu, time.perf_counter() - started


async def measure(consoles: dict[str, tuple[Page, psutil.Process]], pages: int, rounds: int) -> list[str]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120), limits=limits) as http:
        http.cookies.jar.set_policy(http_cookiejar.DefaultCookiePolicy(allowed_domains=[]))  # each page its own
        rows = []
        for number in range(rounds + 1):  # round 0 warms Gradio and the console, and is not shown
            for name, (page, process) in consoles.items():

                async def fetch_page(page=page):
                    (await http.get(page.url + "/")).raise_for_status()

                async def fetch_config(page=page):
                    (await http.get(page.url + "/config")).raise_for_status()

                async def open_events(page=page):
                    await run_load_events(PageSession(http, page))

                for part, one in (
                    ("the page (GET /)", fetch_page),
                    ("its opening events", open_events),
                    ("a gradio_client's config (GET /config)", fetch_config),
                ):
                    cpu, wall = await _part(process, pages if number else 8, one)
                    if number:
                        rows.append(
                            f"| {number} | {name} | {part} | {pages} | {wall:.2f} | {cpu:.2f} | "
                            f"{cpu / pages * 1000:.1f} |"
                        )
        return rows


def run(args) -> str:
    from tests.conftest import ROOT, start_console, start_paced_server, stop_process

    folder = Path(tempfile.mkdtemp(prefix="page-opening-"))
    server, base_url = start_paced_server(folder / "paced-server.log")
    roots = {"this checkout": ROOT, **({args.beside: Path(args.beside)} if args.beside else {})}
    started = []
    try:
        consoles = {}
        for index, (name, root) in enumerate(roots.items()):
            options = ["--backend", "remote", "--base-url", base_url]
            process, url = start_console(options, folder / f"console-{index}.log", root=root)
            started.append(process)
            consoles[name] = (read_page(url), psutil.Process(process.pid))
        rows = asyncio.run(measure(consoles, args.pages, args.rounds))
    finally:
        for process in started:
            stop_process(process)
        stop_process(server)
    events = ", ".join(f"{name}: {len(page.loads)}" for name, (page, _) in consoles.items())
    return "\n".join(
        [
            f"A page's opening, the console in front of bench/paced_server.py; opening events a page: {events}. "
            f"{describe_machine()}",
            "",
            "| round | console | part | pages at once | wall (s) | console's CPU (s) | console's CPU a page (ms) |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--beside", help="another checkout of the console, measured in turn in the same run")
    parser.add_argument("--out")
    args = parser.parse_args()
    emit(run(args), args.out)


if __name__ == "__main__":
    main()
