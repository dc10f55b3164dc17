"""Comparison settings, prompt parsing, the result table, its exports, and the job slot."""

import asyncio
import html
import json

import pytest

from compare import report
from compare.load import GoodputTarget, LoadSettings, RequestTiming, summarize
from compare.prompts import MAX_USER_PROMPTS, builtin_prompts, user_prompts
from compare.quality import builtin_questions
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


def figures(**values) -> dict:
    names = ("engine", "model", "load_s", "gpu_used_mib", "weights_gib", "kv_reserve_gib", "kv_tokens", "ttft_ms")
    return dict(zip(names, values.pop("base"), strict=True)) | values


def comparison(**settings_overrides) -> Comparison:
    fp16 = PresetResult(
        "fp16",
        **figures(base=("pytorch", "m", 40.0, 33_000.0, 0.25, 30.9, 1_440_960, 12.0)),
        decode_tps=400.0,
        aggregate_tps=6_000.0,
        perplexity=8.1234,
        differs="the reference (first picked)",
    )
    fp16.outputs = [PromptOutput("math", "The speed is 80 km/h.", 12.0, 9, 400.0)]
    int4 = PresetResult(
        "kv-int4",
        **figures(base=("pytorch", "m", 41.0, 33_100.0, 0.25, 30.9, 5_123_520, 13.0)),
        decode_tps=390.0,
        aggregate_tps=6_100.0,
        perplexity_note="n/a: no",
        differs="quant_policy 4 vs 0",
    )
    int4.outputs = [PromptOutput("math", "The speed is 90 km/h.", 13.0, 9, 390.0)]
    broken = PresetResult("awq", error="did not load: no such folder")
    chosen = settings(presets=("fp16", "kv-int4", "awq"), **settings_overrides)
    return Comparison(chosen, (fp16, int4, broken), "1 x H100", "now", {})


def test_the_second_turn_columns_show_only_when_asked_for():
    assert "TTFT, same prompt again (ms)" not in report.headings(comparison())
    asked = comparison(second_turn=True)
    fp16, int4 = asked.results[:2]
    fp16.first_turn_ttft_ms, fp16.second_turn_ttft_ms, fp16.second_turn_cached = 310.0, 42.0, 2_496
    int4.second_turn_note = "n/a: the engine was closed"
    table = [dict(zip(report.headings(asked), row, strict=True)) for row in report.rows(asked)]
    assert [table[0][h] for h in report.headings(asked)[-3:]] == ["310", "42", "2,496"]
    assert table[1]["TTFT, same prompt again (ms)"] == "n/a: the engine was closed"


def test_rows_format_figures_and_say_na_and_why_a_preset_failed():
    table = [dict(zip(report.headings(comparison()), row, strict=True)) for row in report.rows(comparison())]
    assert [table[0][h] for h in ("preset", "engine", "load (s)", "KV capacity (tokens)")] == [
        "fp16",
        "pytorch",
        "40.0",
        "1,440,960",
    ]
    assert table[0]["KV tokens per GiB"] == "46,633"  # 1,440,960 tokens in 30.9 GiB
    assert table[0]["perplexity"] == "8.123" and table[1]["perplexity"] == "n/a: no"  # the note says why
    assert table[1]["differs from the first"] == "quant_policy 4 vs 0"
    assert table[1]["top-1 agreement"] == "n/a"
    assert [table[2][h] for h in ("preset", "engine")] == ["awq", "did not load: no such folder"]
    assert "tok/s, 16 streams" in table[0]


def test_columns_follow_the_measures_asked_for():
    headings = report.headings(comparison())
    assert "exact match" not in headings and not any(h.startswith("load:") for h in headings)
    load = LoadSettings(requests=8, prompt_tokens=64, output_tokens=8)
    questions = tuple(builtin_questions()[:2])
    headings = report.headings(comparison(perplexity=False, load=load, questions=questions))
    assert "perplexity" not in headings and "exact match" in headings and "load: req/s" in headings


def test_load_and_quality_cells_and_the_notes_that_explain_them():
    result = comparison(load=LoadSettings(requests=4, prompt_tokens=64, output_tokens=8))
    fp16, int4 = result.results[:2]
    fp16.top1_agreement, fp16.mean_kl = 1.0, 0.0
    int4.top1_agreement, int4.mean_kl = 0.9375, 0.01234
    int4.random_weights, int4.load_note = True, "n/a: the load test could not run"
    fp16.load = summarize(
        [RequestTiming(0.0, 0.1, 2.0, 64, 8), RequestTiming(0.0, 0.2, 2.0, 64, 8)], {"cache_usage": 0.5}
    )
    table = [dict(zip(report.headings(result), row, strict=True)) for row in report.rows(result)]
    assert (table[1]["top-1 agreement"], table[1]["mean KL (nats)"]) == ("93.8%", "0.0123")
    assert (table[0]["load: req/s"], table[0]["load: peak KV use"], table[0]["load: peak running"]) == (
        "1.00",
        "50.0%",
        "n/a",
    )
    assert table[1]["load: req/s"] == "n/a: the load test could not run"
    notes = report.notes(result)
    assert any(line.startswith("kv-int4: a model with **random weights**") for line in notes)
    assert any("4 requests of 64 prompt tokens" in line and "all sent at once" in line for line in notes)


