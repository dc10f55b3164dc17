import os

import pytest

from telemetry.vram import Event, Sample, VramSampler
from tests.scripted_nvml import ScriptedNvml
from ui.vram_figures import compact_gauge, gauge_figure, process_rows, sample_as_json, timeline_figure

TWO_GPUS = [
    {
        "name": "H100",
        "used_mib": 20480,
        "total_mib": 81920,
        "util": 35,
        "processes": [(4242, 19000), (os.getpid(), 600)],
    },
    {"name": "H100", "used_mib": 19456, "total_mib": 81920, "util": 30, "processes": [(4243, 18800)]},
]


@pytest.fixture(autouse=True)
def every_gpu_visible(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_every_gpu_is_read_with_its_processes_named():
    sampler = VramSampler(nvml=ScriptedNvml(TWO_GPUS))
    sampler.name_process(4242, "engine worker")
    sample = sampler.sample()
    assert sample.error is None and len(sample.gpus) == 2
    first = sample.gpus[0]
    assert (first.name, first.used_mib, first.total_mib, first.util_pct) == ("H100", 20480, 81920, 35)
    assert [(p.pid, p.role) for p in first.processes] == [(4242, "engine worker"), (os.getpid(), "console")]
    assert sample.gpus[1].processes[0].role == "other"
    assert sample.used_mib() == 20480 + 19456
    assert sample.console_rss_mib > 0


@pytest.mark.parametrize(
    ("visible", "read"),
    [("1", [1]), ("1,0", [1, 0]), ("GPU-00000001", [1]), ("0,7,1", [0]), ("", []), ("MIG-4f1c", [0, 1])],
)
def test_only_the_gpus_cuda_visible_devices_gives_are_read(monkeypatch, visible, read):
    """A console pinned to some GPUs of a shared machine counts their memory alone (NVML sees every card);
    as CUDA does, an entry that names no GPU ends the list."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    sample = VramSampler(nvml=ScriptedNvml(TWO_GPUS)).sample()
    assert [gpu.index for gpu in sample.gpus] == read
    assert sample.used_mib() == sum(TWO_GPUS[i]["used_mib"] for i in read)


def test_without_nvml_the_sample_says_why_and_keeps_the_rss():
    sample = VramSampler(nvml=ScriptedNvml([], fail_init=True)).sample()
    assert sample.gpus == () and "no NVIDIA driver or GPU was found" in sample.error
    assert "Driver Not Loaded" in sample.error and "NVMLError" not in sample.error  # NVML's words, not its class
    assert sample.console_rss_mib > 0


def test_an_nvml_error_mid_run_is_a_value_not_an_exception():
    nvml = ScriptedNvml(TWO_GPUS)
    sampler = VramSampler(nvml=nvml)
    nvml.fail_reads = True
    assert "GPU is lost" in sampler.sample().error


def test_a_gpu_nvml_cannot_read_leaves_the_others_and_says_which_failed():
    lost = {**TWO_GPUS[0], "lost": True}
    nameless = {key: value for key, value in TWO_GPUS[1].items() if key != "name"}
    sample = VramSampler(nvml=ScriptedNvml([lost, nameless])).sample()
    assert [(g.index, g.name, g.used_mib) for g in sample.gpus] == [(1, "GPU 1", 19456)]
    assert sample.error == "GPU 0: NVML error: GPU is lost"


def test_history_is_a_ring_and_events_are_kept():
    sampler = VramSampler(history=3, nvml=ScriptedNvml(TWO_GPUS))
    for _ in range(5):
        sampler.sample()
    sampler.mark("engine loaded: kv-int8")
    assert len(sampler.history()) == 3
    assert [e.label for e in sampler.events()] == ["engine loaded: kv-int8"]


def test_gauges_show_every_gpu_and_fall_back_to_rss():
    two = gauge_figure(VramSampler(nvml=ScriptedNvml(TWO_GPUS)).sample())
    assert len(two.data) == 2 and two.data[0].value == 20.0 and two.data[0].gauge.axis.range == (0, 80.0)
    none = gauge_figure(VramSampler(nvml=ScriptedNvml([], fail_init=True)).sample())
    assert len(none.data) == 1 and "RSS" in none.data[0].title.text


def test_timeline_has_a_line_per_gpu_and_labels_only_what_matters():
    sampler = VramSampler(nvml=ScriptedNvml(TWO_GPUS))
    sampler.sample()
    sampler.mark("switch to kv-int8")
    sampler.sample()
    for _ in range(20):  # a busy chat: two events an answer
        sampler.mark("generation started")
        sampler.mark("generation ended")
    sampler.mark("engine loaded: kv-int8")
    figure = timeline_figure(sampler.history(), sampler.events())
    assert [trace.name for trace in figure.data] == ["GPU 0 used", "GPU 1 used", "what the console did"]
    assert len(figure.data[2].hovertext) == 42  # every event is in the data and the hover
    # lines and labels only for switches, loads and jobs; these two, moments apart, in one label
    assert [a.text for a in figure.layout.annotations] == ["switch to kv-int8 → engine loaded: kv-int8"]
    assert len(figure.layout.shapes) == 1


def test_timeline_labels_apart_stay_apart_and_close_ones_share_one():
    history = [Sample(time_s=t, gpus=(), console_rss_mib=100, error=None) for t in (0.0, 600.0)]
    events = [Event(10, "switch to a"), Event(14, "engine loaded: a"), Event(300, "switch to b")]
    figure = timeline_figure(history, events)  # ten minutes: a label is 12 s wide
    assert [a.text for a in figure.layout.annotations] == ["switch to a → engine loaded: a", "switch to b"]


def test_text_views_and_json():
    sampler = VramSampler(nvml=ScriptedNvml(TWO_GPUS))
    sampler.name_process(4242, "engine worker")
    sample = sampler.sample()
    assert compact_gauge(sample) == "VRAM — GPU 0: 20.0 / 80 GiB · 35% | GPU 1: 19.0 / 80 GiB · 30%"
    assert process_rows(sample)[0] == [0, 4242, "engine worker", 19000]
    document = sample_as_json(sample, sampler.events())
    assert document["gpus"][1]["used_mib"] == 19456 and document["error"] is None
