"""Many people chatting through one console at once, as their pages do, beside the server alone.

    python -m bench.many_users --paced --users 64 128 256 --tokens 64 256 [--processes 4] [--out FILE]
    python -m bench.many_users --base-url http://127.0.0.1:23333/v1 --users 256 --tokens 64

Starts the console in front of an OpenAI-compatible server (`--paced`: bench/paced_server.py, no model;
`--base-url`: e.g. `lmdeploy serve api_server`), then for each count of users and reply length, in
the same run:

- console: each user a page of its own: the page-load events, then `/chat` through Gradio's queue
  protocol as the page speaks it (join, then the event stream of diffs), every user started at once,
  the users spread over `--processes` client processes whose CPU time is reported beside the figures
  (so that the load generator is seen not to be the bottleneck);
- server alone: the same count of streaming chat completions sent straight to the server.

Each row: errors, wall time, median TTFT (the console: its first paint carrying reply text), median
time to the whole reply, output tokens/s in all (tokens as the server counted them), and the clients'
CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.cli import emit
from bench.gradio_stream import carries_reply_text, chat_knobs
from telemetry.machine import describe_machine

QUESTION = "Question {index}: tell me about lighthouses."


@dataclass(frozen=True)
class Outcome:
    """One user's chat: seconds from its start, or the error it met."""

    ttft_s: float | None = None
    whole_s: float | None = None
    tokens: int = 0
    error: str | None = None
    ended_at: float = 0.0  # time.time() when the reply was whole (or failed)


@dataclass(frozen=True)
class Page:
    """What a client needs of the console's config to speak for its page."""

    url: str
    chat_fn: int
    chat_inputs: list[int]
    load_fns: list[int]
    state_ids: set[int]


def read_page(url: str) -> Page:
    config = httpx.get(f"{url.rstrip('/')}/config", timeout=60).json()
    dependencies = config["dependencies"]
    chat = next(d for d in dependencies if d.get("api_name") == "chat")
    loads = [d["id"] for d in dependencies if any(trigger == "load" for _, trigger in d["targets"])]
    states = {c["id"] for c in config["components"] if c["type"] == "state"}
    return Page(url.rstrip("/"), chat["id"], chat["inputs"], loads, states)


async def _event(http: httpx.AsyncClient, page: Page, fn: int, data: list, session: str):
    """Join the queue for one event; yield (seconds, message) for each message of its stream."""
    started = time.perf_counter()
    join = {"data": data, "fn_index": fn, "session_hash": session, "event_data": None, "trigger_id": None}
    (await http.post(f"{page.url}/gradio_api/queue/join", json=join)).raise_for_status()
    async with http.stream("GET", f"{page.url}/gradio_api/queue/data?session_hash={session}") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                yield time.perf_counter() - started, message
                if message.get("msg") == "process_completed":
                    return


async def _open_page(http: httpx.AsyncClient, page: Page) -> str:
    """The page's load events, as a browser runs them when it opens the page; returns its session."""
    session = uuid.uuid4().hex
    for fn in page.load_fns:
        async for _ in _event(http, page, fn, [], session):
            pass
    return session


async def _one_user(http: httpx.AsyncClient, page: Page, index: int, tokens: int, session: str) -> Outcome:
    try:
        values = iter((QUESTION.format(index=index), *chat_knobs_for(tokens)))
        data = [None if i in page.state_ids else next(values) for i in page.chat_inputs]
        ttft = None
        async for elapsed, message in _event(http, page, page.chat_fn, data, session):
            if message.get("msg") == "process_generating" and ttft is None and carries_reply_text(message):
                ttft = elapsed
            if message.get("msg") == "process_completed":
                if not message.get("success"):
                    return Outcome(error=str((message.get("output") or {}).get("error")), ended_at=time.time())
                return Outcome(ttft, elapsed, _reply_tokens(message), ended_at=time.time())
        return Outcome(error="the event stream ended without completing", ended_at=time.time())
    except (httpx.HTTPError, ValueError) as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}", ended_at=time.time())


def chat_knobs_for(tokens: int) -> tuple:
    from backends import GenerationParams

    return chat_knobs(GenerationParams(max_new_tokens=tokens))


def _reply_tokens(message: dict) -> int:
    """The token count under the finished reply ("... · 64 tokens · ..."), as the engine reported it."""
    import re

    text = json.dumps(message.get("output"))
    counts = re.findall(r"(\d[\d,]*) tokens", text)
    return int(counts[-1].replace(",", "")) if counts else 0


