"""The Compare tab: presets side by side on the same prompts, as a table, charts and exports."""

from __future__ import annotations

import time

import gradio as gr

from backends import Refusal
from compare import report
from compare.load import MAX_REQUESTS, WAVES_PER_POINT, GoodputTarget, LoadSettings, parse_sweep
from compare.prompts import builtin_prompts, user_prompts
from compare.quality import builtin_questions, load_questions
from compare.runner import CompareSettings, Comparison, run_comparison
from console.core import Console
from console.jobs import JobOrder, RunningJob

from .admin_only import AdminOnly
from .compare_figures import CHARTS
from .downloads import download_folder
from .errors import REFUSABLE_PROGRESS, refused, whole_number
from .job_view import follow, log_tail, status_markdown
from .preset_lists import preset_checklist
from .tab_parts import Refresh, TabParts


def build_tab(console: Console, admin: AdminOnly) -> TabParts:
    """Lay out the tab; its parts: its preset picker, and the comparison running now or the last one,
    shown as the tab opens."""
    prompts = builtin_prompts()
    questions = builtin_questions()
    gr.Markdown(
        "Each preset in turn: switch, warm up, then the same greedy requests, the same requests all at once, "
        "and the quality and load measures ticked below. Every preset is checked before anything runs; the "
        "engine that ran before comes back at the end. Admins only."
    )
    with gr.Row():
        picked = preset_checklist(console.catalog.names(), label="Presets (2 to 4)", elem_id="compare-presets")
        prompt_names = gr.CheckboxGroup(
            list(prompts), value=["short story", "math"], label="Prompts", elem_id="compare-prompts"
        )
    own = gr.Textbox(label="Your prompts, one per line (added to the ones ticked)", lines=2, value="")
    with gr.Row():
        max_new = gr.Slider(8, 1024, value=128, step=8, label="Max new tokens", elem_id="compare-max-new")
        concurrency = gr.Slider(
            1, 64, value=16, step=1, label="Requests at once (aggregate tok/s)", elem_id="compare-concurrency"
        )
    with gr.Accordion("Quality: how far each preset's answers move from the first one picked", open=False):
        with gr.Row():
            perplexity = gr.Checkbox(value=True, label="Perplexity on a fixed text")
            agreement = gr.Checkbox(value=True, label="Next-token agreement and KL with the first preset")
            builtin = gr.Checkbox(value=False, label=f"Exact match on the built-in questions ({len(questions)})")
        own_questions = gr.Textbox(
            label='Your questions, JSONL: {"question": "...", "answer": "..."} per line (added to the built-in ones)',
            lines=2,
            value="",
        )
    with gr.Accordion("Load test: fill the KV cache, as LMDeploy's profile_throughput does", open=False):
        with gr.Row():
            load_on = gr.Checkbox(value=False, label="Run a load test on each preset", elem_id="compare-load")
            load_requests = gr.Number(
                256, label=f"Requests (1 to {MAX_REQUESTS})", precision=0, minimum=1, elem_id="compare-load-requests"
            )
            load_prompt = gr.Number(
                1024, label="Prompt tokens each", precision=0, minimum=16, elem_id="compare-load-prompt"
            )
            load_output = gr.Number(
                256, label="Output tokens each (EOS ignored)", precision=0, minimum=1, elem_id="compare-load-output"
            )
            load_flight = gr.Number(0, label="In flight at most (0: all at once)", precision=0, minimum=0)
        with gr.Row():
            load_sweep = gr.Textbox(
                "",
                label=f"Concurrency sweep: requests in flight, rising (e.g. 1, 4, 16, 64); each point sends "
                f"{WAVES_PER_POINT} times that many requests, at most Requests. Empty: one run as above",
                scale=2,
                elem_id="compare-load-sweep",
            )
            goodput_ttft = gr.Number(0, label="Goodput: first token within (ms; 0: no goodput)", precision=0, minimum=0)
            goodput_user_tps = gr.Number(0, label="and then tokens/s per user at least", minimum=0)
    with gr.Row():
        second_turn = gr.Checkbox(
            value=False,
            label="Second turn: a long system prompt sent twice, TTFT of each (what prefix caching saves)",
            elem_id="compare-second-turn",
        )
        token_probabilities = gr.Checkbox(
            value=False,
            label="Shade the outputs by token probability (hover: alternatives); timings then include it",
            elem_id="compare-token-probabilities",
        )
    with gr.Row():
        run = gr.Button("Run comparison", variant="primary", elem_id="compare-run")
        cancel = gr.Button("Cancel", elem_id="compare-cancel")
    admin.controls(run, cancel)
    admin.reason()
    progress = gr.Markdown(status_markdown(None), elem_id="compare-progress")
    log = gr.Textbox(label="Log", lines=6, max_lines=6, autoscroll=True, interactive=False)
    notes = gr.Markdown(elem_id="compare-notes")
    results = gr.HTML(elem_id="compare-results")  # grouped: memory, speed, quality, load
    table = gr.Dataframe(visible=False, elem_id="compare-table")  # the one wide table, for the API
    with gr.Row():  # each shown once it has something to show (CHARTS)
        memory, capacity, speed = (
            gr.Plot(visible=False, elem_id=f"compare-{n}") for n in ("memory", "capacity", "speed")
        )
    with gr.Row():
        quality, load = (gr.Plot(visible=False, elem_id=f"compare-{n}") for n in ("quality", "load-chart"))
    with gr.Row():  # a sweep's
        latency, per_user = (gr.Plot(visible=False, elem_id=f"compare-{n}") for n in ("latency", "per-user"))
    outputs_view = gr.HTML(label="Outputs side by side (marked: words that differ from the first preset)")
    exports = gr.File(label="Export: CSV, JSON, Markdown", file_count="multiple", interactive=False)

    async def compare(
        presets,
        names,
        own_prompts,
        max_new_tokens,
        requests_at_once,
        with_perplexity,
        with_agreement,
        with_builtin_questions,
        own_questions,
        load_test,
        load_requests,
        load_prompt_tokens,
        load_output_tokens,
        load_in_flight,
        second_turn,
        token_probabilities,
        load_sweep,
        goodput_ttft_ms,
        goodput_user_tps,
        request: gr.Request,
    ):
        """Compare 2-4 presets on the chosen prompts (admins only), with the quality measures and the
        load test asked for; `load_in_flight` 0 sends the whole load at once; `load_sweep` ("1, 4, 16")
        runs it at each of those concurrencies instead; `goodput_ttft_ms` above 0 counts the requests/s
        within that TTFT and at least `goodput_user_tps` tokens/s per user."""

        def prepare():
            cases = [prompts[n] for n in names or []] + user_prompts(own_prompts or "")
            own_asked = load_questions(own_questions) if (own_questions or "").strip() else []
            load = (
                LoadSettings(
                    whole_number(load_requests, "load test: requests"),
                    whole_number(load_prompt_tokens, "load test: prompt tokens"),
                    whole_number(load_output_tokens, "load test: output tokens"),
                    whole_number(load_in_flight, "load test: in flight") or None,
                    parse_sweep(load_sweep or ""),
                    _goodput(goodput_ttft_ms, goodput_user_tps),
                )
                if load_test
                else None
            )
            settings = CompareSettings(
                tuple(presets or ()),
                tuple(cases),
                whole_number(max_new_tokens, "max new tokens"),
                whole_number(requests_at_once, "requests at once"),
                bool(with_perplexity),
                bool(with_agreement),
                tuple((questions if with_builtin_questions else []) + own_asked),
                _questions_source(bool(with_builtin_questions), len(own_asked)),
                load,
                bool(second_turn),
                bool(token_probabilities),
            )
            return JobOrder(run_comparison, settings)

        try:
            job = await console.start_job("comparison", prepare, user=request.username)
        except (Refusal, ValueError) as exc:
            raise refused(str(exc)) from exc
        form = (  # the inputs in their order: what a page opened meanwhile shows
            presets, names, own_prompts, max_new_tokens, requests_at_once, with_perplexity, with_agreement,
            with_builtin_questions, own_questions, load_test, load_requests, load_prompt_tokens, load_output_tokens,
            load_in_flight, second_turn, token_probabilities, load_sweep, goodput_ttft_ms, goodput_user_tps,
        )  # fmt: skip
        started.update(job=job, form=form)
        async for views in _followed(job):
            yield views
        if job.status().state == "failed":
            raise refused(job.status().error)

    started: dict = {"job": None, "form": ()}  # the last comparison and the form it was started with

    async def current_job():
        """The comparison running now, followed to its end under the form it was started with, or the last
        one's result: the job lives on the server, so a page opened or reloaded meanwhile sees it too."""
        job = console.current_job()
        untouched = (gr.skip(),) * len(inputs)
        if job is None or job.kind != "comparison":
            yield gr.skip(), gr.skip(), *_no_result(), *untouched
            return
        if started["job"] is job and not job.status().finished:  # once it ends, the form is the page's again
            yield (gr.skip(),) * len(views) + started["form"]
        async for shown in _followed(job):
            yield *shown, *untouched

    async def cancel_job(request: gr.Request):
        await console.cancel_job("comparison", user=request.username)

    views = [
        *(progress, log, table, results, memory, capacity, speed, quality, load, latency, per_user),
        *(notes, outputs_view, exports),
    ]
    inputs = [picked, prompt_names, own, max_new, concurrency, perplexity, agreement, builtin, own_questions]
    inputs += [load_on, load_requests, load_prompt, load_output, load_flight, second_turn, token_probabilities]
    inputs += [load_sweep, goodput_ttft, goodput_user_tps]
    run.click(compare, inputs, views, api_name="compare", show_progress=REFUSABLE_PROGRESS)
    cancel.click(cancel_job, api_name="cancel_compare")
    return TabParts(preset_lists=[picked], on_open=Refresh(current_job, views + inputs))


