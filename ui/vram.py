"""The VRAM tab: live gauges, a timeline with the console's own events, and who holds what."""

from __future__ import annotations

import gradio as gr

from backends import BackendError, SchedulerMetrics, running_kind
from console.core import Console

from .engine_card import engine_card
from .tab_parts import TabParts
from .vram_figures import gauge_figure, process_rows, sample_as_json, timeline_figure

WINDOW_S = 600


def build_tab(console: Console) -> TabParts:
    """Lay out the tab; its parts: its refresh timer, which ticks only while the tab is open."""
    sampler = console.sampler
    with gr.Row():
        gauges = gr.Plot(label="Used of total", elem_id="vram-gauges")
    timeline = gr.Plot(
        label=f"Memory over the last {WINDOW_S // 60} minutes (dashed: what the console did)", elem_id="vram-timeline"
    )
    with gr.Row():
        with gr.Column():
            breakdown = gr.Markdown(elem_id="vram-breakdown")
        with gr.Column():
            processes = gr.Dataframe(
                headers=["GPU", "PID", "role", "MiB"],
                label="Processes on the GPUs",
                interactive=False,
                elem_id="vram-processes",
            )
            source = gr.Markdown()
    timer = gr.Timer(1.0, active=False)

    async def refresh():
        sample = sampler.latest()
        state = console.state()
        note = await _source_note(console, sample)
        return (
            gauge_figure(sample),
            timeline_figure(sampler.history(WINDOW_S), sampler.events(WINDOW_S)),
            engine_card(state, sample, console.last_switch),
            gr.Dataframe(process_rows(sample), visible=bool(sample.gpus)),  # no GPU: the note says why
            note,
        )

    outputs = [gauges, timeline, breakdown, processes, source]
    timer.tick(refresh, outputs=outputs, api_visibility="private", show_progress="hidden")

    def vram() -> dict:
        """The latest sample of every GPU (memory, utilization, processes), with the console's recent events."""
        return sample_as_json(sampler.latest(), sampler.events(WINDOW_S))

    gr.Button("Refresh", size="sm").click(refresh, outputs=outputs, api_visibility="private")
    gr.api(vram, api_name="vram")
    return TabParts(timer=timer)


async def _source_note(console: Console, sample) -> str:
    """Where the memory figures come from, and the scheduler's view where the engine gives one."""
    backend = console.backend
    info = backend.info()
    try:
        metrics = await backend.scheduler_metrics()
    except BackendError as exc:
        scheduler = f"Scheduler figures: not available ({exc})."
    else:
        scheduler = _scheduler_text(metrics, info.details) if metrics else ""
    if (kind := running_kind(info)) and not kind.memory_seen_here:
        where = "The engine runs on a remote server: NVML here cannot see its GPU; these come from its `/metrics`."
        return f"{where}\n\n{scheduler}"
    return "\n\n".join(filter(None, [scheduler, _memory_source(sample)]))


def _memory_source(sample) -> str:
    if sample.error and not sample.gpus:
        return f"{sample.error}. Showing the console process's memory instead."
    if sample.error:
        return f"Memory read from NVML about once a second; not shown: {sample.error}."
    return "Memory read from NVML about once a second."


def _scheduler_text(metrics: SchedulerMetrics, details: dict) -> str:
    """The KV cache in use against what is reserved, the queue, and the prefix cache's hits."""
    reserved, parts = details.get("kv_cache") or {}, []
    if metrics.cache_usage is not None:
        kv = f"**KV cache in use: {metrics.cache_usage:.1%} of the reserve**"
        if reserved.get("tokens"):
            approx = "≈ " if reserved.get("source") == "estimate" else ""
            kv += f" ({approx}{metrics.cache_usage * reserved['tokens']:,.0f} of {approx}{reserved['tokens']:,} tokens)"
        parts.append(kv)
    if metrics.running is not None:
        parts.append(f"{metrics.running} requests running, {metrics.waiting} waiting")
    prefix_caching = (details.get("config") or {}).get("enable_prefix_caching")
    if metrics.prefix_cache_hit_rate is not None and (prefix_caching or metrics.prefix_cache_hit_rate > 0):
        parts.append(f"prefix cache hit rate {metrics.prefix_cache_hit_rate:.1%}")
    return "; ".join(parts) + " (LMDeploy's scheduler)." if parts else "The scheduler reports nothing yet."
