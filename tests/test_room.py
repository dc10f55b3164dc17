"""A room: console processes behind one address (room/), each page kept on one of them."""

import asyncio
import signal
import sys
import threading
import time

import httpx
import psutil
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from gradio_client import Client

import app
from console.log_ins import FREE_TRIES
from room.members import ENGINE_HOST, MEMBER_ENV
from room.router import PIN_COOKIE, Member, Router, response_head_for_client
from room.router import Request as RoutedRequest
from tests.conftest import free_port, start_console, start_paced_server, stop_process, submit_background_comparison


def request(head: str) -> RoutedRequest:
    return RoutedRequest.parse(head.replace("\n", "\r\n").encode() + b"\r\n\r\n")


def test_a_client_stays_pinned_to_its_process_and_moves_when_that_one_is_down():
    down = set()
    router = Router([Member("127.0.0.1", 1), Member("127.0.0.1", 2)], alive=lambda k: k not in down)
    first, second = router.choose(None, None), router.choose(None, None)
    assert {first, second} == {0, 1}  # new clients spread over the processes
    assert router.choose(1, None) == 1
    down.add(1)
    assert router.choose(1, None) == 0
    down.add(0)
    assert router.choose(1, None) is None  # nobody takes clients (the room is starting): the router says so


def test_a_sessions_every_request_reaches_one_process_whatever_cookie_it_carries():
    router = Router([Member("127.0.0.1", port) for port in (1, 2, 3)])
    where = router.choose(None, "abc123")  # the join, no cookie yet
    others = [k for k in range(3) if k != where]
    assert router.choose(others[0], "abc123") == where  # its event stream, a jar's cookie from another session
    assert router.choose(others[1], None) == others[1]


def test_where_a_request_names_its_session():
    assert request("GET /gradio_api/queue/data?session_hash=s1 HTTP/1.1").session_in_target() == "s1"
    assert request("GET /gradio_api/heartbeat/s2 HTTP/1.1").session_in_target() == "s2"
    join = request("POST /gradio_api/queue/join HTTP/1.1\nContent-Length: 40")
    assert join.session_in_target() is None and join.carries_session_in_body()
    assert request(f"GET / HTTP/1.1\nCookie: a=b; {PIN_COOKIE}=3; c=d").pinned() == 3


def test_only_a_forwarder_on_this_machine_may_name_the_clients_address():
    spoofed = request("GET / HTTP/1.1\nX-Forwarded-For: 10.9.9.9\nConnection: keep-alive")
    assert b"x-forwarded-for: 203.0.113.5" in spoofed.upstream_head("203.0.113.5")
    assert b"10.9.9.9" not in spoofed.upstream_head("203.0.113.5")
    assert b"x-forwarded-for: 10.9.9.9" in spoofed.upstream_head("127.0.0.1")  # e.g. the share link's tunnel
    assert b"connection: close" in spoofed.upstream_head("203.0.113.5")


def test_a_response_carries_the_pin_and_keeps_the_connection_only_where_its_end_is_known():
    framed = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
    head, close = response_head_for_client(framed, pin=1, keep_alive=True)
    assert f"set-cookie: {PIN_COOKIE}=1; Path=/".encode() in head and b"connection: keep-alive" in head and not close
    unframed = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n"
    assert response_head_for_client(unframed, pin=None, keep_alive=True)[1]


