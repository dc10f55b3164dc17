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
