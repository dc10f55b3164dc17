"""LMDeploy's proxy (`lmdeploy serve proxy`) and the api_servers registered with it.

What the proxy offers, read in LMDeploy 0.18 (`serve/proxy/proxy.py`): it forwards `/v1/models`,
`/v1/chat/completions` and `/v1/completions` to a node picked by its routing strategy;
`GET /nodes/status` gives `{url: {models, unfinished, latency, speed, role}}`; `POST /nodes/add`,
`/nodes/remove` and `/nodes/terminate` take `{"url"}` and skip its API-key check (so the proxy's port
must stay private, and the console never hands those routes to its users). It answers 200 even
when adding a node failed, with the error as the body; and it drops a node whose `GET /health` fails
only every 90 s. So the console checks a node itself before adding it, reads perplexity and
`/metrics` from the nodes directly, and takes a node that stopped answering out of the routing at
once (`ProxyBackend`), so that the next request goes to a live one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import statistics
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx

from .base import BackendError, BackendInfo, BackendUnavailable, ChatRequest, Delta, SchedulerMetrics, TextScore
from .prometheus import lmdeploy_series, scheduler_from_series, series_value
from .remote import DEFAULT_READ_TIMEOUT_S, RemoteBackend, served_models, server_root

logger = logging.getLogger("lmdeploy_console.fleet")
_PROBE_TIMEOUT = httpx.Timeout(3.0)
# LMDeploy's EngineRole, which /nodes/status gives as its value (read from JSON: any value may come)
_ROLES: dict[object, str] = {1: "Hybrid", 2: "Prefill", 3: "Decode"}


@dataclass(frozen=True)
class NodeReport:
    """One node as the proxy sees it and as it answers for itself."""

    url: str
    models: tuple[str, ...]
    role: str  # Hybrid, Prefill or Decode (LMDeploy's disaggregated serving)
    in_flight: int  # requests the proxy sent it that have not finished
    latency_s: float | None  # the mean of the proxy's last 15 request latencies
    healthy: bool
    problem: str | None = None  # why it is not healthy, or why its metrics are missing
    scheduler: SchedulerMetrics | None = None  # from its /metrics (api_server's Prometheus page)

    def figure(self, name: str) -> float | None:
        """One of api_server's series by its name without labels (`time_to_first_token_seconds_sum`, ...)."""
        return series_value(self.scheduler.series, name) if self.scheduler else None

    def backend_config(self) -> dict[str, str]:
        """The engine config the node reports (`lmdeploy:backend_config_info`, an Info metric's labels)."""
        series = self.scheduler.series if self.scheduler else {}
        key = next((key for key in series if key.startswith("lmdeploy:backend_config_info{")), None)
        if key is None:
            return {}
        return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', key[key.index("{") :]))

    def mean(self, histogram: str) -> float | None:
        """A Prometheus histogram's mean over the node's life: its _sum over its _count."""
        total, count = self.figure(f"{histogram}_sum"), self.figure(f"{histogram}_count")
        return total / count if total is not None and count else None


class ProxyClient:
    """The proxy's node routes and the nodes' own pages, for the console's admins (never its users)."""

    def __init__(self, proxy_url: str, api_key: str | None = None):
        self.url = server_root(proxy_url)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def node_table(self) -> dict[str, dict]:
        """`/nodes/status` as the proxy keeps it: url -> {models, unfinished, latency, speed, role}."""
        try:
            async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT) as http:
                response = await http.get(f"{self.url}/nodes/status")
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"the proxy at {self.url} does not answer ({type(exc).__name__}); is `lmdeploy serve proxy` running?"
            ) from exc
        table = response.json() if response.status_code == 200 else None
        if not isinstance(table, dict):
            raise BackendError(f"{self.url}/nodes/status answered {response.status_code}: {response.text[:200]}")
        return table

    async def reports(self) -> list[NodeReport]:
        """Every node the proxy routes to, each asked for its health and metrics at once."""
        table = await self.node_table()
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT, headers=self._headers) as http:
            return list(await asyncio.gather(*(self._report(http, url, status) for url, status in table.items())))

    async def _report(self, http: httpx.AsyncClient, url: str, status: dict) -> NodeReport:
        latencies = status.get("latency") or []
        report = functools.partial(
            NodeReport,
            url=url,
            models=tuple(status.get("models") or ()),
            role=_ROLES.get(status.get("role"), str(status.get("role", "Hybrid"))),
            in_flight=int(status.get("unfinished") or 0),
            latency_s=statistics.fmean(latencies) if latencies else None,
        )
        try:
            health = await http.get(f"{url}/health")
        except httpx.HTTPError as exc:
            return report(healthy=False, problem=f"no answer ({type(exc).__name__})")
        if health.status_code != 200:
            return report(healthy=False, problem=f"/health answered {health.status_code}")
        try:
            metrics = await http.get(f"{url}/metrics")
        except httpx.HTTPError as exc:
            return report(healthy=True, problem=f"/metrics: no answer ({type(exc).__name__})")
        if metrics.status_code != 200:
            return report(healthy=True, problem="no /metrics")  # not an api_server, or --disable-metrics
        try:
            return report(healthy=True, scheduler=scheduler_from_series(lmdeploy_series(metrics.text)))
        except BackendError as exc:
            return report(healthy=True, problem=str(exc))

    async def add(self, node_url: str) -> list[str]:
        """Register a node after checking that it serves models; returns them. The proxy's own answer
        is 200 whether or not it took the node, so whether it did is read back from its table."""
        node_url = server_root(node_url)
        if not node_url.startswith(("http://", "https://")):
            raise BackendError(f"{node_url!r} is no URL: give the node's address, e.g. http://10.0.0.5:23333")
        models = await self._served_models(node_url)
        await self._post("/nodes/add", node_url)
        if node_url not in await self.node_table():
            raise BackendError(f"the proxy did not take {node_url} (see its log)")
        return models

    async def remove(self, node_url: str, terminate: bool = False) -> None:
        """Take a node out of the routing; `terminate`: the proxy also asks the node to shut down."""
        if node_url not in await self.node_table():
            raise BackendError(f"{node_url} is not one of the proxy's nodes")
        await self._post("/nodes/terminate" if terminate else "/nodes/remove", node_url)

    async def drop_silent_nodes(self) -> list[str]:
        """Take every node that fails its health check out of the routing now (the proxy itself would
        wait up to 90 s); returns their URLs."""
        silent = [report.url for report in await self.reports() if not report.healthy]
        for url in silent:
            await self._post("/nodes/remove", url)
            logger.warning("took %s out of the proxy's routing: it does not answer /health", url)
        return silent

    async def _served_models(self, node_url: str) -> list[str]:
        try:
            async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT, headers=self._headers) as http:
                response = await http.get(f"{node_url}/v1/models")
            models = [model["id"] for model in response.json()["data"]]
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"{node_url} does not answer ({type(exc).__name__}): is its server up?") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"{node_url}/v1/models did not list models: is it an OpenAI-compatible server?") from exc
        if not models:
            raise BackendError(f"{node_url} serves no model")
        return models

    async def _post(self, route: str, node_url: str) -> None:
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http:
                response = await http.post(f"{self.url}{route}", json={"url": node_url})
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"the proxy at {self.url} does not answer ({type(exc).__name__})") from exc
        if response.status_code != 200 or "failed" in response.text.lower():
            raise BackendError(f"the proxy refused {route} for {node_url}: {response.text[:200]}")


