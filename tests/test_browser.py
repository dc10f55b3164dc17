"""Debian's Chromium, driven by Playwright, uses the console like a person would."""

import json
import os
from pathlib import Path

import pytest

from bench.gradio_stream import WAITING
from tests.conftest import (
    CHROMIUM_VIEWPORT,
    log_in_page,
    open_chromium,
    open_console,
    start_console,
    start_paced_server,
    stop_process,
    submit_background_comparison,
    wait_for_text,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    with open_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = browser.new_page(viewport=CHROMIUM_VIEWPORT)
    open_console(page, app_url)
    yield page
    page.close()


def reload_console(page) -> None:
    open_console(page, page.url)


def screenshot(page, name: str) -> None:
    """Screenshots for README and docs/guide.md: written where SCREENSHOT_DIR says (make screenshots)."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def wait_for_reply_to_begin(page, prompt_end: str) -> None:
    """Until the reply after the message ending in `prompt_end` has text of its own (not the placeholder
    it shows before its first token)."""
    page.wait_for_function(
        f"() => {{ const reply = document.querySelector('#chatbot').innerText.split({json.dumps(prompt_end)})[1];"
        f" return reply && !reply.includes({json.dumps(WAITING)}) && reply.trim().length > 20; }}",
        timeout=120_000,
    )


def set_slider(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_a_typed_message_gets_a_streamed_reply_with_stats(page):
    set_slider(page, "temperature", 0)
    page.locator("#chat-input textarea").fill("What is 2+3?")
    page.locator("#chat-input textarea").press("Enter")
    wait_for_text(page, "chatbot", "tok/s", timeout=120_000)
    text = page.locator("#chatbot").inner_text()
    assert "What is 2+3?" in text and "5" in text and "stop" in text
    screenshot(page, "chat.png")


def test_a_reply_coloured_by_token_probability_shows_alternatives_on_hover(page):
    page.get_by_text("Clear", exact=True).click()
    set_slider(page, "temperature", 0)
    set_slider(page, "max-new-tokens", 16)
    colour = page.locator("#token-probabilities input[type=checkbox]")
    colour.check()
    page.locator("#chat-input textarea").fill("What is the capital of France?")
    page.locator("#chat-input textarea").press("Enter")
    page.wait_for_selector("#chatbot span.token", timeout=120_000)
    tokens = page.locator("#chatbot span.token")
    hover = tokens.first.get_attribute("title")
    assert "%" in hover and "also:" in hover, hover  # its probability and the likeliest alternatives
    assert "background-color" in tokens.first.get_attribute("style")
    assert "Paris" in "".join(tokens.all_inner_texts())
    colour.uncheck()


def test_the_message_box_is_named_and_stop_says_when_nothing_streams(page):
    assert page.get_by_role("textbox", name="Message").count() == 1  # what a screen reader announces
    page.locator("#stop").click()
    page.get_by_text("Nothing is streaming").wait_for(timeout=10_000)  # the notice shows


def test_stop_keeps_the_partial_reply(page):
    # a new page's empty chat and greedy decoding: the earlier tests' sampled replies, kept in the history,
    # once made the greedy reply short enough to end before Stop
    reload_console(page)
    set_slider(page, "temperature", 0)
    set_slider(page, "max-new-tokens", 4000)
    page.locator("#chat-input textarea").fill("Count from 1 to 2000, one number per line.")  # long: Stop comes first
    page.locator("#chat-input textarea").press("Enter")
    wait_for_reply_to_begin(page, "one number per line.")
    streamed = page.locator("#chatbot").inner_text().split("one number per line.")[1].strip()
    page.locator("#stop").click()
    try:
        wait_for_text(page, "chatbot", "stopped", timeout=60_000)
    except Exception as exc:  # say what the page showed instead
        raise AssertionError(
            f"no 'stopped' reply; the chat shows: {page.locator('#chatbot').inner_text()[-600:]}"
        ) from exc
    assert streamed[:20] in page.locator("#chatbot").inner_text().split("one number per line.")[1]


def test_a_chat_that_waits_for_another_shows_its_place_in_line(browser, app_url):
    first, second = (browser.new_page(viewport=CHROMIUM_VIEWPORT) for _ in range(2))
    try:
        for page in (first, second):
            open_console(page, app_url)
            set_slider(page, "temperature", 0)
            set_slider(page, "max-new-tokens", 300)
        first.locator("#chat-input textarea").fill("Count from 1 to 2000, one number per line.")
        first.locator("#chat-input textarea").press("Enter")
        wait_for_reply_to_begin(first, "one number per line.")  # it holds the CPU engine
        second.locator("#chat-input textarea").fill("What is 2+3?")
        second.locator("#chat-input textarea").press("Enter")
        wait_for_text(second, "chatbot", "1 chat ahead of yours on this CPU engine", timeout=60_000)
        first.locator("#stop").click()
        wait_for_text(second, "chatbot", "tok/s", timeout=120_000)  # then it is answered
    finally:
        first.close(), second.close()


def test_the_box_is_the_user_s_while_a_reply_streams(page):
    box = page.locator("#chat-input textarea")
    set_slider(page, "temperature", 0)
    set_slider(page, "max-new-tokens", 400)  # ~25 s on two cores: long enough to type, short enough to end
    prompt = "Count from 1 to 2000, one number per line."  # greedy, from a clear chat it runs to the limit
    page.get_by_text("Clear", exact=True).click()  # with an earlier chat above it, the count ends soon
    page.wait_for_function(f"() => !document.querySelector('#chatbot').innerText.includes({json.dumps(prompt)})")
    box.fill(prompt)
    box.press("Enter")
    page.wait_for_function(  # the reply has begun to stream
        f"() => document.querySelector('#chatbot').innerText.split({json.dumps(prompt)})[1]?.trim().length > 20",
        timeout=120_000,
    )
    box.fill("Next question: what is 7*6?")  # typed while the reply streams
    page.wait_for_timeout(1500)  # dozens of repaints
    assert box.input_value() == "Next question: what is 7*6?"
    box.press("Enter")  # sent too soon: refused while the reply streams, and back in the box
    page.wait_for_function("() => document.body.innerText.includes('A reply is still streaming')", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#chat-input textarea').value === 'Next question: what is 7*6?'",
        timeout=30_000,
    )
    page.locator("#stop").click()
    page.wait_for_function(  # stopped, or ended at its limit under a slow machine's load
        "() => /stopped|· length/.test(document.querySelector('#chatbot').innerText)", timeout=120_000
    )
    page.wait_for_timeout(1000)  # the stream's last message, after its end is painted
    assert box.input_value() == "Next question: what is 7*6?"  # the reply's end leaves it too


@pytest.fixture(scope="module")
def silent_engine_page(browser, tmp_path_factory):
    """A page of a console whose server takes 10 minutes to its first token (a long prefill)."""
    folder = tmp_path_factory.mktemp("silent-engine")
    server, base_url = start_paced_server(folder / "server.log", "--ttft-ms", "600000")
    console, url = start_console(["--backend", "remote", "--base-url", base_url], folder / "console.log")
    page = browser.new_page(viewport=CHROMIUM_VIEWPORT)
    open_console(page, url)
    yield page
    page.close()
    stop_process(console)
    stop_process(server)


def test_the_message_is_on_screen_while_the_engine_has_not_answered(silent_engine_page):
    """How soon is a benchmark's to say (bench.send_to_screen); this says that it does not wait for the engine."""
    page = silent_engine_page
    page.locator("#chat-input textarea").fill("What is a lighthouse for?")
    page.locator("#send").click()
    wait_for_text(page, "chatbot", "What is a lighthouse for?", timeout=120_000)
    wait_for_text(page, "chatbot", "waiting for the first token", timeout=120_000)
    assert "word" not in page.locator("#chatbot").inner_text()  # the paced server's reply: not yet begun
    page.locator("#stop").click()
    wait_for_text(page, "chatbot", "stopped", timeout=20_000)


def test_presets_tab_switches_the_engine_and_the_header_follows(page):
    page.get_by_role("tab", name="Presets").click()
    page.get_by_label("kv-int4", exact=True).check()
    wait_for_text(page, "preset-about", "Cannot load here")
    page.wait_for_function("() => document.querySelector('#switch-preset').disabled")  # nothing to try
    page.get_by_label("cpu-greedy", exact=True).check()
    wait_for_text(page, "preset-about", "OK: loads here")
    page.wait_for_function("() => !document.querySelector('#switch-preset').disabled")
    page.locator("#switch-preset").click()
    wait_for_text(page, "switch-status", "Switched to cpu-greedy", timeout=120_000)
    wait_for_text(page, "engine-header", "cpu-greedy")
    assert "cpu-greedy" in page.locator("#engine-card").inner_text()
    for editor in ("#preset-editor", "#reproduce"):  # long lines wrap instead of running off the right edge
        assert page.locator(f"{editor} .cm-lineWrapping").count() == 1
    page.get_by_label("kv-int4", exact=True).check()
    wait_for_text(page, "preset-about", "Cannot load here")
    screenshot(page, "presets.png")
    page.get_by_label("cpu", exact=True).check()
    page.locator("#switch-preset").click()
    back = page.get_by_role("button", name="Back to cpu-greedy")  # shown once a switch has a way back
    back.wait_for(timeout=120_000)
    wait_for_text(page, "engine-header", "preset cpu\n")  # the header follows the switch just after it
    back.click()
    wait_for_text(page, "engine-header", "preset cpu-greedy", timeout=120_000)


def knob_is(page, elem_id: str, value: str) -> None:
    page.wait_for_function(
        f"() => document.querySelector('#{elem_id} input[type=number]')?.value === {json.dumps(value)}",
        timeout=30_000,
    )


def test_knobs_follow_a_switch_made_elsewhere_unless_moved_on_the_page(browser, app_url):
    from gradio_client import Client

    admin, other = Client(app_url, verbose=False), browser.new_page(viewport=CHROMIUM_VIEWPORT)
    try:
        assert admin.predict("cpu", api_name="/switch_preset")["ok"]
        open_console(other, app_url)  # a new page shows the running preset's settings
        knob_is(other, "temperature", "0.7")
        assert admin.predict("cpu-greedy", api_name="/switch_preset")["ok"]
        knob_is(other, "temperature", "0")  # an open page follows a switch made elsewhere
        set_slider(other, "max-new-tokens", 99)  # its user moves a knob
        assert admin.predict("cpu", api_name="/switch_preset")["ok"]
        wait_for_text(other, "knobs-differ", "differ from those of the running preset cpu", timeout=30_000)
        knob_is(other, "max-new-tokens", "99")
        knob_is(other, "temperature", "0")  # theirs kept
        other.locator("#knobs-reset").click()
        knob_is(other, "temperature", "0.7")
        knob_is(other, "max-new-tokens", "512")
    finally:
        other.close()
        admin.predict("cpu-greedy", api_name="/switch_preset")  # where the tier's other tests left it


def test_save_as_says_where_it_saved_and_the_message_stays(page, user_presets):
    page.get_by_role("tab", name="Presets").click()
    page.get_by_label("cpu", exact=True).check()
    wait_for_text(page, "preset-about", "OK: loads here")
    page.get_by_placeholder("new-preset-name").fill("my-cpu")
    try:
        page.get_by_role("button", name="Save as").click()
        wait_for_text(page, "switch-status", "Saved")
        page.wait_for_timeout(2000)  # the saved preset is selected and described meanwhile
        assert "my-cpu.yaml" in page.locator("#switch-status").inner_text()
        assert page.locator("#preset-choice").get_by_label("my-cpu", exact=True).is_checked()
    finally:
        (user_presets / "my-cpu.yaml").unlink(missing_ok=True)


def test_a_preset_saved_elsewhere_shows_up_in_every_list(page, user_presets):
    saved = user_presets / "saved-elsewhere.yaml"  # as another page's "Save as" writes it
    saved.write_text("description: saved on another page\nbackend: cpu\n")
    try:
        page.get_by_role("tab", name="Compare").click()
        page.locator("#compare-presets").get_by_label("saved-elsewhere", exact=True).wait_for(timeout=15_000)
        page.get_by_role("tab", name="Presets").click()
        page.locator("#preset-choice").get_by_label("saved-elsewhere", exact=True).wait_for(timeout=15_000)
    finally:
        saved.unlink()


def test_vram_tab_shows_memory_without_a_gpu(page):
    page.get_by_role("tab", name="VRAM").click()
    wait_for_text(page, "vram-gauges", "console process memory", timeout=30_000)
    page.wait_for_timeout(2500)  # a few timeline points
    assert "Memory:" in page.locator("#compact-gauge").inner_text()
    assert not page.locator("#vram-processes").is_visible()  # no GPU: no empty table, the note says why
    note = page.get_by_text("Showing the console process's memory instead").inner_text()
    assert "no NVIDIA driver or GPU was found (NVML says:" in note and "NVMLError" not in note
    screenshot(page, "vram.png")


def test_tools_tab_runs_a_forced_call(page):
    page.get_by_role("tab", name="Tools").click()
    # SmolLM2 has no tool parser: what runs is the console's tool prompt, and that is what is picked
    assert page.locator("#tools-prompt-kind").get_by_label("the console's tool prompt", exact=False).is_checked()
    page.locator("#tools-run").click()
    wait_for_text(page, "tools-transcript", "add returned", timeout=120_000)
    assert "Call add" in page.locator("#tools-transcript").inner_text()
    screenshot(page, "tools.png")


def test_a_running_comparison_is_seen_by_every_page(page, app_url):
    from gradio_client import Client

    # another admin's page, through the API
    started_elsewhere = submit_background_comparison(Client(app_url, verbose=False), requests=8, output_tokens=32)
    reload_console(page)
    wait_for_text(page, "engine-header", "A comparison is running", timeout=60_000)  # on every tab
    page.get_by_role("tab", name="Compare").click()
    wait_for_text(page, "compare-progress", "Running", timeout=30_000)
    # the form shows what the running job was started with, not the page's defaults
    page.wait_for_function("() => document.querySelector('#compare-max-new input[type=number]').value === '8'")
    assert page.locator("#compare-presets").get_by_label("cpu-greedy", exact=True).is_checked()
    assert not page.locator("#compare-prompts").get_by_label("short story", exact=True).is_checked()
    wait_for_text(page, "compare-progress", "Done", timeout=300_000)
    wait_for_text(page, "compare-results", "cpu-greedy")
    assert started_elsewhere.result()[0].startswith("Done")
    page.wait_for_function("() => !document.getElementById('engine-header').innerText.includes('is running')")


def test_compare_tab_puts_two_presets_side_by_side(page):
    reload_console(page)  # the form as a new page has it (the test before left another job's in it)
    page.get_by_role("tab", name="Compare").click()
    presets = page.locator("#compare-presets")
    presets.get_by_label("cpu", exact=True).check()
    presets.get_by_label("cpu-greedy", exact=True).check()
    page.locator("#compare-prompts").get_by_label("short story", exact=True).uncheck()
    set_slider(page, "compare-max-new", 16)
    set_slider(page, "compare-concurrency", 2)
    page.get_by_text("Load test: fill the KV cache").click()
    page.locator("#compare-load").get_by_role("checkbox").check()
    for elem_id, value in (("compare-load-requests", 3), ("compare-load-prompt", 32), ("compare-load-output", 4)):
        page.locator(f"#{elem_id} input[type=number]").fill(str(value))
    page.locator("#compare-load-sweep textarea").fill("1, 2")
    page.locator("#compare-run").click()
    # the last job's result may still be on the tab (it shows the last job): wait for this one's sweep
    wait_for_text(page, "compare-notes", "Concurrency sweep", timeout=180_000)
    wait_for_text(page, "compare-progress", "Done", timeout=30_000)
    results = page.locator("#compare-results").inner_text()
    assert "perplexity" in results and "top-1 agreement" in results and "TTFT p50 (ms)" in results
    assert "at 1, 2 requests in flight in turn" in page.locator("#compare-notes").inner_text()
    wait_for_text(page, "compare-latency", "Throughput against latency")  # the sweep's chart
    assert page.locator("#compare-latency").is_visible() and page.locator("#compare-speed").is_visible()
    # the CPU's KV cache has no reserve, but a token's bytes: tokens per GiB, and no bars of zeros beside them
    assert page.locator("#compare-capacity").is_visible()
    assert "KV capacity (tokens)" not in page.locator("#compare-capacity").inner_text()
    # the results read at 1,400 px without scrolling sideways
    assert page.evaluate(
        "() => [...document.querySelectorAll('#compare-results table')].every(t => t.scrollWidth <= t.parentElement.clientWidth)"
    )
    screenshot(page, "compare.png")


def error_badges(page) -> int:
    """Gradio's red "Error" labels painted over outputs (a status tracker left showing an error)."""
    return page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=status-tracker]')]"
        ".filter(w => !w.classList.contains('hide') && w.querySelector('span.error')).length"
    )


