"""Every JSON request reaches Gradio with text that UTF-8 can carry.

A lone surrogate (half of an emoji: a browser can send one, as JSON's "\\ud800") is valid JSON but not
UTF-8. Gradio echoes some values into its messages (a Dropdown's "Value: ... is not in the list of
choices"), and a message that cannot be written as UTF-8 ended the session's event stream, and with it
every event the page had running. Here, before Gradio reads a JSON body, each lone surrogate becomes
U+FFFD, as `console.chat.repaired_text` does for text the handlers keep.
"""

from __future__ import annotations

import json
import re

from console.chat import repaired_text

# JSON's escape of a surrogate: only escaped can one travel in a UTF-8 body
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class LoneSurrogatesRepaired:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if _SURROGATE_ESCAPE.search(body):
            body = _repaired_body(body)
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        replayed = False

        async def receive_body():
            nonlocal replayed
            if replayed:
                return await receive()  # the client's disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, receive_body, send)


def _is_json(scope) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(b"application/json") for k, v in scope["headers"])


def _repaired_body(body: bytes) -> bytes:
    try:
        return json.dumps(_repaired(json.loads(body))).encode()
    except (ValueError, RecursionError):
        return body  # not JSON after all, or nested past any use: Gradio says what is wrong with it


def _repaired(value):
    if isinstance(value, str):
        return repaired_text(value)
    if isinstance(value, list):
        return [_repaired(item) for item in value]
    if isinstance(value, dict):
        return {repaired_text(key): _repaired(item) for key, item in value.items()}
    return value
