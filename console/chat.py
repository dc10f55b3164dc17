"""A chat session and the streaming of one reply into it.

The UI repaints from the session, so this is where deltas are coalesced: a GPU decodes far
faster than a browser can repaint (Gradio sustains ~100 updates/s), so a reply is yielded at
most every `repaint_s`, never per token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field

from backends import (
    Backend,
    BackendError,
    ChatRequest,
    Finish,
    GenerationParams,
    PromptTooLong,
    Queued,
    TextDelta,
    TokenChoice,
    TokenLogprobs,
    Usage,
)
from telemetry.timing import decode_rate

MAX_MESSAGE_CHARS = 100_000  # ~25k tokens: past any context this console serves well, far below abuse
REPAINT_S = 0.04
REPAINTS_PER_S = 100  # what Gradio sustains for the whole app, measured


class RepaintPacer:
    """Shares Gradio's repaint budget among the replies streaming at once.

    One reply repaints every 40 ms; sixteen at that pace would ask 400 repaints a second of
    a server that sustains about 100, and every stream would slow down. Each reply instead
    repaints every max(40 ms, active replies / 100 per s).
    """

    def __init__(self, min_interval_s: float = REPAINT_S, budget_per_s: float = REPAINTS_PER_S):
        self.min_interval_s, self.budget_per_s = min_interval_s, budget_per_s
        self.active = 0

    def interval(self) -> float:
        return max(self.min_interval_s, self.active / self.budget_per_s)

    @asynccontextmanager
    async def streaming(self):
        self.active += 1
        try:
            yield self
        finally:
            self.active -= 1


def repaired_text(text):
    """Text as UTF-8 can carry it: a lone surrogate (half of an emoji, which a browser can send)
    becomes U+FFFD. Kept in a chat, it failed every later paint and request of that session."""
    if not isinstance(text, str):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def message_problem(text) -> str | None:
    """Why a message will not be sent, or None. An API call can send anything where the page sends text."""
    if text is not None and not isinstance(text, str):
        return f"A message is text; this one is {type(text).__name__}. Send it as a string."
    if not text or not text.strip():
        return "Type a message first: empty messages are not sent."
    if len(text) > MAX_MESSAGE_CHARS:
        return f"The message is {len(text):,} characters; messages up to {MAX_MESSAGE_CHARS:,} are sent."
    return None


@dataclass
class ReplyStats:
    """What the UI prints under a reply."""

    ttft_ms: float | None = None
    tokens: int | None = None  # from the engine's usage report; unknown when stopped early
    cached_tokens: int | None = None  # prompt tokens the prefix cache held, where the engine says
    tokens_per_s: float | None = None
    finish: str = "generating"
    error: str | None = None
    refused: bool = False  # the engine would not take the conversation (too long): nothing was generated
    waiting: str | None = None  # what the reply waits for before its first token, where it is not the engine

    def summary(self) -> str:
        parts = []
        if self.ttft_ms is not None:
            parts.append(f"TTFT {self.ttft_ms:.0f} ms")
        if self.tokens is not None:
            parts.append(f"{self.tokens} tokens")
        if self.cached_tokens:
            parts.append(f"{self.cached_tokens} prompt tokens from the prefix cache")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        parts.append(self.finish)
        return " · ".join(parts)


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    content: str
    stats: ReplyStats | None = None
    # a reply's tokens with their probabilities, where they were asked for (the params' logprobs)
    tokens: tuple[TokenChoice, ...] = ()


@dataclass
class ChatSession:
    """One browser session's conversation and the knobs it is generated with."""

    system_prompt: str = ""
    params: GenerationParams = field(default_factory=GenerationParams)
    turns: list[Turn] = field(default_factory=list)
    # the task streaming the backend's reply into this session, for Stop; not part of the chat
    reply_task: asyncio.Task | None = field(default=None, repr=False, compare=False)

    def model_messages(self) -> list[dict]:
        """The conversation as OpenAI-style messages; failed replies are left out."""
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt.strip() else []
        for turn in self.turns:
            if turn.role == "assistant" and (turn.stats and turn.stats.error) and not turn.content:
                continue
            messages.append({"role": turn.role, "content": turn.content})
        return messages

    def last_user_index(self) -> int | None:
        return next((i for i in range(len(self.turns) - 1, -1, -1) if self.turns[i].role == "user"), None)

    def rewind_to_last_user(self) -> str | None:
        """Drop the last user message and everything after it; return its text."""
        index = self.last_user_index()
        if index is None:
            return None
        text = self.turns[index].content
        del self.turns[index:]
        return text

    def withdraw_refused(self) -> str | None:
        """After a reply the engine refused outright (the conversation no longer fits), take the
        last message and its refusal out of the chat, so that the next one can be sent, and give
        the message back (for the input box); None when the last reply was not refused."""
        reply = self.turns[-1] if self.turns else None
        if reply is None or reply.role != "assistant" or not (reply.stats and reply.stats.refused):
            return None
        self.turns.pop()
        return self.rewind_to_last_user()

    def streaming(self) -> bool:
        """A reply is streaming into this session now."""
        return self.reply_task is not None and not self.reply_task.done()

    def stop_reply(self) -> bool:
        """Stop the reply streaming into this session, if one is: its backend stream ends now and
        the reply ends itself, keeping its text, with a last paint that says "stopped"."""
        if self.reply_task is None or self.reply_task.done():
            return False
        self.reply_task.cancel()
        return True


