"""The queue's routes are tried first, and the app keeps every route it had."""

import gradio as gr
from gradio.routes import App
from starlette.routing import Match

from ui.queue_routes import queue_routes_first

QUEUE_REQUESTS = (("/gradio_api/queue/join", "POST"), ("/gradio_api/queue/data", "GET"))


def _app():
    with gr.Blocks() as demo:
        gr.Textbox()
    demo.queue()
    return App.create_app(demo)


def _routes_tried_until(router, path: str, method: str) -> list:
    """The routes Starlette tries, in order, until one takes an HTTP request for `path`."""
    scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
    tried = []
    for route in router.routes:
        tried.append(route)
        inner = getattr(route, "original_router", None)
        if inner is not None:
            inner_tried = _routes_tried_until(inner, path, method)
            if inner_tried and inner_tried[-1].matches(scope)[0] == Match.FULL:
                return tried + inner_tried
        elif route.matches(scope)[0] == Match.FULL:
            return tried
    return []


def test_queue_join_and_event_stream_are_the_first_routes_tried():
    app = _app()
    tried = [len(_routes_tried_until(app.router, *request)) for request in QUEUE_REQUESTS]
    assert min(tried) > 20  # Gradio declares them late: what this module is for

    queue_routes_first(app)

    assert [len(_routes_tried_until(app.router, *request)) for request in QUEUE_REQUESTS] == [2, 3]


def test_reordering_keeps_every_route_and_what_answers_it():
    app = _app()
    probes = [
        ("/", "GET"),
        ("/config", "GET"),
        ("/gradio_api/info", "GET"),
        ("/gradio_api/upload", "POST"),
        ("/gradio_api/file=x.txt", "GET"),
        *QUEUE_REQUESTS,
    ]
    answering = {probe: _routes_tried_until(app.router, *probe)[-1] for probe in probes}

    queue_routes_first(app)

    assert {probe: _routes_tried_until(app.router, *probe)[-1] for probe in probes} == answering
