"""Ways to send N chats at once and time them, shared by the throughput benchmarks.

Each layer has `run(prompts) -> Batch`: every prompt as its own chat, all at once, each timed from
its request to its first text (TTFT) and to its end.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml
from openai import AsyncOpenAI

from backends import GenerationParams
from bench.gradio_stream import PAGE_CHAT, GradioEndpoint, carries_reply_text, chat_knobs

PROMPTS = [
    "Write a long story about a lighthouse keeper.",
    "Explain how a bicycle works, in detail.",
    "Describe a walk through a forest in autumn.",
    "Write a letter to a friend about a journey by train.",
    "Tell the history of a small fishing village.",
]


def prompts_at_once(count: int, document_words: int = 0) -> list[str]:
    """`count` chats' first messages: the prompts in turn, or with `document_words`, each a document
    of its own of that many words and a request about it (a pasted page: the load whose prefill and
    KV cache grow with the prompt, what keeps a GPU busy). Documents differ from their first word,
    so no prefix is shared."""
    if not document_words:
        return [PROMPTS[i % len(PROMPTS)] for i in range(count)]
    words = sorted({word for prompt in PROMPTS for word in re.findall(r"[a-z]+", prompt.lower())})
    return [
        " ".join(random.Random(i).choices(words, k=document_words)) + "\n\n" + PROMPTS[i % len(PROMPTS)]
        for i in range(count)
    ]


@dataclass
class Sample:
    ttft_s: float
    tokens: int
    total_s: float
    prompt_tokens: int | None = None  # as the server counted them, where it says

    @property
    def decode_tok_s(self) -> float:
        decode_s = self.total_s - self.ttft_s
        return (self.tokens - 1) / decode_s if decode_s > 0 and self.tokens > 1 else float("nan")


@dataclass
class Batch:
    samples: list[Sample]
    wall_s: float  # from the first request sent to the last reply ended

    @property
    def aggregate_tok_s(self) -> float:
        return sum(s.tokens for s in self.samples) / self.wall_s


class GradioChatLayer:
    """A program in a subprocess serving a `/chat` endpoint with the console's parameters and a Chatbot
    first among its outputs, read through Gradio's SSE stream as a browser does, each chat from a page
    opened first (see `GradioEndpoint.open_page`)."""

    def __init__(
        self,
        name: str,
        params: GenerationParams,
        log_dir: Path,
        program: tuple[str, ...],
        options: list[str],
        root: Path | None = None,
    ):
        from tests.conftest import ROOT, start_console

        self.name = name
        log = log_dir / f"bench-{_slug(name)}.log"
        self._process, self.url = start_console(options, log, timeout_s=1200, root=root or ROOT, program=program)
        self._endpoint = GradioEndpoint(self.url, PAGE_CHAT)
        self._knobs = chat_knobs(params)

    async def run(self, prompts: list[str]) -> Batch:
        # one open page a user, each with an empty chat, as N people who open the console and type
        sessions = [await asyncio.to_thread(self._open_page) for _ in prompts]
        loop = asyncio.get_running_loop()
        # a reader thread each: asyncio's default pool (at most 32 threads) would hold the rest back
        with ThreadPoolExecutor(max_workers=len(prompts)) as readers:
            started = time.perf_counter()
            samples = await asyncio.gather(
                *(loop.run_in_executor(readers, self._sample, s, p) for s, p in zip(sessions, prompts, strict=True))
            )
            return Batch(list(samples), time.perf_counter() - started)

    def _open_page(self) -> str:
        session = uuid.uuid4().hex
        self._endpoint.open_page(session)
        return session

    def _sample(self, session: str, prompt: str) -> Sample:
        first, total, final = None, 0.0, None
        for elapsed, message in self._endpoint.stream(prompt, *self._knobs, session=session):
            if first is None and carries_reply_text(message):
                first = elapsed  # the paint with the first text (the one before: the message, at once)
            total, final = elapsed, message
        reply = final["output"]["data"][0][-1]["content"][0]["text"]
        match = re.search(r"(\d+) tokens", reply)
        return Sample(first, int(match.group(1)) if match else 0, total)

    async def close(self) -> None:
        from tests.conftest import stop_process

        stop_process(self._process)


class ConsoleLayer(GradioChatLayer):
    """The console (`app.py` on `preset`; from another checkout with `root`)."""

    def __init__(self, name: str, preset: dict, params: GenerationParams, log_dir: Path, root: Path | None = None):
        preset_file = log_dir / f"bench-{_slug(name)}.yaml"
        preset_file.write_text(yaml.safe_dump(preset), encoding="utf-8")
        super().__init__(name, params, log_dir, ("app.py",), ["--preset", str(preset_file)], root)


def _slug(name: str) -> str:
    return re.sub(r"\W+", "-", name).strip("-")


class OpenAILayer:
    """The `openai` client straight to an OpenAI-compatible server (an api_server, the proxy)."""

    def __init__(self, name: str, base_url: str, params: GenerationParams, api_key: str = "none"):
        self.name, self._params = name, params
        self._client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600)
        self._model: str | None = None

    async def run(self, prompts: list[str]) -> Batch:
        if self._model is None:
            self._model = (await self._client.models.list()).data[0].id
        started = time.perf_counter()
        samples = await asyncio.gather(*(self._sample(p) for p in prompts))
        return Batch(list(samples), time.perf_counter() - started)

    async def _sample(self, prompt: str) -> Sample:
        started = time.perf_counter()
        first, chunks, usage = None, 0, None
        stream = await self._client.chat.completions.create(
            model=self._model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=self._params.max_new_tokens,
            temperature=self._params.temperature,
            top_p=self._params.top_p,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                if chunk.usage:
                    usage = chunk.usage
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter()
                    chunks += 1
        # servers that report no usage: one text chunk a token is what both api_server and transformers send
        tokens = usage.completion_tokens if usage else chunks
        prompt_tokens = usage.prompt_tokens if usage else None
        return Sample(first - started, tokens, time.perf_counter() - started, prompt_tokens)

    async def close(self) -> None:
        await self._client.close()
