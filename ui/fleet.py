"""The Fleet tab: LMDeploy's proxy and its api_server nodes, live; admins add, remove and terminate nodes."""

from __future__ import annotations

import dataclasses
import datetime
import html
from typing import TYPE_CHECKING

import gradio as gr
import plotly.graph_objects as go

from backends import BackendError, Refusal, SchedulerMetrics
from console.access import NotAllowed
from console.core import Console
from console.fleet import FleetView

from .admin_only import AdminOnly
from .errors import notice
from .tab_parts import TabParts

if TYPE_CHECKING:  # the proxy's client imports openai's; the tab needs its type only
    from backends.fleet import NodeReport

COLUMNS = [
    "node",
    "model",
    "role",
    "health",
    "in flight",
    "latency (s)",
    "KV used",
    "running",
    "waiting",
    "TTFT (ms)",
    "ms per token",
    "prompt tokens",
    "tokens made",
    "prefix hits",
]
REFRESH_S = 2.0
TICK_FIRST = "tick 'Yes, shut this node's server down' first: terminating stops the node's server"
SHARED_LOOK_S = 1.5  # pages refreshing within this of a look share it: one look at the nodes, whatever the viewers
# The proxy has no route that reports it (LMDeploy 0.18): the flag it was started with decides.
ROUTING_NOTE = (
    "Routing: whatever `lmdeploy serve proxy --routing-strategy` was given (the proxy does not report it); "
    "by default `min_expected_latency`: the node with the fewest requests in flight for its speed."
)


def build_tab(console: Console, admin: AdminOnly) -> TabParts:
    """Lay out the tab; its parts: its refresh timer, which ticks only while the tab is open."""
    status = gr.Markdown(elem_id="fleet-status")
    gr.Markdown("Nodes (in flight and latency: the proxy's; the rest: each node's own /metrics)")
    nodes = gr.HTML(elem_id="fleet-nodes")  # a plain table: its columns take the width their figures need
    timeline = gr.Plot(label="Requests in flight per node (the proxy's count)", elem_id="fleet-timeline")
    gone = gr.Markdown(elem_id="fleet-gone")
    with gr.Accordion("Manage nodes (admins)", open=False) as manage:
        with gr.Row():
            new_node = gr.Textbox(label="api_server URL", placeholder="http://10.0.0.5:23333", scale=3)
            add = gr.Button("Add node", scale=1)
        with gr.Row():
            picked = gr.Dropdown(label="Node", choices=[], scale=3, elem_id="fleet-node")
            remove = gr.Button("Remove from routing", scale=1)
        with gr.Row():
            confirm = gr.Checkbox(label="Yes, shut this node's server down", value=False)
            terminate = gr.Button("Terminate node", variant="stop")
        pin = gr.Button("Save a preset per node (Compare can then run each node on its own)")
        admin.controls(add, remove, confirm, terminate, pin)
        admin.reason()
        outcome = gr.Markdown()

    async def refresh(max_age_s: float = 0.0):
        try:
            view = await console.fleet.view(max_age_s)
        except BackendError as exc:
            return f"**No fleet:** {exc}", "", None, ""
        return _status_line(view), _nodes_html(view), _timeline(view), _gone_lines(view)

    async def node_choices(current: str | None = None):
        """The node picker's choices: read when the admin section opens and after each action, not on
        every refresh (that would close the list under the admin's pointer); the node picked stays
        picked while it is still there (a refused Terminate leaves it for the confirmed one)."""
        try:
            urls = [node.url for node in (await console.fleet.view(SHARED_LOOK_S)).nodes]
        except BackendError:
            urls = []
        return gr.Dropdown(choices=urls, value=current if current in urls else None)

    outputs = [status, nodes, timeline, gone]
    manage.expand(node_choices, outputs=picked, api_visibility="private")

    async def refresh_shared():
        return await refresh(SHARED_LOOK_S)

    timer = gr.Timer(REFRESH_S, active=False)
    timer.tick(refresh_shared, outputs=outputs, api_visibility="private", show_progress="hidden")

    # These answer on the page only (the API has /fleet_add and /fleet_remove): a refusal is a notice in
    # the outcome line, where the last action's result was.
    async def add_clicked(url: str, request: gr.Request):
        try:
            models = await console.fleet.add_node(url, user=request.username)
        except Refusal as exc:
            return notice("Not added", exc)
        return f"Added {url.strip()} (serves {', '.join(models)})."

    async def remove_clicked(url: str | None, request: gr.Request):
        return await _remove(url, False, request)

    async def terminate_clicked(url: str | None, sure: bool, request: gr.Request):
        if not sure:
            return notice("Not terminated", ValueError(TICK_FIRST))
        return await _remove(url, True, request)

    async def _remove(url: str | None, shut_down: bool, request: gr.Request) -> str:
        outcome = "Not terminated" if shut_down else "Not removed"
        if not url:
            return notice(outcome, ValueError("pick a node first"))
        try:
            await console.fleet.remove_node(url, terminate=shut_down, user=request.username)
        except Refusal as exc:
            return notice(outcome, exc)
        return f"{'Terminated' if shut_down else 'Removed from the routing:'} {url}."

    async def pin_clicked(request: gr.Request):
        try:
            names = await console.fleet.save_node_presets(user=request.username)
        except Refusal as exc:
            return notice("Not saved", exc)
        return f"Saved {', '.join(names)}: pick them on the Compare tab."

    for button, handler, inputs in (
        (pin, pin_clicked, []),
        (add, add_clicked, [new_node]),
        (remove, remove_clicked, [picked]),
        (terminate, terminate_clicked, [picked, confirm]),
    ):
        button.click(handler, inputs=inputs, outputs=outcome, api_visibility="private").then(
            refresh, outputs=outputs, api_visibility="private"
        ).then(node_choices, inputs=picked, outputs=picked, api_visibility="private")

    async def fleet() -> dict:
        """The proxy's nodes now: health, requests in flight, latency and each node's own metrics; the nodes that left."""
        try:
            view = await console.fleet.view()
        except BackendError as exc:
            return {"ok": False, "error": str(exc)}
        return {
            "ok": True,
            "proxy": view.proxy,
            "nodes": [_node_json(node) for node in view.nodes],
            "gone": [{"url": url, "last_seen": _clock(seen)} for url, seen in view.gone.items()],
        }

    async def fleet_add(url: str, request: gr.Request) -> dict:
        """Register an api_server with the proxy once it answers /v1/models (admins only)."""
        try:
            return {"ok": True, "models": await console.fleet.add_node(url, user=request.username)}
        except (BackendError, NotAllowed) as exc:
            return {"ok": False, "error": str(exc)}

    async def fleet_remove(url: str, terminate: bool, request: gr.Request) -> dict:
        """Take a node out of the proxy's routing; `terminate`: and shut its server down (admins only)."""
        try:
            await console.fleet.remove_node(url, terminate=terminate, user=request.username)
        except (BackendError, NotAllowed) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True}

    gr.api(fleet, api_name="fleet")
    gr.api(fleet_add, api_name="fleet_add")
    gr.api(fleet_remove, api_name="fleet_remove")
    return TabParts(timer=timer)