def test_a_refused_comparison_is_one_notice_over_the_tab_as_it_was(page):
    reload_console(page)
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-presets").get_by_label("cpu", exact=True).check()  # one preset: Compare needs two
    page.locator("#compare-run").click()
    page.wait_for_function("() => document.body.innerText.includes('pick 2 to 4 presets')", timeout=30_000)
    page.wait_for_timeout(500)  # the badges, where there are any, come with the toast
    assert error_badges(page) == 0


def test_without_a_gpu_the_first_screen_says_what_it_can_show_and_how_to_start(page):
    note = page.locator("#no-gpu-note").inner_text()
    assert "No GPU is usable here" in note and "cpu-int8-dynamic" in note and "Side by side" in note


def test_side_by_side_answers_with_both_presets_and_names_them_after_a_blind_vote(page):
    page.get_by_role("tab", name="Side by side").click()
    page.locator("#pick-side-b input").click()
    page.get_by_role("option", name="cpu-bf16", exact=True).click()
    page.locator("#load-side-b").click()
    wait_for_text(page, "sides", "B: cpu-bf16", timeout=120_000)
    page.locator("#sbs-input textarea").fill("What is 2+3? Answer briefly.")
    page.locator("#sbs-send").click()
    for side in ("left", "right"):
        page.wait_for_function(
            f"() => /stop|length/.test(document.getElementById('sbs-{side}-stats')?.innerText || '')",
            timeout=120_000,
        )
    wait_for_text(page, "sbs-parted", "Greedy")
    titles = [page.locator(f"#sbs-{side}-title").inner_text().strip() for side in ("left", "right")]
    assert titles == ["Left", "Right"]  # blind: not named before the vote
    page.locator("#vote-left").click()
    wait_for_text(page, "sbs-revealed", "your vote for", timeout=30_000)
    left, right = (page.locator(f"#sbs-{side}-title").inner_text().strip() for side in ("left", "right"))
    assert left.startswith("Left: ") and right.startswith("Right: ")  # each named: side A is the running engine
    assert "cpu-bf16" in (left + right)
    wait_for_text(page, "sbs-tally", "cpu-bf16")
    screenshot(page, "side-by-side.png")
    page.locator("#unload-side-b").click()
    wait_for_text(page, "sides", "none loaded", timeout=30_000)


