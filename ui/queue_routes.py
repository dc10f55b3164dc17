"""Gradio's queue routes, which every chat's join and every page's event stream take, made cheaper.

- Matched first. Starlette tries an app's routes in order, and Gradio declares its queue's join and event
  stream after some 60 others (FastAPI 0.165 walks them twice a request: once to pick the included router,
  once inside it). Route matching was 14% of the console's CPU with 256 chats starting at once (yappi,
  H200). No other route matches their paths, so trying them first changes which handler answers nothing
  else.
- Their log-in check run in the event loop. Gradio's `login_check` is a plain function, so FastAPI runs it
  in a worker thread and back, each time waiting for the GIL while the event loop holds it: 789 of the
  2,219 hand-offs in one round of 256 pages chatting (bench.many_users --trace, 2-core machine). It only
  compares what it is given (the user comes from Gradio's `get_current_user`, a coroutine already).
"""

from __future__ import annotations

import dataclasses
import inspect

QUEUE_PATHS = frozenset({"/gradio_api/queue/join", "/gradio_api/queue/data"})
INLINE_CHECKS = frozenset({"login_check"})  # Gradio's dependencies of the queue routes that never block


def queue_routes_first(app) -> None:
    """Move the queue's routes, and the router that holds them, to the front of `app`'s routes, with
    their log-in check run in the event loop."""
    _to_front(app.router)
    _checks_inline(app.router, {})


def _checks_inline(router, inline: dict) -> bool:
    """Declare the never-blocking checks of `router`'s queue routes as coroutines; whether any was.
    FastAPI 0.165 builds the handlers of an included router's routes from their declared dependencies
    (`route.dependencies`), the route's own handler from `route.dependant`: both are changed."""
    changed = False
    for route in router.routes:
        if getattr(route, "path", None) in QUEUE_PATHS:
            for index, declared in enumerate(route.dependencies):
                if getattr(check := declared.dependency, "__name__", None) in INLINE_CHECKS:
                    coroutine = inline.setdefault(check, _as_coroutine(check))
                    route.dependencies[index] = dataclasses.replace(declared, dependency=coroutine)
                    changed = True
            for needed in route.dependant.dependencies:
                needed.call = inline.get(needed.call, needed.call)
        inner = getattr(route, "original_router", None)  # FastAPI's included router
        changed = (inner is not None and _checks_inline(inner, inline)) or changed
    if changed:  # its handlers are built again, from the new declarations
        getattr(router, "_mark_routes_changed", lambda: None)()
    return changed


def _as_coroutine(check):
    async def inline(**values):  # FastAPI passes the check's own dependencies by name
        return check(**values)

    inline.__name__ = f"{check.__name__}_in_the_event_loop"
    inline.__signature__ = inspect.signature(check)  # what FastAPI reads for the check's own dependencies
    return inline


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
