"""The Fleet against one node: N chats at once through the console in front of LMDeploy's proxy and
several api_servers, against the same console in front of one of those nodes alone, in one run
(32 chats through the console on two nodes >= 1.7x one node's aggregate tok/s).

    python -m bench.fleet_throughput --model /models/llama2-7b-random --nodes 2 --concurrency 32
    python -m bench.fleet_throughput --model /models/llama2-7b-random --document-words 3500   # long prompts
    python -m bench.fleet_throughput --server transformers --concurrency 4   # CPU: a smoke run

Starts `--nodes` servers on 127.0.0.1 (`lmdeploy serve api_server`, node i on GPU i of those
CUDA_VISIBLE_DEVICES gives, or GPU i mod their count when there are fewer GPUs than nodes: then pass a
smaller --cache-max-entry-count; or `transformers serve` on the CPU) and `lmdeploy serve proxy`, adds
the nodes through the console's own `ProxyClient.add`, and starts two consoles (`app.py`): one on a
remote preset pointing at node 1, one on a proxy preset. Four layers, all up at once, rounds
interleaved, each chat from its own page (consoles) or request (openai):
  node 1 alone, openai client     N chats straight to node 1: the server's own figure
  fleet, openai client            N chats to the proxy
  console -> node 1               the console on node 1 alone
  console -> fleet                the console on the proxy: the figure the issue asks about
While `console -> fleet` runs, the proxy's requests in flight per node (what the Fleet tab shows) and
each GPU's utilisation are sampled, and each node's generated tokens (its /metrics) are read before
and after: how the work spread. Prints a Markdown table; `--out FILE` also writes it there.

A second node can only help where one is busy: 32 short chats leave a 7B model's decode bound by
reading its weights once a step, whatever the batch, so half the batch on each of two cards takes
about as long a step. `--document-words N` gives each chat a document of its own of N words (about
N tokens) to answer about, so prefill and the KV cache each step reads grow with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from backends import GenerationParams
from backends.fleet import NodeReport, ProxyClient
from bench.cli import emit
from bench.stream_layers import ConsoleLayer, OpenAILayer, prompts_at_once
from telemetry.machine import describe_machine
from telemetry.vram import VramSampler

TARGET_RATIO = 1.7  # the fleet's target: two nodes against one


@dataclass
class LayerResult:
    name: str
    aggregates: list[float] = field(default_factory=list)  # tok/s, one a round
    ttfts_ms: list[float] = field(default_factory=list)  # each round's median TTFT
    prompt_tokens: list[int] = field(default_factory=list)  # as the server counted them, where it says


@dataclass
class Spread:
    """How the console -> fleet batches spread over the nodes."""

    peak_in_flight: dict[str, int] = field(default_factory=dict)
    generated_tokens: dict[str, float] = field(default_factory=dict)
    gpu_util_pct: dict[int, list[int]] = field(default_factory=dict)


class Servers:
    """The nodes and the proxy, started and stopped together."""

    def __init__(self, args, folder: Path):
        from tests.conftest import free_port, start_proxy, wait_for_http

        self.processes = []
        launched = [self._launch_node(args, i, folder) for i in range(args.nodes)]  # they load side by side
        for process, base_url, log in launched:
            wait_for_http(f"{base_url}/models", process, log, timeout_s=1200)
        self.node_urls = [base_url.removesuffix("/v1") for _, base_url, _ in launched]
        proxy, self.proxy_url = start_proxy(free_port(), folder / "proxy.log")
        self.processes.append(proxy)

    def _launch_node(self, args, index: int, folder: Path) -> tuple:
        from tests.conftest import free_port, start_openai_server, start_process

        node_folder = folder / f"node{index}"
        node_folder.mkdir(parents=True)
        log = node_folder / "server.log"
        if args.server == "transformers":
            process, base_url = start_openai_server(Path(args.model), node_folder, "--list-model")
        else:
            port = free_port()
            command = [sys.executable, "-m", "lmdeploy", "serve", "api_server", args.model, "--server-name"]
            command += ["127.0.0.1", "--server-port", str(port), "--backend", args.engine, "--log-level", "ERROR"]
            command += ["--cache-max-entry-count", str(args.cache_max_entry_count)]
            env = os.environ | {"CUDA_VISIBLE_DEVICES": visible_gpu(index)}
            process, base_url = start_process(command, log, env=env), f"http://127.0.0.1:{port}/v1"
        self.processes.append(process)
        return process, base_url, log

    def stop(self) -> None:
        from tests.conftest import stop_process

        for process in self.processes:
            stop_process(process)


def visible_gpu(node: int) -> str:
    """The GPU node `node` runs on: one a node while there are enough, shared beyond that."""
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES") or ",".join(str(i) for i in range(gpu_count()))
    listed = gpus.split(",")
    return listed[node % len(listed)]


def gpu_count() -> int:
    return max(1, len(VramSampler().sample().gpus))


class SpreadWatch:
    """Samples the proxy's node table and the GPUs while one layer runs."""

    def __init__(self, proxy: ProxyClient, sampler: VramSampler, spread: Spread):
        self._proxy, self._sampler, self._spread = proxy, sampler, spread

    async def around(self, batch):
        before = await self._proxy.reports()
        started = time.time()
        watching = asyncio.create_task(self._watch())
        try:
            return await batch
        finally:
            watching.cancel()
            for sample in self._sampler.history():
                if sample.time_s >= started:
                    for gpu in sample.gpus:
                        if gpu.util_pct is not None:
                            self._spread.gpu_util_pct.setdefault(gpu.index, []).append(gpu.util_pct)
            self._count_tokens(before, await self._proxy.reports())

    async def _watch(self) -> None:
        while True:
            for url, status in (await self._proxy.node_table()).items():
                peak = self._spread.peak_in_flight.get(url, 0)
                self._spread.peak_in_flight[url] = max(peak, int(status.get("unfinished") or 0))
            await asyncio.sleep(0.25)

    def _count_tokens(self, before: list[NodeReport], after: list[NodeReport]) -> None:
        earlier = {report.url: report.figure("generation_tokens_total") for report in before}
        for report in after:
            now, then = report.figure("generation_tokens_total"), earlier.get(report.url)
            if now is not None and then is not None:
                self._spread.generated_tokens[report.url] = (
                    self._spread.generated_tokens.get(report.url, 0) + now - then
                )