class Upstream:
    """A real HTTP server (uvicorn) behind a real router, on this machine's ports."""

    def __init__(self):
        self.stream_closed = threading.Event()
        api = FastAPI()

        @api.post("/echo")
        async def echo(incoming: Request):
            body = await incoming.body()
            return {"bytes": len(body), "forwarded": incoming.client.host}

        @api.get("/forever")
        async def forever(incoming: Request):
            async def chunks():
                try:
                    while True:
                        yield b"data: tick\n\n"
                        await asyncio.sleep(0.05)
                finally:
                    self.stream_closed.set()

            return StreamingResponse(chunks(), media_type="text/event-stream")

        self.port, router_port = free_port(), free_port()
        self.server = uvicorn.Server(uvicorn.Config(api, port=self.port, log_level="warning"))
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.server.serve(), self.loop)
        router = Router([Member("127.0.0.1", self.port)])
        asyncio.run_coroutine_threadsafe(router.serve("127.0.0.1", router_port), self.loop).result(10)
        self.url = f"http://127.0.0.1:{router_port}"
        while not self.server.started:
            time.sleep(0.05)

    def close(self):
        self.server.should_exit = True
        time.sleep(0.3)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def upstream():
    served = Upstream()
    yield served
    served.close()


def test_bodies_pass_through_whole_and_a_connection_serves_request_after_request(upstream):
    def chunked():
        yield b"x" * 100_000
        yield b"y" * 23

    with httpx.Client(base_url=upstream.url) as http:
        assert http.post("/echo", content=b"z" * 3_000_000).json()["bytes"] == 3_000_000
        answer = http.post("/echo", content=chunked(), headers={"x-forwarded-for": "198.51.100.7"}).json()
        assert answer == {"bytes": 100_023, "forwarded": "198.51.100.7"}  # uvicorn trusts its local forwarder
        assert PIN_COOKIE in http.cookies


def test_a_client_that_leaves_mid_stream_ends_the_stream_behind_the_router(upstream):
    with httpx.Client(base_url=upstream.url) as http, http.stream("GET", "/forever") as stream:
        next(stream.iter_lines())
    assert upstream.stream_closed.wait(5)


def test_a_room_runs_its_own_engine_unless_it_shares_a_server_and_nobody_changes_it():
    assert not app.room_shares_a_server(app.parse_args(["--room-processes", "2"]))
    assert not app.room_shares_a_server(app.parse_args(["--preset", "cpu", "--room-processes", "2"]))
    remote = app.parse_args(["--backend", "remote", "--room-processes", "4"])
    assert app.room_shares_a_server(remote)
    policy = app.access_policy(remote, auth=[("ann", "pw")])
    assert not policy.is_admin("ann") and "4 processes" in policy.what_they_may_do("ann")


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    folder = tmp_path_factory.mktemp("room")
    server, base_url = start_paced_server(folder / "server.log", "--tokens-per-s", "200")
    (folder / "users").write_text("ann:ann-pw\nbob:bob-pw\n")
    options = ["--backend", "remote", "--base-url", base_url, "--room-processes", "2", "--auth", str(folder / "users")]
    console, url = start_console([*options, "--admin", "ann"], folder / "app.log")
    yield console, url
    stop_process(console)
    stop_process(server)


def room_user(url: str, user: str, process: int | None = None) -> Client:
    """A gradio_client of `user`, kept on room process `process` where given (its pin cookie set)."""
    pin = {"cookies": {PIN_COOKIE: str(process)}} if process is not None else {}
    return Client(url, auth=(user, f"{user}-pw"), verbose=False, httpx_kwargs=pin)


def pinned_to(client: Client) -> int:
    return int(client.cookies[PIN_COOKIE])


@pytest.mark.remote
def test_a_room_spreads_its_users_over_its_processes_and_nobody_switches_the_engine(room):
    _, url = room
    users = [room_user(url, "bob") for _ in range(4)]
    assert {pinned_to(user) for user in users} == {0, 1}
    for index, user in enumerate(users):  # each logged in where it is pinned, and its history its own
        chatbot, _ = user.predict(message=f"question {index}", max_new_tokens=8, api_name="/chat")
        assert [turn["content"][0]["text"] for turn in chatbot][0] == f"question {index}"
    ann = room_user(url, "ann")
    refused = ann.predict("cpu", api_name="/switch_preset")
    assert not refused["ok"] and "2 processes in front of one engine server" in refused["error"]