def _status_line(view: FleetView) -> str:
    healthy = sum(node.healthy for node in view.nodes)
    busy = sum(node.in_flight for node in view.nodes)
    return (
        f"**Proxy** {view.proxy}: {len(view.nodes)} node(s), {healthy} healthy, {busy} request(s) in flight. "
        f"{ROUTING_NOTE}"
    )


def _nodes_html(view: FleetView) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in _row(node)) + "</tr>" for node in view.nodes
    )
    return f'<table class="fleet-nodes"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _row(node: NodeReport) -> list:
    """A node's line in the table: the figures `/fleet` gives, formatted."""
    figures = _node_json(node)
    health = "ok" if node.healthy else f"down: {node.problem}"
    if node.healthy and node.problem:
        health = f"ok · {node.problem}"
    return [
        node.url,
        ", ".join(model.rstrip("/").rsplit("/", 1)[-1] for model in node.models),  # a folder's name, as served
        node.role,
        health,
        node.in_flight,
        _number(node.latency_s, "{:.2f}"),
        _number(figures["kv_cache_usage"], "{:.0%}"),
        _number(figures["running"], "{}"),
        _number(figures["waiting"], "{}"),
        _number(_ms(figures["ttft_mean_s"]), "{:.0f}"),
        _number(_ms(figures["time_per_token_mean_s"]), "{:.1f}"),
        _number(figures["prompt_tokens"], "{:,.0f}"),
        _number(figures["generated_tokens"], "{:,.0f}"),
        _number(figures["prefix_cache_hit_rate"], "{:.0%}"),
    ]


def _node_json(node: NodeReport) -> dict:
    """What `/fleet` says of a node: what the proxy and the node report, and the figures read from its /metrics."""
    scheduler = node.scheduler or SchedulerMetrics(cache_usage=None, running=None, waiting=None)
    own = {field.name: getattr(node, field.name) for field in dataclasses.fields(node) if field.name != "scheduler"}
    return {
        **own,
        "kv_cache_usage": scheduler.cache_usage,
        "running": scheduler.running,
        "waiting": scheduler.waiting,
        "prefix_cache_hit_rate": scheduler.prefix_cache_hit_rate,
        "ttft_mean_s": node.mean("time_to_first_token_seconds"),
        "time_per_token_mean_s": node.mean("time_per_output_token_seconds"),
        "prompt_tokens": node.figure("prompt_tokens_total"),
        "generated_tokens": node.figure("generation_tokens_total"),
        "backend_config": node.backend_config(),
    }


def _timeline(view: FleetView) -> go.Figure:
    figure = go.Figure()
    urls = dict.fromkeys(url for _, counts in view.history for url in counts)
    most = 0
    for index, url in enumerate(urls):
        points = [(datetime.datetime.fromtimestamp(t), counts[url]) for t, counts in view.history if url in counts]
        most = max([most, *(count for _, count in points)])
        figure.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="lines",
                line_shape="hv",
                # nodes at the same count draw over each other: a dash and width of their own keep each in sight
                line={"dash": _DASHES[index % len(_DASHES)], "width": 2 + 2 * (index % 2)},
                name=url,
            )
        )
    figure.update_layout(
        height=280,
        margin=dict(l=40, r=10, t=10, b=30),
        yaxis={"title": "in flight", "range": [-0.2, most + 1], "dtick": max(1, (most + 1) // 5)},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


_DASHES = ("solid", "dash", "dot", "dashdot")


def _gone_lines(view: FleetView) -> str:
    if not view.gone:
        return ""
    return "**Gone** (left the proxy's routing): " + "; ".join(
        f"{url}, last seen {_clock(seen)}" for url, seen in view.gone.items()
    )


def _clock(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _number(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
