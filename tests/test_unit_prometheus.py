"""A remote api_server's /metrics, read with prometheus_client's parser."""

import pytest

from backends import BackendError
from backends.prometheus import lmdeploy_series, scheduler_from_series

# The shape LMDeploy 0.18's api_server exposes (lmdeploy/metrics/metrics_processor.py), abridged.
EXPOSITION = """\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 1234.0
# HELP lmdeploy:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE lmdeploy:gpu_cache_usage_perc gauge
lmdeploy:gpu_cache_usage_perc{model_name="internlm2_5-7b-chat"} 0.42
# HELP lmdeploy:num_requests_running Number of requests currently running on GPU.
# TYPE lmdeploy:num_requests_running gauge
lmdeploy:num_requests_running{model_name="internlm2_5-7b-chat"} 7.0
# HELP lmdeploy:prompt_tokens_total Number of prefill tokens processed.
# TYPE lmdeploy:prompt_tokens_total counter
lmdeploy:prompt_tokens_total{model_name="internlm2_5-7b-chat"} 52000.0
# HELP lmdeploy:request_decode_time_seconds Histogram of time spent in DECODE phase for request.
# TYPE lmdeploy:request_decode_time_seconds histogram
lmdeploy:request_decode_time_seconds_bucket{le="0.3",model_name="internlm2_5-7b-chat"} 1.0
lmdeploy:request_decode_time_seconds_bucket{le="+Inf",model_name="internlm2_5-7b-chat"} 4.0
lmdeploy:request_decode_time_seconds_count{model_name="internlm2_5-7b-chat"} 4.0
lmdeploy:request_decode_time_seconds_sum{model_name="internlm2_5-7b-chat"} 6.5
"""


def test_every_lmdeploy_series_is_kept_with_its_labels_and_nothing_else():
    series = lmdeploy_series(EXPOSITION)
    model = '{model_name="internlm2_5-7b-chat"}'
    assert series == {
        f"lmdeploy:gpu_cache_usage_perc{model}": 0.42,
        f"lmdeploy:num_requests_running{model}": 7.0,
        f"lmdeploy:prompt_tokens_total{model}": 52000.0,
        f"lmdeploy:request_decode_time_seconds_count{model}": 4.0,
        f"lmdeploy:request_decode_time_seconds_sum{model}": 6.5,
    }


def test_the_scheduler_figures_are_read_from_the_series():
    metrics = scheduler_from_series(lmdeploy_series(EXPOSITION))
    assert (metrics.cache_usage, metrics.running, metrics.waiting) == (0.42, 7, None)
    assert metrics.prefix_cache_hit_rate is None and len(metrics.series) == 5


def test_a_page_that_is_not_prometheus_text_says_so():
    with pytest.raises(BackendError, match="not Prometheus text"):
        lmdeploy_series("<html>metrics dashboard</html>\n")
