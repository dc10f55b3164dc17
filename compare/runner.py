"""Run presets one after another on the console's engine and measure each the same way.

Every preset gets the same greedy requests, so differences in the outputs come from the
preset (quantization, engine), not from sampling. The engine that ran before comes back at
the end, also after a failure or a Cancel.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

from backends import BackendError, ChatRequest, GenerationParams, TextDelta, ToolCall, Usage
from console.core import Console
from console.jobs import Job, JobFailed
from presets.store import PresetError, to_yaml

from .prompts import PERPLEXITY_TEXT, PromptCase

GIB = 2**30
_WARMUP_TOKENS = 8


@dataclass(frozen=True)
class CompareSettings:
    """What to compare and how hard: 2-4 presets, the prompts, the reply length, and how
    many requests run at once for the aggregate figure."""

    presets: tuple[str, ...]
    prompts: tuple[PromptCase, ...]
    max_new_tokens: int = 128
    concurrency: int = 16
    perplexity: bool = True

    def __post_init__(self):
        if not 2 <= len(self.presets) <= 4:
            raise ValueError(f"pick 2 to 4 presets to compare ({len(self.presets)} picked)")
        if len(set(self.presets)) != len(self.presets):
            raise ValueError("each preset can be picked once")
        if not self.prompts:
            raise ValueError("pick at least one prompt")
        if not 1 <= self.max_new_tokens <= 4096:
            raise ValueError("max new tokens must be between 1 and 4096")
        if not 1 <= self.concurrency <= 64:
            raise ValueError("concurrent requests must be between 1 and 64")

    def params(self, max_new_tokens: int | None = None) -> GenerationParams:
        return GenerationParams(
            temperature=0.0, top_p=1.0, top_k=1, seed=0, max_new_tokens=max_new_tokens or self.max_new_tokens
        )


@dataclass(frozen=True)
class PromptOutput:
    """One preset's answer to one prompt, with its timing."""

    prompt: str
    text: str
    ttft_ms: float | None = None
    tokens: int = 0
    decode_tps: float | None = None
    error: str | None = None


@dataclass
class PresetResult:
    """Everything measured for one preset; None where the engine has no such figure."""

    preset: str
    engine: str = ""
    model: str = ""
    load_s: float | None = None
    gpu_used_mib: float | None = None
    weights_gib: float | None = None
    kv_reserve_gib: float | None = None
    kv_tokens: int | None = None
    ttft_ms: float | None = None
    decode_tps: float | None = None
    aggregate_tps: float | None = None
    perplexity: float | None = None
    perplexity_note: str = ""
    outputs: list[PromptOutput] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class Comparison:
    settings: CompareSettings
    results: tuple[PresetResult, ...]
    machine: str
    started: str  # ISO time
    preset_yaml: dict[str, str]  # what each compared preset said, for the export


async def run_comparison(console: Console, settings: CompareSettings, job: Job) -> Comparison:
    """The job's work: each preset in turn, then the engine that ran before."""
    from telemetry.machine import describe_machine

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    snapshot = console.snapshot()
    results = []
    steps = len(settings.presets) * _steps_per_preset(settings)
    try:
        for index, name in enumerate(settings.presets):
            progress = _Progress(job, index * _steps_per_preset(settings), steps, name)
            results.append(await _measure_preset(console, name, settings, progress))
    finally:
        job.report(job.status().fraction, "bringing back the engine that ran before")
        await console.restore_after_job(snapshot, job)
    if all(result.error for result in results):
        raise JobFailed("no preset could be measured: " + "; ".join(f"{r.preset}: {r.error}" for r in results))
    return Comparison(settings, tuple(results), describe_machine(), started, _preset_texts(console, settings.presets))


def _preset_texts(console: Console, names: tuple[str, ...]) -> dict[str, str]:
    """What each preset said, for the export; an invalid one is shown as the problem it has."""
    texts = {}
    for name in names:
        try:
            texts[name] = to_yaml(console.catalog.get(name))
        except PresetError as exc:
            texts[name] = f"# invalid: {exc}\n"
    return texts


def _steps_per_preset(settings: CompareSettings) -> int:
    return 3 + len(settings.prompts) + int(settings.perplexity)  # load, warm up, prompts, N streams, perplexity


@dataclass
class _Progress:
    job: Job
    done: int
    total: int
    preset: str

    def step(self, what: str) -> None:
        message = f"{self.preset}: {what}"
        self.job.report(self.done / self.total, message)
        self.job.log(message)
        self.done += 1


