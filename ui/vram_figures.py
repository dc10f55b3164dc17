"""Plotly figures and text from VRAM samples: pure functions, so they are tested without a GPU."""

from __future__ import annotations

from datetime import datetime

import plotly.graph_objects as go

from telemetry.vram import Event, Sample

GIB = 1024.0


def gauge_figure(sample: Sample, height: int = 220) -> go.Figure:
    """One gauge per GPU (used of total); without a GPU, the console process's RSS."""
    figure = go.Figure()
    gpus = sample.gpus
    if not gpus:
        figure.add_trace(
            go.Indicator(
                mode="number",
                value=sample.console_rss_mib / GIB,
                number={"suffix": " GiB", "valueformat": ".2f"},
                title={"text": "console process memory (RSS)<br><sub>no GPU: the cpu backend runs here</sub>"},
            )
        )
    for i, gpu in enumerate(gpus):
        figure.add_trace(
            go.Indicator(
                mode="gauge+number",
                value=gpu.used_mib / GIB,
                number={"suffix": f" / {gpu.total_mib / GIB:.0f} GiB", "valueformat": ".1f"},
                title={"text": f"GPU {gpu.index} · {gpu.name}"},
                gauge={"axis": {"range": [0, gpu.total_mib / GIB]}, "bar": {"color": "#ef6c00"}},
                domain={"row": 0, "column": i},
            )
        )
    figure.update_layout(
        grid={"rows": 1, "columns": max(len(gpus), 1)}, height=height, margin={"l": 30, "r": 30, "t": 50, "b": 10}
    )
    return figure


# two an answer: kept as markers with a hover, not labelled, or the labels pile up within minutes
_ROUTINE_EVENTS = ("generation",)


def timeline_figure(history: list[Sample], events: list[Event], height: int = 340) -> go.Figure:
    """Used memory over time, a line per GPU (RSS without GPUs), events as dashed markers."""
    figure = go.Figure()
    times = [datetime.fromtimestamp(s.time_s) for s in history]
    gpu_count = max((len(s.gpus) for s in history), default=0)
    if gpu_count:
        for index in range(gpu_count):
            used = [s.gpus[index].used_mib / GIB if index < len(s.gpus) else None for s in history]
            figure.add_trace(go.Scatter(x=times, y=used, mode="lines", name=f"GPU {index} used"))
        label = "GPU memory used (GiB)"
    else:
        figure.add_trace(
            go.Scatter(x=times, y=[s.console_rss_mib / GIB for s in history], mode="lines", name="console RSS")
        )
        label = "console process memory (GiB)"
    if events:  # every event in the data and the hover; a line and a label for the few that matter
        figure.add_trace(
            go.Scatter(
                x=[datetime.fromtimestamp(e.time_s) for e in events],
                y=[0] * len(events),
                mode="markers",
                marker={"symbol": "line-ns-open", "size": 10, "color": "#888"},
                hovertext=[e.label for e in events],
                hoverinfo="text+x",
                name="what the console did",
            )
        )
    span_s = (history[-1].time_s - history[0].time_s) if len(history) > 1 else 0.0
    for time_s, text in _labels([e for e in events if not e.label.startswith(_ROUTINE_EVENTS)], span_s):
        moment = datetime.fromtimestamp(time_s)
        figure.add_shape(
            type="line",
            x0=moment,
            x1=moment,
            y0=0,
            y1=1,
            yref="paper",
            line={"dash": "dash", "width": 1, "color": "#888"},
        )
        figure.add_annotation(
            x=moment,
            y=1,
            yref="paper",
            text=text,
            showarrow=False,
            textangle=-90,
            xanchor="left",
            yanchor="top",
            font={"size": 10},
        )
    figure.update_layout(
        height=height, yaxis_title=label, margin={"l": 50, "r": 20, "t": 20, "b": 40}, legend={"orientation": "h"}
    )
    return figure


def _labels(events: list[Event], span_s: float) -> list[tuple[float, str]]:
    """One label per run of events closer together than a label is wide on a timeline spanning `span_s`
    (a fiftieth of it, a second at least), joined with arrows: a switch's "switch to X" and "engine
    loaded: X" a few seconds apart would otherwise print over each other."""
    gap_s = max(span_s / 50, 1.0)
    runs: list[list[Event]] = []
    for event in events:
        if runs and event.time_s - runs[-1][-1].time_s < gap_s:
            runs[-1].append(event)
        else:
            runs.append([event])
    return [(run[0].time_s, " → ".join(e.label for e in run)) for run in runs]


def compact_gauge(sample: Sample) -> str:
    """One line for the header, visible from every tab."""
    if not sample.gpus:
        return f"Memory: console {sample.console_rss_mib / GIB:.2f} GiB RSS (no GPU)"
    parts = [
        f"GPU {g.index}: {g.used_mib / GIB:.1f} / {g.total_mib / GIB:.0f} GiB"
        + (f" · {g.util_pct}%" if g.util_pct is not None else "")
        for g in sample.gpus
    ]
    return "VRAM — " + " | ".join(parts)


def process_rows(sample: Sample) -> list[list]:
    """GPU, PID, role, MiB: who holds the memory."""
    return [[g.index, p.pid, p.role, round(p.used_mib)] for g in sample.gpus for p in g.processes]


def sample_as_json(sample: Sample, events: list[Event]) -> dict:
    """What `/vram` returns."""
    return {
        "time_s": sample.time_s,
        "error": sample.error,
        "console_rss_mib": round(sample.console_rss_mib, 1),
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "used_mib": round(g.used_mib, 1),
                "total_mib": round(g.total_mib, 1),
                "util_pct": g.util_pct,
                "processes": [{"pid": p.pid, "role": p.role, "used_mib": round(p.used_mib, 1)} for p in g.processes],
            }
            for g in sample.gpus
        ],
        "events": [{"time_s": e.time_s, "label": e.label} for e in events],
    }
