"""How a chat's cost grows with its length: TTFT against the server alone, and the console's CPU per
repaint, at turn 1, 10 and 50 of a conversation (turn 50 within 1.3x of turn 1).

    python -m bench.chat_length                                   # transformers serve, SmolLM2, CPU
    python -m bench.chat_length --server paced --max-new-tokens 1024  # no model: a reply at a GPU's pace
    python -m bench.chat_length --base-url http://gpu-box:23333/v1  # a running api_server

The console runs with the remote backend in front of the server (`app.py --backend remote`), so its
process does the console's work alone and its CPU time is the console's. A conversation a turn count,
each on a page of its own, is first brought to that many turns through `/chat` (short replies) and
regenerated once (not counted: a warm-up); then, round after round, `/regenerate` answers each
conversation's last message in turn (the history keeps its length), read through Gradio's SSE stream as
a page does, and between those the same messages go to the server directly (the openai client) for its
own TTFT. The rounds interleave the turn counts, so a console that slows as it serves more events, or a
machine that gets busier, weighs on every turn count alike (the table's last line says how round 1 and
the last round compare). CPU per repaint: the console process's CPU time (its whole-process CPU clock,
to the nanosecond) from the first paint with reply text to the last, divided by the paints in between.
The wait for the first token is left out of it: it grows with the prefill of a longer history, and while
it lasts the console paints nothing. The console's idle background (Gradio's queue loop, the VRAM
sampler: measured first, with nothing asked of it) runs on while it paints, and a slower decode (a
longer history on this CPU) spreads the same paints over more of it; the table gives CPU per paint as
measured and above that background.
`--server paced` puts `bench.paced_server` behind the console instead of a model: every reply streams at
the same pace at any length of history, so the console's own cost is all that moves (its TTFT column is
then the console's, not a server's).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from openai import OpenAI

from backends import GenerationParams
from bench.cli import emit
from bench.gradio_stream import PAGE_CHAT, GradioEndpoint, carries_reply_text, chat_knobs
from telemetry.machine import describe_machine

TARGET_RATIO = 1.3


@dataclass
class Turn:
    turns: int
    console_ttft_s: float
    raw_ttft_s: float
    cpu_per_paint_ms: float
    above_idle_per_paint_ms: float
    cpu_per_reply_ms: float
    paints: float


@dataclass
class Regeneration:
    ttft_s: float
    streamed_paints: int  # the paints after the first one with reply text
    streaming_s: float  # from the first paint with reply text to the last
    streaming_cpu_s: float  # the console's CPU time over those paints
    reply_cpu_s: float  # ... over the whole reply, the wait for the first token included

    @property
    def cpu_per_paint_ms(self) -> float:
        return self.streaming_cpu_s / self.streamed_paints * 1000

    def above_idle_per_paint_ms(self, idle_ms_per_s: float) -> float:
        return self.cpu_per_paint_ms - idle_ms_per_s * self.streaming_s / self.streamed_paints


class ConsoleChat:
    """One conversation with the running console, through `/chat` and `/regenerate`, as one page."""

    def __init__(self, url: str, pid: int, max_new_tokens: int):
        self._chat, self._regenerate = GradioEndpoint(url, PAGE_CHAT), GradioEndpoint(url, "regenerate")
        self._session, self._pid = uuid.uuid4().hex, pid
        self._chat.open_page(self._session)
        self._params = GenerationParams(temperature=0.0, top_p=1.0, top_k=40, max_new_tokens=max_new_tokens)
        self.messages: list[dict] = []

    def say(self, text: str, max_new_tokens: int) -> None:
        knobs = chat_knobs(dataclasses.replace(self._params, max_new_tokens=max_new_tokens))
        *_, (_, final) = self._chat.stream(text, *knobs, session=self._session)
        self.messages = [
            {"role": m["role"], "content": _plain(m["content"][0]["text"])} for m in final["output"]["data"][0]
        ]

    def regenerate(self) -> Regeneration:
        """Regenerate the last reply, timing its first text and the console's CPU time meanwhile."""
        cpu_before, first, cpu_at_first, paints, last = _cpu_seconds(self._pid), None, None, 0, 0.0
        for elapsed, message in self._regenerate.stream(*chat_knobs(self._params), session=self._session):
            if first is None and carries_reply_text(message):
                first, cpu_at_first = elapsed, _cpu_seconds(self._pid)
            elif first is not None:
                paints, last = paints + 1, elapsed
        cpu_after = _cpu_seconds(self._pid)
        return Regeneration(first, paints, last - first, cpu_after - cpu_at_first, cpu_after - cpu_before)


