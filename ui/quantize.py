"""The Quantize tab: AWQ W4A16 or W8A8 SmoothQuant from the browser, then a preset to switch to."""

from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr

from backends import EMBEDDED_MODEL_NAME, Refusal, embedded_hf_folder
from console.core import Console
from console.jobs import JobOrder
from model_folders.cache import cache_dir
from presets.store import PresetError
from quantize.checks import GROUP_SIZES, plan
from quantize.job import QuantizeResult, QuantizeSettings, run_quantization
from quantize.methods import METHODS

from .admin_only import AdminOnly
from .errors import REFUSABLE_PROGRESS, notice, refused, whole_number
from .job_view import follow, log_tail, status_markdown
from .tab_parts import TabParts

EMBEDDED_CHOICE = f"embedded: {EMBEDDED_MODEL_NAME}"


def build_tab(console: Console, admin: AdminOnly) -> TabParts:
    """Lay out the tab; its parts: a quantization ended (a preset may be new), and a switch to the new
    preset (the engine changed)."""
    no_gpu = console.checks.machine.no_gpu_reason if console.checks.machine.gpu_count == 0 else None
    gr.Markdown(
        "LMDeploy's own quantization (`auto_awq`, `smooth_quant`) in a process of its own. Calibration "
        "uses your text or the built-in offline text (nothing is downloaded). The result becomes a preset. "
        "Admins only."
        + (f"\n\n**Quantization needs a CUDA GPU and none is usable here** ({no_gpu})." if no_gpu else "")
    )
    with gr.Row():
        source = gr.Dropdown(
            _source_choices(console), value=EMBEDDED_CHOICE, allow_custom_value=True, label="Source model"
        )
        output = gr.Textbox(label="Output folder (a name goes under the first model root)", value="smollm2-awq-g64")
        preset_name = gr.Textbox(label="New preset name", value="smollm2-awq")
    method = gr.Radio(
        [(m.label, m.name) for m in METHODS.values()], value="awq", label="Method", elem_id="quantize-method"
    )
    gr.Markdown("\n".join(f"- {m.describe()}" for m in METHODS.values()))
    with gr.Row():
        group = gr.Dropdown(list(GROUP_SIZES), value=64, label="Group size (AWQ; TurboMind loads 128 only)")
        samples = gr.Slider(1, 1024, value=128, step=1, label="Calibration samples")
        seqlen = gr.Slider(16, 8192, value=2048, step=16, label="Calibration sequence length")
        dtype = gr.Radio(["auto", "float16", "bfloat16"], value="auto", label="dtype")
    with gr.Row():
        calibration = gr.File(
            label='Calibration text (.txt, or .jsonl of {"text": ...}); empty: built-in', file_types=[".txt", ".jsonl"]
        )
        unload = gr.Checkbox(value=True, label="Unload the engine first (frees its GPU memory; it comes back after)")
    with gr.Row():
        check = gr.Button("Check", elem_id="quantize-check")
        start = gr.Button("Quantize", variant="primary", interactive=no_gpu is None, elem_id="quantize-start")
        cancel = gr.Button("Cancel")
    admin.controls(start, cancel)
    admin.reason()
    result = gr.Markdown(elem_id="quantize-result")  # under the buttons: Check's answer is read there
    progress = gr.Markdown(status_markdown(None), elem_id="quantize-progress")
    log = gr.Textbox(label="Log", lines=8, max_lines=8, autoscroll=True, interactive=False, elem_id="quantize-log")
    switch = gr.Button("Switch to the new preset", visible=False, variant="primary")
    new_preset = gr.State()

    def settings_from(
        source_model,
        output_folder,
        new_preset_name,
        group_size,
        samples_n,
        seq_len,
        data_type,
        text_file,
        free_gpu,
        quant_method,
    ) -> QuantizeSettings:
        if not (output_folder or "").strip() or not (new_preset_name or "").strip():
            raise ValueError("name the output folder and the new preset")
        if new_preset_name.strip() in console.catalog.names():  # found before the job, not after it
            raise ValueError(f"a preset named {new_preset_name.strip()!r} exists already; pick another name")
        return QuantizeSettings(
            model=_resolve_source(console, source_model),
            output=console.model_roots.new_folder(output_folder.strip(), cache_dir() / "models"),
            preset_name=new_preset_name.strip(),
            group_size=whole_number(group_size, "group size"),
            samples=whole_number(samples_n, "calibration samples"),
            seqlen=whole_number(seq_len, "calibration sequence length"),
            dtype=data_type,
            calibration_file=_upload_path(text_file) if text_file else None,
            unload_engine=bool(free_gpu),
            method=quant_method or "awq",
        )

    inputs = [source, output, preset_name, group, samples, seqlen, dtype, calibration, unload, method]

    @functools.wraps(settings_from)  # the same named settings as /quantize, in the API too
    def check_clicked(*values) -> str:
        try:
            settings = settings_from(*values)
        except (Refusal, ValueError) as exc:
            return f"**Cannot start:** {exc}"
        verdict = plan(settings.model, settings.output, settings.group_size, settings.method)
        lines = [f"- **{e}**" for e in verdict.errors] + [f"- {n}" for n in verdict.notes]
        if no_gpu:
            lines.append(f"- **needs a CUDA GPU** ({no_gpu})")
        return "\n".join(["Ready to quantize." if verdict.ok and not no_gpu else "Not ready:", *lines])

    async def quantize(
        source_model,
        output_folder,
        new_preset_name,
        group_size,
        samples_n,
        seq_len,
        data_type,
        text_file,
        free_gpu,
        quant_method,
        request: gr.Request,
    ):
        """Quantize a model (admins only, needs a CUDA GPU) with `quant_method` awq (W4A16), w8a8-int8 or
        w8a8-fp8 (SmoothQuant; `group_size` is AWQ's alone); the result names the new preset."""

        def prepare():
            if no_gpu:
                raise ValueError(f"quantization needs a CUDA GPU and none is usable here ({no_gpu})")
            settings = settings_from(
                source_model,
                output_folder,
                new_preset_name,
                group_size,
                samples_n,
                seq_len,
                data_type,
                text_file,
                free_gpu,
                quant_method,
            )
            return JobOrder(run_quantization, settings)

        try:
            job = await console.start_job("quantization", prepare, user=request.username)
        except (Refusal, ValueError) as exc:
            raise refused(str(exc)) from exc
        async for status in follow(job):
            yield status_markdown(status), log_tail(status), gr.skip(), gr.skip(), gr.skip()
        if status.state == "failed":
            raise refused(status.error)
        done = status.state == "done"
        yield (
            status_markdown(status),
            log_tail(status),
            _result_text(status.result) if done else "",
            gr.Button(f"Switch to {status.result.preset}", visible=True) if done else gr.skip(),
            status.result.preset if done else None,
        )

    async def cancel_clicked(request: gr.Request):
        await console.cancel_job("quantization", user=request.username)

    async def switch_clicked(name, request: gr.Request):
        try:
            report = await console.switch_preset(name, user=request.username)
        except Refusal as exc:
            return notice("Not switched", exc)
        return f"**Switched to {report.preset}** in {report.load_seconds:.1f} s."

    check.click(check_clicked, inputs, result, api_name="check_quantize")
    quantized = start.click(
        quantize,
        inputs,
        [progress, log, result, switch, new_preset],
        api_name="quantize",
        show_progress=REFUSABLE_PROGRESS,
    )
    cancel.click(cancel_clicked, api_name="cancel_quantize")
    switched = switch.click(
        switch_clicked, new_preset, result, api_visibility="private", concurrency_limit=1, concurrency_id="switch"
    )
    return TabParts(switches=[switched], catalog_changes=[quantized])


def _source_choices(console: Console) -> list[str]:
    """The embedded model and every unquantized model a preset names."""
    models = []
    for name in console.catalog.names():
        try:
            preset = console.catalog.get(name)
        except PresetError:
            continue
        if preset.model and preset.model_format == "hf" and preset.model not in models:
            models.append(preset.model)
    return [EMBEDDED_CHOICE, *models]


def _resolve_source(console: Console, value: str):
    if not value or value == EMBEDDED_CHOICE:
        return embedded_hf_folder()
    return console.model_roots.resolve(value.strip())


def _upload_path(upload) -> Path:
    return Path(upload if isinstance(upload, str) else upload.name)


def _result_text(result: QuantizeResult) -> str:
    before, after = result.weights_bytes_before / 2**20, result.weights_bytes_after / 2**20
    return (
        f"**Quantized in {result.seconds:.0f} s** into `{result.output}`: weight files {before:,.0f} MiB -> "
        f"{after:,.0f} MiB. Saved as preset **{result.preset}** (engine: {result.engine})."
    )