def test_quantize_tab_checks_and_says_it_needs_a_gpu_here(page):
    page.get_by_role("tab", name="Quantize").click()
    page.locator("#quantize-check").click()
    wait_for_text(page, "quantize-result", "needs a CUDA GPU", timeout=30_000)
    answer, log = page.locator("#quantize-result").bounding_box(), page.locator("#quantize-log").bounding_box()
    assert answer["y"] < log["y"]  # read under the Check button, not below the log
    result = page.locator("#quantize-result").inner_text()
    assert "only the PyTorch engine will load the result" in result  # group 64 on SmolLM2
    assert page.locator("#quantize-start").is_disabled()
    screenshot(page, "quantize.png")


def test_tools_step_mode_waits_for_continue_before_running_a_call(page):
    reload_console(page)  # a fresh session: a Run still going on (the test before) would ignore this Run
    page.get_by_role("tab", name="Tools").click()
    page.locator("#tools-step-mode input").check()
    page.locator("#tools-run").click()
    wait_for_text(page, "tools-pending", '"result": null', timeout=120_000)
    after_prompt = page.locator("#tools-transcript").inner_text().split("What is (3 + 5) x 2?")[-1]
    assert "waiting for you" in after_prompt and "returned" not in after_prompt  # the call shown, not yet run
    page.locator("#tools-continue").click()
    wait_for_text(page, "tools-transcript", "returned", timeout=120_000)