def _client_process(page: Page, indexes: list[int], tokens: int, start_at: float) -> tuple[list[Outcome], float]:
    """A process of clients: its users, all at once; returns their outcomes and its CPU seconds."""

    async def run():
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=900), limits=limits) as http:
            sessions = await asyncio.gather(*(_open_page(http, page) for _ in indexes))
            await asyncio.sleep(max(0.0, start_at - time.time()))
            cpu = time.process_time()  # the chats' share of the clients' CPU, not the pages' opening
            outcomes = await asyncio.gather(
                *(_one_user(http, page, i, tokens, s) for i, s in zip(indexes, sessions, strict=True))
            )
            return outcomes, time.process_time() - cpu

    outcomes, cpu = asyncio.run(run())
    return list(outcomes), cpu


def console_round(page: Page, users: int, tokens: int, processes: int) -> tuple[list[Outcome], float, float]:
    start_at = time.time() + 3.0 + users / 50  # every page open before any chat starts
    shares = [list(range(users))[k::processes] for k in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(_client_process, [(page, share, tokens, start_at) for share in shares if share])
    outcomes = [outcome for share, _ in results for outcome in share]
    return outcomes, start_at, sum(cpu for _, cpu in results)


async def _server_alone(base_url: str, model: str, users: int, tokens: int) -> tuple[list[Outcome], float]:
    async def one(http: httpx.AsyncClient, index: int) -> Outcome:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": QUESTION.format(index=index)}],
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started, ttft, used = time.perf_counter(), None, 0
        try:
            async with http.stream("POST", f"{base_url}/chat/completions", json=body) as stream:
                async for line in stream.aiter_lines():
                    if not line.startswith("data:") or line.strip() == "data: [DONE]":
                        continue
                    chunk = json.loads(line[5:])
                    if ttft is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                        ttft = time.perf_counter() - started
                    used = (chunk.get("usage") or {}).get("completion_tokens", used)
        except (httpx.HTTPError, ValueError) as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}", ended_at=time.time())
        return Outcome(ttft, time.perf_counter() - started, used, ended_at=time.time())

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    cpu = time.process_time()
    async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=900), limits=limits) as http:
        outcomes = await asyncio.gather(*(one(http, i) for i in range(users)))
    return list(outcomes), time.process_time() - cpu


def row(layer: str, users: int, tokens: int, outcomes: list[Outcome], wall_s: float, cpu_s: float) -> str:
    done = [o for o in outcomes if o.error is None]
    ttfts = [o.ttft_s for o in done if o.ttft_s is not None]
    wholes = [o.whole_s for o in done]
    produced = sum(o.tokens for o in done)

    def ms(values):
        return f"{statistics.median(values) * 1000:,.0f}" if values else "n/a"

    return (
        f"| {layer} | {users} | {tokens} | {len(outcomes) - len(done)} | {wall_s:.2f} | {ms(ttfts)} | {ms(wholes)} | "
        f"{produced / wall_s if wall_s else 0:,.0f} | {cpu_s:.1f} |"
    )


def run(args) -> str:
    from tests.conftest import start_console, start_paced_server, stop_process

    folder = Path(tempfile.mkdtemp(prefix="many-users-"))
    server = None
    if args.paced:
        server, base_url = start_paced_server(folder / "paced-server.log")
    else:
        base_url = args.base_url
    model = httpx.get(f"{base_url}/models", timeout=30).json()["data"][0]["id"]
    console, url = start_console(["--backend", "remote", "--base-url", base_url], folder / "console.log")
    lines = [
        f"Console in front of {'bench/paced_server.py (no model)' if args.paced else base_url}; "
        f"{args.processes} client processes. {describe_machine()}",
        "",
        "| layer | users | reply tokens | errors | wall (s) | median TTFT (ms) | median whole reply (ms) "
        "| output tok/s in all | clients' CPU (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    try:
        page = read_page(url)
        for tokens in args.tokens:
            for users in args.users:
                outcomes, start_at, cpu = console_round(page, users, tokens, args.processes)
                lines.append(row("console", users, tokens, outcomes, max(o.ended_at for o in outcomes) - start_at, cpu))
                started = time.time()
                alone, cpu = asyncio.run(_server_alone(base_url, model, users, tokens))
                lines.append(row("server alone", users, tokens, alone, max(o.ended_at for o in alone) - started, cpu))
                errors = sorted({o.error for o in outcomes if o.error})[:3]
                if errors:
                    lines.append(f"|  | first errors: {'; '.join(errors)} |  |  |  |  |  |  |  |")
    finally:
        stop_process(console)
        if server:
            stop_process(server)
    lines += [
        "",
        "Wall: from the moment every user was let go (every page already open) to the last whole reply. "
        "Clients' CPU: the client processes' CPU seconds over that time.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--paced", action="store_true", help="start bench/paced_server.py (no model) behind the console")
    where.add_argument("--base-url", help="an OpenAI-compatible server, e.g. lmdeploy serve api_server's /v1")
    parser.add_argument("--users", type=int, nargs="+", default=[64])
    parser.add_argument("--tokens", type=int, nargs="+", default=[64])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--out")
    args = parser.parse_args()
    emit(run(args), args.out)


if __name__ == "__main__":
    main()
