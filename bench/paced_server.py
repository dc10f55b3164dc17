"""An OpenAI-compatible server with no model: every reply streams at a fixed pace, shaped as
`lmdeploy serve api_server` frames it, so that what a console in front of it spends is all that moves.

    python -m bench.paced_server --port 23333 [--tokens-per-s 300] [--ttft-ms 20]

For benchmarks of the console's own cost on a machine without a GPU (`bench.chat_length --server paced`):
a real model on a CPU decodes a long history more slowly, which spreads the same paints over more of the
console's idle background. The pace defaults to SmolLM2-135M's on an H200 (~300 tokens/s a stream, TTFT
~20 ms). Its replies are the word "word" repeated, as many as `max_tokens` asks (256 when it does not), so
no figure of quality or of a server's speed comes from it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

MODEL = "paced"
DEFAULT_TOKENS = 256


def chunk(delta: dict, finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return _event({"id": "1", "object": "chat.completion.chunk", "created": 0, "model": MODEL, "choices": [choice]})


def usage(prompt_tokens: int, completion_tokens: int) -> str:
    totals = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    totals["total_tokens"] = prompt_tokens + completion_tokens
    return _event(
        {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": MODEL, "choices": [], "usage": totals}
    )


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def build_app(tokens_per_s: float, ttft_s: float):
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        tokens = body.get("max_tokens") or DEFAULT_TOKENS
        prompt_words = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or ())
        with_usage = (body.get("stream_options") or {}).get("include_usage")
        return StreamingResponse(_reply(tokens, prompt_words, with_usage), media_type="text/event-stream")

    async def _reply(tokens: int, prompt_words: int, with_usage: bool):
        started = time.perf_counter()
        await asyncio.sleep(ttft_s)
        for i in range(tokens):
            due = started + ttft_s + i / tokens_per_s  # on schedule, whatever each send took
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            yield chunk({"role": "assistant", "content": " word"}, "length" if i == tokens - 1 else None)
        if with_usage:
            yield usage(prompt_words, tokens)
        yield "data: [DONE]\n\n"

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-s", type=float, default=300.0)
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    args = parser.parse_args()
    app = build_app(args.tokens_per_s, args.ttft_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