def test_an_exported_chat_imports_with_its_messages_and_knobs(page, tmp_path):
    from backends import BackendInfo, GenerationParams
    from console.chat import ChatSession, Turn
    from console.transcript import export_chat

    session = ChatSession(params=GenerationParams(temperature=0.3, max_new_tokens=77))
    session.turns += [Turn("user", "Where is the lighthouse?"), Turn("assistant", "On the northern cape.")]
    saved = tmp_path / "chat.json"
    saved.write_text(export_chat(session, BackendInfo("cpu", "SmolLM2", "transformers (cpu)"), "cpu"))
    reload_console(page)
    with page.expect_file_chooser() as chooser:
        page.locator("#import-chat").click()
    chooser.value.set_files(str(saved))
    wait_for_text(page, "chatbot", "On the northern cape.", timeout=30_000)
    assert "Where is the lighthouse?" in page.locator("#chatbot").inner_text()
    page.wait_for_function("() => document.querySelector('#max-new-tokens input').value === '77'")


def test_one_click_of_export_downloads_the_chat(page):
    reload_console(page)
    page.locator("#chat-input textarea").fill("Say hello.")
    page.locator("#chat-input textarea").press("Enter")
    wait_for_text(page, "chatbot", "tok/s", timeout=120_000)
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Export JSON").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["messages"][0]["content"] == "Say hello."


