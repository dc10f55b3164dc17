"""A real OpenAI-compatible server for the remote tier: `transformers serve` on the CPU.

Like `lmdeploy serve api_server --api-keys`, it answers 401 to a wrong bearer key when
started with --api-key (transformers serve has no such option, so the key check is added
to its FastAPI app here).

    python -m tests.servers.openai_server --model DIR --port 8123 [--api-key KEY] [--fail-status 503] [--stall]
        [--list-model]
"""

from __future__ import annotations

import argparse
import asyncio
import os

from fastapi import Request
from fastapi.responses import JSONResponse
from transformers.cli import serve as serve_cli
from transformers.cli.serving import server as serving_server


def require_api_key(build_server, api_key: str):
    def build(*args, **kwargs):
        app = build_server(*args, **kwargs)

        @app.middleware("http")
        async def check_key(request: Request, call_next):
            if request.headers.get("authorization") != f"Bearer {api_key}":
                return JSONResponse(
                    {"error": {"message": "invalid API key", "type": "invalid_request_error"}}, status_code=401
                )
            return await call_next(request)

        return app

    return build


def fail_chats_with(build_server, status: int):
    """Chat completions answer `status`, as an overloaded (503) or broken (500) server does."""

    def build(*args, **kwargs):
        app = build_server(*args, **kwargs)

        @app.middleware("http")
        async def fail(request: Request, call_next):
            if request.url.path.endswith("/chat/completions"):
                return JSONResponse({"error": {"message": f"test server failing with {status}"}}, status_code=status)
            return await call_next(request)

        return app

    return build


def stall_chats(build_server):
    """Chat completions are accepted and never answered, as a stuck server does."""

    def build(*args, **kwargs):
        app = build_server(*args, **kwargs)

        @app.middleware("http")
        async def stall(request: Request, call_next):
            if request.url.path.endswith("/chat/completions"):
                await asyncio.Event().wait()
            return await call_next(request)

        return app

    return build


def list_the_model(build_server, model: str):
    """`/v1/models` lists the served model, as api_server's does (LMDeploy's proxy registers a node by it;
    transformers serve lists its download cache instead), and `GET /terminate` shuts the server down, as
    api_server's does when the proxy terminates a node."""

    def build(*args, **kwargs):
        app = build_server(*args, **kwargs)

        @app.middleware("http")
        async def models(request: Request, call_next):
            if request.url.path == "/v1/models" and request.method == "GET":
                return JSONResponse({"object": "list", "data": [{"id": model, "object": "model", "owned_by": "test"}]})
            if request.url.path == "/terminate" and request.method == "GET":
                asyncio.get_running_loop().call_later(0.2, os._exit, 0)  # after the answer has gone out
                return JSONResponse("Terminated")
            return await call_next(request)

        return app

    return build


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key")
    parser.add_argument("--fail-status", type=int, help="answer every chat completion with this HTTP status")
    parser.add_argument("--stall", action="store_true", help="accept chat completions and never answer")
    parser.add_argument("--list-model", action="store_true", help="/v1/models lists --model, as api_server's does")
    args = parser.parse_args()
    if args.list_model:
        serving_server.build_server = list_the_model(serving_server.build_server, args.model)
    if args.api_key:
        serving_server.build_server = require_api_key(serving_server.build_server, args.api_key)
    if args.fail_status:
        serving_server.build_server = fail_chats_with(serving_server.build_server, args.fail_status)
    if args.stall:
        serving_server.build_server = stall_chats(serving_server.build_server)
    serve_cli.Serve(force_model=args.model, host="127.0.0.1", port=args.port, device="cpu", dtype="float32")


if __name__ == "__main__":
    main()
