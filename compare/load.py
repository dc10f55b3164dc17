"""A load test as LMDeploy's `profile_throughput` runs one: N requests with a fixed prompt and
output length, at most C in flight, until all are done; throughput, TTFT percentiles, and what
the engine's scheduler saw (requests running and waiting, KV cache in use) at its busiest.

The point it makes visible: a quantized KV cache holds more requests at once, so more finish
per second once the cache is what limits the batch. A sweep runs the load at rising concurrency, as
vLLM's `bench serve` sweeps and GuideLLM do: throughput against latency, tokens/s per user against
tokens/s in all, and goodput (requests/s that meet a latency target) at each point.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from backends import BackendError, ChatRequest, GenerationParams, TextDelta, Usage

from .prompts import PERPLEXITY_TEXT

MAX_REQUESTS = 1024
WAVES_PER_POINT = 4
_METRICS_INTERVAL_S = 0.2
_CALIBRATION_ROUNDS = 4


@dataclass(frozen=True)
class GoodputTarget:
    """What a request must meet to count for goodput: its first token within `ttft_ms`, and then at least
    `user_tps` tokens/s for its reader (its output tokens over the time from its first token to its end)."""

    ttft_ms: float
    user_tps: float

    def __post_init__(self):
        if not (self.ttft_ms > 0 and self.user_tps >= 0):
            raise ValueError("goodput: the TTFT target must be above 0 ms and the tokens/s per user 0 or more")

    def met_by(self, timing: RequestTiming) -> bool:
        return (
            timing.error is None
            and timing.first_token is not None
            and (timing.first_token - timing.sent) * 1000 <= self.ttft_ms
            and (timing.user_tps or 0.0) >= self.user_tps
        )


def parse_sweep(text: str) -> tuple[int, ...]:
    """ "1, 4, 16, 64" -> (1, 4, 16, 64); ValueError says what is wrong."""
    parts = [part for part in text.replace(",", " ").split() if part]
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise ValueError(f"load test: a sweep is whole numbers of requests in flight, e.g. 1, 4, 16, 64 ({text!r})")
    return tuple(int(part) for part in parts)


@dataclass(frozen=True)
class LoadSettings:
    """`requests` prompts of `prompt_tokens` tokens each (chat template included), each answered
    with exactly `output_tokens` tokens (EOS ignored); `concurrency` in flight at most, None for
    all at once."""

    requests: int = 256
    prompt_tokens: int = 1024
    output_tokens: int = 256
    concurrency: int | None = None
    sweep: tuple[int, ...] = ()  # requests in flight at each point of a sweep; empty: one run at `concurrency`
    goodput: GoodputTarget | None = None

    def __post_init__(self):
        if not 1 <= self.requests <= MAX_REQUESTS:
            raise ValueError(f"load test: requests must be between 1 and {MAX_REQUESTS} ({self.requests} given)")
        if not 16 <= self.prompt_tokens <= 131_072:
            raise ValueError(f"load test: prompt length must be 16 to 131,072 tokens ({self.prompt_tokens} given)")
        if not 1 <= self.output_tokens <= 32_768:
            raise ValueError(f"load test: output length must be 1 to 32,768 tokens ({self.output_tokens} given)")
        if self.concurrency is not None and not 1 <= self.concurrency <= self.requests:
            raise ValueError(
                f"load test: requests in flight must be between 1 and the number of requests ({self.requests})"
            )

        if self.sweep and (
            sorted(set(self.sweep)) != list(self.sweep) or not 1 <= self.sweep[0] <= self.sweep[-1] <= MAX_REQUESTS
        ):
            raise ValueError(
                f"load test: a sweep's points are requests in flight, rising, from 1 to {MAX_REQUESTS} "
                f"({', '.join(map(str, self.sweep))} given)"
            )

    @property
    def in_flight(self) -> int:
        return self.concurrency or self.requests

    def points(self) -> list[tuple[int, int]]:
        """(requests in flight, requests sent) for each run: a sweep's point sends WAVES_PER_POINT times its
        concurrency (at most `requests`), so that each point sees the engine full for a while."""
        if not self.sweep:
            return [(self.in_flight, self.requests)]
        return [(flight, max(flight, min(self.requests, WAVES_PER_POINT * flight))) for flight in self.sweep]

    @property
    def total_requests(self) -> int:
        return sum(sent for _, sent in self.points())

    def check_fits(self, session_len: int | None, engine: str) -> None:
        """ValueError where one request is longer than the engine's session."""
        if session_len and self.prompt_tokens + self.output_tokens > session_len:
            raise ValueError(
                f"load test: {self.prompt_tokens:,} prompt + {self.output_tokens:,} output tokens exceed the "
                f"{session_len:,}-token session of {engine}; shorten them or raise session_len in the preset"
            )


