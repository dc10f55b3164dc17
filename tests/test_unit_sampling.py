"""Sampling knobs: one declaration of their bounds, which the params, presets, sliders and chat
import all follow (a preset's top_k 500 used to break every later Send)."""

import math

import pytest

from backends import SAMPLING_RANGES, GenerationParams
from console.transcript import FORMAT, TranscriptError, import_chat
from presets.store import PresetError, parse_preset


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"top_k": 2000}, "top_k must be between 1 and 1000"),
        ({"temperature": 5}, "temperature must be between 0 and 2"),
        ({"temperature": math.nan}, "temperature must be between"),
        ({"max_new_tokens": 0}, "max_new_tokens must be between 1 and 32768"),
        ({"repetition_penalty": 3}, "repetition_penalty must be between 0.5 and 2"),
        ({"seed": 2**70}, "seed must be a whole number from 0 to 2\\*\\*63 - 1"),
        ({"seed": -1}, "seed must be"),
    ],
)
def test_params_out_of_range_are_refused_naming_the_knob(values, message):
    with pytest.raises(ValueError, match=message):
        GenerationParams(**values)


def test_the_ends_of_every_range_are_accepted():
    for name, allowed in SAMPLING_RANGES.items():
        GenerationParams(**{name: allowed.low})
        GenerationParams(**{name: allowed.high})
    GenerationParams(seed=2**63 - 1)


def test_a_preset_takes_exactly_what_the_chat_tab_takes():
    top = SAMPLING_RANGES["top_k"].high
    preset = parse_preset(f"backend: cpu\ngeneration:\n  top_k: {top}\n", "mine.yaml")
    assert preset.generation.apply_to(GenerationParams()).top_k == top  # the slider's maximum too
    with pytest.raises(PresetError, match="top_k"):
        parse_preset(f"backend: cpu\ngeneration:\n  top_k: {top + 1}\n", "mine.yaml")


def test_an_imported_chat_with_a_knob_out_of_range_is_refused():
    raw = f'{{"format": "{FORMAT}", "params": {{"temperature": 5}}, "messages": []}}'.encode()
    with pytest.raises(TranscriptError, match="params: temperature must be between 0 and 2"):
        import_chat(raw)


def test_temperatures_too_small_to_divide_by_decode_greedily():
    """Found by fuzzing /chat: 1e-212 passed the bounds and overflowed the logits in transformers."""
    from backends.lmdeploy_config import generation_config

    assert GenerationParams(temperature=0).greedy and GenerationParams(temperature=8.6e-212).greedy
    assert not GenerationParams(temperature=0.05).greedy
    config = generation_config(GenerationParams(temperature=8.6e-212))
    assert not config.do_sample and config.temperature == 1.0


@pytest.mark.parametrize("value", [-1, 21, 2.5, True, "5"])
def test_token_alternatives_are_bounded(value):
    with pytest.raises(ValueError, match="logprobs must be a whole number from 0 to 20"):
        GenerationParams(logprobs=value)


def test_token_probabilities_reach_lmdeploys_generation_config():
    from backends.lmdeploy_config import generation_config

    assert generation_config(GenerationParams(logprobs=5)).logprobs == 5
    assert generation_config(GenerationParams()).logprobs is None
    from backends.lmdeploy_config import EngineOptions, engine_config

    # without a logprobs mode the PyTorch engine returns none (seen on the H200)
    assert engine_config(EngineOptions(), "pytorch").logprobs_mode == "raw_logprobs"
