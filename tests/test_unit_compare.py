"""Comparison settings, prompt parsing, the result table, its exports, and the job slot."""

import asyncio
import json

import pytest

from compare import report
from compare.prompts import MAX_USER_PROMPTS, builtin_prompts, user_prompts
from compare.runner import CompareSettings, Comparison, PresetResult, PromptOutput
from console.jobs import Job, JobBusy, JobFailed, JobSlot

PROMPTS = builtin_prompts()


def settings(**overrides) -> CompareSettings:
    values = {"presets": ("a", "b"), "prompts": (PROMPTS["math"],), **overrides}
    return CompareSettings(**values)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"presets": ("a",)}, "pick 2 to 4 presets"),
        ({"presets": ("a", "b", "c", "d", "e")}, "pick 2 to 4 presets"),
        ({"presets": ("a", "a")}, "each preset can be picked once"),
        ({"prompts": ()}, "at least one prompt"),
        ({"concurrency": 0}, "between 1 and 64"),
    ],
)
def test_settings_refuse_what_cannot_be_run(overrides, message):
    with pytest.raises(ValueError, match=message):
        settings(**overrides)


def test_settings_decode_greedily():
    params = settings(max_new_tokens=64).params()
    assert (params.temperature, params.top_k, params.max_new_tokens) == (0.0, 1, 64)


def test_user_prompts_are_one_per_line_with_limits():
    cases = user_prompts("First?\n\n  Second?  \n")
    assert [(c.name, c.messages[0]["content"]) for c in cases] == [
        ("your prompt 1", "First?"),
        ("your prompt 2", "Second?"),
    ]
    with pytest.raises(ValueError, match=f"at most {MAX_USER_PROMPTS}"):
        user_prompts("\n".join(["q"] * (MAX_USER_PROMPTS + 1)))
    with pytest.raises(ValueError, match="over 20,000 characters"):
        user_prompts("x" * 20_001)


def test_builtin_prompts_include_a_long_context_and_a_tool_call():
    assert len(PROMPTS["long context"].messages[0]["content"]) > 10_000
    assert PROMPTS["tool call"].tools and PROMPTS["tool call"].tool_choice == "required"


def comparison() -> Comparison:
    fp16 = PresetResult(
        "fp16", "pytorch", "m", 40.0, 33_000.0, 0.25, 30.9, 1_440_960, 12.0, 400.0, 6_000.0, 8.1234, "", []
    )
    fp16.outputs = [PromptOutput("math", "The speed is 80 km/h.", 12.0, 9, 400.0)]
    int4 = PresetResult("kv-int4", "pytorch", "m", 41.0, 33_100.0, 0.25, 30.9, 5_123_520, 13.0, 390.0, 6_100.0, None)
    int4.perplexity_note = "n/a: no"
    int4.outputs = [PromptOutput("math", "The speed is 90 km/h.", 13.0, 9, 390.0)]
    broken = PresetResult("awq", error="did not load: no such folder")
    return Comparison(settings(presets=("fp16", "kv-int4", "awq")), (fp16, int4, broken), "1 x H100", "now", {})


def test_rows_format_figures_and_say_na_and_why_a_preset_failed():
    rows = report.rows(comparison())
    assert rows[0][:3] == ["fp16", "pytorch", "40.0"] and rows[0][6] == "1,440,960" and rows[0][-1] == "8.123"
    assert rows[1][-1] == "n/a"
    assert rows[2][:2] == ["awq", "did not load: no such folder"]
    assert report.headings(comparison())[9] == "tok/s, 16 streams"


def test_exports_carry_the_machine_settings_and_every_figure():
    data = json.loads(report.to_json(comparison()))
    assert data["machine"] == "1 x H100" and data["settings"]["presets"] == ["fp16", "kv-int4", "awq"]
    assert data["results"][1]["kv_tokens"] == 5_123_520
    assert report.to_csv(comparison()).splitlines()[1].startswith("fp16,pytorch,40.0")
    markdown = report.to_markdown(comparison())
    assert "1 x H100" in markdown and "| kv-int4 | pytorch |" in markdown


def test_outputs_side_by_side_mark_the_words_that_differ_and_escape_html():
    html = report.outputs_html(comparison())
    assert "<mark>90</mark>" in html and "<mark>80</mark>" not in html
    result = comparison()
    result.results[1].outputs[0] = PromptOutput("math", "<script>x</script>")
    assert "<script>" not in report.outputs_html(result)


async def test_a_job_reports_progress_and_its_result():
    async def work(job):
        job.report(0.5, "half way")
        job.log("a line")
        return 42

    slot = JobSlot()
    status = await slot.start(Job("test", work)).wait()
    assert (status.state, status.result, status.fraction) == ("done", 42, 1.0)
    assert status.log == ("a line", "done")


async def test_one_job_at_a_time_and_cancel_ends_it():
    started = asyncio.Event()

    async def forever(job):
        started.set()
        await asyncio.sleep(3600)

    slot = JobSlot()
    job = slot.start(Job("quantization", forever))
    await started.wait()
    with pytest.raises(JobBusy, match="a quantization job is running"):
        slot.start(Job("comparison", forever))
    job.cancel()
    assert (await job.wait()).state == "cancelled"


async def test_a_failed_job_says_why():
    async def fails(job):
        raise JobFailed("the GPU is out of memory: unload the engine first")

    status = await JobSlot().start(Job("test", fails)).wait()
    assert status.state == "failed" and status.error.startswith("the GPU is out of memory")
