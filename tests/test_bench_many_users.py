"""bench/many_users.py's page clients against a real console in front of bench/paced_server.py."""

import asyncio
import contextlib

import httpx

from bench import many_users
from tests.conftest import start_console, start_paced_server, stop_process


def test_a_chat_that_never_completes_is_an_error_saying_how_far_it_got(tmp_path, monkeypatch):
    monkeypatch.setattr(many_users, "CHAT_DEADLINE_S", 5)

    async def one_stuck_chat(url: str) -> many_users.Outcome:
        async with httpx.AsyncClient(timeout=60) as http:
            page = many_users.read_page(url)
            session = await many_users._open_page(http, page)
            return await many_users._one_user(page, 0, 16, session)

    with contextlib.ExitStack() as started:
        # the server's first token comes after ten minutes: the chat has its question painted, then nothing
        server, base_url = start_paced_server(tmp_path / "server.log", "--ttft-ms", "600000")
        started.callback(stop_process, server)
        console, url = start_console(["--backend", "remote", "--base-url", base_url], tmp_path / "app.log")
        started.callback(stop_process, console)
        outcome = asyncio.run(one_stuck_chat(url))
    assert outcome.whole_s is None
    assert outcome.error is not None and outcome.error.startswith("no whole reply in 5 s: ")
    assert "its last paint (of " in outcome.error  # the question was painted: the console ran the chat


def test_gc_pauses_counts_each_processs_full_collections_inside_each_rounds_window(tmp_path):
    log = tmp_path / "gc.log"
    log.write_text(
        "11 room process\t100.5 0.300\n"  # round 1
        "12 room process\t101.0 0.200\n"  # round 1, another process of the same kind
        "13 engine host\t100.9 0.050\n"  # round 1
        "13 engine host\t150.0 0.400\n"  # between the rounds: not counted
        "11 room process\t200.1 0.100\n"  # round 2
    )
    rounds = [many_users.Round([], 2.0, 0.0, started_at=100.0), many_users.Round([], 1.0, 0.0, started_at=200.0)]
    rows = many_users.gc_pauses_table(log, [(256, 64), (256, 64)], rounds)[4:]
    assert rows == [
        "| 256 | 64 | 1 | engine host | 1 | 50 | 50 |",
        "| 256 | 64 | 1 | room process | 2 | 500 | 300 |",
        "| 256 | 64 | 2 | room process | 1 | 100 | 100 |",
    ]


def test_gc_watch_logs_a_console_processs_full_collections_with_its_kind(tmp_path):
    log = tmp_path / "gc.log"
    env = many_users.gc_watch_env(log)
    with contextlib.ExitStack() as started:
        server, base_url = start_paced_server(tmp_path / "server.log")
        started.callback(stop_process, server)
        console, _ = start_console(["--backend", "remote", "--base-url", base_url], tmp_path / "app.log", env=env)
        started.callback(stop_process, console)
        logged = [line.split("\t")[0].split(" ", 1) for line in log.read_text().splitlines()]
    assert [str(console.pid), "console"] in logged