@pytest.mark.remote
def test_a_room_process_that_ends_is_started_again_and_its_users_move(room):
    console, url = room
    members = psutil.Process(console.pid).children()
    assert len(members) == 2
    bob = room_user(url, "bob")
    ended = pinned_to(bob)
    gone = next(m for m in members if m.environ()[MEMBER_ENV].startswith(f"{ended}/"))
    gone.kill()
    gone.wait(10)
    moved = room_user(url, "bob")  # a reloaded page: pinned to the other one
    assert pinned_to(moved) != ended
    assert moved.predict(message="still here?", max_new_tokens=4, api_name="/chat")[0]
    deadline = time.monotonic() + 120
    while pinned_to(room_user(url, "bob")) != ended:  # started again, taking users
        assert time.monotonic() < deadline, "the ended room process was not started again"
        time.sleep(1)


@pytest.mark.browser
def test_pages_in_a_room_log_in_chat_and_see_why_nobody_switches(room):
    from tests.conftest import CHROMIUM_VIEWPORT, log_in_page, open_chromium, wait_for_text

    _, url = room
    with open_chromium() as browser:
        pinned = set()
        for index in range(2):
            visitor = browser.new_context(viewport=CHROMIUM_VIEWPORT)  # a browser of its own: its own cookies
            page = visitor.new_page()
            assert "2 processes in front of one engine server" in log_in_page(page, url, "bob", "bob-pw")
            page.locator("#chat-input textarea").fill(f"room question {index}")
            page.locator("#chat-input textarea").press("Enter")
            wait_for_text(page, "chatbot", "word word", timeout=60_000)
            assert f"room question {index}" in page.locator("#chatbot").inner_text()
            page.get_by_role("tab", name="Presets").click()
            assert page.locator("#switch-preset").is_disabled()
            pinned |= {c["value"] for c in visitor.cookies() if c["name"] == PIN_COOKIE}
            visitor.close()
        assert pinned == {"0", "1"}


@pytest.mark.remote
def test_guessing_passwords_slows_down_across_the_rooms_processes(room):
    """Each try goes to the next process (no cookie kept), so each process alone sees fewer than the free
    tries; the router counts them all."""
    _, url = room
    login = f"{url.rstrip('/')}/login"
    guesser = {"x-forwarded-for": "192.0.2.77"}  # an address of its own: the other tests log in from here
    answers = [
        httpx.post(login, data={"username": "eve", "password": "guess"}, headers=guesser).status_code for _ in range(7)
    ]
    assert answers[:FREE_TRIES] == [400] * FREE_TRIES and answers[-1] == 429
    refused = httpx.post(login, data={"username": "eve", "password": "guess"}, headers=guesser)
    assert "too many failed log-ins: try again in" in refused.json()["detail"]


@pytest.fixture(scope="module")
def cpu_room(tmp_path_factory, user_presets):
    """A room of 2 on the console's own engine: the embedded model on the CPU, in the room's engine host;
    ann may switch presets, bob may chat."""
    from console.votes import VOTES_ENV
    from presets.store import USER_PRESETS_ENV

    folder = tmp_path_factory.mktemp("cpu-room")
    (folder / "users").write_text("ann:ann-pw\nbob:bob-pw\n")
    options = ["--room-processes", "2", "--auth", str(folder / "users"), "--admin", "ann"]
    env = {USER_PRESETS_ENV: str(user_presets), VOTES_ENV: str(folder / "votes.jsonl")}
    console, url = start_console(options, folder / "app.log", env=env)
    yield console, url
    stop_process(console)


def engine_host_of(room) -> psutil.Process:
    [host] = [child for child in psutil.Process(room.pid).children() if child.environ()[MEMBER_ENV] == ENGINE_HOST]
    return host


def loads_torch(process: psutil.Process) -> bool:
    return any("libtorch" in mapped.path for mapped in process.memory_maps())


def last_reply(chatbot: list[dict]) -> str:
    """The last turn's text, less the figures under a reply."""
    return chatbot[-1]["content"][0]["text"].split("\n\n<sub>")[0]


