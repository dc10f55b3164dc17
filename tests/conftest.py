"""Shared fixtures: the real model on the CPU, a real OpenAI-compatible server, the app itself."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHROMIUM_VIEWPORT = {"width": 1400, "height": 950}  # the browser tier's pages and its screenshots


def pytest_collection_modifyitems(config, items):
    from backends import usable_gpu_reason

    reason = usable_gpu_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    """The gpu tier (`-m gpu`) fails when none of its tests ran: every one skipped (no GPU, no
    TurboMind) is no evidence that anything works. `-rs` in `make test-gpu` lists why each skipped."""
    if session.config.option.markexpr != "gpu" or exitstatus != pytest.ExitCode.OK:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not any(reporter.stats.get(outcome) for outcome in ("passed", "failed", "xfailed", "xpassed")):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter.write_line("the gpu tier ran no test: every one was skipped", red=True)


class Clock:
    """A clock the test sets (`clock.now = ...`), for what takes a `clock` callable."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError as exc:
            # an HTTP error status means the server is up, but for 503: a room whose processes still start
            if getattr(exc, "code", None) not in (None, 503):
                return
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {timeout_s} s:\n{log.read_text()[-3000:]}")


def start_process(args: list[str], log: Path, env: dict | None = None, root: Path = ROOT) -> subprocess.Popen:
    """`args` run from `root` (this checkout, or another one a benchmark compares with), its modules first."""
    python_path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(args, cwd=root, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def embedded_folder() -> Path:
    from backends.embedded_model import embedded_hf_folder

    return embedded_hf_folder()


@pytest.fixture(scope="session")
def random_llama_7b(embedded_folder) -> Path:
    """Llama-2-7B's shape with random weights (memory and speed only), where bench/gpu_presets' 7B
    presets look for it; built on the GPU in about 17 s when it is not there yet."""
    from bench.random_llama import make_random_llama

    return make_random_llama(Path("/tmp/models/llama2-7b-random"), embedded_folder, "7b")


@pytest.fixture(scope="session")
def tool_template_folder(embedded_folder, tmp_path_factory) -> Path:
    """The embedded SmolLM2 with a chat template that knows tools (tests/data/chatml_tools.jinja,
    Qwen2.5's format: SmolLM2 speaks the same ChatML), for LMDeploy's qwen tool parser."""
    folder = tmp_path_factory.mktemp("smollm2-tools")
    for file in embedded_folder.iterdir():
        if file.name != "chat_template.jinja":
            (folder / file.name).symlink_to(file)
    (folder / "chat_template.jinja").write_text((ROOT / "tests" / "data" / "chatml_tools.jinja").read_text())
    return folder


@pytest.fixture(scope="session")
async def cpu_backend(embedded_folder):
    from backends import BackendSpec, create_backend

    backend, _ = await create_backend(BackendSpec(kind="cpu"))
    yield backend
    await backend.close()


OPENAI_SERVER_KEY = "test-key"


def submit_background_comparison(client, requests: int, output_tokens: int):
    """A comparison of the two CPU presets whose load test keeps the engine busy for a while, started
    through the API (`client.submit`); cancel it with `/cancel_compare` when done with it."""
    return client.submit(
        presets=["cpu", "cpu-greedy"],
        names=["math"],
        max_new_tokens=8,
        requests_at_once=1,
        with_perplexity=False,
        with_agreement=False,
        load_test=True,
        load_requests=requests,
        load_prompt_tokens=64,
        load_output_tokens=output_tokens,
        api_name="/compare",
    )


def start_console(
    options: list[str],
    log: Path,
    env: dict | None = None,
    timeout_s: float = 300,
    root: Path = ROOT,
    program: tuple[str, ...] = ("app.py",),
) -> tuple[subprocess.Popen, str]:
    """The console (`app.py` with `options`, from the checkout at `root`; or another Python `program`
    that takes `--server-port`) on a free 127.0.0.1 port, as a user starts it; returns the running
    process and its URL once it answers. The caller stops it."""
    port = free_port()
    command = [sys.executable, *program, *options, "--server-port", str(port)]
    process = start_process(command, log, env=env, root=root)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, process, log, timeout_s)
    except RuntimeError:
        stop_process(process)
        raise
    return process, url


