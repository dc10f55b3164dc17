"""The AWQ job for real: LMDeploy's quantization of the embedded model, run on the CPU here
(`device="cpu"`, float16: CPUs lack the bf16 check; the console runs it on CUDA), with offline calibration text."""

import asyncio
import json
import shutil

import psutil
import pytest

from backends import BackendSpec
from console.core import Console
from console.engine_state import NoEngine
from console.jobs import Job
from presets.store import PresetCatalog
from quantize.job import QuantizeSettings, run_quantization

pytestmark = pytest.mark.app


def settings_for(model, output, **overrides) -> QuantizeSettings:
    values = dict(
        model=model,
        output=output,
        preset_name="smol-awq",
        group_size=64,
        samples=4,
        seqlen=128,
        dtype="float16",
        device="cpu",
    )
    return QuantizeSettings(**{**values, **overrides})


async def test_quantize_the_embedded_model_registers_an_awq_preset_and_brings_the_engine_back(
    embedded_folder, tmp_path
):
    catalog = PresetCatalog(user_dir=tmp_path / "presets")
    console = await Console.start(BackendSpec(kind="cpu"), catalog=catalog)
    output = tmp_path / "models" / "smol-awq-g64"
    job = console.jobs.start(
        Job("quantization", lambda job: run_quantization(console, settings_for(embedded_folder, output), job))
    )
    status = await job.wait()
    assert status.state == "done", status.log
    assert "model.layers.29.mlp.down_proj weight packed." in status.log  # LMDeploy's own lines, live
    assert json.loads((output / "config.json").read_text())["quantization_config"]["group_size"] == 64
    assert not (output / "inputs_stats.pth").exists()
    result = status.result
    assert result.engine == "pytorch"  # SmolLM2's hidden size 576 is no multiple of TurboMind's 128
    assert result.weights_bytes_after < result.weights_bytes_before / 2
    preset = catalog.get("smol-awq")
    assert (preset.model_format, preset.model, preset.engine) == ("awq", str(output), "pytorch")
    assert console.state().info.kind == "cpu"  # unloaded for the job, then back
    await console.close()


@pytest.mark.parametrize(("method", "stored"), [("w8a8-int8", "int8"), ("w8a8-fp8", "float8_e4m3fn")])
async def test_smoothquant_w8a8_of_the_embedded_model_becomes_a_pytorch_preset(
    embedded_folder, tmp_path, method, stored
):
    console = Console(NoEngine("none"), "none", catalog=PresetCatalog(user_dir=tmp_path / "presets"))
    output = tmp_path / "models" / method
    settings = settings_for(embedded_folder, output, preset_name="smol-w8a8", method=method, unload_engine=False)
    status = await console.jobs.start(Job("quantization", lambda job: run_quantization(console, settings, job))).wait()
    assert status.state == "done", status.log
    assert any(line.startswith("model.layers.29 smooth weight done") for line in status.log)  # LMDeploy's lines
    config = json.loads((output / "config.json").read_text())["quantization_config"]
    assert config == {"quant_method": "smooth_quant", "quant_dtype": stored}
    # int8 or fp8 linear weights; SmolLM2's tied fp16 embedding (56 MiB of 270) stays as it was
    assert status.result.weights_bytes_after < 0.65 * status.result.weights_bytes_before
    preset = console.catalog.get("smol-w8a8")
    assert (preset.model_format, preset.engine) == ("hf", "pytorch") and "W8A8 SmoothQuant" in preset.description


async def test_cancel_stops_the_worker_and_leaves_no_half_model(embedded_folder, tmp_path):
    console = Console(NoEngine("none"), "none", catalog=PresetCatalog(user_dir=tmp_path / "presets"))
    output = tmp_path / "out"
    settings = settings_for(embedded_folder, output, samples=64, seqlen=512, unload_engine=False)
    job = console.jobs.start(Job("quantization", lambda job: run_quantization(console, settings, job)))
    while "calibrating layer" not in job.status().message:
        assert not job.status().finished, job.status().log
        await asyncio.sleep(0.2)
    job.cancel()
    assert (await job.wait()).state == "cancelled"
    assert not output.exists()
    workers = [p for p in psutil.process_iter(["cmdline"]) if "quantize.worker" in " ".join(p.info["cmdline"] or [])]
    assert workers == []


async def test_an_architecture_lmdeploy_cannot_quantize_says_so(embedded_folder, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=64, n_head=2, n_positions=256, vocab_size=49152)).save_pretrained(
        model
    )
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(embedded_folder / name, model / name)
    console = Console(NoEngine("none"), "none", catalog=PresetCatalog(user_dir=tmp_path / "presets"))
    settings = settings_for(model, tmp_path / "out", unload_engine=False)
    status = await console.jobs.start(Job("quantization", lambda job: run_quantization(console, settings, job))).wait()
    assert status.state == "failed"
    assert status.error.startswith("LMDeploy cannot quantize this model's architecture") and "GPT2" in status.error
    assert catalog_is_empty(console)


def catalog_is_empty(console) -> bool:
    return not list(console.catalog.user_dir.glob("*.yaml"))