async def measure(args, servers: Servers, folder: Path) -> tuple[list[LayerResult], Spread]:
    params = GenerationParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    node = servers.node_urls[0]
    console_presets = {
        "console -> node 1": {"description": "one node", "backend": "remote", "base_url": f"{node}/v1"},
        "console -> fleet": {
            "description": "the fleet",
            "backend": "remote",
            "proxy": True,
            "base_url": f"{servers.proxy_url}/v1",
        },
    }
    layers = [
        OpenAILayer("node 1 alone, openai client", f"{node}/v1", params),
        OpenAILayer("fleet, openai client", f"{servers.proxy_url}/v1", params),
    ]
    for name, preset in console_presets.items():
        layers.append(await asyncio.to_thread(ConsoleLayer, name, preset, params, folder))
    results, spread = [LayerResult(layer.name) for layer in layers], Spread()
    sampler = VramSampler(interval_s=0.5).start()
    watch = SpreadWatch(ProxyClient(servers.proxy_url), sampler, spread)
    prompts = prompts_at_once(args.concurrency, args.document_words)
    try:
        for layer in layers:  # warm-up: engines capture CUDA graphs per batch size on first use
            await layer.run(prompts)
        for _ in range(args.rounds):
            for layer, result in zip(layers, results, strict=True):
                run = layer.run(prompts)
                batch = await (watch.around(run) if layer.name == "console -> fleet" else run)
                result.aggregates.append(batch.aggregate_tok_s)
                result.ttfts_ms.append(1000 * statistics.median(s.ttft_s for s in batch.samples))
                result.prompt_tokens += [s.prompt_tokens for s in batch.samples if s.prompt_tokens]
    finally:
        sampler.stop()
        for layer in layers:
            await layer.close()
    return results, spread


