"""The load test's arithmetic and the quality measures, against values computed by hand."""

import math

import numpy as np
import pytest

from backends import NextTokenLogprobs
from compare.load import GoodputTarget, LoadSettings, RequestTiming, count_waited, parse_sweep, percentile, summarize
from compare.quality import agreement, builtin_questions, exact_match, load_questions, normalize, question_messages


def test_percentiles_interpolate_between_ranks():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5  # halfway between 2 and 3
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == pytest.approx(3.97)  # rank 2.97
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0 and percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_a_request_waited_when_another_finished_before_its_first_token():
    timings = [
        RequestTiming(sent=0.0, first_token=0.1, ended=1.0),  # started at once
        RequestTiming(sent=0.0, first_token=0.2, ended=2.0),  # started at once
        RequestTiming(sent=0.0, first_token=1.1, ended=3.0),  # held back until the first one ended
        RequestTiming(sent=2.5, first_token=2.6, ended=4.0),  # sent after the ends: no wait
        RequestTiming(sent=0.0, first_token=None, ended=0.5, error="refused"),  # failed: neither waits nor counts
    ]
    assert count_waited(timings) == 1


def test_summary_figures_from_timings_and_scheduler_peaks():
    timings = [
        RequestTiming(0.0, 0.1, 2.0, prompt_tokens=100, output_tokens=50),
        RequestTiming(0.0, 0.3, 3.0, prompt_tokens=102, output_tokens=50),
        RequestTiming(0.0, 2.5, 4.0, prompt_tokens=101, output_tokens=50),
        RequestTiming(0.0, None, 1.0, error="the engine was closed"),
    ]
    peaks = {"running": 2, "waiting": 1, "cache_usage": 0.97}
    result = summarize(timings, peaks)
    assert (result.requests, result.completed, result.failed) == (4, 3, 1)
    assert result.duration_s == 4.0
    assert result.requests_per_s == 0.75  # 3 done in 4 s
    assert result.output_tps == 37.5  # 150 tokens in 4 s
    assert result.mean_prompt_tokens == 101 and result.mean_output_tokens == 50
    assert result.ttft_p50_ms == pytest.approx(300) and result.ttft_p99_ms == pytest.approx(2456)  # 300 + 0.98 x 2200
    assert result.waited == 1  # the third: the first ended at 2.0, before its first token at 2.5
    assert (result.peak_running, result.peak_waiting, result.peak_kv_usage) == (2, 1, 0.97)
    assert result.first_error == "the engine was closed"


def test_per_user_speed_time_per_token_and_goodput_by_hand():
    timings = [
        RequestTiming(0.0, 0.2, 1.2, output_tokens=51),  # 50 tokens after the first in 1 s: 50 tok/s
        RequestTiming(0.0, 0.5, 2.5, output_tokens=51),  # 25 tok/s
        RequestTiming(0.0, 1.5, 2.0, output_tokens=51),  # 100 tok/s, but its first token after 1.5 s
        RequestTiming(0.0, 0.1, 0.2, output_tokens=1),  # one token: no speed after the first
    ]
    result = summarize(timings, {}, in_flight=4, goodput=GoodputTarget(ttft_ms=1000, user_tps=30))
    assert result.user_tps_p50 == 50 and result.tpot_p50_ms == 20
    assert result.goodput_rps == pytest.approx(1 / 2.5)  # only the first meets both, in 2.5 s
    assert result.in_flight == 4
    assert summarize(timings, {}).goodput_rps is None  # no target: no goodput


def test_a_sweep_sends_four_waves_a_point_and_reads_as_typed():
    load = LoadSettings(requests=200, prompt_tokens=64, output_tokens=8, sweep=parse_sweep("1, 4 16,64"))
    assert load.points() == [(1, 4), (4, 16), (16, 64), (64, 200)]  # at most the requests asked for
    assert load.total_requests == 284
    assert LoadSettings(requests=8, concurrency=2).points() == [(2, 8)]  # no sweep: one run
    with pytest.raises(ValueError, match="whole numbers of requests in flight"):
        parse_sweep("1, four")
    with pytest.raises(ValueError, match="rising, from 1 to 1024"):
        LoadSettings(sweep=(4, 1))
    with pytest.raises(ValueError, match="rising, from 1 to 1024"):
        LoadSettings(sweep=(0, 4))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"requests": 0}, "requests must be between 1 and 1024"),
        ({"requests": 1025}, "requests must be between 1 and 1024"),
        ({"prompt_tokens": 8}, "prompt length must be 16"),
        ({"output_tokens": 0}, "output length must be 1"),
        ({"requests": 4, "concurrency": 5}, "in flight must be between 1 and the number of requests"),
    ],
)
def test_load_settings_refuse_what_cannot_run(values, message):
    with pytest.raises(ValueError, match=message):
        LoadSettings(**values)


