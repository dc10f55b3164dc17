"""Before a quantization: the checks, the progress parser and the calibration text."""

import json

import pytest

from quantize.calibration import MIN_CHARS, CalibrationError, load_text, windows
from quantize.checks import plan
from quantize.progress import parse_line

SMOLLM2 = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "num_hidden_layers": 30}
LLAMA_128 = {"hidden_size": 1024, "intermediate_size": 2816, "num_attention_heads": 8, "head_dim": 128}


def model_folder(tmp_path, config, name="model"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"0" * 1000)
    return folder


def test_group_64_fits_smollm2_but_only_the_pytorch_engine_loads_it(tmp_path):
    verdict = plan(model_folder(tmp_path, SMOLLM2), tmp_path / "out", 64)
    assert verdict.ok and verdict.engine == "pytorch"
    assert "only the PyTorch engine" in verdict.notes[0]


def test_group_128_is_refused_on_smollm2_because_576_is_no_multiple(tmp_path):
    verdict = plan(model_folder(tmp_path, SMOLLM2), tmp_path / "out", 128)
    assert "group size 128 does not divide hidden size 576" in verdict.errors[0]


def test_group_128_on_aligned_sizes_is_for_turbomind_too(tmp_path):
    verdict = plan(model_folder(tmp_path, LLAMA_128), tmp_path / "out", 128)
    assert verdict.ok and verdict.engine == "turbomind"


@pytest.mark.parametrize("method", ["w8a8-int8", "w8a8-fp8"])
def test_w8a8_takes_no_group_size_and_only_the_pytorch_engine_loads_it(tmp_path, method):
    verdict = plan(model_folder(tmp_path, SMOLLM2), tmp_path / "out", 128, method)  # 128 would not fit AWQ here
    assert verdict.ok and verdict.engine == "pytorch"
    assert "TurboMind refuses W8A8 SmoothQuant" in verdict.notes[0]
    assert ("compute capability 8.9" in " ".join(verdict.notes)) is (method == "w8a8-fp8")


def test_a_smoothquant_model_steers_auto_to_the_pytorch_engine(tmp_path):
    from presets.compat import Machine, check
    from presets.schema import Preset

    folder = model_folder(tmp_path, {**LLAMA_128, "quantization_config": {"quant_method": "smooth_quant"}})
    verdict = check(Preset(), folder, Machine(gpu_count=1, turbomind=True))
    assert verdict.engine == "pytorch" and "TurboMind does not load SmoothQuant (W8A8) models" in verdict.notes[0]


def test_refuses_a_quantized_model_an_odd_group_and_a_full_output_folder(tmp_path):
    source = model_folder(tmp_path, {**SMOLLM2, "quantization_config": {"quant_method": "awq"}})
    output = tmp_path / "out"
    output.mkdir()
    (output / "x").write_text("taken")
    errors = " | ".join(plan(source, output, 48).errors)
    assert "already quantized (awq)" in errors and "pick one of 32, 64, 128" in errors and "not empty" in errors


@pytest.mark.parametrize(
    ("line", "fraction", "message"),
    [
        ("Loading calibrate dataset ...", 0.05, "tokenizing the calibration text"),
        ("model.layers.0, samples: 128, max gpu memory: 1.20 GB", 0.05 + 0.45 / 30, "calibrating layer 1 of 30"),
        ("model.layers.29 smooth weight done. max gpu memory: 1.2 GB", 0.70, "smoothing layer 30 of 30"),
        ("model.layers.14.mlp.down_proj weight packed.", 0.70 + 0.28 * 15 / 30, "packing layer 15 of 30"),
        ("Saved the quantized model to /m", 1.0, "saved"),
    ],
)
def test_progress_follows_lmdeploys_lines(line, fraction, message):
    got_fraction, got_message = parse_line(line, layers=30)
    assert got_fraction == pytest.approx(fraction) and got_message == message


def test_other_lines_are_not_progress():
    assert parse_line("Move model.layers.3 to CPU.", 30) is None


def test_calibration_text_from_jsonl_and_its_errors(tmp_path):
    good = tmp_path / "calib.jsonl"
    good.write_text("\n".join(json.dumps({"text": "word " * 300}) for _ in range(3)))
    assert load_text(good).count("word") == 900
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{not json}\n')
    with pytest.raises(CalibrationError, match="line 2: not JSON"):
        load_text(bad)
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(CalibrationError, match=f"at least {MIN_CHARS:,}"):
        load_text(short)
    assert len(load_text(None)) > 100_000  # the shipped offline default


def test_windows_are_seeded_and_never_longer_than_the_text():
    ids = list(range(1000))
    assert windows(ids, 4, 100, seed=1) == windows(ids, 4, 100, seed=1)
    assert all(len(w) == 100 for w in windows(ids, 4, 100))
    assert windows(ids[:50], 2, 100) == [ids[:50], ids[:50]]
