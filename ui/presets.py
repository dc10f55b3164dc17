"""The Presets tab: pick, check, edit and save presets, switch the engine live, reproduce it."""

from __future__ import annotations

import asyncio
import dataclasses

import gradio as gr

from backends import BackendError, Refusal, hide_credentials
from console.core import Console
from console.engine_state import SwitchReport
from presets.store import PresetError, parse_preset, to_yaml

from .admin_only import AdminOnly
from .engine_card import engine_card
from .errors import notice
from .job_view import job_summary
from .tab_parts import Refresh, TabParts


def build_tab(console: Console, admin: AdminOnly) -> TabParts:
    """Lay out the tab; its parts: its switch events, its engine card and reproduce commands, its picker."""
    catalog = console.catalog
    current = console.state().preset
    with gr.Row():
        with gr.Column(scale=1):
            choice = gr.Radio(catalog.names(), value=current, label="Presets", elem_id="preset-choice")
            about = gr.Markdown(elem_id="preset-about")
            with gr.Row():
                switch = gr.Button("Switch to this preset", variant="primary", elem_id="switch-preset")
                back = gr.Button("Back to previous", visible=False, elem_id="back-preset")
                restart = gr.Button("Restart engine", elem_id="restart-engine")
            admin.reason()
            status = gr.Markdown(elem_id="switch-status")
        with gr.Column(scale=1):
            editor = gr.Code(
                language="yaml",
                label="Preset YAML: edit, Check, then Save as a new preset",
                elem_id="preset-editor",
                wrap_lines=True,  # a long description stays in sight, not past the right edge
            )
            with gr.Row():
                check = gr.Button("Check", size="sm")
                new_name = gr.Textbox(placeholder="new-preset-name", show_label=False, scale=2)
                save = gr.Button("Save as", size="sm")
            replace = gr.Checkbox(False, label="Replace a saved preset of that name", elem_id="replace-preset")
    admin.controls(switch, back, restart, save, replace)
    with gr.Row():
        with gr.Column():
            gr.Markdown("### Running engine")
            card = gr.Markdown(elem_id="engine-card")
        with gr.Column():
            reproduce = gr.Code(
                language="shell",
                label="Reproduce this without the console",
                interactive=False,
                wrap_lines=True,
                elem_id="reproduce",
            )

    async def show(name, request: gr.Request):
        """What the preset does, whether it loads here, its YAML; Switch only where it can load."""
        if not name:
            return "", "", gr.Button(interactive=False)
        try:
            preset = catalog.get(name)
        except PresetError as exc:
            text = catalog.path(name).read_text(encoding="utf-8", errors="replace")
            return f"**This preset is invalid:** {exc}", hide_credentials(text), gr.Button(interactive=False)
        description, loads = await _describe(console, preset, catalog.locate(name).name)
        return description, hide_credentials(to_yaml(preset)), gr.Button(interactive=loads and admin.may(request))

    async def check_yaml(text):
        try:
            preset = parse_preset(text, "the edited preset")
        except PresetError as exc:
            return f"**Invalid:** {exc}"
        return (await _describe(console, preset, "the edited preset"))[0]

    def save_yaml(name, text, replace, request: gr.Request):
        try:
            preset = parse_preset(text, "the edited preset")
            path = console.save_preset(name.strip(), preset, replace=bool(replace), user=request.username)
        except Refusal as exc:
            return gr.Radio(), notice("Not saved", exc)
        return gr.Radio(choices=catalog.names(), value=name.strip()), f"**Saved** to `{path}`."

    async def switch_to(name, request: gr.Request):
        """Switch the engine to a preset, reporting progress and the VRAM change."""
        yield (
            f"Switching to **{name}**: checking it, closing the running engine if it needs the GPU, "
            "loading the new one...",
            *engine_views(console),
        )
        switching = asyncio.create_task(console.switch_preset(name, user=request.username))
        async for stage in _stages(console, switching):
            yield f"**{stage}**", *engine_views(console)
        try:
            report = await switching
        except BackendError as exc:  # the load itself failed
            yield notice("Failed", exc), *engine_views(console)
            return
        except Refusal as exc:
            yield notice("Refused (the running engine is untouched)", exc), *engine_views(console)
            return
        yield _report_text(report), *engine_views(console)

    async def restart_clicked(request: gr.Request):
        yield "Restarting the engine...", *engine_views(console)
        restarting = asyncio.create_task(console.restart(user=request.username))
        async for stage in _stages(console, restarting):
            yield f"**{stage}**", *engine_views(console)
        try:
            await restarting
        except Refusal as exc:
            yield notice("Restart failed", exc), *engine_views(console)
            return
        yield "**Engine restarted.**", *engine_views(console)

    async def go_back(request: gr.Request):
        previous = console.state().previous_preset
        async for update in switch_to(previous, request):
            yield update

    views = [status, card, reproduce, back]
    choice.change(show, choice, [about, editor, switch], api_visibility="private")
    check.click(check_yaml, editor, about, api_visibility="private")
    # the message goes under the buttons: `about` is repainted for the saved preset, which is selected
    save.click(save_yaml, [new_name, editor, replace], [choice, status], api_visibility="private")
    switch_event = switch.click(
        switch_to, choice, views, api_visibility="private", concurrency_limit=1, concurrency_id="switch"
    )
    back_event = back.click(
        go_back, None, views, api_visibility="private", concurrency_limit=1, concurrency_id="switch"
    )
    restart_event = restart.click(
        restart_clicked, None, views, api_visibility="private", concurrency_limit=1, concurrency_id="switch"
    )
    _register_api(console)
    return TabParts(
        switches=[switch_event, back_event, restart_event],
        preset_lists=[choice],
        engine_view=Refresh(lambda: engine_views(console), [card, reproduce, back]),
    )


