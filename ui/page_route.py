"""The page (`GET /`) built once for the address it is reached at, then only its user set a visitor.

For every visitor Gradio 6.31 copies the whole app's config (~290 KB of JSON for the console), walks the
copy to put the request's address before each file URL, and prepares the API description again: 33 ms of
the console's CPU a page on the 2-core machine, the largest part of a page's opening (bench/page_opening.py),
so a class opening the link kept a console process busy for seconds. What differs between two visitors who
reach the console at the same address is the user the page names; the rest is the same while the app's
config is (it is made once, at launch). So the first visitor's page keeps its config and API description,
and a later one's is rendered from them with its own user. A request Gradio answers otherwise (the log-in
page, a query: another page, a deep link, every endpoint listed) goes to Gradio's own handler.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict

import fastapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from gradio import route_utils, routes

_PAGE_METHODS = ({"GET"}, {"HEAD"})
_ROOTS_KEPT = 8  # a console is reached at a few addresses (this machine, its network's, a share link): a
# request naming any Host it likes must not make it keep a page for each


def build_the_page_once_an_address(app) -> None:
    """Put the handler below in place of Gradio's own for `GET /` and `HEAD /` on `app` (Gradio's App)."""
    for index, route in enumerate(app.router.routes):
        if isinstance(route, APIRoute) and route.path == "/" and route.methods in _PAGE_METHODS:
            app.router.routes[index] = APIRoute(
                "/", _page_handler(app, route.endpoint), methods=route.methods, response_class=HTMLResponse
            )
    getattr(app.router, "_mark_routes_changed", lambda: None)()  # FastAPI 0.165 caches its candidates


def _page_handler(app, gradios_own):
    """`gradios_own`: Gradio's handler, whose log-in dependency this one takes over as it is."""
    user_dependency = inspect.signature(gradios_own).parameters["user"].default
    kept: OrderedDict[str, tuple[object, str, dict]] = OrderedDict()  # root URL -> (config, template, context)

    def page(request: fastapi.Request, user: str | None = user_dependency, page: str = "", deep_link: str = ""):
        blocks = app.get_blocks()
        logged_in = user is not None or (app.auth is None and app.auth_dependency is None)
        if request.query_params or not logged_in:
            return gradios_own(request, user, page, deep_link)
        root = route_utils.get_root_url(
            request=request,
            route_path="/",
            root_path=app.root_path or request.scope.get("root_path") or blocks.custom_mount_path,
        )
        if (built := kept.get(root)) is None or built[0] is not blocks.config:
            response = gradios_own(request, user, page, deep_link)
            kept[root] = (blocks.config, response.template.name, response.context)
            if len(kept) > _ROOTS_KEPT:
                kept.popitem(last=False)
            return response
        _, template, context = built
        context = {**context, "request": request, "config": {**context["config"], "username": user}}
        return routes.templates.TemplateResponse(request=request, name=template, context=context)

    return page