async def _measure_preset(console: Console, name: str, settings: CompareSettings, progress: _Progress) -> PresetResult:
    result = PresetResult(name)
    progress.step("loading")
    try:
        report = await console.switch_preset(name)
    except (BackendError, PresetError) as exc:
        result.error = f"did not load: {exc}"
        progress.job.log(result.error)
        return result
    backend = console.backend
    _fill_engine_figures(result, backend.info(), report.load_seconds, report.vram_after_mib)
    progress.step("warming up")
    await _answer(backend, settings.prompts[0], settings.params(_WARMUP_TOKENS))
    for case in settings.prompts:
        progress.step(f"prompt {case.name!r}")
        result.outputs.append(await _answer(backend, case, settings.params()))
    timed = [o for o, c in zip(result.outputs, settings.prompts, strict=True) if not c.tools and o.ttft_ms is not None]
    result.ttft_ms = statistics.median(o.ttft_ms for o in timed) if timed else None
    rates = [o.decode_tps for o in timed if o.decode_tps]
    result.decode_tps = statistics.median(rates) if rates else None
    progress.step(f"{settings.concurrency} requests at once")
    result.aggregate_tps = await _aggregate_tps(backend, settings)
    if settings.perplexity:
        progress.step("perplexity")
        result.perplexity, result.perplexity_note = await _perplexity(backend)
    return result


def _fill_engine_figures(result: PresetResult, info, load_s: float, gpu_used_mib: float | None) -> None:
    kv = info.details.get("kv_cache") or {}
    weights = info.details.get("weights_bytes")
    result.engine, result.model, result.load_s, result.gpu_used_mib = info.engine, info.model, load_s, gpu_used_mib
    result.weights_gib = weights / GIB if weights else None
    result.kv_reserve_gib = kv["bytes"] / GIB if kv.get("bytes") else None
    result.kv_tokens = kv.get("tokens")


async def _answer(backend, case: PromptCase, params: GenerationParams) -> PromptOutput:
    """One request, timed: TTFT to the first text or call, decode rate after it."""
    if case.tools and not backend.supports_tools:
        return PromptOutput(case.name, "", error="n/a: this backend does not take tools")
    request = ChatRequest(case.messages, params, case.tools, case.tool_choice)
    started, first, pieces, tokens = time.perf_counter(), None, [], 0
    try:
        async for delta in backend.stream_chat(request):
            if isinstance(delta, (TextDelta, ToolCall)):
                first = first or time.perf_counter()
                pieces.append(delta.text if isinstance(delta, TextDelta) else _call_text(delta))
            elif isinstance(delta, Usage):
                tokens = delta.completion_tokens
    except BackendError as exc:
        return PromptOutput(case.name, "".join(pieces), error=str(exc))
    ended = time.perf_counter()
    ttft_ms = (first - started) * 1000 if first else None
    # a tool call arrives whole at the end: it has a TTFT but no decode rate to speak of
    decode_tps = (tokens - 1) / (ended - first) if first and tokens > 1 and ended > first and not case.tools else None
    return PromptOutput(case.name, "".join(pieces), ttft_ms, tokens, decode_tps)


def _call_text(call: ToolCall) -> str:
    return f"{call.name}({call.arguments})" if call.name else f"[an unfinished tool call] {call.arguments}"


async def _aggregate_tps(backend, settings: CompareSettings) -> float | None:
    """Tokens per second of `concurrency` requests sent at once (tool cases left out)."""
    cases = [c for c in settings.prompts if not c.tools] or list(settings.prompts)
    batch = [cases[i % len(cases)] for i in range(settings.concurrency)]
    started = time.perf_counter()
    outputs = await asyncio.gather(*(_answer(backend, case, settings.params()) for case in batch))
    elapsed = time.perf_counter() - started
    tokens = sum(o.tokens for o in outputs if not o.error)
    return tokens / elapsed if tokens else None


async def _perplexity(backend) -> tuple[float | None, str]:
    if not backend.supports_perplexity:
        return None, "n/a: this backend cannot score text"
    try:
        score = await backend.score_text(PERPLEXITY_TEXT.read_text(encoding="utf-8"))
    except BackendError as exc:
        return None, f"n/a: {exc}"
    return score.perplexity, f"{score.tokens} tokens" if score.tokens else ""