def raw_ttft(client: OpenAI, model: str, messages: list[dict], max_new_tokens: int) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_new_tokens, temperature=0, stream=True
    )
    with stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                return time.perf_counter() - started
    return float("nan")


def idle_cpu_ms_per_s(pid: int, seconds: float = 10) -> float:
    """The console's CPU time per second while nothing is asked of it."""
    before = _cpu_seconds(pid)
    time.sleep(seconds)
    return (_cpu_seconds(pid) - before) / seconds * 1000


def measure(args, url: str, pid: int, base_url: str, idle_ms_per_s: float) -> tuple[list[Turn], str]:
    """Each turn count's figures (medians over rounds), and how the rounds drifted."""
    client = OpenAI(base_url=base_url, api_key=os.environ.get("LMDEPLOY_CONSOLE_API_KEY") or "none")
    model = client.models.list().data[0].id
    conversations = {turns: ConsoleChat(url, pid, args.max_new_tokens) for turns in args.turns}
    for turns, conversation in conversations.items():
        for said in range(turns):
            conversation.say(f"Tell me one fact about the number {said + 1}.", args.history_tokens)
        conversation.regenerate()  # not counted: the console's first regeneration warms up what it imports
    samples: dict[int, list[Regeneration]] = {turns: [] for turns in args.turns}
    raws: dict[int, list[float]] = {turns: [] for turns in args.turns}
    for _ in range(args.repeats):
        for turns, conversation in conversations.items():
            samples[turns].append(conversation.regenerate())
            history = conversation.messages[:-1]  # what /regenerate sends: all but the reply it replaces
            raws[turns].append(raw_ttft(client, model, history, args.max_new_tokens))
    results = [
        Turn(
            turns,
            statistics.median(s.ttft_s for s in samples[turns]),
            statistics.median(raws[turns]),
            statistics.median(s.cpu_per_paint_ms for s in samples[turns]),
            statistics.median(s.above_idle_per_paint_ms(idle_ms_per_s) for s in samples[turns]),
            statistics.median(s.reply_cpu_s * 1000 for s in samples[turns]),
            statistics.median(s.streamed_paints for s in samples[turns]),
        )
        for turns in args.turns
    ]
    return results, _drift(samples)


def _drift(samples: dict[int, list[Regeneration]]) -> str:
    """CPU per paint in the first round and the last, each turn count: the console's own drift."""
    cells = [
        f"turn {turns} {s[0].cpu_per_paint_ms:.2f} -> {s[-1].cpu_per_paint_ms:.2f}" for turns, s in samples.items()
    ]
    return "CPU per paint (ms), round 1 -> last round: " + ", ".join(cells) + "."