@pytest.mark.cpu
def test_a_room_on_its_own_engine_holds_the_model_once_and_answers_from_every_process(cpu_room):
    console, url = cpu_room
    host = engine_host_of(console)
    members = [child for child in psutil.Process(console.pid).children() if child.pid != host.pid]
    assert len(members) == 2
    assert loads_torch(host) and not any(loads_torch(member) for member in members)
    users = [room_user(url, "bob") for _ in range(4)]
    assert {pinned_to(user) for user in users} == {0, 1}
    replies = [
        last_reply(user.predict(message="What is 2+3?", max_new_tokens=12, temperature=0, api_name="/chat")[0])
        for user in users
    ]
    assert set(replies) == {"2 + 3 = 5"}  # one engine, greedy: one reply wherever asked


def chat_until_the_engine_is_back(client: Client) -> list[dict]:
    """Chat on until the reply is no longer "send again in a minute" (the room's engine host started again);
    the chat as it is then (AssertionError after three minutes)."""
    deadline = time.monotonic() + 180
    while "send again in a minute" in last_reply(
        chatbot := client.predict(message="back?", max_new_tokens=4, api_name="/chat")[0]
    ):
        assert time.monotonic() < deadline, "the room's engine was not started again"
        time.sleep(2)
    return chatbot


@pytest.mark.cpu
def test_a_rooms_engine_that_ends_is_started_again_and_the_chats_go_on(cpu_room):
    console, url = cpu_room
    bob = room_user(url, "bob")
    bob.predict(message="first question", max_new_tokens=4, api_name="/chat")
    ended = engine_host_of(console)
    ended.kill()
    ended.wait(10)
    chatbot, _ = bob.predict(message="while it starts again", max_new_tokens=4, api_name="/chat")
    assert "send again in a minute" in last_reply(chatbot)
    chatbot = chat_until_the_engine_is_back(bob)
    asked = [turn["content"][0]["text"] for turn in chatbot if turn["role"] == "user"]
    assert asked[:2] == ["first question", "while it starts again"]  # the chat kept through it
    assert engine_host_of(console).pid != ended.pid


@pytest.mark.cpu
def test_an_admin_switches_the_rooms_engine_and_every_process_follows(cpu_room):
    _, url = cpu_room
    ann, bob = room_user(url, "ann", process=0), room_user(url, "bob", process=1)
    refused = bob.predict("cpu-bf16", api_name="/switch_preset")
    assert not refused["ok"] and "only admins can switch presets" in refused["error"]
    try:
        switched = ann.predict("cpu-bf16", api_name="/switch_preset")
        assert switched["ok"] and switched["engine_status"]["preset"] == "cpu-bf16"
        seen_by_bob = bob.predict(api_name="/engine_status")  # on the room's other process
        assert (seen_by_bob["preset"], seen_by_bob["engine"]) == ("cpu-bf16", "transformers (CPU, bf16)")
        assert last_reply(bob.predict(message="What is 2+3?", max_new_tokens=12, temperature=0, api_name="/chat")[0])
    finally:
        assert ann.predict("cpu", api_name="/switch_preset")["ok"]
    assert bob.predict(api_name="/engine_status")["engine"] == "transformers (CPU, fp32)"


def running_job(client: Client) -> dict:
    """The job `/engine_status` tells once it runs (AssertionError after a minute without one)."""
    deadline = time.monotonic() + 60
    while (job := client.predict(api_name="/engine_status")["job"]) is None or job["state"] != "running":
        assert time.monotonic() < deadline, f"no job ran ({job})"
        time.sleep(0.5)
    return job


