"""Charts of a comparison: pure functions of its results, tested without an engine; None where a chart
would have nothing to show."""

from __future__ import annotations

import plotly.graph_objects as go

from compare.runner import Comparison, PresetResult


def _value(result: PresetResult, path: str):
    for name in path.split("."):
        result = getattr(result, name, None)
    return result


def _layout(figure: go.Figure, title: str, unit: str, **extra) -> go.Figure:
    figure.update_layout(
        title=title,
        yaxis_title=unit,
        height=300,
        margin={"l": 50, "r": 50, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
        **extra,
    )
    return figure


def _bars(
    comparison: Comparison, title: str, series: dict[str, str], unit: str, stacked: bool = False
) -> go.Figure | None:
    """One bar per preset and series, a series only where something of it was measured; None where nothing
    was (the page then shows no chart, not an empty axis or a legend of zeros: the table's cells say why)."""
    measured = [r for r in comparison.results if not r.error]
    names = [r.preset for r in measured]
    figure = go.Figure()
    for label, path in series.items():
        values = [_value(r, path) for r in measured]
        if any(v is not None for v in values):
            figure.add_trace(go.Bar(name=label, x=names, y=[v if v is not None else 0 for v in values]))
    if not figure.data:
        return None
    return _layout(figure, title, unit, barmode="stack" if stacked else "group")


def memory_figure(comparison: Comparison) -> go.Figure | None:
    series = {"weights": "weights_gib", "KV cache reserve": "kv_reserve_gib"}
    return _bars(comparison, "Memory by use (the weights on CPU backends)", series, "GiB", stacked=True)


def capacity_figure(comparison: Comparison) -> go.Figure | None:
    series = {
        "KV capacity (tokens)": "kv_tokens",
        "tokens per GiB (of the reserve; of the cache on the CPU)": "kv_tokens_per_gib",
    }
    return _bars(comparison, "KV cache capacity", series, "tokens")


def speed_figure(comparison: Comparison) -> go.Figure | None:
    n = comparison.settings.concurrency
    series = {"1 stream (decode)": "decode_tps", f"{n} streams (aggregate)": "aggregate_tps"}
    return _bars(comparison, "Speed", series, "tokens/s")


def quality_figure(comparison: Comparison) -> go.Figure | None:
    series = {"top-1 agreement with the first preset": "top1_agreement", "exact match": "exact_match"}
    return _bars(comparison, "Quality against the first preset", series, "share")


def load_figure(comparison: Comparison) -> go.Figure | None:
    """Requests per second beside the most requests the engine ran at once: a bigger KV cache in
    tokens lets more run together, and then more finish per second."""
    figure = _bars(comparison, "Load test", {"requests/s": "load.requests_per_s"}, "requests/s")
    if figure is None:
        return None
    measured = [r for r in comparison.results if not r.error]
    figure.add_trace(
        go.Scatter(
            name="most requests running at once",
            x=[r.preset for r in measured],
            y=[_value(r, "load.peak_running") for r in measured],
            mode="markers",
            marker={"size": 12, "symbol": "diamond"},
            yaxis="y2",
        )
    )
    return figure.update_layout(yaxis2={"title": "requests", "overlaying": "y", "side": "right", "rangemode": "tozero"})


def _sweep_lines(comparison: Comparison, title: str, x: tuple[str, str], y: tuple[str, str]) -> go.Figure | None:
    """One line per preset through the sweep's points (each labelled with its requests in flight); `x` and
    `y` are (axis title, LoadResult field); None without a sweep."""
    if not any(result.sweep for result in comparison.results):
        return None
    figure = go.Figure()
    for result in comparison.results:
        points = [p for p in result.sweep if getattr(p, x[1]) is not None and getattr(p, y[1]) is not None]
        figure.add_trace(
            go.Scatter(
                name=result.preset,
                x=[getattr(p, x[1]) for p in points],
                y=[getattr(p, y[1]) for p in points],
                text=[str(p.in_flight) for p in points],
                mode="lines+markers+text",
                textposition="top center",
                hovertemplate=f"%{{text}} in flight<br>{x[0]} %{{x:,.1f}}<br>{y[0]} %{{y:,.1f}}<extra></extra>",
            )
        )
    return _layout(figure, title, y[0], xaxis_title=x[0])


def latency_figure(comparison: Comparison) -> go.Figure | None:
    """Throughput against latency as the requests in flight rise: where a preset's line bends up, the
    engine is full (more in flight only waits longer)."""
    axes = ("TTFT p50 (ms)", "ttft_p50_ms"), ("output tokens/s in all", "output_tps")
    return _sweep_lines(comparison, "Throughput against latency (labels: requests in flight)", *axes)


def per_user_figure(comparison: Comparison) -> go.Figure | None:
    """What each reader gets against what the GPU gives in all: up and to the right is better on both."""
    axes = ("output tokens/s in all", "output_tps"), ("tokens/s per user (p50)", "user_tps_p50")
    return _sweep_lines(comparison, "Per user against in all (labels: requests in flight)", *axes)


CHARTS = (  # in the page's order
    memory_figure,
    capacity_figure,
    speed_figure,
    quality_figure,
    load_figure,
    latency_figure,
    per_user_figure,
)