def test_a_50_mb_chat_import_is_refused_and_the_chat_kept(page, tmp_path):
    reload_console(page)
    page.get_by_role("tab", name="Chat").click()
    page.locator("#chat-input textarea").fill("What is 2+3?")
    page.locator("#chat-input textarea").press("Enter")
    wait_for_text(page, "chatbot", "tok/s", timeout=120_000)
    big = tmp_path / "chat.json"
    big.write_bytes(b"{" + b" " * (50 * 2**20) + b"}")
    with page.expect_file_chooser() as chooser:
        page.locator("#import-chat").click()
    chooser.value.set_files(str(big))
    page.wait_for_function(  # Gradio's toast, from max_file_size in app.py
        "() => document.body.innerText.includes('exceed the maximum allowed size of 5.0 Mb')", timeout=60_000
    )
    assert "What is 2+3?" in page.locator("#chatbot").inner_text()


def test_fleet_tab_shows_the_proxy_s_nodes_and_an_admin_removes_and_terminates_one(
    page, app_url, fleet_proxy, fleet_nodes, embedded_folder, tmp_path
):
    import httpx
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    httpx.post(f"{fleet_proxy}/nodes/add", json={"url": next(iter(fleet_nodes))})  # a proxy with a model to serve
    assert client.predict("fleet-test", api_name="/switch_preset")["ok"]
    try:
        for url in fleet_nodes:
            assert client.predict(url, api_name="/fleet_add")["ok"]
        busy = [client.submit(message=f"Count to {20 + i}.", max_new_tokens=48, api_name="/chat") for i in range(2)]
        reload_console(page)
        page.get_by_role("tab", name="Fleet").click()
        wait_for_text(page, "fleet-status", "2 node(s), 2 healthy", timeout=30_000)
        nodes = page.locator("#fleet-nodes table")
        assert nodes.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")  # no scrolling sideways at 1,400 px
        assert "tokens made" in nodes.inner_text()
        page.wait_for_timeout(4000)  # the chats under way: a few timeline points
        for job in busy:
            job.result()
        screenshot(page, "fleet.png")
        removed = next(iter(fleet_nodes))
        page.get_by_text("Manage nodes (admins)").click()
        page.locator("#fleet-node input").click()
        page.get_by_role("option", name=removed).click()
        page.get_by_role("button", name="Remove from routing").click()
        wait_for_text(page, "fleet-gone", removed, timeout=30_000)
        assert "1 node(s)" in page.locator("#fleet-status").inner_text()
        assert client.predict(removed, api_name="/fleet_add")["ok"]
        terminate_a_node_from_the_page(page, client, embedded_folder, tmp_path)
    finally:
        client.predict("cpu", api_name="/switch_preset")


