"""Many people chatting through one console at once, as their pages do, beside the engine alone.

    python -m bench.many_users --paced --users 64 128 256 --tokens 64 256 [--processes 4] [--out FILE]
    python -m bench.many_users --paced --users 32 --tokens 64 --chromium     # the clients against Chromium pages
    python -m bench.many_users --paced --room-processes 8 --through-host --users 256 --tokens 64  # a room's host
    python -m bench.many_users --base-url http://127.0.0.1:23333/v1 --users 256 --tokens 64
    python -m bench.many_users --model /models/smollm2 --engine turbomind --users 64 128 256 --tokens 64 256

Where the replies come from, and what the console is set beside:
- `--paced`: bench/paced_server.py (no model) behind the console, and the server alone;
- `--base-url`: an OpenAI-compatible server (e.g. `lmdeploy serve api_server`) behind the console, and
  the server alone;
- `--model`: the console runs the model itself (`app.py --model ... --engine ...`, LMDeploy on the
  GPU); once it is stopped, a fresh process runs the raw `lmdeploy.pipeline` with the same engine
  config and sampling, every user's chat sent to it at once (`Pipeline.stream_infer`).

For each count of users and reply length:
- console: each user a page of its own, as a browser holds it: the page-load events, then `/chat`
  through Gradio's queue protocol (join, then the session's one event stream of diffs), and meanwhile
  the timers a page on the Chat tab runs; every user let go at once, spread over `--processes` client
  processes whose CPU time is reported beside the figures (so that the load generator is seen not to
  be the bottleneck), and the console's own CPU seconds over the same time;
- the engine alone: the same count of streaming chats sent straight to it.

Each row: errors, wall time, median TTFT (the console: its first paint carrying reply text), median
time to the whole reply, output tokens/s in all (tokens as the engine counted them), the median reply's
paints (pages only), CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar as http_cookiejar
import json
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.cli import emit
from bench.gradio_stream import PAGE_CHAT, carries_reply_text, chat_knobs
from telemetry.machine import describe_machine

GC_WATCH = Path(__file__).parent / "gc_watch"
ROOT = Path(__file__).parent.parent
QUESTION = "Question {index}: tell me about lighthouses."
# A whole reply takes seconds on a GPU and about a minute with 256 users on the 2-core CPU machine: a chat
# still open after this is stuck, and is counted as an error saying how far it got, so the round ends
CHAT_DEADLINE_S = 300


@dataclass(frozen=True)
class Outcome:
    """One user's chat: seconds from its start, or the error it met."""

    ttft_s: float | None = None
    whole_s: float | None = None
    tokens: int = 0
    error: str | None = None
    ended_at: float = 0.0  # time.time() when the reply was whole (or failed)
    paints: int | None = None  # the reply's paints the page received, where the client counts them
    # pages only: when the console answered the chat's queue join, when the question was painted (the chat
    # event running in the console), and the console's own TTFT under the reply (its request to the first token)
    joined_s: float | None = None
    question_s: float | None = None
    inside_ttft_s: float | None = None


@dataclass(frozen=True)
class Page:
    """What a client needs of the console's config to speak for its page."""

    url: str
    chat_fn: int
    chat_inputs: list[int]
    # the page-load events, each with the values a fresh page sends them (its inputs' first values)
    loads: list[tuple[int, list]]
    state_ids: set[int]
    # the timers ticking on the Chat tab: (event, seconds between ticks, inputs, where among the event's
    # outputs the timer itself is: a tick may set the next interval, as the console's header tick does)
    timers: list[tuple[int, float, int, int | None]]


def read_page(url: str) -> Page:
    config = httpx.get(f"{url.rstrip('/')}/config", timeout=60).json()
    dependencies = config["dependencies"]
    chat = next(d for d in dependencies if d.get("api_name") == PAGE_CHAT)
    states = {c["id"] for c in config["components"] if c["type"] == "state"}
    first_values = {c["id"]: (c.get("props") or {}).get("value") for c in config["components"]}
    loads = [
        (d["id"], [None if i in states else first_values.get(i) for i in d["inputs"]])
        for d in dependencies
        if any(trigger == "load" for _, trigger in d["targets"])
    ]
    active_timers = {
        c["id"]: c["props"]["value"] for c in config["components"] if c["type"] == "timer" and c["props"].get("active")
    }
    timers = [
        (
            d["id"],
            active_timers[target],
            len(d["inputs"]),
            d["outputs"].index(target) if target in d["outputs"] else None,
        )
        for d in dependencies
        for target, trigger in d["targets"]
        if trigger == "tick" and target in active_timers
    ]
    return Page(url.rstrip("/"), chat["id"], chat["inputs"], loads, states, timers)


