"""LMDeploy's proxy for real (`lmdeploy serve proxy` on 127.0.0.1) in front of two OpenAI-compatible
nodes (transformers serve with the embedded model, listing it as api_server does): nodes checked
before they are added, chats spread over both, the Fleet view, removal, admins only, and a node
killed in the middle of a reply. The tests run in order: the last one kills a node."""

import asyncio
import signal

import pytest

from backends import BackendError, BackendUnavailable, ChatRequest, GenerationParams, TextDelta
from backends.fleet import NodeReport, ProxyBackend, ProxyClient
from console.access import AccessPolicy, NotAllowed
from console.core import Console
from console.fleet import FleetWatch
from presets.store import PresetCatalog
from tests.conftest import DOWN_PORT

pytestmark = pytest.mark.remote


def chat(text: str, max_new_tokens: int = 8) -> ChatRequest:
    return ChatRequest(
        [{"role": "user", "content": text}], GenerationParams(temperature=0, max_new_tokens=max_new_tokens)
    )


async def reply(backend, request: ChatRequest) -> str:
    return "".join([d.text async for d in backend.stream_chat(request) if isinstance(d, TextDelta)])


async def test_a_node_is_added_only_once_it_answers(fleet_proxy, fleet_nodes, embedded_folder):
    client = ProxyClient(fleet_proxy)
    with pytest.raises(BackendUnavailable, match="does not answer"):
        await client.add(f"http://127.0.0.1:{DOWN_PORT}")
    with pytest.raises(BackendError, match="is no URL"):
        await client.add("node-3:23333")
    assert not any(str(DOWN_PORT) in url or "node-3" in url for url in await client.node_table())
    for url in fleet_nodes:
        assert await client.add(url + "/v1/") == [str(embedded_folder)]
    assert set(await client.node_table()) == set(fleet_nodes)


async def test_chats_through_the_proxy_spread_over_both_nodes(fleet_proxy, fleet_nodes):
    backend = await ProxyBackend.connect_proxy(f"{fleet_proxy}/v1", None, None)
    try:
        replies = await asyncio.gather(*(reply(backend, chat(f"What is {i}+3?")) for i in range(4)))
        assert all(replies)
        served = {url: len(status["latency"]) for url, status in (await backend.fleet.node_table()).items()}
        assert all(count >= 1 for count in served.values()), served  # the proxy sends each to the less busy node
        view = await FleetWatch().look(backend.fleet)
        assert {node.url for node in view.nodes} == set(fleet_nodes) and all(node.healthy for node in view.nodes)
        assert all("no /metrics" in node.problem for node in view.nodes)  # transformers serve has none
        with pytest.raises(BackendError, match="no node of the proxy serves /metrics"):
            await backend.scheduler_metrics()
        assert backend.info().details["proxy"] == fleet_proxy
    finally:
        await backend.close()


async def test_only_admins_manage_nodes_and_a_removed_node_is_shown_gone(fleet_proxy, fleet_nodes, tmp_path):
    backend = await ProxyBackend.connect_proxy(f"{fleet_proxy}/v1", None, None)
    admins = AccessPolicy(logins=True, admins=frozenset({"ada"}))
    console = Console(backend, "test", access=admins, catalog=PresetCatalog(user_dir=tmp_path))
    url = next(iter(fleet_nodes))
    try:
        first = await console.fleet.view()
        assert await console.fleet.view(max_age_s=60) is first  # pages refreshing together share one look
        with pytest.raises(NotAllowed, match="only admins can remove nodes from the proxy"):
            await console.fleet.remove_node(url, user="bob")
        with pytest.raises(NotAllowed, match="only admins can add nodes"):
            await console.fleet.add_node(url, user="bob")
        await console.fleet.remove_node(url, user="ada")
        view = await console.fleet.view()
        assert url not in {node.url for node in view.nodes} and url in view.gone
        await console.fleet.add_node(url, user="ada")
        assert url not in (await console.fleet.view()).gone
        with pytest.raises(NotAllowed, match="only admins can save presets"):
            await console.fleet.save_node_presets(user="bob")
        pinned = await console.fleet.save_node_presets(user="ada")
        assert sorted(console.catalog.get(name).base_url for name in pinned) == sorted(f"{u}/v1" for u in fleet_nodes)
    finally:
        await console.close()


async def test_a_node_preset_reaches_its_node_directly(fleet_proxy, fleet_nodes):
    """What Compare runs when pinned to a node: the node itself, not the proxy."""
    from backends import create_backend
    from console.fleet import FleetView, node_presets

    url = next(iter(fleet_nodes))
    node = NodeReport(url, models=(), role="Hybrid", in_flight=0, latency_s=None, healthy=True)
    (preset,) = node_presets(FleetView(fleet_proxy, (node,), {}, ()), None).values()
    await ProxyClient(fleet_proxy).add(url)  # registered already, unless this test runs alone
    routed_before = len((await ProxyClient(fleet_proxy).node_table())[url]["latency"])
    backend, _ = await create_backend(preset.to_spec())
    try:
        assert await reply(backend, chat("What is 2+3?"))
    finally:
        await backend.close()
    assert len((await ProxyClient(fleet_proxy).node_table())[url]["latency"]) == routed_before