@pytest.mark.cpu
def test_a_comparison_runs_in_the_rooms_engine_host_and_every_process_follows_it(cpu_room):
    _, url = cpu_room
    ann_0, ann_1 = room_user(url, "ann", process=0), room_user(url, "ann", process=1)
    before = ann_1.predict(api_name="/engine_status")
    long_one = submit_background_comparison(ann_1, requests=64, output_tokens=64)
    assert running_job(ann_0)["kind"] == "comparison"  # process 1's, seen on process 0
    ann_0.predict(api_name="/cancel_compare")  # the host's job, cancelled from the other process
    assert long_one.result()[0].startswith("Cancelled")
    progress, _log, table, *_ = ann_0.predict(["cpu", "cpu-greedy"], ["math"], "", 8, 1, False, api_name="/compare")
    assert progress.startswith("Done"), progress
    assert {row[0] for row in table["data"]} == {"cpu", "cpu-greedy"}  # the host's result, on this process
    after = ann_1.predict(api_name="/engine_status")
    assert (after["preset"], after["engine"]) == (before["preset"], before["engine"])  # the room's engine came back


@pytest.mark.cpu
def test_a_comparison_whose_engine_host_ends_fails_with_the_reason_and_the_room_chats_on(cpu_room):
    console, url = cpu_room
    ann = room_user(url, "ann", process=1)
    comparing = submit_background_comparison(ann, requests=64, output_tokens=64)
    running_job(ann)
    engine_host_of(console).kill()
    with pytest.raises(Exception, match="the room's engine ended while the comparison ran"):
        comparing.result(timeout=60)
    chat_until_the_engine_is_back(ann)
    assert ann.predict(api_name="/engine_status")["job"] is None  # the new host has run no job


@pytest.mark.cpu
def test_side_b_of_a_room_is_the_hosts_and_a_vote_on_one_process_counts_on_every_one(cpu_room):
    _, url = cpu_room
    ann, bob = room_user(url, "ann", process=0), room_user(url, "bob", process=1)
    assert ann.predict("cpu", api_name="/switch_preset")["ok"]
    try:
        status, _ = ann.predict("cpu-bf16", api_name="/load_side_b")
        assert "**B:** cpu-bf16 (transformers (CPU, bf16)" in status
        painted = bob.predict("What is 2+3? Answer briefly.", True, True, 24, False, api_name="/side_by_side")
        round_ = painted[5]
        assert round_["finished"] and round_["left"]["text"] and round_["right"]["text"]
        bob.predict("left", api_name="/vote")
        tallied = {(row["first"], row["second"]): row["votes"] for row in ann.predict(api_name="/side_by_side_votes")}
        assert tallied == {("cpu", "cpu-bf16"): 1}
    finally:
        ann.predict(api_name="/unload_side_b")
    unloaded = bob.predict("Hello", True, True, 16, False, api_name="/side_by_side")
    assert "load a preset as side B first" in unloaded[4]


@pytest.mark.browser
def test_a_page_on_one_process_follows_a_switch_and_a_comparison_made_on_another(cpu_room):
    from tests.conftest import CHROMIUM_VIEWPORT, log_in_page, open_chromium, wait_for_text
    from tests.test_browser import knob_is

    _, url = cpu_room
    ann = room_user(url, "ann", process=0)
    with open_chromium() as browser:
        visitor = browser.new_context(viewport=CHROMIUM_VIEWPORT)
        visitor.add_cookies([{"name": PIN_COOKIE, "value": "1", "url": url}])  # on the room's other process
        page = visitor.new_page()
        log_in_page(page, url, "bob", "bob-pw")
        knob_is(page, "temperature", "0.7")
        try:
            assert ann.predict("cpu-greedy", api_name="/switch_preset")["ok"]
            knob_is(page, "temperature", "0")
            wait_for_text(page, "engine-header", "preset cpu-greedy", timeout=30_000)
        finally:
            assert ann.predict("cpu", api_name="/switch_preset")["ok"]
        knob_is(page, "temperature", "0.7")
        comparing = submit_background_comparison(ann, requests=64, output_tokens=64)
        try:
            wait_for_text(page, "engine-header", "A comparison is running", timeout=60_000)
        finally:
            ann.predict(api_name="/cancel_compare")
            comparing.result()