class PageSession:
    """One page's session as a browser holds it: its events joined to Gradio's queue, and their messages
    read from the session's one event stream, which Gradio closes when no event is pending (the next
    event opens it again). An event's messages can come before the answer to its join: they wait."""

    def __init__(self, http: httpx.AsyncClient, page: Page):
        self.http, self.page = http, page
        self.session = uuid.uuid4().hex
        # a browser's own cookies (a room's router pins each browser with one); the shared client keeps none
        self._cookies: dict[str, str] = {}
        self._messages: dict[str, asyncio.Queue] = {}
        self._open: set[str] = set()  # joined, not completed
        self._completed: set[str] = set()  # completed, not yet read to the end by its caller
        self._reader: asyncio.Task | None = None
        self._failure = "closed"

    async def event(self, fn: int, data: list):
        """Join the queue for one event; yield (seconds, message) for each of its messages, the first a
        {"msg": "joined"} of this client's own once the console answered the join."""
        started = time.perf_counter()
        join = {"data": data, "fn_index": fn, "session_hash": self.session, "event_data": None, "trigger_id": None}
        response = await self.http.post(f"{self.page.url}/gradio_api/queue/join", json=join, headers=self._headers())
        self._cookies.update(response.cookies)
        response.raise_for_status()
        event_id = response.json()["event_id"]
        yield time.perf_counter() - started, {"msg": "joined"}
        if event_id not in self._completed:
            self._open.add(event_id)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read())
        try:
            while (message := await self._inbox(event_id).get()) is not None:
                yield time.perf_counter() - started, message
                if message.get("msg") == "process_completed":
                    return
            raise ValueError(f"the event stream ended before the event completed ({self._failure})")
        finally:
            self._messages.pop(event_id, None)
            self._completed.discard(event_id)

    async def run(self, fn: int, data: list) -> dict:
        """The event's last message."""
        messages = [message async for _, message in self.event(fn, data)]
        return messages[-1]

    def _headers(self) -> dict[str, str]:
        return (
            {"cookie": "; ".join(f"{name}={value}" for name, value in self._cookies.items())} if self._cookies else {}
        )

    def _inbox(self, event_id: str) -> asyncio.Queue:
        return self._messages.setdefault(event_id, asyncio.Queue())

    async def _read(self) -> None:
        try:
            while self._open:
                url = f"{self.page.url}/gradio_api/queue/data?session_hash={self.session}"
                async with self.http.stream("GET", url, headers=self._headers()) as stream:
                    self._cookies.update(stream.cookies)
                    async for line in stream.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        message = json.loads(line[5:])
                        if message.get("msg") == "close_stream":
                            break
                        if (event_id := message.get("event_id")) is None:
                            continue  # a heartbeat
                        self._inbox(event_id).put_nowait(message)
                        if message.get("msg") == "process_completed":
                            self._open.discard(event_id)
                            self._completed.add(event_id)
        except httpx.HTTPError as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
        finally:
            for event_id in self._open:  # a broken stream ends every event still waiting on it
                self._inbox(event_id).put_nowait(None)
            self._open.clear()


async def _open_page(http: httpx.AsyncClient, page: Page) -> PageSession:
    session = PageSession(http, page)
    await run_load_events(session)
    return session


async def run_load_events(session: PageSession) -> None:
    """The page's load events, as a browser runs them when it opens the page."""
    for fn, values in session.page.loads:
        completed = await session.run(fn, values)
        if not completed.get("success"):
            raise ValueError(f"the page's load event {fn} failed: {(completed.get('output') or {}).get('error')}")


async def _tick(session: PageSession, fn: int, every_s: float, inputs: int, timer_output: int | None) -> None:
    """One of the page's timers, ticking as long as the page is open, at the interval its ticks set."""
    while True:
        await asyncio.sleep(every_s)
        message = await session.run(fn, [None] * inputs)
        if timer_output is not None:  # the interval as a value, or as a component update
            update = ((message.get("output") or {}).get("data") or [])[timer_output]
            update = update.get("value") if isinstance(update, dict) else update
            every_s = update if isinstance(update, (int, float)) else every_s