def test_the_console_runs_on_the_proxy_and_its_fleet_endpoints_work(fleet_proxy, fleet_nodes, app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    before = client.predict(api_name="/fleet")
    assert before["ok"] is False and "not LMDeploy's proxy" in before["error"]
    try:
        switched = client.predict("fleet-test", api_name="/switch_preset")
        assert switched["ok"], switched
        assert switched["engine_status"]["engine"] == "LMDeploy proxy"
        chatbot, _ = client.predict(message="What is 2+3?", temperature=0, max_new_tokens=16, api_name="/chat")
        assert "tok/s" in chatbot[-1]["content"][0]["text"]
        fleet = client.predict(api_name="/fleet")
        assert fleet["ok"] and {node["url"] for node in fleet["nodes"]} == set(fleet_nodes)
        assert sum(node["in_flight"] for node in fleet["nodes"]) == 0 and all(n["healthy"] for n in fleet["nodes"])
        removed = next(iter(fleet_nodes))
        assert client.predict(removed, False, api_name="/fleet_remove") == {"ok": True}
        assert removed in [
            gone["url"] for gone in client.predict(api_name="/fleet")["gone"]
        ]  # (the page's tests leave others)
        refused = client.predict(f"http://127.0.0.1:{DOWN_PORT}", api_name="/fleet_add")
        assert refused["ok"] is False and "does not answer" in refused["error"]
        assert client.predict(removed, api_name="/fleet_add")["ok"]
    finally:
        client.predict("cpu", api_name="/switch_preset")


async def test_a_fleet_starts_from_a_proxy_with_no_node_and_chats_once_one_is_added(fleet_nodes, tmp_path):
    from backends.fleet import NO_NODE_YET
    from tests.conftest import free_port, start_proxy, stop_process

    process, url = start_proxy(free_port(), tmp_path / "proxy.log")
    try:
        backend = await ProxyBackend.connect_proxy(f"{url}/v1", None, None)  # what a switch to its preset does
        try:
            assert backend.info().model == NO_NODE_YET
            with pytest.raises(BackendUnavailable, match="has no node yet: add an api_server on the Fleet tab"):
                await reply(backend, chat("What is 2+3?"))
            node = next(iter(fleet_nodes))
            await backend.fleet.add(node)  # what the Fleet tab's Add node does
            assert await reply(backend, chat("What is 2+3?"))
            assert backend.info().model == (await backend.fleet.reports())[0].models[0]
        finally:
            await backend.close()
    finally:
        stop_process(process)


async def test_a_proxy_that_went_away_is_named_in_the_error(fleet_nodes, tmp_path):
    from tests.conftest import free_port, start_proxy, stop_process

    process, url = start_proxy(free_port(), tmp_path / "proxy.log")
    try:
        await ProxyClient(url).add(next(iter(fleet_nodes)))
        backend = await ProxyBackend.connect_proxy(f"{url}/v1", None, None)
    finally:
        stop_process(process)
    try:
        with pytest.raises(
            BackendUnavailable, match=r"proxy at .* does not answer .*is `lmdeploy serve proxy` running"
        ):
            await reply(backend, chat("What is 2+3?"))
        with pytest.raises(BackendUnavailable, match="is `lmdeploy serve proxy` running"):
            await ProxyClient(url).reports()  # what the Fleet tab shows
    finally:
        await backend.close()


async def test_a_node_killed_mid_reply_ends_that_reply_and_the_next_goes_to_a_live_node(fleet_proxy, fleet_nodes):
    backend = await ProxyBackend.connect_proxy(f"{fleet_proxy}/v1", None, None)
    try:
        stream = backend.stream_chat(chat("Write a long story about a lighthouse.", max_new_tokens=400))
        await anext(stream)
        busy = [url for url, status in (await backend.fleet.node_table()).items() if status["unfinished"]]
        assert len(busy) == 1
        fleet_nodes[busy[0]].send_signal(signal.SIGKILL)
        with pytest.raises(BackendUnavailable, match="ended without a finish reason.*left the routing"):
            async for _ in stream:
                pass
        assert busy[0] not in await backend.fleet.node_table()  # out of the routing at once, not in 90 s
        for i in range(3):
            assert await reply(backend, chat(f"What is {i}+1?"))
        view = await FleetWatch().look(backend.fleet)
        assert [node.url for node in view.nodes] == [url for url in fleet_nodes if url != busy[0]]
    finally:
        await backend.close()