def test_charts_show_the_load_test_and_no_chart_has_nothing_to_show():
    from ui.compare_figures import latency_figure, load_figure, quality_figure

    result = comparison(load=LoadSettings(requests=4, prompt_tokens=64, output_tokens=8))
    assert load_figure(result) is None  # no preset's load test ran yet
    result.results[0].load = summarize([RequestTiming(0.0, 0.1, 2.0, 64, 8)], {"running": 1})
    figure = load_figure(result)
    assert [trace.name for trace in figure.data] == ["requests/s", "most requests running at once"]
    assert figure.data[1].y == (1, None)
    assert quality_figure(result) is None and latency_figure(result) is None  # nothing measured, no sweep


def test_a_cpu_preset_s_capacity_chart_is_its_tokens_per_gib_alone():
    """The CPU has no KV reserve or capacity, but says a token's cache bytes: the chart shows that series only."""
    from ui.compare_figures import capacity_figure

    result = comparison()
    for preset in result.results:
        preset.kv_tokens = preset.kv_reserve_gib = None
        preset.kv_bytes_per_token = 46_080
    figure = capacity_figure(result)
    assert [trace.name for trace in figure.data] == ["tokens per GiB (of the reserve; of the cache on the CPU)"]
    assert figure.data[0].y[0] == pytest.approx(2**30 / 46_080)


def test_the_page_groups_the_table_so_that_it_reads_without_scrolling_sideways():
    result = comparison(load=LoadSettings(requests=4, prompt_tokens=64, output_tokens=8))
    page = report.tables_html(result)
    titles = [part.split("</h4>")[0] for part in page.split("<h4>")[1:]]
    assert titles == [
        "What ran",
        "Memory",
        "Speed, one request and a few at once",
        "Quality against the first preset",
        "Load test",
    ]
    memory = page.split("<h4>Memory</h4>")[1].split("</table>")[0]
    assert "<th>weights (GiB)</th>" in memory and "<th>fp16</th><td>33,000</td><td>0.250</td>" in memory
    load = page.split("<h4>Load test</h4>")[1]
    assert "<th>req/s</th>" in load and "load:" not in load  # the table's title says what the columns are
    # every column of the wide table (the API's and the exports') is in one of the page's tables
    shown = sum(page.count(f"<th>{html.escape(h.removeprefix('load: '))}</th>") for h in report.headings(result)[1:])
    assert shown == len(report.headings(result)) - 1


def test_a_sweep_is_a_table_per_point_two_curves_and_a_goodput_column():
    from ui.compare_figures import latency_figure, per_user_figure

    target = GoodputTarget(ttft_ms=500, user_tps=4)
    result = comparison(load=LoadSettings(requests=8, prompt_tokens=64, output_tokens=8, sweep=(1, 2), goodput=target))
    fp16 = result.results[0]
    fp16.sweep = [  # one request alone (fast), then two at once (each slower)
        summarize([RequestTiming(0.0, 0.1, 0.8, 64, 8)], {}, in_flight=1, goodput=target),
        summarize([RequestTiming(0.0, 0.2, 1.6, 64, 8), RequestTiming(0.0, 0.6, 2.0, 64, 8)], {}, 0, 2, target),
    ]
    fp16.load = fp16.sweep[-1]
    table = dict(zip(report.headings(result), report.rows(result)[0], strict=True))
    assert table["load: goodput (req/s)"] == "0.50"  # of the two, the one within 500 ms, in 2 s
    assert table["load: time per output token p50 (ms)"] == "200.0"  # 7 tokens in 1.4 s
    notes = "\n".join(report.notes(result))
    assert "at 1, 2 requests in flight in turn" in notes and "within 500 ms" in notes
    assert "| fp16 | 1 | 10 | 10.0 | 1.25 | 100 | 100 | 1.25 | 0 |" in notes  # 8 tokens in 0.8 s
    assert "| fp16 | 2 | 8 | 5.0 | 1.00 | 400 | 596 | 0.50 | 0 |" in notes
    latency = latency_figure(result)
    assert latency.data[0].x == (100.0, 400.0) and latency.data[0].y == (10.0, 8.0)
    assert latency.data[0].text == ("1", "2")  # each point labelled with its requests in flight
    assert per_user_figure(result).data[0].y == pytest.approx((10.0, 5.0))


def test_exports_carry_the_machine_settings_and_every_figure():
    data = json.loads(report.to_json(comparison()))
    assert data["machine"] == "1 x H100" and data["settings"]["presets"] == ["fp16", "kv-int4", "awq"]
    assert data["results"][1]["kv_tokens"] == 5_123_520
    assert data["results"][0]["kv_tokens_per_gib"] == pytest.approx(1_440_960 / 30.9)
    assert report.to_csv(comparison()).splitlines()[1].startswith("fp16,pytorch,the reference (first picked),40.0")
    markdown = report.to_markdown(comparison())
    assert "1 x H100" in markdown and "| kv-int4 | pytorch | quant_policy 4 vs 0 |" in markdown


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