async def _one_user(page: Page, index: int, tokens: int, session: PageSession) -> Outcome:
    reached = "its queue join not answered"
    try:
        values = iter((QUESTION.format(index=index), *chat_knobs_for(tokens)))
        data = [None if i in page.state_ids else next(values) for i in page.chat_inputs]
        ttft, joined, question, paints = None, None, None, 0
        async with asyncio.timeout(CHAT_DEADLINE_S):
            async for elapsed, message in session.event(page.chat_fn, data):
                if message.get("msg") == "joined":
                    joined = elapsed
                if message.get("msg") == "process_generating":
                    paints += 1
                    question = elapsed if question is None else question
                    if ttft is None and carries_reply_text(message):
                        ttft = elapsed
                reached = _how_far(message, paints, elapsed, reached)
                if message.get("msg") == "process_completed":
                    if not message.get("success"):
                        return Outcome(error=str((message.get("output") or {}).get("error")), ended_at=time.time())
                    output = message.get("output")
                    return Outcome(
                        ttft, elapsed, tokens_shown(output), ended_at=time.time(), paints=paints + 1,
                        joined_s=joined, question_s=question, inside_ttft_s=ttft_shown(output),
                    )  # fmt: skip
        return Outcome(error="the event stream ended without completing", ended_at=time.time())
    except TimeoutError:
        return Outcome(error=f"no whole reply in {CHAT_DEADLINE_S} s: {reached}", ended_at=time.time())
    except (httpx.HTTPError, ValueError) as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}", ended_at=time.time())


def _how_far(message: dict, paints: int, elapsed: float, reached: str) -> str:
    """Where a chat got, from its latest message (`paints` counting it): what a stuck chat's error says."""
    match message.get("msg"):
        case "joined":
            return "joined, no message about it since"
        case "estimation":
            return "waiting in the console's queue"
        case "process_starts":
            return "started, nothing painted"
        case "process_generating":
            return f"its last paint (of {paints}) {elapsed:.1f} s after its join was sent"
    return reached


def chat_knobs_for(tokens: int) -> tuple:
    from backends import GenerationParams

    return chat_knobs(GenerationParams(max_new_tokens=tokens))


def tokens_shown(output) -> int:
    """The token count under the finished reply ("... · 64 tokens · ..."), as the engine reported it."""
    counts = re.findall(r"(\d[\d,]*) tokens", json.dumps(output))
    return int(counts[-1].replace(",", "")) if counts else 0


def ttft_shown(output) -> float | None:
    """The TTFT under the finished reply ("TTFT 812 ms · ..."), in seconds: the console's own measure."""
    found = re.findall(r"TTFT (\d[\d,]*) ms", json.dumps(output))
    return int(found[-1].replace(",", "")) / 1000 if found else None