@pytest.mark.cpu
def test_the_rooms_engine_host_ends_with_a_killed_room(tmp_path):
    console, _ = start_console(["--room-processes", "2"], tmp_path / "app.log")
    try:
        processes = psutil.Process(console.pid).children()
        assert len(processes) == 3  # the engine host and two console processes
        console.kill()
        _, left = psutil.wait_procs(processes, timeout=30)
        assert not left
    finally:
        stop_process(console)


@pytest.mark.remote
@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGKILL])
def test_the_rooms_processes_end_with_it_however_it_ends(tmp_path, ending):
    server, base_url = start_paced_server(tmp_path / "server.log")
    try:
        console, _ = start_console(
            ["--backend", "remote", "--base-url", base_url, "--room-processes", "2"], tmp_path / "app.log"
        )
        members = psutil.Process(console.pid).children()
        assert len(members) == 2
        console.send_signal(ending)
        console.wait(30)
        _, left = psutil.wait_procs(members, timeout=15)
        assert not left
    finally:
        stop_process(server)


def test_a_room_on_a_port_already_taken_says_so_before_starting_anything(tmp_path):
    import socket
    import subprocess

    from tests.conftest import ROOT

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ended = subprocess.run(
            [sys.executable, "app.py", "--backend", "remote", "--room-processes", "2", "--server-port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert ended.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in ended.stderr and "choose another --server-port" in ended.stderr
    assert "Starting" not in ended.stdout


@pytest.mark.remote
def test_processes_still_starting_end_with_a_room_killed_meanwhile(tmp_path):
    from tests.conftest import start_process

    server, base_url = start_paced_server(tmp_path / "server.log")
    command = [sys.executable, "app.py", "--backend", "remote", "--base-url", base_url, "--room-processes", "2"]
    room = start_process([*command, "--server-port", str(free_port())], tmp_path / "app.log")
    try:
        deadline = time.monotonic() + 60
        while len(members := psutil.Process(room.pid).children()) < 2:
            assert time.monotonic() < deadline, (tmp_path / "app.log").read_text()
            time.sleep(0.05)
        room.kill()  # before they listen: before they have even imported Gradio
        _, left = psutil.wait_procs(members, timeout=120)
        assert not left
    finally:
        stop_process(room)
        stop_process(server)


@pytest.mark.remote
def test_each_visitor_of_a_room_keeps_its_own_chat_limit(tmp_path):
    """Behind the router every visitor connects from 127.0.0.1: the limit per address holds for each
    visitor's own address, not for the room as one (a server 10 minutes from its first token keeps a chat
    streaming, holding its slot)."""
    server, base_url = start_paced_server(tmp_path / "server.log", "--ttft-ms", "600000")
    options = ["--backend", "remote", "--base-url", base_url, "--room-processes", "2", "--chats-at-once", "1"]
    console, url = start_console(options, tmp_path / "app.log")

    def visitor(address: str) -> Client:  # all on process 0, each from its own address
        return Client(url, headers={"x-forwarded-for": address}, httpx_kwargs={"cookies": {PIN_COOKIE: "0"}})

    try:
        first = visitor("198.51.100.1")
        streaming = first.submit(message="Tell me a story.", max_new_tokens=8, api_name="/chat")
        deadline = time.monotonic() + 60
        while not streaming.outputs():  # its first paint: the chat holds its visitor's slot
            assert time.monotonic() < deadline
            time.sleep(0.1)
        same_address = visitor("198.51.100.1").predict(message="Me again.", max_new_tokens=8, api_name="/chat")
        assert same_address == ([], "Me again.")  # refused, the message kept
        other = visitor("198.51.100.2").submit(message="And me.", max_new_tokens=8, api_name="/chat")
        while not other.outputs():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert other.outputs()[0][0][0]["content"][0]["text"] == "And me."  # taken: streaming, waiting
        first.predict(api_name="/stop")
    finally:
        stop_process(console)
        stop_process(server)
