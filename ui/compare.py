"""The Compare tab: presets side by side on the same prompts, as a table, charts and exports."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gradio as gr

from compare import report
from compare.prompts import builtin_prompts, user_prompts
from compare.runner import CompareSettings, Comparison, run_comparison
from console.access import NotAllowed
from console.core import Console
from console.jobs import Job, JobBusy

from .compare_figures import capacity_figure, memory_figure, speed_figure
from .job_view import follow, log_tail, status_markdown


def build_tab(console: Console) -> gr.CheckboxGroup:
    """Lay out the tab; returns its preset picker (to refresh when presets are added)."""
    prompts = builtin_prompts()
    gr.Markdown(
        "Each preset in turn: switch, warm up, then the same greedy requests, the same requests all at once, "
        "and perplexity on a fixed text. The engine that ran before comes back at the end. Admins only."
    )
    with gr.Row():
        picked = gr.CheckboxGroup(console.catalog.names(), label="Presets (2 to 4)", elem_id="compare-presets")
        prompt_names = gr.CheckboxGroup(
            list(prompts), value=["short story", "math"], label="Prompts", elem_id="compare-prompts"
        )
    own = gr.Textbox(label="Your prompts, one per line (added to the ones ticked)", lines=2)
    with gr.Row():
        max_new = gr.Slider(8, 1024, value=128, step=8, label="Max new tokens", elem_id="compare-max-new")
        concurrency = gr.Slider(
            1, 64, value=16, step=1, label="Requests at once (aggregate tok/s)", elem_id="compare-concurrency"
        )
        perplexity = gr.Checkbox(value=True, label="Perplexity")
    with gr.Row():
        run = gr.Button("Run comparison", variant="primary", elem_id="compare-run")
        cancel = gr.Button("Cancel", elem_id="compare-cancel")
    progress = gr.Markdown(status_markdown(None), elem_id="compare-progress")
    log = gr.Textbox(label="Log", lines=6, max_lines=6, autoscroll=True, interactive=False)
    table = gr.Dataframe(label="Results", interactive=False, elem_id="compare-table", wrap=True)
    with gr.Row():
        memory, capacity, speed = gr.Plot(), gr.Plot(), gr.Plot()
    outputs_view = gr.HTML(label="Outputs side by side (marked: words that differ from the first preset)")
    exports = gr.File(label="Export: CSV, JSON, Markdown", file_count="multiple", interactive=False)

    async def compare(
        presets, names, own_prompts, max_new_tokens, requests_at_once, with_perplexity, request: gr.Request
    ):
        """Compare 2-4 presets on the chosen prompts (admins only); the table is the last output."""
        try:
            console.access.require_admin(request.username, "run comparisons")
            cases = [prompts[n] for n in names or []] + user_prompts(own_prompts or "")
            settings = CompareSettings(
                tuple(presets or ()), tuple(cases), int(max_new_tokens), int(requests_at_once), bool(with_perplexity)
            )
            job = console.jobs.start(Job("comparison", lambda job: run_comparison(console, settings, job)))
        except (NotAllowed, ValueError, JobBusy) as exc:
            raise gr.Error(str(exc)) from exc
        async for status in follow(job):
            yield status_markdown(status), log_tail(status), *_no_result()
        if status.state == "done":
            yield status_markdown(status), log_tail(status), *_result_views(status.result)
        elif status.state == "failed":
            raise gr.Error(status.error)

    def cancel_job(request: gr.Request):
        console.access.require_admin(request.username, "cancel comparisons")
        console.jobs.cancel("comparison")

    views = [progress, log, table, memory, capacity, speed, outputs_view, exports]
    run.click(compare, [picked, prompt_names, own, max_new, concurrency, perplexity], views, api_name="compare")
    cancel.click(cancel_job, api_name="cancel_compare")
    return picked


def _no_result() -> tuple:
    return (gr.skip(),) * 6


def _result_views(comparison: Comparison) -> tuple:
    table = {"headers": report.headings(comparison), "data": report.rows(comparison)}
    return (
        table,
        memory_figure(comparison),
        capacity_figure(comparison),
        speed_figure(comparison),
        report.outputs_html(comparison),
        _export_files(comparison),
    )


def _export_files(comparison: Comparison) -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="lmdeploy-console-compare-"))
    stem = "comparison-" + time.strftime("%Y%m%d-%H%M%S")
    paths = []
    for suffix, write in report.EXPORTS.items():
        path = folder / f"{stem}.{suffix}"
        path.write_text(write(comparison), encoding="utf-8")
        paths.append(str(path))
    return paths