def table(results: list[LayerResult], spread: Spread, servers: Servers, args) -> str:
    by_name = {result.name: result for result in results}
    one_node = by_name["node 1 alone, openai client"].aggregates
    lines = [
        f"{args.nodes} nodes ({args.server}{f', {args.engine}' if args.server == 'lmdeploy' else ''}), "
        f"model `{args.model}`; {args.concurrency} chats at once, {args.rounds} rounds, layers interleaved; "
        f"{workload(args, by_name['node 1 alone, openai client'].prompt_tokens)}; greedy, max_new_tokens "
        f"{args.max_new_tokens}. Ratios: median over rounds (lowest-highest round).",
        "",
        describe_machine(),
        "",
        f"| layer | aggregate tok/s, {args.concurrency} chats | vs node 1 alone (openai) | "
        f"vs the console on node 1 | median TTFT (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result in results:
        lines.append(
            f"| {result.name} | {statistics.median(result.aggregates):,.0f} | {ratio(result.aggregates, one_node)} | "
            f"{ratio(result.aggregates, by_name['console -> node 1'].aggregates)} | "
            f"{statistics.median(result.ttfts_ms):.0f} |"
        )
    fleet = statistics.median(
        a / b
        for a, b in zip(by_name["console -> fleet"].aggregates, by_name["console -> node 1"].aggregates, strict=True)
    )
    verdict = "met" if fleet >= TARGET_RATIO else "not met"
    lines += [
        "",
        f"Console on the fleet against the console on one node: {fleet:.2f}x (target >= {TARGET_RATIO}x: {verdict}).",
        "",
        "How `console -> fleet` spread over the nodes (all its rounds):",
        "",
        "| node | peak requests in flight (the proxy's table) | tokens generated (its /metrics) |",
        "| --- | --- | --- |",
    ]
    for url in servers.node_urls:
        tokens = spread.generated_tokens.get(url)
        lines.append(f"| {url} | {spread.peak_in_flight.get(url, 0)} | {'-' if tokens is None else f'{tokens:,.0f}'} |")
    if spread.gpu_util_pct:
        utilisation = ", ".join(
            f"GPU {index} {statistics.mean(values):.0f}%" for index, values in sorted(spread.gpu_util_pct.items())
        )
        lines += ["", f"Mean GPU utilisation while it ran (NVML, every 0.5 s): {utilisation}."]
    return "\n".join(lines)


def workload(args, prompt_tokens: list[int]) -> str:
    prompts = f"each chat a document of {args.document_words:,} words" if args.document_words else "short prompts"
    if prompt_tokens:
        prompts += f" (median {statistics.median(prompt_tokens):,.0f} prompt tokens, node 1's count)"
    return prompts


def ratio(values: list[float], base: list[float]) -> str:
    ratios = [v / b for v, b in zip(values, base, strict=True)]
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


async def run(args) -> str:
    folder = Path(args.log_dir or tempfile.mkdtemp(prefix="fleet-bench-"))
    servers = Servers(args, folder)
    try:
        proxy = ProxyClient(servers.proxy_url)
        for url in servers.node_urls:
            await proxy.add(url)
        results, spread = await measure(args, servers, folder)
        return table(results, spread, servers, args)
    finally:
        servers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["lmdeploy", "transformers"], default="lmdeploy")
    parser.add_argument("--engine", choices=["turbomind", "pytorch"], default="turbomind")
    parser.add_argument("--model", help="a local model folder (default: the embedded SmolLM2-135M)")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--document-words", type=int, default=0, help="each chat a document of this many words")
    parser.add_argument("--cache-max-entry-count", type=float, default=0.8, help="each node's KV share")
    parser.add_argument("--log-dir", help="where the servers and consoles log (default: a new temporary folder)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if not args.model:
        from backends.embedded_model import embedded_hf_folder

        args.model = str(embedded_hf_folder())
    emit(asyncio.run(run(args)), args.out)


if __name__ == "__main__":
    main()
