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
from pathlib import Path

from backends import (
    BackendError,
    ChatRequest,
    GenerationParams,
    NextTokenLogprobs,
    TextDelta,
    TokenChoice,
    TokenLogprobs,
    ToolCall,
    Usage,
)
from console.core import Console
from console.jobs import Job, JobFailed
from console.token_view import SHOWN_ALTERNATIVES
from presets.schema import Preset
from presets.store import PresetError, to_yaml
from telemetry.timing import decode_rate

from .load import LoadResult, LoadSettings, run_load
from .prompts import PERPLEXITY_TEXT, PromptCase, second_turn_cases
from .quality import AGREEMENT_TOKENS, Question, agreement, exact_match, question_messages

GIB = 2**30
_WARMUP_TOKENS = 8
_ANSWER_TOKENS = 16  # a question's answer is a word or a number


@dataclass(frozen=True)
class CompareSettings:
    """What to compare and how hard: 2-4 presets, the prompts, the reply length, how many
    requests run at once for the aggregate figure, the quality measures, and the load test."""

    presets: tuple[str, ...]
    prompts: tuple[PromptCase, ...]
    max_new_tokens: int = 128
    concurrency: int = 16
    perplexity: bool = True
    agreement: bool = True  # next-token agreement with the first preset on a fixed text
    questions: tuple[Question, ...] = ()  # exact-match task; empty: not run
    questions_source: str = ""
    load: LoadSettings | None = None
    second_turn: bool = False  # the same long system prompt twice: what prefix caching saves
    token_probabilities: bool = False  # the prompts' answers come with each token's probability

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

    def params(self, max_new_tokens: int | None = None, logprobs: int = 0) -> GenerationParams:
        return GenerationParams(
            temperature=0.0,
            top_p=1.0,
            top_k=1,
            seed=0,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            logprobs=logprobs,
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
    cached_tokens: int | None = None  # prompt tokens the prefix cache held, where the engine says
    token_probabilities: tuple[TokenChoice, ...] = ()  # where asked for and the engine gives them


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
    kv_bytes_per_token: float | None = None  # a backend that grows its cache per token (the CPU) says so
    ttft_ms: float | None = None
    decode_tps: float | None = None
    aggregate_tps: float | None = None
    perplexity: float | None = None
    perplexity_note: str = ""
    top1_agreement: float | None = None  # share of positions with the first preset's most likely token
    mean_kl: float | None = None  # KL(first preset || this one), nats per position
    agreement_note: str = ""
    exact_match: float | None = None  # share of the questions answered exactly
    exact_match_note: str = ""
    answers: list[str] = field(default_factory=list)  # the replies to the questions, in their order
    random_weights: bool = False
    engine_config: dict = field(default_factory=dict)  # what the engine reported it ran with
    differs: str = ""  # in what this preset differs from the first one picked
    load: LoadResult | None = None  # of a sweep, its last point (the most in flight)
    sweep: list[LoadResult] = field(default_factory=list)  # a sweep's points, fewest in flight first
    load_note: str = ""
    first_turn_ttft_ms: float | None = None  # the second-turn test: a long system prompt, first sent
    second_turn_ttft_ms: float | None = None  # ... and sent again with another question
    second_turn_cached: int | None = None  # prompt tokens of the second request from the prefix cache
    second_turn_note: str = ""
    outputs: list[PromptOutput] = field(default_factory=list)
    error: str | None = None

    @property
    def kv_tokens_per_gib(self) -> float | None:
        """KV capacity per GiB of reserve, or of cache where the cache grows with the tokens: what KV
        quantization changes, whatever the reserve."""
        if self.kv_bytes_per_token:
            return GIB / self.kv_bytes_per_token
        return self.kv_tokens / self.kv_reserve_gib if self.kv_tokens and self.kv_reserve_gib else None


@dataclass(frozen=True)
class Comparison:
    settings: CompareSettings
    results: tuple[PresetResult, ...]
    machine: str
    started: str  # ISO time
    preset_yaml: dict[str, str]  # what each compared preset said, for the export
    boot_id: str = ""  # the machine's boot it ran in: a raw-engine run beside it must share it


async def run_comparison(console: Console, settings: CompareSettings, job: Job) -> Comparison:
    """The job's work: check every preset, measure each in turn, then bring back the engine
    that ran before."""
    from telemetry.machine import boot_id, describe_machine

    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    presets = _vetted(console, settings)
    snapshot = console.snapshot()
    results: list[PresetResult] = []
    reference = _Reference()
    steps = len(settings.presets) * _steps_per_preset(settings)
    try:
        for index, name in enumerate(settings.presets):
            where = f"{name} (preset {index + 1} of {len(settings.presets)})"
            progress = _Progress(job, index * _steps_per_preset(settings), steps, where)
            results.append(await _measure_preset(console, name, settings, progress, reference, index == 0))
    finally:
        job.report(job.status().fraction, "bringing back the engine that ran before")
        await console.restore_after_job(snapshot, job, fresh=True)
    failed = [result for result in results if result.error]
    if len(failed) == len(results):
        raise JobFailed("no preset could be measured: " + "; ".join(f"{r.preset}: {r.error}" for r in results))
    if failed:
        job.conclude(f"{len(failed)} of {len(results)} presets failed ({', '.join(r.preset for r in failed)})")
    _mark_differences(results, presets)
    texts = {name: to_yaml(preset) for name, preset in presets.items()}
    return Comparison(settings, tuple(results), describe_machine(), started, texts, boot_id())


def _vetted(console: Console, settings: CompareSettings) -> dict[str, Preset]:
    """Every picked preset, checked before any engine is touched: one that cannot load here, or
    whose session cannot take the load test's requests, refuses the whole comparison with why."""
    presets, problems = {}, []
    for name in settings.presets:
        try:
            preset, verdict, session_len = console.checks.vet(name)
        except PresetError as exc:
            problems.append(str(exc))
            continue
        presets[name] = preset
        problems += [f"{name}: {error}" for error in verdict.errors]
        if settings.load and verdict.ok:
            try:
                settings.load.check_fits(session_len, f"preset {name}")
            except ValueError as exc:
                problems.append(str(exc))
    if problems:
        raise JobFailed("nothing was measured: " + "; ".join(problems))
    return presets


def _steps_per_preset(settings: CompareSettings) -> int:
    # load, warm up, prompts, N streams, then the optional measures
    optional = (
        settings.perplexity,
        settings.agreement,
        bool(settings.questions),
        settings.load is not None,
        settings.second_turn,
    )
    return 3 + len(settings.prompts) + sum(optional)


@dataclass
class _Progress:
    job: Job
    done: int
    total: int
    preset: str  # as the messages name it: "kv-int8 (preset 2 of 4)"

    def step(self, what: str) -> None:
        message = f"{self.preset}: {what}"
        self.job.report(self.done / self.total, message)
        self.job.log(message)
        self.done += 1

    def within_step(self, fraction: float, what: str) -> None:
        """Move the bar inside the step begun last (the load test's requests done)."""
        self.job.report((self.done - 1 + fraction) / self.total, f"{self.preset}: {what}")


@dataclass
class _Reference:
    """The first preset's next-token distributions, which the others are held against."""

    logprobs: NextTokenLogprobs | None = None
    note: str = "n/a: the first preset gave no distributions"


async def _measure_preset(
    console: Console, name: str, settings: CompareSettings, progress: _Progress, reference: _Reference, is_first: bool
) -> PresetResult:
    result = PresetResult(name)
    progress.step("loading")
    try:
        report = await console.switch_preset(name, progress.job)
    except (BackendError, PresetError) as exc:
        result.error = f"did not load: {exc}"
        progress.job.log(result.error)
        return result
    backend = console.backend
    info = backend.info()
    _fill_engine_figures(result, info, report.load_seconds, report.vram_after_mib)
    progress.step("warming up")
    await _answer(backend, settings.prompts[0], settings.params(_WARMUP_TOKENS))
    alternatives = SHOWN_ALTERNATIVES if settings.token_probabilities else 0
    for case in settings.prompts:
        progress.step(f"prompt {case.name!r}")
        result.outputs.append(await _answer(backend, case, settings.params(logprobs=alternatives)))
    timed = [o for o, c in zip(result.outputs, settings.prompts, strict=True) if not c.tools and o.ttft_ms is not None]
    ttfts = [o.ttft_ms for o in timed if o.ttft_ms is not None]
    result.ttft_ms = statistics.median(ttfts) if ttfts else None
    rates = [o.decode_tps for o in timed if o.decode_tps]
    result.decode_tps = statistics.median(rates) if rates else None
    progress.step(f"{settings.concurrency} requests at once")
    result.aggregate_tps = await _aggregate_tps(backend, settings)
    await _quality(backend, settings, progress, result)
    if settings.second_turn:
        progress.step("second turn: the same long system prompt twice")
        await _second_turn(backend, settings, result)
    if settings.load:
        progress.step(f"load test: {settings.load.total_requests} requests")
        await _load_test(backend, info, settings.load, progress, result)
    # Last, and the engine is loaded afresh after the job: measured on the H200, LMDeploy 0.18's
    # get_logits leaves the PyTorch engine garbling the replies that follow (11 of 48 questions right
    # before it, 1 of 48 after; docs/gpu-runs/2026-11-30-h200-kv-and-weight-modes/streaming-probe.jsonl)
    if settings.agreement:
        progress.step("agreement with the first preset")
        await _agreement(backend, result, reference, is_first)
    return result


async def _quality(backend, settings: CompareSettings, progress: _Progress, result: PresetResult) -> None:
    """Perplexity and the question score (agreement comes last, see `_measure_preset`); none of them
    for random weights, whose quality is noise by construction."""
    if result.random_weights:
        result.perplexity_note = result.exact_match_note = "n/a (random weights)"
        progress.done += sum((settings.perplexity, bool(settings.questions)))
        return
    if settings.perplexity:
        progress.step("perplexity")
        result.perplexity, result.perplexity_note = await _perplexity(backend)
    if settings.questions:
        progress.step(f"{len(settings.questions)} questions")
        await _exact_match(backend, settings.questions, result)


async def _agreement(backend, result: PresetResult, reference: _Reference, is_first: bool) -> None:
    if result.random_weights:
        result.agreement_note = "n/a (random weights)"
        if is_first:
            reference.note = "n/a: the first preset has random weights"
        return
    if not backend.supports_logprobs:
        result.agreement_note = "n/a: this backend gives no next-token distributions"
        return
    try:
        logprobs = await backend.next_token_logprobs(PERPLEXITY_TEXT.read_text(encoding="utf-8"), AGREEMENT_TOKENS)
    except BackendError as exc:
        result.agreement_note = f"n/a: {exc}"
        return
    if is_first:
        reference.logprobs = logprobs
    if reference.logprobs is None:
        result.agreement_note = reference.note
        return
    try:
        measured = agreement(reference.logprobs, logprobs)
    except ValueError as exc:
        result.agreement_note = f"n/a: {exc}"
        return
    result.top1_agreement, result.mean_kl = measured.top1, measured.mean_kl
    result.agreement_note = "reference" if is_first else f"{measured.positions} positions"


async def _exact_match(backend, questions: tuple[Question, ...], result: PresetResult) -> None:
    """The questions all at once, greedy; the share answered exactly, and the replies."""
    params = GenerationParams(temperature=0.0, top_p=1.0, top_k=1, seed=0, max_new_tokens=_ANSWER_TOKENS)
    cases = [PromptCase(f"question {i + 1}", question_messages(q)) for i, q in enumerate(questions)]
    replies = await asyncio.gather(*(_answer(backend, case, params) for case in cases))
    result.answers = [reply.text for reply in replies]
    failed = [reply.error for reply in replies if reply.error]
    if failed:
        result.exact_match_note = f"n/a: {len(failed)} of {len(replies)} questions failed ({failed[0]})"
        return
    right = sum(exact_match(reply.text, q) for reply, q in zip(replies, questions, strict=True))
    result.exact_match, result.exact_match_note = right / len(questions), f"{right} of {len(questions)}"


async def _second_turn(backend, settings: CompareSettings, result: PresetResult) -> None:
    """TTFT of two requests that share a long system prompt, one after the other: with prefix
    caching the second reuses the first's KV blocks and skips most of its prefill."""
    first, second = [await _answer(backend, case, settings.params(_ANSWER_TOKENS)) for case in second_turn_cases()]
    failed = first.error or second.error
    if failed:
        result.second_turn_note = f"n/a: {failed}"
        return
    result.first_turn_ttft_ms, result.second_turn_ttft_ms = first.ttft_ms, second.ttft_ms
    result.second_turn_cached = second.cached_tokens


async def _load_test(backend, info, load: LoadSettings, progress: _Progress, result: PresetResult) -> None:
    session_len = info.details.get("session_len") or info.details.get("context_tokens")
    try:
        load.check_fits(session_len, info.engine)
    except ValueError as exc:
        result.load_note = str(exc)
        return

    total = load.total_requests

    def on_done(finished: int) -> None:
        progress.within_step(finished / total, f"load test: {finished} of {total} requests done")

    try:
        points = await run_load(backend, load, on_done)
    except BackendError as exc:
        result.load_note = f"the load test could not run: {exc}"
        return
    result.load, result.sweep = points[-1], points if load.sweep else []
    if failed := sum(point.failed for point in points):
        first_error = next(point.first_error for point in points if point.failed)
        result.load_note = f"{failed} requests failed: {first_error}"


def _mark_differences(results: list[PresetResult], presets: dict[str, Preset]) -> None:
    """Say in what each preset differs from the first one picked, as the engine ran it; its own generation
    settings too, said to be unused here (every request of a comparison is greedy)."""
    first = results[0]
    first.differs = "the reference (first picked)"
    for result in results[1:]:
        ran, reference = _settings_ran(result, presets), _settings_ran(first, presets)
        changed = _changed(ran, reference)
        sampling = _changed(_sampling(presets[result.preset]), _sampling(presets[first.preset]))
        if sampling:
            changed.append(f"generation {', '.join(sampling)} (not used: Compare decodes greedily)")
        result.differs = ", ".join(changed) or "the same settings"


def _changed(ran: dict, reference: dict) -> list[str]:
    return [f"{key} {ran[key]} vs {reference[key]}" for key in ran if ran[key] != reference.get(key)]


def _sampling(preset: Preset) -> dict:
    """The generation settings the Chat tab would start from under this preset."""
    applied = preset.generation.apply_to(GenerationParams())
    return {name: getattr(applied, name) for name in type(preset.generation).model_fields}


def _settings_ran(result: PresetResult, presets: dict[str, Preset]) -> dict:
    """The preset's settings with what the engine reported in place of LMDeploy's defaults."""
    preset = presets[result.preset]
    settings = preset.model_dump(exclude={"description", "generation"})
    settings["model"] = Path(preset.model).name if preset.model else "the embedded model"
    settings.update({k: v for k, v in result.engine_config.items() if v is not None})
    if result.engine:
        settings["engine"] = result.engine
    return {key: "default" if value is None else value for key, value in settings.items()}


def _fill_engine_figures(result: PresetResult, info, load_s: float, gpu_used_mib: float | None) -> None:
    kv = info.details.get("kv_cache") or {}
    weights = info.details.get("weights_bytes")
    result.engine, result.model, result.load_s, result.gpu_used_mib = info.engine, info.model, load_s, gpu_used_mib
    result.random_weights = bool(info.details.get("random_weights"))
    result.engine_config = dict(info.details.get("config") or {})
    result.weights_gib = weights / GIB if weights else None
    result.kv_reserve_gib = kv["bytes"] / GIB if kv.get("bytes") else None
    result.kv_tokens = kv.get("tokens")
    result.kv_bytes_per_token = info.details.get("kv_bytes_per_token")


async def _answer(backend, case: PromptCase, params: GenerationParams) -> PromptOutput:
    """One request, timed: TTFT to the first text or call, decode rate after it."""
    if case.tools and not backend.supports_tools:
        return PromptOutput(case.name, "", error="n/a: this backend does not take tools")
    request = ChatRequest(case.messages, params, case.tools, case.tool_choice)
    started, first, pieces, usage = time.perf_counter(), None, [], Usage(0, 0)
    chosen: tuple[TokenChoice, ...] = ()
    try:
        async for delta in backend.stream_chat(request):
            if isinstance(delta, (TextDelta, ToolCall)):
                first = first or time.perf_counter()
                pieces.append(delta.text if isinstance(delta, TextDelta) else _call_text(delta))
            elif isinstance(delta, Usage):
                usage = delta
            elif isinstance(delta, TokenLogprobs):
                chosen = delta.tokens
    except BackendError as exc:
        return PromptOutput(case.name, "".join(pieces), error=str(exc))
    ended, count = time.perf_counter(), usage.completion_tokens
    ttft_ms = (first - started) * 1000 if first else None
    # a tool call arrives whole at the end: it has a TTFT but no decode rate to speak of
    decode_tps = None if case.tools else decode_rate(count, first, ended)
    return PromptOutput(
        case.name,
        "".join(pieces),
        ttft_ms,
        count,
        decode_tps,
        cached_tokens=usage.cached_tokens,
        token_probabilities=chosen,
    )


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