def test_a_load_longer_than_the_session_is_refused_with_the_figures():
    load = LoadSettings(requests=512, prompt_tokens=2048, output_tokens=512)
    assert load.in_flight == 512
    load.check_fits(4096, "turbomind")
    load.check_fits(None, "a remote server")  # unknown: the server will say
    with pytest.raises(ValueError, match="2,048 prompt \\+ 512 output tokens exceed the 2,048-token session"):
        load.check_fits(2048, "pytorch")


def logprobs(ids, probabilities) -> NextTokenLogprobs:
    return NextTokenLogprobs(tuple(ids), np.log(np.array(probabilities, dtype=np.float64)).astype(np.float16))


def test_agreement_top1_and_kl_by_hand():
    reference = logprobs([1, 2], [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    other = logprobs([1, 2], [[0.5, 0.4, 0.1], [0.6, 0.2, 0.2]])
    # position 1: same top token; KL = .7 ln(.7/.5) + .2 ln(.2/.4) + 0 = 0.09689
    # position 2: top tokens differ; KL = .1 ln(.1/.6) + .1 ln(.1/.2) + .8 ln(.8/.2) = 0.86883
    kl1 = 0.7 * math.log(0.7 / 0.5) + 0.2 * math.log(0.2 / 0.4)
    kl2 = 0.1 * math.log(0.1 / 0.6) + 0.1 * math.log(0.1 / 0.2) + 0.8 * math.log(0.8 / 0.2)
    measured = agreement(reference, other)
    assert measured.top1 == 0.5 and measured.positions == 2
    assert measured.mean_kl == pytest.approx((kl1 + kl2) / 2, abs=2e-3)  # float16 log-probabilities
    same = agreement(reference, reference)
    assert (same.top1, same.mean_kl) == (1.0, 0.0)


def test_agreement_refuses_another_tokenizer_or_vocabulary():
    reference = logprobs([1, 2], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="tokenized differently"):
        agreement(reference, logprobs([1, 3], [[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="another vocabulary .*3 vs 2 entries"):
        agreement(reference, logprobs([1, 2], [[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]))


def test_agreement_ignores_tokens_whose_probability_underflows_float16():
    reference = NextTokenLogprobs((1,), np.array([[0.0, -np.inf]], dtype=np.float16))
    other = NextTokenLogprobs((1,), np.array([[-0.01, -np.inf]], dtype=np.float16))
    assert math.isfinite(agreement(reference, other).mean_kl)


def test_exact_match_normalizes_like_squad_and_reads_the_first_line():
    assert normalize("  The Eiffel-Tower! ") == "eiffeltower"
    question = load_questions('{"question": "Capital of France?", "answer": ["Paris", "Paris, France"]}')[0]
    assert exact_match("Paris.", question) and exact_match("paris, france\nIt is big.", question)
    assert not exact_match("The capital is Paris.", question)
    assert exact_match("42", load_questions('{"question": "6 x 7?", "answer": 42}')[0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "line 1: not JSON"),
        ('{"question": "q"}\n{"q": 1}', "line 1: 'answer' must be"),
        ('{"question": "q", "answer": "a"}\n[1, 2]', 'line 2: expected {"question"'),
        ("\n\n", "no questions"),
    ],
)
def test_question_files_are_refused_with_the_line_and_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        load_questions(text)


def test_builtin_questions_and_the_short_answer_prompt():
    questions = builtin_questions()
    assert len(questions) >= 40 and all(q.answers for q in questions)
    messages = question_messages(questions[0])
    assert messages[0]["role"] == "system" and messages[-1] == {"role": "user", "content": questions[0].question}
    assert [m["role"] for m in messages[1:-1]] == ["user", "assistant", "user", "assistant"]  # worked examples
