"""What the Fleet tab shows: the proxy's nodes now, the requests in flight on each over time, and
the nodes that left, with when."""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends import BackendUnavailable
from presets.schema import Preset

if TYPE_CHECKING:  # the proxy's client imports openai's; a console without a proxy never needs it
    from backends.fleet import NodeReport, ProxyClient

    from .core import Console

WINDOW_S = 600


@dataclass(frozen=True)
class FleetView:
    proxy: str
    nodes: tuple[NodeReport, ...]
    gone: dict[str, float]  # node url -> when it was last seen (time.time())
    history: tuple[tuple[float, dict[str, int]], ...]  # (time.time(), {node url: requests in flight})


class FleetWatch:
    """Remembers what each look at the proxy saw, so that a node that left is shown as gone. A look asks
    the proxy and every node (health, Prometheus metrics); every open page refreshes the Fleet tab, so a
    look younger than a refresh's `max_age_s` is handed out again instead of asked anew for each page."""

    def __init__(self, window_s: float = WINDOW_S):
        self._window_s = window_s
        self._forget("")

    def _forget(self, proxy: str) -> None:
        self._proxy = proxy
        self._last_seen: dict[str, float] = {}
        self._gone: dict[str, float] = {}
        self._history: deque[tuple[float, dict[str, int]]] = deque()
        self._view: FleetView | None = None

    async def look(self, fleet: ProxyClient, max_age_s: float = 0.0) -> FleetView:
        if fleet.url != self._proxy:  # another proxy's preset runs now
            self._forget(fleet.url)
        if self._view is not None and time.time() - self._history[-1][0] <= max_age_s:
            return self._view
        nodes = await fleet.reports()
        now = time.time()
        present = {node.url for node in nodes}
        for url in self._last_seen.keys() - present:
            self._gone[url] = self._last_seen.pop(url)
        for url in present:
            self._gone.pop(url, None)
            self._last_seen[url] = now
        self._history.append((now, {node.url: node.in_flight for node in nodes}))
        while self._history and self._history[0][0] < now - self._window_s:
            self._history.popleft()
        self._view = FleetView(fleet.url, tuple(nodes), dict(self._gone), tuple(self._history))
        return self._view


def node_presets(view: FleetView, api_key_env: str | None) -> dict[str, Preset]:
    """A remote preset for each node, straight to its own address (not through the proxy): Compare runs
    presets, so these pin its runs to one node at a time."""
    return {
        "node-" + re.sub(r"[^a-z0-9]+", "-", node.url.lower().split("://")[-1]).strip("-"): Preset(
            description=f"node {node.url} of the proxy {view.proxy}, reached directly (saved from the Fleet tab)",
            backend="remote",
            base_url=f"{node.url}/v1",
            api_key_env=api_key_env,
        )
        for node in view.nodes
    }


class FleetControl:
    """The running preset's proxy and what admins do with its nodes."""

    def __init__(self, console: Console):
        self._console = console
        self._watch = FleetWatch()

    @property
    def proxy(self) -> ProxyClient:
        """The running preset's proxy; BackendUnavailable where the engine is no proxy."""
        backend = self._console.backend
        if "proxy" in backend.info().details:  # a proxy's backend is loaded: its module (and openai) are too
            from backends.fleet import ProxyBackend

            if isinstance(backend, ProxyBackend):
                return backend.fleet
        raise BackendUnavailable(
            "the running preset is not LMDeploy's proxy: switch to one with `proxy: true` "
            "(the shipped `fleet` preset points at http://127.0.0.1:8000)"
        )

    async def view(self, max_age_s: float = 0.0) -> FleetView:
        """The proxy's nodes now, or as seen less than `max_age_s` ago."""
        return await self._watch.look(self.proxy, max_age_s)

    async def add_node(self, url: str, *, user: str | None = None) -> list[str]:
        """Register an api_server with the proxy (admins only), once it answers; returns its models."""
        self._console.access.require_admin(user, "add nodes to the proxy")
        return await self.proxy.add(url)

    async def save_node_presets(self, *, user: str | None = None) -> list[str]:
        """Save a preset per node of the proxy, reaching it directly (admins only), for Compare; returns their names."""
        console = self._console
        console.access.require_admin(user, "save presets")
        running = console.state().preset
        key_env = console.catalog.get(running).api_key_env if running else None
        presets = node_presets(await self.view(), key_env)
        for name, preset in presets.items():  # made from the proxy's nodes: made again each time
            console.catalog.save(name, preset, replace=True)
        return list(presets)

    async def remove_node(self, url: str, *, terminate: bool = False, user: str | None = None) -> None:
        """Take a node out of the proxy's routing (admins only); `terminate`: and shut it down."""
        self._console.access.require_admin(user, "terminate nodes" if terminate else "remove nodes from the proxy")
        await self.proxy.remove(url, terminate)