async def _followed(job: RunningJob):
    """The tab's views while a comparison runs, then its result."""
    async for status in follow(job):
        yield status_markdown(status), log_tail(status), *_no_result()
    if status.state == "done":
        yield status_markdown(status), log_tail(status), *_result_views(status.result)


def _no_result() -> tuple:
    return (gr.skip(),) * 12


def _goodput(ttft_ms, user_tps) -> GoodputTarget | None:
    """The goodput target as typed (any JSON through the API); None while the TTFT target is 0."""
    try:
        ttft, speed = float(ttft_ms or 0), float(user_tps or 0)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"goodput: the targets must be numbers ({ttft_ms!r}, {user_tps!r} given)") from exc
    return GoodputTarget(ttft, speed) if ttft else None


def _questions_source(builtin: bool, own: int) -> str:
    parts = (["the built-in questions"] if builtin else []) + ([f"your {own} questions"] if own else [])
    return " and ".join(parts)


def _result_views(comparison: Comparison) -> tuple:
    table = {"headers": report.headings(comparison), "data": report.rows(comparison)}
    return (
        table,
        report.tables_html(comparison),
        *(_plot(chart(comparison)) for chart in CHARTS),
        "\n\n".join(report.notes(comparison)),
        report.outputs_html(comparison),
        _export_files(comparison),
    )


def _plot(figure) -> gr.Plot:
    """A chart, or none at all where it has nothing to show (no empty axes)."""
    return gr.Plot(figure, visible=figure is not None)


def _export_files(comparison: Comparison) -> list[str]:
    folder = download_folder()
    stem = "comparison-" + time.strftime("%Y%m%d-%H%M%S")
    paths = []
    for suffix, write in report.EXPORTS.items():
        path = folder / f"{stem}.{suffix}"
        path.write_text(write(comparison), encoding="utf-8")
        paths.append(str(path))
    return paths
