"""The VRAM tab: live gauges, a timeline with the console's own events, and who holds what."""

from __future__ import annotations

import gradio as gr

from backends import BackendError
from console.core import Console

from .engine_card import engine_card
from .vram_figures import gauge_figure, process_rows, sample_as_json, timeline_figure

WINDOW_S = 600


def build_tab(console: Console) -> None:
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
    timer = gr.Timer(1.0)

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


# what a viewer of memory wants from a remote api_server's metrics: its KV cache and its queue
_LIVE_SERIES = ("cache_usage", "requests_running", "requests_waiting", "prefix_cache_hit_rate")


async def _source_note(console: Console, sample) -> str:
    backend = console.backend
    if hasattr(backend, "engine_metrics"):
        return await _kv_in_use(backend) + "\n\n" + _memory_source(sample)
    metrics_reader = getattr(backend, "server_metrics", None)
    if metrics_reader is not None:
        try:
            metrics = await metrics_reader()
        except BackendError as exc:
            return f"The engine runs on a remote server; NVML here cannot see its GPU, and {exc}."
        shown = {name: value for name, value in metrics.items() if any(key in name for key in _LIVE_SERIES)}
        lines = "\n".join(f"- `{name}`: {value:g}" for name, value in shown.items()) or "- (no LMDeploy metrics)"
        return f"The engine runs on a remote server; from its `/metrics`:\n{lines}"
    return _memory_source(sample)


def _memory_source(sample) -> str:
    if sample.error and not sample.gpus:
        return f"{sample.error}. Showing the console process's memory instead."
    if sample.error:
        return f"Memory read from NVML about once a second; not shown: {sample.error}."
    return "Memory read from NVML about once a second."


async def _kv_in_use(backend) -> str:
    """The KV cache in use against what is reserved, from LMDeploy's scheduler."""
    try:
        metrics = await backend.engine_metrics()
    except BackendError as exc:
        return f"KV cache in use: not available ({exc})."
    reserved = backend.info().details.get("kv_cache") or {}
    usage = metrics["cache_usage"]
    text = f"**KV cache in use: {usage:.1%} of the reserve**"
    if reserved.get("tokens"):
        approx = "≈ " if reserved.get("source") == "estimate" else ""
        text += f" ({approx}{usage * reserved['tokens']:,.0f} of {approx}{reserved['tokens']:,} tokens)"
    return (
        text + f"; {metrics['active_seqs']} requests running, {metrics['waiting_seqs']} waiting (LMDeploy's scheduler)."
    )