_END = object()
_REPAINT = object()  # a reason to wait changed: paint it


async def _pump(stream: AsyncGenerator, into: asyncio.Queue) -> None:
    """Move a backend's deltas into a queue. Run as a task of its own so that Stop cancels the
    backend's stream alone, while the reply's generator goes on to paint its own end."""
    try:
        # aclosing: on Stop the backend's stream must end now (cancelling the generation),
        # not whenever the garbage collector gets to it.
        async with aclosing(stream) as deltas:
            async for delta in deltas:
                into.put_nowait(delta)
    finally:
        into.put_nowait(_END)


async def _tell_why_waiting(why_waiting: Callable[[], Awaitable[str | None]], stats, deltas: asyncio.Queue) -> None:
    """Until the first token, every second: why the reply waits (a full engine's queue, a job), repainted
    when it changes."""
    while True:
        await asyncio.sleep(1.0)
        reason = await why_waiting()
        if reason and reason != stats.waiting:
            stats.waiting = reason
            deltas.put_nowait(_REPAINT)


async def stream_reply(
    backend: Backend,
    session: ChatSession,
    pacer: RepaintPacer | None = None,
    why_waiting: Callable[[], Awaitable[str | None]] | None = None,
) -> AsyncGenerator[ChatSession]:
    """Generate the assistant's answer to the session's last user turn, in place.

    Yields the session at once (the user's message, the reply waiting for its first token), then
    whenever there is something new to paint, at most as often as the pacer allows (every 40 ms
    for a lone reply).
    A backend error ends the reply with the error recorded in its stats; the text so far and
    the rest of the chat are kept. `ChatSession.stop_reply` ends it as "stopped", and its last
    paint comes from here, after every earlier one.
    """
    request = ChatRequest(messages=session.model_messages(), params=session.params)
    stats = ReplyStats()
    reply = Turn("assistant", "", stats)
    session.turns.append(reply)
    started = time.perf_counter()
    first_token_at = None
    last_paint = float("-inf")  # the first text paints at once (below): TTFT is what people watch
    pacer = pacer or RepaintPacer()
    deltas: asyncio.Queue = asyncio.Queue()
    pump = session.reply_task = asyncio.create_task(_pump(backend.stream_chat(request), deltas))
    telling = asyncio.create_task(_tell_why_waiting(why_waiting, stats, deltas)) if why_waiting else None
    yield session  # the user's message and a waiting reply, at once: a long prefill must not hide them
    try:
        async with pacer.streaming():
            while (delta := await deltas.get()) is not _END:
                if isinstance(delta, TextDelta):
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                        stats.ttft_ms = (first_token_at - started) * 1000
                        stats.waiting = None
                        last_paint = float("-inf")  # a "waiting" paint just before must not hold it back
                        if telling:
                            telling.cancel()
                    reply.content += delta.text
                elif isinstance(delta, Usage):
                    stats.tokens, stats.cached_tokens = delta.completion_tokens, delta.cached_tokens
                elif isinstance(delta, TokenLogprobs):
                    reply.tokens = delta.tokens
                elif isinstance(delta, Finish):
                    stats.finish = delta.reason
                elif isinstance(delta, Queued):  # painted at once: the place in line is news
                    stats.waiting = f"waiting: {delta.describe()}"
                    last_paint = float("-inf")
                elif delta is _REPAINT:
                    last_paint = float("-inf")
                now = time.perf_counter()
                if now - last_paint >= pacer.interval():
                    last_paint = now
                    yield session
        outcome: BaseException | None = (await asyncio.gather(pump, return_exceptions=True))[0]
        if isinstance(outcome, Exception):  # a CancelledError here is Stop, not a failure
            raise outcome
    except BackendError as exc:
        stats.finish, stats.error = "error", str(exc)
        stats.refused = isinstance(exc, PromptTooLong) and not reply.content
    finally:
        # if the consumer went away (a closed page), the generation must not go on
        if telling:
            telling.cancel()
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        if stats.finish == "generating":  # stopped, by Stop or by the consumer going away
            stats.finish = "stopped"
        stats.tokens_per_s = decode_rate(stats.tokens, first_token_at, time.perf_counter())
    yield session