async def _stages(console: Console, work: asyncio.Task):
    """The stage a switch or restart is in and its time so far, every half second until it ends."""
    while not work.done():
        await asyncio.wait({work}, timeout=0.5)
        if (progress := console.switching) is not None and not work.done():
            yield progress.describe().capitalize()


def engine_views(console: Console) -> tuple:
    state = console.state()
    previous = state.previous_preset
    back = gr.Button(f"Back to {previous}", visible=bool(previous) and previous != state.preset)
    return engine_card(state, console.sampler.latest(), console.last_switch), console.reproduce(), back


async def _describe(console: Console, preset, source: str) -> tuple[str, bool]:
    """The preset's description and what the checks say of it here (for a remote preset, whether its
    server answers now); whether it can load."""
    text = preset.description or "(no description)"
    try:
        verdict = console.checks.check(preset, source)
    except PresetError as exc:
        return f"{text}\n\n**Cannot load here:** {exc}", False
    if verdict.ok and (problem := await console.checks.unreachable(preset, source)):
        return f"{text}\n\n**Cannot load now:** {problem}", False
    if verdict.errors:
        text += "\n\n**Cannot load here:**\n" + "\n".join(f"- {e}" for e in verdict.errors)
    else:
        text += "\n\n**OK: loads here.**"
    if verdict.notes:
        text += "\n" + "\n".join(f"- {n}" for n in verdict.notes)
    return text, verdict.ok


def _report_text(report: SwitchReport) -> str:
    text = f"**Switched to {report.preset}** in {report.load_seconds:.1f} s."
    if report.vram_delta_mib is not None:
        text += (
            f" GPU memory used: {report.vram_before_mib / 1024:.2f} GiB before, "
            f"{report.vram_after_mib / 1024:.2f} GiB after ({report.vram_delta_mib / 1024:+.2f} GiB)."
        )
    return text + "".join(f"\n- {note}" for note in report.notes)


def _register_api(console: Console) -> None:
    def presets() -> list[dict]:
        """Every preset: its name, what it sets, whether it runs now, and why it cannot load here (if so)."""
        listing = []
        for name in console.catalog.names():
            entry = {"name": name, "current": name == console.state().preset}
            try:
                preset = console.catalog.get(name)
                entry.update(preset.model_dump(exclude_defaults=True))
                if preset.base_url:
                    entry["base_url"] = hide_credentials(preset.base_url)
                entry["problems"] = list(console.checks.check(preset, console.catalog.locate(name).name).errors)
            except PresetError as exc:
                entry["problems"] = [str(exc)]
            listing.append(entry)
        return listing

    async def switch_preset(name: str, request: gr.Request) -> dict:
        """Switch the engine to the named preset (admins only); returns the outcome and the new engine status."""
        try:
            report = await console.switch_preset(name, user=request.username)
        except Refusal as exc:
            return {"ok": False, "error": str(exc), "engine_status": engine_status()}
        return {"ok": True, **dataclasses.asdict(report), "engine_status": engine_status()}

    def engine_status() -> dict:
        """The running engine: backend, model, engine, KV cache, memory, the preset it came from, and the job
        that drives it (a comparison, a quantization: chats are slower or wait meanwhile), or the last one."""
        state, job = console.state(), console.current_job()
        return {
            "preset": state.preset,
            "previous_preset": state.previous_preset,
            "reason": state.reason,
            **dataclasses.asdict(state.info),
            "job": job_summary(job.status()) if job else None,
        }

    gr.api(presets, api_name="presets")
    gr.api(switch_preset, api_name="switch_preset", concurrency_limit=1, concurrency_id="switch")

    async def restart_engine(request: gr.Request) -> dict:
        """Start the last engine again after a crash (admins only); returns the new engine status."""
        try:
            await console.restart(user=request.username)
        except Refusal as exc:
            return {"ok": False, "error": str(exc), "engine_status": engine_status()}
        return {"ok": True, "engine_status": engine_status()}

    gr.api(engine_status, api_name="engine_status")
    gr.api(restart_engine, api_name="restart_engine", concurrency_limit=1, concurrency_id="switch")
