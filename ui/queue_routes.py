"""Gradio's queue routes matched first.

Starlette tries an app's routes in order, and Gradio declares its queue's join and event stream after
some 60 others (FastAPI 0.165 walks them twice a request: once to pick the included router, once
inside it). Every chat's join and every page's event stream paid that walk: route matching was 14% of
the console's CPU with 256 chats starting at once (yappi, H200). No other route matches their paths, so
trying them first changes which handler answers nothing else. (Their log-in check runs in the event
loop: `ui/in_the_loop.py`.)
"""

from __future__ import annotations

QUEUE_PATHS = frozenset({"/gradio_api/queue/join", "/gradio_api/queue/data"})


def queue_routes_first(app) -> None:
    """Move the queue's routes, and the router that holds them, to the front of `app`'s routes."""
    _to_front(app.router)


def _to_front(router) -> bool:
    """Reorder `router`'s routes, queue routes first; whether it holds any."""
    holds = {id(route) for route in router.routes if _is_or_holds_queue_routes(route)}
    if holds:
        # one slice assignment: a request routed meanwhile (the server already listens) sees either order
        router.routes[:] = sorted(router.routes, key=lambda route: id(route) not in holds)
        # FastAPI 0.165 caches each router's candidates by a version that only its own edits bump
        getattr(router, "_mark_routes_changed", lambda: None)()
    return bool(holds)


def _is_or_holds_queue_routes(route) -> bool:
    """Whether `route` is a queue route, or an included router holding one (then reordered too)."""
    if getattr(route, "path", None) in QUEUE_PATHS:
        return True
    inner = getattr(route, "original_router", None)  # FastAPI's included router
    return inner is not None and _to_front(inner)