def start_openai_server(model: Path, folder: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """`transformers serve` with `model` on a free 127.0.0.1 port (see tests/servers); returns
    the running process and its base URL. The caller stops it."""
    port = free_port()
    log = folder / "server.log"
    (folder / "hf-cache").mkdir()  # /v1/models scans this cache; empty, it lists nothing
    process = start_process(
        [sys.executable, "-m", "tests.servers.openai_server", "--model", str(model), "--port", str(port), *options],
        log,
        env={"HF_HUB_CACHE": str(folder / "hf-cache"), "HF_HUB_OFFLINE": "1"},
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    wait_for_http(f"{base_url}/models", process, log)
    return process, base_url


@contextlib.contextmanager
def open_chromium(*extra_flags: str):
    """Debian's Chromium, headless, driven by Playwright (the browser tier, bench.send_to_screen)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (make test does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_FLAGS, *extra_flags])
        try:
            yield browser
        finally:
            browser.close()


def open_console(page, url: str) -> None:
    """Go to the console and wait for the page's opening event (the header names its user): until then
    the knobs may still be set to the running preset's, over what a test typed."""
    page.goto(url)
    wait_for_text(page, "engine-header", "may chat", timeout=60_000)


def log_in_page(page, url: str, user: str, password: str) -> str:
    """Log in on the console's log-in page as a person would; returns the header's text once the
    console's page names the user."""
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    wait_for_text(page, "engine-header", f"{user}: may chat", timeout=60_000)
    return page.locator("#engine-header").inner_text()


def wait_for_text(page, elem_id: str, text: str, timeout: float | None = None) -> None:
    """Wait until the element's text contains `text` (Playwright's default timeout unless given, in ms)."""
    page.wait_for_function(
        f"() => document.getElementById({json.dumps(elem_id)})?.innerText.includes({json.dumps(text)})",
        timeout=timeout,
    )


def completion_read_late(endpoint, args, unread_s: float) -> dict:
    """The completion message of `endpoint`'s event (a `bench.gradio_stream.GradioEndpoint`) as a client that
    gave up left it: joined for a new session, its event stream left unread for `unread_s`, then read."""
    session = uuid.uuid4().hex
    endpoint.join(endpoint.fn_index, args, session)
    started = time.perf_counter()
    time.sleep(unread_s)
    *_, (_, completed) = endpoint.read(session, started)
    return completed


def start_paced_server(log: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """`bench/paced_server.py` (no model: replies at a fixed pace, after `--ttft-ms`) on a free
    127.0.0.1 port; returns the running process and its base URL. The caller stops it."""
    port = free_port()
    process = start_process([sys.executable, "-m", "bench.paced_server", "--port", str(port), *options], log)
    base_url = f"http://127.0.0.1:{port}/v1"
    wait_for_http(f"{base_url}/models", process, log)
    return process, base_url


@pytest.fixture(scope="session")
def openai_server(embedded_folder, tmp_path_factory) -> dict:
    """The test server with the embedded model, requiring OPENAI_SERVER_KEY."""
    folder = tmp_path_factory.mktemp("openai-server")
    process, base_url = start_openai_server(embedded_folder, folder, "--api-key", OPENAI_SERVER_KEY)
    yield {"base_url": base_url, "model": str(embedded_folder), "api_key": OPENAI_SERVER_KEY, "process": process}
    stop_process(process)


# /quantize: source, output folder, preset name, group size, samples, seqlen, dtype, calibration file, unload
QUANTIZE_ARGS = ("embedded: SmolLM2-135M-Instruct", "smol-awq", "smol-awq", 64, 8, 128, "float16", None, True)

DOWN_PORT = free_port()  # nothing listens here: the "server down" cases point at it
FLEET_PROXY_PORT = free_port()  # tests/test_fleet.py starts LMDeploy's proxy here
USER_PRESETS = {
    "fleet-test.yaml": f"backend: remote\nproxy: true\nbase_url: http://127.0.0.1:{FLEET_PROXY_PORT}/v1\n",
    "cpu-greedy.yaml": "description: the embedded model, greedy\nbackend: cpu\ngeneration:\n  temperature: 0\n",
    "broken.yaml": "backend: cpu\nquant_polcy: 8\n",
    "remote-down.yaml": f"backend: remote\nbase_url: http://127.0.0.1:{DOWN_PORT}/v1\n",
}


@pytest.fixture(scope="session")
def user_presets(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("user-presets")
    for name, text in USER_PRESETS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="session")
def app_log(tmp_path_factory) -> Path:
    """Where the launched console's output goes."""
    return tmp_path_factory.mktemp("app") / "app.log"


@pytest.fixture(scope="session")
def app_url(embedded_folder, user_presets, app_log) -> str:
    """The console itself, launched like a user would, on the CPU backend."""
    from presets.store import USER_PRESETS_ENV

    process, url = start_console(["--backend", "cpu"], app_log, env={USER_PRESETS_ENV: str(user_presets)})
    yield url
    stop_process(process)


@pytest.fixture(scope="session")
def fleet_nodes(embedded_folder, tmp_path_factory) -> dict:
    """Two OpenAI-compatible nodes for LMDeploy's proxy (their `/v1/models` lists the model, as
    api_server's does): url -> process. tests/test_fleet.py kills one, last."""
    started = [
        start_openai_server(embedded_folder, tmp_path_factory.mktemp(f"node{i}"), "--list-model") for i in range(2)
    ]
    yield {base_url.removesuffix("/v1"): process for process, base_url in started}
    for process, _ in started:
        stop_process(process)


def start_proxy(port: int, log: Path) -> tuple[subprocess.Popen, str]:
    """`lmdeploy serve proxy` on 127.0.0.1:`port`, with no node yet; returns it and its URL once it answers.
    The caller stops it."""
    command = [sys.executable, "-m", "lmdeploy", "serve", "proxy", "--server-name", "127.0.0.1"]
    # the proxy's own health check (every 90 s) would race the console's, which a test watches take a dead
    # node out: a day apart, it never runs while they do
    no_own_check = {"LMDEPLOY_CONTROLLER_HEART_BEAT_EXPIRATION": str(24 * 3600)}
    process = start_process([*command, "--server-port", str(port), "--disable-cache-status"], log, no_own_check)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/nodes/status", process, log)
    return process, url


@pytest.fixture(scope="session")
def fleet_proxy(tmp_path_factory, user_presets) -> str:
    """LMDeploy's proxy on the port the app's `fleet-test` preset points at."""
    process, url = start_proxy(FLEET_PROXY_PORT, tmp_path_factory.mktemp("proxy") / "proxy.log")
    yield url
    stop_process(process)