def _gradio_client_process(url: str, indexes: list[int], tokens: int, everyone_open) -> tuple[list[Outcome], float]:
    """A process of users, each a `gradio_client.Client` at its default settings (as a script would
    use the API), all asking at once once every process's clients are made."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in indexes]
    everyone_open.wait()
    cpu = time.process_time()

    def one(client, index: int) -> Outcome:
        started = time.perf_counter()
        try:
            chat, _ = client.predict(QUESTION.format(index=index), *chat_knobs_for(tokens), api_name="/chat")
        except Exception as exc:  # noqa: BLE001 - whatever a script would meet is that user's error, counted
            return Outcome(error=f"{type(exc).__name__}: {exc}"[:200], ended_at=time.time())
        return Outcome(None, time.perf_counter() - started, tokens_shown(chat), ended_at=time.time())

    with ThreadPoolExecutor(len(indexes)) as pool:
        outcomes = list(pool.map(one, clients, indexes))
    return outcomes, time.process_time() - cpu


def _client_process(page: Page, indexes: list[int], tokens: int, everyone_open) -> tuple[list[Outcome], float]:
    """A process of clients: its users' pages opened, then (once every process's pages are open:
    `everyone_open`, a barrier) their chats all at once; returns their outcomes and its CPU seconds."""

    async def run():
        # connections kept idle under the console's 5 s (uvicorn's): a browser resends a request its reused
        # connection lost as the server closed it; this client avoids the race instead
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=2.0)
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=900), limits=limits) as http:
            http.cookies.jar.set_policy(http_cookiejar.DefaultCookiePolicy(allowed_domains=[]))  # each page its own
            sessions = await asyncio.gather(*(_open_page(http, page) for _ in indexes))
            ticking = [asyncio.create_task(_tick(session, *timer)) for session in sessions for timer in page.timers]
            await asyncio.to_thread(everyone_open.wait)
            cpu = time.process_time()  # the chats' share of the clients' CPU, not the pages' opening
            outcomes = await asyncio.gather(
                *(_one_user(page, i, tokens, s) for i, s in zip(indexes, sessions, strict=True))
            )
            cpu = time.process_time() - cpu
            for task in ticking:  # the pages close
                task.cancel()
            await asyncio.gather(*ticking, return_exceptions=True)
            return outcomes, cpu

    outcomes, cpu = asyncio.run(run())
    return list(outcomes), cpu


@dataclass(frozen=True)
class Round:
    """One count of users with one reply length, on one layer."""

    outcomes: list[Outcome]
    wall_s: float
    clients_cpu_s: float
    console_cpu_s: float | None = None
    router_cpu_s: float | None = None  # a room's router, of console_cpu_s
    started_at: float = 0.0  # when every user was let go (time.time())


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            total += sum(process.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return total


def console_processes(console: subprocess.Popen, room: bool) -> list[psutil.Process]:
    """The processes whose CPU is the console's: in a room, the router's and its processes' (its console
    processes and, on an engine of its own, the engine host; not LMDeploy's worker, as for one process)."""
    process = psutil.Process(console.pid)
    return [process, *process.children()] if room else [process]


def spread_round(
    speak: Callable,
    where,
    users: int,
    tokens: int,
    processes: int,
    console: Sequence[psutil.Process] = (),
    profile: bool = False,
) -> Round:
    """`users` clients spread over `processes` processes, each running `speak(where, its users, tokens,
    everyone_open)`: every client ready (a page opened, a Client made), then every chat let go at once;
    timed from then. `console`: the processes whose CPU is counted as the console's; `profile`: the
    console is bench/profiled_console.py, told to profile the chats alone."""
    shares = [share for k in range(processes) if (share := list(range(users))[k::processes])]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(len(shares)) as pool:
        everyone_open = manager.Barrier(len(shares) + 1)
        pending = pool.starmap_async(speak, [(where, share, tokens, everyone_open) for share in shares])
        everyone_open.wait(timeout=1800)
        start_at = time.time()
        router = console[:1] if len(console) > 1 else ()  # a room: its router, then its processes
        console_cpu, router_cpu = cpu_seconds(console), cpu_seconds(router)
        if profile:
            console[0].send_signal(signal.SIGUSR1)
        results = pending.get()
        console_cpu, router_cpu = cpu_seconds(console) - console_cpu, cpu_seconds(router) - router_cpu
        if profile:
            console[0].send_signal(signal.SIGUSR2)
            time.sleep(5)  # the profile written
    outcomes = [outcome for share, _ in results for outcome in share]
    wall = max(o.ended_at for o in outcomes) - start_at
    return Round(
        outcomes,
        wall,
        sum(cpu for _, cpu in results),
        console_cpu if console else None,
        router_cpu if router else None,
        start_at,
    )


def _server_process(
    where: tuple[str, str], indexes: list[int], tokens: int, everyone_open
) -> tuple[list[Outcome], float]:
    """A process of clients of the OpenAI-compatible server itself (`where`: its base URL and model),
    their chats let go once every process is ready."""
    base_url, model = where

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

    async def run():
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=900), limits=limits) as http:
            await asyncio.to_thread(everyone_open.wait)
            cpu = time.process_time()
            outcomes = await asyncio.gather(*(one(http, i) for i in indexes))
            return list(outcomes), time.process_time() - cpu

    return asyncio.run(run())


