"""The log-in page shows nothing of the console, and guessing passwords on it slows down. Gradio 6.31 renders the API description into every
page, the log-in page too (while `/gradio_api/info` answers 401): every endpoint and every model path
a preset names, users' saved ones included. This ASGI middleware empties it on the page that asks for
a log-in; after the log-in, the same page carries it whole."""

from __future__ import annotations

import re
import time

from console.log_ins import FailedLogIns, log_in_keys, too_many

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


LOGIN_KEPT_H = 12.0  # a log-in lasts a working day; a link shared with a class is not open to it for ever


class LoginThrottle:
    """Failed log-ins slow down per user and per address (`console.log_ins`): a try before the
    wait has passed is answered 429 with the seconds left, and reaches no password check. A log-in
    that succeeds clears its user's and its address's count, and lasts `login_kept_s`: then Gradio
    forgets its token (Gradio's own last until the console stops) and the page asks again."""

    def __init__(self, app, clock=time.monotonic, login_kept_s: float = LOGIN_KEPT_H * 3600):
        self.app, self._clock, self.login_kept_s = app, clock, login_kept_s
        self.failures = FailedLogIns(clock)
        self._given: dict[str, float] = {}  # log-in token -> when it was given

    def forget_old_log_ins(self, tokens: dict) -> None:
        """Take the tokens given longer ago than a log-in lasts out of Gradio's `tokens`."""
        now = self._clock()
        for token, given in list(self._given.items()):
            if now - given > self.login_kept_s:
                tokens.pop(token, None)
                del self._given[token]

    async def __call__(self, scope, receive, send):
        tokens = getattr(scope.get("app"), "tokens", None)  # Gradio's App: log-in token -> user
        if scope["type"] == "http" and tokens is not None:
            self.forget_old_log_ins(tokens)
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/login":
            await self.app(scope, receive, send)
            return
        held_before = set(tokens or ())
        messages, body = [], b""
        while True:  # a small form: read whole, then handed on as it came
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        keys = log_in_keys(body, (scope.get("client") or ("?",))[0])
        if (wait := self.failures.wait_s(keys)) > 0:
            await _answer_429(send, too_many(wait))
            return
        replay = iter(messages)

        async def replayed():
            return next(replay, {"type": "http.disconnect"})

        async def watch(message):
            if message["type"] == "http.response.start":
                self.failures.record(keys, succeeded=message["status"] < 400)
            await send(message)

        await self.app(scope, replayed, watch)
        for token in set(tokens or ()) - held_before:
            self._given[token] = self._clock()


async def _answer_429(send, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
