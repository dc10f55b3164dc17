import pytest

from backends import KINDS, BackendInfo, BackendSpec, EngineOptions
from console.engine_state import EngineState
from telemetry.vram import GpuReading, ProcessMemory, Sample
from ui.engine_card import engine_card


def reproduce(spec: BackendSpec, model: str, kind: str, engine: str) -> str:
    """What the console shows for an engine of this kind, model and engine running from `spec`."""
    return KINDS[kind].reproduce(spec, BackendInfo(kind, model, engine))


def test_lmdeploy_commands_carry_the_preset_s_knobs():
    spec = BackendSpec("lmdeploy", engine=EngineOptions(quant_policy=8, cache_max_entry_count=0.4))
    text = reproduce(spec, "/models/internlm2_5-7b-chat", "lmdeploy", "turbomind")
    assert (
        "lmdeploy serve api_server /models/internlm2_5-7b-chat --backend turbomind --quant-policy 8 "
        "--cache-max-entry-count 0.4"
    ) in text
    assert "TurbomindEngineConfig(quant_policy=8, cache_max_entry_count=0.4)" in text
    compile(text.split("# Python\n", 1)[1], "snippet", "exec")


def test_new_kv_modes_and_prefix_caching_reach_the_commands():
    spec = BackendSpec("lmdeploy", engine=EngineOptions(quant_policy="turbo_quant", enable_prefix_caching=True))
    text = reproduce(spec, "/m", "lmdeploy", "pytorch")
    assert "lmdeploy serve api_server /m --backend pytorch --quant-policy 42 --enable-prefix-caching\n" in text
    assert "PytorchEngineConfig(quant_policy=42, enable_prefix_caching=True)" in text
    compile(text.split("# Python\n", 1)[1], "snippet", "exec")


def test_a_tool_parser_goes_to_the_server_alone():
    spec = BackendSpec("lmdeploy", engine=EngineOptions(tool_parser="qwen"))
    text = reproduce(spec, "/m", "lmdeploy", "pytorch")
    assert "lmdeploy serve api_server /m --backend pytorch --tool-call-parser qwen\n" in text
    assert "lmdeploy chat /m --backend pytorch\n" in text
    compile(text.split("# Python\n", 1)[1], "snippet", "exec")


def test_remote_and_cpu_snippets_are_valid_python():
    remote = BackendSpec("remote", base_url="http://h:23333/v1")
    for spec, model, kind in ((remote, "m", "remote"), (BackendSpec("auto"), "/m", "cpu")):
        text = reproduce(spec, model, kind, "any")
        compile(text.split("# Python", 1)[1].split("\n", 1)[1], "snippet", "exec")


@pytest.mark.parametrize(
    ("weights", "shown"),
    [
        ("fp32", None),
        ("bf16", 'dtype="bfloat16"'),
        ("int8-dynamic", "quantize_dynamic("),
        ("int8-weight-only", "Int8WeightOnlyConfig"),
    ],
)
def test_the_cpu_snippet_holds_the_weights_as_the_preset_does(weights, shown):
    text = reproduce(BackendSpec("cpu", cpu_weights=weights), "/m", "cpu", "any")
    compile(text.split("# Python", 1)[1].split("\n", 1)[1], "snippet", "exec")
    if shown:
        assert shown in text
    else:
        assert "dtype=" not in text and "quantiz" not in text


@pytest.mark.parametrize("kv_cache", ["int4", "int2"])
def test_the_cpu_snippet_quantizes_the_kv_cache_as_the_preset_does(kv_cache):
    text = reproduce(BackendSpec("cpu", cpu_kv_cache=kv_cache), "/m", "cpu", "any")
    compile(text.split("# Python", 1)[1].split("\n", 1)[1], "snippet", "exec")
    assert 'cache_implementation="quantized"' in text and f'"nbits": {kv_cache[-1]}' in text


def test_engine_card_breaks_the_worker_memory_down():
    gib = 2**30
    info = BackendInfo(
        "lmdeploy",
        "/m",
        "pytorch",
        {
            "worker_pid": 7,
            "load_seconds": 12.0,
            "session_len": 8192,
            "weights_bytes": 2 * gib,
            "config": {"quant_policy": 8, "cache_max_entry_count": 0.4, "tp": 1},
            "kv_cache": {"blocks": 1000, "block_size": 64, "tokens": 64000, "bytes": 4 * gib, "source": "engine"},
        },
    )
    sample = Sample(
        0, (GpuReading(0, "H100", 8000, 81920, 0, (ProcessMemory(7, 7 * 1024, "engine worker"),)),), 1, None
    )
    card = engine_card(EngineState(info, "why", "kv-int8", None, None), sample, None)
    assert "| KV quant policy | 8 (KV int8) |" in card and "1,000 blocks × 64 tokens = 64,000 tokens (4.00 GiB)" in card
    assert "worker holds 7.00 GiB: weights 2.00 + KV cache 4.00 + other 1.00" in card


def test_engine_card_shows_sizes_in_mib_and_says_when_weights_are_random():
    details = {"context_tokens": 8192, "weights_bytes": 538_060_032, "random_weights": True}
    info = BackendInfo("cpu", "m", "transformers (CPU, fp32)", details)
    card = engine_card(EngineState(info, "why", "cpu", None, None), Sample(0, (), 1, "no GPU"), None)
    assert "| weights bytes | 513 MiB |" in card and "538060032" not in card
    assert "| weights | **random**" in card and "random weights |" not in card


def test_engine_card_names_its_columns_and_says_none_in_words():
    details = {"context_tokens": 8192, "tool_parser": None}
    info = BackendInfo("cpu", "m", "transformers (CPU, fp32)", details)
    card = engine_card(EngineState(info, "why", "cpu", None, None), Sample(0, (), 1, "no GPU"), None)
    assert card.startswith("| running engine | as it runs |")
    assert "| tool parser | none |" in card and "None" not in card
