"""Chats from Chromium pages, the real thing that `bench.many_users`'s protocol clients stand in for.

Used by `python -m bench.many_users --paced --chromium ...`: each user a page of one headless Chromium
(Debian's, through Playwright, as the browser tier opens it), its reply length set on its own slider; every
page then sends its question at the same moment (by the machine's clock, from inside the page) and times,
by the same clock, the first reply text on its screen and the finished reply's stats line. The replies come
from bench/paced_server.py, whose words ("word word ...") are how a page tells reply text from its question.
The browser's CPU seconds (all its processes) over the round stand beside the figures, as the protocol
clients' do.
"""

from __future__ import annotations

import time

import psutil

from bench.many_users import QUESTION, Outcome, Round, cpu_seconds, tokens_shown

LET_GO_AFTER_S = 5.0  # every page told when to send, this far ahead: its own opening work done by then
# Each person in the room looks at their own page: none of these is a background tab, whose timers and
# frames Chromium would slow down.
EVERY_PAGE_IN_FRONT = (
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)

# In the page: the box filled as typing fills it, Send clicked at `sendAt` (epoch ms), then the Chatbot
# watched for the reply's first word and for its finish in the stats line; kept as window.chatTimes with
# the Chatbot's text then, whose stats line gives the reply's tokens.
_CHAT_JS = """
([message, sendAt]) => {
  const chat = document.querySelector('#chatbot');
  const box = document.querySelector('#chat-input textarea');
  const when = (test) => new Promise((resolve) => {
    if (test()) return resolve(Date.now());
    const watch = new MutationObserver(() => {
      if (test()) { watch.disconnect(); resolve(Date.now()); }
    });
    watch.observe(chat, {childList: true, subtree: true, characterData: true});
  });
  box.value = message;
  box.dispatchEvent(new Event('input', {bubbles: true}));
  window.chatTimes = (async () => {
    await new Promise((resolve) => setTimeout(resolve, sendAt - Date.now()));
    document.querySelector('#send').click();
    const first = await when(() => chat.textContent.includes('word'));
    const whole = await when(() => /· (length|stop)/.test(chat.textContent));
    return [first, whole, chat.textContent];
  })();
}
"""


def chromium_round(url: str, users: int, tokens: int, console: list[psutil.Process]) -> Round:
    """`users` pages opened (each asking for `tokens`-token replies), then every chat sent at once."""
    from tests.conftest import CHROMIUM_VIEWPORT, open_chromium

    with open_chromium(*EVERY_PAGE_IN_FRONT) as browser:
        pages = [_open_page(browser, url, tokens, CHROMIUM_VIEWPORT) for _ in range(users)]
        browser_processes = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name()]
        send_at = time.time() + LET_GO_AFTER_S
        for index, page in enumerate(pages):
            page.evaluate(_CHAT_JS, [QUESTION.format(index=index), send_at * 1000])
        time.sleep(max(0.0, send_at - time.time()))
        cpu, console_cpu = cpu_seconds(browser_processes), cpu_seconds(console)
        outcomes = [_outcome(page, send_at) for page in pages]
        cpu, console_cpu = cpu_seconds(browser_processes) - cpu, cpu_seconds(console) - console_cpu
    wall = max(o.ended_at for o in outcomes) - send_at
    return Round(outcomes, wall, cpu, console_cpu)


def _open_page(browser, url: str, tokens: int, viewport: dict):
    from tests.conftest import open_console

    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(600_000)
    open_console(page, url)  # its knobs set to the running preset's first, then to this reply length
    slider = page.locator("#max-new-tokens input[type=number]")
    slider.fill(str(tokens))
    slider.press("Enter")
    return page


def _outcome(page, send_at: float) -> Outcome:
    try:
        first_ms, whole_ms, shown = page.evaluate("() => window.chatTimes")
    except Exception as exc:  # noqa: BLE001 - whatever the page met is that user's error, counted
        return Outcome(error=f"{type(exc).__name__}: {exc}"[:200], ended_at=time.time())
    return Outcome(first_ms / 1000 - send_at, whole_ms / 1000 - send_at, tokens_shown(shown), ended_at=whole_ms / 1000)
