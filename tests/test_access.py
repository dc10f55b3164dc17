"""Roles: everyone chats; only admins change the engine, in the UI and through the API alike."""

import time

import pytest
from gradio_client import Client

import app
from console.access import AccessPolicy, NotAllowed
from tests.conftest import QUANTIZE_ARGS, start_console, stop_process


def test_policy():
    private = AccessPolicy()
    assert private.is_admin(None)
    assert not AccessPolicy(reachable_by_others=True).is_admin(None)
    everyone = AccessPolicy(logins=True)
    assert everyone.is_admin("bob")
    named = AccessPolicy(logins=True, admins=frozenset({"ann"}))
    assert named.is_admin("ann") and not named.is_admin("bob")
    with pytest.raises(NotAllowed, match="only admins can switch presets; 'bob' is not one"):
        named.require_admin("bob", "switch presets")


@pytest.mark.parametrize(
    ("arguments", "admin", "warned"),
    [
        ([], True, False),
        (["--server-name", "localhost"], True, False),
        (["--server-name", "127.0.0.2"], True, False),
        (["--server-name", "0.0.0.0"], False, True),
        (["--server-name", "192.168.1.20"], False, True),
        (["--server-name", "gpu-box.lan"], False, True),
        (["--share", "--share-without-auth"], False, True),
    ],
)
def test_without_a_log_in_only_a_console_nobody_else_reaches_has_an_admin(arguments, admin, warned):
    args = app.parse_args(arguments)
    assert app.access_policy(args, auth=None).is_admin(None) is admin
    assert (app.check_sharing(args, auth=None) is not None) is warned
    assert app.check_sharing(args, auth=[("ann", "pw")]) is None  # with log-ins, --admin decides


def test_listening_on_all_interfaces_says_who_can_do_what():
    warning = app.check_sharing(app.parse_args(["--server-name", "0.0.0.0"]), auth=None)
    assert "listens on 0.0.0.0 without a log-in" in warning and "restart it with --auth" in warning


def test_admins_must_be_users():
    with pytest.raises(SystemExit, match="--admin eve: not a user of --auth"):
        app.access_policy(app.parse_args(["--admin", "eve"]), auth=[("ann", "pw")])