def terminate_a_node_from_the_page(page, client, embedded_folder, tmp_path):
    """A third node of its own (the others serve later tests): Terminate asks for the confirmation
    first, then the proxy drops the node and shuts its server down."""
    from tests.conftest import start_openai_server

    process, base_url = start_openai_server(embedded_folder, tmp_path, "--list-model")
    node = base_url.removesuffix("/v1")
    try:
        page.get_by_label("api_server URL").fill(node)  # added from the page: its node list is read afresh
        page.get_by_role("button", name="Add node").click()
        wait_for_text(page, "fleet-status", "3 node(s)", timeout=30_000)
        page.locator("#fleet-node input").click()
        page.get_by_role("option", name=node).click()
        page.get_by_role("button", name="Terminate node").click()
        page.wait_for_function("() => document.body.innerText.includes('tick')", timeout=30_000)
        assert process.poll() is None  # nothing shut down without the confirmation
        page.get_by_label("Yes, shut this node's server down").check()
        page.get_by_role("button", name="Terminate node").click()
        wait_for_text(page, "fleet-gone", node, timeout=30_000)
        assert process.wait(timeout=60) == 0  # the node's server shut itself down
    finally:
        if process.poll() is None:  # the test failed before terminating it: the fleet tests after need two nodes
            client.predict(node, False, api_name="/fleet_remove")
        stop_process(process)


def test_a_user_who_is_not_an_admin_sees_the_switch_disabled_and_why(browser, tmp_path):
    console, url = start_console(
        ["--preset", "cpu", "--auth", "ann:ann-pw", "--auth", "bob:bob-pw", "--admin", "ann"], tmp_path / "app.log"
    )
    page = browser.new_page(viewport=CHROMIUM_VIEWPORT)
    try:
        assert "not switch presets" in log_in_page(page, url, "bob", "bob-pw")
        page.get_by_role("tab", name="Presets").click()
        page.get_by_label("kv-int4", exact=True).check()  # the running cpu is ticked already: away and back
        wait_for_text(page, "preset-about", "Cannot load here")
        page.get_by_label("cpu", exact=True).check()
        wait_for_text(page, "preset-about", "OK: loads here")
        assert page.locator("#switch-preset").is_disabled()  # loads here, but not for bob
        assert "admins only" in page.locator(".admin-only-reason").first.inner_text()
    finally:
        page.close()
        stop_process(console)
