"""Gradio only: one module per tab. Nothing here imports an engine library."""

from __future__ import annotations

import gradio as gr

from console.core import Console

from . import chat, compare, fleet, presets, quantize, side_by_side, tools, vram
from .admin_only import AdminOnly
from .closed_pages import let_go_of_closed_pages
from .downloads import GRADIO_DELETE_CACHE
from .header import engine_header
from .job_view import job_banner, switch_banner
from .lean_sessions import start_sessions_without_config_copies
from .page_ticks import TickBudget
from .vram_figures import compact_gauge

TITLE = "LMDeploy Console"
_WITHOUT_A_GPU = (
    "**No GPU is usable here** ({reason}), so the LMDeploy presets (KV-cache quantization, AWQ, TurboMind, "
    "tensor parallelism) cannot load. What this machine shows: the CPU presets, each changing one thing about "
    "the embedded model. Open **Side by side**, load `cpu-int8-dynamic` as side B and ask both the same "
    "question; or tick `cpu`, `cpu-bf16` and `cpu-int8-weight-only` on **Compare**."
)


def build(console: Console, warning: str | None = None) -> gr.Blocks:
    """The whole app as a Blocks; `app.py` launches it. `warning` is shown above everything."""
    with gr.Blocks(title=TITLE, delete_cache=GRADIO_DELETE_CACHE) as demo:
        gr.Markdown(f"# {TITLE}")
        if warning:
            gr.Markdown(f"**Warning:** {warning}", elem_id="banner-warning")
        if (no_gpu := console.checks.machine.no_gpu_reason) is not None:
            gr.Markdown(_WITHOUT_A_GPU.format(reason=no_gpu), elem_id="no-gpu-note")
        header = gr.Markdown(engine_header(console.state()), elem_id="engine-header")
        gauge = gr.Markdown(compact_gauge(console.sampler.latest()), elem_id="compact-gauge")
        admin = AdminOnly(console)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat") as chat_tab:
                preset_knobs = chat.build_tab(console)
            with gr.Tab("Presets", id="presets") as presets_tab:
                switch_events, (engine_views, engine_outputs), preset_picker = presets.build_tab(console, admin)
            with gr.Tab("VRAM", id="vram") as vram_tab:
                vram_timer = vram.build_tab(console)
            with gr.Tab("Tools", id="tools") as tools_tab:
                tools_engine_changed, tools_outputs = tools.build_tab(console)
            with gr.Tab("Side by side", id="side-by-side") as side_tab:
                side_a_switch, side_timer, (side_views, side_outputs) = side_by_side.build_tab(console, admin)
            with gr.Tab("Compare", id="compare") as compare_tab:
                compare_picker, compare_current_job, compare_views = compare.build_tab(console, admin)
            with gr.Tab("Quantize", id="quantize") as quantize_tab:
                quantized, quantize_switch = quantize.build_tab(console, admin)
            with gr.Tab("Fleet", id="fleet") as fleet_tab:
                fleet_timer = fleet.build_tab(console, admin)
        tabs = [chat_tab, presets_tab, vram_tab, tools_tab, side_tab, compare_tab, quantize_tab, fleet_tab]
        tick_only_while_open(tabs, {vram_tab: vram_timer, fleet_tab: fleet_timer, side_tab: side_timer})

        def refresh_header(request: gr.Request):
            banner = "\n\n".join(filter(None, [switch_banner(console.switching), job_banner(console.jobs.current)]))
            who = console.access.what_they_may_do(request.username if request else None)
            header_text = engine_header(console.state()) + f"  \n{who}" + (f"\n\n{banner}" if banner else "")
            return header_text, compact_gauge(console.sampler.latest())

        def refresh_preset_lists():
            names = console.catalog.names()
            return gr.Radio(choices=names, value=console.state().preset), gr.CheckboxGroup(choices=names)

        # One catalog, read from disk wherever presets are listed: a preset saved on another page (or by
        # a Quantize job) shows up when a page loads or opens the tab, keeping what is ticked there.
        quantized.then(refresh_preset_lists, outputs=[preset_picker, compare_picker], api_visibility="private")
        demo.load(refresh_preset_lists, outputs=[preset_picker, compare_picker], api_visibility="private")
        presets_tab.select(
            lambda: gr.Radio(choices=console.catalog.names()), outputs=preset_picker, api_visibility="private"
        )
        compare_tab.select(
            lambda: gr.CheckboxGroup(choices=console.catalog.names()), outputs=compare_picker, api_visibility="private"
        )
        compare_tab.select(compare_current_job, outputs=compare_views, api_visibility="private")
        side_tab.select(side_views, outputs=side_outputs, api_visibility="private")
        for event in [*switch_events, quantize_switch, side_a_switch]:
            event.then(refresh_header, outputs=[header, gauge], api_visibility="private").then(
                preset_knobs.follow, inputs=preset_knobs.inputs, outputs=preset_knobs.outputs, api_visibility="private"
            ).then(tools_engine_changed, outputs=tools_outputs, api_visibility="private")

        budget = TickBudget()
        header_timer = gr.Timer(budget.shortest_s)

        def tick(request: gr.Request):
            """The header, the running settings the knobs follow, and this page's next interval: plain values
            alone (no `gr.skip()`, no component), the cheapest outputs Gradio has; the room shares a budget."""
            return *refresh_header(request), preset_knobs.running_marker(), budget.interval(request.session_hash or "")

        header_timer.tick(
            tick,
            outputs=[header, gauge, preset_knobs.marker, header_timer],
            api_visibility="private",
            show_progress="hidden",
        )

        def page_opened(touched, request: gr.Request):
            """The header, the knobs and the admin-only controls in one event: once the header names the
            user, the page is set up, and nothing of the opening arrives later to overwrite what they typed."""
            return (
                *refresh_header(request),
                *preset_knobs.take_running(unless_touched=touched),
                *admin.on_load(request),
            )

        demo.load(
            page_opened,
            inputs=preset_knobs.touched,
            outputs=[header, gauge, *preset_knobs.outputs, *admin.outputs],
            api_visibility="private",
        )
        let_go_of_closed_pages(demo)
        start_sessions_without_config_copies()
        demo.load(engine_views, outputs=engine_outputs, api_visibility="private")
        demo.load(tools_engine_changed, outputs=tools_outputs, api_visibility="private")
    return demo


def tick_only_while_open(tabs: list[gr.Tab], timers: dict[gr.Tab, gr.Timer]) -> None:
    """Each timer ticks only while its tab is open (Gradio tells a tab's selection, not its leaving, so
    every tab's selection sets them all). A room of pages each refreshing the VRAM charts every
    second and the fleet every two, on tabs nobody looks at, was most of what the console did."""
    for tab in tabs:
        tab.select(
            lambda shown=tab: [gr.Timer(active=owner is shown) for owner in timers],
            outputs=list(timers.values()),
            api_visibility="private",
            show_progress="hidden",
        )