@dataclass(frozen=True)
class RequestTiming:
    """One request's clock readings (seconds, perf_counter) and its token counts."""

    sent: float
    first_token: float | None
    ended: float
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None

    @property
    def user_tps(self) -> float | None:
        """Tokens/s as its reader saw them after the first: the decode speed one user gets."""
        if self.first_token is None or self.output_tokens < 2 or self.ended <= self.first_token:
            return None
        return (self.output_tokens - 1) / (self.ended - self.first_token)


@dataclass(frozen=True)
class LoadResult:
    """What one preset did under the load; None where the backend has no such figure."""

    requests: int
    completed: int
    failed: int
    duration_s: float
    requests_per_s: float
    output_tps: float
    mean_prompt_tokens: float
    mean_output_tokens: float
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    waited: int  # requests whose first token came only after another request had finished
    peak_running: int | None  # LMDeploy's scheduler: most requests decoding at once
    peak_waiting: int | None
    peak_kv_usage: float | None  # share of the KV cache's blocks in use at the busiest
    first_error: str | None = None
    prompt_words: int = 0  # words of the offline text per prompt (to send the same load elsewhere)
    in_flight: int = 0  # requests in flight at most
    user_tps_p50: float | None = None  # tokens/s one reader gets after the first token, median request
    goodput_rps: float | None = None  # requests/s meeting the goodput target, where one was set

    @property
    def tpot_p50_ms(self) -> float | None:
        """Time per output token after the first, of the median request's speed."""
        return 1000 / self.user_tps_p50 if self.user_tps_p50 else None


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), linearly interpolated between ranks as numpy does by default."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def count_waited(timings: list[RequestTiming]) -> int:
    """Requests that another request's end overtook between their sending and their first token:
    the engine held them back (no KV space or batch slot) until something finished."""
    ends = sorted(t.ended for t in timings if t.error is None)
    waited = 0
    for t in timings:
        if t.first_token is None:
            continue
        # an end strictly inside (sent, first_token) that is not this request's own
        if bisect.bisect_left(ends, t.first_token) - bisect.bisect_right(ends, t.sent) > 0:
            waited += 1
    return waited


def summarize(
    timings: list[RequestTiming],
    peaks: dict,
    prompt_words: int = 0,
    in_flight: int = 0,
    goodput: GoodputTarget | None = None,
) -> LoadResult:
    """The load test's figures from its requests' timings and the scheduler's peaks."""
    done = [t for t in timings if t.error is None]
    speeds = [speed for t in done if (speed := t.user_tps) is not None]
    start = min(t.sent for t in timings)
    duration = max(t.ended for t in timings) - start
    ttfts = [(t.first_token - t.sent) * 1000 for t in done if t.first_token is not None]
    tokens = sum(t.output_tokens for t in done)
    errors = [t.error for t in timings if t.error]
    return LoadResult(
        requests=len(timings),
        completed=len(done),
        failed=len(errors),
        duration_s=duration,
        requests_per_s=len(done) / duration if duration > 0 else 0.0,
        output_tps=tokens / duration if duration > 0 else 0.0,
        mean_prompt_tokens=sum(t.prompt_tokens for t in done) / len(done) if done else 0.0,
        mean_output_tokens=tokens / len(done) if done else 0.0,
        ttft_p50_ms=percentile(ttfts, 50),
        ttft_p99_ms=percentile(ttfts, 99),
        waited=count_waited(timings),
        peak_running=peaks.get("running"),
        peak_waiting=peaks.get("waiting"),
        peak_kv_usage=peaks.get("cache_usage"),
        first_error=errors[0] if errors else None,
        prompt_words=prompt_words,
        in_flight=in_flight or len(timings),
        user_tps_p50=percentile(speeds, 50),
        goodput_rps=sum(map(goodput.met_by, done)) / duration if goodput and duration > 0 else None,
    )


def load_params(max_new_tokens: int) -> GenerationParams:
    """Greedy, and exactly `max_new_tokens` long."""
    return GenerationParams(temperature=0.0, top_p=1.0, top_k=1, seed=0, max_new_tokens=max_new_tokens, ignore_eos=True)