@pytest.fixture(scope="module")
def guarded_url(embedded_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("guarded")
    (folder / "users").write_text("ann:ann-pw\nbob:bob-pw\n")
    process, url = start_console(
        ["--preset", "cpu", "--auth", str(folder / "users"), "--admin", "ann"], folder / "app.log"
    )
    yield url
    stop_process(process)


@pytest.mark.app
def test_users_chat_but_only_admins_switch_or_restart(guarded_url):
    bob = Client(guarded_url, auth=("bob", "bob-pw"), verbose=False)
    chatbot, _ = bob.predict(message="What is 2+3?", temperature=0, max_new_tokens=30, api_name="/chat")
    assert "5" in chatbot[-1]["content"][0]["text"]
    refused = bob.predict("cpu", api_name="/switch_preset")
    assert not refused["ok"] and "only admins can switch presets; 'bob' is not one" in refused["error"]
    assert not bob.predict(api_name="/restart_engine")["ok"]
    ann = Client(guarded_url, auth=("ann", "ann-pw"), verbose=False)
    assert ann.predict("cpu", api_name="/switch_preset")["ok"]


@pytest.mark.app
def test_without_the_password_nothing_is_served(guarded_url):
    with pytest.raises(ValueError, match="Could not login"):
        Client(guarded_url, auth=("bob", "wrong"), verbose=False)


@pytest.mark.app
def test_the_log_in_page_shows_nothing_of_the_console(guarded_url, embedded_folder):
    import httpx

    login_page = httpx.get(guarded_url).text
    assert "window.gradio_api_info" in login_page  # the page Gradio serves, emptied
    for secret in ("switch_preset", embedded_folder.name, "kv-int8"):
        assert secret not in login_page, secret
    with httpx.Client() as browser:
        browser.post(
            f"{guarded_url.rstrip('/')}/login", data={"username": "bob", "password": "bob-pw"}
        ).raise_for_status()
        assert "switch_preset" in browser.get(guarded_url).text  # after the log-in, the page is whole


@pytest.mark.app
def test_each_user_s_page_and_config_are_those_gradio_builds_for_them(guarded_url):
    """The page and the config are built once for the address they are reached at and then given each
    visitor's user (ui/page_route.py); with a query, Gradio's own handler builds them, as it did for every
    request."""
    import httpx

    pages = {}
    for user in ("ann", "bob", "ann"):
        with httpx.Client(base_url=guarded_url) as browser:
            browser.post("/login", data={"username": user, "password": f"{user}-pw"}).raise_for_status()
            page, gradios = browser.get("/").text, browser.get("/", params={"page": ""}).text
            assert page == gradios and f'"username":"{user}"' in page
            config, gradios = browser.get("/config").json(), browser.get("/config", params={"deep_link": ""}).json()
            assert config == gradios and config["username"] == user
            pages.setdefault(user, []).append(page)
    assert pages["ann"][0] == pages["ann"][1]
    assert pages["bob"][0].replace('"username":"bob"', '"username":"ann"') == pages["ann"][0]


@pytest.mark.app
def test_a_log_in_lasts_as_long_as_it_is_set_to(embedded_folder, tmp_path):
    """--login-hours: past it the token the browser holds is refused, and logging in again works."""
    import httpx

    process, url = start_console(
        ["--preset", "cpu", "--auth", "ann:ann-pw", "--login-hours", "0.001"], tmp_path / "app.log"
    )
    try:
        with httpx.Client() as browser:
            login = {"username": "ann", "password": "ann-pw"}
            browser.post(f"{url.rstrip('/')}/login", data=login).raise_for_status()
            assert browser.get(f"{url}config").status_code == 200
            time.sleep(4.6)  # past 3.6 s
            assert browser.get(f"{url}config").status_code == 401
            browser.post(f"{url.rstrip('/')}/login", data=login).raise_for_status()
            assert browser.get(f"{url}config").status_code == 200
    finally:
        stop_process(process)


@pytest.mark.app
def test_guessing_passwords_slows_down_and_the_page_says_so(guarded_url):
    import httpx

    from console.log_ins import FREE_TRIES

    login = f"{guarded_url.rstrip('/')}/login"
    assert "wrong passwords" in httpx.get(guarded_url).text  # the notice on the log-in page
    answers = [httpx.post(login, data={"username": "eve", "password": "guess"}).status_code for _ in range(7)]
    assert answers[:FREE_TRIES] == [400] * FREE_TRIES and answers[-1] == 429
    refused = httpx.post(login, data={"username": "eve", "password": "guess"})
    assert "too many failed log-ins: try again in" in refused.json()["detail"]
    time.sleep(1.1)  # the first wait past the free tries; a right password then clears this address
    assert httpx.post(login, data={"username": "bob", "password": "bob-pw"}).status_code == 200


@pytest.mark.app
def test_only_admins_compare_or_quantize(guarded_url):
    bob = Client(guarded_url, auth=("bob", "bob-pw"), verbose=False)
    with pytest.raises(Exception, match="only admins can start a comparison"):
        bob.predict(["cpu", "cpu"], ["math"], "", 8, 1, False, api_name="/compare")
    with pytest.raises(Exception, match="only admins can start a quantization"):
        bob.predict(*QUANTIZE_ARGS, api_name="/quantize")


async def test_the_console_checks_who_asks_before_anything_changes(tmp_path):
    """The admin check lives in the Console: every handler passes the user, none checks on its own."""
    from console.core import Console
    from console.engine_state import NoEngine
    from presets.schema import Preset
    from presets.store import PresetCatalog

    guarded = AccessPolicy(logins=True, admins=frozenset({"ann"}))
    console = Console(NoEngine("idle"), "test", catalog=PresetCatalog(user_dir=tmp_path), access=guarded)
    refusals = [
        (console.switch_preset("cpu", user="bob"), "switch presets"),
        (console.restart(user="bob"), "restart the engine"),
    ]
    for attempt, action in refusals:
        with pytest.raises(NotAllowed, match=f"only admins can {action}; 'bob' is not one"):
            await attempt
    with pytest.raises(NotAllowed, match="only admins can save presets"):
        console.save_preset("mine", Preset(backend="cpu"), user=None)
    with pytest.raises(NotAllowed, match="only admins can start a comparison"):
        await console.start_job("comparison", lambda: pytest.fail("checked before the request"), user="bob")
    with pytest.raises(NotAllowed, match="only admins can cancel a comparison"):
        await console.cancel_job("comparison", user="bob")
    assert console.save_preset("mine", Preset(backend="cpu"), user="ann").exists()
    assert console.state().info.kind == "none"  # nothing was switched or restarted


@pytest.mark.app
def test_a_shared_console_holds_each_user_to_its_limits(tmp_path):
    """A server 10 minutes from its first token keeps a chat streaming while the limits are tried."""
    from tests.conftest import start_paced_server

    server, base_url = start_paced_server(tmp_path / "server.log", "--ttft-ms", "600000")
    console, url = start_console(
        ["--backend", "remote", "--base-url", base_url, "--max-new-tokens", "64", "--chats-at-once", "1"],
        tmp_path / "app.log",
    )
    try:
        first = Client(url, verbose=False)
        chatbot, kept = first.predict(message="Tell me a long story.", max_new_tokens=65, api_name="/chat")
        assert chatbot == [] and kept == "Tell me a long story."  # over --max-new-tokens: not sent, kept
        streaming = first.submit(message="Tell me a story.", max_new_tokens=64, api_name="/chat")
        deadline = time.monotonic() + 60
        while not streaming.outputs() and time.monotonic() < deadline:  # its first paint: the chat holds a slot
            time.sleep(0.1)
        second = Client(url, verbose=False)  # the same address: the same user without log-ins
        chatbot, kept = second.predict(message="And another one.", max_new_tokens=8, api_name="/chat")
        assert chatbot == [] and kept == "And another one."
        first.predict(api_name="/stop")
    finally:
        stop_process(console)
        stop_process(server)