def _raw_pipeline(conn, model: str, engine: str, rounds: list[tuple[int, int]]) -> None:
    """In a fresh process: LMDeploy's pipeline with the engine config the console builds for `--model`
    (LMDeploy's defaults) and the Chat tab's default sampling; every round's chats sent at once."""
    from lmdeploy import GenerationConfig, pipeline

    from backends import GenerationParams
    from backends.lmdeploy_config import EngineOptions, engine_config

    pipe = pipeline(model, backend_config=engine_config(EngineOptions(), engine), log_level="WARNING")
    knobs = GenerationParams()
    results = []
    for users, tokens in rounds:
        config = GenerationConfig(
            max_new_tokens=tokens, temperature=knobs.temperature, top_p=knobs.top_p, top_k=knobs.top_k
        )
        chats = [[{"role": "user", "content": QUESTION.format(index=i)}] for i in range(users)]
        pipe.infer(chats[:16], gen_config=GenerationConfig(max_new_tokens=8))  # the engine warmed, as the console's is
        cpu, started = time.process_time(), time.perf_counter()
        firsts, tokens_out = {}, {}
        for out in pipe.stream_infer(chats, gen_config=config):
            now = time.perf_counter()
            if out.text and out.index not in firsts:
                firsts[out.index] = now - started
            tokens_out[out.index] = out.generate_token_len
            if out.finish_reason is not None:
                tokens_out[out.index] = (out.generate_token_len, now - started, time.time())
        outcomes = [
            Outcome(firsts.get(i), ended[1], ended[0], ended_at=ended[2])
            if isinstance(ended := tokens_out.get(i), tuple)
            else Outcome(error="no end reached", ended_at=time.time())
            for i in range(users)
        ]
        results.append(Round(outcomes, time.perf_counter() - started, time.process_time() - cpu))
    conn.send(results)
    pipe.close()


def raw_pipeline_rounds(model: str, engine: str, rounds: list[tuple[int, int]]) -> list[Round]:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_raw_pipeline, args=(send, model, engine, rounds))
    process.start()
    send.close()
    try:
        return receive.recv()
    finally:
        process.join(timeout=120)
        if process.is_alive():
            process.kill()


COLUMNS = (
    "layer", "users", "reply tokens", "errors", "wall (s)", "median TTFT (ms)", "median join answered (ms)",
    "median question painted (ms)",
    "median TTFT inside the console (ms)", "median whole reply (ms)", "output tok/s in all", "paints a reply",
    "clients' CPU (s)", "console's CPU (s)",
)  # fmt: skip


def note_row(text: str) -> str:
    """A line of words under a round's row, in the table's second column."""
    return f"|  | {text} |" + "  |" * (len(COLUMNS) - 2)


def row(layer: str, users: int, tokens: int, measured: Round) -> str:
    done = [o for o in measured.outcomes if o.error is None]
    ttfts = [o.ttft_s for o in done if o.ttft_s is not None]
    joins = [o.joined_s for o in done if o.joined_s is not None]
    questions = [o.question_s for o in done if o.question_s is not None]
    inside = [o.inside_ttft_s for o in done if o.inside_ttft_s is not None]
    wholes = [o.whole_s for o in done]
    produced = sum(o.tokens for o in done)
    wall = measured.wall_s

    def ms(values):
        return f"{statistics.median(values) * 1000:,.0f}" if values else "n/a"

    console_cpu = "" if measured.console_cpu_s is None else f"{measured.console_cpu_s:.1f}"
    if measured.router_cpu_s is not None:
        console_cpu += f" (router {measured.router_cpu_s:.1f})"
    counted = [o.paints for o in done if o.paints is not None]
    paints = f"{statistics.median(counted):g}" if counted else ""
    return (
        f"| {layer} | {users} | {tokens} | {len(measured.outcomes) - len(done)} | {wall:.2f} | {ms(ttfts)} | "
        f"{ms(joins)} | {ms(questions)} | {ms(inside)} | {ms(wholes)} | {produced / wall if wall else 0:,.0f} | "
        f"{paints} | {measured.clients_cpu_s:.1f} | {console_cpu} |"
    )


def gc_watch_env(log: Path) -> dict[str, str]:
    """The environment in which every console process loads bench/gc_watch/sitecustomize.py and logs its full
    garbage collections to `log`."""
    search = [str(GC_WATCH), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(filter(None, search)), "CONSOLE_GC_LOG": str(log)}