class LoadPrompts:
    """Distinct prompts of one token length: request i starts with its own number, then the
    fixed offline text (repeated as needed) from a place of its own."""

    def __init__(self):
        self._words = PERPLEXITY_TEXT.read_text(encoding="utf-8").split()

    def text(self, index: int, words: int) -> str:
        start = (index * 37) % len(self._words)
        cycle = self._words[start:] + self._words[:start]
        body = (cycle * (words // len(cycle) + 1))[:words]
        return f"Request {index}: " + " ".join(body)

    def messages(self, index: int, words: int) -> list[dict]:
        return [{"role": "user", "content": self.text(index, words)}]


async def _prompt_tokens(backend, messages: list[dict]) -> int:
    """The engine's own count of a prompt's tokens (one token generated to learn it)."""
    async for delta in backend.stream_chat(ChatRequest(messages, load_params(1))):
        if isinstance(delta, Usage):
            return delta.prompt_tokens
    raise BackendError("the engine reported no token counts; a load test needs them")


async def calibrate_words(backend, prompts: LoadPrompts, target_tokens: int) -> tuple[int, int]:
    """How many words make a prompt of `target_tokens` tokens on this backend's tokenizer, and the
    tokens that many words gave (within 1% or 2 tokens, else the closest of a few tries)."""
    words = max(1, int(target_tokens * 0.75))
    best: tuple[int, int] | None = None
    for _ in range(_CALIBRATION_ROUNDS):
        tokens = await _prompt_tokens(backend, prompts.messages(0, words))
        if best is None or abs(tokens - target_tokens) < abs(best[1] - target_tokens):
            best = (words, tokens)
        if abs(tokens - target_tokens) <= max(2, target_tokens // 100):
            break
        words = max(1, round(words * target_tokens / tokens))
    assert best is not None  # the loop ran at least once
    return best


async def _one_request(backend, request: ChatRequest) -> RequestTiming:
    sent, first, usage = time.perf_counter(), None, Usage(0, 0)
    try:
        async for delta in backend.stream_chat(request):
            if isinstance(delta, TextDelta) and first is None:
                first = time.perf_counter()
            elif isinstance(delta, Usage):
                usage = delta
    except BackendError as exc:
        return RequestTiming(sent, first, time.perf_counter(), error=str(exc))
    return RequestTiming(sent, first, time.perf_counter(), usage.prompt_tokens, usage.completion_tokens)


async def _watch_scheduler(backend, peaks: dict, stop: asyncio.Event) -> None:
    """Keep the highest value of each scheduler figure until told to stop (none where the engine
    has no scheduler view)."""
    while not stop.is_set():
        try:
            metrics = await backend.scheduler_metrics()
        except BackendError:
            return
        if metrics is None:
            return
        for key in ("running", "waiting", "cache_usage"):
            if (value := getattr(metrics, key)) is not None:
                peaks[key] = max(peaks.get(key, value), value)
        try:
            await asyncio.wait_for(stop.wait(), _METRICS_INTERVAL_S)
        except TimeoutError:
            pass


async def run_load(backend, settings: LoadSettings, on_done: Callable[[int], None]) -> list[LoadResult]:
    """Send the load, each point of a sweep in turn, and wait for all of it; `on_done(n)` after each
    finished request (counted over the whole sweep). One result per point."""
    prompts = LoadPrompts()
    words, _ = await calibrate_words(backend, prompts, settings.prompt_tokens)
    params = load_params(settings.output_tokens)
    finished = 0

    def count_one() -> None:
        nonlocal finished
        finished += 1
        on_done(finished)

    results = []
    for in_flight, requests in settings.points():
        timings, peaks = await _run_point(backend, prompts, words, params, in_flight, requests, count_one)
        results.append(summarize(timings, peaks, words, in_flight, settings.goodput))
    return results


async def _run_point(
    backend, prompts: LoadPrompts, words: int, params: GenerationParams, in_flight: int, requests: int, on_done
) -> tuple[list[RequestTiming], dict]:
    """`requests` requests, at most `in_flight` at once; their timings and the scheduler's peaks meanwhile."""
    gate = asyncio.Semaphore(in_flight)

    async def send(index: int) -> RequestTiming:
        async with gate:
            timing = await _one_request(backend, ChatRequest(prompts.messages(index, words), params))
        on_done()
        return timing

    peaks: dict = {}
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_scheduler(backend, peaks, stop))
    try:
        timings = await asyncio.gather(*(send(i) for i in range(requests)))
    finally:
        stop.set()
        await watcher
    return list(timings), peaks
