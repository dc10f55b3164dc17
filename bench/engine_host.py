"""What a room's engine host costs: tokens relayed a second from the host (backends/hosted.py) to the
room's processes, against the same streams read in the engine's own process, in one run.

    python -m bench.engine_host [--streams 64 256] [--tokens 256] [--processes 4] [--rounds 3] [--out FILE]

The engine is a stand-in with no model (`EveryTurn`): each stream gets one token a turn of the engine's
event loop, as LMDeploy's engine steps every running request at once; so what is measured is the relay
alone: the host's loop, each turn's replies pickled and sent, the socket, each process's reader thread
and its event loop. What the console does with a token after that (painting it) is bench.many_users'.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from backends import Backend, BackendInfo, ChatRequest, Finish, GenerationParams, TextDelta
from backends.hosted import HostedBackend, OneEngineHost
from bench.cli import emit
from telemetry.machine import describe_machine


class EveryTurn(Backend):
    """A stand-in engine: `max_new_tokens` one-word tokens a reply, one each turn of the event loop."""

    def info(self) -> BackendInfo:
        return BackendInfo(kind="cpu", model="none", engine="one token a loop turn (no model)")

    async def stream_chat(self, request: ChatRequest):
        for _ in range(request.params.max_new_tokens):
            yield TextDelta(" word")
            await asyncio.sleep(0)
        yield Finish("length")

    async def close(self) -> None:
        pass


async def read_streams(backend: Backend, streams: int, tokens: int) -> int:
    """`streams` replies at once from `backend`; returns the tokens read."""
    request = ChatRequest([{"role": "user", "content": "Hi"}], GenerationParams(max_new_tokens=tokens))

    async def one() -> int:
        return sum([isinstance(delta, TextDelta) async for delta in backend.stream_chat(request)])

    return sum(await asyncio.gather(*(one() for _ in range(streams))))


def _host(path: str, key: bytes) -> None:
    asyncio.run(OneEngineHost(EveryTurn()).serve(path, key))


def _room_process(path: str, key: bytes, streams: int, tokens: int, everyone_ready) -> tuple[int, float]:
    async def run() -> int:
        backend = await HostedBackend.connect(path, key)
        everyone_ready.wait()
        read = await read_streams(backend, streams, tokens)
        await backend.close()
        return read

    started = time.process_time()
    return asyncio.run(run()), time.process_time() - started


def in_process(streams: int, tokens: int) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    read = asyncio.run(read_streams(EveryTurn(), streams, tokens))
    return {
        "wall": time.perf_counter() - started,
        "tokens": read,
        "host_cpu": time.process_time() - cpu,
        "room_cpu": 0.0,
    }


def through_host(path: str, key: bytes, host: psutil.Process, streams: int, tokens: int, processes: int) -> dict:
    shares = [len(range(streams)[k::processes]) for k in range(processes)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(processes) as pool:
        everyone_ready = manager.Barrier(processes + 1)
        pending = pool.starmap_async(_room_process, [(path, key, share, tokens, everyone_ready) for share in shares])
        everyone_ready.wait(timeout=120)
        started, host_cpu = time.perf_counter(), sum(host.cpu_times()[:2])
        results = pending.get(timeout=600)
        wall = time.perf_counter() - started
    return {
        "wall": wall,
        "tokens": sum(read for read, _ in results),
        "host_cpu": sum(host.cpu_times()[:2]) - host_cpu,
        "room_cpu": sum(cpu for _, cpu in results),
    }


def row(layer: str, streams: int, tokens: int, rounds: list[dict]) -> str:
    wall = statistics.median(r["wall"] for r in rounds)
    rate = statistics.median(r["tokens"] / r["wall"] for r in rounds)
    host = statistics.median(r["host_cpu"] for r in rounds)
    per_token_us = statistics.median(r["host_cpu"] / r["tokens"] * 1e6 for r in rounds)
    room = statistics.median(r["room_cpu"] for r in rounds)
    return (
        f"| {layer} | {streams} | {tokens} | {wall:.2f} | {rate:,.0f} | {host:.2f} | {per_token_us:.1f} | {room:.2f} |"
    )


def run(args) -> str:
    folder = tempfile.mkdtemp(prefix="engine-host-")
    path, key = str(Path(folder) / "engine.sock"), os.urandom(32)
    host_process = multiprocessing.get_context("spawn").Process(target=_host, args=(path, key), daemon=True)
    host_process.start()
    while not os.path.exists(path):
        time.sleep(0.05)
    host = psutil.Process(host_process.pid)
    lines = [
        f"Tokens relayed by a room's engine host (no model: one token a loop turn per stream), {args.processes} room "
        f"processes, median of {args.rounds} rounds taken in turn with the same streams read in-process. "
        + describe_machine(),
        "",
        "| layer | streams | tokens each | wall s | tokens/s | engine process CPU s | its CPU µs a token | room processes' CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    try:
        for streams in args.streams:
            measured: dict[str, list[dict]] = {"in the engine's process": [], "through the engine host": []}
            for _ in range(args.rounds):
                measured["in the engine's process"].append(in_process(streams, args.tokens))
                measured["through the engine host"].append(
                    through_host(path, key, host, streams, args.tokens, args.processes)
                )
            lines += [row(layer, streams, args.tokens, rounds) for layer, rounds in measured.items()]
    finally:
        host_process.kill()
    lines += [
        "",
        "Engine process CPU: in-process, the reading process's own (the stand-in and the reading); through the "
        "host, the host's (the stand-in, the relay's loop, pickling and sending). Room processes' CPU: their "
        "reader threads, unpickling and their loops, in all.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    emit(run(args), args.out)


if __name__ == "__main__":
    main()
