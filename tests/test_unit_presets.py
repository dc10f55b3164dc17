import pytest

from backends import GenerationParams
from presets.schema import Preset
from presets.store import SHIPPED_DIR, PresetCatalog, PresetError, parse_preset, to_yaml

SHIPPED = sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def test_the_issue_s_presets_ship():
    assert set(SHIPPED) == {
        *("fp16", "cache-0.4", "kv-int8", "kv-int4", "kv-fp8", "kv-turboquant", "prefix-cache", "fp8-weights"),
        *("awq", "awq-kv-int4", "remote", "fleet", "cpu"),
        *("cpu-bf16", "cpu-int8-dynamic", "cpu-int8-weight-only"),  # one change each, for a machine with no GPU
        *("cpu-kv-int4", "cpu-kv-int2"),
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_is_valid_and_described(name):
    preset = PresetCatalog(user_dir=SHIPPED_DIR / "none").get(name)
    assert preset.description


def test_shipped_presets_map_onto_engine_options():
    catalog = PresetCatalog(user_dir=SHIPPED_DIR / "none")
    kv4 = catalog.get("kv-int4").to_spec()
    assert (kv4.kind, kv4.engine.quant_policy, kv4.engine.cache_max_entry_count) == ("lmdeploy", 4, 0.4)
    assert catalog.get("awq").to_spec().engine.model_format == "awq"
    assert catalog.get("cpu").to_spec().kind == "cpu"
    assert catalog.get("cpu-int8-weight-only").to_spec().cpu_weights == "int8-weight-only"
    kv2 = catalog.get("cpu-kv-int2").to_spec()
    assert (kv2.cpu_weights, kv2.cpu_kv_cache) == ("fp32", "int2")  # the cache alone changes


def test_cpu_weights_belong_to_the_cpu_backend():
    with pytest.raises(ValueError, match="cpu_weights only applies to the cpu backend"):
        Preset(backend="lmdeploy", cpu_weights="bf16")


def test_a_cpu_kv_cache_mode_belongs_to_the_cpu_backend_and_names_lmdeploy_s_own():
    with pytest.raises(ValueError, match="cpu_kv_cache only applies to the cpu backend, not lmdeploy; .*quant_policy"):
        Preset(backend="lmdeploy", cpu_kv_cache="int4")


def test_remote_preset_reads_its_key_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("LMDEPLOY_CONSOLE_API_KEY", "sk-test")
    spec = PresetCatalog(user_dir=SHIPPED_DIR / "none").get("remote").to_spec()
    assert (spec.base_url, spec.api_key) == ("http://127.0.0.1:23333/v1", "sk-test")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("quant_polcy: 8", "quant_polcy: unknown field (known fields: engine, model_format, quant_policy"),
        ("cache_max_entry_count: 1.5", "TurboMind aborts its process"),
        ("cache_max_entry_count: 0", "cache_max_entry_count: Input should be greater than 0"),
        ("quant_policy: 2", "quant_policy: Input should be 0, 4, 8, 16, 17 or 42"),
        ("quant_policy: fp9", "quant_policy: Input should be 0, 4, 8, 16, 17 or 42"),
        ("backend: cpu\nenable_prefix_caching: true", "enable_prefix_caching only applies to the lmdeploy backend"),
        ("tp: 0", "tp: Input should be greater than or equal to 1"),
        ("backend: cpu\nquant_policy: 8", "quant_policy only applies to the lmdeploy backend"),
        (
            "backend: lmdeploy\nbase_url: http://x",
            "base_url only applies to the remote backend, not lmdeploy",
        ),
        ("backend: remote\ntool_parser: qwen", "tool_parser only applies to the lmdeploy and cpu backends, not remote"),
        ("tool_parser: qwen; rm", "tool_parser: String should match pattern"),
        ("generation:\n  temprature: 1", "generation.temprature: unknown field (known fields: temperature"),
        ("- a list", "a preset is a YAML mapping"),
        ("key: [unclosed", "not valid YAML"),
    ],
)
def test_bad_presets_name_the_file_and_the_field(text, complaint):
    with pytest.raises(PresetError) as caught:
        parse_preset(text, "mine.yaml")
    assert str(caught.value).startswith("mine.yaml: ")
    assert complaint in str(caught.value)


def test_generation_defaults_override_only_what_they_set():
    preset = parse_preset("backend: cpu\ngeneration:\n  temperature: 0\n  max_new_tokens: 99", "x")
    params = preset.generation.apply_to(GenerationParams())
    assert (params.temperature, params.max_new_tokens, params.top_p) == (0, 99, GenerationParams().top_p)


def test_saved_presets_round_trip_and_cannot_shadow_shipped_ones(tmp_path):
    catalog = PresetCatalog(user_dir=tmp_path)
    mine = Preset(description="mine", quant_policy=8, cache_max_entry_count=0.5)
    path = catalog.save("my-kv8", mine)
    assert path.parent == tmp_path and "quant_policy: 8" in path.read_text()
    assert catalog.get("my-kv8") == mine and "my-kv8" in catalog.names()
    with pytest.raises(PresetError, match="shipped preset"):
        catalog.save("fp16", mine)
    with pytest.raises(PresetError, match="use lowercase letters"):
        catalog.save("../evil", mine)


def test_unknown_preset_lists_the_known_ones(tmp_path):
    with pytest.raises(PresetError, match="the presets are: awq"):
        PresetCatalog(user_dir=tmp_path).get("nope")


def test_yaml_keeps_only_overrides_and_says_which_backend():
    assert to_yaml(Preset(quant_policy=4)) == "backend: lmdeploy\nquant_policy: 4\n"
    assert parse_preset(to_yaml(Preset(quant_policy=4)), "a copy") == Preset(quant_policy=4)


def test_broken_yaml_says_line_and_column_in_words():
    with pytest.raises(PresetError) as caught:
        parse_preset("backend: cpu\nquant_policy: 8: 4\n", "mine.yaml")
    message = str(caught.value)
    assert message.startswith("mine.yaml: not valid YAML at line 2, column 16: mapping values are not allowed here")
    assert "^" not in message and "\n" not in message


def test_the_shipped_presets_form_a_ladder_that_changes_one_thing_at_a_time():
    """fp16 -> cache-0.4 -> KV int8 / int4 / AWQ: each step differs from the one below it in one
    setting, so what a comparison shows is that setting's effect."""
    catalog = PresetCatalog()
    settings = {name: catalog.get(name).model_dump(exclude={"description"}) for name in SHIPPED}
    for lower, upper, changed in [
        ("fp16", "cache-0.4", "cache_max_entry_count"),
        ("cache-0.4", "kv-int8", "quant_policy"),
        ("cache-0.4", "kv-int4", "quant_policy"),
        ("cache-0.4", "kv-fp8", "quant_policy"),
        ("cache-0.4", "kv-turboquant", "quant_policy"),
        ("cache-0.4", "prefix-cache", "enable_prefix_caching"),
        ("cache-0.4", "fp8-weights", "model_format"),
        ("cache-0.4", "awq", "model_format"),
    ]:
        differing = [key for key in settings[lower] if settings[lower][key] != settings[upper][key]]
        assert differing == [changed], (lower, upper)


@pytest.mark.parametrize("name", ["[" * 2416, "a\0b", "../../etc/passwd"])
def test_a_name_no_preset_file_can_have_is_unknown_not_a_fault(tmp_path, name):
    """Found by fuzzing /switch_preset: a 2,416-character name made the file system raise."""
    with pytest.raises(PresetError, match="no preset named") as caught:
        PresetCatalog(user_dir=tmp_path).get(name)
    assert len(str(caught.value)) < 400
