"""LMDeploy's api_server and proxy figures from their Prometheus `/metrics`: every `lmdeploy:*` series,
and the scheduler's view among them."""

from __future__ import annotations

from .base import BackendError, SchedulerMetrics


def lmdeploy_series(exposition: str) -> dict[str, float]:
    """Every `lmdeploy:*` sample of a Prometheus text exposition, read with prometheus_client's own
    parser (LMDeploy's dependency): gauges and counters, histograms as their _sum and _count.
    A sample with labels is named with them, e.g. `lmdeploy:gpu_cache_usage_perc{model_name="m"}`."""
    from prometheus_client.parser import text_string_to_metric_families

    series = {}
    try:
        families = list(text_string_to_metric_families(exposition))
    except ValueError as exc:
        raise BackendError(f"the server's /metrics is not Prometheus text: {exc}") from exc
    for family in families:
        for sample in family.samples:
            if not sample.name.startswith("lmdeploy:") or sample.name.endswith(("_bucket", "_created")):
                continue
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            series[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return series


def series_value(series: dict[str, float], name: str) -> float | None:
    """The first of api_server's series called `lmdeploy:<name>`, whatever its labels (one model per
    server); None where the server has no such series."""
    return next((value for key, value in series.items() if key.split("{")[0] == f"lmdeploy:{name}"), None)


def scheduler_from_series(series: dict[str, float]) -> SchedulerMetrics:
    """The scheduler's figures among api_server's series."""

    def first(name: str) -> float | None:
        return series_value(series, name)

    running, waiting = first("num_requests_running"), first("num_requests_waiting")
    return SchedulerMetrics(
        cache_usage=first("gpu_cache_usage_perc"),
        running=None if running is None else int(running),
        waiting=None if waiting is None else int(waiting),
        prefix_cache_hit_rate=first("prefix_cache_hit_rate"),
        series=series,
    )
