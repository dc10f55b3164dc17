import importlib
import sys

import gradio as gr
import pytest

import app


def test_importing_app_starts_nothing():
    module = importlib.reload(app)  # would block or load a model if the entry were not guarded
    assert callable(module.main)


def test_defaults_are_local_and_automatic():
    args = app.parse_args([])
    assert (args.backend, args.engine, args.server_name, args.share) == ("auto", "auto", "127.0.0.1", False)


def test_auth_from_value_file_and_environment(tmp_path, monkeypatch):
    assert app.load_auth("ann:pw") == [("ann", "pw")]
    users = tmp_path / "users"
    users.write_text("# admins\nann:pw1\nbob:pw:2\n")
    assert app.load_auth(str(users)) == [("ann", "pw1"), ("bob", "pw:2")]
    monkeypatch.setenv(app.AUTH_ENV, "env:pw")
    assert app.load_auth(None) == [("env", "pw")]


def test_auth_is_taken_several_times_and_mixed_with_files(tmp_path, monkeypatch):
    monkeypatch.delenv(app.AUTH_ENV, raising=False)
    users = tmp_path / "users"
    users.write_text("ann:pw1\n")
    args = app.parse_args(["--auth", str(users), "--auth", "bob:pw2"])
    assert app.load_auth(args.auth) == [("ann", "pw1"), ("bob", "pw2")]
    with pytest.raises(SystemExit, match="--auth: ann given more than once"):
        app.load_auth([str(users), "ann:other"])


def test_malformed_auth_is_refused(monkeypatch):
    monkeypatch.delenv(app.AUTH_ENV, raising=False)
    with pytest.raises(SystemExit, match="USER:PASSWORD"):
        app.load_auth("no-colon")


def test_a_public_link_needs_a_login_or_an_explicit_opt_out():
    with pytest.raises(SystemExit, match="add --auth"):
        app.check_sharing(app.parse_args(["--share"]), auth=None)
    assert app.check_sharing(app.parse_args(["--share"]), auth=[("ann", "pw")]) is None
    warning = app.check_sharing(app.parse_args(["--share", "--share-without-auth"]), auth=None)
    assert "anyone with the link" in warning
    assert app.check_sharing(app.parse_args([]), auth=None) is None


def test_gradio_s_analytics_summary_is_not_rebuilt_as_every_event_ends(monkeypatch):
    """Gradio rebuilds a pandas summary of up to 10,000 past events as each event ends (1.4-5.3 ms of
    CPU, for a monitoring page the console turns off); the console's launch makes that rare."""
    for name in ("GRADIO_ANALYTICS_CACHE_FREQUENCY", "GRADIO_ANALYTICS_MAX_EVENTS"):
        monkeypatch.setenv(name, "")  # put back as it was after the test
        monkeypatch.delenv(name)
    monkeypatch.setitem(sys.modules, "matplotlib", sys.modules.get("matplotlib"))
    app.lighten_gradio_bookkeeping()
    with gr.Blocks() as demo:
        gr.Textbox()
    demo.queue()
    queue, rebuilt = demo._queue, []
    build_summary = queue._get_df
    monkeypatch.setattr(queue, "_get_df", lambda records: rebuilt.append(len(records)) or build_summary(records))
    for _ in range(100):  # a hundred chats, paints and timer ticks end
        queue.events_recorded += 1
        queue.compute_analytics_summary([{"function": "chat", "status": "success", "process_time": 0.1}])
    assert rebuilt == []


def test_without_a_gpu_the_reason_is_in_words_not_nvmls_error_name(monkeypatch):
    import pynvml

    from backends import usable_gpu_reason

    def no_library():  # what NVML raises on a machine without the driver's library
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    assert usable_gpu_reason() == "no NVIDIA driver or GPU was found"


@pytest.mark.parametrize("hours", ["0", "-1", "nan"])
def test_a_log_in_lasts_some_hours(hours):
    with pytest.raises(SystemExit):
        app.parse_args(["--login-hours", hours])
