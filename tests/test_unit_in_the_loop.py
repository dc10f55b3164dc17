"""A streaming event starts and ends, and the queue's routes check a log-in, without a hand-off to a worker
thread; a plain function still runs in one."""

import anyio.to_thread
import gradio as gr
import gradio.queueing
from gradio.routes import App
from gradio_client import Client
from starlette.testclient import TestClient

from app import serve
from tests.conftest import free_port
from ui.in_the_loop import keep_in_the_loop
from ui.queue_routes import queue_routes_first


def _record_hand_offs(monkeypatch) -> list[str]:
    """The name of every function handed to a worker thread from now on (Gradio's blocks and its queue)."""
    handed_off = []
    for module in (anyio.to_thread, gradio.queueing):
        to_thread = module.run_sync

        async def recorded(function, *args, _to_thread=to_thread, **kwargs):
            named = getattr(function, "func", function)  # Starlette hands a dependency over as a functools.partial
            handed_off.append(getattr(named, "__name__", repr(named)))
            return await _to_thread(function, *args, **kwargs)

        monkeypatch.setattr(module, "run_sync", recorded)
    return handed_off


def test_a_streaming_event_starts_and_ends_in_the_event_loop(monkeypatch):
    handed_off = _record_hand_offs(monkeypatch)
    keep_in_the_loop()
    with gr.Blocks() as demo:
        text, streamed, upper = gr.Textbox(), gr.Textbox(), gr.Textbox()

        async def count(prefix):
            for i in range(3):
                yield f"{prefix} {i}"

        def shout(words):
            return words.upper()

        text.submit(count, text, streamed, api_name="count")
        text.change(shout, text, upper, api_name="shout")
    port = free_port()
    serve(demo, prevent_thread_lock=True, server_port=port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert client.predict("n", api_name="/count") == "n 2"
        assert client.predict("hi", api_name="/shout") == "HI"
    finally:
        demo.close()
    assert "count" not in handed_off  # the generator made in the loop
    assert "compute_analytics_summary" not in handed_off  # at each event's end
    assert "shout" in handed_off  # a plain function still runs in a worker thread


def test_the_queue_routes_check_the_login_in_the_event_loop_and_still_refuse_without_one(monkeypatch):
    with gr.Blocks() as demo:
        gr.Textbox()
    demo.queue()
    app = App.create_app(demo)
    queue_routes_first(app)
    app.auth, app.get_blocks().auth_message = {"ada": "secret"}, None  # as launch(auth=...) sets them
    handed_off = _record_hand_offs(monkeypatch)
    keep_in_the_loop()
    body = {"data": [""], "fn_index": 0, "session_hash": "s1", "event_data": None, "trigger_id": None}
    with TestClient(app) as client:
        join = client.post("/gradio_api/queue/join", json=body)
        stream = client.get("/gradio_api/queue/data?session_hash=s1")
    assert join.status_code == stream.status_code == 401
    assert join.json()["detail"]["error"] == "Not authenticated"
    assert "login_check" not in handed_off  # checked without a worker thread
