"""One-off probe, kept as it ran (session 4, H100): is the 16-stream gap the console's worker, or a second process?

Run from the repository root: python3 <this file> turbomind|pytorch 16. Three layers loaded at once:
in-proc (the pipeline here), child-proc (the same pipeline in a spawned process, timed there),
worker (the console's LmdeployBackend). The 16-stream log came from the first version of the
round loop (4 rounds of 16 at once); the 1-stream log from this one.

It runs against the tree it was committed with (26e087b): `bench.chat_overhead.prompt_at` moved to
`bench.stream_layers` later (e35fea2), so `git checkout 26e087b` first."""

import asyncio
import multiprocessing as mp
import statistics
import sys

from backends import GenerationParams
from bench.chat_overhead import BackendLayer, PipelineLayer, prompt_at
from bench.cli import backend_parser

N = int(sys.argv[2]) if len(sys.argv) > 2 else 16


def describe(name, batch):
    s = batch.samples
    print(
        f"{name:10s} agg {batch.aggregate_tok_s:8.1f} tok/s wall {batch.wall_s * 1000:7.1f} ms "
        f"ttft min/med/max {min(x.ttft_s for x in s) * 1000:6.1f}/{statistics.median(x.ttft_s for x in s) * 1000:6.1f}/{max(x.ttft_s for x in s) * 1000:6.1f} "
        f"end min/max {min(x.total_s for x in s) * 1000:6.1f}/{max(x.total_s for x in s) * 1000:6.1f} tokens {sorted(set(x.tokens for x in s))}",
        flush=True,
    )


def child(conn, args, params):
    layer = PipelineLayer(args, params)
    asyncio.run(layer.run(["Hello!"]))
    conn.send("ready")
    while (n := conn.recv()) is not None:
        prompts = [prompt_at(-n - 1)] if n < 0 else [prompt_at(i) for i in range(n)]
        conn.send(asyncio.run(layer.run(prompts)))


async def main():
    args = backend_parser(None).parse_args(
        ["--backend", "lmdeploy", "--engine", sys.argv[1], "--cache-max-entry-count", "0.2", "--max-new-tokens", "256"]
    )
    params = GenerationParams(temperature=0, max_new_tokens=256)
    a = PipelineLayer(args, params)
    ctx = mp.get_context("spawn")
    parent, child_conn = ctx.Pipe()
    proc = ctx.Process(target=child, args=(child_conn, args, params))
    proc.start()
    c = await BackendLayer.start(args, "backend", params)
    assert parent.recv() == "ready"
    await a.run(["Hello!"])
    await c.run(["Hello!"])
    await a.run([prompt_at(i) for i in range(16)])
    await c.run([prompt_at(i) for i in range(16)])
    parent.send(16)
    parent.recv()
    for _round in range(5):
        for name, run in (("in-proc", a.run), ("child-proc", None), ("worker", c.run)):
            rates = []
            for i in range(3):
                if run:
                    batch = await run([prompt_at(i)])
                else:
                    parent.send(-i - 1)
                    batch = parent.recv()
                rates.append(batch.samples[0].decode_tok_s)
            print(
                f"{name:10s} 1-stream decode {statistics.median(rates):7.1f} tok/s  ttft {batch.samples[0].ttft_s * 1000:6.1f} ms",
                flush=True,
            )
    parent.send(None)
    proc.join()
    await a.close()
    await c.close()


if __name__ == "__main__":
    asyncio.run(main())
