"""Gradio only: one module per tab. Nothing here imports an engine library."""

from __future__ import annotations

import functools

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
from .tab_parts import Refresh, TabParts
from .vram_figures import compact_gauge

TITLE = "LMDeploy Console"
_WITHOUT_A_GPU = (
    "**No GPU is usable here** ({reason}), so the LMDeploy presets (KV-cache quantization, AWQ, TurboMind, "
    "tensor parallelism) cannot load. What this machine shows: the CPU presets, each changing one thing about "
    "the embedded model. Open **Side by side**, load `cpu-int8-dynamic` as side B and ask both the same "
    "question; or tick `cpu`, `cpu-bf16` and `cpu-kv-int4` on **Compare** (weights halved, KV cache a sixth)."
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
        parts: dict[gr.Tab, TabParts] = {}
        with gr.Tabs():
            for title, tab_id, build_tab in _TABS:
                with gr.Tab(title, id=tab_id) as tab:
                    parts[tab] = build_tab(console, admin)
        tick_only_while_open(list(parts), {tab: part.timer for tab, part in parts.items() if part.timer})
        preset_knobs = next(part.preset_knobs for part in parts.values() if part.preset_knobs)
        engine_views = [part.engine_view for part in parts.values() if part.engine_view]

        def refresh_header(request: gr.Request):
            banner = "\n\n".join(filter(None, [switch_banner(console.switching), job_banner(console.current_job())]))
            who = console.access.what_they_may_do(request.username if request else None)
            header_text = engine_header(console.state()) + f"  \n{who}" + (f"\n\n{banner}" if banner else "")
            return header_text, compact_gauge(console.sampler.latest())

        # One catalog, read from disk wherever presets are listed: a preset saved on another page (or by
        # a Quantize job) shows up when a page loads or opens the tab, keeping what is ticked there.
        every_list = [listed for part in parts.values() for listed in part.preset_lists]
        relist_all = Refresh(lambda: _relisted(console, every_list, current=True), every_list)
        for event in (event for part in parts.values() for event in part.catalog_changes):
            _then(event, relist_all)
        for tab, part in parts.items():
            if part.preset_lists:
                relist = functools.partial(_relisted, console, part.preset_lists, current=False)
                tab.select(relist, outputs=part.preset_lists, api_visibility="private")
            if part.on_open:
                tab.select(
                    part.on_open.fn,
                    outputs=part.on_open.outputs,
                    api_visibility="private",
                    show_progress="hidden",  # it follows a running job: no overlay over the form meanwhile
                )
        after_a_switch = [Refresh(refresh_header, [header, gauge]), preset_knobs.following(), *engine_views]
        for event in (event for part in parts.values() for event in part.switches):
            for refresh in after_a_switch:
                event = _then(event, refresh)

        budget = TickBudget()
        header_timer = gr.Timer(budget.shortest_s)

        async def tick(request: gr.Request):
            """The header, the running settings the knobs follow, and this page's next interval: plain values
            alone (no `gr.skip()`, no component), the cheapest outputs Gradio has; the room shares a budget.
            A coroutine, and its values sent as they are: Gradio runs a plain function, and each output's
            postprocessing, in a worker thread and back, four hand-offs a tick waiting for the GIL while the
            event loop holds it (765 in one round of 256 pages chatting; the values are final already)."""
            return *refresh_header(request), preset_knobs.running_marker(), budget.interval(request.session_hash or "")

        header_timer.tick(
            tick,
            outputs=[header, gauge, preset_knobs.marker, header_timer],
            api_visibility="private",
            show_progress="hidden",
            postprocess=False,
        )

        def page_opened(touched, request: gr.Request):
            """All a page sets as it opens, in one event (each event costs the console a queue join, a run
            and its messages: four of them were 27 ms of its CPU a page): the preset lists, the header, the
            knobs, the admin-only controls and the views of the running engine. Once the header names the
            user the page is set up, and nothing of the opening arrives later to overwrite what they typed."""
            return (
                *_values_of(relist_all),
                *refresh_header(request),
                *preset_knobs.take_running(unless_touched=touched),
                *admin.on_load(request),
                *(value for view in engine_views for value in _values_of(view)),
            )

        demo.load(
            page_opened,
            inputs=preset_knobs.touched,
            outputs=[
                *relist_all.outputs,
                header,
                gauge,
                *preset_knobs.outputs,
                *admin.outputs,
                *(output for view in engine_views for output in view.outputs),
            ],
            api_visibility="private",
            show_progress="hidden",  # no "0.1s" timer flashing over the header as a page opens
        )
        let_go_of_closed_pages(demo)
        start_sessions_without_config_copies()
    return demo


# (title, id, build): every tab's build_tab takes the console and the admin-only controls, returns its parts
_TABS = [
    ("Chat", "chat", lambda console, admin: chat.build_tab(console)),
    ("Presets", "presets", presets.build_tab),
    ("VRAM", "vram", lambda console, admin: vram.build_tab(console)),
    ("Tools", "tools", lambda console, admin: tools.build_tab(console)),
    ("Side by side", "side-by-side", side_by_side.build_tab),
    ("Compare", "compare", compare.build_tab),
    ("Quantize", "quantize", quantize.build_tab),
    ("Fleet", "fleet", fleet.build_tab),
]


def _then(event, refresh: Refresh):
    """Run `refresh` after an event."""
    return event.then(
        refresh.fn,
        inputs=refresh.inputs or None,
        outputs=refresh.outputs,
        api_visibility="private",
        show_progress="hidden",  # a page part catching up, not a result anyone waits for
    )


def _values_of(refresh: Refresh) -> tuple:
    """What a refresh that reads no inputs writes, one value an output (Gradio takes one output's bare)."""
    values = refresh.fn()
    return (values,) if len(refresh.outputs) == 1 else tuple(values)


def _relisted(console: Console, lists: list, current: bool):
    """The catalog's names in each list of presets; `current`: a picker also selects the running preset."""
    names = console.catalog.names()

    def relist(listed):
        if not isinstance(listed, gr.Radio):
            return gr.CheckboxGroup(choices=names)
        return gr.Radio(choices=names, value=console.state().preset) if current else gr.Radio(choices=names)

    updates = [relist(listed) for listed in lists]
    return updates[0] if len(updates) == 1 else updates  # Gradio takes one output's value bare


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