def table(results: list[Turn], drift: str, idle_ms_per_s: float, args) -> str:
    first = results[0]
    lines = [
        describe_machine(),
        "",
        f"Replies of {args.max_new_tokens} tokens, {args.repeats} rounds of one regeneration per turn count, medians; "
        f"{args.placement}; the server: {args.base_url or args.server}. The console idle: {idle_ms_per_s:.1f} ms "
        "of CPU a second.",
        "",
        "| turn | console TTFT (ms) | server alone (ms) | console - server (ms) | paints after the first text | "
        "console CPU per reply, wait included (ms) | console CPU per paint (ms) | x turn 1 | "
        "above the idle background (ms) | x turn 1 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.turns} | {r.console_ttft_s * 1000:.0f} | {r.raw_ttft_s * 1000:.0f} | "
            f"{(r.console_ttft_s - r.raw_ttft_s) * 1000:+.0f} | {r.paints:.0f} | {r.cpu_per_reply_ms:.0f} | "
            f"{r.cpu_per_paint_ms:.2f} | {r.cpu_per_paint_ms / first.cpu_per_paint_ms:.2f}x | "
            f"{r.above_idle_per_paint_ms:.2f} | {r.above_idle_per_paint_ms / first.above_idle_per_paint_ms:.2f}x |"
        )
    last = results[-1]
    measured = last.cpu_per_paint_ms / first.cpu_per_paint_ms
    own = last.above_idle_per_paint_ms / first.above_idle_per_paint_ms
    verdict = "met" if own <= TARGET_RATIO else "not met"
    lines += [
        "",
        f"Turn {last.turns} against turn {first.turns}: CPU per paint {measured:.2f}x as measured, {own:.2f}x above "
        f"the idle background (target <= {TARGET_RATIO}x: {verdict}). {drift}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="an OpenAI-compatible server; default: start --server here")
    parser.add_argument(
        "--server", choices=["transformers", "paced"], default="transformers", help="what to start without --base-url"
    )
    parser.add_argument("--turns", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--repeats", type=int, default=5, help="rounds: one regeneration of each conversation a round")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="the measured replies")
    parser.add_argument("--history-tokens", type=int, default=48, help="the replies that build the history")
    parser.add_argument("--out")
    args = parser.parse_args()
    args.placement = "the server elsewhere"
    from tests.conftest import start_console, start_openai_server, start_paced_server, stop_process

    folder = Path(tempfile.mkdtemp(prefix="chat-length-"))
    server = None
    if args.base_url:
        base_url = args.base_url
    elif args.server == "paced":
        server, base_url = start_paced_server(folder / "paced-server.log")
    else:
        from backends.embedded_model import embedded_hf_folder

        server, base_url = start_openai_server(embedded_hf_folder(), folder, "--list-model")
    try:
        app, url = start_console(["--backend", "remote", "--base-url", base_url], folder / "console.log")
        try:
            if server:
                args.placement = _separate(app.pid, server.pid)
            idle = idle_cpu_ms_per_s(app.pid)
            results, drift = measure(args, url, app.pid, base_url, idle)
            emit(table(results, drift, idle, args), args.out)
        finally:
            stop_process(app)
    finally:
        if server:
            stop_process(server)


def _separate(console_pid: int, server_pid: int) -> str:
    """The console on a core of its own, the server on the rest: a server decoding a long history on the
    same cores would otherwise slow the console's paints through the caches it shares, and the turn-50
    figure would measure the server. Says where each runs."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return "console and server share the only core"
    for pid, placed in ((console_pid, {cores[-1]}), (server_pid, set(cores[:-1]))):
        for thread in Path(f"/proc/{pid}/task").iterdir():  # every thread: the affinity is a thread's own
            os.sched_setaffinity(int(thread.name), placed)
    return f"the console on core {cores[-1]}, the server on cores {cores[0]}-{cores[-2]}"


def _cpu_seconds(pid: int) -> float:
    """A process's CPU time, all its threads (those ended too), to the nanosecond: Linux's CPU clock of
    that process, the id `clock_getcpuclockid(pid)` gives (/proc's figure counts in 10 ms ticks, a
    sizeable part of the ~200 ms a reply's paints cost)."""
    return time.clock_gettime(((~pid) << 3) | 2)  # CPUCLOCK_SCHED of process `pid`


def _plain(text: str) -> str:
    """A painted reply without its stats line (what the model said)."""
    return re.sub(r"\n\n<sub>.*</sub>$", "", text, flags=re.DOTALL)


if __name__ == "__main__":
    main()