def gc_pauses_table(log: Path, rounds: list[tuple[int, int]], measured: list[Round]) -> list[str]:
    """The console's full garbage collections that began while each round ran, by kind of process (each
    pauses every stream of its process)."""
    collections = []  # (role, began, seconds)
    for line in log.read_text().splitlines() if log.exists() else []:
        who, when = line.split("\t")
        began, seconds = map(float, when.split())
        collections.append((who.split(" ", 1)[1], began, seconds))
    lines = [
        "Full garbage collections in the console's processes while a round ran (`--gc-pauses`):",
        "",
        "| users | reply tokens | round | process | collections | their time (ms) | longest (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for place, ((users, tokens), round_) in enumerate(zip(rounds, measured, strict=True)):
        during = [c for c in collections if round_.started_at <= c[1] <= round_.started_at + round_.wall_s]
        by_role = {role: [s for r, _, s in during if r == role] for role in sorted({r for r, _, _ in during})}
        for role, pauses in by_role.items() or [("none", [])]:
            lines.append(
                f"| {users} | {tokens} | {place + 1} | {role} | {len(pauses)} | {sum(pauses) * 1000:,.0f} | "
                f"{max(pauses, default=0) * 1000:,.0f} |"
            )
    return lines


def run(args) -> str:
    from tests.conftest import start_console, start_paced_server, stop_process

    folder = Path(tempfile.mkdtemp(prefix="many-users-"))
    server = None
    if args.paced:
        server, base_url = start_paced_server(folder / "paced-server.log")
    else:
        base_url = args.base_url
    if args.model:
        behind, alone = f"{args.model} on LMDeploy ({args.engine}) in the console", "raw pipeline"
        options = ["--model", args.model, "--engine", args.engine]
    else:
        behind, alone = ("bench/paced_server.py (no model)" if args.paced else base_url), "server alone"
        options = ["--backend", "remote", "--base-url", base_url]
    if args.through_host:  # a preset names the engine: the room then runs it in its engine host
        preset = folder / "server.yaml"
        preset.write_text(f"backend: remote\nbase_url: {base_url}\n")
        options = ["--preset", str(preset)]
        behind += ", relayed by the room's engine host"
    room = args.room_processes > 1
    if room:
        options += ["--room-processes", str(args.room_processes)]
        behind += f", {args.room_processes} console processes behind one address"
    rounds = [(users, tokens) for tokens in args.tokens for users in args.users]
    watched = args.profile or args.trace  # the file the console writes what it saw of the last round to
    program = ("bench/profiled_console.py" if args.profile else "bench/traced_console.py",) if watched else ("app.py",)
    env = {"CONSOLE_PROFILE": str(Path(watched).resolve())} if watched else {}
    if args.gc_pauses:
        env |= gc_watch_env(folder / "gc.log")
    console, url = start_console(options, folder / "console.log", env=env, timeout_s=900, program=program)
    # by the round's place in `rounds`: a count given twice is two rounds
    through_console: list[Round] = []
    through_client: dict[int, Round] = {}
    through_chromium: dict[int, Round] = {}
    try:
        page = read_page(url)
        measured = console_processes(console, room)
        if args.warm_up:  # as the raw pipeline is before each round: 16 short chats, not counted
            spread_round(_client_process, page, 16, 8, 1)
        for place, (users, tokens) in enumerate(rounds):
            through_console.append(
                spread_round(_client_process, page, users, tokens, args.processes, measured, bool(watched))
            )
            if args.gradio_client:
                through_client[place] = spread_round(
                    _gradio_client_process, page.url, users, tokens, args.processes, measured
                )
            if args.chromium:
                from bench.browser_users import chromium_round

                through_chromium[place] = chromium_round(url, users, tokens, measured)
        if args.model:
            engine_processes = psutil.Process(console.pid).children(recursive=True)
            stop_process(console)  # the GPU is the raw pipeline's alone: the console's engine processes gone too
            psutil.wait_procs(engine_processes, timeout=120)
            by_itself = raw_pipeline_rounds(args.model, args.engine, rounds)
        else:
            model = httpx.get(f"{base_url}/models", timeout=30).json()["data"][0]["id"]
            by_itself = [spread_round(_server_process, (base_url, model), *r, args.processes) for r in rounds]
    finally:
        stop_process(console)
        if server:
            stop_process(server)
    lines = [
        f"Console with {behind}; {args.processes} client processes; the pages' timers ticking "
        f"({', '.join(f'from every {timer[1]:g} s' for timer in page.timers) or 'none'}). {describe_machine()}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + " --- |" * len(COLUMNS),
    ]
    for place, (users, tokens) in enumerate(rounds):
        lines.append(row("console", users, tokens, through_console[place]))
        if (paged := through_chromium.get(place)) is not None:
            lines.append(row("console, Chromium pages", users, tokens, paged))
        if (scripted := through_client.get(place)) is not None:
            lines.append(row("console, gradio_client", users, tokens, scripted))
            errors = sorted({o.error for o in scripted.outcomes if o.error})[:3]
            if errors:
                lines.append(note_row(f"gradio_client's first errors: {'; '.join(errors)}"))
        lines.append(row(alone, users, tokens, by_itself[place]))
        errors = sorted({o.error for o in through_console[place].outcomes if o.error})[:3]
        if errors:
            lines.append(note_row(f"first errors: {'; '.join(errors)}"))
    if args.gc_pauses:
        lines += ["", *gc_pauses_table(folder / "gc.log", rounds, through_console)]
    lines += [
        "",
        "Wall: from the moment every user was let go (every page already open) to the last whole reply. "
        "Clients' CPU: the client processes' CPU seconds over that time (for Chromium pages: the browser's "
        "processes'; for the raw pipeline: its process's, engine threads included); console's CPU: the console "
        "process's over the same time (in a room: its router's and its processes' together, the router's in brackets). Paints a reply: the median reply's paints as its page received them, "
        "its last (the finished reply) included. Where a page's TTFT goes (pages only): join answered, when "
        "the console answered the chat's queue join; question painted, when its first paint came (the chat "
        "event running in the console, its request sent to the engine); TTFT inside the console, the console's "
        "own figure under the reply, from that request to the engine's first token as the console read it; the "
        "rest is painting that token and delivering the paint.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--paced", action="store_true", help="start bench/paced_server.py (no model) behind the console")
    where.add_argument("--base-url", help="an OpenAI-compatible server, e.g. lmdeploy serve api_server's /v1")
    where.add_argument("--model", help="a model folder the console runs itself on LMDeploy, beside the raw pipeline")
    parser.add_argument("--engine", choices=["turbomind", "pytorch"], default="turbomind", help="with --model")
    parser.add_argument("--users", type=int, nargs="+", default=[64], help="a count given twice is two rounds")
    parser.add_argument("--tokens", type=int, nargs="+", default=[64])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument(
        "--room-processes",
        type=int,
        default=1,
        help="the console started with --room-processes N (its CPU then the router's and its processes' "
        "together; with --model, the room's processes share the engine in the room's engine host)",
    )
    parser.add_argument(
        "--through-host",
        action="store_true",
        help="with --paced or --base-url and --room-processes: the room's engine host reaches the server and "
        "relays its replies to the room's processes, as with a room on its own engine, instead of each process "
        "reaching the server itself (the host's path measured without a GPU)",
    )
    parser.add_argument(
        "--gc-pauses",
        action="store_true",
        help="the full garbage collections in the console's processes while each round ran, as a table",
    )
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help="16 short chats through the console before its first round, as the raw pipeline has before each",
    )
    parser.add_argument("--out")
    parser.add_argument(
        "--gradio-client",
        action="store_true",
        help="also each round with every user a gradio_client.Client at its default settings (no TTFT: it "
        "hands over the whole reply)",
    )
    parser.add_argument(
        "--chromium",
        action="store_true",
        help="with --paced: also each round with every user a Chromium page (bench/browser_users.py), to check "
        "the protocol clients against the real thing",
    )
    watch = parser.add_mutually_exclusive_group()
    watch.add_argument(
        "--profile",
        help="run the console under a CPU profiler (bench/profiled_console.py) and write where its time went "
        "in the last round to this file; its figures are then the profiler's, not the console's",
    )
    watch.add_argument(
        "--trace",
        help="run the console with each chat's steps timed (bench/traced_console.py: the join's arrival, "
        "Gradio's queue, the chat's code, its first paint written) and write them for the last round to this file",
    )
    args = parser.parse_args()
    if args.room_processes > 1 and (args.profile or args.trace):
        parser.error("--room-processes cannot be profiled or traced: --profile and --trace watch one process")
    if args.through_host and (args.model or args.room_processes < 2):
        parser.error("--through-host needs --paced or --base-url, and --room-processes of 2 or more")
    if args.chromium and not args.paced:
        parser.error("--chromium needs --paced: a page tells the reply from its question by the paced server's words")
    emit(run(args), args.out)


if __name__ == "__main__":
    main()
