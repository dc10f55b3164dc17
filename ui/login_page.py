"""The log-in page shows nothing of the console. Gradio 6.31 renders the API description into every
page, the log-in page too (while `/gradio_api/info` answers 401): every endpoint and every model path
a preset names, users' saved ones included. This ASGI middleware empties it on the page that asks for
a log-in; after the log-in, the same page carries it whole."""

from __future__ import annotations

import re

_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.DOTALL)
_NOTHING = b'window.gradio_api_info = {"named_endpoints": {}, "unnamed_endpoints": {}};</script>'
_PAGES = ("/", "")  # the console is one page


class ApiInfoOnlyAfterLogin:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in _PAGES:
            await self.app(scope, receive, send)
            return
        start, parts = None, []

        async def send_without_api_info(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            parts.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(parts)
            if b'"auth_required":true' in body:
                body = _API_INFO.sub(lambda _: _NOTHING, body, count=1)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_without_api_info)
