"""One address in front of several console processes, each browser kept on one of them.

A Gradio app keeps a page's state, its queue and its log-in in the process that served it, so every
request of a page must reach the same process: its queue join, its event stream, its heartbeat,
its uploads. The router pins a client with a cookie on its first response (browsers and
gradio_client send cookies back), and a Gradio session (named in the join's body, the event
stream's query, the heartbeat's path) to where its first request went, so that a client that keeps
no cookies, or shares one jar among many sessions, still has a session's join and event stream on
one process.

It reads only what it needs: a request's head, the small body of a queue join or a cancel (its
session), and a log-in's form (its user: failed log-ins are counted here for the whole room, since each
process sees only the tries sent to it). Everything else is copied as it comes, so a streaming reply
costs it one read and one write a chunk: far less than the Gradio process behind it spends on that
chunk. Each request goes to its process on a connection of its own, closed after the response, so the
response's end is where the process closes it; the visitor's address goes along (X-Forwarded-For).
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from urllib.parse import parse_qs, urlsplit

from console.log_ins import FailedLogIns, log_in_keys, too_many

PIN_COOKIE = "lmdeploy_console_process"
_STARTING = "this console's process is starting; reload the page in a few seconds\n"
_PIN_NAME = PIN_COOKIE.encode()
_HEAD_LIMIT = 64 * 1024
_PEEKED_BODY_LIMIT = 1024 * 1024  # a join's body: its inputs; a chat message is far below this
_CHUNK = 64 * 1024
_SESSIONS_KEPT = 65536  # a closed page's session is forgotten once this many newer ones were seen
_SESSION_IN_PATH = re.compile(r"/(?:heartbeat|stream)/([^/?]+)")
_BODIES_WITH_SESSION = ("/queue/join", "/cancel")
# Headers of one hop (RFC 9110 7.6.1): the router's connection to a process is its own
_HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
_TRUSTED_FORWARDERS = {"127.0.0.1", "::1"}  # where uvicorn, behind the router, trusts X-Forwarded-For too


@dataclass(frozen=True)
class Member:
    host: str
    port: int


class BadRequest(ValueError):
    """What the client sent is no HTTP request the router can route."""


class Incoming:
    """A client connection's bytes, with what was read past the current request kept for the next."""

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader
        self._buffer = bytearray()
        self.closed = False

    async def head(self) -> bytes | None:
        """The next request's head (up to its blank line), or None where the client is done."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > _HEAD_LIMIT:
                raise BadRequest("request head too large")
            if not await self._fill():
                if self._buffer.strip():
                    raise BadRequest("connection closed inside a request head")
                return None
        head = bytes(self._buffer[: end + 4])
        del self._buffer[: end + 4]
        return head

    async def exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not await self._fill():
                raise BadRequest("connection closed inside a request body")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > _HEAD_LIMIT or not await self._fill():
                raise BadRequest("bad chunked body")
        line = bytes(self._buffer[: end + 2])
        del self._buffer[: end + 2]
        return line

    async def some(self) -> bytes:
        """Whatever is buffered, else the next read (b"" once the client closed)."""
        if not self._buffer:
            await self._fill()
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    async def watch(self) -> None:
        """Returns once the client closed; bytes it sends meanwhile (its next request) are kept."""
        try:
            while await self._fill():
                pass
        except ConnectionError:
            self.closed = True

    async def _fill(self) -> bool:
        data = await self._reader.read(_CHUNK)
        if not data:
            self.closed = True
        self._buffer += data
        return bool(data)


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[bytes, bytes]]

    @classmethod
    def parse(cls, head: bytes) -> Request:
        lines = head[:-4].split(b"\r\n")
        try:
            method, target, version = lines[0].decode("latin-1").split(" ")
            headers = [(name.strip().lower(), value.strip()) for name, value in (h.split(b":", 1) for h in lines[1:])]
        except ValueError as exc:
            raise BadRequest("malformed request line or header") from exc
        return cls(method, target, version, headers)

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def content_length(self) -> int:
        value = self.header(b"content-length")
        if value is None:
            return 0
        if not value.isdigit():
            raise BadRequest("bad Content-Length")
        return int(value)

    @property
    def chunked(self) -> bool:
        return b"chunked" in (self.header(b"transfer-encoding") or b"").lower()

    @property
    def upgrade(self) -> bool:
        return self.header(b"upgrade") is not None

    @property
    def wants_close(self) -> bool:
        connection = (self.header(b"connection") or b"").lower()
        return b"close" in connection or (self.version == "HTTP/1.0" and b"keep-alive" not in connection)

    def pinned(self) -> int | None:
        for value in (value for key, value in self.headers if key == b"cookie"):
            for pair in value.split(b";"):
                name, _, found = pair.strip().partition(b"=")
                if name == _PIN_NAME and found.isdigit():
                    return int(found)
        return None

    def session_in_target(self) -> str | None:
        if found := _SESSION_IN_PATH.search(self.path):
            return found.group(1)
        return next(iter(parse_qs(urlsplit(self.target).query).get("session_hash", [])), None)

    def carries_session_in_body(self) -> bool:
        return self._small_post() and self.path.endswith(_BODIES_WITH_SESSION)

    def client_address(self, peer: str) -> str:
        """The visitor's address: the peer's, unless the peer is a forwarder on this machine (the public
        link's tunnel) that names the visitor."""
        forwarded = self.header(b"x-forwarded-for") if peer in _TRUSTED_FORWARDERS else None
        hops = [hop.strip().decode("latin-1") for hop in (forwarded or b"").split(b",")]
        # the nearest hop that is no forwarder of this machine's, as uvicorn reads the header
        return next((hop for hop in reversed(hops) if hop and hop not in _TRUSTED_FORWARDERS), peer)

    def is_log_in(self) -> bool:
        return self._small_post() and self.path == "/login"

    def _small_post(self) -> bool:
        """A POST whose body the router may read whole before passing it on."""
        return self.method == "POST" and not self.chunked and self.content_length <= _PEEKED_BODY_LIMIT

    def upstream_head(self, client_host: str) -> bytes:
        """This request's head for a process: on a connection of its own, closed after the
        response, and with the client's address for the process's per-address limits."""
        kept = [(k, v) for k, v in self.headers if k not in _HOP_BY_HOP and k != b"x-forwarded-for"]
        if self.chunked:  # where both are sent, the chunks say where the body ends (RFC 9112 6.3)
            kept = [(k, v) for k, v in kept if k != b"content-length"]
        forwarded = self.header(b"x-forwarded-for") if client_host in _TRUSTED_FORWARDERS else None
        kept.append((b"x-forwarded-for", forwarded or client_host.encode()))
        if upgrade := self.header(b"upgrade"):
            kept += [(b"connection", b"upgrade"), (b"upgrade", upgrade)]
        else:
            kept.append((b"connection", b"close"))
        lines = [f"{self.method} {self.target} {self.version}".encode("latin-1")]
        lines += [name + b": " + value for name, value in kept]
        return b"\r\n".join(lines) + b"\r\n\r\n"


def session_in_body(body: bytes) -> str | None:
    try:
        found = json.loads(body).get("session_hash")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def response_head_for_client(head: bytes, pin: int | None, keep_alive: bool) -> tuple[bytes, bool]:
    """The process's response head as the client gets it: the pin cookie added where the client has
    none, and kept alive where the response says where it ends. Returns the head and whether the
    client's connection must close after the response (a response that ends only with its
    connection)."""
    lines = head[:-4].split(b"\r\n")
    status_line, headers = lines[0], lines[1:]
    names = [h.split(b":", 1)[0].strip().lower() for h in headers]
    status = int(status_line.split(b" ")[1])
    framed = b"content-length" in names or any(
        n == b"transfer-encoding" and b"chunked" in h.lower() for n, h in zip(names, headers, strict=True)
    )
    if status == 101:
        return head, True
    bodiless = status in (204, 304) or 100 <= status < 200
    close = not keep_alive or not (framed or bodiless)
    kept = [h for n, h in zip(names, headers, strict=True) if n not in (b"connection", b"keep-alive")]
    if pin is not None:
        kept.append(f"set-cookie: {PIN_COOKIE}={pin}; Path=/; HttpOnly; SameSite=Lax".encode())
    kept.append(b"connection: close" if close else b"connection: keep-alive")
    return b"\r\n".join([status_line, *kept]) + b"\r\n\r\n", close


class Router:
    """Serves one address, forwarding each request to one of `members` (console processes on this
    machine). `alive(k)` says whether member k may take new clients; a client pinned to a member that
    is down is pinned to another."""

    def __init__(self, members: list[Member], alive: Callable[[int], bool] = lambda k: True):
        self.members = members
        self._alive = alive
        self._next = count()
        # where each Gradio session was sent: a client whose cookie changed between its join and its event
        # stream (one cookie jar shared by many sessions) still finds its session
        self._sessions: OrderedDict[str, int] = OrderedDict()
        # counted here too: each process sees only the tries sent to it
        self.failed_log_ins = FailedLogIns()

    async def serve(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._client, host, port, limit=_HEAD_LIMIT, backlog=2048)

    def choose(self, pinned: int | None, session: str | None) -> int | None:
        """The member for a request: its session's, else its cookie's, else a new one; None while no member
        may take clients (the room is starting)."""
        member = self._sessions.get(session) if session else None
        if member is None or not self._alive(member):
            member = pinned if pinned is not None and self._up(pinned) else self._new_member(session)
        if session and member is not None:
            self._sessions[session] = member
            self._sessions.move_to_end(session)
            if len(self._sessions) > _SESSIONS_KEPT:
                self._sessions.popitem(last=False)
        return member

    def _up(self, member: int) -> bool:
        return member < len(self.members) and self._alive(member)

    def _new_member(self, session: str | None) -> int | None:
        up = [k for k in range(len(self.members)) if self._alive(k)]
        if not up:
            return None
        if session is not None:  # the same member for a session's every request, even unseen before
            return up[zlib.crc32(session.encode()) % len(up)]
        return up[next(self._next) % len(up)]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        incoming = Incoming(reader)
        client_host = (writer.get_extra_info("peername") or ("",))[0]
        try:
            while (head := await incoming.head()) is not None:
                request = Request.parse(head)
                if not await self._one_request(request, incoming, writer, client_host) or request.wants_close:
                    break
        except BadRequest as exc:
            _answer(writer, 400, f"{exc}\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one_request(
        self, request: Request, incoming: Incoming, writer: asyncio.StreamWriter, client_host: str
    ) -> bool:
        """Forwards one request and its response; False where the client's connection is done."""
        pinned = request.pinned()
        body, on_status = b"", None
        session = request.session_in_target()
        if session is None and request.carries_session_in_body():
            body = await incoming.exactly(request.content_length)
            session = session_in_body(body)
        elif request.is_log_in():
            body = await incoming.exactly(request.content_length)
            keys = log_in_keys(body, request.client_address(client_host))
            if (wait := self.failed_log_ins.wait_s(keys)) > 0:
                _answer(writer, 429, too_many(wait), "application/json")
                return False

            def on_status(status: int) -> None:
                self.failed_log_ins.record(keys, succeeded=status < 400)

        member = self.choose(pinned, session)
        if member is None:  # no process takes clients yet
            _answer(writer, 503, _STARTING)
            return False
        try:
            up_reader, up_writer = await asyncio.open_connection(self.members[member].host, self.members[member].port)
        except OSError:
            _answer(writer, 503, _STARTING)
            return False
        try:
            up_writer.write(request.upstream_head(client_host) + body)
            if request.upgrade:
                await _both_ways(incoming, writer, up_reader, up_writer)
                return False
            if not body:
                await _copy_body(request, incoming, up_writer)
            pin = member if member != pinned else None
            return await _respond(up_reader, writer, incoming, pin, not request.wants_close, on_status)
        finally:
            up_writer.close()


async def _copy_body(request: Request, incoming: Incoming, up_writer: asyncio.StreamWriter) -> None:
    if request.chunked:
        while True:
            size_line = await incoming.line()
            up_writer.write(size_line)
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError as exc:
                raise BadRequest("bad chunk size") from exc
            if size == 0:
                while (trailer := await incoming.line()) != b"\r\n":
                    up_writer.write(trailer)
                up_writer.write(b"\r\n")
                break
            up_writer.write(await incoming.exactly(size + 2))
            await up_writer.drain()
        return
    left = request.content_length
    while left:
        data = await incoming.exactly(min(left, _CHUNK))
        up_writer.write(data)
        left -= len(data)
        await up_writer.drain()


async def _respond(
    up_reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    incoming: Incoming,
    pin: int | None,
    keep_alive: bool,
    on_status: Callable[[int], None] | None,
) -> bool:
    """Copies the process's response to the client until the process closes it, or the client
    does (a page closed mid-stream: the process then sees its event stream end, as without the
    router); `on_status` hears the response's status. Returns whether the client's connection can
    take another request."""
    try:
        head = await up_reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        _answer(writer, 502, "the console's process ended its answer early; try again\n")
        return False
    if on_status is not None:
        on_status(int(head.split(b" ", 2)[1]))
    head, close = response_head_for_client(head, pin, keep_alive)
    writer.write(head)
    copying = asyncio.ensure_future(_copy(up_reader, writer))
    client_gone = asyncio.ensure_future(incoming.watch())
    await asyncio.wait({copying, client_gone}, return_when=asyncio.FIRST_COMPLETED)
    for task in (copying, client_gone):
        task.cancel()
    await asyncio.wait({copying, client_gone})  # the client's reader free again for its next request
    if not copying.cancelled() and (failed := copying.exception()) is not None:
        raise failed
    return not close and not incoming.closed


async def _copy(up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await up_reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()


async def _both_ways(incoming: Incoming, writer, up_reader, up_writer) -> None:
    """A WebSocket (or other upgraded) connection: bytes both ways until either side closes."""

    async def up() -> None:
        while data := await incoming.some():
            up_writer.write(data)
            await up_writer.drain()

    async def down() -> None:
        while data := await up_reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()

    tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)


def _answer(writer: asyncio.StreamWriter, status: int, text: str, content_type: str = "text/plain") -> None:
    reason = {400: "Bad Request", 429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    body = text.encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
