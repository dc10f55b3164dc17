"""The page (`GET /`) and the app's config (`GET /config`, what gradio_client reads first) built once for
the address they are reached at, then given each visitor's user.

For every request of either, Gradio 6.31 copies the whole app's config (~290 KB of JSON for the console)
and walks the copy to put the request's address before each file URL; the page also prepares the API
description again. That was 35 ms of the console's CPU a page on the 2-core machine, the largest part of a
page's opening (bench/page_opening.py), and 25 ms a gradio_client, so a class opening the link, or its
scripts connecting, kept a console process busy for seconds. What differs between two visitors who reach
the console at the same address is the user named in it; the rest is the same while the app's config is
(made once, at launch). So the first request's answer is kept, and a later one is rendered from it with its
own user. A request Gradio answers otherwise (the log-in page, a query: another page, a deep link) goes to
Gradio's own handler.
"""

from __future__ import annotations

import inspect
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import fastapi
from fastapi.responses import ORJSONResponse
from fastapi.routing import APIRoute
from gradio import route_utils, routes

_ROOTS_KEPT = 8  # a console is reached at a few addresses (this machine, its network's, a share link): a
# request naming any Host it likes must not make it keep an answer for each


class _Kept(NamedTuple):
    """How one route's answer is kept, and rendered again for another user."""

    route_path: str  # as Gradio names the route to find the root URL in a request's
    keep: Callable[[Any], Any]  # Gradio's response -> what is kept of it
    render: Callable[[fastapi.Request, Any, str | None], Any]  # (request, kept, user) -> the response


def _page(request: fastapi.Request, kept: tuple[str, dict], user: str | None):
    template, context = kept
    context = {**context, "request": request, "config": {**context["config"], "username": user}}
    return routes.templates.TemplateResponse(request=request, name=template, context=context)


_ROUTES = {
    "/": _Kept("/", lambda response: (response.template.name, response.context), _page),
    "/config": _Kept(
        "/config",
        lambda response: json.loads(response.body),
        lambda request, config, user: ORJSONResponse({**config, "username": user}),
    ),
}
_ROUTES["/config/"] = _ROUTES["/config"]


def build_once_an_address(app) -> None:
    """Put the handlers below in place of Gradio's own on `app` (Gradio's App), with their dependencies."""
    for index, route in enumerate(app.router.routes):
        if isinstance(route, APIRoute) and (kept := _ROUTES.get(route.path)) is not None:
            app.router.routes[index] = APIRoute(
                route.path,
                _handler(app, route.endpoint, kept),
                methods=route.methods,
                dependencies=route.dependencies,
                response_class=route.response_class,
            )
    getattr(app.router, "_mark_routes_changed", lambda: None)()  # FastAPI 0.165 caches its candidates


def _handler(app, gradios_own, kept_as: _Kept):
    """`gradios_own`: Gradio's handler, whose log-in dependency this one takes over as it is."""
    parameters = inspect.signature(gradios_own).parameters
    user_dependency = parameters["user"].default
    queries = {name: p.default for name, p in parameters.items() if name not in ("request", "user")}
    kept: OrderedDict[str, tuple[object, Any]] = OrderedDict()  # root URL -> (the app's config, kept answer)

    def answer(request: fastapi.Request, user: str | None = user_dependency):
        blocks = app.get_blocks()
        logged_in = user is not None or (app.auth is None and app.auth_dependency is None)
        if request.query_params or not logged_in:
            return gradios_own(
                request, user, **{name: request.query_params.get(name, d) for name, d in queries.items()}
            )
        root = route_utils.get_root_url(
            request=request,
            route_path=kept_as.route_path,
            root_path=app.root_path or request.scope.get("root_path") or blocks.custom_mount_path,
        )
        if (entry := kept.get(root)) is not None and entry[0] is blocks.config:
            return kept_as.render(request, entry[1], user)
        response = gradios_own(request, user, **queries)
        kept[root] = (blocks.config, kept_as.keep(response))
        if len(kept) > _ROOTS_KEPT:
            kept.popitem(last=False)
        return response

    return answer
