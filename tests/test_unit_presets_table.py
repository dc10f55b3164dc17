import pytest

from bench.presets_table import load_settings
from compare.load import GoodputTarget, LoadSettings


def test_the_benchmark_s_load_fields_make_a_sweep_with_a_goodput_target():
    made = load_settings("256:1024:256", "1, 4, 16, 64, 256", "1000:20")
    assert made == LoadSettings(256, 1024, 256, None, (1, 4, 16, 64, 256), GoodputTarget(1000.0, 20.0))
    assert load_settings("64:128:32:8", None, None) == LoadSettings(64, 128, 32, 8)
    assert load_settings(None, "1,4", None) is None  # a sweep without a load test: nothing to sweep


def test_a_falling_sweep_is_refused_as_the_compare_tab_refuses_it():
    with pytest.raises(ValueError, match="rising"):
        load_settings("256:1024:256", "16,4", None)
