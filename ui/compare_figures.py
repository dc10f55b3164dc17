"""Bar charts of a comparison: pure functions of its results, tested without an engine."""

from __future__ import annotations

import plotly.graph_objects as go

from compare.runner import Comparison


def _bars(comparison: Comparison, title: str, series: dict[str, str], unit: str, stacked: bool = False) -> go.Figure:
    measured = [r for r in comparison.results if not r.error]
    names = [r.preset for r in measured]
    figure = go.Figure()
    for label, attr in series.items():
        values = [getattr(r, attr) for r in measured]
        figure.add_trace(go.Bar(name=label, x=names, y=[v if v is not None else 0 for v in values]))
    figure.update_layout(
        title=title,
        barmode="stack" if stacked else "group",
        yaxis_title=unit,
        height=300,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def memory_figure(comparison: Comparison) -> go.Figure:
    series = {"weights": "weights_gib", "KV cache reserve": "kv_reserve_gib"}
    return _bars(comparison, "Memory by use (the weights on CPU backends)", series, "GiB", stacked=True)


def capacity_figure(comparison: Comparison) -> go.Figure:
    return _bars(comparison, "KV cache capacity", {"tokens": "kv_tokens"}, "tokens")


def speed_figure(comparison: Comparison) -> go.Figure:
    n = comparison.settings.concurrency
    series = {"1 stream (decode)": "decode_tps", f"{n} streams (aggregate)": "aggregate_tps"}
    return _bars(comparison, "Speed", series, "tokens/s")