ADD_A_NODE = "add an api_server on the Fleet tab (Manage nodes), or with /fleet_add"
NO_NODE_YET = "(no node yet)"


class ProxyBackend(RemoteBackend):
    """Chat, tools and Compare through the proxy; perplexity and scheduler figures from the nodes."""

    fleet: ProxyClient

    @classmethod
    async def connect_proxy(
        cls, base_url: str, api_key: str | None, model: str | None, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    ) -> ProxyBackend:
        # a proxy with no node yet is a fleet being set up: its nodes are added on the Fleet tab
        backend = await cls.connect(base_url, api_key, model, read_timeout_s, models_may_come_later=True)
        backend.fleet = ProxyClient(base_url, backend._client.api_key)
        await backend.fleet.node_table()  # a plain api_server has no /nodes/status: say so now, not on the Fleet tab
        return backend

    def info(self) -> BackendInfo:
        info = super().info()
        model = info.model or NO_NODE_YET
        return BackendInfo(
            kind="remote", model=model, engine="LMDeploy proxy", details={**info.details, "proxy": self.fleet.url}
        )

    async def _pick_model(self) -> None:
        """The model the nodes serve, read once the first node is there (the proxy had none at the switch)."""
        if self._model:
            return
        served = await served_models(self._client, self._base_url)
        if not served:
            raise BackendUnavailable(f"the proxy at {self.fleet.url} has no node yet: {ADD_A_NODE}")
        self._model = served[0]

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[Delta]:
        """A node that fails before the reply starts is taken out of the routing and the request sent
        again (once); one that fails mid-reply ends the reply with what came, and leaves the routing."""
        await self._pick_model()
        for attempt in (1, 2):
            started = False
            try:
                async for delta in super().stream_chat(request):
                    started = True
                    yield delta
                return
            except BackendUnavailable as exc:
                try:
                    dropped = await self.fleet.drop_silent_nodes()
                except BackendError as proxy_down:  # the proxy itself: say that, not what the client saw
                    kept = "; the reply so far is kept" if started else ""
                    raise BackendUnavailable(f"{proxy_down}{kept}") from exc
                if started or attempt == 2 or not dropped:
                    suffix = f" ({', '.join(dropped)} stopped answering and left the routing)" if dropped else ""
                    raise BackendUnavailable(f"{exc}{suffix}") from exc

    async def scheduler_metrics(self) -> SchedulerMetrics:
        """The fleet's scheduler as one: requests running and waiting summed, KV use and prefix-cache
        hit rate averaged over the nodes that report them."""
        schedulers = [r.scheduler for r in await self.fleet.reports() if r.scheduler]
        if not schedulers:
            raise BackendError("no node of the proxy serves /metrics (api_server started without --disable-metrics)")

        def mean(values):
            values = [v for v in values if v is not None]
            return statistics.fmean(values) if values else None

        def total(values):
            values = [v for v in values if v is not None]
            return sum(values) if values else None

        return SchedulerMetrics(
            cache_usage=mean(s.cache_usage for s in schedulers),
            running=total(s.running for s in schedulers),
            waiting=total(s.waiting for s in schedulers),
            prefix_cache_hit_rate=mean(s.prefix_cache_hit_rate for s in schedulers),
        )

    async def score_text(self, text: str) -> TextScore:
        """Perplexity from the first healthy node's own `/get_ppl` (the proxy does not forward it)."""
        healthy = [r.url for r in await self.fleet.reports() if r.healthy and self._model in r.models]
        if not healthy:
            raise BackendUnavailable(f"no healthy node of the proxy serves {self._model}")
        node = RemoteBackend(self._client, self._model, f"{healthy[0]}/v1", self._read_timeout_s)
        return await node.score_text(text)
